"""Pipeline memory by execution: torch.distributed.pipelining schedules on 2–4 CPU processes (gloo) keep alive,
per stage, exactly the micro-batches formulas.parallel.in_flight says — the number the plan's activation memory
multiplies (tests/execution/pipeline.py counts micro-batches whose saved tensors autograd still holds)."""

import pytest

from transformer_math.formulas.parallel import in_flight

pytestmark = pytest.mark.torch


def _measure(schedule, P_p, m, v=1):
    torch = pytest.importorskip("torch")
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is not available")
    from execution.pipeline import peak_in_flight, to_stage_units

    return to_stage_units(peak_in_flight(schedule, P_p, m, v), v)


@pytest.mark.parametrize("schedule, P_p, m, v", [
    ("GPipe", 2, 3, 1),
    ("1F1B", 2, 4, 1),
    ("1F1B", 4, 8, 1),  # plain 1F1B: P_p − i, not multiplied by the interleaving factor
    ("Interleaved1F1B", 2, 4, 2),
    ("Interleaved1F1B", 4, 8, 2),
    ("Interleaved1F1B", 4, 4, 3),
    ("Interleaved1F1B", 2, 1, 2),  # fewer micro-batches than the warm-up: all m·v chunks
])
def test_stages_keep_what_the_formula_says(schedule, P_p, m, v):
    measured = _measure(schedule, P_p, m, v)
    predicted = [in_flight(g=schedule == "GPipe", v=v, P_p=P_p, m=m, i=i) for i in range(P_p)]
    assert measured == pytest.approx(predicted, abs=0)


def test_first_stage_of_interleaved_matches_korthikanti():
    """Korthikanti et al. 2022 §4.2.3: the first stage holds P_p·(1 + (P_p − 1)/(P_p·v)) stages' worth."""
    P_p, v = 4, 2
    assert _measure("Interleaved1F1B", P_p, 8, v)[0] == P_p * (1 + (P_p - 1) / (P_p * v))
    assert _measure("1F1B", P_p, 8)[0] == P_p  # and plain 1F1B only P_p
