"""Memory breakdowns: weights per tensor group and dtype, KV cache per layer kind, training state, activations."""

from __future__ import annotations

from collections.abc import Mapping

from transformer_math.analysis.flops import cached_tokens
from transformer_math.analysis.params import by_group
from transformer_math.analysis.quantity import Quantity, q, total
from transformer_math.config.spec import LayerSpec, ModelSpec
from transformer_math.errors import TmathError
from transformer_math.formulas import memory as f
from transformer_math.units import DType

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

RECOMPUTE = ("none", "selective", "full")


def weights_bytes(s: ModelSpec, params: Quantity, dtypes: Mapping[str, DType]) -> Quantity:
    """memory.weights_bytes: Σ over tensor groups of P_group·b_w(group).

    Expert biases stay at the default dtype when experts are quantized (block formats cover matrices only).
    """
    default = dtypes["*"]
    groups = by_group(params)
    parts = []
    for group, P in groups.items():
        dt = dtypes.get(group, default)
        if dt.mix:  # a GGUF scheme: one part per ggml type the quantizer gave this group's tensors
            parts.append(total(group, [_mix_part(group, typ, n) for typ, n, _ in dt.mix], unit="bytes",
                               symbol="M_param", note=dt.name))
            continue
        if dt.tensor_scale_bits:  # NVFP4: the group's matrices each carry one fp32 scale
            from transformer_math.analysis.gguf import tensors
            from transformer_math.formulas import quant as fq

            n_t = sum(t.copies for t in tensors(s) if t.group == group and t.quantizable)
            parts.append(total(group, [
                q(f"{group}.values", f.weight_bytes, symbol="M_param", P=P, b_w=dt.bytes_per_element, note=dt.name),
                q(f"{group}.tensor_scales", fq.tensor_scale_bytes, n_t=n_t, b_ts=dt.tensor_scale_bits // 8,
                  note="one fp32 per tensor")], unit="bytes", symbol="M_param", note=dt.name))
            continue
        if group == "experts" and dt is not default and s.moe and s.moe.expert_bias:
            m = s.moe
            bias = s.n_moe_layers * m.n_experts * (s.n_up * m.d_moe + s.d_model)
            parts.append(q("experts_bias", f.weight_bytes, symbol="M_param", P=bias, b_w=default.bytes_per_element,
                           note=f"{default.name}"))
            P -= bias
        parts.append(q(group, f.weight_bytes, symbol="M_param", P=P, b_w=dt.bytes_per_element, note=dt.name))
    return total("memory.weights_bytes", parts, unit="bytes", symbol="M_param")


def _mix_part(group: str, typ: str, n: int) -> Quantity:
    """n elements of one ggml type: whole blocks of S_blk bytes, or P·b_w for f32/f16."""
    from transformer_math.formulas import quant as fq
    from transformer_math.units import parse_dtype

    dt = parse_dtype(typ)
    if dt.block_bytes:
        return q(f"{group}[{typ}]", fq.block_weight_bytes, P=n, g_blk=dt.group_size, S_blk=dt.block_bytes, note=typ)
    return q(f"{group}[{typ}]", f.weight_bytes, symbol="M_param", P=n, b_w=dt.bytes_per_element, note=typ)


def kv_cache_bytes(s: ModelSpec, *, B: int, L: int, kv: DType, T_enc: int = 0) -> Quantity:
    """memory.kv_cache_bytes after L tokens per sequence, B sequences, per layer kind; linear-attention layers
    keep their state (memory.linear_state, the same size at every L) instead of tokens; the decoder of an
    encoder–decoder model also keeps the K and V of the T_enc encoder outputs for its cross-attention."""
    b = kv.bytes_per_element
    by_tokens: dict[int, int] = {}
    n_linear = sum(n for layer, n in s.layer_kinds if layer.attention == "linear")
    for layer, n in s.layer_kinds:
        if layer.attention == "linear":
            continue
        L_kv = cached_tokens(layer, L, s.n_sink_tokens)
        by_tokens[L_kv] = by_tokens.get(L_kv, 0) + n
    parts = []
    for L_kv, n in by_tokens.items():
        name = "full" if L_kv == L else f"window(L_kv={L_kv})"
        if s.mla is None:
            parts.append(q(name, f.kv_cache_bytes, B=B, L_kv=L_kv, n_layers=n, h_kv=s.n_kv_heads, d_h=s.head_dim,
                           b_kv=b))
        else:
            parts.append(q(name, f.kv_cache_mla_bytes, B=B, L_kv=L_kv, n_layers=n, d_c=s.mla.kv_rank,
                           d_rope=s.mla.d_rope, b_kv=b))
    if n_linear:
        parts.append(q("linear_state", f.linear_state_bytes, B=B, n_layers=n_linear, h_kv=s.n_kv_heads,
                       d_k=s.head_dim, d_v=s.head_dim, b_kv=b))
    if T_enc:
        parts.append(q("cross_attention", f.kv_cache_bytes, B=B, L_kv=T_enc, n_layers=s.n_layers, h_kv=s.n_kv_heads,
                       d_h=s.head_dim, b_kv=b, note="K and V of the T_enc encoder outputs, computed once"))
    return total("memory.kv_cache_bytes", parts, unit="bytes", symbol="M_KV")


# Bytes per element that the tensors autograd keeps add up to (16-bit activations, no dropout).
#  eager: Hugging Face's eager modules, as measured on the meta device (tests/test_activations.py).
#    RMSNorm keeps an fp32 copy of its input, the rstd, the bf16 cast and the bf16 output a linear reads
#    (4+2+2 = 8 per element, +4 per row); Gemma's norm computes all in fp32 (4+4+2 = 10; 8 after the
#    block, whose output only a residual add reads) with an fp32 copy of the weight; LayerNorm keeps
#    its input and the output a linear reads (2+2), mean and rstd (+8 per row). Attention keeps Q, K and V
#    expanded to h_q heads by repeat_kv, and its output (2 bytes each); softmax keeps fp32 scores and their bf16 copy
#    (4+2 = 6 per pair). A gated MLP keeps gate, up, act(gate) and the product (4×2 per d_ff); GPT-2's
#    python gelu_new keeps five d_ff tensors (10). A soft-capped score (Gemma 2) adds tanh's bf16 output
#    (c_cap = 2 per pair). RMSNorm's fp32 copy is its own tensor (norm_in = 0), so the two norms of a parallel
#    block share nothing; a LayerNorm (or a fused RMSNorm) keeps its bf16 input, which both read (2).
#  fused: flash attention (Q, K, V at h_kv heads, output, a 4-byte log-sum-exp per row, no T×T matrix),
#    fused norm kernels (bf16 input and output, fp32 rstd), fused gated MLP (gate, up, product: 6).
#  Routing (both): fp32 router probabilities (c_E), the fp32 row sum and top-e values a renormalizing router
#    divides (c_sum = 4, c_topv = 4 per e), per routed copy the top-e id, the two sort permutations, the
#    inverse permutation (4×8) and the bf16 routing weight (2; fp32, +c_w32 = 2, from a router kept in fp32):
#    c_e = 32 + 4 + 2 = 38.
PROFILES: dict[str, dict[str, Any]] = {
    "eager": dict(pre=(8, 4, 0), post=(8, 4, 0), layernorm=(4, 8, 0), qk=(6, 4, 0), expand_kv=True, c_s=6,
                  c_cap=2, k_sink=0, c_lse=0, gated=8, plain=10, c_E=4, c_e=38, c_sum=4, c_topv=4, c_w32=2,
                  norm_in=0, c_pos=4),
    "fused": dict(pre=(4, 4, 0), post=(2, 4, 0), layernorm=(4, 8, 0), qk=(4, 4, 0), expand_kv=False, c_s=0,
                  c_cap=0, k_sink=0, c_lse=4, gated=6, plain=4, c_E=4, c_e=38, c_sum=4, c_topv=4, c_w32=2,
                  norm_in=2, c_pos=4),
    # reference: transformer_math.reference's own modules trained in fp32 (the CPU trainer, `tmath train-tiny`), as
    # measured by saved-tensor hooks (tests/test_reference_activations.py). RMSNorm keeps its input, the rstd, the
    # normalized rows and their weighted output a linear reads (4+4+4 per element, 4 per row) and a (1 + w) copy of
    # its weight (4); LayerNorm the centred rows twice (it subtracts the mean for the variance and again to
    # normalize), the normalized rows and the output (16; rstd 4 per row). CPU flash attention keeps Q, K, V at h_kv
    # heads, its output and, after RoPE, the copy W_O reads (4 + 4: rotated queries are laid out B×h×T×d_h, so the
    # output is too and regrouping it by token copies it; without RoPE it is a view, c_o = 4), a 4-byte
    # log-sum-exp per row; each layer keeps its fp32 mask and its four RoPE tables (layer_tables). A gated MLP keeps
    # gate, up, act(gate) and the product (16); a plain one its pre-activation and activation (8; ReLU shares them,
    # 4). The loss keeps fp32 log-probabilities, int64 ids and targets and a bool mask (17 per token).
    "reference": dict(pre=(12, 4, 4), post=(8, 4, 4), layernorm=(16, 4, 0), ln_in=0, c_x=4, c_o_nope=4,
                      qk=(12, 4, 4), expand_kv=False, c_s=0,
                      c_cap=0, k_sink=0, c_lse=4, gated=16, plain=8, c_E=0, c_e=0, c_sum=0, c_topv=0, c_w32=0,
                      norm_in=4, c_pos=0, c_q=4, c_k=4, c_o=8, c_mask=4, c_tab=4, c_tok=17, c_B1=0, relu_shared=True),
}
# Where a family's HF modules keep other tensors than llama's (eager only): Gemma's and gpt-oss's norms
# multiply the weight in fp32; gpt-oss's softmax runs in bf16 over a sink column and keeps the row max
# index, its clamped SwiGLU keeps 14 bytes per d_moe, and its router takes top-e before the softmax;
# GPT-2's softmax runs in bf16. OLMo-2's norms multiply the weight in fp32 (modeling_olmo2.py Olmo2RMSNorm: the
# fp32 input and the fp32 normalized rows, 4+4, +2 for the bf16 output a linear reads) and its RoPE tables stay
# fp32 (c_pos = 8).
EAGER_FAMILY: dict[str, dict[str, Any]] = {
    "gemma3": dict(pre=(10, 4, 4), post=(8, 4, 4), qk=(8, 4, 4)),
    "gemma2": dict(pre=(10, 4, 4), post=(8, 4, 4)),  # Gemma2RMSNorm: as Gemma 3's
    "olmo2": dict(pre=(10, 4, 0), post=(8, 4, 0), qk=(8, 4, 0), c_pos=8),
    "gpt_oss": dict(pre=(10, 4, 0), c_s=2, k_sink=1, c_lse=8, gated=14, c_E=0, c_e=44, c_sum=0, c_topv=0),
    "gpt2": dict(c_s=2),
    "gpt_neox": dict(plain=4),  # nn.GELU keeps only its input and output (2 + 2 per d_ff)
    "bert": dict(c_s=2, plain=4),  # bf16 softmax (modeling_bert.py eager_attention_forward), nn.GELU
    # T5LayerNorm multiplies the bf16 input by the fp32 rstd (keeping both) before the weight: 4+2+2+2; a ReLU's
    # output is what W_o reads (2); gated-gelu's python gelu_new keeps its intermediates (14 in all, measured)
    "t5": dict(pre=(10, 4, 0), c_s=2, plain=2, gated=14),
}


def _norm(s: ModelSpec, p: dict[str, Any], kind: str, *, B: int, T: int, n: int, w: int, key: str, count: int,
          shared: bool = False) -> Quantity:
    """`shared`: the norm reads the tensor another norm already keeps (a parallel block's MLP norm)."""
    c_n, c_r, c_w = p["layernorm" if s.norm == "layernorm" else kind]
    if shared:
        c_n -= p.get("ln_in", 2) if s.norm == "layernorm" else p["norm_in"]
    return q(key, f.norm_activation_bytes, count=count, B=B, T=T, n_norm=n, c_n=c_n, w=w, c_r=c_r, c_w=c_w)


def _layer(s: ModelSpec, layer: LayerSpec, p: dict[str, Any], *, B: int, T: int, n: int,
           recompute: str) -> list[Quantity]:
    h_q, d_h = s.n_heads, s.head_dim
    n_pre = 0 if s.norm_placement == "post" else min(2, s.norms_per_layer)
    out = []
    if n_pre and s.block == "parallel":  # both norms read the layer input (modeling_gpt_neox.py GPTNeoXLayer)
        out += [_norm(s, p, "pre", B=B, T=T, n=1, w=s.d_model, key="norms", count=n),
                _norm(s, p, "pre", B=B, T=T, n=1, w=s.d_model, key="norms.shared_input", count=n, shared=True)]
    elif n_pre:
        out.append(_norm(s, p, "pre", B=B, T=T, n=n_pre, w=s.d_model, key="norms", count=n))
    if s.norms_per_layer > n_pre:
        out.append(_norm(s, p, "post", B=B, T=T, n=s.norms_per_layer - n_pre, w=s.d_model, key="post_norms",
                         count=n))
    if s.norm_placement == "post":
        out.append(q("block_inputs", f.block_input_activation_bytes, count=n, n_in=2, c_x=p.get("c_x", 2), B=B, T=T,
                     d=s.d_model))
    if s.qk_norm and s.qk_norm_span == "all":  # one norm over all q heads, one over all k heads (OLMo 2)
        c_n, c_r, c_w = p["qk"]
        out += [q(key, f.norm_activation_bytes, count=n, B=B, T=T, n_norm=1, c_n=c_n, w=h * d_h, c_r=c_r, c_w=c_w)
                for key, h in (("q_norm", h_q), ("k_norm", s.n_kv_heads))]
    elif s.qk_norm:
        c_n, c_r, c_w = p["qk"]
        out.append(q("qk_norm", f.norm_activation_bytes, count=n, B=B, T=T, n_norm=h_q + s.n_kv_heads, c_n=c_n,
                     w=d_h, c_r=c_r, c_w=c_w * 2 // (h_q + s.n_kv_heads)))
    if layer.attention == "linear":  # both profiles: autograd through the parallel form (no fused kernel modelled)
        out.append(q("linear_attention", f.linear_attention_activation_bytes, count=n, b_a=2, B=B, T=T,
                     n_phi=2, h_q=h_q, h_kv=s.n_kv_heads, d_k=d_h, d_v=d_h, note="φ = elu + 1"))
        return out + _mlp(s, layer, p, B=B, T=T, n=n)
    d_qk, d_v, h_k = d_h, d_h, (h_q if p["expand_kv"] else s.n_kv_heads)
    if s.mla is not None:
        m = s.mla
        d_qk, d_v, h_k = m.d_nope + m.d_rope, m.d_v, h_q
        if m.q_rank:
            out.append(_norm(s, p, "pre", B=B, T=T, n=1, w=m.q_rank, key="q_latent_norm", count=n))
        out.append(_norm(s, p, "pre", B=B, T=T, n=1, w=m.kv_rank, key="kv_latent_norm", count=n))
    out.append(q("attention", f.attention_activation_bytes, count=n, B=B, T=T, c_q=p.get("c_q", 2), h_q=h_q,
                 d_qk=d_qk, c_k=p.get("c_k", 2), h_k=h_k, d_v=d_v,
                 c_o=p.get("c_o", 2) if _rotates(s, layer) else p.get("c_o_nope", p.get("c_o", 2))))
    if p.get("c_mask"):  # the reference modules build a mask and RoPE tables in every layer
        out.append(q("attention.tables", f.layer_table_bytes, count=n, c_m=p["c_mask"], T=T,
                     n_tab=4 * _rotates(s, layer),
                     c_t=p["c_tab"], d_rope=_rotated(s)))
    out.append(q("scores", f.score_activation_bytes, count=n, B=B, T=T, h_q=h_q,
                 c_s=0 if recompute == "selective" else p["c_s"], k_sink=p["k_sink"] * s.sinks, c_lse=p["c_lse"]))
    if s.attn_softcap is not None and p["c_cap"] and recompute != "selective":
        out.append(q("scores.softcap", f.score_activation_bytes, count=n, B=B, T=T, h_q=h_q, c_s=p["c_cap"],
                     k_sink=p["k_sink"] * s.sinks, c_lse=0,
                     note="tanh's output in c·tanh(x/c) (modeling_gemma2.py eager_attention_forward)"))
    return out + _mlp(s, layer, p, B=B, T=T, n=n)


def _mlp(s: ModelSpec, layer: LayerSpec, p: dict[str, Any], *, B: int, T: int, n: int) -> list[Quantity]:
    out = []
    c_ff = p["gated"] if s.n_up == 2 else p["plain"] // (2 if s.activation == "relu" and p.get("relu_shared") else 1)
    if layer.mlp == "dense":
        out.append(q("mlp", f.mlp_activation_bytes, count=n, B=B, T=T, c_ff=c_ff, d_ff=layer.d_ff))
    else:
        m2 = s.moe
        assert m2 is not None
        fp32_router = ("router", "fp32") in s.quantized  # the router upcasts its input; its weights stay fp32
        out += [q("moe.routing", f.routing_activation_bytes, count=n, B=B, T=T, c_E=p["c_E"], E=m2.n_experts,
                  c_sum=p["c_sum"] if m2.norm_topk else 0, c_x=4 if fp32_router else 0, d=s.d_model,
                  c_e=p["c_e"] - (0 if m2.norm_topk else p["c_topv"]) + (p["c_w32"] if fp32_router else 0),
                  e=m2.experts_per_token),
                _experts(s, c_ff, p, B=B, T=T, n=n)]
        if m2.n_shared:
            out.append(q("moe.shared_experts", f.mlp_activation_bytes, count=n, B=B, T=T, c_ff=p["gated"],
                         d_ff=m2.shared_width))
        if m2.shared_gate:
            out.append(q("moe.shared_gate", f.shared_gate_activation_bytes, count=n, c_g=2, B=B, T=T, d=s.d_model))
    return out


def activation_bytes(s: ModelSpec, *, B: int, T: int, recompute: str = "none", profile: str = "fused",
                     T_enc: int = 0) -> Quantity:
    """Activations saved for backward in one training forward of a B×T micro-batch (all layers, loss included).

    Full recompute keeps only each layer's input, B·T·d·2 bytes (Korthikanti et al. 2022 §5); selective
    recompute drops the T×T attention matrices and recomputes them in backward.
    """
    p: dict[str, Any] = {**PROFILES[profile], **(EAGER_FAMILY.get(s.family, {}) if profile == "eager" else {})}
    if profile == "reference":
        _check_reference(s)
    parts = []
    stacks = [("encoder.", layer, n, T_enc) for layer, n in s.encoder_kinds]
    for prefix, layer, n, T_layer in stacks + [("", layer, n, T) for layer, n in s.layer_kinds]:
        name = f"{prefix}layers[{layer.kind}]×{n}"
        if recompute == "full":
            parts.append(q(name, f.mlp_activation_bytes, count=n, B=B, T=T_layer, c_ff=2, d_ff=s.d_model,
                           note="full recompute: the layer input only"))
            continue
        layer_parts = _layer(s, layer, p, B=B, T=T_layer, n=n, recompute=recompute)
        if T_enc and not prefix:
            layer_parts += _cross(s, p, B=B, T=T, T_enc=T_enc, n=n)
        parts.append(total(name, layer_parts, unit="bytes", symbol="M_act,layer"))
    if T_enc:
        return total("memory.activations_bytes", parts + _seq2seq_ends(s, p, B=B, T=T, T_enc=T_enc, profile=profile),
                     unit="bytes", symbol="M_act", note=f"recompute={recompute}, {profile} kernels")
    if s.arch == "encoder":
        return total("memory.activations_bytes", parts + _encoder_head(s, p, B=B, T=T, profile=profile),
                     unit="bytes", symbol="M_act", note=f"recompute={recompute}, {profile} kernels")
    parts.append(_norm(s, p, "pre", B=B, T=T, n=1, w=s.d_model, key="final_norm", count=1))
    rotates = any(layer.rope and layer.attention != "linear" for layer in s.layers)  # linear layers: no RoPE
    rope_kinds = 0 if s.learned_positions or not rotates else \
        (1 + (s.family == "gemma3" and len({l.attention for l in s.layers}) > 1))
    d_rope = s.mla.d_rope if s.mla else _rotated(s)
    c_V = 4 + 2 * (s.logit_softcap is not None)  # fp32 logits, and a soft-cap's bf16 tanh output
    parts.append(q("head", f.head_activation_bytes, B=B, T=T, c_V=c_V, V=s.vocab_size, c_tok=p.get("c_tok", 16),
                   c_B1=p.get("c_B1", 8), B1=B == 1,
                   c_pos=p["c_pos"] * rope_kinds,
                   d_rope=d_rope, pos=s.learned_positions))
    return total("memory.activations_bytes", parts, unit="bytes", symbol="M_act",
                 note=f"recompute={recompute}, {profile} kernels")


def _cross(s: ModelSpec, p: dict[str, Any], *, B: int, T: int, T_enc: int, n: int) -> list[Quantity]:
    """A decoder layer's cross-attention: the norm before it, then queries, encoder K and V, probabilities, output."""
    h_k = s.n_heads if p["expand_kv"] else s.n_kv_heads
    return [_norm(s, p, "pre", B=B, T=T, n=1, w=s.d_model, key="cross_attention.norm", count=n),
            q("cross_attention", f.cross_attention_activation_bytes, count=n, B=B, T=T, T_enc=T_enc, c_q=2, c_o=2,
              c_k=2, c_s=p["c_s"], h_q=s.n_heads, h_kv=h_k, d_h=s.head_dim)]


def _seq2seq_ends(s: ModelSpec, p: dict[str, Any], *, B: int, T: int, T_enc: int, profile: str) -> list[Quantity]:
    """An encoder–decoder model's ends: each stack's final norm and relative-position bucket ids, and the loss."""
    out = [_norm(s, p, "pre", B=B, T=T_enc, n=1, w=s.d_model, key="encoder.final_norm", count=1),
           _norm(s, p, "pre", B=B, T=T, n=1, w=s.d_model, key="final_norm", count=1)]
    if s.relative_buckets:
        out += [q("encoder.relative_buckets", f.relative_bucket_bytes, T=T_enc),
                q("relative_buckets", f.relative_bucket_bytes, T=T)]
    eager = profile == "eager"
    out.append(q("head", f.seq2seq_head_activation_bytes, B=B, T=T, T_enc=T_enc, c_V=2 if eager else 4,
                 V=s.vocab_size, c_loss=2 if eager else 4))
    return out


def _experts(s: ModelSpec, c_ff: int, p: dict[str, Any], *, B: int, T: int, n: int) -> Quantity:
    """The routed experts' intermediates: e per token, or with a capacity factor E·C_exp padded slots and their
    dispatched inputs."""
    m = s.moe
    assert m is not None
    if m.capacity_factor is None:
        return q("moe.experts", f.mlp_activation_bytes, count=n, B=B, T=T, c_ff=c_ff,
                 d_ff=m.experts_per_token * m.d_moe)
    from transformer_math.formulas.flops import expert_capacity

    C = expert_capacity(C_cap=m.capacity_factor, N_tok=B * T, e=m.experts_per_token, E=m.n_experts)
    return q("moe.experts", f.expert_slot_activation_bytes, count=n, E=m.n_experts, C_exp=C, c_ff=c_ff,
             d_moe=m.d_moe, c_x=p.get("c_x", 2), d=s.d_model, note=f"C_cap = {m.capacity_factor:g}: C_exp = {C}")


def _rotates(s: ModelSpec, layer: LayerSpec) -> bool:
    return layer.rope and not s.learned_positions


def _rotated(s: ModelSpec) -> int:
    """Width of the cos/sin tables: the rotated features only, 2·⌈int(d_h·f_rot)/2⌉ (inverse frequencies, twice)."""
    return 2 * -(-int(s.head_dim * s.rotary_fraction) // 2)


def _check_reference(s: ModelSpec) -> None:
    """The reference profile is measured on the dense decoder paths of transformer_math.reference only."""
    unsupported = [name for name, on in (("arch " + s.arch, s.arch != "decoder"), ("MoE", s.moe is not None),
                                         ("MLA", s.mla is not None), ("sinks", s.sinks), ("qk-norm", s.qk_norm),
                                         ("soft-caps", s.attn_softcap is not None or s.logit_softcap is not None),
                                         ("linear attention", any(x.attention == "linear" for x in s.layers)))
                   if on]
    if unsupported:
        raise TmathError("activations", "reference", "fused or eager for this model: the reference profile covers "
                         f"dense decoders of transformer_math.reference, not {', '.join(unsupported)}")


def _encoder_head(s: ModelSpec, p: dict[str, Any], *, B: int, T: int, profile: str) -> list[Quantity]:
    """An encoder-only model's ends: the norm after the embeddings, the MLM head's transform (the activation keeps
    its input, the norm its own), then the loss over V at every position."""
    out = []
    if s.embedding_norm:
        out.append(_norm(s, p, "pre", B=B, T=T, n=1, w=s.d_model, key="embedding_norm", count=1))
    if s.head_transform:
        out += [q("head.transform", f.mlp_activation_bytes, B=B, T=T, c_ff=2, d_ff=s.d_model,
                  note="the activation's input"),
                _norm(s, p, "pre", B=B, T=T, n=1, w=s.d_model, key="head.transform_norm", count=1)]
    eager = profile == "eager"
    out.append(q("head", f.encoder_head_activation_bytes, B=B, T=T, c_V=2 if eager else 4, V=s.vocab_size,
                 L_max=s.max_context, c_loss=2 if eager else 4))
    return out


def training_state_bytes(P_train: int, *, b_g: int = 2, b_master: int = 4, b_m: int = 4, b_v: int = 4
                         ) -> tuple[Quantity, Quantity]:
    """Gradients and AdamW state (fp32 master weights, m and v) for P_train trainable parameters."""
    return (q("memory.gradients_bytes", f.gradient_bytes, P_train=P_train, b_g=b_g),
            q("memory.optimizer_bytes", f.optimizer_bytes, P_train=P_train, b_master=b_master, b_m=b_m, b_v=b_v))
