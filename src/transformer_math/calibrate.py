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

import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from transformer_math.errors import TmathError

DEVICES = ("auto", "cpu", "cuda")
MIN_BUDGET_S, MAX_BUDGET_S = 1.0, 86400.0
# Share of the budget each phase may take (what one phase leaves unused goes to the later ones).
PHASES = {"launch": 0.03, "bandwidth": 0.08, "gemm": 0.55, "attention": 0.26, "collectives": 0.08}
RESERVE = 0.04  # of the budget, kept for fitting and writing
Progress = Callable[[str, float], None]

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


# --------------------------------------------------------------------------------------------------- measuring


class _Clock:
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


def _measure_launch(d: _Device, clock: _Clock) -> float:
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


def _measure_eager(d: _Device, clock: _Clock) -> float:
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


def _measure_elementwise(d: _Device, clock: _Clock, size: int) -> dict[str, Any]:
    """silu(x)·y in bf16 as an eager framework runs it: silu writes a temporary, the product reads it back."""
    torch = d.torch
    n = size // 2
    x = torch.ones(n, dtype=torch.bfloat16, device=d.dev)
    y = torch.ones_like(x)
    moved = 5 * n * 2  # read x, write and read silu(x), read y, write the product
    seconds = d.time(lambda: torch.nn.functional.silu(x) * y, target_s=0.02, allowed_s=max(clock.left(), 0.05))
    clock.step(f"silu·mul {moved / seconds / 1e9:.1f} GB/s")
    return {"bytes": moved, "seconds": seconds, "bytes_per_s": moved / seconds}


def _measure_gemv(d: _Device, clock: _Clock) -> dict[str, Any]:
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


def _measure_bandwidth(d: _Device, clock: _Clock, notes: list[str]) -> dict[str, Any]:
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


def _measure_gemm(d: _Device, clock: _Clock, dtypes: Sequence[str], notes: list[str]) -> list[dict[str, Any]]:
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
            row = {"dtype": dt, "m": m, "n": n, "k": k, "flops": flops, "bytes": float(elem * (m * k + k * n) + 2 * m * n),
                   "seconds": seconds, "flop_per_s": flops / seconds}
            rows.append(row)
            rate = max(rate or 0.0, row["flop_per_s"])
            clock.step(f"gemm {dt} {m}x{n}x{k} {row['flop_per_s'] / 1e12:.2f} TFLOP/s")
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


def _measure_attention(d: _Device, clock: _Clock, notes: list[str]) -> list[dict[str, Any]]:
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
            seconds = d.time(lambda qkv=qkv: F.scaled_dot_product_attention(*qkv, is_causal=True), target,
                             max(clock.left(), 2 * _cost(est, target)))
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


def _allreduce_worker(rank: int, world: int, port: int, nbytes: int, queue: Any) -> None:
    import torch
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        x = torch.ones(nbytes // 2, dtype=torch.bfloat16, device="cuda")
        for _ in range(3):
            dist.all_reduce(x)
        torch.cuda.synchronize()
        dist.barrier()
        reps = 10
        t = time.perf_counter()
        for _ in range(reps):
            dist.all_reduce(x)
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - t) / reps
        if rank == 0:
            queue.put(seconds)
    finally:
        dist.destroy_process_group()


def _measure_collectives(torch: Any, clock: _Clock, notes: list[str]) -> dict[str, Any] | None:
    world = torch.cuda.device_count()
    if world < 2:
        notes.append("collectives: not measured (one GPU); the preset's link efficiency is kept")
        return None
    if not torch.distributed.is_available() or not torch.distributed.is_nccl_available():
        notes.append("collectives: not measured (torch without NCCL)")
        return None
    if clock.left() < 5:
        notes.append("collectives: not measured (budget short: needs ≥ 5 s to start the processes)")
        return None
    import queue as queue_mod
    import socket

    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nbytes = 256 * 2**20
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = mp.start_processes(_allreduce_worker, args=(world, port, nbytes, queue), nprocs=world, join=False,
                               start_method="spawn")
    try:
        while not procs.join(timeout=max(0.1, min(1.0, clock.left()))):
            if clock.left() <= 0:
                raise TimeoutError
        seconds = float(queue.get(timeout=5))
    except (TimeoutError, RuntimeError, OSError, EOFError, queue_mod.Empty, ProcessException) as e:
        # a hung or failed NCCL start must not sink the calibration
        for p in procs.processes:
            if p.is_alive():
                p.terminate()
        notes.append(f"collectives: not measured ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else 'timed out'})")
        return None
    bus = nbytes * 2 * (world - 1) / world / seconds
    clock.step(f"all-reduce {world} GPUs {bus / 1e9:.0f} GB/s")
    return {"gpus": world, "bytes": nbytes, "seconds": seconds, "bus_bytes_per_s": bus}


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


def run(device: str = "auto", budget_s: float = 60.0, progress: Progress | None = None) -> dict[str, Any]:
    """Measure the local device within `budget_s` seconds and return a device profile for hardware_from_dict."""
    if device not in DEVICES:
        raise TmathError("device", device, f"one of {', '.join(DEVICES)}")
    if isinstance(budget_s, bool) or not isinstance(budget_s, int | float) or not MIN_BUDGET_S <= budget_s <= MAX_BUDGET_S:
        raise TmathError("budget", budget_s, f"seconds from {MIN_BUDGET_S:g} to {MAX_BUDGET_S:g}")
    clock = _Clock(float(budget_s), progress)
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
    if cuda:
        props = torch.cuda.get_device_properties(0)
        name, memory = torch.cuda.get_device_name(0), int(props.total_memory)
        dtypes = ["bf16", "fp16", "fp32"] + (["fp8"] if _fp8_supported(torch) else [])
    else:
        name, memory = _cpu_name(), _physical_memory()
        if not memory:
            memory = 16 * 2**30
            notes.append("memory_bytes: physical RAM unknown (os.sysconf), 16 GiB assumed")
        dtypes = ["bf16", "fp32"]
        notes.append(f"CPU with {torch.get_num_threads()} torch threads")
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
        collectives = _measure_collectives(torch, clock, notes)
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


def build_profile(*, name: str, kind: str, memory_bytes: int, launch_s: float, bandwidth: dict[str, Any],
                  eager_op_s: float | None = None,
                  gemm: list[dict[str, Any]], attention: list[dict[str, Any]], collectives: dict[str, Any] | None,
                  notes: list[str], gpus: int = 1) -> dict[str, Any]:
    """The device JSON from the raw tables (pure: no torch)."""
    from dataclasses import fields

    from transformer_math.analysis.efficiency import MID, device_profile
    from transformer_math.config.hardware import load_hardware

    measured_bw = bandwidth["bytes_per_s"]
    best: dict[str, float] = {}
    for x in gemm:
        best[x["dtype"]] = max(best.get(x["dtype"], 0.0), x["flop_per_s"])
    preset = match_preset(name, memory_bytes) if kind == "cuda" else None
    out: dict[str, Any] = {"id": f"calibrated-{slug(name)}", "name": name, "memory_bytes": int(memory_bytes)}
    if preset:
        hw = load_hardware(preset)
        peaks = dict(hw.peak_flops_per_s)
        nominal_bw = hw.memory_bandwidth_bytes_per_s
        link, nic, cls = hw.link_bandwidth_bytes_per_s, hw.nic_bandwidth_bytes_per_s, hw.device_class
        notes.append(f"nominal peaks, bandwidth, links and class from the shipped preset {preset} ({hw.name})")
        base = device_profile(cls)[0] if cls else MID
        out.update(memory_bandwidth_bytes_per_s=nominal_bw, peak_flops_per_s=peaks, link_bandwidth_bytes_per_s=link,
                   nic_bandwidth_bytes_per_s=nic, gpus_per_node=max(1, gpus), device_class=cls)
        if hw.tdp_w:
            out["tdp_w"] = hw.tdp_w
    else:
        peaks = dict(best)
        nominal_bw = measured_bw
        link = collectives["bus_bytes_per_s"] if collectives else measured_bw
        cls = "cpu" if kind == "cpu" else ""
        base = MID
        what = "CPU" if kind == "cpu" else f"GPU {name!r} matches no shipped preset;"
        notes.append(f"{what} peaks are the best measured FLOP/s per dtype and bandwidth the measured copy "
                     "bandwidth, so gemm and bw are ≈ 1 and the fitted shape terms carry the rest")
        if not collectives:
            notes.append("link_bandwidth_bytes_per_s is a placeholder (= the memory bandwidth): nothing was measured")
        out.update(memory_bandwidth_bytes_per_s=nominal_bw, peak_flops_per_s=peaks, link_bandwidth_bytes_per_s=link,
                   nic_bandwidth_bytes_per_s=min(link, 25e9), gpus_per_node=max(1, gpus), device_class=cls)
    peak_bf16 = peaks.get("bf16") or peaks.get("fp16") or max(peaks.values())
    from transformer_math.analysis.efficiency import ENGINE_FIELDS

    eff = {f.name: getattr(base, f.name) for f in fields(base) if f.name != "name" and f.name not in ENGINE_FIELDS}
    bf16 = [x for x in gemm if x["dtype"] == "bf16"]
    # Weights stream through matrix-vector products at their own rate (on a CPU well below a copy's): a one-row
    # product over a weight larger than the caches sets η_bw, which decode and every weight-bound op use
    stream_bw = bandwidth["gemv"]["bytes_per_s"] if bandwidth.get("gemv") else measured_bw
    top, h, r = fit_gemm(bf16, peak_bf16, stream_bw, launch_s)
    eff.update(gemm=top, gemm_dim_half=h, gemm_rows_half=r, bw=_fraction(stream_bw / nominal_bw), launch_s=launch_s)
    if eager_op_s:
        eff["eager_op_s"] = eager_op_s
    if bandwidth.get("elementwise"):
        eff["elementwise_bw"] = min(4.0, bandwidth["elementwise"]["bytes_per_s"] / stream_bw)
        notes.append(f"η_bw from a one-row bf16 product over a cache-busting weight ({stream_bw / 1e9:.1f} GB/s); "
                     f"element-wise kernels reach "
                     f"{eff['elementwise_bw']:.2f} of it (silu·mul)")
    fp8 = [x for x in gemm if x["dtype"] == "fp8"]
    if fp8 and "fp8" in peaks:
        b8 = max(fp8, key=lambda x: x["flop_per_s"])
        eff["gemm_fp8"] = _fraction(b8["flop_per_s"] / peaks["fp8"] / gemm_factor(b8["n"], b8["k"], b8["m"], h, r))
    if attention:
        a, half, exponent = fit_attention(attention, peak_bf16)
        eff.update(attention=a, attention_keys_half=half)
        if exponent is not None:
            eff["attention_head_exponent"] = exponent
        if len({x["seq"] for x in attention}) < 2:
            notes.append("attention_keys_half: one sequence length measured, fitted to 0 (flat)")
    else:
        notes.append("attention: not measured, the class profile's values kept")
    if collectives and preset:
        eff["link"] = _fraction(collectives["bus_bytes_per_s"] / link)
    elif collectives:
        eff["link"] = 1.0
    notes.append("gemm and attention are long-shape limits: the η that, times the fitted shape factors, reproduces "
                 "the best measured shape")
    out["efficiency"] = {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in eff.items()}
    out["notes"] = notes
    out["measurements"] = {"launch_s": launch_s, "eager_op_s": eager_op_s, "bandwidth": bandwidth, "gemm": gemm, "attention": attention,
                           "collectives": collectives, "best_flop_per_s": best}
    return out


# --------------------------------------------------------------------------------------------------- command line


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
