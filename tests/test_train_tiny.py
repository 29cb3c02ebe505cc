"""`tmath train-tiny`: a short run of a tinier model whose exact rows (parameters, AdamW state, FLOPs per step, saved
activations, KV cache) equal the analyzer's; its loss falls; the JSON keys; the CLI's help, a 20-step run and its
errors. The README's full run (≈ 1 minute) is not run here."""

from __future__ import annotations

import io
import json
import math
import sys

import pytest

from transformer_math.cli import main
from transformer_math.errors import TmathError

torch = pytest.importorskip("torch")

from transformer_math.training import tiny  # noqa: E402  (needs torch)

# d = 32, 2 layers, 4 heads over 2 KV heads: every path of the default model, in a fraction of a second per step
SMALL = dict(batch=4, seq=32, d_model=32, layers=2, heads=4, kv_heads=2, d_ff=64, lr=1e-2, warmup=2,
             sample_tokens=12, samples=2, prompt="Once")
EXACT = ("params", "optimizer_bytes", "flops_per_step", "activation_bytes", "kv_cache_bytes")
DEVICE = {"name": "test CPU", "memory_bytes": 16 * 2**30, "memory_bandwidth_bytes_per_s": 20e9,
          "peak_flops_per_s": {"bf16": 2e11, "fp32": 1e11}, "link_bandwidth_bytes_per_s": 20e9}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    profile = tmp_path_factory.mktemp("device") / "cpu.json"
    profile.write_text(json.dumps(DEVICE), encoding="utf-8")
    return tiny.run_tiny(tiny.TinyConfig(steps=12, profile=str(profile), **SMALL), log=io.StringIO())


def test_corpus_is_what_compose_writes():
    from transformer_math.presets.corpus import compose

    text = tiny.CORPUS.read_text(encoding="ascii")
    assert text == compose.compose()
    assert 100_000 < len(text) < 300_000


def test_bytes_round_trip():
    text = "Once upon a time, é"
    assert tiny.decode(tiny.encode(text)) == text and int(tiny.encode(text).max()) < tiny.VOCAB


def test_exact_rows_equal_the_analyzer(result):
    rows = {r.key: r for r in result.rows}
    for key in EXACT:
        row = rows[key]
        assert row.exact and row.predicted is not None, key
        assert row.measured == row.predicted, (key, row.measured, row.predicted)
    # the numbers are the run's own: P from the model; m and v fp32 (8 bytes a parameter); the cache 2 × (4 + 12 − 1)
    assert rows["optimizer_bytes"].measured == 8 * result.params
    spec = tiny.tiny_spec(result.config)
    assert rows["kv_cache_bytes"].measured == 2 * spec.n_layers * 2 * (4 + 12 - 1) * spec.n_kv_heads * spec.head_dim * 4


def test_time_rows_are_estimates(result):
    rows = {r.key: r for r in result.rows}
    for key in ("step_time_s", "tokens_per_s"):
        row = rows[key]
        assert not row.exact and row.measured > 0 and row.predicted is not None and row.predicted > 0
        assert math.isfinite(row.error)
    assert rows["tokens_per_s"].measured == pytest.approx(4 * 32 / rows["step_time_s"].measured)


def test_loss_falls(result):
    losses = result.losses
    assert len(losses) == 12 and all(math.isfinite(x) for x in losses)
    assert losses[0] == pytest.approx(math.log(256), abs=0.5)  # a fresh model is near chance
    assert sum(losses[-3:]) / 3 < losses[0] - 1.0
    assert result.held_out < losses[0]


def test_json_keys(result):
    out = json.loads(json.dumps(result.to_dict()))
    assert set(out) == {"config", "model", "params", "corpus", "loss", "wall_s", "threads", "samples", "profile",
                        "rows", "notes"}
    assert set(out["loss"]) == {"initial", "final", "held_out", "ln_vocab", "per_step"}
    assert set(out["rows"]) == {*EXACT, "step_time_s", "tokens_per_s"}
    for row in out["rows"].values():
        assert set(row) == {"label", "unit", "measured", "predicted", "exact", "equal", "relative_error", "note"}
    assert all(out["rows"][k]["equal"] for k in EXACT)
    assert len(out["samples"]) == 2 and all(s.startswith("Once") for s in out["samples"])
    assert out["model"]["vocab_size"] == 256 and out["loss"]["ln_vocab"] == pytest.approx(5.545, abs=1e-3)


def test_render_shows_every_row(result):
    text = tiny.render(result)
    for row in result.rows:
        assert row.label in text
    assert text.count("exact") >= len(EXACT) and "ln V = 5.545" in text


def test_config_is_validated():
    for bad in (dict(kv_heads=3), dict(steps=0), dict(heads=5), dict(temperature=0.0), dict(top_k=300),
                dict(lr=float("nan")), dict(warmup=700), dict(prompt="")):
        with pytest.raises(TmathError):
            tiny.TinyConfig(**bad)
    with pytest.raises(TmathError, match="seq"):
        tiny.split(b"x" * 100, 80)


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train-tiny", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for option in ("--steps", "--batch", "--seq", "--seed", "--lr", "--profile", "--json"):
        assert option in out


def test_cli_20_steps_json(capsys):
    argv = ["train-tiny", "--steps", "20", "--batch", "4", "--seq", "32", "--d-model", "32", "--layers", "2",
            "--d-ff", "64", "--lr", "1e-2", "--warmup", "2", "--sample-tokens", "8", "--prompt", "The",
            "--profile", "none", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["config"]["steps"] == 20 and len(out["loss"]["per_step"]) == 20
    assert out["loss"]["final"] < out["loss"]["initial"] - 1.0
    assert all(out["rows"][k]["equal"] for k in EXACT)
    assert "step_time_s" not in out["rows"] and out["notes"]
    assert captured.err.strip().splitlines()[-1].startswith("trained 20 steps")  # not a TTY: the final line only


def test_cli_bad_value_is_one_line(capsys):
    assert main(["train-tiny", "--kv-heads", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tmath: error: kv_heads") and err.count("\n") == 1


def test_cli_without_torch_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert main(["train-tiny", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "[torch]" in err and err.count("\n") == 1


def test_auto_profile_is_cached(monkeypatch, tmp_path):
    """auto reads the cached calibration of this CPU at this thread count; it calibrates only when there is none."""
    from transformer_math.checks.calibrate.fit import slug
    from transformer_math.checks.calibrate.measure import _cpu_name

    monkeypatch.setenv(tiny.PROFILE_ENV, str(tmp_path))
    cached = tmp_path / f"calibrated-{slug(_cpu_name())}-{torch.get_num_threads()}t.json"
    cached.write_text(json.dumps(DEVICE), encoding="utf-8")
    assert tiny.resolve_profile("auto", lambda _: pytest.fail("calibrated although a profile is cached")) == str(cached)
    assert tiny.resolve_profile("none", print) is None
    with pytest.raises(TmathError):
        tiny.resolve_profile(str(tmp_path / "missing.json"), print)


def test_fp32_device_refits_the_gemm_terms():
    """A calibrated CPU profile seen by an fp32 run: the 16-bit peak becomes the fp32 one, the GEMM terms are fitted
    to the fp32 rows (flat below MIN_FIT_ROWS of them), and attention keeps its absolute rate."""
    rows = [{"dtype": "fp32", "m": m, "n": n, "k": k, "flops": 2.0 * m * n * k, "bytes": 4.0 * (m * k + k * n + m * n),
             "seconds": 2.0 * m * n * k / 5e10, "flop_per_s": 5e10} for m in (16, 128, 1024) for n, k in
            ((512, 512), (2048, 512), (512, 2048))]
    profile = {**DEVICE, "peak_flops_per_s": {"bf16": 4e11, "fp32": 5e10}, "efficiency": {"attention": 0.05},
               "measurements": {"gemm": rows, "launch_s": 1e-6, "bandwidth": {"bytes_per_s": 2e10}}}
    out, how = tiny.fp32_device(profile)
    assert out["peak_flops_per_s"]["bf16"] == 5e10 and "9 fp32 GEMM rows" in how
    assert out["efficiency"]["attention"] == pytest.approx(0.05 * 4e11 / 5e10)
    assert out["efficiency"]["gemm"] == pytest.approx(1.0, rel=0.05)
    assert profile["peak_flops_per_s"]["bf16"] == 4e11  # the caller's dict is not changed
    few, _ = tiny.fp32_device({**profile, "measurements": {**profile["measurements"], "gemm": rows[:3]}})
    assert few["efficiency"]["gemm_dim_half"] == few["efficiency"]["gemm_rows_half"] == 0.0
    bare, how = tiny.fp32_device(DEVICE)
    assert bare["peak_flops_per_s"] == DEVICE["peak_flops_per_s"] and "no fp32" in how
