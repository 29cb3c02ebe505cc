"""`tmath compare MODEL MODEL …`: analysis.compare's rows as a text table, --json, or --csv FILE."""

from __future__ import annotations

import os

from transformer_math.analysis.compare import KEYS
from transformer_math.units import fmt_count

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence
    from typing import Any


GiB, KiB = 2**30, 2**10


def _params(n: float) -> str:
    """'8.03 B', '124.4 M' — parameters as model cards write them."""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.2f} {suffix}"
    return f"{int(n)}"


def _binary(n: float | None, unit: int) -> str:
    if n is None:  # an encoder-only model keeps no cache
        return "—"
    x = n / unit
    return f"{x:,.2f}" if x >= 1 or x == 0 else f"{x:.3g}"


def _experts(row: Mapping[str, Any]) -> str:
    if row["n_experts"] is None:
        return "–"
    shared = f" +{row['n_shared_experts']} shared" if row["n_shared_experts"] else ""
    return f"{row['n_experts']}/{row['experts_per_token']}{shared}"


def render_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The side-by-side text table: one column per model, headed by its name."""
    B, L = rows[0]["batch"], rows[0]["context"]
    tokens = f"B×L = {B}×{L}"
    lines_spec: list[tuple[str, Any]] = [
        ("family", lambda r: r["family"]),
        ("N_L (layers)", lambda r: f"{r['n_layers']}"),
        ("d (d_model)", lambda r: f"{r['d_model']:,}"),
        ("h_q/h_kv (heads)", lambda r: f"{r['n_heads']}/{r['n_kv_heads']}"),
        ("d_h (head dim)", lambda r: f"{r['head_dim']}"),
        ("V (vocab)", lambda r: f"{r['vocab_size']:,}"),
        ("max context", lambda r: f"{r['max_context']:,}"),
        ("experts (E/e)", _experts),
        ("total params", lambda r: _params(r["params.total"])),
        ("active params", lambda r: _params(r["params.active"])),
        ("weights (GiB)", lambda r: _binary(r["memory.weights_bytes"], GiB)),
        (f"KV cache at {tokens} (GiB)", lambda r: _binary(r["memory.kv_cache_bytes"], GiB)),
        ("KV per token (KiB)", lambda r: _binary(r["memory.kv_per_token_bytes"], KiB)),
        (f"prefill FLOPs at {tokens}", lambda r: f"{fmt_count(r['flops.prefill'])}FLOP"),
        ("decode FLOPs per token step", lambda r: "—" if r["flops.decode_token"] is None
         else f"{fmt_count(r['flops.decode_token'])}FLOP"),
    ]
    header = ["", *(r["model"] for r in rows)]
    body = [[label, *(cell(r) for r in rows)] for label, cell in lines_spec]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0]),
                          *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))]).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths), *(line(b) for b in body)]
    out += ["", f"workload: B×L = {B}×{L} (sequences × tokens per sequence); KV cache {rows[0]['kv_dtype']}"]
    dtypes = {r["weight_dtype"] for r in rows}
    out += [f"weights: {rows[0]['weight_dtype']}"] if len(dtypes) == 1 else [
        f"weights of {r['model']}: {r['weight_dtype']}" for r in rows]
    out += ["GiB = 2^30 bytes, KiB = 2^10 bytes; FLOP = 2·MAC, SI prefixes (G = 10^9, T = 10^12, P = 10^15)",
            ("KV per token: one token in every layer (before any sliding window is full); "
             "decode step: one new token for each of the B sequences at context L")]
    out += [f"warning: {r['model']}: {w}" for r in rows for w in r["warnings"]]
    return "\n".join(out)


def cli(args: argparse.Namespace) -> int:
    """tmath compare MODEL MODEL [MODEL …]: the table, --json, or --csv FILE."""
    import csv
    import json
    import sys

    from transformer_math.analysis.compare import compare
    from transformer_math.analysis.report import Conventions
    from transformer_math.units import json_ready

    rows = compare(args.models, batch=args.batch, context=args.context, weight_dtype=args.weight_dtype,
                   kv_dtype=args.kv_dtype, conventions=Conventions(attention=args.attention, recompute=args.recompute,
                                                                   activations=args.activations))
    if args.csv:
        os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(KEYS)
            for r in rows:
                w.writerow(["" if r[k] is None else "; ".join(r[k]) if isinstance(r[k], list) else r[k]
                            for k in KEYS])
    if args.json:
        json.dump(json_ready(rows), sys.stdout, indent=1)
        print()
        return 0
    print(render_table(rows))
    if args.csv:
        print(f"wrote {len(rows)} models to {args.csv}")
    return 0
