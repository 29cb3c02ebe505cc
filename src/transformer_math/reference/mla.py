"""Multi-head latent attention (DeepSeek-V2/V3) that runs, in the naive and the absorbed form, with a latent cache.

Shapes as suffixes: B batch, T new tokens, S keys (cached + new), D = d, H = h_q heads, Q = d_cq (query rank),
C = d_c (KV rank), N = d_h^nope, R = d_h^rope, V = d_v, K = N + R (the query/key head width).

Query (low rank when d_cq > 0, else one full-rank W_Q):
    q_BTHK = RMSNorm(x·W_DQᵀ)·W_UQᵀ   or  x·W_Qᵀ;   q = [q_nope (N) | q_rope (R)] per head
Keys and values from one down-projection; the cache holds only its output, d_c + d_rope numbers per token per layer:
    [c_BTC | k_rope_BTR] = x·W_DKVᵀ,  c ← RMSNorm(c),  k_rope ← RoPE(k_rope)   (one rope key shared by all heads)
Naive form (what Hugging Face runs): decompress every cached latent,
    [k_nope_BSHN | v_BSHV] = c_BSC·W_UKVᵀ,  k = [k_nope | k_rope],  o = softmax(q·kᵀ·s + mask)·v
Absorbed form (DeepSeek's inference trick): W_UKV = [W_UK (H·N × C) ; W_UV (H·V × C)], so per head h
    q_h·k_hᵀ = q_nope,h·(c·W_UK,hᵀ)ᵀ + q_rope,h·k_ropeᵀ = (q_nope,h·W_UK,h)·cᵀ + q_rope,h·k_ropeᵀ
    q_lat_BHTC = q_nope·W_UK,h   (2·B·T·H·N·C FLOPs)       scores = q_lat·cᵀ + q_rope·k_ropeᵀ  (d_c + d_rope wide)
    o_lat_BHTC = softmax(scores·s + mask)·c                 o_BHTV = o_lat·W_UV,hᵀ  (2·B·T·H·C·V FLOPs)
Both end in o_proj: y = o_BT(HV)·W_Oᵀ. Softmax scale s = K^-½, times mscale² with YaRN (see below).

RoPE on the d_rope part only. DeepSeek stores the rotary pairs interleaved ((x0, x1), (x2, x3), …; V3's
rope_interleave, default True; V2 always): each pair (x_2i, x_2i+1) turns by angle pos·θ_i,
θ_i = base^(−2i/R). The rotated vector is laid out [even parts | odd parts] (as HF's DeepseekV3 does); since q and k
share the layout, q·k is the same as with pairs kept in place (HF's DeepseekV2). YaRN (DeepSeek-V3's rope_scaling):
θ_i blends θ_i/factor (interpolation) and θ_i (extrapolation) by a linear ramp over the pair index between the
dimensions that turn β_fast and β_slow times over the original context L_orig; cos and sin are scaled by
mscale(factor, mscale)/mscale(factor, mscale_all_dim), and the softmax scale by mscale(factor, mscale_all_dim)²,
mscale(f, m) = 0.1·m·ln f + 1 (f > 1). The spec carries only the factor (s_rope) and θ_base: the other YaRN
settings default to DeepSeek-V3's (β_fast 32, β_slow 1, mscale = mscale_all_dim = 1, L_orig = L_max/factor);
pass `rope=` (HF's rope_parameters dict) for others. A `Details` gives the norm ε and θ_base only: its RopeConfig
has no mscale_all_dim (the softmax factor) and details_for reads s_rope as linear scaling, which DeepSeek is not.

Interface (attention.py's): MLA(spec, layer_index, details=None); forward(x_BTD, pos_T, cache=None, *, causal=True,
prefix=0, absorbed=None) -> y_BTD, absorbed=None meaning self.absorbed (False: the naive form, as HF runs);
new_cache() -> LatentCache, a cache.FullCache holding c_KV as `k` (B×1×S×d_c) and the RoPE key as `v` (B×1×S×d_rope)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transformer_math.config.spec import ModelSpec
from transformer_math.reference.attention import attention_mask
from transformer_math.reference.cache import FullCache
from transformer_math.reference.details import Details, RopeConfig
from transformer_math.reference.norms import RMSNorm
from transformer_math.reference.positions import RoPE

DEFAULT_THETA = 10000.0  # DeepseekV2/V3Config's rope_theta when the config is silent


class LatentCache(FullCache):
    """The MLA layer cache: c_KV (d_c) as `k` and the rotated RoPE key (d_rope) as `v`, one row per token, shared
    by all heads: nbytes() = B·L·(d_c + d_rope)·b_kv per layer, against 2·B·L·h·d_h for a plain KV cache."""


def _mscale(factor: float, m: float = 1.0) -> float:
    return 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0


def deepseek_rope(rope: Mapping[str, Any] | None, *, theta: float, max_context: int) -> tuple[RopeConfig, float]:
    """(RopeConfig for positions.RoPE, softmax-scale multiplier) from an HF rope_parameters dict (None: plain)."""
    if not rope or rope.get("rope_type", rope.get("type", "default")) in ("default", None):
        return RopeConfig(theta=theta), 1.0
    kind = rope.get("rope_type", rope.get("type"))
    if kind != "yarn":
        raise ValueError(f"rope_type {kind!r}: only default and yarn are modelled for MLA")
    factor = float(rope["factor"])
    L_orig = rope.get("original_max_position_embeddings") or round(max_context / factor)
    ms, ms_all = rope.get("mscale"), rope.get("mscale_all_dim")
    attention = rope.get("attention_factor")
    if attention is None:
        attention = (_mscale(factor, float(ms)) / _mscale(factor, float(ms_all))
                     if ms and ms_all else _mscale(factor))
    cfg = RopeConfig(theta=float(rope.get("rope_theta") or theta), kind="yarn", factor=factor,
                     original_context=int(L_orig), beta_fast=float(rope.get("beta_fast") or 32),
                     beta_slow=float(rope.get("beta_slow") or 1),
                     attention_factor=float(attention))
    return cfg, _mscale(factor, float(ms_all)) ** 2 if ms_all else 1.0


class MLA(nn.Module):
    """DeepSeek multi-head latent attention of layer `layer_index` (formulas in the module docstring)."""

    def __init__(self, spec: ModelSpec, layer_index: int, details: Details | None = None, *,
                 rope: Mapping[str, Any] | None = None, interleaved: bool = True, absorbed: bool = False) -> None:
        super().__init__()
        if spec.mla is None:
            raise ValueError(f"{spec.name} has no MLA settings")
        m = spec.mla
        self.spec, self.mla, self.layer_index = spec, m, layer_index
        self.interleaved, self.absorbed = interleaved, absorbed
        eps = 1e-6 if details is None else details.norm_eps
        theta = spec.rope_theta or (DEFAULT_THETA if details is None else details.rope.theta)
        D, H, K = spec.d_model, spec.n_heads, m.d_nope + m.d_rope
        if rope is None and spec.rope_scaling:
            rope = {"rope_type": "yarn", "factor": spec.rope_scaling, "mscale": 1.0, "mscale_all_dim": 1.0}
        rope_cfg, softmax_mult = deepseek_rope(rope, theta=theta, max_context=spec.max_context)
        self.rope = RoPE(m.d_rope, rope_cfg)
        self.scale = K ** -0.5 * softmax_mult
        if m.q_rank:
            self.q_a_proj: nn.Linear | None = nn.Linear(D, m.q_rank, bias=spec.qkv_bias)
            self.q_a_norm: RMSNorm | None = RMSNorm(m.q_rank, eps)
            self.q_b_proj: nn.Linear | None = nn.Linear(m.q_rank, H * K, bias=False)
            self.q_proj: nn.Linear | None = None
        else:
            self.q_a_proj = self.q_a_norm = self.q_b_proj = None
            self.q_proj = nn.Linear(D, H * K, bias=False)
        self.kv_a_proj = nn.Linear(D, m.kv_rank + m.d_rope, bias=spec.qkv_bias)
        self.kv_a_norm = RMSNorm(m.kv_rank, eps)
        self.kv_b_proj = nn.Linear(m.kv_rank, H * (m.d_nope + m.d_v), bias=False)
        self.o_proj = nn.Linear(H * m.d_v, D, bias=spec.o_bias)

    def new_cache(self) -> LatentCache:
        return LatentCache()

    def _query(self, x_BTD: Tensor) -> Tensor:
        if self.q_proj is not None:
            q = self.q_proj(x_BTD)
        else:
            assert self.q_a_proj is not None and self.q_a_norm is not None and self.q_b_proj is not None
            q = self.q_b_proj(self.q_a_norm(self.q_a_proj(x_BTD)))
        B, T, _ = x_BTD.shape
        return q.view(B, T, self.spec.n_heads, self.mla.d_nope + self.mla.d_rope).transpose(1, 2)

    def _rotate(self, x_BHTR: Tensor, pos_T: Tensor) -> Tensor:
        """RoPE; DeepSeek's interleaved pairs (x_2i, x_2i+1) are first regrouped as [evens | odds]."""
        if self.interleaved:
            x_BHTR = torch.cat((x_BHTR[..., 0::2], x_BHTR[..., 1::2]), dim=-1)
        return self.rope(x_BHTR, pos_T)

    def up_weights(self) -> tuple[Tensor, Tensor]:
        """W_UK_HNC and W_UV_HVC: kv_b_proj's weight split per head."""
        m = self.mla
        W = self.kv_b_proj.weight.view(self.spec.n_heads, m.d_nope + m.d_v, m.kv_rank)
        return W[:, :m.d_nope], W[:, m.d_nope:]

    def forward(self, x_BTD: Tensor, pos_T: Tensor, cache: FullCache | None = None, *, causal: bool = True,
                prefix: int = 0, absorbed: bool | None = None) -> Tensor:
        m, H = self.mla, self.spec.n_heads
        B, T, _ = x_BTD.shape
        q_BHTK = self._query(x_BTD)
        q_nope_BHTN = q_BHTK[..., :m.d_nope]
        q_rope_BHTR = self._rotate(q_BHTK[..., m.d_nope:], pos_T)
        ckr_BT_ = self.kv_a_proj(x_BTD)
        c_B1TC = self.kv_a_norm(ckr_BT_[..., :m.kv_rank]).unsqueeze(1)
        kr_B1TR = self._rotate(ckr_BT_[..., m.kv_rank:].unsqueeze(1), pos_T)
        pos_S = pos_T
        if cache is not None:
            c_B1TC, kr_B1TR, pos_S = cache.update(c_B1TC, kr_B1TR, pos_T)
        c_BSC, kr_BSR = c_B1TC[:, 0], kr_B1TR[:, 0]
        allowed_TS = attention_mask(pos_T, pos_S, causal=causal, prefix=prefix)

        if self.absorbed if absorbed is None else absorbed:
            W_UK_HNC, W_UV_HVC = self.up_weights()
            q_lat_BHTC = torch.einsum("bhtn,hnc->bhtc", q_nope_BHTN, W_UK_HNC)
            s_BHTS = (torch.einsum("bhtc,bsc->bhts", q_lat_BHTC, c_BSC)
                      + torch.einsum("bhtr,bsr->bhts", q_rope_BHTR, kr_BSR))
            o_lat_BHTC = torch.einsum("bhts,bsc->bhtc", self._softmax(s_BHTS, allowed_TS), c_BSC)
            o_BHTV = torch.einsum("bhtc,hvc->bhtv", o_lat_BHTC, W_UV_HVC)
        else:
            S = c_BSC.shape[1]
            kv_BSH_ = self.kv_b_proj(c_BSC).view(B, S, H, m.d_nope + m.d_v).transpose(1, 2)
            k_BHSK = torch.cat((kv_BSH_[..., :m.d_nope], kr_B1TR.expand(B, H, S, m.d_rope)), dim=-1)
            q_BHTK = torch.cat((q_nope_BHTN, q_rope_BHTR), dim=-1)
            p_BHTS = self._softmax(q_BHTK @ k_BHSK.transpose(-1, -2), allowed_TS)
            o_BHTV = p_BHTS @ kv_BSH_[..., m.d_nope:]
        return self.o_proj(o_BHTV.transpose(1, 2).reshape(B, T, H * m.d_v))

    def _softmax(self, s_BHTS: Tensor, allowed_TS: Tensor) -> Tensor:
        s_BHTS = (s_BHTS * self.scale).masked_fill(~allowed_TS, float("-inf"))
        return F.softmax(s_BHTS, dim=-1, dtype=torch.float32).to(s_BHTS.dtype)
