"""A Perceiver latent cross-attention block (reference/latent.py) as Quantities: parameters, forward FLOPs and the
activation bytes training keeps, each a checked sum of registered formulas.

N_lat latents (queries) read T inputs (keys, values) of width d; then an MLP runs on the latents only. So the
projections of the inputs and the N_lat·T attention pairs are the only terms with T in them, each linear:
    F_lat(T) = F_lat(0) + T·F_lat,T      F_lat,T = 4·B·d_h·(d·h_kv + h_q·N_lat)   (flops.latent.per_input_token)
for a fixed N_lat, where self-attention over the same T tokens has T² pairs. Torch-free; each number is proven
equal to execution in tests/test_reference_latent.py (meta-device parameters, FlopCounterMode with SDPA in its
math form, the tensors autograd saves in a bf16 training forward).
"""

from __future__ import annotations

from transformer_math.analysis.quantity import Quantity, q, total
from transformer_math.config.spec import ModelSpec
from transformer_math.formulas import flops as ff
from transformer_math.formulas import latent as fl
from transformer_math.formulas import memory as fm
from transformer_math.formulas import params as fp

# Bytes per element the reference norms keep in a 16-bit training forward (norms.py computes in fp32):
#   (c_n per element, c_r per row, c_w per norm weight element)
#   RMSNorm:   fp32 input copy, fp32 normalized rows x·rstd, and the 16-bit output the next linear reads (4+4+2);
#              the fp32 rstd per row; the fp32 gain (offset + w)
#   LayerNorm: x − mean twice (the variance and the output each compute it: 4+4), fp32 normalized rows (4) and
#              the 16-bit output (2); the fp32 rstd per row; the fp32 weight copy
NORM_SAVES: dict[str, tuple[int, int, int]] = {"rmsnorm": (10, 4, 4), "layernorm": (14, 4, 4)}
B_A = 2  # bytes per activation element: 16-bit (bf16) training, as the project's activation profiles
C_LSE = 4  # fp32 log-sum-exp per query row and head (fused SDPA)


def _d_ff(s: ModelSpec, d_ff: int | None) -> int:
    return s.layers[0].d_ff if d_ff is None else d_ff


def latent_params(s: ModelSpec, *, n_latents: int, d_ff: int | None = None) -> Quantity:
    """latent.params: P = P_lat + P_WQ + P_WK + P_WV + P_WO + 3 norms (input, latents, MLP) + P_mlp."""
    d, h_q, h_kv, d_h = s.d_model, s.n_heads, s.n_kv_heads, s.head_dim
    parts = [q("latents", fl.latent_params, N_lat=n_latents, d=d),
             q("q_proj", fp.linear_params, symbol="P_WQ", d_in=d, d_out=h_q * d_h, bias=s.qkv_bias),
             q("k_proj", fp.linear_params, symbol="P_WK", d_in=d, d_out=h_kv * d_h, bias=s.qkv_bias),
             q("v_proj", fp.linear_params, symbol="P_WV", d_in=d, d_out=h_kv * d_h, bias=s.qkv_bias),
             q("o_proj", fp.linear_params, symbol="P_WO", d_in=h_q * d_h, d_out=d, bias=s.o_bias),
             q("norms", fp.norm_params, n_norm=3, k_norm=1 + (s.norm == "layernorm"), w=d,
               note="Norm_x (inputs), Norm_lat (latents), Norm_mlp"),
             q("mlp", fp.mlp_params, d=d, d_ff=_d_ff(s, d_ff), g_up=s.n_up, bias=s.mlp_bias)]
    return total("latent.params", parts, unit="parameters", symbol="P")


def latent_flops(s: ModelSpec, *, B: int, T: int, n_latents: int, d_ff: int | None = None) -> Quantity:
    """latent.flops: one forward pass over B sequences of T inputs (2 FLOPs per multiply-accumulate)."""
    d, h_q, h_kv, d_h, F = s.d_model, s.n_heads, s.n_kv_heads, s.head_dim, _d_ff(s, d_ff)
    lat, inp = B * n_latents, B * T
    pairs = q("pairs", fl.latent_pairs, N_lat=n_latents, T=T)
    parts = [q("q_proj", ff.linear_flops, N_tok=lat, d_in=d, d_out=h_q * d_h, note="over the B·N_lat latents"),
             q("k_proj", ff.linear_flops, N_tok=inp, d_in=d, d_out=h_kv * d_h, note="over the B·T inputs"),
             q("v_proj", ff.linear_flops, N_tok=inp, d_in=d, d_out=h_kv * d_h, note="over the B·T inputs"),
             q("scores", ff.attention_score_flops, B=B, h_q=h_q, n_pairs=pairs.value, d_qk=d_h,
               note=f"n_pairs = N_lat·T = {pairs.value}"),
             q("values", ff.attention_value_flops, B=B, h_q=h_q, n_pairs=pairs.value, d_v=d_h),
             q("o_proj", ff.linear_flops, N_tok=lat, d_in=h_q * d_h, d_out=d),
             *(q(f"mlp.{name}", ff.linear_flops, N_tok=lat, d_in=d, d_out=F)
               for name in (("gate", "up") if s.n_up == 2 else ("up",))),
             q("mlp.down", ff.linear_flops, N_tok=lat, d_in=F, d_out=d)]
    return total("latent.flops", parts, unit="FLOPs", symbol="F_lat",
                 note="linear in T for a fixed N_lat: see latent.flops_per_input_token")


def latent_input_token_flops(s: ModelSpec, *, B: int, n_latents: int) -> Quantity:
    """latent.flops_per_input_token: F_lat(T + 1) − F_lat(T), the same at every T."""
    return q("latent.flops_per_input_token", fl.latent_input_token_flops, B=B, d_h=s.head_dim, d=s.d_model,
             h_kv=s.n_kv_heads, h_q=s.n_heads, N_lat=n_latents)


def latent_activation_bytes(s: ModelSpec, *, B: int, T: int, n_latents: int, d_ff: int | None = None) -> Quantity:
    """latent.activations_bytes: the distinct tensors autograd keeps in a bf16 training forward of the reference
    block with torch's fused SDPA (parameters excluded; the block's input is the previous layer's output)."""
    c_n, c_r, c_w = NORM_SAVES[s.norm]
    h_q, h_kv, d_h = s.n_heads, s.n_kv_heads, s.head_dim
    relu = s.activation == "relu"  # relu keeps only its output, which the next product keeps anyway
    parts = [q("norms.input", fm.norm_activation_bytes, B=B, T=T, n_norm=1, c_n=c_n, w=s.d_model, c_r=c_r, c_w=c_w,
               note="Norm_x over the T inputs (its output is what W_K and W_V read)"),
             q("norms.latent", fm.norm_activation_bytes, B=B, T=n_latents, n_norm=2, c_n=c_n, w=s.d_model, c_r=c_r,
               c_w=c_w, note="Norm_lat and Norm_mlp over the N_lat latents"),
             q("cross_attention", fl.latent_attention_activation_bytes, B=B, N_lat=n_latents, T=T, h_q=h_q,
               h_kv=h_kv, d_h=d_h, c_q=B_A, c_o=B_A, c_lse=C_LSE, c_k=B_A),
             q("mlp", fm.mlp_activation_bytes, B=B, T=n_latents, c_ff=B_A * (2 * s.n_up - relu), d_ff=_d_ff(s, d_ff),
               note="gated: gate, φ(gate), up, product; plain: up, φ(up); relu keeps one tensor fewer")]
    return total("latent.activations_bytes", parts, unit="bytes", symbol="M_act")


def analyze_latent(s: ModelSpec, *, B: int, T: int, n_latents: int, d_ff: int | None = None) -> dict[str, Quantity]:
    """The block's four quantities by key: params, flops, flops_per_input_token, activations_bytes."""
    out = [latent_params(s, n_latents=n_latents, d_ff=d_ff), latent_flops(s, B=B, T=T, n_latents=n_latents, d_ff=d_ff),
           latent_input_token_flops(s, B=B, n_latents=n_latents),
           latent_activation_bytes(s, B=B, T=T, n_latents=n_latents, d_ff=d_ff)]
    return {x.key: x for x in out}
