"""What a ModelSpec leaves out but the arithmetic needs: norm ε, the RoPE recipe, the score scale, Gemma's quirks.

A ModelSpec counts (parameters, bytes, FLOPs); it does not carry numbers that change no shape, such as the norm
ε or the RoPE frequency recipe. `Details` holds them. `details_for(spec)` guesses them from the family (the
defaults of its transformers config class); `details_from_hf(config)` reads them from a config.json dict, which
is what the equality tests use. Besides ε and the RoPE recipe (a second one, `rope_local`, for Gemma 3's local
layers) it holds Gemma's RMSNorm offset (weights scale by 1 + w) and √d embedding scale, the score scale
(default 1/√d_h), and the routing and MLA settings the MoE and MLA modules take. `details_for` reads s_rope as
linear scaling. This module imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from transformer_math.config.spec import ModelSpec

ROPE_KINDS = ("default", "linear", "dynamic", "llama3", "yarn")


@dataclass(frozen=True, kw_only=True, slots=True)
class RopeConfig:
    """One RoPE recipe: θ_base, the share f_rot of d_h it rotates, and how it stretches positions.

    kind: default | linear (positions / s_rope) | dynamic (NTK: θ_base grows once T passes L_orig)
    | llama3 (long wavelengths / s_rope, short ones kept, a smooth ramp between) | yarn (NTK-by-parts
    ramp between interpolation and extrapolation, plus an attention temperature on cos and sin).
    """

    theta: float = 10000.0
    fraction: float = 1.0
    kind: str = "default"
    factor: float = 1.0
    original_context: int | None = None
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    attention_factor: float | None = None
    truncate: bool = True  # YaRN: round the ramp's ends to whole channels (gpt-oss: False)

    def __post_init__(self) -> None:
        if self.kind not in ROPE_KINDS:
            raise ValueError(f"rope kind {self.kind!r}: one of {', '.join(ROPE_KINDS)}")

    @classmethod
    def from_hf(cls, params: Mapping[str, Any], *, fraction: float = 1.0, max_context: int | None = None,
                theta: float = 10000.0) -> RopeConfig:
        """From one Hugging Face rope_parameters dict (rope_type, rope_theta, factor, …)."""
        kind = str(params.get("rope_type", params.get("type", "default")))
        return cls(theta=float(params.get("rope_theta", theta)),
                   fraction=float(params.get("partial_rotary_factor", fraction)), kind=kind,
                   factor=float(params.get("factor", 1.0) or 1.0),
                   original_context=params.get("original_max_position_embeddings", max_context),
                   low_freq_factor=float(params.get("low_freq_factor", 1.0)),
                   high_freq_factor=float(params.get("high_freq_factor", 4.0)),
                   beta_fast=float(params.get("beta_fast", 32.0) or 32.0),
                   beta_slow=float(params.get("beta_slow", 1.0) or 1.0),
                   attention_factor=params.get("attention_factor"),
                   truncate=bool(params.get("truncate", True)))


@dataclass(frozen=True, kw_only=True, slots=True)
class Details:
    """Shape-free numbers of one model. rope_local (if set) serves sliding/chunked layers (Gemma 3: θ_base = 10⁴)."""

    norm_eps: float = 1e-6
    norm_offset: float = 0.0  # Gemma's RMSNorm scales by (1 + w): offset 1
    rope: RopeConfig = field(default_factory=RopeConfig)
    rope_local: RopeConfig | None = None
    attn_scale: float | None = None  # None: 1/√d_h
    embed_scale: float = 1.0  # Gemma: √d
    alibi: bool = False  # ALiBi bias instead of (or besides) positions in the embedding
    sinusoidal: bool = False  # fixed sinusoidal absolute positions added to the embedding
    # MoE routing (None: the family's defaults in moe.MoE): DeepSeek's groups and scale ρ, gpt-oss's SwiGLU limit
    n_group: int | None = None
    topk_group: int | None = None
    routed_scaling: float | None = None
    swiglu_limit: float | None = None
    # MLA (DeepSeek): the HF rope_parameters dict as mla.MLA reads it (YaRN's mscale, mscale_all_dim), and whether
    # the rotated pairs are interleaved (x_2i, x_2i+1) as DeepSeek's checkpoints store them
    mla_rope: Mapping[str, Any] | None = field(default=None, compare=False)
    rope_interleave: bool = True
    # T5: relative positions farther apart than this share the last bucket; the decoder output is scaled by d^-½
    # before a tied LM head (head_scale)
    relative_max_distance: int = 128
    head_scale: float = 1.0


def details_for(spec: ModelSpec) -> Details:
    """Family defaults (those of the transformers config classes) for a spec alone.

    spec.rope_scaling is read as linear scaling: the spec does not say which recipe (llama3, YaRN) stretched the
    positions, so pass details_from_hf(config) when the config is at hand.
    """
    gemma = spec.family in ("gemma2", "gemma3")
    rope = RopeConfig(theta=spec.rope_theta or (1e6 if spec.family == "gemma3" else 10000.0),
                      fraction=spec.rotary_fraction, kind="linear" if spec.rope_scaling else "default",
                      factor=spec.rope_scaling or 1.0)
    local = RopeConfig(theta=10000.0, fraction=spec.rotary_fraction) if spec.family == "gemma3" else None
    eps = {"bert": 1e-12}.get(spec.family, 1e-5 if spec.norm == "layernorm" or spec.family == "phi3" else 1e-6)
    t5 = spec.family == "t5"
    return Details(norm_eps=eps, norm_offset=1.0 if gemma else 0.0, rope=rope, rope_local=local,
                   embed_scale=math.sqrt(spec.d_model) if gemma else 1.0, attn_scale=1.0 if t5 else None,
                   head_scale=spec.d_model ** -0.5 if t5 and spec.tie_embeddings else 1.0)


def details_from_hf(config: Mapping[str, Any]) -> Details:
    """Read the shape-free numbers from a Hugging Face config dict (a text config: what
    `AutoConfig.for_model(...).to_dict()` gives, or a config.json's text_config)."""
    c = dict(config)
    if isinstance(c.get("text_config"), Mapping):
        c = dict(c["text_config"])
    family = str(c.get("model_type", ""))
    gemma = family.startswith(("gemma2", "gemma3"))
    eps = next((float(c[k]) for k in ("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "norm_eps")
                if c.get(k) is not None), 1e-6)
    max_ctx = c.get("max_position_embeddings") or c.get("n_positions")
    fraction = float(c.get("partial_rotary_factor") or c.get("rotary_pct") or 1.0)
    theta = float(c.get("rope_theta") or c.get("rotary_emb_base") or 10000.0)
    params = c.get("rope_parameters") or c.get("rope_scaling") or {}
    local = None
    if "full_attention" in params or "sliding_attention" in params:  # one recipe per layer type (Gemma 3)
        full = params.get("full_attention") or {}
        rope = RopeConfig.from_hf(full, fraction=fraction, max_context=max_ctx, theta=theta)
        if "sliding_attention" in params:
            local = RopeConfig.from_hf(params["sliding_attention"], fraction=fraction, max_context=max_ctx)
    else:
        rope = RopeConfig.from_hf(params, fraction=fraction, max_context=max_ctx, theta=theta)
    scalar = c.get("query_pre_attn_scalar")
    d = int(c.get("hidden_size") or c.get("n_embd") or 1)
    n_group, topk_group = c.get("n_group"), c.get("topk_group")
    if family == "deepseek_v2" and c.get("topk_method", "greedy") != "group_limited_greedy":
        n_group = topk_group = 1  # plain greedy top-e: the groups in the config are not used
    scaling, limit = c.get("routed_scaling_factor"), c.get("swiglu_limit")
    mla = c.get("kv_lora_rank") is not None
    t5 = family == "t5"  # unscaled logits q·k; transformers 5 says whether to scale the head in scale_decoder_outputs
    t5_scale = c.get("scale_decoder_outputs", c.get("tie_word_embeddings", True)) if t5 else False
    return Details(norm_eps=eps, norm_offset=1.0 if gemma else 0.0, rope=rope, rope_local=local,
                   attn_scale=1.0 if t5 else float(scalar) ** -0.5 if scalar else None,
                   relative_max_distance=int(c.get("relative_attention_max_distance") or 128),
                   head_scale=int(c.get("d_model") or 1) ** -0.5 if t5_scale else 1.0,
                   embed_scale=math.sqrt(d) if gemma else 1.0,
                   n_group=None if n_group is None else int(n_group),
                   topk_group=None if topk_group is None else int(topk_group),
                   routed_scaling=None if scaling is None else float(scaling),
                   swiglu_limit=None if limit is None else float(limit),
                   mla_rope=dict(params) if mla and params else None,
                   rope_interleave=bool(c.get("rope_interleave", True)))
