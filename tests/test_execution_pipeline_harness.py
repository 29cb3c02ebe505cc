"""Sanity of the pipeline-schedule harness (tests/execution/pipeline.py): real torch schedules on
P_p gloo CPU processes, counting the micro-batches whose saved activations are alive."""

import pytest

pytestmark = pytest.mark.torch


def _harness():
    """tests/execution/pipeline.py, whether tests/ (plain `pytest`) or the repo root (`python -m pytest`) is on
    sys.path."""
    torch = pytest.importorskip("torch")
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is not available")
    try:
        from tests.execution import pipeline
    except ImportError:
        from execution import pipeline
    return pipeline


@pytest.mark.parametrize("P_p,m", [(2, 1), (2, 3), (4, 2)])
def test_gpipe_keeps_all_microbatches_on_every_rank(P_p, m):
    h = _harness()
    peaks = h.peak_in_flight("GPipe", P_p, m)
    assert peaks == [m] * P_p


def test_results_are_integers_at_least_one_and_every_microbatch_is_freed():
    h = _harness()
    r = h.measure("Interleaved1F1B", 2, 4, v=2)
    assert all(isinstance(p, int) and p >= 1 for p in r["peaks"])
    # every chunk ran m forwards, and all saved activations were released by the end of the step
    assert r["forwards"] == [{"0": 4, "2": 4}, {"1": 4, "3": 4}]
    assert r["alive_after_step"] == [0, 0]
    # the measurement agrees with a replay of the action list torch executed
    assert r["predicted"] == r["peaks"]
    assert h.to_stage_units(r["peaks"], 2) == [p / 2 for p in r["peaks"]]


def test_1f1b_stage_i_keeps_min_of_P_minus_i_and_m():
    h = _harness()
    assert h.peak_in_flight("1F1B", 4, 8) == [4, 3, 2, 1]


def test_interleaved_rank0_is_megatron_warmup_plus_one():
    h = _harness()
    P_p, v, m = 4, 2, 8
    peaks = h.peak_in_flight("Interleaved1F1B", P_p, m, v)
    assert peaks[0] == (v - 1) * P_p + 2 * (P_p - 1) + 1  # 11 chunk-micro-batches
    assert h.to_stage_units(peaks, v)[0] == P_p * (1 + (P_p - 1) / (P_p * v))
    assert peaks == h.torch_schedule_peak("Interleaved1F1B", P_p, m, v)


@pytest.mark.parametrize("schedule,P_p,m,v", [("Interleaved1F1B", 4, 2, 2), ("Interleaved1F1B", 4, 6, 2),
                                              ("InterleavedZeroBubble", 2, 4, 2), ("ZBVZeroBubble", 4, 3, 2)])
def test_closed_forms_match_small_and_uneven_m(schedule, P_p, m, v):
    h = _harness()
    r = h.measure(schedule, P_p, m, v)
    assert r["peaks"] == h.torch_schedule_peak(schedule, P_p, m, v)
    assert r["alive_after_step"] == [0] * P_p


def test_torch_rejections_surface_as_value_error():
    h = _harness()
    with pytest.raises(ValueError, match="must be greater than"):
        h.peak_in_flight("1F1B", 4, 2)
