"""FLOPs [FLOPs], counted as 2 per multiply-accumulate (FlopCounterMode's convention; conventions.md).

Only matrix products are counted. Counting n multiplies and n − 1 adds per output element would give
m·k·(2n − 1) for an (m×n)(n×k) product; we count 2·m·n·k, as torch.utils.flop_counter, Kaplan et al. 2020 §2.1
and MFU reports do.
"""

import math

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


_KATHAROPOULOS = ("Katharopoulos et al. 2020 (Transformers are RNNs, arXiv 2006.16236) §3.2–3.4: causal linear "
                  "attention y_i = φ(q_i)·S_i / (φ(q_i)·z_i), S_i = S_{i−1} + φ(k_i)ᵀv_i, z_i = z_{i−1} + φ(k_i) "
                  "(eq. 9–12, 16–20); ")


@formula(id="flops.linear_attention.state", symbol="F_state", unit="FLOPs", expr="2·B·T·h_kv·d_k·d_v",
         source=_KATHAROPOULOS + "each token adds one outer product φ(k)ᵀv, d_k·d_v MACs per KV head, whether the "
                "sum is cumulative (prefill) or recurrent (decode, T = 1 per step, independent of L); "
                "reference/linear_attention.py runs it as a matmul with an inner dimension of 1")
def linear_attention_state_flops(*, B: int, T: int, h_kv: int, d_k: int, d_v: int) -> int:
    return 2 * B * T * h_kv * d_k * d_v


@formula(id="flops.linear_attention.readout", symbol="F_read", unit="FLOPs", expr="2·B·T·h_q·d_k·(d_v + 1)",
         source=_KATHAROPOULOS + "each query head reads its state, φ(q)·S (d_k·d_v MACs), and the normalizer "
                "φ(q)·z (d_k MACs), per token: per decode step T = 1, independent of the context L")
def linear_attention_readout_flops(*, B: int, T: int, h_q: int, d_k: int, d_v: int) -> int:
    return 2 * B * T * h_q * d_k * (d_v + 1)


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


@formula(id="flops.pairs.prefix", symbol="n_pairs", unit="pairs", expr="P·P + (T·(T+1) − P·(P+1))/2",
         source="Raffel et al. 2020 (T5) §3.2.1 prefix-LM mask: the first P = min(P_pfx, T) tokens attend to each "
                "other both ways, the rest causally; only unmasked pairs (conventions.md causal convention)")
def prefix_pairs(*, T: int, P: int) -> int:
    return P * P + (T * (T + 1) - P * (P + 1)) // 2


@formula(id="flops.pairs.cross", symbol="n_pairs", unit="pairs", expr="T·T_enc",
         source="Vaswani et al. 2017 §3.2.3 encoder–decoder attention: each of the T decoder positions attends to all "
                "T_enc encoder outputs (no mask)")
def cross_pairs(*, T: int, T_enc: int) -> int:
    return T * T_enc


@formula(id="flops.train_step", symbol="F_train", unit="FLOPs", expr="(1 + k_bwd)·F_fwd + F_recompute",
         source="backward = 2× forward for matmuls (dL/dX and dL/dW), k_bwd = 2 (PaLM App. B; nanoGPT estimate_mfu)")
def train_step_flops(*, F_fwd: int, k_bwd: int, F_recompute: int) -> int:
    return (1 + k_bwd) * F_fwd + F_recompute


@formula(id="flops.moe.expert_capacity", symbol="C_exp", unit="tokens", expr="max(1, ⌈C_cap·N_tok·e/E⌉)",
         source="Fedus et al. 2021 (Switch Transformers, arXiv 2101.03961) §2.2: expert capacity = (tokens per batch "
                "/ number of experts) × capacity factor, for top-1 routing; Lepikhin et al. 2020 (GShard, arXiv "
                "2006.16668) §2.2 sizes it for top-2 from the N·e assignments; reference/moe.py allocates it so")
def expert_capacity(*, C_cap: float, N_tok: int, e: int, E: int) -> int:
    """Slots per expert for N_tok tokens that each pick e of E experts (at least one slot). Evaluated in the order
    reference/moe.py evaluates it, so a float product that lands just above an integer rounds up the same way."""
    return max(1, math.ceil(C_cap * N_tok * e / E))


@formula(id="flops.moe.expert_rows", symbol="N_rows", unit="tokens",
         expr="N_tok·e (no capacity); E·C_exp (capacity, padding included)",
         source="Fedus et al. 2021 (Switch Transformers) §2.2: with a capacity every expert computes on a "
                "fixed-size buffer of C_exp tokens, empty slots padded, so each expert matmul executes E·C_exp rows "
                "whatever the routing; without one only the N_tok·e routed assignments run (conventions.md)")
def expert_rows(*, N_tok: int, e: int, E: int, C_exp: int | None) -> int:
    """Rows each routed-expert matmul of one MoE layer executes (its FLOPs are 2·N_rows·d_in·d_out)."""
    return N_tok * e if C_exp is None else E * C_exp


@formula(id="flops.moe.dropped_min", symbol="n_drop,min", unit="tokens", expr="max(0, N_tok·e − E·C_exp)",
         source="Fedus et al. 2021 (Switch Transformers) §2.2: tokens that overflow an expert's capacity are "
                "dropped (passed on by the residual); E·C_exp slots hold at most that many of the N_tok·e assignments")
def dropped_min(*, N_tok: int, e: int, E: int, C_exp: int) -> int:
    """A lower bound on the routed assignments a capacity drops, reached only under perfectly balanced routing.

    Real routers are not balanced: an expert that draws more than C_exp assignments drops the excess even when
    C_cap ≥ 1 makes this bound 0, so the executed count (reference/moe.py's `MoE.dropped`) is this or more."""
    return max(0, N_tok * e - E * C_exp)
