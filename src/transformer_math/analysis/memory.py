"""Memory breakdowns: weights per tensor group and dtype, KV cache per layer kind, training state, activations."""

from __future__ import annotations

from collections.abc import Mapping

from transformer_math.analysis.flops import cached_tokens
from transformer_math.analysis.params import by_group
from transformer_math.analysis.quantity import Quantity, q, total
from transformer_math.config.spec import ModelSpec
from transformer_math.formulas import memory as f
from transformer_math.units import DType

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
        if group == "experts" and dt is not default and s.moe and s.moe.expert_bias:
            m = s.moe
            bias = s.n_moe_layers * m.n_experts * (s.n_up * m.d_moe + s.d_model)
            parts.append(q("experts_bias", f.weight_bytes, symbol="M_param", P=bias, b_w=default.bytes_per_element,
                           note=f"{default.name}"))
            P -= bias
        parts.append(q(group, f.weight_bytes, symbol="M_param", P=P, b_w=dt.bytes_per_element, note=dt.name))
    return total("memory.weights_bytes", parts, unit="bytes", symbol="M_param")


def kv_cache_bytes(s: ModelSpec, *, B: int, L: int, kv: DType) -> Quantity:
    """memory.kv_cache_bytes after L tokens per sequence, B sequences, per layer kind."""
    b = kv.bytes_per_element
    by_tokens: dict[int, int] = {}
    for layer, n in s.layer_kinds:
        L_kv = cached_tokens(layer, L)
        by_tokens[L_kv] = by_tokens.get(L_kv, 0) + n
    parts = []
    for L_kv, n in by_tokens.items():
        name = "full" if L_kv == L else f"window(L_kv={L_kv})"
        if s.mla is None:
            parts.append(q(name, f.kv_cache_bytes, B=B, L_kv=L_kv, n_layers=n, h_kv=s.n_kv_heads, d_h=s.head_dim, b_kv=b))
        else:
            parts.append(q(name, f.kv_cache_mla_bytes, B=B, L_kv=L_kv, n_layers=n, d_c=s.mla.kv_rank,
                           d_rope=s.mla.d_rope, b_kv=b))
    return total("memory.kv_cache_bytes", parts, unit="bytes", symbol="M_KV")


# Bytes per element the saved tensors add up to, per implementation (16-bit activations, no dropout):
#  eager (HF transformers, measured): RMSNorm keeps an fp32 copy of its input, the bf16 cast and the bf16
#    output (4+2+2 = 8 per d) plus an fp32 rstd; attention keeps Q, K and V expanded to h_q heads by
#    repeat_kv and the output (4 tensors × 2 bytes × h_q·d_h); softmax keeps fp32 scores and their bf16
#    copy (4+2 = 6 per pair); a gated MLP keeps gate, up, act(gate) and the product (4 × 2 per d_ff).
#  fused (flash attention, fused norm kernels; Korthikanti's counting without dropout): norms keep their
#    bf16 input, attention Q, K, V at h_kv heads and the output, no T×T matrix.
PROFILES = {"eager": dict(c_n=8, c_q=8, c_kv=0, c_s=6, gated=8, plain=4, c_V=4),
            "fused": dict(c_n=4, c_q=4, c_kv=4, c_s=0, gated=8, plain=4, c_V=4)}


def activation_bytes(s: ModelSpec, *, B: int, T: int, recompute: str = "none", profile: str = "eager") -> Quantity:
    """Activations saved for backward in one training forward of a B×T micro-batch (all layers, loss included).

    Full recompute keeps only each layer's input (B·T·d·2 bytes, written as c_n = 2 with no other terms);
    selective recompute drops the T×T attention matrices (Korthikanti et al. 2022 §5).
    """
    c = PROFILES[profile]
    parts = []
    for layer, n in s.layer_kinds:
        common = dict(B=B, T=T, d=s.d_model, h_q=s.n_heads, h_kv=s.n_kv_heads, d_h=s.head_dim)
        if recompute == "full":
            parts.append(q(f"layers[{layer.kind}]×{n}", f.layer_activation_bytes, count=n, **common, n_norm=0, c_n=0,
                           c_q=0, c_kv=0, c_ff=2, d_ff=s.d_model, c_s=0, note="full recompute: layer input only"))
            continue
        if layer.mlp == "dense":
            d_ff = layer.d_ff
        else:
            m = s.moe
            assert m is not None  # routed copies of the token through e experts, plus shared experts
            d_ff = m.experts_per_token * m.d_moe + m.shared_width
        c_q = c["c_q"] + 4 * s.qk_norm
        parts.append(q(f"layers[{layer.kind}]×{n}", f.layer_activation_bytes, count=n, **common,
                       n_norm=s.norms_per_layer, c_n=c["c_n"], c_q=c_q, c_kv=c["c_kv"] + 4 * s.qk_norm,
                       c_ff=c["gated"] if s.n_up == 2 else c["plain"], d_ff=d_ff,
                       c_s=0 if recompute == "selective" else c["c_s"]))
    parts.append(q("head", f.head_activation_bytes, B=B, T=T, c_n=c["c_n"], d=s.d_model, c_V=c["c_V"],
                   V=s.vocab_size))
    return total("memory.activations_bytes", parts, unit="bytes", symbol="M_act",
                 note=f"recompute={recompute}, profile={profile}")


def training_state_bytes(P_train: int, *, b_g: int = 2, b_master: int = 4, b_m: int = 4, b_v: int = 4
                         ) -> tuple[Quantity, Quantity]:
    """Gradients and AdamW state (fp32 master weights, m and v) for P_train trainable parameters."""
    return (q("memory.gradients_bytes", f.gradient_bytes, P_train=P_train, b_g=b_g),
            q("memory.optimizer_bytes", f.optimizer_bytes, P_train=P_train, b_master=b_master, b_m=b_m, b_v=b_v))
