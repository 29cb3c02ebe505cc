"""Reference PyTorch modules built from a ModelSpec: short, readable, and equal to the Hugging Face models.

Each module's docstring gives its formulas in the symbols of docs/symbols.md; tensors are named by their shape
(x_BTD: batch × tokens × d; q_BHTD: batch × heads × tokens × d_h; s_BHTS: scores over S keys). Needs torch
(`pip install 'transformer-math[torch]'`); `import transformer_math` never imports this package.

    model = build(spec)                     # or build(spec, details_from_hf(config)) for the exact RoPE/ε
    logits = model(ids_BT)                  # B×T×V
    cache = model.new_cache(); model(ids_BT, cache); model(next_B1, cache)   # cached decoding

Interface for the attention and MLP modules written beside these (mla.py, moe.py)
----------------------------------------------------------------------------------
model.py builds, lazily (imported only when a spec needs them):
  * `transformer_math.reference.mla.MLA(spec, layer_index)` when spec.mla is set — the attention interface of
    attention.py: `forward(x_BTD, pos_T, cache=None, *, causal=True, prefix=0) -> y_BTD` (pos_T: LongTensor of
    the T new tokens' absolute positions, shared by the batch) and `new_cache()` returning a layer cache with
    `update(a, b, pos_T) -> (a_all, b_all, pos_S)` and `nbytes()` (cache.FullCache can hold the latent c_KV as
    `a` and the RoPE key as `b`). Shape-free numbers (norm ε, RoPE recipe) come from `details.details_for(spec)`.
  * `transformer_math.reference.moe.MoE(spec)` for every layer whose LayerSpec.mlp == "moe":
    `forward(x_BTD) -> y_BTD`, with `.aux_losses` (a dict of scalar tensors: load_balance, router_z) after each
    forward; Model.aux_losses() collects them.
load_hf_state_dict maps Hugging Face names and layouts to ours for every family built (hf_names.py).

What the tests check: logits, loss and greedy generation equal tiny random Hugging Face models
(tests/test_reference_dense.py; MoE/MLA models in tests/test_reference_models_moe.py, their blocks and attention
in tests/test_reference_moe_mla.py); cached decoding equals recomputing the prefix (full, ring-buffer window,
chunked, pinned sinks, MLA latents); GQA/MQA equal MHA with repeated K/V heads; and the analyzer equals execution:
`params.total`, FlopCounterMode counts against `flops.prefill` / `flops.decode_token` (SDPA in its math form) and
the MoE/MLA ops (with a capacity factor too: tests/test_moe_capacity.py), cache nbytes() against
`memory.kv_cache_bytes`.
"""

from __future__ import annotations

from transformer_math.config.spec import ModelSpec
from transformer_math.reference.attention import Attention, attention_mask
from transformer_math.reference.cache import FullCache, ModelCache, WindowCache
from transformer_math.reference.details import Details, RopeConfig, details_for, details_from_hf
from transformer_math.reference.encoder import (
    CrossAttention,
    EncoderDecoderCache,
    EncoderDecoderModel,
    EncoderModel,
    RelativeBias,
    relative_bucket,
)
from transformer_math.reference.generate import GenerationConfig, generate
from transformer_math.reference.hf_names import convert_hf_state_dict
from transformer_math.reference.latent import LatentBlock
from transformer_math.reference.mlp import MLP
from transformer_math.reference.model import Block, Model, generate_greedy, load_hf_state_dict
from transformer_math.reference.norms import LayerNorm, RMSNorm
from transformer_math.reference.positions import RoPE, alibi_bias, alibi_slopes, rope_frequencies, sinusoidal_positions


def build(spec: ModelSpec, details: Details | None = None) -> Model | EncoderModel | EncoderDecoderModel:
    """The reference model of `spec` by its arch (fp32, random weights; load_hf_state_dict fills them)."""
    if spec.arch == "encoder":
        return EncoderModel(spec, details)
    if spec.arch == "encoder_decoder":
        return EncoderDecoderModel(spec, details)
    return Model(spec, details)


__all__ = [
    "MLP", "Attention", "Block", "CrossAttention", "EncoderDecoderCache", "EncoderDecoderModel", "EncoderModel",
    "RelativeBias", "relative_bucket", "Details", "FullCache", "GenerationConfig", "LatentBlock", "LayerNorm", "Model",
    "ModelCache", "RMSNorm", "RoPE", "RopeConfig", "WindowCache", "alibi_bias", "alibi_slopes", "attention_mask",
    "build", "convert_hf_state_dict", "details_for", "details_from_hf", "generate", "generate_greedy",
    "load_hf_state_dict", "rope_frequencies", "sinusoidal_positions",
]
