"""The performance commands of tmath (hardware, serve, train, chinchilla, sweep): parse, call, print."""

from __future__ import annotations

import argparse
import json
import sys

from transformer_math.errors import TmathError
from transformer_math.units import fmt_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _positive(name: str, v: int, high: int = 10**7) -> int:
    if not 1 <= v <= high:
        raise TmathError(name, v, f"an integer from 1 to {high}")
    return v


def _ms(x: float) -> str:
    return f"{x * 1e3:.2f} ms"


def cmd_hardware(a: argparse.Namespace) -> int:
    from transformer_math.config.hardware import list_hardware, load_hardware

    if a.json:
        json.dump({i: {"name": h.name, "memory_bytes": h.memory_bytes,
                       "memory_bandwidth_bytes_per_s": h.memory_bandwidth_bytes_per_s,
                       "peak_flops_per_s": dict(h.peak_flops_per_s),
                       "link_bandwidth_bytes_per_s": h.link_bandwidth_bytes_per_s,
                       "nic_bandwidth_bytes_per_s": h.nic_bandwidth_bytes_per_s, "gpus_per_node": h.gpus_per_node}
                   for i in list_hardware() for h in [load_hardware(i)]}, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'id':10s} {'name':38s} {'bf16 TFLOP/s':>12s} {'fp8':>7s} {'HBM':>9s} {'TB/s':>6s} {'link GB/s':>9s}")
    for i in list_hardware():
        h = load_hardware(i)
        fp8 = dict(h.peak_flops_per_s).get("fp8")
        print(f"{i:10s} {h.name[:38]:38s} {h.peak('bf16') / 1e12:12.1f} {fp8 / 1e12 if fp8 else 0:7.0f} "
              f"{fmt_bytes(h.memory_bytes, 'si'):>9s} {h.memory_bandwidth_bytes_per_s / 1e12:6.2f} "
              f"{h.link_bandwidth_bytes_per_s / 1e9:9.0f}")
    print("\nPeaks are dense (no 2:4 sparsity). GB = 10^9 bytes. Sources: presets/hardware/<id>.json")
    return 0


def _ops_table(ops: list[Any]) -> list[str]:
    lines = [f"    {'layer':22s} {'op':26s} {'×':>4s} {'GFLOP':>10s} {'MB moved':>10s} {'I':>8s} {'bound':>8s} "
             f"{'time':>10s}"]
    for c in ops:
        lines.append(f"    {c.layer[:22]:22s} {c.name[:26]:26s} {c.count:4d} {c.flops / 1e9:10.3f} {c.bytes / 1e6:10.2f} "
                     f"{c.intensity:8.1f} {c.bound:>8s} {c.time_s * 1e6:8.1f}µs")
    return lines


def serve_data(a: argparse.Namespace) -> tuple[dict[str, Any], Any, Any, Any, Any, Any]:
    """The serving plan as the dict `tmath serve --json` prints (and the web API returns), plus its inputs."""
    from transformer_math.analysis.report import parse_weight_dtypes
    from transformer_math.analysis.serving import Speculative, plan_serving
    from transformer_math.config import load_model
    from transformer_math.config.hardware import load_hardware
    from transformer_math.units import parse_dtype

    s, hw = load_model(a.model), load_hardware(a.gpu)
    for k in ("tp", "ep", "batch", "prompt", "gen", "block"):
        _positive(k, getattr(a, k), 10**6 if k in ("prompt", "gen") else 4096)
    if not 0 <= a.acceptance < 1:
        raise TmathError("acceptance", a.acceptance, "a probability in [0, 1)")
    spec = Speculative(draft=load_model(a.draft), k=_positive("draft-k", a.draft_k, 64),
                       acceptance=a.acceptance) if a.draft else None
    wd, kv = parse_weight_dtypes(a.weight_dtype, s), parse_dtype(a.kv_dtype, field="kv_dtype")
    p = plan_serving(s, hw, batch=a.batch, prompt=a.prompt, gen=a.gen, tp=a.tp, ep=a.ep, wd=wd, kv=kv, block=a.block,
                     speculative=spec)
    weights, kvb = p.memory["weights"], p.memory["kv_cache"]
    per_seq = kvb / a.batch
    explain = {
        "memory_per_gpu_bytes": f"M = M_param/T_p + M_KV + M_act + reserve = " + " + ".join(
            f"{v:,}" for v in p.memory.values()) + f" = {p.memory_per_gpu_bytes:,} bytes",
        "max_batch": f"⌊(HBM − M + M_KV) / M_KV,seq⌋ = ⌊({hw.memory_bytes:,} − {p.memory_per_gpu_bytes - kvb:,}) / "
                     f"{per_seq:,.0f}⌋ = {p.max_batch}",
        "phi_cache": f"φ_cache = M_KV / HBM = {kvb:,} / {hw.memory_bytes:,} = {p.phi_cache:.3f}",
        "ttft_s": f"TTFT = Σ_prefill ops max(F/(η_c·F_peak), bytes/(η_bw·BW_HBM)) + t_launch + t_comm = {p.ttft_s[1]:.4f} s",
        "tpot_s": f"TPOT = Σ_decode ops (same) at L = prompt + gen/2 = {p.tpot_s[1]:.5f} s"
                  + (f", ÷ E[tokens/step] = {spec.tokens_per_step:.2f} (speculative)" if spec else ""),
        "tokens_per_s": f"B / TPOT = {a.batch} / {p.tpot_s[1]:.5f} = {p.tokens_per_s[1]:.1f}",
    }
    out = {"fits": p.fits, "memory_per_gpu_bytes": p.memory_per_gpu_bytes, "ttft_s": p.ttft_s[1],
           "tpot_s": p.tpot_s[1], "tokens_per_s": p.tokens_per_s[1], "max_batch": p.max_batch,
           "max_context": p.max_context, "phi_cache": p.phi_cache, "memory": p.memory,
           "band": {"ttft_s": p.ttft_s, "tpot_s": p.tpot_s, "tokens_per_s": p.tokens_per_s},
           "compute_bound_batch": p.compute_bound_batch,
           "batch_curve": [{"batch": b, "tpot_s": t, "tokens_per_s": r, "memory_per_gpu_bytes": m}
                           for b, t, r, m in p.batch_curve],
           "decode_ops": [{"layer": c.layer, "op": c.name, "count": c.count, "flops": c.flops, "bytes": c.bytes,
                           "intensity": c.intensity, "bound": c.bound, "time_s": c.time_s} for c in p.decode_ops],
           "explain": explain, "notes": list(p.notes), "gpu": hw.id, "model": s.name}
    return out, s, hw, p, wd, kv


def cmd_serve(a: argparse.Namespace) -> int:
    out, s, hw, p, wd, kv = serve_data(a)
    explain = out["explain"]
    if a.plot:
        _serve_plots(a, s, hw, p, wd, kv)
    if a.json:
        json.dump(out, sys.stdout, indent=1, default=float)
        print()
        return 0
    print(f"{s.name} on {a.tp}× {hw.name}  B={a.batch} prompt={a.prompt} gen={a.gen} kv={kv.name}")
    print(f"  fits: {'yes' if p.fits else 'NO'}   memory per GPU {fmt_bytes(p.memory_per_gpu_bytes)} of "
          f"{fmt_bytes(hw.memory_bytes)}  (" + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in p.memory.items()) + ")")
    print(f"  max batch at this context: {p.max_batch}   max context at this batch: {p.max_context:,}   "
          f"φ_cache = {p.phi_cache:.3f}")
    for k, label in (("ttft_s", "TTFT"), ("tpot_s", "TPOT")):
        lo, mid, hi = getattr(p, k)
        print(f"  {label}: {_ms(mid)}  (band {_ms(hi)} – {_ms(lo)})")
    lo, mid, hi = p.tokens_per_s
    print(f"  decode throughput: {mid:,.0f} tokens/s  (band {lo:,.0f} – {hi:,.0f})")
    print(f"  decode turns compute bound at batch ≈ {p.compute_bound_batch or '> 65536'}")
    print("  continuous batching (B, TPOT, tokens/s): " + ", ".join(f"{b}: {_ms(t)} {r:,.0f}" for b, t, r, _ in
                                                                    p.batch_curve[:12]))
    print("\n  decode step per op (one GPU):")
    print("\n".join(_ops_table(p.decode_ops)))
    print("\n  " + "\n  ".join(f"{k}: {v}" for k, v in explain.items()))
    print("  notes: " + "; ".join(p.notes) + "; GiB = 2^30 bytes")
    return 0


def _serve_plots(a: argparse.Namespace, s: Any, hw: Any, p: Any, wd: Any, kv: Any) -> None:
    from transformer_math import plots
    from transformer_math.analysis.serving import plan_serving

    for ext in ("png", "svg"):
        plots.roofline(p.decode_ops, hw, f"{a.plot}_roofline_decode.{ext}", title=f"{s.name} decode, B={a.batch}")
        plots.roofline(p.prefill_ops, hw, f"{a.plot}_roofline_prefill.{ext}", title=f"{s.name} prefill")
    ctx = [2**i for i in range(8, 18) if 2**i <= max(s.max_context, 256)]
    plans = [plan_serving(s, hw, batch=a.batch, prompt=c, gen=1, tp=a.tp, ep=a.ep, wd=wd, kv=kv) for c in ctx]
    plots.curves(ctx, {"memory per GPU [GB]": [q.memory_per_gpu_bytes / 1e9 for q in plans],
                       "TPOT [ms]": [q.tpot_s[1] * 1e3 for q in plans], "TTFT [s]": [q.ttft_s[1] for q in plans]},
                 f"{a.plot}_context.png", xlabel="context L [tokens]", ylabel="GB / ms / s",
                 title=f"{s.name} on {hw.name}, B={a.batch}")
    plots.curves([c[0] for c in p.batch_curve], {"tokens/s": [c[2] for c in p.batch_curve],
                                                "TPOT [ms]": [c[1] * 1e3 for c in p.batch_curve],
                                                "memory per GPU [GB]": [c[3] / 1e9 for c in p.batch_curve]},
                 f"{a.plot}_batch.png", xlabel="batch B", ylabel="tokens/s | ms | GB", title="continuous batching")


def train_data(a: argparse.Namespace) -> dict[str, Any]:
    """The training plan (or, with a.search, the ranked layouts) as `tmath train --json` prints it."""
    from transformer_math.analysis.training import Finetune, Layout, plan_training, search_layouts
    from transformer_math.config import load_model
    from transformer_math.config.hardware import load_hardware

    s, hw = load_model(a.model), load_hardware(a.gpu)
    gpus = _positive("gpus", a.gpus, 10**6)
    for k in ("global_batch", "seq", "micro_batch", "tp", "pp", "cp", "ep", "interleave", "lora_rank"):
        _positive(k.replace("_", "-"), getattr(a, k), 10**8)
    ft = Finetune(mode=a.finetune, rank=a.lora_rank, targets=tuple(t for t in a.lora_targets.split(",") if t))
    kw = dict(global_batch=a.global_batch, seq=a.seq, precision=a.precision, optimizer=a.optimizer, finetune=ft)
    if a.search:
        best, n, dt = search_layouts(s, hw, gpus=gpus, **kw)
        rows = [{"layout": {k: getattr(l, k) for k in ("tp", "pp", "dp", "cp", "ep", "micro_batch", "recompute",
                                                        "zero")}, **r} for l, r in best]
        return {"layouts_evaluated": n, "seconds": dt, "layouts_per_s": n / dt, "best": rows}
    dp = a.dp or gpus // (a.tp * a.pp * a.cp)
    if a.tp * a.pp * a.cp * dp != gpus:
        raise TmathError("gpus", gpus, f"= T_p·P_p·C_p·D_p = {a.tp}·{a.pp}·{a.cp}·{dp} = {a.tp * a.pp * a.cp * dp}")
    lay = Layout(tp=a.tp, pp=a.pp, dp=dp, cp=a.cp, ep=a.ep, micro_batch=a.micro_batch, recompute=a.recompute,
                 zero=a.zero, sequence_parallel=a.sequence_parallel, interleave=a.interleave)
    r = plan_training(s, hw, lay, **kw)
    days = a.tokens / r.tokens_per_s / 86400 if a.tokens else 0.0
    cost = days * 24 * gpus * a.price
    P = r.model_flops_per_step / r.tokens_per_step
    explain = {
        "mfu": f"MFU = (6·N + 12·N_L·h_q·d_h·s)·tokens / (t_step·n_GPU·F_peak) = {P:,.0f}·{r.tokens_per_step:,} / "
               f"({r.step_time_s:.3f}·{gpus}·{hw.peak('bf16'):.4g}) = {r.mfu:.3f}  (PaLM App. B; recompute not counted)",
        "hfu": f"HFU counts recompute: {r.hardware_flops_per_step:.4g} FLOPs / step → {r.hfu:.3f}",
        "step_time_s": "t_step = m·(t_mb + t_TP + t_CP + t_EP) + bubble + t_p2p + exposed DP + t_opt = " + " + ".join(
            f"{v:.4f}" for v in r.time.values()) + f" = {r.step_time_s:.4f} s",
        "bubble": f"(P_p − 1)/v · t_mb = ({lay.pp} − 1)/{lay.interleave} micro-batch times; fraction "
                  f"(P_p − 1)/(v·m) = {(lay.pp - 1) / (lay.interleave * r.micro_batches):.3f}",
        "days": f"T_train / tokens_per_s / 86400 = {a.tokens:.4g} / {r.tokens_per_s:,.0f} / 86400 = {days:.2f}",
        "cost": f"days·24·n_GPU·price = {days:.2f}·24·{gpus}·{a.price} = ${cost:,.0f}",
    }
    out = {"fits": r.fits, "memory_per_gpu_bytes": r.memory_per_gpu_bytes, "step_time_s": r.step_time_s,
           "tflops_per_gpu": r.tflops_per_gpu, "mfu": r.mfu, "hfu": r.hfu, "days": days, "cost_usd": cost,
           "tokens_per_s": r.tokens_per_s, "memory": r.memory, "time": r.time, "micro_batches": r.micro_batches,
           "trainable_params": r.trainable_params, "layout": {k: getattr(lay, k) for k in (
               "tp", "pp", "dp", "cp", "ep", "micro_batch", "recompute", "zero", "sequence_parallel", "interleave")},
           "explain": explain, "model": s.name, "gpu": hw.id, "gpus": gpus, "tokens": a.tokens, "price": a.price,
           "precision": a.precision, "optimizer": a.optimizer, "finetune": a.finetune}
    return out


def cmd_train(a: argparse.Namespace) -> int:
    out = train_data(a)
    if a.json:
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    if a.search:
        print(f"{out['layouts_evaluated']:,} layouts evaluated in {out['seconds'] * 1e3:.1f} ms "
              f"({out['layouts_per_s']:,.0f} layouts/s); fastest that fit:")
        for r in out["best"]:
            print(f"  {r['layout']}  step {r['step_time_s']:.3f} s  MFU {r['mfu']:.1%}  "
                  f"memory {fmt_bytes(r['memory_per_gpu_bytes'])}")
        return 0
    lay, m, t, explain = out["layout"], out["memory"], out["time"], out["explain"]
    print(f"{out['model']} on {out['gpus']}× {out['gpu']}  TP={lay['tp']} PP={lay['pp']} DP={lay['dp']} CP={lay['cp']} "
          f"EP={lay['ep']}  b={lay['micro_batch']} m={out['micro_batches']} recompute={lay['recompute']} "
          f"ZeRO-{lay['zero']} {out['precision']} {out['optimizer']} {out['finetune']}")
    print(f"  fits: {'yes' if out['fits'] else 'NO'}   memory per GPU {fmt_bytes(out['memory_per_gpu_bytes'])}: "
          + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in m.items()))
    print(f"  trainable parameters: {out['trainable_params']:,}")
    print(f"  step {out['step_time_s']:.3f} s: " + ", ".join(f"{k} {v:.3f}" for k, v in t.items() if v))
    print(f"  {out['tokens_per_s']:,.0f} tokens/s   {out['tflops_per_gpu']:.1f} TFLOP/s per GPU   MFU {out['mfu']:.1%}   "
          f"HFU {out['hfu']:.1%}")
    if out["tokens"]:
        days = out["days"]
        print(f"  {out['tokens']:.3g} tokens: {days:.1f} days, {days * 24 * out['gpus']:,.0f} GPU-hours, "
              f"${out['cost_usd']:,.0f} at ${out['price']}/GPU-hour")
    print("\n  " + "\n  ".join(f"{k}: {v}" for k, v in explain.items()))
    return 0


def cmd_chinchilla(a: argparse.Namespace) -> int:
    from transformer_math.formulas.scaling import CHINCHILLA, chinchilla_loss, n_opt

    C = a.flops
    if not 1e10 <= C <= 1e32:
        raise TmathError("flops", C, "a compute budget between 1e10 and 1e32 FLOPs")
    c = CHINCHILLA
    N = n_opt(C=C, α=c["alpha"], β=c["beta"], A=c["A"], B=c["B"])
    D = C / (6 * N)
    N20 = (C / 120) ** 0.5
    from transformer_math.config.hardware import load_hardware

    hw = load_hardware(a.gpu)
    if not 0 < a.mfu <= 1:
        raise TmathError("mfu", a.mfu, "a fraction in (0, 1]")
    gpu_hours = C / (a.mfu * hw.peak("bf16")) / 3600
    out = {"flops": C, "n_opt": N, "d_opt": D, "tokens_per_param": D / N, "gpu_hours": gpu_hours,
           "cost_usd": gpu_hours * a.price,
           "cost_formula": f"C / (MFU·F_peak) / 3600 · price = {C:.3g} / ({a.mfu}·{hw.peak('bf16'):.3g}) / 3600 · "
                           f"{a.price} = ${gpu_hours * a.price:,.0f}",
           "loss": chinchilla_loss(N=N, D=D, E=c["E"], A=c["A"], B=c["B"], α=c["alpha"], β=c["beta"]),
           "rule_of_thumb": {"n": N20, "d": 20 * N20, "note": "D ≈ 20·N with C = 6·N·D (Approach 1/2)"}}
    if a.json:
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    print(f"C = {C:.3g} FLOPs (C = 6·N·D)")
    print(f"  Approach 3 fit (Hoffmann et al. 2022): N_opt = {N:.3g} parameters, D_opt = {D:.3g} tokens "
          f"({D / N:.1f} tokens/parameter), predicted loss {out['loss']:.3f}")
    print(f"  20 tokens/parameter rule: N = {N20:.3g}, D = {20 * N20:.3g}")
    print(f"  cost on {hw.name} at MFU {a.mfu:.0%}: {gpu_hours:,.0f} GPU-hours; {out['cost_formula']}")
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    import csv

    from transformer_math.analysis.sweep import MAX_POINTS, grid
    from transformer_math.config import load_model
    from transformer_math.units import parse_dtype

    def ints(text: str, name: str) -> list[int]:
        try:
            vals = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise TmathError(name, text, "comma-separated integers") from None
        for v in vals:
            _positive(name, v, 10**9)
        return vals

    s = load_model(a.model)
    B, L, TP = ints(a.batch, "batch"), ints(a.context, "context"), ints(a.tp, "tp")
    kv = [parse_dtype(d, field="kv-dtype") for d in a.kv_dtype.split(",")]
    n = len(B) * len(L) * len(kv) * len(TP)
    if n > MAX_POINTS:
        raise TmathError("grid", n, f"at most {MAX_POINTS} points")
    g = grid(s, batch=B, context=L, kv=kv, tp=TP)
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
        from transformer_math import plots

        plots.curves(L, {f"B={b}": [g["kv_cache_bytes"][i, j, 0, 0] / 2**30 for j in range(len(L))]
                         for i, b in enumerate(B)}, a.plot, xlabel="context L [tokens]",
                     ylabel=f"KV cache [GiB, {kv[0].name}]", title=f"{s.name}: KV cache")
    print(f"wrote {n} points to {a.csv}" + (f" and {a.plot}" if a.plot else ""))
    return 0


def run(a: argparse.Namespace) -> int:
    if a.command == "hardware":
        return cmd_hardware(a)
    return {"serve": cmd_serve, "train": cmd_train, "chinchilla": cmd_chinchilla, "sweep": cmd_sweep}[a.command](a)
