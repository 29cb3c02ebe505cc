"""Latent cross-attention (Perceiver): N_lat learned latents query T inputs, so no quantity grows faster than T.

The block's other terms are the ordinary ones (params.linear, params.norm, params.mlp, flops.linear,
flops.attention_scores/values, memory.activations.norms/mlp); these are the ones only a latent block has.
"""

from transformer_math.formulas._registry import formula

_PERCEIVER = ("Jaegle et al. 2021 (Perceiver, arXiv 2103.03206), 'Taming quadratic complexity with "
              "cross-attention': a latent array of N_lat × d cross-attends to the T × d input, so attention costs "
              "O(N_lat·T) rather than O(T²); Hawthorne et al. 2022 (Perceiver AR, arXiv 2202.07765) takes the last "
              "N_lat positions as the queries; ")


@formula(id="params.latents", symbol="P_lat", unit="parameters", expr="N_lat·d",
         source=_PERCEIVER + "the latents are one learned d-vector each (the initial latent array), shared "
                "by every sequence; reference/latent.py LatentBlock.latents")
def latent_params(*, N_lat: int, d: int) -> int:
    return N_lat * d


@formula(id="flops.pairs.latent", symbol="n_pairs", unit="pairs", expr="N_lat·T",
         source=_PERCEIVER + "no mask in the learned-latent form: each of the N_lat queries scores all T keys")
def latent_pairs(*, N_lat: int, T: int) -> int:
    return N_lat * T


@formula(id="flops.latent.per_input_token", symbol="F_lat,T", unit="FLOPs", expr="4·B·d_h·(d·h_kv + h_q·N_lat)",
         source=_PERCEIVER + "the forward FLOPs are a + b·T with b = ∂F/∂T: each input token costs its K and V "
                "projections (2·2·d·h_kv·d_h per sequence) and one score and one value product with every latent "
                "(2·2·h_q·N_lat·d_h); nothing else reads the inputs, so b does not depend on T")
def latent_input_token_flops(*, B: int, d_h: int, d: int, h_kv: int, h_q: int, N_lat: int) -> int:
    return 4 * B * d_h * (d * h_kv + h_q * N_lat)


@formula(id="memory.activations.latent_attention", symbol="M_act,xattn", unit="bytes",
         expr="B·N_lat·h_q·(c_q·d_h + c_o·d_h + c_lse) + B·T·c_k·2·h_kv·d_h",
         source=_PERCEIVER + "what fused SDPA keeps for backward (Dao et al. 2022, FlashAttention, arXiv 2205.14135 "
                "§3.1: the output and per-row softmax statistics, the probabilities recomputed): Q and the output "
                "at N_lat rows, K and V at T rows and h_kv heads (no repeat for GQA), one fp32 log-sum-exp per "
                "latent row and head (c_lse = 4; torch's CPU flash kernel) instead of N_lat×T probabilities; "
                "W_O reads the output itself; re-derived per saved tensor of reference/latent.py")
def latent_attention_activation_bytes(*, B: int, N_lat: int, T: int, h_q: int, h_kv: int, d_h: int, c_q: int,
                                      c_o: int, c_lse: int, c_k: int) -> int:
    return B * N_lat * h_q * (c_q * d_h + c_o * d_h + c_lse) + B * T * c_k * 2 * h_kv * d_h
