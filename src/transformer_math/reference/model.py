"""The decoder-only model from any ModelSpec, its blocks, and loading Hugging Face weights.

    x⁰ = W_E[ids]·embed_scale (+ W_pos[p] learned, GPT-2)
    each of the N_L blocks, by norm placement (n_norm norms per layer):
      pre      (Llama):        x ← x + Attn(Norm(x));          x ← x + MLP(Norm(x))
      post     (OLMo-2):       x ← x + Norm(Attn(x));          x ← x + Norm(MLP(x))
      sandwich (Gemma 2/3):    x ← x + Norm(Attn(Norm(x)));    x ← x + Norm(MLP(Norm(x)))
      parallel (GPT-NeoX):     x ← x + Attn(Norm₁(x)) + MLP(Norm₂(x))
      post_add (BERT):         x ← Norm(x + Attn(x));          x ← Norm(x + MLP(x))
    logits = Norm(x)·W_LM (W_LM = W_Eᵀ when tied, 1_tie),  then c_logit·tanh(logits/c_logit) if soft-capped

Layers with LayerSpec.mlp == "moe" use transformer_math.reference.moe.MoE(spec, …) with the routing settings the
spec lacks (DeepSeek's groups and ρ, gpt-oss's SwiGLU limit) from the Details; a spec with MLA uses
transformer_math.reference.mla.MLA(spec, layer_index, details, rope=…): both imported only when such a layer is
built. Hugging Face names and layouts → ours: hf_names.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import torch
from torch import nn

from transformer_math.config.spec import ModelSpec
from transformer_math.reference.attention import Attention
from transformer_math.reference.cache import ModelCache
from transformer_math.reference.details import Details, details_for
from transformer_math.reference.hf_names import convert_hf_state_dict
from transformer_math.reference.mlp import MLP
from transformer_math.reference.norms import make_norm
from transformer_math.reference.positions import sinusoidal_positions


def make_attention(spec: ModelSpec, layer_index: int, details: Details) -> nn.Module:
    if spec.mla is not None:
        from transformer_math.reference.mla import MLA  # written beside this module; imported only when needed

        return MLA(spec, layer_index, details, rope=details.mla_rope, interleaved=details.rope_interleave)
    if spec.layers[layer_index].attention == "linear":
        from transformer_math.reference.linear_attention import LinearAttention  # imported only when needed

        return LinearAttention(spec, layer_index, details)
    return Attention(spec, layer_index, details)


def make_mlp(spec: ModelSpec, layer_index: int, details: Details) -> nn.Module:
    layer = spec.layers[layer_index]
    if layer.mlp == "moe":
        from transformer_math.reference.moe import MoE

        return MoE(spec, n_group=details.n_group, topk_group=details.topk_group,
                   routed_scaling=details.routed_scaling, swiglu_limit=details.swiglu_limit)
    return MLP(spec.d_model, layer.d_ff, act=spec.activation, n_up=spec.n_up, bias=spec.mlp_bias)


def _norm(norm: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    return x if norm is None else norm(x)


def residual(x_BTD: torch.Tensor, f: Callable[[torch.Tensor], torch.Tensor], norm_in: nn.Module | None,
             norm_out: nn.Module | None, post_add: bool) -> torch.Tensor:
    """One sublayer on the residual stream, with its norms where the placement puts them."""
    if post_add:
        assert norm_out is not None
        return norm_out(x_BTD + f(x_BTD))
    return x_BTD + _norm(norm_out, f(_norm(norm_in, x_BTD)))


def encoder_view(spec: ModelSpec) -> ModelSpec:
    """The encoder stack of an encoder–decoder spec as a spec of its own (its layers at spec.layers)."""
    return replace(spec, arch="encoder", n_layers=len(spec.encoder_layers), layers=spec.encoder_layers,
                   encoder_layers=())


class Block(nn.Module):
    """One layer. Norms present by placement: pre → *_in; post, post_add → *_out; sandwich → both."""

    def __init__(self, spec: ModelSpec, layer_index: int, details: Details, *, encoder: bool = False) -> None:
        super().__init__()
        self.parallel, self.post_add = spec.block == "parallel", spec.norm_placement == "post_add"
        layer_spec = encoder_view(spec) if encoder else spec
        self.attn = make_attention(layer_spec, layer_index, details)
        self.mlp = make_mlp(layer_spec, layer_index, details)
        self.norm_attn_in, self.norm_mlp_in = self.norm(spec, details, "in"), self.norm(spec, details, "in")
        self.norm_attn_out, self.norm_mlp_out = self.norm(spec, details, "out"), self.norm(spec, details, "out")

    @staticmethod
    def norm(spec: ModelSpec, details: Details, side: str) -> nn.Module | None:
        """The norm before ("in") or after ("out") a sublayer, if the placement has one there."""
        place = spec.norm_placement
        wanted = place in ("pre", "sandwich") if side == "in" else place != "pre"
        return make_norm(spec.norm, spec.d_model, details.norm_eps, details.norm_offset) if wanted else None

    def forward(self, x_BTD: torch.Tensor, pos_T: torch.Tensor, cache: object = None, *, causal: bool = True,
                prefix: int = 0, **attn_kw: torch.Tensor) -> torch.Tensor:
        """attn_kw: a score `bias` for the attention (T5's relative positions), passed on when given."""
        def attend(h: torch.Tensor) -> torch.Tensor:
            return self.attn(h, pos_T, cache, causal=causal, prefix=prefix, **attn_kw)

        if self.parallel:  # both branches read the same x
            a = _norm(self.norm_attn_out, attend(_norm(self.norm_attn_in, x_BTD)))
            return x_BTD + a + _norm(self.norm_mlp_out, self.mlp(_norm(self.norm_mlp_in, x_BTD)))
        x_BTD = residual(x_BTD, attend, self.norm_attn_in, self.norm_attn_out, self.post_add)
        return residual(x_BTD, self.mlp, self.norm_mlp_in, self.norm_mlp_out, self.post_add)


class Model(nn.Module):
    """The decoder of `spec`: forward(ids_BT, cache=None) -> logits_BTV; new_cache(); aux_losses() of its MoE layers."""

    def __init__(self, spec: ModelSpec, details: Details | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.details = det = details or details_for(spec)
        d, V = spec.d_model, spec.vocab_size
        self.embed = nn.Embedding(V, d)
        self.pos_embed = nn.Embedding(spec.max_context, d) if spec.learned_positions else None
        self.layers = nn.ModuleList(Block(spec, i, det) for i in range(spec.n_layers))
        self.final_norm = make_norm(spec.norm, d, det.norm_eps, det.norm_offset)
        self.lm_head = nn.Linear(d, V, bias=False)
        if spec.tie_embeddings:
            self.lm_head.weight = self.embed.weight  # one matrix, counted once

    def new_cache(self) -> ModelCache:
        return ModelCache([block.attn.new_cache() for block in self.layers])  # type: ignore[union-attr,operator]

    def forward(self, ids_BT: torch.Tensor, cache: ModelCache | None = None, *, causal: bool = True,
                prefix: int | None = None) -> torch.Tensor:
        """Logits B×T×V of the T new tokens; with a cache, they continue the `cache.seen` tokens before them.
        prefix: tokens that see each other both ways (prefix-LM), spec.prefix_length unless given."""
        prefix = self.spec.prefix_length if prefix is None else prefix
        start = cache.seen if cache is not None else 0
        T = ids_BT.shape[1]
        pos_T = torch.arange(start, start + T, device=ids_BT.device)
        x_BTD = self.embed(ids_BT) * torch.tensor(self.details.embed_scale, dtype=self.embed.weight.dtype)
        if self.pos_embed is not None:
            x_BTD = x_BTD + self.pos_embed(pos_T)
        if self.details.sinusoidal:
            x_BTD = x_BTD + sinusoidal_positions(pos_T, self.spec.d_model).to(x_BTD.dtype)
        for i, block in enumerate(self.layers):
            x_BTD = block(x_BTD, pos_T, None if cache is None else cache.layers[i], causal=causal, prefix=prefix)
        if cache is not None:
            cache.seen += T
        logits_BTV = self.lm_head(self.final_norm(x_BTD))
        c = self.spec.logit_softcap
        return logits_BTV if c is None else c * torch.tanh(logits_BTV / c)

    def aux_losses(self) -> list[torch.Tensor]:
        """Auxiliary losses the MoE layers recorded in the last forward (none for dense models)."""
        out: list[torch.Tensor] = []
        for block in self.layers:
            out += list((getattr(block.mlp, "aux_losses", None) or {}).values())  # MoE: name → loss
        return out


@torch.no_grad()
def generate_greedy(model: Model, ids_BT: torch.Tensor, n_new: int, *, use_cache: bool = True) -> torch.Tensor:
    """Append n_new argmax tokens: with the cache, one token per step; without, recomputing the whole prefix."""
    cache = model.new_cache() if use_cache else None
    out, step = ids_BT, ids_BT
    for _ in range(n_new):
        logits = model(step, cache) if use_cache else model(out)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        out = torch.cat((out, nxt), dim=1)
        step = nxt if use_cache else out
    return out


def load_hf_state_dict(model: nn.Module, hf_state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy a Hugging Face state dict (*ForCausalLM, BertForMaskedLM, T5ForConditionalGeneration) into `model`
    (every parameter must be matched)."""
    model.load_state_dict(convert_hf_state_dict(model.spec, hf_state_dict), strict=True)  # type: ignore[arg-type]
