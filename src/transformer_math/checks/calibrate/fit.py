"""Fitting the model's forms to what `tmath calibrate` measured, and the device JSON built from them
(pure: no torch)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from transformer_math.analysis.efficiency import ENGINE_FIELDS, MID, Efficiency, device_profile
from transformer_math.config.hardware import load_hardware

# Shipped presets by device name (torch.cuda.get_device_name), most specific first.
_PRESETS: tuple[tuple[str, str], ...] = (
    (r"GB200", "gb200"), (r"B200", "b200"), (r"H200", "h200"), (r"H800", "h800"),
    (r"H100.*PCI", "h100-pcie"), (r"H100", "h100-sxm"), (r"A100", "a100"), (r"L40S", "l40s"), (r"\bL4\b", "l4"),
    (r"4090", "rtx-4090"), (r"MI300X", "mi300x"),
)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "device"


def match_preset(name: str, memory_bytes: float) -> str | None:
    """The shipped preset of a device name as torch reports it, or None. H100 needs ~80 GB (an H100 NVL with 94 GB
    or a GH200 is not an H100 SXM/PCIe); A100 splits by memory into 80 GB and 40 GB."""
    gib = memory_bytes / 2**30
    for pattern, preset in _PRESETS:
        if not re.search(pattern, name, re.IGNORECASE):
            continue
        if preset.startswith("h100") and not 70 <= gib <= 86:
            return None
        if preset == "a100":
            return "a100-80gb" if gib > 60 else "a100-40gb"
        return preset
    return None


# ----------------------------------------------------------------------------------------------- the model's forms


def gemm_factor(n: float, k: float, m: float, h: float, r: float) -> float:
    return (n / (n + h)) * (k / (k + h)) * (m / (m + r))


def _gemm_time(row: dict[str, Any], top: float, h: float, r: float, peak: float, bw: float, launch: float) -> float:
    eta = top * gemm_factor(row["n"], row["k"], row["m"], h, r)
    return max(row["flops"] / (eta * peak), row["bytes"] / bw) + launch


def _log_grid(lo: float, hi: float, per_octave: int = 4) -> list[float]:
    steps = round(math.log2(hi / lo) * per_octave)
    return [0.0] + [lo * 2 ** (i / per_octave) for i in range(steps + 1)]


def fit_gemm(rows: Sequence[dict[str, Any]], peak: float, bw: float, launch: float) -> tuple[float, float, float]:
    """(top, dim_half, rows_half) minimizing Σ log²(predicted/measured time) of the GEMM rows, where top is the η
    that reproduces the best-measured (largest FLOP/s) row exactly, clipped to (0, 1]."""
    rows = [x for x in rows if x["seconds"] > 0]
    best = max(rows, key=lambda x: x["flop_per_s"])
    fit: tuple[float, float, float, float] | None = None
    for h in _log_grid(1.0, 8192.0):
        for r in _log_grid(0.25, 8192.0):
            top = _fraction(best["flop_per_s"] / peak / gemm_factor(best["n"], best["k"], best["m"], h, r))
            err = sum(math.log(_gemm_time(x, top, h, r, peak, bw, launch) / x["seconds"]) ** 2 for x in rows)
            if fit is None or err < fit[0] - 1e-12:
                fit = (err, top, h, r)
    assert fit is not None
    return fit[1], fit[2], fit[3]


def fit_attention(rows: Sequence[dict[str, Any]], peak: float) -> tuple[float, float, float | None]:
    """(attention, keys_half, head_exponent or None) from SDPA rows: at d_h = 128 (else the largest measured d_h),
    η(s) = top·(s/2)/(s/2 + half) with top reproducing the longest sequence; the exponent from d_h 64 vs 128 at the
    longest sequence both have."""
    by_d: dict[int, dict[int, float]] = {}
    for x in rows:
        by_d.setdefault(x["head_dim"], {})[x["seq"]] = x["flop_per_s"] / peak
    d_ref = 128 if 128 in by_d else max(by_d)
    table = by_d[d_ref]
    s_long = max(table)
    fit: tuple[float, float, float] | None = None
    halves = _log_grid(1.0, 65536.0) if len(table) > 1 else [0.0]
    for half in halves:
        k_long = s_long / 2
        top = _fraction(table[s_long] / (k_long / (k_long + half)))
        err = sum(math.log(top * (s / 2) / (s / 2 + half) / eta) ** 2 for s, eta in table.items())
        if fit is None or err < fit[0] - 1e-12:
            fit = (err, top, half)
    assert fit is not None
    exponent = None
    if 64 in by_d and 128 in by_d and set(by_d[64]) & set(by_d[128]):
        s = max(set(by_d[64]) & set(by_d[128]))
        exponent = min(2.0, max(0.0, math.log(by_d[64][s] / by_d[128][s]) / math.log(0.5)))
    return fit[1], fit[2], exponent


def _fraction(x: float) -> float:
    return min(1.0, max(1e-4, x))



def build_profile(*, name: str, kind: str, memory_bytes: int, launch_s: float, bandwidth: dict[str, Any],
                  eager_op_s: float | None = None,
                  gemm: list[dict[str, Any]], attention: list[dict[str, Any]], collectives: dict[str, Any] | None,
                  notes: list[str], gpus: int = 1) -> dict[str, Any]:
    """The device JSON from the raw tables (pure: no torch)."""
    best: dict[str, float] = {}
    for x in gemm:
        best[x["dtype"]] = max(best.get(x["dtype"], 0.0), x["flop_per_s"])
    preset = match_preset(name, memory_bytes) if kind == "cuda" else None
    out: dict[str, Any] = {"id": f"calibrated-{slug(name)}", "name": name, "memory_bytes": int(memory_bytes)}
    if preset:
        base = _nominal(out, preset, gpus, notes)
    else:
        base = _measured(out, name, kind, best, bandwidth["bytes_per_s"], collectives, gpus, notes)
    eff = {f.name: getattr(base, f.name) for f in fields(base) if f.name != "name" and f.name not in ENGINE_FIELDS}
    eff.update(_fit_rates(out, gemm, bandwidth, launch_s, eager_op_s, notes))
    eff.update(_fit_attention_fields(attention, _peak_bf16(out["peak_flops_per_s"]), notes))
    if collectives:
        eff["link"] = _fraction(collectives["bus_bytes_per_s"] / out["link_bandwidth_bytes_per_s"]) if preset else 1.0
    notes.append("gemm and attention are long-shape limits: the η that, times the fitted shape factors, reproduces "
                 "the best measured shape")
    out["efficiency"] = {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in eff.items()}
    out["notes"] = notes
    out["measurements"] = {"launch_s": launch_s, "eager_op_s": eager_op_s, "bandwidth": bandwidth, "gemm": gemm,
                           "attention": attention, "collectives": collectives, "best_flop_per_s": best}
    return out


def _peak_bf16(peaks: dict[str, float]) -> float:
    return peaks.get("bf16") or peaks.get("fp16") or max(peaks.values())


def _nominal(out: dict[str, Any], preset: str, gpus: int, notes: list[str]) -> Efficiency:
    """A known GPU keeps its preset's nominal peaks, bandwidth, links and class; returns the class profile."""
    hw = load_hardware(preset)
    notes.append(f"nominal peaks, bandwidth, links and class from the shipped preset {preset} ({hw.name})")
    out.update(memory_bandwidth_bytes_per_s=hw.memory_bandwidth_bytes_per_s, peak_flops_per_s=dict(hw.peak_flops_per_s),
               link_bandwidth_bytes_per_s=hw.link_bandwidth_bytes_per_s,
               nic_bandwidth_bytes_per_s=hw.nic_bandwidth_bytes_per_s, gpus_per_node=max(1, gpus),
               device_class=hw.device_class)
    if hw.tdp_w:
        out["tdp_w"] = hw.tdp_w
    return device_profile(hw.device_class)[0] if hw.device_class else MID


def _measured(out: dict[str, Any], name: str, kind: str, best: dict[str, float], measured_bw: float,
              collectives: dict[str, Any] | None, gpus: int, notes: list[str]) -> Efficiency:
    """A CPU or an unknown GPU takes its measured rates as its peaks."""
    link = collectives["bus_bytes_per_s"] if collectives else measured_bw
    what = "CPU" if kind == "cpu" else f"GPU {name!r} matches no shipped preset;"
    notes.append(f"{what} peaks are the best measured FLOP/s per dtype and bandwidth the measured copy "
                 "bandwidth, so gemm and bw are ≈ 1 and the fitted shape terms carry the rest")
    if not collectives:
        notes.append("link_bandwidth_bytes_per_s is a placeholder (= the memory bandwidth): nothing was measured")
    out.update(memory_bandwidth_bytes_per_s=measured_bw, peak_flops_per_s=dict(best), link_bandwidth_bytes_per_s=link,
               nic_bandwidth_bytes_per_s=min(link, 25e9), gpus_per_node=max(1, gpus),
               device_class="cpu" if kind == "cpu" else "")
    return MID


def _fit_rates(out: dict[str, Any], gemm: list[dict[str, Any]], bandwidth: dict[str, Any], launch_s: float,
               eager_op_s: float | None, notes: list[str]) -> dict[str, float]:
    """GEMM shape terms, FP8 GEMM, streaming and element-wise bandwidth fractions, launch and eager op costs."""
    peaks, nominal_bw = out["peak_flops_per_s"], out["memory_bandwidth_bytes_per_s"]
    # Weights stream through matrix-vector products at their own rate (on a CPU well below a copy's): a one-row
    # product over a weight larger than the caches sets η_bw, which decode and every weight-bound op use
    stream_bw = bandwidth["gemv"]["bytes_per_s"] if bandwidth.get("gemv") else bandwidth["bytes_per_s"]
    top, h, r = fit_gemm([x for x in gemm if x["dtype"] == "bf16"], _peak_bf16(peaks), stream_bw, launch_s)
    eff = {"gemm": top, "gemm_dim_half": h, "gemm_rows_half": r, "bw": _fraction(stream_bw / nominal_bw),
           "launch_s": launch_s}
    if eager_op_s:
        eff["eager_op_s"] = eager_op_s
    if bandwidth.get("elementwise"):
        eff["elementwise_bw"] = min(4.0, bandwidth["elementwise"]["bytes_per_s"] / stream_bw)
        notes.append(f"η_bw from a one-row bf16 product over a cache-busting weight ({stream_bw / 1e9:.1f} GB/s); "
                     f"element-wise kernels reach {eff['elementwise_bw']:.2f} of it (silu·mul)")
    fp8 = [x for x in gemm if x["dtype"] == "fp8"]
    if fp8 and "fp8" in peaks:
        b8 = max(fp8, key=lambda x: x["flop_per_s"])
        eff["gemm_fp8"] = _fraction(b8["flop_per_s"] / peaks["fp8"] / gemm_factor(b8["n"], b8["k"], b8["m"], h, r))
    return eff


def _fit_attention_fields(attention: list[dict[str, Any]], peak: float, notes: list[str]) -> dict[str, float]:
    if not attention:
        notes.append("attention: not measured, the class profile's values kept")
        return {}
    a, half, exponent = fit_attention(attention, peak)
    eff = {"attention": a, "attention_keys_half": half}
    if exponent is not None:
        eff["attention_head_exponent"] = exponent
    if len({x["seq"] for x in attention}) < 2:
        notes.append("attention_keys_half: one sequence length measured, fitted to 0 (flat)")
    return eff
