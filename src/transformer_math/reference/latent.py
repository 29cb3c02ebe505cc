"""Latent cross-attention: N_lat learned latent vectors read T input tokens (Perceiver, Jaegle et al. 2021, arXiv
2103.03206, "Taming quadratic complexity with cross-attention"; Perceiver AR, Hawthorne et al. 2022, arXiv
2202.07765).

A fixed, small set of N_lat latents queries an input of any length T. The inputs only ever act as keys and
values, so no T×T matrix exists: every cost that grows with T grows linearly, and the latents (not the inputs)
carry the rest of the network. One block, pre-norm with a residual around each sublayer:

    lat⁰ = latents               a learned N_lat × d array, the same for every sequence
    x̂ = Norm_x(x),  l̂ = Norm_lat(lat⁰)                               two norms, each with its own gain
    q = l̂·W_Q → h_q heads of d_h (N_lat rows);   k = x̂·W_K, v = x̂·W_V → h_kv heads of d_h (T rows)
    a = softmax(q·kᵀ/√d_h)·v     no mask: every latent sees all T inputs; GQA: g_GQA = h_q/h_kv per KV head
    lat¹ = lat⁰ + concat_h(a)·W_O
    lat² = lat¹ + MLP(Norm_mlp(lat¹))                                  the output, B × N_lat × d

Parameters (three norms, the inputs', the latents' and the MLP's, k_norm vectors each):

    P = N_lat·d + d·h_q·d_h + 2·d·h_kv·d_h + h_q·d_h·d + 3·k_norm·d + g_up·d·d_ff + d_ff·d   (+ biases)

Forward FLOPs (2 per multiply-accumulate; norms, softmax and residuals are not matrix products):

    F = 2·B·N_lat·d·h_q·d_h            W_Q over the latents
      + 2·2·B·T·d·h_kv·d_h             W_K and W_V over the inputs
      + 2·2·B·h_q·N_lat·T·d_h          scores q·kᵀ and values p·v over N_lat·T pairs
      + 2·B·N_lat·h_q·d_h·d            W_O
      + 2·B·N_lat·(g_up + 1)·d·d_ff    the MLP, on the latents only

The headline: for a fixed N_lat the cost is linear in T. Each further input token adds the same amount, whatever T
is, where self-attention over T tokens adds more with every token (its pairs are T², ours N_lat·T):

    ∂F/∂T = 4·B·d_h·(d·h_kv + h_q·N_lat)

Saved activations in training are linear in T too: the inputs' norm, K and V have T rows; everything else has
N_lat rows, and SDPA keeps one log-sum-exp per latent row and head, not the N_lat×T probabilities.

Which spec fields it reads: d_model, n_heads, n_kv_heads, head_dim, norm (with the family's ε and offset),
activation, n_up, qkv_bias, o_bias, mlp_bias and a d_ff (the first layer's unless given). It has no positions (a
Perceiver gives the inputs their position features beforehand), no qk-norm, sinks or soft-cap, and is pre-norm
whatever norm_placement says. Attention runs torch's scaled_dot_product_attention.

Perceiver AR takes the last N_lat input positions as the queries instead of learned latents, with a causal mask
(the query at position t sees the inputs up to t). `forward(x_BTD, lat_BND)` accepts any queries, e.g.
x_BTD[:, -N_lat:], but applies no mask: the learned-latent form is this module's own. With lat = x (N_lat = T)
the block is exactly one bidirectional pre-norm self-attention block, T² pairs again (tests/test_reference_latent.py
checks it against model.Block with causal=False).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transformer_math.config.spec import ModelSpec
from transformer_math.reference.details import Details, details_for
from transformer_math.reference.mlp import MLP
from transformer_math.reference.norms import make_norm


class LatentBlock(nn.Module):
    """A Perceiver latent cross-attention block: forward(x_BTD, lat_BND=None) -> lat_BND (module docstring)."""

    def __init__(self, spec: ModelSpec, n_latents: int, *, d_ff: int | None = None,
                 details: Details | None = None) -> None:
        super().__init__()
        det = details or details_for(spec)
        d, self.h_q, self.h_kv, self.d_h = spec.d_model, spec.n_heads, spec.n_kv_heads, spec.head_dim
        if n_latents < 1 or self.h_q % self.h_kv:
            raise ValueError(f"n_latents = {n_latents} ≥ 1 and h_kv = {self.h_kv} dividing h_q = {self.h_q}")
        d_ff = spec.layers[0].d_ff if d_ff is None else d_ff
        self.n_latents = n_latents
        self.latents = nn.Parameter(torch.empty(n_latents, d))  # lat_ND
        nn.init.trunc_normal_(self.latents, std=0.02, a=-2.0, b=2.0)  # Perceiver's initialisation (std 0.02)

        def norm() -> nn.Module:
            return make_norm(spec.norm, d, det.norm_eps, det.norm_offset)

        self.norm_x, self.norm_lat, self.norm_mlp = norm(), norm(), norm()
        self.q = nn.Linear(d, self.h_q * self.d_h, bias=spec.qkv_bias)
        self.k = nn.Linear(d, self.h_kv * self.d_h, bias=spec.qkv_bias)
        self.v = nn.Linear(d, self.h_kv * self.d_h, bias=spec.qkv_bias)
        self.o = nn.Linear(self.h_q * self.d_h, d, bias=spec.o_bias)
        self.mlp = MLP(d, d_ff, act=spec.activation, n_up=spec.n_up, bias=spec.mlp_bias)
        self.scale = det.attn_scale if det.attn_scale is not None else self.d_h ** -0.5

    def cross_attention(self, lat_BND: torch.Tensor, x_BTD: torch.Tensor) -> torch.Tensor:
        """concat_h(softmax(q·kᵀ/√d_h)·v)·W_O with q from Norm_lat(lat), k and v from Norm_x(x): B × N_lat × d."""
        B, N, _ = lat_BND.shape
        T = x_BTD.shape[1]
        x_hat_BTD, lat_hat_BND = self.norm_x(x_BTD), self.norm_lat(lat_BND)
        q_BHND = self.q(lat_hat_BND).view(B, N, self.h_q, self.d_h).transpose(1, 2)
        k_BHTD = self.k(x_hat_BTD).view(B, T, self.h_kv, self.d_h).transpose(1, 2)
        v_BHTD = self.v(x_hat_BTD).view(B, T, self.h_kv, self.d_h).transpose(1, 2)
        a_BHND = F.scaled_dot_product_attention(q_BHND, k_BHTD, v_BHTD, scale=self.scale,
                                                enable_gqa=self.h_kv != self.h_q)
        return self.o(a_BHND.transpose(1, 2).reshape(B, N, self.h_q * self.d_h))

    def forward(self, x_BTD: torch.Tensor, lat_BND: torch.Tensor | None = None) -> torch.Tensor:
        """The N_lat latents after reading x: B × N_lat × d. lat_BND: other queries (default: the learned ones)."""
        if lat_BND is None:
            lat_BND = self.latents.expand(x_BTD.shape[0], *self.latents.shape)  # shared by the batch: a view
        lat_BND = lat_BND + self.cross_attention(lat_BND, x_BTD)
        return lat_BND + self.mlp(self.norm_mlp(lat_BND))
