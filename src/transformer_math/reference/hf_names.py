"""Hugging Face parameter names and layouts → the reference model's (model.py), for every family it builds.

Each family's rename rules apply in order (first match wins); fused or differently laid-out tensors are then split:
  Phi-3 qkv_proj / gate_up_proj          rows [W_Q; W_K; W_V] and [W_gate; W_up]
  GPT-2 c_attn, c_proj, c_fc (Conv1D)    stored d_in×d_out (y = x·W + b): transposed
  GPT-NeoX query_key_value               rows grouped by head, each head [q; k; v]
  MoE experts, fused 3-D (transformers 5; Mixtral, Qwen-MoE, DeepSeek):
      experts.gate_up_proj  E×2F×D, rows [W_gate,j; W_up,j]      experts.down_proj  E×D×F
  gpt-oss experts (x·W, gate and up interleaved along the last axis: columns 0, 2, 4, … gate; 1, 3, 5, … up):
      experts.gate_up_proj  E×D×2F, gate_up_proj_bias E×2F       experts.down_proj  E×F×D, down_proj_bias E×D
  MoE experts, one per name (checkpoint files): experts.j.{gate,up,down}_proj, Mixtral's
      block_sparse_moe.experts.j.w1 (gate) / w3 (up) / w2 (down): stacked over j into E×F×D and E×D×F
MoE routers: mlp.gate (Mixtral, Qwen, DeepSeek; DeepSeek-V3's e_score_correction_bias a buffer beside it) or
mlp.router with a bias (gpt-oss); shared experts mlp.shared_expert(s).{gate,up,down}_proj and Qwen2-MoE's scalar
gate mlp.shared_expert_gate. MLA (DeepSeek): q_a_proj, q_a_layernorm, q_b_proj (or a full-rank q_proj),
kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj keep their layouts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from transformer_math.config.spec import ModelSpec

_LAYER = r"^model\.layers\.(\d+)\."
_LLAMA_LIKE = [
    (r"^model\.embed_tokens\.", "embed."), (r"^model\.norm\.", "final_norm."), (r"^lm_head\.", "lm_head."),
    (_LAYER + r"self_attn\.([qkvo])_proj\.", r"layers.\1.attn.\2."),
    (_LAYER + r"self_attn\.(q_norm|k_norm|sinks)", r"layers.\1.attn.\2"),
    (_LAYER + r"self_attn\.qkv_proj\.", r"layers.\1.attn.qkv."),
    (_LAYER + r"mlp\.(gate|up|down)_proj\.", r"layers.\1.mlp.\2."),
    (_LAYER + r"mlp\.gate_up_proj\.", r"layers.\1.mlp.gate_up."),
    (_LAYER + r"input_layernorm\.", r"layers.\1.norm_attn_in."),
    (_LAYER + r"pre_feedforward_layernorm\.", r"layers.\1.norm_mlp_in."),
    (_LAYER + r"post_feedforward_layernorm\.", r"layers.\1.norm_mlp_out."),
]
_MOE = [  # before the dense rules; "expert_<part>.<j>" names are stacked over j afterwards
    (_LAYER + r"(?:mlp|block_sparse_moe)\.gate\.e_score_correction_bias$", r"layers.\1.mlp.score_correction_E"),
    (_LAYER + r"(?:mlp|block_sparse_moe)\.(?:gate|router)\.(weight|bias)$", r"layers.\1.mlp.router.\2"),
    (_LAYER + r"mlp\.experts\.(gate_up_proj|down_proj)(_bias)?$", r"layers.\1.mlp.experts_\2\3"),
    (_LAYER + r"mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight$", r"layers.\1.mlp.expert_\3.\2"),
    (_LAYER + r"block_sparse_moe\.experts\.(\d+)\.(w[123])\.weight$", r"layers.\1.mlp.expert_\3.\2"),
    (_LAYER + r"mlp\.shared_experts?\.(gate|up|down)_proj\.", r"layers.\1.mlp.shared_\2_proj."),
    (_LAYER + r"mlp\.shared_expert_gate\.", r"layers.\1.mlp.shared_gate."),
]
_MLA = [  # before the dense rules (q_proj and o_proj keep their names here)
    (_LAYER + r"self_attn\.(q_proj|q_a_proj|q_b_proj|kv_b_proj|o_proj)\.", r"layers.\1.attn.\2."),
    (_LAYER + r"self_attn\.kv_a_proj_with_mqa\.", r"layers.\1.attn.kv_a_proj."),
    (_LAYER + r"self_attn\.(q_a|kv_a)_layernorm\.", r"layers.\1.attn.\2_norm."),
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
_BERT_LAYER = r"^bert\.encoder\.layer\.(\d+)\."
_BERT = [
    (r"^bert\.embeddings\.word_embeddings\.", "embed."), (r"^bert\.embeddings\.position_embeddings\.", "pos_embed."),
    (r"^bert\.embeddings\.token_type_embeddings\.", "type_embed."), (r"^bert\.embeddings\.LayerNorm\.", "embed_norm."),
    (_BERT_LAYER + r"attention\.self\.(query|key|value)\.", lambda m: f"layers.{m[1]}.attn.{m[2][0]}."),
    (_BERT_LAYER + r"attention\.output\.dense\.", r"layers.\1.attn.o."),
    (_BERT_LAYER + r"attention\.output\.LayerNorm\.", r"layers.\1.norm_attn_out."),
    (_BERT_LAYER + r"intermediate\.dense\.", r"layers.\1.mlp.up."),
    (_BERT_LAYER + r"output\.dense\.", r"layers.\1.mlp.down."),
    (_BERT_LAYER + r"output\.LayerNorm\.", r"layers.\1.norm_mlp_out."),
    (r"^cls\.predictions\.transform\.dense\.", "head_transform."),
    (r"^cls\.predictions\.transform\.LayerNorm\.", "head_norm."),
    (r"^cls\.predictions\.decoder\.", "lm_head."), (r"^cls\.predictions\.bias$", "lm_head.bias"),
]
_T5_BLOCK = r"^(encoder|decoder)\.block\.(\d+)\.layer\."
_T5_STACK = {"encoder": "encoder_layers", "decoder": "layers"}
_T5_MLP = {"wi": "up", "wi_0": "gate", "wi_1": "up", "wo": "down"}


def _t5_sublayer(m: re.Match[str]) -> str:
    stack, i, j, part = _T5_STACK[m[1]], m[2], int(m[3]), m[4]
    if part == "layer_norm":  # the norm before sublayer j: self-attention, cross-attention (decoder), MLP
        which = ("attn", "cross", "mlp")[j] if m[1] == "decoder" else ("attn", "mlp")[j]
        return f"{stack}.{i}.norm_{which}_in."
    if part in ("SelfAttention", "EncDecAttention"):
        return f"{stack}.{i}.{'attn' if part == 'SelfAttention' else 'cross'}."
    return f"{stack}.{i}.mlp."


_T5 = [
    (r"^(shared|encoder\.embed_tokens|decoder\.embed_tokens)\.", "embed."), (r"^lm_head\.", "lm_head."),
    (r"^encoder\.final_layer_norm\.", "encoder_norm."), (r"^decoder\.final_layer_norm\.", "final_norm."),
    (_T5_BLOCK + r"0\.SelfAttention\.relative_attention_bias\.",
     lambda m: f"{m[1]}_bias.table."),
    (_T5_BLOCK + r"(\d+)\.DenseReluDense\.(wi_0|wi_1|wi|wo)\.",
     lambda m: f"{_T5_STACK[m[1]]}.{m[2]}.mlp.{_T5_MLP[m[4]]}."),
    (_T5_BLOCK + r"(\d+)\.(layer_norm|SelfAttention|EncDecAttention)\.", _t5_sublayer),
]
_SKIP = re.compile(r"(rotary_emb|inv_freq|embed_scale|attn\.bias$|attn\.masked_bias$)")
_XW_EXPERTS = ("gpt_oss",)  # families whose fused experts are stored x·W with gate/up interleaved
_EXPERT_PART = {"gate": "gate_EFD", "up": "up_EFD", "down": "down_EDF", "w1": "gate_EFD", "w3": "up_EFD",
                "w2": "down_EDF"}
_EXPERT_NAME = re.compile(r"^(layers\.\d+\.mlp)\.expert_(\w+)\.(\d+)$")


def _rules(spec: ModelSpec) -> list[tuple[str, Any]]:
    if spec.family == "bert":
        return _BERT
    if spec.family == "t5":
        return _T5
    if spec.family == "gpt2":
        return _GPT2
    if spec.family == "gpt_neox":
        return _NEOX
    # post_attention_layernorm is the norm before the MLP (pre) or after attention (post, sandwich)
    after_attn = "norm_mlp_in" if spec.norm_placement == "pre" else "norm_attn_out"
    return [*(_MLA if spec.mla is not None else []), *(_MOE if spec.moe is not None else []), *_LLAMA_LIKE,
            (_LAYER + r"post_attention_layernorm\.", rf"layers.\1.{after_attn}.")]


def _rename(spec: ModelSpec, name: str) -> str | None:
    for pattern, repl in _rules(spec):
        if re.search(pattern, name):
            return re.sub(pattern, repl, name)
    return None


def _split_experts(spec: ModelSpec, base: str, leaf: str, t: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our expert tensors from one fused HF expert tensor (`leaf` = experts_gate_up_proj[_bias] / down_proj[_bias])."""
    xw = spec.family in _XW_EXPERTS
    if leaf == "experts_gate_up_proj":
        if xw:  # E×D×2F, interleaved columns
            return {f"{base}.gate_EFD": t[..., 0::2].transpose(1, 2), f"{base}.up_EFD": t[..., 1::2].transpose(1, 2)}
        gate, up = t.chunk(2, dim=1)  # E×2F×D, rows [gate; up]
        return {f"{base}.gate_EFD": gate, f"{base}.up_EFD": up}
    if leaf == "experts_gate_up_proj_bias":
        if xw:
            return {f"{base}.gate_bias_EF": t[:, 0::2], f"{base}.up_bias_EF": t[:, 1::2]}
        gate, up = t.chunk(2, dim=1)
        return {f"{base}.gate_bias_EF": gate, f"{base}.up_bias_EF": up}
    if leaf == "experts_down_proj":
        return {f"{base}.down_EDF": t.transpose(1, 2) if xw else t}
    return {f"{base}.down_bias_ED": t}


def _split(spec: ModelSpec, name: str, t: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our tensors from one (possibly fused) HF tensor already renamed."""
    q_w, kv_w = spec.n_heads * spec.head_dim, spec.n_kv_heads * spec.head_dim
    stem, _, leaf = name.rpartition(".")
    if leaf.startswith("experts_"):
        return _split_experts(spec, stem, leaf, t)
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


def _stack_experts(out: dict[str, torch.Tensor]) -> None:
    """Per-expert matrices (`layers.i.mlp.expert_<part>.<j>`) → one E×… tensor per layer and part, in place."""
    groups: dict[str, dict[int, torch.Tensor]] = {}
    for name in [n for n in out if _EXPERT_NAME.match(n)]:
        m = _EXPERT_NAME.match(name)
        assert m is not None
        groups.setdefault(f"{m[1]}.{_EXPERT_PART[m[2]]}", {})[int(m[3])] = out.pop(name)
    for name, by_j in groups.items():
        out[name] = torch.stack([by_j[j] for j in range(len(by_j))])


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
    _stack_experts(out)
    if spec.tie_embeddings:
        out["lm_head.weight"] = out["embed.weight"]
    if spec.family == "bert" and "lm_head.bias" in out:  # untied, transformers 5 keeps a second, unused bias
        out["lm_head.bias"] = hf_state_dict.get("cls.predictions.decoder.bias", out["lm_head.bias"])
    return out
