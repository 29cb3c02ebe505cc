"""`tmath calibrate`: measure this machine's GEMM, copy bandwidth, attention and per-kernel overhead with torch and
write a device JSON (config/hardware.py) whose "efficiency" object replaces its class's fitted profile.

What is measured, and how it becomes the model's constants (analysis/efficiency.py):
  GEMM   (m×k)·(k×n) over m, n, k and dtypes → η_gemm (best large bf16 shape) with gemm_dim_half and
         gemm_rows_half fitted on log error of the model's own time, max(F/(η·F_peak), bytes/BW) + launch_s;
  copy   a tensor ≥ 4× the last-level cache, bytes read + written → BW, η_bw = BW / nominal;
  SDPA   causal bf16 attention over head_dim and sequence length (FLOPs 4·B·h·s²·d_h/2) → η_attention,
         attention_keys_half (mean keys per query = s/2) and attention_head_exponent (d_h 64 vs 128);
  launch mean time of a 1-element in-place add → launch_s;
  NCCL   all-reduce bus bandwidth when several CUDA GPUs are present → η_link.
A known GPU (by name and memory) keeps its shipped preset's nominal peaks, bandwidth, links and class; a CPU or an
unknown GPU takes the measured numbers as its peaks. torch is imported inside functions only.
"""

from __future__ import annotations

import sys
from typing import Any

from transformer_math.checks.calibrate.fit import (
    build_profile,
    fit_attention,
    fit_gemm,
    gemm_factor,
    match_preset,
    slug,
)
from transformer_math.checks.calibrate.measure import DEVICES, Progress, run

__all__ = ["DEVICES", "build_profile", "cli", "fit_attention", "fit_gemm", "gemm_factor", "match_preset", "run",
           "slug", "summary"]



def _bar(stream: Any) -> Progress:
    tty = hasattr(stream, "isatty") and stream.isatty()

    def show(label: str, fraction: float) -> None:
        filled = round(30 * fraction)
        line = f"[{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {label}"
        if tty:
            stream.write("\r" + line[:110].ljust(110) + ("\n" if fraction >= 1 else ""))
        else:
            stream.write(line + "\n")
        stream.flush()

    return show


def summary(profile: dict[str, Any], path: str) -> str:
    m, e = profile["measurements"], profile["efficiency"]
    best = m["best_flop_per_s"]
    lines = [f"{profile['name']}  ({profile['id']})"]
    lines.append("GEMM peak achieved: " + ", ".join(f"{dt} {v / 1e12:.3g} TFLOP/s" for dt, v in best.items()))
    lines.append(f"copy bandwidth:     {m['bandwidth']['bytes_per_s'] / 1e9:.1f} GB/s "
                 f"(η_bw {e['bw']:.2f} of {profile['memory_bandwidth_bytes_per_s'] / 1e9:.0f} GB/s)")
    if m["attention"]:
        top = max(m["attention"], key=lambda x: x["flop_per_s"])
        lines.append(f"attention (SDPA):   {top['flop_per_s'] / 1e12:.3g} TFLOP/s at d_h={top['head_dim']}, "
                     f"s={top['seq']}")
    lines.append(f"launch overhead:    {m['launch_s'] * 1e6:.2f} us per kernel")
    if m["collectives"]:
        c = m["collectives"]
        lines.append(f"all-reduce:         {c['bus_bytes_per_s'] / 1e9:.0f} GB/s bus bandwidth over {c['gpus']} GPUs")
    keys = ("gemm", "gemm_fp8", "gemm_dim_half", "gemm_rows_half", "attention", "attention_keys_half",
            "attention_head_exponent", "bw", "link", "launch_s")
    lines.append("efficiency: " + ", ".join(f"{k}={e[k]:.4g}" for k in keys if k in e))
    for note in profile["notes"]:
        lines.append(f"note: {note}")
    lines.append(f"wrote {path}")
    lines.append(f"use it with: tmath serve MODEL --gpu {path}")
    return "\n".join(lines)


def cli(args: Any) -> int:
    """`tmath calibrate`: run, write the JSON, print the summary."""
    import json

    profile = run(args.device, args.budget, progress=_bar(sys.stderr))
    path = getattr(args, "output", None) or f"calibrated-{slug(profile['name'])}.json"
    from transformer_math.config.hardware import hardware_from_dict

    hardware_from_dict(profile, where=path)  # what is written loads
    with open(path, "w", encoding="utf-8") as f:
        json.dump(profile, f, indent=1)
        f.write("\n")
    print(summary(profile, path))
    return 0
