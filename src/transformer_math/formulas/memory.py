"""Memory [bytes] (seed 000 §11): weights, KV cache, training state and activations."""

from fractions import Fraction

from transformer_math.formulas._registry import formula


@formula(id="memory.weights", symbol="M_param", unit="bytes", expr="P·b_w",
         source="seed 000 §11: M_param = P·b_w; quantized b_w = q_w/8 + scale and zero-point bytes per g_q (§7)")
def weight_bytes(*, P: int, b_w: Fraction) -> int:
    return -(-P * b_w.numerator // b_w.denominator)


@formula(id="memory.kv_cache", symbol="M_KV", unit="bytes", expr="B·L_kv·n_layers·2·h_kv·d_h·b_kv",
         source="seed 000 §11: M_KV = B·L·N_L·(2·h_kv·d_h)·b_kv; L_kv = L (full) or min(L, S-1) (window, as HF keeps)")
def kv_cache_bytes(*, B: int, L_kv: int, n_layers: int, h_kv: int, d_h: int, b_kv: Fraction) -> int:
    return -(-B * L_kv * n_layers * 2 * h_kv * d_h * b_kv.numerator // b_kv.denominator)


@formula(id="memory.kv_cache_mla", symbol="M_KV", unit="bytes", expr="B·L_kv·n_layers·(d_c + d_rope)·b_kv",
         source="DeepSeek-V2 §2.1.2 (arXiv 2405.04434): MLA caches the KV latent c_KV and the decoupled RoPE key")
def kv_cache_mla_bytes(*, B: int, L_kv: int, n_layers: int, d_c: int, d_rope: int, b_kv: Fraction) -> int:
    return -(-B * L_kv * n_layers * (d_c + d_rope) * b_kv.numerator // b_kv.denominator)


@formula(id="memory.gradients", symbol="M_grad", unit="bytes", expr="P_train·b_g",
         source="seed 000 §11: M_grad = P·b_w (gradients kept at b_g bytes per trainable parameter)")
def gradient_bytes(*, P_train: int, b_g: int) -> int:
    return P_train * b_g


@formula(id="memory.optimizer", symbol="M_opt", unit="bytes", expr="P_train·(b_master + b_m + b_v)",
         source="seed 000 §11: M_opt ≈ P·(b_w + b_m + b_v); mixed precision keeps fp32 master weights (b_master = 4)")
def optimizer_bytes(*, P_train: int, b_master: int, b_m: int, b_v: int) -> int:
    return P_train * (b_master + b_m + b_v)


# Activations: bytes of the tensors autograd keeps for backward. Each c_* is the bytes per element summed
# over the tensors a component keeps; the profiles in analysis/memory.py give them for each implementation.
_KORTHIKANTI = "Korthikanti et al. 2022 (arXiv 2205.05198) §4.1 (sbh(34 + 5as/h)), re-derived per saved tensor"


@formula(id="memory.activations.norms", symbol="M_act,norm", unit="bytes", expr="B·T·n_norm·(c_n·w + c_r) + n_norm·c_w·w",
         source=_KORTHIKANTI + "; c_r: the fp32 rstd (and mean) per row; c_w: an fp32 copy of the weight (Gemma)")
def norm_activation_bytes(*, B: int, T: int, n_norm: int, c_n: int, w: int, c_r: int, c_w: int) -> int:
    return B * T * n_norm * (c_n * w + c_r) + n_norm * c_w * w


@formula(id="memory.activations.attention", symbol="M_act,attn", unit="bytes",
         expr="B·T·(c_q·h_q·d_qk + c_k·h_k·(d_qk + d_v) + c_o·h_q·d_v)",
         source=_KORTHIKANTI + " (Q, K, V and the attention output; h_k = h_kv, or h_q once repeat_kv expands them)")
def attention_activation_bytes(*, B: int, T: int, c_q: int, h_q: int, d_qk: int, c_k: int, h_k: int, d_v: int,
                               c_o: int) -> int:
    return B * T * (c_q * h_q * d_qk + c_k * h_k * (d_qk + d_v) + c_o * h_q * d_v)


@formula(id="memory.activations.scores", symbol="M_act,score", unit="bytes",
         expr="c_s·B·h_q·T·(T + k_sink) + c_lse·B·h_q·T",
         source=_KORTHIKANTI + " (the 5as/h term: softmax output, with a sink column when the model has sink "
                "logits; fused kernels keep a per-row log-sum-exp instead)")
def score_activation_bytes(*, B: int, T: int, h_q: int, c_s: int, k_sink: int, c_lse: int) -> int:
    return c_s * B * h_q * T * (T + k_sink) + c_lse * B * h_q * T


@formula(id="memory.activations.mlp", symbol="M_act,mlp", unit="bytes", expr="c_ff·B·T·d_ff",
         source=_KORTHIKANTI + " (the MLP's 19sbh without dropout; gated MLPs keep gate, up, act and product)")
def mlp_activation_bytes(*, B: int, T: int, c_ff: int, d_ff: int) -> int:
    return c_ff * B * T * d_ff


@formula(id="memory.activations.routing", symbol="M_act,route", unit="bytes",
         expr="B·T·(c_E·(E + 1) + c_e·e + 4·e·d) + 4·E",
         source="router probabilities (fp32, c_E = 4, when softmax precedes top-e), top-e ids and weights, the sort "
                "permutation and each routed copy's gathered input and output (2·e·d bytes each), as a grouped-GEMM "
                "MoE keeps them")
def routing_activation_bytes(*, B: int, T: int, c_E: int, E: int, c_e: int, e: int, d: int) -> int:
    return B * T * (c_E * (E + 1) + c_e * e + 4 * e * d) + 4 * E


@formula(id="memory.activations.head", symbol="M_act,head", unit="bytes",
         expr="B·T·(c_V·V + 16) + 8·1_B1 + 4 + T·(c_pos·d_rope + 8·1_pos)",
         source="the logits the loss keeps (fp32: c_V = 4), input ids and shifted labels (int64; one padding label "
                "survives when B = 1), the loss, and the position tables the batch shares: RoPE cos/sin (c_pos = 4 "
                "per rope kind) or position ids")
def head_activation_bytes(*, B: int, T: int, c_V: int, V: int, B1: bool, c_pos: int, d_rope: int, pos: bool) -> int:
    return B * T * (c_V * V + 16) + 8 * B1 + 4 + T * (c_pos * d_rope + 8 * pos)
