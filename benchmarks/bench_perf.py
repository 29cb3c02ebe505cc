"""Speed of the performance model: the layout search (layouts/s), explained plans (ms), the sweep grid (points/s)."""

import time

import transformer_math as tm
from transformer_math.analysis.sweep import grid
from transformer_math.units import parse_dtype


def _timed(fn, n=5):
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> None:
    kw = dict(gpus=16384, global_batch=2048, seq=8192)
    t0 = time.perf_counter()
    tm.search("llama-3.1-405b", "h100-sxm", **kw)
    cold = time.perf_counter() - t0
    r = tm.search("llama-3.1-405b", "h100-sxm", **kw)
    print("layout search: Llama-3.1-405B on 16,384 H100 (TP × PP × DP/ZeRO × CP × micro-batch × recompute × "
          "interleave × SP)")
    print(f"  {r.evaluated:,} layouts in {r.seconds * 1e3:.1f} ms warm ({cold * 1e3:.1f} ms cold): "
          f"{r.evaluated / r.seconds:,.0f} layouts/s")
    best = r.rows[0]
    print(f"  fastest: step {best['step_time_s']:.3f} s, MFU {best['mfu']:.1%}: {best['command']}")
    moe = tm.search("deepseek-v3", "h100-sxm", gpus=2048, global_batch=4096, seq=4096)
    print(f"  DeepSeek-V3 on 2,048 H100 (+ EP): {moe.evaluated:,} layouts in {moe.seconds * 1e3:.1f} ms")
    print("explained plans (every number a Quantity):")
    for name, fn in (("train llama-3.1-70b TP8 PP4", lambda: tm.train("llama-3.1-70b", "h100-sxm", gpus=256, tp=8, pp=4,
                                                                          global_batch=256, seq=8192)),
                     ("serve llama-3.1-70b TP4 B=32", lambda: tm.serve("llama-3.1-70b", "h100-sxm", tp=4, batch=32))):
        print(f"  {name:32s} {_timed(fn) * 1e3:8.1f} ms")
    s8 = tm.load_model("llama-3.1-8b")
    B, L = list(range(1, 1001)), list(range(128, 128 * 1001, 128))
    kv = [parse_dtype("bf16"), parse_dtype("fp8")]
    grid(s8, batch=[1], context=[1], kv=kv)
    t0 = time.perf_counter()
    g = grid(s8, batch=B, context=L, kv=kv)
    dt = time.perf_counter() - t0
    points = g["kv_cache_bytes"].size
    print(f"sweep: {points:,} (batch × context × kv dtype) points of KV bytes and prefill FLOPs in {dt * 1e3:.1f} ms: "
          f"{points / dt:,.0f} points/s (target ≥ 10^6)")


if __name__ == "__main__":
    main()
