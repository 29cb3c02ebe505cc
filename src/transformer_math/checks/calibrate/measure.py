"""Timing GEMMs, copies, attention, kernel launches and all-reduce on the local device with torch
(imported inside the functions only)."""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from transformer_math.checks.calibrate.collectives import measure_collectives
from transformer_math.checks.calibrate.fit import build_profile
from transformer_math.errors import TmathError, check_number

DEVICES = ("auto", "cpu", "cuda")
MIN_BUDGET_S, MAX_BUDGET_S = 1.0, 86400.0
# Share of the budget each phase may take (what one phase leaves unused goes to the later ones).
PHASES = {"launch": 0.03, "bandwidth": 0.08, "gemm": 0.55, "attention": 0.26, "collectives": 0.08}
RESERVE = 0.04  # of the budget, kept for fitting and writing
Progress = Callable[[str, float], None]




class Clock:
    def __init__(self, budget_s: float, progress: Progress | None) -> None:
        self.t0 = time.perf_counter()
        self.budget = budget_s
        self.end = self.t0 + budget_s * (1 - RESERVE)
        self.progress = progress
        self.phase_end = self.end

    def now(self) -> float:
        return time.perf_counter()

    def left(self) -> float:
        return min(self.phase_end, self.end) - self.now()

    def start_phase(self, name: str, phases: Sequence[str]) -> None:
        """This phase may use its share of what is left, in proportion to the phases still to come."""
        rest = sum(PHASES[p] for p in phases[phases.index(name):])
        self.phase_end = self.now() + max(0.0, self.end - self.now()) * PHASES[name] / rest

    def step(self, label: str) -> None:
        if self.progress is not None:
            self.progress(label, min(0.99, (self.now() - self.t0) / self.budget))


class _Device:
    """Timing on one device: CUDA events (after a synchronize) or perf_counter on CPU."""

    def __init__(self, torch: Any, kind: str) -> None:
        self.torch, self.kind = torch, kind
        self.dev = torch.device("cuda", 0) if kind == "cuda" else torch.device("cpu")

    def sync(self) -> None:
        if self.kind == "cuda":
            self.torch.cuda.synchronize()

    def _loop(self, fn: Callable[[], object], reps: int) -> float:
        if self.kind == "cuda":
            a, b = self.torch.cuda.Event(enable_timing=True), self.torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(reps):
                fn()
            b.record()
            b.synchronize()
            return float(a.elapsed_time(b)) / 1e3 / reps
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t) / reps

    def time(self, fn: Callable[[], object], target_s: float, allowed_s: float) -> float:
        """Seconds per call: one warm-up, one probe, then the fastest of short blocks (≈ 2 ms on a CPU, where another
        process taking a core stalls a whole block) until about 2·target_s is spent or allowed_s would be passed."""
        t = time.perf_counter()
        fn()
        self.sync()
        probe = self._loop(fn, 1)
        best = probe
        block_s = min(target_s, 2e-3) if self.kind == "cpu" else target_s / 2
        reps = max(1, min(100000, int(block_s / max(probe, 1e-7))))
        blocks = 0
        while blocks < 1000:
            spent = time.perf_counter() - t
            if spent + reps * best * 1.5 > allowed_s or (spent >= 2 * target_s and blocks >= 2):
                break
            best = min(best, self._loop(fn, reps))
            blocks += 1
        return best


def _estimate(flops: float, rate: float | None, fallback: float) -> float:
    return flops / (rate or fallback)


def _cost(est: float, target: float) -> float:
    """Seconds one `_Device.time` call takes for an op of `est` seconds (warm-up, probe, ≥ 2 blocks)."""
    return 2 * est + max(2 * target, 2 * est)


def _measure_launch(d: _Device, clock: Clock) -> float:
    x = d.torch.zeros(1, device=d.dev)
    n = 2000 if d.kind == "cuda" else 5000
    best = math.inf

    def burst() -> None:
        for _ in range(n):
            x.add_(1)

    for _ in range(5):
        if clock.left() <= 0 and best < math.inf:
            break
        d.sync()
        best = min(best, d._loop(burst, 1) / n)
    clock.step(f"launch {best * 1e6:.1f} us")
    return best


def _measure_eager(d: _Device, clock: Clock) -> float:
    """Per-op cost of eager dispatch: a tiny nn.Linear called as a module (what HF transformers pays per op)."""
    torch = d.torch
    layer = torch.nn.Linear(64, 64, bias=False, device=d.dev, dtype=torch.bfloat16)
    x = torch.zeros(1, 64, device=d.dev, dtype=torch.bfloat16)
    n = 1000
    best = math.inf
    for _ in range(5):
        if clock.left() <= 0 and best < math.inf:
            break
        best = min(best, d._loop(lambda: [layer(x) for _ in range(n)], 1) / n)
    clock.step(f"eager op {best * 1e6:.1f} us")
    return best


def _measure_elementwise(d: _Device, clock: Clock, size: int) -> dict[str, Any]:
    """silu(x)·y in bf16 as an eager framework runs it: silu writes a temporary, the product reads it back."""
    torch = d.torch
    n = size // 2
    x = torch.ones(n, dtype=torch.bfloat16, device=d.dev)
    y = torch.ones_like(x)
    moved = 5 * n * 2  # read x, write and read silu(x), read y, write the product
    seconds = d.time(lambda: torch.nn.functional.silu(x) * y, target_s=0.02, allowed_s=max(clock.left(), 0.05))
    clock.step(f"silu·mul {moved / seconds / 1e9:.1f} GB/s")
    return {"bytes": moved, "seconds": seconds, "bytes_per_s": moved / seconds}


def _measure_gemv(d: _Device, clock: Clock) -> dict[str, Any]:
    """One row times a weight far larger than the caches: the rate at which decode streams weights."""
    torch = d.torch
    # layer-sized weights, cycled so that none is in a cache when it is read (CPUs stream short weights slower)
    n, k, count = (8192, 8192, 8) if d.kind == "cuda" else (4096, 1024, 32)
    ws = [torch.ones(n, k, dtype=torch.bfloat16, device=d.dev) for _ in range(count)]
    x = torch.ones(1, k, dtype=torch.bfloat16, device=d.dev)
    moved = 2 * n * k * count
    seconds = d.time(lambda: [x @ w.T for w in ws], target_s=0.02, allowed_s=max(clock.left(), 0.05))
    clock.step(f"weights {moved / seconds / 1e9:.1f} GB/s")
    return {"n": n, "k": k, "weights": count, "bytes": moved, "seconds": seconds, "bytes_per_s": moved / seconds}


def _measure_bandwidth(d: _Device, clock: Clock, notes: list[str]) -> dict[str, Any]:
    torch = d.torch
    if d.kind == "cuda":
        total = torch.cuda.get_device_properties(0).total_memory
        size = min(2 * 2**30, total // 8)
    else:
        size = 512 * 2**20 if _physical_memory() >= 8 * 2**30 else 128 * 2**20
    if clock.left() < 0.25 and d.kind == "cpu":
        size //= 4
        notes.append(f"bandwidth: budget short, copied {size / 2**20:.0f} MiB (may sit partly in the cache)")
    pair = [torch.empty(size // 4, dtype=torch.float32, device=d.dev).fill_(1.0)]
    pair.append(torch.empty_like(pair[0]))
    moved = 2 * pair[0].numel() * 4  # read + write
    seconds = d.time(lambda: pair[1].copy_(pair[0]), target_s=0.02, allowed_s=max(clock.left(), 0.05))
    pair.clear()
    clock.step(f"copy {moved / seconds / 1e9:.1f} GB/s")
    return {"bytes_per_copy": moved, "seconds": seconds, "bytes_per_s": moved / seconds, "tensor_bytes": size,
            "elementwise": _measure_elementwise(d, clock, size), "gemv": _measure_gemv(d, clock)}


def _gemm_shapes(kind: str) -> list[tuple[int, int, int]]:
    ms = (1, 16, 128, 1024, 4096) if kind == "cuda" else (1, 16, 128, 1024)
    dims = (512, 2048, 8192) if kind == "cuda" else (512, 2048)
    return sorted(((m, n, k) for m in ms for n in dims for k in dims), key=lambda s: (s[0] * s[1] * s[2], s))


def _fp8_supported(torch: Any) -> bool:
    if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
        return False
    major, minor = torch.cuda.get_device_capability(0)
    return (major, minor) >= (8, 9)


def _measure_gemm(d: _Device, clock: Clock, dtypes: Sequence[str], notes: list[str]) -> list[dict[str, Any]]:
    torch = d.torch
    shapes = _gemm_shapes(d.kind)
    # bf16 counts twice: its table is what the fit reads.
    weights = {dt: (2.0 if dt == "bf16" else 1.0) for dt in dtypes}
    rows: list[dict[str, Any]] = []
    phase_end = clock.phase_end
    fallback = 1e13 if d.kind == "cuda" else 2e10
    for i, dt in enumerate(dtypes):
        share = weights[dt] / sum(weights[x] for x in dtypes[i:])
        clock.phase_end = clock.now() + max(0.0, phase_end - clock.now()) * share
        target = max(1e-3, min(0.05, (clock.phase_end - clock.now()) / (len(shapes) * 3)))
        rate: float | None = None
        skipped = 0
        for m, n, k in shapes:
            if dt == "fp8" and m % 16:
                continue  # torch._scaled_mm needs every dimension a multiple of 16
            flops = 2.0 * m * n * k
            first = not rows or all(x["dtype"] != dt for x in rows)
            est = _estimate(flops, rate, fallback)
            if not first and _cost(est, target) > clock.left():
                skipped += 1
                continue
            try:
                fn, elem = _gemm_fn(torch, d.dev, dt, m, n, k)
            except (RuntimeError, TypeError, ValueError) as e:
                notes.append(f"gemm {dt}: not measured ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
                break
            seconds = d.time(fn, target, max(clock.left(), 2 * _cost(est, target)))
            del fn
            flop_per_s = flops / seconds
            rows.append({"dtype": dt, "m": m, "n": n, "k": k, "flops": flops, "seconds": seconds,
                         "bytes": float(elem * (m * k + k * n) + 2 * m * n), "flop_per_s": flop_per_s})
            rate = max(rate or 0.0, flop_per_s)
            clock.step(f"gemm {dt} {m}x{n}x{k} {flop_per_s / 1e12:.2f} TFLOP/s")
        if skipped:
            notes.append(f"gemm {dt}: budget short, skipped the {skipped} largest shapes")
    clock.phase_end = phase_end
    return rows


def _gemm_fn(torch: Any, dev: Any, dt: str, m: int, n: int, k: int) -> tuple[Callable[[], object], int]:
    if dt == "fp8":
        a = torch.randn(m, k, device=dev).to(torch.float8_e4m3fn)
        b = torch.randn(n, k, device=dev).to(torch.float8_e4m3fn).t()  # column-major (k×n), as cuBLASLt needs
        one = torch.ones((), device=dev, dtype=torch.float32)
        torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)  # raises if unsupported
        return (lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)), 1
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dt]
    a = torch.randn(m, k, device=dev, dtype=dtype)
    b = torch.randn(k, n, device=dev, dtype=dtype)
    return (lambda: torch.matmul(a, b)), a.element_size()


def _measure_attention(d: _Device, clock: Clock, notes: list[str]) -> list[dict[str, Any]]:
    torch = d.torch
    import torch.nn.functional as F

    seqs = (512, 2048, 8192) if d.kind == "cuda" else (512, 2048)
    tokens = 8192 if d.kind == "cuda" else 2048  # B·s held constant: every shape fills the device alike
    width = 2048 if d.kind == "cuda" else 1024  # h·d_h
    cases = sorted(((dh, s) for dh in (128, 64) for s in seqs), key=lambda c: (c[1], -c[0]))
    target = max(1e-3, min(0.05, clock.left() / (len(cases) * 3)))
    rows: list[dict[str, Any]] = []
    rate: float | None = None
    skipped = 0
    for dh, s in cases:
        b, h = max(1, tokens // s), width // dh
        flops = 4.0 * b * h * s * s * dh / 2
        est = _estimate(flops, rate, 1e13 if d.kind == "cuda" else 1e10)
        if rows and _cost(est, target) > clock.left():
            skipped += 1
            continue
        qkv = [torch.randn(b, h, s, dh, device=d.dev, dtype=torch.bfloat16) for _ in range(3)]
        try:
            seconds = d.time(functools.partial(F.scaled_dot_product_attention, qkv[0], qkv[1], qkv[2], is_causal=True),
                             target, max(clock.left(), 2 * _cost(est, target)))
        except RuntimeError as e:
            notes.append(f"attention: not measured ({str(e).splitlines()[0][:120]})")
            break
        row = {"head_dim": dh, "seq": s, "batch": b, "heads": h, "flops": flops, "seconds": seconds,
               "flop_per_s": flops / seconds}
        rows.append(row)
        rate = max(rate or 0.0, row["flop_per_s"])
        clock.step(f"attention d_h={dh} s={s} {row['flop_per_s'] / 1e12:.2f} TFLOP/s")
    if skipped:
        notes.append(f"attention: budget short, skipped the {skipped} longest shapes")
    return rows


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def _cpu_name() -> str:
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import platform

    name = name or platform.processor() or platform.machine() or "unknown"
    return f"CPU {name} ({os.cpu_count() or 1} threads)"[:200]


# --------------------------------------------------------------------------------------------------- the profile


def _identify(torch: Any, cuda: bool, notes: list[str]) -> tuple[str, int, list[str]]:
    """The device's name, memory in bytes and the GEMM dtypes worth timing on it."""
    if cuda:
        props = torch.cuda.get_device_properties(0)
        return (torch.cuda.get_device_name(0), int(props.total_memory),
                ["bf16", "fp16", "fp32"] + (["fp8"] if _fp8_supported(torch) else []))
    memory = _physical_memory()
    if not memory:
        memory = 16 * 2**30
        notes.append("memory_bytes: physical RAM unknown (os.sysconf), 16 GiB assumed")
    notes.append(f"CPU with {torch.get_num_threads()} torch threads")
    return _cpu_name(), memory, ["bf16", "fp32"]


def run(device: str = "auto", budget_s: float = 60.0, progress: Progress | None = None) -> dict[str, Any]:
    """Measure the local device within `budget_s` seconds and return a device profile for hardware_from_dict."""
    if device not in DEVICES:
        raise TmathError("device", device, f"one of {', '.join(DEVICES)}")
    check_number("budget", budget_s, low=MIN_BUDGET_S, high=MAX_BUDGET_S)  # seconds
    clock = Clock(float(budget_s), progress)
    try:
        import torch
    except ImportError:
        raise TmathError("calibrate", "torch", "installed: pip install 'transformer-math[torch]'") from None
    cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise TmathError("device", device, "a CUDA GPU torch can see (torch.cuda.is_available() is False); or cpu")
    kind = "cuda" if cuda else "cpu"
    d = _Device(torch, kind)
    notes: list[str] = []
    phases = ["launch", "bandwidth", "gemm", "attention"] + (["collectives"] if cuda else [])
    name, memory, dtypes = _identify(torch, cuda, notes)
    with torch.inference_mode():
        clock.start_phase("launch", phases)
        launch = _measure_launch(d, clock)
        eager = _measure_eager(d, clock)
        clock.start_phase("bandwidth", phases)
        bandwidth = _measure_bandwidth(d, clock, notes)
        clock.start_phase("gemm", phases)
        gemm = _measure_gemm(d, clock, dtypes, notes)
        clock.start_phase("attention", phases)
        attention = _measure_attention(d, clock, notes)
    collectives = None
    if cuda:
        clock.start_phase("collectives", phases)
        collectives = measure_collectives(torch, clock, notes)
    if not any(x["dtype"] == "bf16" for x in gemm):
        raise TmathError("budget", budget_s, "enough seconds to time a bf16 GEMM")
    profile = build_profile(name=name, kind=kind, memory_bytes=memory, launch_s=launch, eager_op_s=eager,
                            bandwidth=bandwidth,
                            gemm=gemm, attention=attention, collectives=collectives, notes=notes,
                            gpus=torch.cuda.device_count() if cuda else 1)
    profile["source"] = (f"tmath calibrate on {time.strftime('%Y-%m-%d')}, torch {torch.__version__}, "
                         f"budget {budget_s:g} s ({time.perf_counter() - clock.t0:.1f} s used)")
    if progress is not None:
        progress("done", 1.0)
    return profile

