"""Invariants of the performance model over random workloads (Hypothesis)."""

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import transformer_math as tm
from transformer_math.analysis.efficiency import MID
from transformer_math.analysis.inference import experts_touched, step_costs, total_time
from transformer_math.analysis.training import Layout, plan_training
from transformer_math.config.hardware import load_hardware
from transformer_math.units import parse_dtype

BF16 = parse_dtype("bf16")
models = st.sampled_from(["llama-3.2-3b", "qwen3-8b", "gemma-3-4b", "gpt-oss-20b", "mixtral-8x7b", "deepseek-v3"])
gpus = st.sampled_from(["a100-80gb", "h100-sxm", "l40s", "mi300x"])
fast = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def step(s, hw, **kw):
    return total_time(step_costs(s, hw, MID, ep=1, wd={"*": BF16}, kv=BF16, **kw))


@fast
@given(models, gpus, st.integers(1, 64), st.integers(1, 8192), st.booleans())
def test_faster_hardware_is_never_slower(name, gpu, B, L, decode):
    s, hw = tm.load_model(name), load_hardware(gpu)
    kw = dict(B=B, T=1 if decode else min(L, 2048), L=L, decode=decode, tp=1)
    base = step(s, hw, **kw)
    more_bw = replace(hw, memory_bandwidth_bytes_per_s=2 * hw.memory_bandwidth_bytes_per_s)
    more_flops = replace(hw, peak_flops_per_s=tuple((k, 2 * v) for k, v in hw.peak_flops_per_s))
    assert step(s, more_bw, **kw) <= base and step(s, more_flops, **kw) <= base


@fast
@given(models, gpus, st.integers(1, 32), st.integers(1, 4096))
def test_decode_time_grows_with_context_and_batch(name, gpu, B, L):
    s, hw = tm.load_model(name), load_hardware(gpu)
    t = step(s, hw, B=B, T=1, L=L, decode=True, tp=1)
    assert step(s, hw, B=B, T=1, L=2 * L, decode=True, tp=1) >= t
    assert step(s, hw, B=2 * B, T=1, L=L, decode=True, tp=1) >= t


@fast
@given(st.sampled_from(["llama-3.1-8b", "qwen3-8b", "llama-3.1-70b"]), st.sampled_from([1, 2, 4, 8]),
       st.sampled_from([0, 1, 2, 3]))
def test_sharding_never_grows_memory_per_gpu(name, dp, zero):
    s, hw = tm.load_model(name), load_hardware("h100-sxm")
    plan = lambda **k: plan_training(s, hw, Layout(zero=zero, **k), global_batch=64, seq=2048)  # noqa: E731
    one, more = plan(dp=dp), plan(dp=2 * dp)
    assert more.memory["optimizer"] <= one.memory["optimizer"] and more.memory["weights"] <= one.memory["weights"]
    assert plan(tp=2, dp=dp).memory["weights"] <= one.memory["weights"]


@given(st.integers(1, 512), st.integers(1, 8), st.integers(1, 10**6))
def test_experts_touched_bounds(E, e, tokens):
    e = min(e, E)
    touched = experts_touched(E, e, tokens)
    assert e - 1e-9 <= touched <= E + 1e-9
    assert experts_touched(E, e, tokens + 1) >= touched - 1e-9
