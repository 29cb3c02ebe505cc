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


def activation_bytes(s: ModelSpec, *, B: int, T: int, recompute: str = "none", b_a: int = 2,
                     flash: bool = False) -> Quantity:
    """Activations saved for backward in one training forward of a B×T micro-batch (one pipeline stage: all layers).

    Per layer, the tensors autograd keeps (16-bit, no dropout): norm inputs and outputs (c_d·d), Q and the
    attention output (c_q·h_q·d_h), K and V (c_kv·h_kv·d_h), the MLP's gate, up, activation and product
    (c_ff·d_ff; 2 for a plain MLP), and the softmax output (c_s = 1 for eager attention, 0 for a fused
    kernel or selective recompute). Full recompute keeps only each layer's input B·T·d·b_a.
    """
    parts = []
    for layer, n in s.layer_kinds:
        if recompute == "full":
            parts.append(q(f"layers[{layer.kind}]×{n}", f.layer_activation_bytes, count=n, B=B, T=T, b_a=b_a,
                           d=s.d_model, h_q=s.n_heads, h_kv=s.n_kv_heads, d_h=s.head_dim, d_ff=0, c_d=1, c_q=0,
                           c_kv=0, c_ff=0, c_s=0))
            continue
        c_d = 2 * s.norms_per_layer if s.norms_per_layer == 2 else 2 + s.norms_per_layer
        c_q, c_kv = 2 + s.qk_norm, 2 + s.qk_norm
        c_s = 0 if flash or recompute == "selective" else 1
        if layer.mlp == "dense":
            d_ff, c_ff = layer.d_ff, 2 * s.n_up
        else:
            m = s.moe
            assert m is not None
            # each routed copy keeps its gathered input (d) and gated intermediates; shared experts as dense
            d_ff = m.experts_per_token * (2 * s.n_up * m.d_moe + s.d_model) + 2 * s.n_up * m.shared_width
            c_ff = 1
        parts.append(q(f"layers[{layer.kind}]×{n}", f.layer_activation_bytes, count=n, B=B, T=T, b_a=b_a,
                       d=s.d_model, h_q=s.n_heads, h_kv=s.n_kv_heads, d_h=s.head_dim, d_ff=d_ff, c_d=c_d, c_q=c_q,
                       c_kv=c_kv, c_ff=c_ff, c_s=c_s))
    # final norm input and LM-head input
    parts.append(q("head", f.layer_activation_bytes, B=B, T=T, b_a=b_a, d=s.d_model, h_q=s.n_heads,
                   h_kv=s.n_kv_heads, d_h=s.head_dim, d_ff=0, c_d=2, c_q=0, c_kv=0, c_ff=0, c_s=0))
    return total("memory.activations_bytes", parts, unit="bytes", symbol="M_act",
                 note=f"recompute={recompute}, attention={'fused' if flash else 'eager'}")


def training_state_bytes(P_train: int, *, b_g: int = 2, b_master: int = 4, b_m: int = 4, b_v: int = 4
                         ) -> tuple[Quantity, Quantity]:
    """Gradients and AdamW state (fp32 master weights, m and v) for P_train trainable parameters."""
    return (q("memory.gradients_bytes", f.gradient_bytes, P_train=P_train, b_g=b_g),
            q("memory.optimizer_bytes", f.optimizer_bytes, P_train=P_train, b_master=b_master, b_m=b_m, b_v=b_v))
