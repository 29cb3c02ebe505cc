"""Speed of the performance model: layout search (layouts/s) and the memory/FLOPs sweep grid (points/s)."""

import time

import transformer_math as tm
from transformer_math.analysis.sweep import grid
from transformer_math.analysis.training import search_layouts
from transformer_math.config.hardware import load_hardware
from transformer_math.units import parse_dtype


def main() -> None:
    s, hw = tm.load_model("llama-3.1-405b"), load_hardware("h100-sxm")
    t0 = time.perf_counter()
    search_layouts(s, hw, gpus=16384, global_batch=2048, seq=8192)
    cold = time.perf_counter() - t0
    best, n, seconds = search_layouts(s, hw, gpus=16384, global_batch=2048, seq=8192)
    print("layout search: Llama-3.1-405B on 16,384 H100 (TP × PP × DP × CP × micro-batch × recompute × ZeRO)")
    print(f"  {n:,} layouts in {seconds * 1e3:.1f} ms warm ({cold * 1e3:.1f} ms cold): {n / seconds:,.0f} layouts/s "
          f"(Calculon: ~280 per second per core)")
    print(f"  fastest: {best[0][0]}  step {best[0][1]['step_time_s']:.3f} s, MFU {best[0][1]['mfu']:.1%}")
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
