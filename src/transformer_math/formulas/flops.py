"""FLOPs [FLOPs], counted as 2 per multiply-accumulate (FlopCounterMode's convention; conventions.md).

Only matrix products are counted. Counting n multiplies and n − 1 adds per output element would give
m·k·(2n − 1) for an (m×n)(n×k) product; we count 2·m·n·k, as torch.utils.flop_counter, Kaplan et al. 2020 §2.1
and MFU reports do.
"""

from transformer_math.formulas._registry import formula


@formula(id="flops.linear", symbol="F_lin", unit="FLOPs", expr="2·N_tok·d_in·d_out",
         source="Kaplan et al. 2020 (arXiv 2001.08361) §2.1: a forward pass costs 2 FLOPs per weight and token "
                "(C_forward ≈ 2N), so y = xW costs 2·d_in·d_out per token; torch.utils.flop_counter counts a matmul "
                "the same way")
def linear_flops(*, N_tok: int, d_in: int, d_out: int) -> int:
    return 2 * N_tok * d_in * d_out


@formula(id="flops.attention_scores", symbol="F_QK", unit="FLOPs", expr="2·B·h_q·n_pairs·d_qk",
         source="Vaswani et al. 2017 §3.2.1: the QK^T product of scaled dot-product attention, d_qk MACs per query–key "
                "pair and head; Kaplan et al. 2020 §2.1 counts this context-dependent term apart from 2N; n_pairs: "
                "dense or causal (docs/conventions.md)")
def attention_score_flops(*, B: int, h_q: int, n_pairs: int, d_qk: int) -> int:
    return 2 * B * h_q * n_pairs * d_qk


@formula(id="flops.attention_values", symbol="F_AV", unit="FLOPs", expr="2·B·h_q·n_pairs·d_v",
         source="Vaswani et al. 2017 §3.2.1: the softmax(QK^T)·V product, d_v MACs per query–key pair and head (the "
                "other half of the attention term of Kaplan et al. 2020 §2.1)")
def attention_value_flops(*, B: int, h_q: int, n_pairs: int, d_v: int) -> int:
    return 2 * B * h_q * n_pairs * d_v


@formula(id="flops.pairs.dense", symbol="n_pairs", unit="pairs", expr="T·T",
         source="conventions.md dense-attention convention: the full T×T score matrix, as eager attention runs it")
def dense_pairs(*, T: int) -> int:
    return T * T


@formula(id="flops.pairs.causal", symbol="n_pairs", unit="pairs",
         expr="T·(T+1)/2 (full); Σ_i min(i+1, S) (sliding); Σ_chunks c·(c+1)/2 (chunked)",
         source="conventions.md causal convention: only unmasked query-key pairs")
def causal_pairs(*, T: int, kind: str, S: int | None) -> int:
    if kind == "full" or S is None or T <= S:
        return T * (T + 1) // 2
    if kind == "sliding":
        return S * (S + 1) // 2 + (T - S) * S
    full, rest = divmod(T, S)
    return full * S * (S + 1) // 2 + rest * (rest + 1) // 2


@formula(id="flops.train_step", symbol="F_train", unit="FLOPs", expr="(1 + k_bwd)·F_fwd + F_recompute",
         source="backward = 2× forward for matmuls (dL/dX and dL/dW), k_bwd = 2 (PaLM App. B; nanoGPT estimate_mfu)")
def train_step_flops(*, F_fwd: int, k_bwd: int, F_recompute: int) -> int:
    return (1 + k_bwd) * F_fwd + F_recompute
