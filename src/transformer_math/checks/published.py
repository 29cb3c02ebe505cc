"""Predictions of the performance model next to published measurements (checks.measurements), with the
summaries the validation report prints: median errors, band coverage and whether trends move the right way.

A row whose setup the model cannot express is kept, unscored, with the reason.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from typing import Any

from transformer_math.analysis.efficiency import Efficiency, efficiency_for, engine
from transformer_math.checks.measurements import (
    DECODE_PRESETS,
    DEFAULT_PROMPTS,
    ENGINES,
    KINDS,
    Row,
    _hardware,
    device_class,
    gpt_spec,
    measurements,
    spec_of,
    split,
    weight_dtype,
)
from transformer_math.errors import TmathError

__all__ = ["DECODE_PRESETS", "ENGINES", "KINDS", "TREND_KEYS", "Row", "coverage", "device_class", "gpt_spec",
           "kind_of", "measurements", "predict", "rows", "spec_of", "split", "summary", "trends"]


# ---------------------------------------------------------------------------------------------------------------
# Training rows


def _train_predict(r: Mapping[str, Any], eff: Efficiency) -> float:
    from transformer_math.analysis.training import Layout, Workload, plan_training

    s, hw = spec_of(r), _hardware(r)
    rec = str(r["recompute"]) if r.get("recompute") in ("none", "selective", "full") else "none"
    zero = {"ddp": 0, "zero1": 1, "fsdp": 3}.get(r.get("sharding", ""), 1)  # Megatron's distributed optimizer
    tp = r["tp"]
    pp = r["pp"]
    # Megatron-Bridge counts the embedding and the loss as layers when it splits stages: N_L + 2 chunks
    vp = min(r.get("vp") or 1, (s.n_layers + 2) // pp, s.n_layers // pp)
    L = Layout(tp=tp, pp=pp, dp=r["dp"], cp=r.get("cp", 1), ep=r.get("ep", 1), micro_batch=r.get("micro_batch") or 1,
               recompute=rec, zero=zero, sequence_parallel=tp > 1 and r.get("source_group") != "megatron-2021-table1",
               interleave=vp)
    prec = str(r.get("precision", "")).lower()
    prec = "fp8" if prec.startswith(("fp8", "mxfp8")) else "fp4" if prec.startswith(("nvfp4", "mxfp4")) else "bf16"
    w = Workload(global_batch=r["global_batch"], seq=r["seq"], precision=prec,
                 flash_attention=r.get("flash_attention", True))
    p = plan_training(s, hw, L, w, eff=eff)
    t, n = p["train.step_time"], r["gpus"]
    metric = r["metric"]
    if metric == "tokens_per_s_per_gpu":
        return p["train.tokens_per_s"] / n
    if metric == "megatron_tflops_per_gpu":  # the paper's own count: 96·B·s·l·h²·(1 + s/6h + V/16lh)
        h, n_l, V, sq, B = s.d_model, s.n_layers, s.vocab_size, r["seq"], r["global_batch"]
        return 96 * B * sq * n_l * h * h * (1 + sq / (6 * h) + V / (16 * n_l * h)) / (t * n) / 1e12
    if metric in ("model_tflops_per_gpu", "mfu"):  # 6·N·tokens + attention, the sources' MFU convention
        flops = p["train.palm_flops"]
        return flops / (t * n) / (1e12 if metric == "model_tflops_per_gpu" else hw.peak("bf16"))
    raise TmathError("metric", metric, "a training metric the validation knows")


# ---------------------------------------------------------------------------------------------------------------
# Serving rows


def _serve_setup(r: Mapping[str, Any]) -> tuple[Any, ...]:
    from transformer_math.analysis.report import parse_weight_dtypes
    from transformer_math.analysis.serving import ServeLayout, ServeWorkload
    from transformer_math.units import parse_dtype

    s, hw = spec_of(r), _hardware(r)
    eng = ENGINES.get(r.get("engine", ""), "")
    if not eng:
        raise TmathError("engine", r.get("engine"), "an engine with a profile")
    wd = weight_dtype(r.get("weight_dtype", "bf16"))
    head = r.get("lm_head")
    weights = parse_weight_dtypes(f"{wd},lm_head={head}" if head else wd, s)
    kv = "fp8" if str(r.get("kv_dtype", "")).startswith("fp8") else "bf16"
    L = ServeLayout(tp=r.get("tp", 1), dp=r.get("dp") or 1, ep=r.get("ep", 1) if s.moe else 1)
    prompt = max(1, r.get("input_len") or 1)
    gen = max(1, r.get("output_len") or 1)
    shard_head = eng != "gptfast"
    w = ServeWorkload(batch=1, prompt=prompt, gen=gen, weights=weights, kv=parse_dtype(kv), engine=eng,
                      block=engine(eng).block_tokens, shard_lm_head=shard_head)
    return s, hw, L, w, eng


def _capacity(s: Any, hw: Any, L: Any, w: Any) -> int:
    from dataclasses import replace

    from transformer_math.analysis.serving import plan_serving

    return max(1, int(plan_serving(s, hw, L, replace(w, batch=1))["serve.max_batch"]))


def _serve_predict(r: Mapping[str, Any], eff: Efficiency, cache: dict[str, Any]) -> float:
    from dataclasses import replace

    from transformer_math.analysis.costs import total_time
    from transformer_math.analysis.serving import _step

    s, hw, L, w, eng = cache.get(r["id"]) or cache.setdefault(r["id"], _serve_setup(r))
    e = engine(eng)
    prompt, gen = w.prompt, w.gen
    metric, scen = r["metric"], r["scenario"]

    def decode(B: int, ctx: int) -> float:
        return total_time(_step(s, hw, eff, L, replace(w, batch=B), B=B, T=1, ctx=ctx, decode=True))

    def prefill(B: int, T: int) -> float:
        return total_time(_step(s, hw, eff, L, replace(w, batch=B), B=B, T=T, ctx=0, decode=False))

    per_node = hw.gpus_per_node / L.tp if metric.endswith("_per_node") else 1.0  # replicas in a node
    if scen == "decode":
        B = r.get("batch") or r.get("concurrency") or 1
        ctx = prompt + gen // 2
        t = decode(B, ctx)
        if metric == "e2e_latency_s":
            return prefill(B, prompt) + gen * t
        return {"decode_tokens_per_s_per_user": 1 / t, "itl_ms": 1e3 * t, "tpot_ms": 1e3 * t,
                "output_tokens_per_s": B / t, "output_tokens_per_s_per_node": per_node * B / t}[metric]
    if scen == "prefill":
        if not r.get("input_len"):
            raise TmathError("input_len", None, "the prompt length (the source does not state it)")
        B = r.get("batch") or max(1, r.get("tokens_per_forward", 0) // prompt)
        t = prefill(B, prompt)
        return {"input_tokens_per_s": B * prompt / t, "input_tokens_per_s_per_node": per_node * B * prompt / t,
                "ttft_ms": 1e3 * t}[metric]
    # offline / online at a concurrency: continuous batching of n requests, B at a time, prefill in chunks
    n = r.get("num_prompts") or r.get("concurrency") or r.get("batch") or DEFAULT_PROMPTS
    cap_key = r["id"] + "/capacity"
    cap = cache.get(cap_key) or cache.setdefault(cap_key, _capacity(s, hw, L, w))
    B = max(1, min(n, r.get("concurrency") or n, e.max_num_seqs, cap))
    Bp = max(1, min(B, e.prefill_chunk // prompt))
    t_pre = math.ceil(n / Bp) * prefill(Bp, prompt)
    steps = math.ceil(n / B) * gen
    t_dec = steps * decode(B, prompt + gen // 2)
    total = t_pre + t_dec
    if r.get("lengths") == "varied":  # requests drift apart: a new prompt queues behind about one other step
        ttft = prefill(1, prompt) + total / steps
    else:  # fixed lengths: a wave of B requests starts together; the j-th prompt waits for the j − 1 before it
        ttft = t_pre / math.ceil(n / B) * (B + 1) / (2 * B)
    return {"output_tokens_per_s": n * gen / total, "total_tokens_per_s": n * (prompt + gen) / total,
            "input_tokens_per_s": n * prompt / total, "requests_per_s": n / total,
            "itl_ms": 1e3 * total / steps, "ttft_ms": 1e3 * ttft,
            "decode_tokens_per_s_per_user": steps / total}[metric]


def kind_of(r: Mapping[str, Any]) -> str:
    if "scenario" not in r:
        return "training"
    if r["scenario"] in ("offline", "online") and r["metric"] not in ("itl_ms", "ttft_ms",
                                                                      "decode_tokens_per_s_per_user"):
        return "throughput"
    if r["metric"] == "ttft_ms" or r["scenario"] == "prefill":
        return "prefill"
    return "decode"


def predict(r: Mapping[str, Any], eff: Efficiency | None = None, cache: dict[str, Any] | None = None) -> float:
    """The model's value of a row's metric with efficiency `eff` (default: the row device's shipped profile
    and, for serving, its engine's)."""
    if eff is None:
        hw = _hardware(r)
        eff = efficiency_for(hw, ENGINES.get(r.get("engine", "")) or None) if "scenario" in r else efficiency_for(hw)
    if "scenario" not in r:
        return _train_predict(r, eff)
    return _serve_predict(r, eff, {} if cache is None else cache)


def rows(effs: Callable[[Mapping[str, Any]], Efficiency] | None = None,
         only: Callable[[Mapping[str, Any]], bool] | None = None, cache: dict[str, Any] | None = None) -> list[Row]:
    """Every measurement as a Row; effs(row) gives the efficiency to predict it with (default: shipped profiles)."""
    groups = split()
    cache = {} if cache is None else cache
    out = []
    for r in measurements():
        if only and not only(r):
            continue
        group = r["source_group"]
        kind = kind_of(r)
        base = dict(id=r["id"], group=group, split=groups.get(group, "unassigned"), device=r.get("device", ""),
                    engine=r.get("engine", "") if kind != "training" else "", kind=kind, metric=r["metric"],
                    measured=float(r["value"]), setup=r)
        if r.get("unscored_reason"):
            out.append(Row(**base, predicted=math.nan, scored=False, note=r["unscored_reason"]))
            continue
        try:
            v = predict(r, effs(r) if effs else None, cache)
        except (TmathError, KeyError, ValueError, ZeroDivisionError) as e:
            out.append(Row(**base, predicted=math.nan, scored=False, note=str(e)[:160]))
            continue
        out.append(Row(**base, predicted=v))
    return out


def summary(rows_: list[Row]) -> dict[str, float]:
    errs = [abs(r.error) for r in rows_ if r.scored]
    if not errs:
        return {"rows": 0, "median_abs_error": math.nan, "max_abs_error": math.nan, "within_25pct": 0}
    return {"rows": len(errs), "median_abs_error": statistics.median(errs), "max_abs_error": max(errs),
            "within_25pct": sum(e <= 0.25 for e in errs)}


def coverage(rows_: list[Row], band_of: Callable[[Row], Any]) -> float:
    """Share of scored rows whose measured value lies inside the band of its prediction."""
    scored = [r for r in rows_ if r.scored]
    inside = 0
    for r in scored:
        b = band_of(r)
        inside += b.low <= r.ratio <= b.high
    return inside / len(scored) if scored else math.nan


_LAYOUT = ("tp", "pp", "cp", "vp", "ep", "dp", "micro_batch", "global_batch")  # re-chosen with the scale by the source
TREND_KEYS = {"GPU count": ("gpus", *_LAYOUT), "sequence length": ("seq", *_LAYOUT),
              "context length": ("input_len", "output_len"),
              "batch": ("batch", "concurrency", "num_prompts", "micro_batch", "global_batch")}
_IGNORED = {"id", "value", "notes", "not_stated", "source", "engine_version", "flops_convention", "unscored_reason"}


def trends(rows_: list[Row], what: str) -> tuple[int, int, list[str]]:
    """Pairs of scored rows that differ only in `what` (TREND_KEYS): how many move the same way measured and
    predicted, out of how many; and the ones that do not."""
    keys = TREND_KEYS[what]
    groups: dict[Any, list[Row]] = {}
    for r in rows_:
        if not r.scored:
            continue
        rest = tuple(sorted((k, str(x)) for k, x in r.setup.items() if k not in keys and k not in _IGNORED))
        groups.setdefault((r.metric, rest), []).append(r)
    same = total = 0
    wrong = []
    for members in groups.values():
        members.sort(key=lambda r: tuple(r.setup.get(k) or 0 for k in keys))
        for a, b in zip(members, members[1:], strict=False):
            if tuple(a.setup.get(k) for k in keys) == tuple(b.setup.get(k) for k in keys):
                continue
            dm, dp = b.measured - a.measured, b.predicted - a.predicted
            if abs(dm) < 0.02 * abs(a.measured):  # flat within 2 %: either direction agrees
                same += 1
            elif dm * dp > 0:
                same += 1
            else:
                wrong.append(f"{a.id} → {b.id}: measured {dm:+.3g}, predicted {dp:+.3g}")
            total += 1
    return same, total, wrong
