"""Several models side by side under one workload — shape, parameters, memory, FLOPs.

compare() is pure: it calls analyze() once per model and returns one flat dict per model with stable keys and
raw numbers (bytes, FLOPs, counts as integers). The shell (`tmath compare`: a table, --json, --csv) is
cli/compare.py."""

from __future__ import annotations

import os

from transformer_math.errors import TmathError

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from transformer_math.analysis.report import Conventions

MIN_MODELS, MAX_MODELS = 2, 16

# Stable keys, in order: the JSON objects' keys and the CSV header. Report quantities keep their report keys.
KEYS = ("model", "source", "family", "n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "vocab_size",
        "max_context", "n_experts", "experts_per_token", "n_shared_experts", "batch", "context", "weight_dtype",
        "kv_dtype", "params.total", "params.active", "memory.weights_bytes", "memory.kv_cache_bytes",
        "memory.kv_per_token_bytes", "flops.prefill", "flops.decode_token", "warnings")
_REPORT_KEYS = ("params.total", "params.active", "memory.weights_bytes", "memory.kv_cache_bytes", "flops.prefill",
                "flops.decode_token")


def _exact(x: Any) -> int | float:
    """An integral number as an int (a Fraction of bytes from a sub-byte dtype that came out whole, too)."""
    return int(x) if x == int(x) else float(x)


def compare(models: Sequence[str | os.PathLike[str] | Mapping[str, Any]], *, batch: int = 1, context: int = 2048,
            weight_dtype: str | Mapping[str, str] | None = "auto", kv_dtype: str = "bf16",
            conventions: Conventions | None = None) -> list[dict[str, Any]]:
    """One flat dict per model (keys: KEYS) for B = batch sequences at context L = context, each from analyze()."""
    from transformer_math.analysis import memory as mem
    from transformer_math.analysis.report import analyze, describe_weight_dtypes

    if isinstance(models, str | bytes | os.PathLike) or not hasattr(models, "__len__"):
        raise TmathError("models", models, f"a list of {MIN_MODELS} to {MAX_MODELS} models")
    if not MIN_MODELS <= len(models) <= MAX_MODELS:
        raise TmathError("models", len(models), f"{MIN_MODELS} to {MAX_MODELS} models (preset names or config.json "
                                                f"paths)")
    rows = []
    for model in models:
        r = analyze(model, batch=batch, context=context, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
                    conventions=conventions)
        s, moe = r.spec, r.spec.moe
        row: dict[str, Any] = {
            "model": s.name, "source": model if isinstance(model, str) else (
                os.fspath(model) if isinstance(model, os.PathLike) else s.name),
            "family": s.family, "n_layers": s.n_layers, "d_model": s.d_model, "n_heads": s.n_heads,
            "n_kv_heads": s.n_kv_heads, "head_dim": s.head_dim, "vocab_size": s.vocab_size,
            "max_context": s.max_context,
            "n_experts": moe.n_experts if moe else None, "experts_per_token": moe.experts_per_token if moe else None,
            "n_shared_experts": moe.n_shared if moe else None,
            "batch": r.batch, "context": r.context, "weight_dtype": describe_weight_dtypes(r.weight_dtypes),
            "kv_dtype": r.kv_dtype.name,
        }
        row.update((k, _exact(r[k]) if k in r else None) for k in _REPORT_KEYS)  # None: an encoder's cache, decode
        # One token in every layer's cache, before any sliding window is full (the usual "KV per token").
        row["memory.kv_per_token_bytes"] = (_exact(mem.kv_cache_bytes(s, B=1, L=1, kv=r.kv_dtype).value)
                                            if "memory.kv_cache_bytes" in r else None)
        row["warnings"] = list(r.warnings)
        rows.append({k: row[k] for k in KEYS})
    return rows
