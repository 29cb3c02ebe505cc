"""Report → readable text. Display only: units are humanized here and nowhere else."""

from __future__ import annotations

from transformer_math.analysis.params import by_component
from transformer_math.analysis.report import Report
from transformer_math.cli.style import paint
from transformer_math.units import fmt_bytes, fmt_count


def _arch_note(arch: str) -> str:
    return {"encoder": "  (encoder-only: bidirectional, no KV cache, no decoding)",
            "encoder_decoder": "  (each also cross-attends to the encoder output)"}.get(arch, "")


def render_report(r: Report, *, show_ignored: bool = False, ops: bool = False) -> str:
    s = r.spec
    lines = [f"{paint(s.name, 'bold')}  ({s.family})",
             "  " + "  ".join(f"{k}={v}" for k, v in s.symbols().items() if v is not None and not isinstance(v, tuple)),
             *(["  encoder layers: " + ", ".join(f"{n}× {layer.kind}" for layer, n in s.encoder_kinds)]
               if s.encoder_layers else []),
             f"  {'decoder ' if s.encoder_layers else ''}layers: "
             + ", ".join(f"{n}× {layer.kind}" for layer, n in s.layer_kinds) + _arch_note(s.arch),
             f"  workload: B={r.batch}  L={r.context}"
             + (f" (encoder)  T_dec={r.decoder_tokens}" if r.decoder_tokens else "")
             + f"  kv={r.kv_dtype.name}  weights=" + ",".join(f"{k}:{v.name}" for k, v in r.weight_dtypes.items()), ""]
    rows = [("params.total", "P", r["params.total"], "params"),
            ("params.active", "P_active", r["params.active"], "params")]
    for key in ("memory.weights_bytes", "memory.kv_cache_bytes", "memory.gradients_bytes", "memory.optimizer_bytes",
                "memory.activations_bytes"):
        if key in r:  # an encoder-only model keeps no cache
            rows.append((key, r.quantities[key].symbol, r[key], "bytes"))
    for key in ("flops.prefill", "flops.decode_token", "flops.train_step"):
        if key in r:
            rows.append((key, r.quantities[key].symbol, r[key], "FLOPs"))
    lines.append(f"  {'quantity':26s} {'symbol':10s} {'value':>22s}  human")
    tokens = f"B×L = {r.batch}×{r.context} tokens"
    if r.decoder_tokens:
        tokens = f"encoder {tokens}, decoder B×T_dec = {r.batch}×{r.decoder_tokens}"
    what = {"flops.prefill": ("forward of " if s.arch != "decoder" else "prefill of ") + tokens,
            "flops.decode_token": f"one decode step: B = {r.batch} token{'s' if r.batch > 1 else ''} at context L",
            "flops.train_step": "forward + backward of " + ("those tokens" if r.decoder_tokens else "B×L tokens")}
    for key, sym, v, unit in rows:
        if unit == "bytes":
            human = f"{fmt_bytes(v, 'iec')} / {fmt_bytes(v, 'si')}"
        elif unit == "params":
            human = f"{v / 1e9:.2f} B parameters" if v >= 1e9 else f"{v / 1e6:.1f} M parameters"
        else:
            human = f"{fmt_count(v)}FLOP  ({what[key]})"
        lines.append(f"  {key:26s} {sym:10s} {int(v):>22,}  {human}")
    lines += ["", f"  {paint('parameters by component', 'bold')}:"]
    for k, v in sorted(by_component(r.quantities["params.total"]).items(), key=lambda kv: -kv[1]):
        lines.append(f"    {k:28s} {v:>20,}  {100 * v / r['params.total']:5.1f}%")
    if ops:
        for title, table in r.per_op_table().items():
            lines += ["", f"  {paint(title, 'bold')}:", f"    {'operation':28s} {'output shape':>24s} {'FLOPs':>22s}"]
            lines += [f"    {row['op']:28s} {str(tuple(row['shape'])):>24s} {row['flops']:>22,}" for row in table]
    lines += [f"  {paint('warning', 'red')}: {w}" for w in r.warnings]
    lines += ["", f"  conventions: {r.conventions.describe()}",
              "  GiB = 2^30 bytes, GB = 10^9 bytes.  tmath explain MODEL QUANTITY shows any derivation."]
    if show_ignored:
        lines += ["", "  config keys read: " + ", ".join(s.read_keys),
                  "  config keys ignored: " + (", ".join(s.ignored_keys) or "(none)")]
    return "\n".join(lines)
