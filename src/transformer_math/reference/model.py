"""The decoder-only model from any ModelSpec, its blocks, and loading Hugging Face weights.

    x⁰ = W_E[ids]·embed_scale (+ W_pos[p] learned, GPT-2)
    each of the N_L blocks, by norm placement (n_norm norms per layer):
      pre      (Llama):        x ← x + Attn(Norm(x));          x ← x + MLP(Norm(x))
      post     (OLMo-2):       x ← x + Norm(Attn(x));          x ← x + Norm(MLP(x))
      sandwich (Gemma 2/3):    x ← x + Norm(Attn(Norm(x)));    x ← x + Norm(MLP(Norm(x)))
      parallel (GPT-NeoX):     x ← x + Attn(Norm₁(x)) + MLP(Norm₂(x))
    logits = Norm(x)·W_LM (W_LM = W_Eᵀ when tied, 1_tie),  then c_logit·tanh(logits/c_logit) if soft-capped

Layers with LayerSpec.mlp == "moe" use transformer_math.reference.moe.MoE(spec); a spec with MLA uses
transformer_math.reference.mla.MLA(spec, layer_index): both imported only when such a layer is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from transformer_math.config.spec import ModelSpec
from transformer_math.reference.attention import Attention
from transformer_math.reference.cache import ModelCache
from transformer_math.reference.details import Details, details_for
from transformer_math.reference.mlp import MLP
from transformer_math.reference.norms import make_norm
from transformer_math.reference.positions import sinusoidal_positions


def make_attention(spec: ModelSpec, layer_index: int, details: Details) -> nn.Module:
    if spec.mla is not None:
        from transformer_math.reference.mla import MLA  # written beside this module; imported only when needed

        return MLA(spec, layer_index)
    return Attention(spec, layer_index, details)


def make_mlp(spec: ModelSpec, layer_index: int) -> nn.Module:
    layer = spec.layers[layer_index]
    if layer.mlp == "moe":
        from transformer_math.reference.moe import MoE

        return MoE(spec)
    return MLP(spec.d_model, layer.d_ff, act=spec.activation, n_up=spec.n_up, bias=spec.mlp_bias)


class Block(nn.Module):
    """One decoder layer. Norms present by placement: pre → *_in; post → *_out; sandwich → both."""

    def __init__(self, spec: ModelSpec, layer_index: int, details: Details) -> None:
        super().__init__()
        self.parallel = spec.block == "parallel"
        self.attn = make_attention(spec, layer_index, details)
        self.mlp = make_mlp(spec, layer_index)
        place = spec.norm_placement

        def norm(wanted: bool) -> nn.Module | None:
            return make_norm(spec.norm, spec.d_model, details.norm_eps, details.norm_offset) if wanted else None

        self.norm_attn_in, self.norm_mlp_in = norm(place != "post"), norm(place != "post")
        self.norm_attn_out, self.norm_mlp_out = norm(place != "pre"), norm(place != "pre")

    @staticmethod
    def _maybe(norm: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
        return x if norm is None else norm(x)

    def forward(self, x_BTD: torch.Tensor, pos_T: torch.Tensor, cache: object = None, *, causal: bool = True,
                prefix: int = 0) -> torch.Tensor:
        a = self._maybe(self.norm_attn_out,
                        self.attn(self._maybe(self.norm_attn_in, x_BTD), pos_T, cache, causal=causal, prefix=prefix))
        if self.parallel:  # both branches read the same x
            return x_BTD + a + self._maybe(self.norm_mlp_out, self.mlp(self._maybe(self.norm_mlp_in, x_BTD)))
        x_BTD = x_BTD + a
        return x_BTD + self._maybe(self.norm_mlp_out, self.mlp(self._maybe(self.norm_mlp_in, x_BTD)))


class Model(nn.Module):
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
                prefix: int = 0) -> torch.Tensor:
        """Logits B×T×V of the T new tokens; with a cache, they continue the `cache.seen` tokens before them."""
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


# Hugging Face parameter names → ours. Each family's rename rules apply in order (first match wins); fused
# tensors (Phi-3 qkv_proj / gate_up_proj, GPT-2 c_attn, GPT-NeoX query_key_value) are split afterwards.
_LLAMA_LIKE = [
    (r"^model\.embed_tokens\.", "embed."), (r"^model\.norm\.", "final_norm."), (r"^lm_head\.", "lm_head."),
    (r"^model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.", r"layers.\1.attn.\2."),
    (r"^model\.layers\.(\d+)\.self_attn\.(q_norm|k_norm|sinks)", r"layers.\1.attn.\2"),
    (r"^model\.layers\.(\d+)\.self_attn\.qkv_proj\.", r"layers.\1.attn.qkv."),
    (r"^model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.", r"layers.\1.mlp.\2."),
    (r"^model\.layers\.(\d+)\.mlp\.gate_up_proj\.", r"layers.\1.mlp.gate_up."),
    (r"^model\.layers\.(\d+)\.input_layernorm\.", r"layers.\1.norm_attn_in."),
    (r"^model\.layers\.(\d+)\.pre_feedforward_layernorm\.", r"layers.\1.norm_mlp_in."),
    (r"^model\.layers\.(\d+)\.post_feedforward_layernorm\.", r"layers.\1.norm_mlp_out."),
]
_GPT2 = [
    (r"^transformer\.wte\.", "embed."), (r"^transformer\.wpe\.", "pos_embed."),
    (r"^transformer\.ln_f\.", "final_norm."), (r"^lm_head\.", "lm_head."),
    (r"^transformer\.h\.(\d+)\.ln_1\.", r"layers.\1.norm_attn_in."),
    (r"^transformer\.h\.(\d+)\.ln_2\.", r"layers.\1.norm_mlp_in."),
    (r"^transformer\.h\.(\d+)\.attn\.c_attn\.", r"layers.\1.attn.qkv_conv1d."),
    (r"^transformer\.h\.(\d+)\.attn\.c_proj\.", r"layers.\1.attn.o_conv1d."),
    (r"^transformer\.h\.(\d+)\.mlp\.c_fc\.", r"layers.\1.mlp.up_conv1d."),
    (r"^transformer\.h\.(\d+)\.mlp\.c_proj\.", r"layers.\1.mlp.down_conv1d."),
]
_NEOX = [
    (r"^gpt_neox\.embed_in\.", "embed."), (r"^gpt_neox\.final_layer_norm\.", "final_norm."),
    (r"^(embed_out|lm_head)\.", "lm_head."),
    (r"^gpt_neox\.layers\.(\d+)\.input_layernorm\.", r"layers.\1.norm_attn_in."),
    (r"^gpt_neox\.layers\.(\d+)\.post_attention_layernorm\.", r"layers.\1.norm_mlp_in."),
    (r"^gpt_neox\.layers\.(\d+)\.attention\.query_key_value\.", r"layers.\1.attn.qkv_per_head."),
    (r"^gpt_neox\.layers\.(\d+)\.attention\.dense\.", r"layers.\1.attn.o."),
    (r"^gpt_neox\.layers\.(\d+)\.mlp\.dense_h_to_4h\.", r"layers.\1.mlp.up."),
    (r"^gpt_neox\.layers\.(\d+)\.mlp\.dense_4h_to_h\.", r"layers.\1.mlp.down."),
]
_SKIP = re.compile(r"(rotary_emb|inv_freq|embed_scale|attn\.bias$|attn\.masked_bias$)")


def _rules(spec: ModelSpec) -> list[tuple[str, str]]:
    if spec.family == "gpt2":
        return _GPT2
    if spec.family == "gpt_neox":
        return _NEOX
    # post_attention_layernorm is the norm before the MLP (pre) or after attention (post, sandwich)
    after_attn = "norm_mlp_in" if spec.norm_placement == "pre" else "norm_attn_out"
    return [*_LLAMA_LIKE, (r"^model\.layers\.(\d+)\.post_attention_layernorm\.", rf"layers.\1.{after_attn}.")]


def _rename(spec: ModelSpec, name: str) -> str | None:
    for pattern, repl in _rules(spec):
        if re.search(pattern, name):
            return re.sub(pattern, repl, name)
    return None


def _split(spec: ModelSpec, name: str, t: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our tensors from one (possibly fused) HF tensor already renamed."""
    q_w, kv_w = spec.n_heads * spec.head_dim, spec.n_kv_heads * spec.head_dim
    stem, _, leaf = name.rpartition(".")
    base, _, part = stem.rpartition(".")
    if part == "qkv":  # Phi-3: rows [W_Q; W_K; W_V]
        q, k, v = t.split((q_w, kv_w, kv_w), dim=0)
        return {f"{base}.q.{leaf}": q, f"{base}.k.{leaf}": k, f"{base}.v.{leaf}": v}
    if part == "gate_up":  # Phi-3: rows [W_gate; W_up]
        gate, up = t.chunk(2, dim=0)
        return {f"{base}.gate.{leaf}": gate, f"{base}.up.{leaf}": up}
    if part == "qkv_per_head":  # GPT-NeoX: rows grouped by head, each head [q; k; v]
        per_head = t.reshape(spec.n_heads, 3, spec.head_dim, *t.shape[1:])
        return {f"{base}.{n}.{leaf}": per_head[:, j].reshape(q_w, *t.shape[1:]) for j, n in enumerate("qkv")}
    if part.endswith("_conv1d"):  # GPT-2 Conv1D stores W as d_in×d_out: y = x·W + b
        t = t.t() if leaf == "weight" else t
        if part == "qkv_conv1d":
            q, k, v = t.split((q_w, kv_w, kv_w), dim=0)
            return {f"{base}.q.{leaf}": q, f"{base}.k.{leaf}": k, f"{base}.v.{leaf}": v}
        return {f"{base}.{part.removesuffix('_conv1d')}.{leaf}": t}
    return {name: t}


def convert_hf_state_dict(spec: ModelSpec, hf_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our names for a Hugging Face state dict; buffers (RoPE ω, masks, embedding scale) dropped."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for name, t in hf_state_dict.items():
        ours = _rename(spec, name)
        if ours is None:
            if not _SKIP.search(name):
                unknown.append(name)
            continue
        out.update(_split(spec, ours, t))
    if unknown:
        raise KeyError(f"no reference name for {unknown[:5]} ({len(unknown)} in all)")
    if spec.tie_embeddings:
        out["lm_head.weight"] = out["embed.weight"]
    return out


def load_hf_state_dict(model: Model, hf_state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy a Hugging Face *ForCausalLM state dict into `model` (every parameter must be matched)."""
    model.load_state_dict(convert_hf_state_dict(model.spec, hf_state_dict), strict=True)
