"""The efficiency profiles against measurements: calibration and validation kept apart, errors that hold,
bands that cover, engines and power caps that move the numbers the way measurements do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

import transformer_math as tm
from transformer_math.analysis.efficiency import band_for, efficiency_for, engine, list_engines
from transformer_math.checks import published as v
from transformer_math.config.hardware import load_hardware
from transformer_math.errors import TmathError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESERVED = ("torchtitan", "perf-overview", "perf_overview", "speed_benchmark", "speed benchmark", "2407.21783",
            "herd of models", "tensorrt-llm")


@pytest.fixture(scope="module")
def rows():
    return v.rows()


def test_every_group_on_one_side_decided_by_source():
    with open(os.path.join(ROOT, "src/transformer_math/presets/measurements/split.json")) as f:
        d = json.load(f)
    assert not set(d["calibration"]) & set(d["validation"])
    groups = {r["source_group"] for r in v.measurements()}
    assert groups <= set(d["calibration"]) | set(d["validation"])
    assert {g for g in groups if g.startswith("device-run")} <= set(d["validation"])  # our own GPU runs: never fitted


def test_no_reserved_source_is_used():
    for r in v.measurements():
        text = json.dumps({k: r.get(k) for k in ("source", "source_group", "id")}).lower()
        assert not any(bad in text for bad in RESERVED), r["id"]
        assert not ("llm-foundry" in text and "h100" in text), r["id"]


def test_every_row_has_a_source_and_a_metric_the_model_scores_or_a_reason(rows):
    for r in rows:
        assert r.setup.get("source") or r.group in ("megatron-2021-table1", "mosaicml-a100", "gptfast-readme-a100")
        assert r.scored or r.note
    assert sum(r.scored for r in rows) >= 250


def test_profiles_reproduce_their_stored_calibration_errors():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/fit_efficiency.py"), "--check"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_validation_errors_hold(rows):
    """Out of sample, by figure kind (benchmarks/validate_published.py prints the full table)."""
    val = [r for r in rows if r.split == "validation"]
    train = v.summary([r for r in val if r.kind == "training"])
    assert train["rows"] >= 50 and train["median_abs_error"] <= 0.10
    everything = v.summary(val)
    assert everything["rows"] >= 100 and everything["median_abs_error"] <= 0.15
    ours = v.summary([r for r in val if r.group.startswith("device-run")])  # H200, HF transformers
    assert ours["rows"] == 10 and ours["median_abs_error"] <= 0.10 and ours["max_abs_error"] <= 0.25


def test_bands_come_from_calibration_and_cover_validation(rows):
    val = [r for r in rows if r.split == "validation" and r.scored]
    cov = v.coverage(val, lambda r: band_for(load_hardware(r.device), r.kind))
    assert 0.55 <= cov <= 0.95
    for kind in ("training", "decode"):
        b = band_for(load_hardware("h100-sxm"), kind)
        assert b.low < 1 < b.high and b.calibration_rows >= 50


def test_trends_follow_the_measurements(rows):
    val = [r for r in rows if r.split == "validation"]
    for what in ("batch", "context length"):
        same, total, _ = v.trends(val, what)
        assert total >= 4 and same / total >= 0.75


def test_serve_band_brackets_the_prediction():
    p = tm.serve("llama-3.1-8b", "h100-sxm", batch=8).plan
    slow, mid, fast = p.band["tpot_s"]
    assert slow > mid > fast and mid == p["serve.tpot"]
    lo, mid_t, hi = p.band["tokens_per_s"]
    assert lo < mid_t < hi


def test_engines_order_batch_one_decode():
    """Eager HF generate() pays Python per op (H200 run: 20.4 ms/token for Llama-3.1-8B); gpt-fast compiles the
    step into one CUDA graph (A100 rows); vLLM sits between."""
    t = {e: tm.serve("llama-3.1-8b", "h100-sxm", batch=1, engine=e).plan["serve.tpot"] for e in ("hf", "vllm",
                                                                                                "gptfast")}
    assert t["hf"] > 1.5 * t["vllm"] and t["vllm"] > t["gptfast"]
    assert set(list_engines()) >= {"vllm", "sglang", "trtllm", "hf", "gptfast", "llamacpp"}
    with pytest.raises(TmathError, match="engine"):
        tm.serve("llama-3.1-8b", "h100-sxm", engine="ollama")


def test_engine_block_size_sets_kv_paging():
    vllm = tm.serve("llama-3.1-8b", "h100-sxm", prompt=1000, gen=1, engine="vllm").plan
    sglang = tm.serve("llama-3.1-8b", "h100-sxm", prompt=1000, gen=1, engine="sglang").plan
    per_token = 2 * 32 * 8 * 128 * 2  # K and V, 32 layers, 8 KV heads of 128, bf16
    assert vllm["memory.kv_per_sequence"] == 1008 * per_token  # 63 blocks of 16
    assert sglang["memory.kv_per_sequence"] == 1001 * per_token  # token-granular pool


def test_power_cap_slows_compute_not_bandwidth():
    hw = load_hardware("a100-80gb")
    capped = replace(hw, power_cap_w=250.0)
    assert efficiency_for(capped).gemm < efficiency_for(hw).gemm
    assert efficiency_for(capped).bw == efficiency_for(hw).bw
    w = dict(batch=1, prompt=4096, gen=2)
    full, cap = tm.serve("llama-3.1-8b", hw, **w).plan, tm.serve("llama-3.1-8b", capped, **w).plan
    assert cap["serve.ttft"] > 1.1 * full["serve.ttft"]  # compute-bound prefill
    assert cap["serve.tpot"] == pytest.approx(full["serve.tpot"], rel=0.02)  # memory-bound decode


def test_a_calibrated_profile_replaces_the_class_profile():
    path = os.path.join(ROOT, "benchmarks/results/calibrated-h200-2026-11-26.json")
    mine = load_hardware(path)
    assert mine.device_class == "hopper" and dict(mine.efficiency)["gemm"] == pytest.approx(0.772, abs=1e-3)
    a = tm.train("llama-3.2-3b", path, global_batch=4, seq=2048, gpus=1, micro_batch=4).plan
    b = tm.train("llama-3.2-3b", "h200", global_batch=4, seq=2048, gpus=1, micro_batch=4).plan
    assert a["train.step_time"] != b["train.step_time"]


def test_bad_profile_field_is_one_clear_error(tmp_path):
    with open(os.path.join(ROOT, "src/transformer_math/presets/hardware/h100-sxm.json")) as f:
        d = json.load(f)
    d["efficiency"] = {"gem": 0.5}
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(d))
    with pytest.raises(TmathError, match="efficiency.gem"):
        load_hardware(str(p))


def test_engine_profiles_carry_their_fit_and_prior():
    for name in list_engines():
        e = engine(name)
        assert e.step_overhead_s >= 0 and e.block_tokens >= 1 and e.source
        with open(os.path.join(ROOT, f"src/transformer_math/presets/efficiency/engines/{name}.json")) as f:
            assert "prior" in json.load(f)
