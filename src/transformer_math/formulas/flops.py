"""FLOPs [FLOPs], counted as 2 per multiply-accumulate (FlopCounterMode's convention; conventions.md).

Only matrix products are counted; seed 001 writes m·k·(2n-1) for an (m×n)(n×k) product, which leaves out
the m·k final additions — we count 2·m·n·k like PyTorch and MFU reports do.
"""

from transformer_math.formulas._registry import formula


@formula(id="flops.linear", symbol="F_lin", unit="FLOPs", expr="2·N_tok·d_in·d_out",
         source="seed 000 §12: F_proj = 2·d·(h_q·d_h + 2·h_kv·d_h) + 2·h_q·d_h·d per token; any y = xW costs 2·d_in·d_out")
def linear_flops(*, N_tok: int, d_in: int, d_out: int) -> int:
    return 2 * N_tok * d_in * d_out


@formula(id="flops.attention_scores", symbol="F_QK", unit="FLOPs", expr="2·B·h_q·n_pairs·d_qk",
         source="seed 000 §12: F_attn(L) ≈ 4·L·h_q·d_h per token = QK^T (this) + AV; n_pairs = query-key pairs")
def attention_score_flops(*, B: int, h_q: int, n_pairs: int, d_qk: int) -> int:
    return 2 * B * h_q * n_pairs * d_qk


@formula(id="flops.attention_values", symbol="F_AV", unit="FLOPs", expr="2·B·h_q·n_pairs·d_v",
         source="seed 000 §12: the AV half of F_attn(L) ≈ 4·L·h_q·d_h")
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
