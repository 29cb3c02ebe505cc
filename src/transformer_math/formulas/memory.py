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


@formula(id="memory.activations.layer", symbol="M_act,layer", unit="bytes",
         expr="B·T·(n_norm·(c_n·d + 4) + c_q·h_q·d_h + c_kv·h_kv·d_h + c_ff·d_ff) + c_s·B·h_q·T·T",
         source="Korthikanti et al. 2022 (arXiv 2205.05198) §4.1, sbh(34 + 5as/h), re-derived tensor by tensor for "
                "GQA, gated MLPs, MoE, no dropout; c_* are bytes per element summed over the tensors autograd keeps")
def layer_activation_bytes(*, B: int, T: int, n_norm: int, c_n: int, d: int, c_q: int, h_q: int, c_kv: int,
                           h_kv: int, d_h: int, c_ff: int, d_ff: int, c_s: int) -> int:
    return B * T * (n_norm * (c_n * d + 4) + c_q * h_q * d_h + c_kv * h_kv * d_h + c_ff * d_ff) + c_s * B * h_q * T * T


@formula(id="memory.activations.head", symbol="M_act,head", unit="bytes", expr="B·T·(c_n·d + 4 + c_V·V + 8)",
         source="final norm input, LM-head input and the logits the loss keeps (fp32 upcast: c_V = 4), plus labels")
def head_activation_bytes(*, B: int, T: int, c_n: int, d: int, c_V: int, V: int) -> int:
    return B * T * (c_n * d + 4 + c_V * V + 8)
