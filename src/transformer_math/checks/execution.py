"""Measure the real Hugging Face implementation on PyTorch's meta device (needs the [test] extra).

Nothing here is imported by `transformer_math` itself; tests join these measurements to analyze().
On the meta device no memory is allocated and no arithmetic runs, so full-size models (405B, 671B)
build in seconds while FlopCounterMode still sees every matmul's shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

try:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoConfig, AutoModelForCausalLM
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("transformer_math.checks.execution needs torch and transformers: "
                      "pip install 'transformer-math[test]'") from e

_WRAPPERS = {"gemma3": "text_config", "llama4": "text_config"}


def hf_text_config(config: Mapping[str, Any]) -> Any:
    """The transformers config of the language model a config.json describes (unquantized, eager attention)."""
    cfg = dict(config)
    if cfg.get("model_type") in _WRAPPERS:
        cfg = dict(cfg["text_config"])
        cfg.setdefault("model_type", config["model_type"] + "_text")
    cfg.pop("quantization_config", None)
    model_type = cfg.pop("model_type")
    for key in ("architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path", "auto_map"):
        cfg.pop(key, None)
    if isinstance(cfg.get("attn_temperature_tuning"), int):  # Scout's file says 4; transformers 5 wants a bool
        cfg["attn_temperature_tuning"] = bool(cfg["attn_temperature_tuning"])
    return AutoConfig.for_model(model_type, **cfg)


def build_meta(config: Mapping[str, Any], dtype: Any = None, experts: str = "batched_mm") -> Any:
    """The *ForCausalLM on the meta device with eager attention.

    MoE experts run through `experts` ('batched_mm': one bmm over the routed (token, expert) pairs, which
    FlopCounterMode sees — the default grouped path is invisible to it; 'grouped_mm': what training uses,
    whose saved tensors are activations rather than gathered weight copies).
    """
    hf = hf_text_config(config)
    kw = {"experts_implementation": experts} if any(
        k in hf.to_dict() for k in ("num_local_experts", "num_experts", "n_routed_experts")) else {}
    with torch.device("meta"):
        try:
            return AutoModelForCausalLM.from_config(hf, dtype=dtype or torch.bfloat16, attn_implementation="eager",
                                                    **kw)
        except ValueError:  # llama4 has one experts path of its own (every expert on every token)
            return AutoModelForCausalLM.from_config(hf_text_config(config), dtype=dtype or torch.bfloat16,
                                                    attn_implementation="eager")


@dataclass(frozen=True, slots=True)
class Measured:
    params: int
    routed_expert_params: int
    prefill_flops: int
    kv_cache_bytes: int


def count_params(model: Any) -> tuple[int, int]:
    """(Σ numel over parameters, Σ numel of routed-expert tensors)."""
    total = routed = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if ".experts." in name and "shared" not in name:
            routed += p.numel()
    return total, routed


def measure(model: Any, *, batch: int, tokens: int) -> Measured:
    """Parameters, then a bf16 prefill of batch×tokens under FlopCounterMode with a DynamicCache."""
    total, routed = count_params(model)
    ids = torch.zeros((batch, tokens), dtype=torch.long, device="meta")
    mask = torch.ones((batch, tokens), dtype=torch.long, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, use_cache=True)
    cache = out.past_key_values
    kv = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    return Measured(params=total, routed_expert_params=routed, prefill_flops=int(counter.get_total_flops()),
                    kv_cache_bytes=int(kv))


def decode_flops(model: Any, *, batch: int, context: int) -> int:
    """FLOPs FlopCounterMode sees for one decode step of `batch` sequences after a prefill of `context` tokens."""
    ids = torch.zeros((batch, context), dtype=torch.long, device="meta")
    mask = torch.ones((batch, context + 1), dtype=torch.long, device="meta")
    with torch.no_grad():
        cache = model(input_ids=ids, attention_mask=mask[:, :context], use_cache=True).past_key_values
        counter = FlopCounterMode(display=False)
        with counter:
            model(input_ids=ids[:, :1], attention_mask=mask, cache=cache, use_cache=True,
                  position_ids=torch.full((batch, 1), context, dtype=torch.long, device="meta"))
    return int(counter.get_total_flops())


def saved_activation_bytes(model: Any, *, batch: int, tokens: int) -> int:
    """Bytes of distinct tensors autograd saves for backward in one training forward (loss included).

    Tensors that share storage (views, the same input saved by q/k/v projections) count once; parameters
    saved by matmuls are weights, not activations, and are left out. Dropout is off (eval mode, gradients
    on): the formulas count no dropout masks, as modern LLMs train without dropout.
    """
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: Any) -> Any:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in params:
            seen[key] = max(seen.get(key, 0), storage.nbytes())
        return t

    ids = torch.zeros((batch, tokens), dtype=torch.long, device="meta")
    mask = torch.ones((batch, tokens), dtype=torch.long, device="meta")
    model.eval()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, attention_mask=mask, labels=ids, use_cache=False)
    return sum(seen.values())
