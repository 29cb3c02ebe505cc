"""Vectorized grids of memory and FLOPs over batch × context × KV dtype (numpy broadcasting, no loop per point).

Per-token and per-pair coefficients come from the same per-op formulas as analyze(), evaluated once at unit
sizes: prefill FLOPs = B·L·f_token + B·L²·f_pair (dense attention), KV bytes = B·Σ_kinds n·min(L, S−1)·w·b_kv.
"""

from __future__ import annotations

from transformer_math.analysis.flops import layer_ops
from transformer_math.config.spec import ModelSpec
from transformer_math.units import DType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_POINTS = 10**8


def coefficients(s: ModelSpec) -> tuple[float, float]:
    """(f_token, f_pair): forward FLOPs per token (projections, MLP, LM head) and per query-key pair."""
    f_token = f_pair = 0.0
    for layer, n in s.layer_kinds:
        for op in layer_ops(s, layer, B=1, T=1):
            if op.name.startswith(("attention.scores", "attention.values")):
                f_pair += n * op.flops.value  # n_pairs = 1 at T = 1
            else:
                f_token += n * op.flops.value
    return f_token + 2 * s.d_model * s.vocab_size, f_pair


def grid(s: ModelSpec, *, batch: Any, context: Any, kv: list[DType], tp: Any = (1,),
         weight_bytes: float | None = None) -> dict[str, Any]:
    """KV-cache bytes, prefill FLOPs and per-GPU weights + KV (bf16 weights as T_p shards them, KV/T_p with KV heads
    replicated when h_kv < T_p) on the grid batch × context × kv dtype × T_p."""
    import numpy as np

    from transformer_math.analysis.sharding import Mesh, local_params

    B = np.asarray(batch, dtype=np.int64)[:, None, None, None]
    L = np.asarray(context, dtype=np.int64)[None, :, None, None]
    b_kv = np.asarray([float(d.bytes_per_element) for d in kv])[None, None, :, None]
    T = np.asarray(tp, dtype=np.int64)[None, None, None, :]
    width = (s.mla.kv_rank + s.mla.d_rope) if s.mla else 2 * s.kv_dim
    tokens = np.zeros(L.shape, dtype=np.int64)
    state = 0  # linear-attention layers: a fixed state per sequence, h_kv·(d_h·d_h + d_h) elements, not tokens
    for layer, n in s.layer_kinds:
        if layer.attention == "linear":
            state += n * s.n_kv_heads * (s.head_dim * s.head_dim + s.head_dim)
            continue
        tokens = tokens + n * (L if layer.attention == "full" else np.minimum(L, layer.window - 1))  # type: ignore[operator]
    kv_bytes = np.ceil(B * (tokens * width + state) * b_kv)
    f_token, f_pair = coefficients(s)
    flops = (B * L * f_token + B * L * L * f_pair) * np.ones(b_kv.shape)
    if weight_bytes is None:  # bf16 weights as tensor parallelism shards them (analysis/sharding.py)
        weights = 2 * sum(local_params(s, Mesh(tp=T)).values())
    else:
        weights = weight_bytes / T
    replicate = 1 if s.mla else np.maximum(1, T // s.n_kv_heads)
    per_gpu = weights + kv_bytes * replicate / (1 if s.mla else T)
    return {"batch": B, "context": L, "kv_dtype": [d.name for d in kv], "tp": T, "kv_cache_bytes": kv_bytes,
            "prefill_flops": flops, "memory_per_gpu_bytes": per_gpu}
