"""Invariants of the plans over every preset and random layouts (Hypothesis)."""

import math
import re
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import transformer_math as tm
from transformer_math.analysis.costs import experts_touched, total_time
from transformer_math.analysis.efficiency import MID
from transformer_math.analysis.plans import serve
from transformer_math.analysis.serving import ServeLayout, ServeWorkload, _step
from transformer_math.analysis.train_search import evaluate
from transformer_math.analysis.training import RECOMPUTE, Layout, Workload, plan_training, validate
from transformer_math.config.hardware import load_hardware
from transformer_math.errors import TmathError
from transformer_math.units import parse_dtype

BF16 = parse_dtype("bf16")
PRESETS = [n for n in tm.list_presets() if tm.load_model(n).arch == "decoder"]  # plans: decoder-only
PRESET_NAMES = st.sampled_from(PRESETS)
models = st.sampled_from(["llama-3.2-3b", "qwen3-8b", "gemma-3-4b", "gpt-oss-20b", "mixtral-8x7b", "deepseek-v3"])
gpus = st.sampled_from(["a100-80gb", "h100-sxm", "l40s", "mi300x"])
fast = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def step(s, hw, *, B, T, L=0, decode):
    w = ServeWorkload(batch=B, prompt=max(T, 1), gen=1, weights={"*": BF16}, kv=BF16)
    return total_time(_step(s, hw, MID, ServeLayout(), w, B=B, T=T, ctx=L, decode=decode))


@fast
@given(models, gpus, st.integers(1, 64), st.integers(1, 8192), st.booleans())
def test_faster_hardware_is_never_slower(name, gpu, B, L, decode):
    s, hw = tm.load_model(name), load_hardware(gpu)
    kw = dict(B=B, T=1 if decode else min(L, 2048), L=L, decode=decode)
    base = step(s, hw, **kw)
    more_bw = replace(hw, memory_bandwidth_bytes_per_s=2 * hw.memory_bandwidth_bytes_per_s)
    more_flops = replace(hw, peak_flops_per_s=tuple((k, 2 * v) for k, v in hw.peak_flops_per_s))
    assert step(s, more_bw, **kw) <= base and step(s, more_flops, **kw) <= base


@fast
@given(models, gpus, st.integers(1, 32), st.integers(1, 4096))
def test_decode_time_grows_with_context_and_batch(name, gpu, B, L):
    s, hw = tm.load_model(name), load_hardware(gpu)
    t = step(s, hw, B=B, T=1, L=L, decode=True)
    assert step(s, hw, B=B, T=1, L=2 * L, decode=True) >= t
    assert step(s, hw, B=2 * B, T=1, L=L, decode=True) >= t


@given(st.integers(1, 512), st.integers(1, 8), st.integers(1, 10**6))
def test_experts_touched_bounds(E, e, tokens):
    e = min(e, E)
    touched = experts_touched(E, e, tokens)
    assert e - 1e-9 <= touched <= E + 1e-9
    assert experts_touched(E, e, tokens + 1) >= touched - 1e-9


@st.composite
def layouts(draw, names=PRESET_NAMES):
    """A valid layout and workload of a preset (anything validate() refuses is skipped)."""
    s = tm.load_model(draw(names))
    pow2 = lambda hi: st.sampled_from([x for x in (1, 2, 4, 8, 16) if x <= hi])  # noqa: E731
    tp = draw(st.sampled_from([t for t in (1, 2, 4, 8) if s.n_heads % t == 0]))
    pp = draw(pow2(min(s.n_layers, 16)))
    cp, dp, mb = draw(pow2(8)), draw(pow2(16)), draw(pow2(4))
    ep = draw(st.sampled_from([e for e in (1, 2, 4, 8) if s.moe is None and e == 1 or (
        s.moe and s.moe.n_experts % e == 0 and (dp * cp) % e == 0)] or [1]))
    v = draw(st.sampled_from([1, 2])) if pp > 1 else 1
    seq = draw(st.sampled_from([512, 2048, 8192, 32768]))  # tokens per context-parallel rank
    m = draw(st.sampled_from([1, 2, 4, 8, 16]))
    lay = Layout(tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, micro_batch=mb, recompute=draw(st.sampled_from(RECOMPUTE)),
                 zero=draw(st.sampled_from([0, 1, 2, 3])), sequence_parallel=draw(st.booleans()), interleave=v,
                 schedule=draw(st.sampled_from(["1f1b", "gpipe"])) if v == 1 else "1f1b")
    w = Workload(global_batch=dp * mb * m, seq=seq * cp, precision=draw(st.sampled_from(["bf16", "bf16", "fp8"])),
                 flash_attention=draw(st.sampled_from([True, True, False])))
    try:
        validate(s, lay, w)
    except TmathError:
        assume(False)
    return s, lay, w, draw(st.sampled_from(["a100-80gb", "h100-sxm", "b200", "mi300x", "rtx-4090"]))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(layouts())
def test_mfu_at_most_one_and_hfu_at_least_mfu(case):
    """MFU counts the work the step requires (routed experts only, unmasked pairs): it can never exceed what the
    GPUs execute in the step's time (against the bf16 peak: an FP8 run can reach F_fp8/F_bf16)."""
    s, lay, w, gpu = case
    hw = load_hardware(gpu)
    p = plan_training(s, hw, lay, w)
    cap = hw.peak("fp8") / hw.peak("bf16") if w.precision == "fp8" else 1.0
    assert 0 < p["train.mfu"] <= cap and p["train.hfu"] >= p["train.mfu"]
    assert p["train.hardware_flops"] >= p["train.model_flops"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(layouts())
def test_vectorized_search_equals_explained_plan(case):
    """The search's array evaluation and the explained plan are one composition: every shared value equal."""
    s, lay, w, gpu = case
    hw = load_hardware(gpu)
    p = plan_training(s, hw, lay, w)
    arrays = evaluate(s, hw, w, tp=[lay.tp], pp=[lay.pp], dp=[lay.dp], cp=[lay.cp], ep=[lay.ep], mb=[lay.micro_batch],
                      rec=[RECOMPUTE.index(lay.recompute)], zero=[lay.zero], sp=[lay.sequence_parallel],
                      v=[lay.interleave], gpipe=[lay.schedule == "gpipe"])
    for key in ("memory.per_gpu", "time.microbatch", "train.step_time", "train.mfu", "train.hfu", "train.bubble",
                "train.dp", "train.optimizer", "train.tokens_per_s", "train.model_flops"):
        assert float(arrays[key][0]) == pytest.approx(p[key], rel=1e-12, abs=1e-15), key


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(layouts())
def test_breakdowns_sum_to_their_totals(case):
    s, lay, w, gpu = case
    p = plan_training(s, load_hardware(gpu), lay, w)
    for top in p.quantities.values():
        for x in top.walk():
            if x.formula_id is None and x.children:
                assert sum(c.value for c in x.children) == x.value
    parts = sum(p[f"memory.{k}"] for k in ("weights", "gradients", "optimizer", "activations", "reserve"))
    assert parts == p["memory.per_gpu"]


_SAFE = re.compile(r"^[0-9.e+\-*/() ,maxinceil]+$")


def _evaluate(text):
    """A substituted formula with only numbers, + − · / ( ), max, min and ⌈ ⌉ left, as Python."""
    text = text.replace("·", "*").replace("−", "-").replace("⌈", "ceil(").replace("⌉", ")")
    if not _SAFE.match(text):
        return None
    return eval(text, {"max": max, "min": min, "ceil": math.ceil, "__builtins__": {}})  # noqa: S307


@pytest.mark.parametrize("name", ["llama-3.1-70b", "mixtral-8x7b", "deepseek-v3", "gemma-3-12b"])
def test_plan_formulas_substituted_evaluate_to_their_values(name):
    checked = 0
    plans = [tm.train(name, "h100-sxm", gpus=64, tp=4, pp=2, cp=2, global_batch=64, seq=8192, zero=3,
                      recompute="full").plan,
             tm.serve(name, "h100-sxm", tp=8, batch=4).plan]
    for p in plans:
        for top in p.quantities.values():
            for x in top.walk():
                if x.formula_id is None:
                    continue
                value = _evaluate(x.substituted)
                if value is None:
                    continue
                assert value == pytest.approx(x.value, rel=1e-9, abs=1e-12), (x.key, x.substituted)
                checked += 1
    assert checked > 40


@fast
@given(st.sampled_from(["llama-3.1-8b", "qwen3-8b", "llama-3.1-70b"]), st.sampled_from([1, 2, 4, 8]),
       st.sampled_from([0, 1, 2, 3]))
def test_sharding_never_grows_memory_per_gpu(name, dp, zero):
    s, hw = tm.load_model(name), load_hardware("h100-sxm")
    w = Workload(global_batch=64, seq=2048)
    plan = lambda **k: plan_training(s, hw, Layout(zero=zero, **k), w)  # noqa: E731
    one, more = plan(dp=dp), plan(dp=2 * dp)
    assert more["memory.optimizer"] <= one["memory.optimizer"] and more["memory.weights"] <= one["memory.weights"]
    assert plan(tp=2, dp=dp)["memory.weights"] <= one["memory.weights"]


@fast
@given(models, st.sampled_from([1, 2, 4, 8]), st.sampled_from(["auto", "int4", "fp8"]))
def test_serving_weights_per_gpu_shrink_with_every_gpu_that_holds_them(name, tp, wd):
    """Tensor parallelism splits every expert's width too: weights per GPU ≈ total / T_p (embeddings, attention
    and experts split; norms, routers and MLA's down-projections replicated: DeepSeek-V3 1.2 % above 1/8)."""
    s = tm.load_model(name)
    assume(s.n_heads % tp == 0)
    one = serve(name, "h100-sxm", weight_dtype=wd, suggest=False).plan["memory.weights"]
    many = serve(name, "h100-sxm", tp=tp, weight_dtype=wd, suggest=False).plan["memory.weights"]
    assert one / tp <= many <= one / tp * 1.02 + 2e7
