"""analyze(): one entry point from a model (preset, path, dict or spec) and a workload to every number."""

from __future__ import annotations

import os
from collections.abc import Iterator, KeysView, Mapping
from dataclasses import dataclass, field

from transformer_math.analysis import flops as fl
from transformer_math.analysis import memory as mem
from transformer_math.analysis.params import active_params, by_component, by_group, layer_params, params_breakdown
from transformer_math.analysis.quantity import Quantity
from transformer_math.config import load_model
from transformer_math.config.spec import LayerSpec, ModelSpec
from transformer_math.errors import TmathError
from transformer_math.units import DTYPE_HELP, DType, parse_dtype

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

MAX_TOKENS = 10**9  # B·L above this is not a workload any device holds


@dataclass(frozen=True, kw_only=True, slots=True)
class Conventions:
    """How numbers are counted; echoed with every result."""

    attention: str = "dense"  # dense: full T×T scores (eager/MFU); causal: unmasked pairs only
    recompute: str = "none"  # none | selective | full
    flops_per_mac: int = 2
    active: str = "all"  # all: conventions.md P_active (DeepSeek-V3's); no_embedding: gpt-oss card
    activations: str = "fused"  # fused: flash attention + fused norms (how models train); eager: HF eager, measured

    def describe(self) -> str:
        return (f"FLOP = {self.flops_per_mac}·MAC, matmuls only; attention={self.attention}; "
                f"recompute={self.recompute}; prefill includes the LM head on every position; "
                f"MoE counts routed experts (e of E); active params: {self.active}; "
                f"activations: {self.activations} kernels")


@dataclass(frozen=True, kw_only=True, slots=True)
class Report:
    spec: ModelSpec
    batch: int
    context: int
    conventions: Conventions
    decoder_tokens: int | None = None  # T_dec of an encoder–decoder model (its encoder reads `context` tokens)
    weight_dtypes: Mapping[str, DType]
    kv_dtype: DType
    quantities: Mapping[str, Quantity] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> int | float:
        """A number by its stable key (conventions.md); an unknown key's KeyError lists the valid ones."""
        try:
            return self.quantities[key].value
        except KeyError:
            import difflib

            close = difflib.get_close_matches(str(key), list(self.quantities), n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise KeyError(f"{key!r}: {hint}valid keys: {', '.join(self.quantities)}") from None

    def __contains__(self, key: object) -> bool:
        return key in self.quantities

    def __iter__(self) -> Iterator[str]:
        return iter(self.quantities)

    def __len__(self) -> int:
        return len(self.quantities)

    def keys(self) -> KeysView[str]:
        return self.quantities.keys()

    def items(self) -> Iterator[tuple[str, int | float]]:
        return ((k, q.value) for k, q in self.quantities.items())

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self.quantities else default

    def to_dict(self) -> dict[str, Any]:
        """Flat stable keys (conventions.md) with numbers, plus every quantity explained and the breakdowns."""
        out: dict[str, Any] = {k: v.value for k, v in self.quantities.items()}
        params = self.quantities["params.total"]
        out.update({
            "model": self.spec.name, "family": self.spec.family,
            "inputs": {"batch": self.batch, "context": self.context, "decoder_tokens": self.decoder_tokens,
                       "kv_dtype": self.kv_dtype.name,
                       "weight_dtype": {k: v.name for k, v in self.weight_dtypes.items()}},
            "conventions": self.conventions.describe(),
            "warnings": list(self.warnings),
            "symbols": {k: v for k, v in self.spec.symbols().items() if isinstance(v, int | float | str | bool)},
            "params.by_component": by_component(params),
            "params.by_group": by_group(params),
            "params.by_layer": self.params_by_layer(),
            "flops.per_op": self.per_op_table(),
            "quantities": {k: v.to_dict() for k, v in self.quantities.items()},
        })
        return out

    def params_by_layer(self) -> list[dict[str, Any]]:
        s = self.spec
        enc = [{"layer": f"encoder {i}", "kind": x.kind, "params": sum(p.value for p in layer_params(s, x, 1))}
               for i, x in enumerate(s.encoder_layers)]
        per_kind = {layer: sum(x.value for x in layer_params(s, layer, 1, cross=bool(enc)))
                    for layer, _ in s.layer_kinds}
        return enc + [{"layer": i, "kind": layer.kind, "params": per_kind[layer]} for i, layer in enumerate(s.layers)]

    def per_op_table(self) -> dict[str, list[dict[str, Any]]]:
        """Per layer kind: (operation, output shape, FLOPs) for prefill of B×L tokens and one decode step
        (encoder–decoder: the encoder over L, the decoder over T_dec; encoder-only: no decode step)."""
        out: dict[str, list[dict[str, Any]]] = {}
        s, T_enc = self.spec, self.context if self.spec.encoder_layers else 0
        T = self.decoder_tokens or self.context
        stacks: list[tuple[str, LayerSpec, int, tuple[tuple[str, dict[str, Any]], ...]]] = [
            ("encoder ", layer, n, (("prefill", {"T": T_enc, "causal": False}),)) for layer, n in s.encoder_kinds]
        for layer, n in s.layer_kinds:
            phases: tuple[tuple[str, dict[str, Any]], ...] = (
                ("prefill", {"T": T, "causal": s.causal, "T_enc": T_enc}),
                ("decode", {"T": 1, "L": T, "decode": True, "T_enc": T_enc}))
            stacks.append(("", layer, n, phases if s.arch != "encoder" else phases[:1]))
        for stack, layer, n, phases in stacks:
            for phase, kw in phases:
                ops = fl.layer_ops(s, layer, B=self.batch, attention=self.conventions.attention, **kw)
                out[f"{phase} {stack}{layer.kind} ×{n}"] = [
                    {"op": op.name, "shape": list(op.shape), "flops": op.flops.value,
                     "formula": op.flops.substituted} for op in ops]
        return out

    def explain(self, key: str) -> str:
        if key not in self.quantities:
            raise TmathError("quantity", key, f"one of {', '.join(self.quantities)}")
        return render_explanation(self.quantities[key])


def render_explanation(x: Quantity, indent: str = "", quantities: Mapping[str, Quantity] | None = None) -> str:
    lines = [f"{indent}{x.key} = {x.value:,} {x.unit}   [{x.symbol}]" + (f"  ({x.note})" if x.note else ""),
             f"{indent}  {x.symbol} = {x.formula}", f"{indent}       = {x.substituted}"]
    if x.formula_id:
        lines.append(f"{indent}  source: {x.source}")
    for name, key in x.refs.items():
        unit = f" {quantities[key].unit}" if quantities and key in quantities else ""
        lines.append(f"{indent}  where {name} = {key} = {x.inputs[name]:,}{unit} (explain {key} for its derivation)")
    for c in x.children:
        lines.append(render_explanation(c, indent + "    ", quantities))
    return "\n".join(lines)


LINEAR_GROUPS = ("attention", "mlp", "experts", "shared_experts")


def parse_weight_dtypes(text: str | Mapping[str, str] | None, spec: ModelSpec) -> dict[str, DType]:
    """'auto' (checkpoint: bf16 + quantization_config); a single dtype ('int4'), which quantizes the linear layers
    of the blocks (attention, MLP, experts) and keeps embeddings, LM head, norms and routers at 16 bits, as AWQ,
    GPTQ, bitsandbytes and compressed-tensors do; or per group 'experts=int4,embedding=int8,*=bf16' ('*' is every
    group not named)."""
    from transformer_math.analysis.params import GROUPS

    out: dict[str, DType] = {"*": parse_dtype("bf16")}
    if text is None or text == "auto":
        out.update((g, parse_dtype(d)) for g, d in spec.quantized)
        return out
    items = list(text.items()) if isinstance(text, Mapping) else [
        tuple(p.split("=", 1)) if "=" in p else (None, p) for p in str(text).split(",") if p.strip()]
    from transformer_math.analysis import gguf

    for group, d in items:
        name = str(d).strip().lower()
        if group is None and name in gguf.SCHEMES:  # a GGUF scheme: every tensor as llama-quantize types it
            out.update(gguf.scheme_dtypes(spec, name))
            continue
        if group is None:  # a bare dtype: the linear layers inside the blocks
            dt = _weight_dtype(d, "weight_dtype")
            out.update((g, dt) for g in LINEAR_GROUPS)
            continue
        group = group.strip()
        if group != "*" and group not in GROUPS:
            raise TmathError("weight_dtype", group, f"a tensor group: * or one of {', '.join(GROUPS)}")
        out[group] = _weight_dtype(d, f"weight_dtype[{group}]", scheme_ok=False)
    return out


def weight_dtype_help() -> str:
    from transformer_math.analysis import gguf
    from transformer_math.units import DTYPE_NAMES

    return (f"auto; a dtype for the linear layers ({', '.join(DTYPE_NAMES)}; int4-g64, int4-g128-zp, …); a GGUF "
            f"scheme for the whole model ({', '.join(gguf.SCHEMES)}); or per group: experts=int4,*=bf16")


def _weight_dtype(text: object, field: str, *, scheme_ok: bool = True) -> DType:
    from transformer_math.analysis import gguf

    name = str(text).strip().lower()
    if not scheme_ok and name in gguf.SCHEMES and name not in gguf.GGUF_TYPES:
        raise TmathError(field, text, "a tensor type (a GGUF scheme such as q4_k_m applies to the whole model: "
                                      "--weight-dtype q4_k_m alone); " + weight_dtype_help())
    try:
        return parse_dtype(text, field=field)
    except TmathError as e:
        if e.allowed != DTYPE_HELP:  # a known format with a bad group size or zero-point: that message
            raise
        raise TmathError(field, text, weight_dtype_help()) from None


def describe_weight_dtypes(wd: Mapping[str, DType]) -> str:
    """'attention, mlp, experts: int4; other groups: bf16' — what a --weight-dtype choice means, printed."""
    by: dict[str, list[str]] = {}
    for g, d in wd.items():
        if g != "*":
            by.setdefault(d.name, []).append(g)
    parts = [f"{', '.join(gs)}: {name}" for name, gs in by.items()]
    return "; ".join(parts + [f"{'other groups' if parts else 'every group'}: {wd['*'].name}"])


def _positive(name: str, value: object, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise TmathError(name, value, f"an integer from 1 to {high}")
    return value


def analyze(model: str | os.PathLike[str] | Mapping[str, Any] | ModelSpec, *, batch: int = 1, context: int = 2048,
            weight_dtype: str | Mapping[str, str] | None = "auto", kv_dtype: str = "bf16",
            conventions: Conventions | None = None, decoder_tokens: int | None = None) -> Report:
    """Parameters, memory and FLOPs of `model` for B = batch sequences at context L = context.

    An encoder–decoder model reads T_enc = L tokens into its encoder and runs its decoder over T_dec =
    decoder_tokens (default L) tokens; an encoder-only model has no cache and no decode step (no such keys)."""
    spec = load_model(model)
    c = conventions or Conventions()
    if c.attention not in fl.ATTENTION_CONVENTIONS:
        raise TmathError("attention", c.attention, "dense or causal")
    if c.recompute not in mem.RECOMPUTE:
        raise TmathError("recompute", c.recompute, "none, selective or full")
    if c.activations not in mem.PROFILES:
        raise TmathError("activations", c.activations, "fused, eager or reference")
    B, L = _positive("batch", batch, MAX_TOKENS), _positive("context", context, MAX_TOKENS)
    if B * L > MAX_TOKENS:
        raise TmathError("batch×context", B * L, f"at most {MAX_TOKENS} tokens")
    if decoder_tokens is not None and spec.arch != "encoder_decoder":
        raise TmathError("decoder_tokens", decoder_tokens, "only for encoder_decoder models (this one is "
                         f"{spec.arch}-only)")
    T_enc = L if spec.arch == "encoder_decoder" else 0
    T = L if decoder_tokens is None else _positive("decoder_tokens", decoder_tokens, MAX_TOKENS // B)
    wd, kv = parse_weight_dtypes(weight_dtype, spec), parse_dtype(kv_dtype, field="kv_dtype")
    params = params_breakdown(spec)
    P_active = active_params(spec, params, convention=c.active)
    P = int(params.value)
    grads, opt = mem.training_state_bytes(P)
    quantities = {
        "params.total": params,
        "params.active": P_active,
        "memory.weights_bytes": mem.weights_bytes(spec, params, wd),
        "memory.kv_cache_bytes": mem.kv_cache_bytes(spec, B=B, L=T, kv=kv, T_enc=T_enc),
        "memory.gradients_bytes": grads,
        "memory.optimizer_bytes": opt,
        "memory.activations_bytes": mem.activation_bytes(spec, B=B, T=T, recompute=c.recompute,
                                                         profile=c.activations, T_enc=T_enc),
        "flops.prefill": fl.forward_flops(spec, B=B, T=T, attention=c.attention, key="flops.prefill",
                                          symbol="F_prefill", T_enc=T_enc),
        "flops.decode_token": fl.forward_flops(spec, B=B, T=1, L=T, decode=True, key="flops.decode_token",
                                               T_enc=T_enc),
        "flops.train_step": fl.train_step_flops(spec, B=B, T=T, recompute=c.recompute, attention=c.attention,
                                                T_enc=T_enc),
    }
    if spec.arch == "encoder":  # bidirectional: nothing is cached, nothing decoded token by token
        del quantities["memory.kv_cache_bytes"], quantities["flops.decode_token"]
    warnings = (f"context L = {L} exceeds the model's L_max = {spec.max_context} (numbers are for L as given)",
                ) if L > spec.max_context else ()
    return Report(spec=spec, batch=B, context=L, decoder_tokens=T if T_enc else None, conventions=c,
                  weight_dtypes=wd, kv_dtype=kv, quantities=quantities, warnings=warnings)
