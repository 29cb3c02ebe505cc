"""The performance commands of tmath (hardware, serve, train, chinchilla, sweep): parse, call, print."""

from __future__ import annotations

import argparse
import json
import sys

from transformer_math.cli import style
from transformer_math.errors import TmathError, check_int
from transformer_math.units import fmt_bytes, json_ready

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _ms(x: float) -> str:
    """A time for people: µs, ms, s, min or h, whichever reads best."""
    for limit, scale, unit in ((1e-3, 1e6, "µs"), (1.0, 1e3, "ms"), (120.0, 1.0, "s"), (7200.0, 1 / 60, "min")):
        if abs(x) < limit:
            return f"{x * scale:.2f} {unit}"
    return f"{x / 3600:.2f} h"


def cmd_hardware(a: argparse.Namespace) -> int:
    from transformer_math.config.hardware import list_hardware, load_hardware

    if a.json:
        json.dump({i: {"name": h.name, "memory_bytes": h.memory_bytes,
                       "memory_bandwidth_bytes_per_s": h.memory_bandwidth_bytes_per_s,
                       "peak_flops_per_s": dict(h.peak_flops_per_s),
                       "link_bandwidth_bytes_per_s": h.link_bandwidth_bytes_per_s,
                       "nic_bandwidth_bytes_per_s": h.nic_bandwidth_bytes_per_s, "gpus_per_node": h.gpus_per_node,
                       "device_class": h.device_class}
                   for i in list_hardware() for h in [load_hardware(i)]}, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'id':10s} {'name':38s} {'bf16 TFLOP/s':>12s} {'fp8':>7s} {'HBM':>9s} {'TB/s':>6s} {'link GB/s':>9s} "
          f"{'profile':9s}")
    for i in list_hardware():
        h = load_hardware(i)
        fp8 = dict(h.peak_flops_per_s).get("fp8")
        print(f"{i:10s} {h.name[:38]:38s} {h.peak('bf16') / 1e12:12.1f} {fp8 / 1e12 if fp8 else 0:7.0f} "
              f"{fmt_bytes(h.memory_bytes, 'si'):>9s} {h.memory_bandwidth_bytes_per_s / 1e12:6.2f} "
              f"{h.link_bandwidth_bytes_per_s / 1e9:9.0f} {h.device_class:9s}")
    print("\nPeaks are dense (no 2:4 sparsity). GB = 10^9 bytes. Sources: presets/hardware/<id>.json; the achieved "
          "fractions: presets/efficiency/<profile>.json (tmath calibrate measures your own)")
    return 0


def _ops_table(ops: list[Any]) -> list[str]:
    lines = [f"    {'layer':22s} {'op':26s} {'×':>4s} {'GFLOP':>10s} {'MB moved':>10s} {'I':>8s} {'bound':>8s} "
             f"{'time':>10s}"]
    for c in ops:
        i = "" if c.intensity is None else f"{c.intensity:8.1f}"
        lines.append(f"    {c.layer[:22]:22s} {c.name[:26]:26s} {c.count:4d} {c.flops / 1e9:10.3f} "
                     f"{c.bytes / 1e6:10.2f} {i:>8s} {c.bound:>8s} {c.time_s * 1e6:8.1f}µs")
    return lines


def _dump(out: dict[str, Any]) -> None:
    json.dump(json_ready(out), sys.stdout, indent=1, allow_nan=False)
    print()


def _not_fit(out: dict[str, Any], memory: dict[str, int]) -> list[str]:
    lines = [f"  does NOT fit: {fmt_bytes(out['memory_per_gpu_bytes'])} per GPU of {fmt_bytes(out['memory_bytes'])} — "
             f"over by {fmt_bytes(out['over_bytes'])}; largest parts: " + ", ".join(
                 f"{k} {fmt_bytes(v)}" for k, v in sorted(memory.items(), key=lambda kv: -kv[1])[:3]),
             "  no throughput, latency, days or cost for a plan that does not fit (exit status 3).",
             "  nearest changes that fit:" if out["suggestions"] else "  no nearby change found that fits."]
    for s in out["suggestions"]:
        vals = "  ".join(f"{k} {_human(k, v)}" for k, v in s.items() if k not in ("change", "command",
                                                                                  "memory_per_gpu_bytes"))
        lines += [f"    {s['change']:40s} {fmt_bytes(s['memory_per_gpu_bytes'])} per GPU  {vals}",
                  f"      {s['command']}"]
    return lines


def _human(key: str, v: Any) -> str:
    if v is None:
        return "–"
    if key.endswith("_s") and "per_s" not in key:
        return _ms(v) if v < 1 else f"{v:.3f} s"
    if key in ("mfu", "hfu", "mfu_palm"):
        return f"{v:.1%}"
    return f"{v:,.0f}" if isinstance(v, float) else str(v)


def _serve_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    return dict(tp=a.tp, dp=a.dp, ep=a.ep, batch=a.batch, prompt=a.prompt, gen=a.gen, weight_dtype=a.weight_dtype,
                kv_dtype=a.kv_dtype, engine=a.engine, block=a.block, draft=a.draft, draft_k=a.draft_k,
                acceptance=a.acceptance, gpu_memory_utilization=a.gpu_memory_utilization,
                act_dtype=getattr(a, "act_dtype", "auto"))


def cmd_serve(a: argparse.Namespace) -> int:
    from transformer_math.analysis.plans import serve

    r = serve(a.model, a.gpu, **_serve_kwargs(a))
    if a.explain:
        print(r.explain(a.explain))
        return 0
    out = r.to_dict()
    if a.plot:
        _serve_plots(a, r)
    if a.json:
        _dump(out)
        return 0 if r.fits else 3
    p, hw = r.plan, r.hardware
    L = p.layout
    print(f"{p.model} on {L.gpus}× {hw.name}  (T_p={L.tp} per replica × D_p={L.dp} replicas"
          + (f", experts over E_p={L.ep}" if L.ep > 1 else "") + f")  B={out['batch']} per replica  "
          f"prompt={out['prompt']} gen={out['gen']}  kv={out['kv_dtype']}")
    print(f"  weights: {out['weight_dtype_meaning']}")
    print(f"  fits: {style.fits(r.fits)}   memory per GPU {fmt_bytes(out['memory_per_gpu_bytes'])} of "
          f"{fmt_bytes(hw.memory_bytes)}  (" + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in out["memory"].items()) + ")")
    print(f"  max batch at this context: {out['max_batch']}   max context at this batch: {out['max_context']:,}   "
          f"φ_cache = {out['phi_cache']:.3f}")
    if not r.fits:
        print("\n".join(_not_fit(out, out["memory"])))
        return 3
    print(f"  efficiency: {out['profile']} profile, {out['engine']} engine; bands: 10th–90th percentile of "
          "measured/predicted on the calibration runs (benchmarks/validate_published.py)")
    lo, mid, hi = out["band"]["ttft_s"]
    print(f"  TTFT (prefill of all {out['batch']} prompts): {_ms(mid)}  (band {_ms(hi)} – {_ms(lo)})")
    lo, mid, hi = out["band"]["tpot_s"]
    print(f"  TPOT (one decode step): {_ms(mid)}  (band {_ms(hi)} – {_ms(lo)})")
    lo, mid, hi = out["band"]["tokens_per_s"]
    print(f"  decode throughput ({L.dp} replica(s)): {mid:,.0f} tokens/s  (band {lo:,.0f} – {hi:,.0f})")
    print(f"  decode turns compute bound at batch ≈ {out['compute_bound_batch'] or '> 65536'}")
    print("  continuous batching (B, TPOT, tokens/s): " + ", ".join(
        f"{c['batch']}: {_ms(c['tpot_s'])} {c['tokens_per_s']:,.0f}" for c in out["batch_curve"][:12]))
    print("\n  decode step per op (one GPU):")
    print("\n".join(_ops_table(p.decode_ops)))
    print("\n  notes: " + "; ".join(out["notes"]) + "; GiB = 2^30 bytes")
    print("  every number explains itself: tmath serve … --explain serve.tpot (or memory.kv_cache, serve.max_batch, …)")
    return 0


def _serve_plots(a: argparse.Namespace, r: Any) -> None:
    from transformer_math.analysis.plans import serve
    from transformer_math.cli import plots

    p, hw = r.plan, r.hardware
    for ext in ("png", "svg"):
        plots.roofline(p.decode_ops, hw, f"{a.plot}_roofline_decode.{ext}", title=f"{p.model} decode, B={a.batch}")
        plots.roofline(p.prefill_ops, hw, f"{a.plot}_roofline_prefill.{ext}", title=f"{p.model} prefill")
    ctx = [2**i for i in range(8, 18) if 2**i <= max(r.plan.quantities["serve.max_context"].inputs["L_max"], 256)]
    plans = [serve(a.model, a.gpu, **{**_serve_kwargs(a), "prompt": c, "gen": 1}, suggest=False).plan for c in ctx]
    plots.curves(ctx, {"memory per GPU [GB]": [q["memory.per_gpu"] / 1e9 for q in plans],
                       "TPOT [ms]": [q["serve.tpot"] * 1e3 for q in plans],
                       "TTFT [s]": [q["serve.ttft"] for q in plans]},
                 f"{a.plot}_context.png", xlabel="context L [tokens]", ylabel="GB / ms / s",
                 title=f"{p.model} on {hw.name}, B={a.batch}")
    plots.curves([c[0] for c in p.batch_curve], {"tokens/s": [c[2] for c in p.batch_curve],
                                                "TPOT [ms]": [c[1] * 1e3 for c in p.batch_curve],
                                                "memory per GPU [GB]": [c[3] / 1e9 for c in p.batch_curve]},
                 f"{a.plot}_batch.png", xlabel="batch B", ylabel="tokens/s | ms | GB", title="continuous batching")


def _train_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    return dict(global_batch=a.global_batch, seq=a.seq, precision=a.precision, optimizer=a.optimizer,
                finetune=a.finetune, lora_rank=a.lora_rank, lora_targets=a.lora_targets,
                flash_attention=a.flash_attention, tokens=a.tokens, price=a.price)


def cmd_train(a: argparse.Namespace) -> int:
    from transformer_math.analysis.plans import search, train

    if a.search:
        if a.gpus is None:
            raise TmathError("gpus", None, "the number of GPUs to search layouts of (--gpus)")
        return _print_search(a, search(a.model, a.gpu, gpus=a.gpus, top=a.top, **_train_kwargs(a)))
    r = train(a.model, a.gpu, gpus=a.gpus, tp=a.tp, pp=a.pp, dp=a.dp, cp=a.cp, ep=a.ep, micro_batch=a.micro_batch,
              recompute=a.recompute, zero=a.zero, sequence_parallel=a.sequence_parallel, interleave=a.interleave,
              schedule=a.schedule, **_train_kwargs(a))
    if a.explain:
        print(r.explain(a.explain))
        return 0
    out = r.to_dict()
    if a.json:
        _dump(out)
        return 0 if r.fits else 3
    lay, m = out["layout"], out["memory"]
    print(f"{out['model']} on {out['gpus']}× {out['gpu']}  TP={lay['tp']} PP={lay['pp']} DP={lay['dp']} CP={lay['cp']} "
          f"EP={lay['ep']}  b={lay['micro_batch']} m={out['micro_batches']:g} recompute={lay['recompute']} "
          f"ZeRO-{lay['zero']} SP={'on' if lay['sequence_parallel'] else 'off'} {lay['schedule']}"
          + (f" v={lay['interleave']}" if lay["interleave"] > 1 else "")
          + f"  {out['precision']} {out['optimizer']} {out['finetune']}")
    print(f"  fits: {style.fits(out['fits'])}   memory per GPU {fmt_bytes(out['memory_per_gpu_bytes'])} of "
          f"{fmt_bytes(out['memory_bytes'])} (stage {out['memory_stage']}): "
          + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in m.items()))
    print(f"  trainable parameters: {out['trainable_params']:,}")
    if not out["fits"]:
        print("\n".join(_not_fit(out, m)))
        return 3
    t, ts = out["time_per_microbatch"], out["time_per_step"]
    print(f"  step {out['step_time_s']:.3f} s = " + " + ".join(f"{k} {v:.3f}" for k, v in ts.items()) + " s")
    print(f"  per micro-batch (stage {out['time_stage']}): " + ", ".join(f"{k} {_ms(v)}" for k, v in t.items() if v))
    palm = f"   MFU (PaLM) {out['mfu_palm']:.1%}" if out["mfu_palm"] is not None else ""
    print(f"  {out['tokens_per_s']:,.0f} tokens/s   {out['tflops_per_gpu']:.1f} TFLOP/s per GPU   "
          f"MFU {out['mfu']:.1%}   HFU {out['hfu']:.1%}{palm}")
    lo, _, hi = out["band"]["tokens_per_s"]
    print(f"  band {lo:,.0f} – {hi:,.0f} tokens/s ({out['profile']} profile: 10th–90th percentile of "
          "measured/predicted on the calibration runs)")
    if out["days"] is not None:
        print(f"  {out['tokens']:.3g} tokens: {out['days']:.1f} days, {out['days'] * 24 * out['gpus']:,.0f} GPU-hours, "
              f"${out['cost_usd']:,.0f} at ${out['price']}/GPU-hour")
    print(f"  convention: {out['mfu_convention']}")
    print("  every number explains itself: tmath train … --explain train.mfu (or train.step_time, memory.activations, "
          "…)")
    return 0


def _print_search(a: argparse.Namespace, r: Any) -> int:
    out = r.to_dict()
    if a.json:
        _dump(out)
        return 0
    print(f"{out['layouts_evaluated']:,} layouts evaluated in {out['seconds'] * 1e3:.0f} ms; the fastest that fit:")
    cost = bool(a.tokens)
    head = (f"  {'#':>2s} {'TP':>3s} {'PP':>3s} {'DP':>5s} {'CP':>3s} {'EP':>3s} {'b':>2s} {'v':>2s} {'recompute':9s} "
            f"{'ZeRO':>4s} {'SP':>3s} {'memory':>9s} {'step':>8s} {'MFU':>6s} {'tokens/s':>11s}"
            + (f" {'days':>7s} {'cost':>12s}" if cost else ""))
    print(head)
    for i, row in enumerate(out["best"], 1):
        L = row["layout"]
        line = (f"  {i:>2d} {L['tp']:>3d} {L['pp']:>3d} {L['dp']:>5d} {L['cp']:>3d} {L['ep']:>3d} "
                f"{L['micro_batch']:>2d} {L['interleave']:>2d} {L['recompute']:9s} {L['zero']:>4d} "
                f"{'on' if L['sequence_parallel'] else 'off':>3s} {fmt_bytes(row['memory_per_gpu_bytes']):>9s} "
                f"{row['step_time_s']:>7.3f}s {row['mfu']:>6.1%} {row['tokens_per_s']:>11,.0f}")
        if cost:
            line += f" {row['days']:>7.1f} ${row['cost_usd']:>11,.0f}"
        print(line)
    if not out["best"]:
        print("  no layout fits: more GPUs, a smaller global batch or shorter sequences")
    print("\n  re-run a row (its --json gives the same step time):")
    for i, row in enumerate(out["best"], 1):
        print(f"  {i:>2d} {row['command']}")
    return 0


def cmd_chinchilla(a: argparse.Namespace) -> int:
    from transformer_math.analysis.plans import chinchilla

    r = chinchilla(a.flops, gpu=a.gpu, mfu=a.mfu, price=a.price)
    out = r.to_dict()
    if a.json:
        _dump(out)
        return 0
    print(f"C = {a.flops:.3g} FLOPs (C = 6·N·D)")
    print(f"  Approach 3 fit (Hoffmann et al. 2022): N_opt = {out['n_opt']:.3g} parameters, D_opt = {out['d_opt']:.3g} "
          f"tokens ({out['tokens_per_param']:.1f} tokens/parameter), predicted loss {out['loss']:.3f}")
    print(f"  20 tokens/parameter rule: N = {out['rule_of_thumb']['n']:.3g}, D = {out['rule_of_thumb']['d']:.3g}")
    print(f"  cost on {out['gpu']} at MFU {a.mfu:.0%}: {out['gpu_hours']:,.0f} GPU-hours, ${out['cost_usd']:,.0f} at "
          f"${a.price}/GPU-hour")
    print("\n" + r.explain("chinchilla.cost"))
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    import csv
    import os

    from transformer_math.analysis.sweep import MAX_POINTS, grid
    from transformer_math.config import load_model
    from transformer_math.units import parse_count, parse_dtype

    def ints(text: str, name: str) -> list[int]:
        vals = [int(parse_count(v, field=name)) for v in text.split(",") if v.strip()]
        for v in vals:
            check_int(name, v, low=1, high=10**9)
        if not vals:
            raise TmathError(name, text, "at least one integer, comma-separated")
        return vals

    s = load_model(a.model)
    B, L, TP = ints(a.batch, "batch"), ints(a.context, "context"), ints(a.tp, "tp")
    kv = [parse_dtype(d, field="kv-dtype") for d in a.kv_dtype.split(",")]
    n = len(B) * len(L) * len(kv) * len(TP)
    if n > MAX_POINTS:
        raise TmathError("grid", n, f"at most {MAX_POINTS} points")
    g = grid(s, batch=B, context=L, kv=kv, tp=TP)
    os.makedirs(os.path.dirname(os.path.abspath(a.csv)), exist_ok=True)  # as --plot does
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["batch", "context", "kv_dtype", "tp", "kv_cache_bytes", "prefill_flops", "memory_per_gpu_bytes"])
        for i, b in enumerate(B):
            for j, l in enumerate(L):
                for k, d in enumerate(kv):
                    for t, tp in enumerate(TP):
                        w.writerow([b, l, d.name, tp, int(g["kv_cache_bytes"][i, j, k, 0]),
                                    int(g["prefill_flops"][i, j, k, 0]), int(g["memory_per_gpu_bytes"][i, j, k, t])])
    if a.plot:
        from transformer_math.cli import plots

        plots.curves(L, {f"B={b}": [g["kv_cache_bytes"][i, j, 0, 0] / 2**30 for j in range(len(L))]
                         for i, b in enumerate(B)}, a.plot, xlabel="context L [tokens]",
                     ylabel=f"KV cache [GiB, {kv[0].name}]", title=f"{s.name}: KV cache")
    print(f"wrote {n} points to {a.csv}" + (f" and {a.plot}" if a.plot else ""))
    return 0


def run(a: argparse.Namespace) -> int:
    if a.command == "hardware":
        return cmd_hardware(a)
    return {"serve": cmd_serve, "train": cmd_train, "chinchilla": cmd_chinchilla, "sweep": cmd_sweep}[a.command](a)
