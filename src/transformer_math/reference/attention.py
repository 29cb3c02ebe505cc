"""Attention of one layer: MHA, GQA and MQA are one module (any h_q, h_kv with h_kv | h_q).

    q = x·W_Q → h_q heads of d_h;   k = x·W_K, v = x·W_V → h_kv heads of d_h;   g_GQA = h_q / h_kv
    (qk-norm: RMSNorm over each head's d_h, or over all h·d_h channels at once for OLMo-2)
    q, k ← RoPE(q, k) on RoPE layers (NoPE layers skip it)
    s_hts = q_ht·k_{⌈h/g⌉,s} · scale          scale = 1/√d_h unless the family says otherwise
    s ← c_attn·tanh(s/c_attn)                  (Gemma 2 soft-cap)
    s_ts = −∞ where the mask forbids (t, s)    causal: s ≤ t; bidirectional: all; prefix-LM: also s, t < prefix
                                               sliding(S): t − s < S; chunked(S): ⌊t/S⌋ = ⌊s/S⌋; k_sinks: s < k_sinks
    p = softmax_s(s)   — with gpt-oss sinks, a learned logit per head joins the softmax and is dropped after it
    y = concat_h(p·v)·W_O
Runs torch's scaled_dot_product_attention where it applies, else the explicit softmax (always with sinks,
soft-cap, ALiBi or a score bias; `use_sdpa = False` forces it). MHA is h_kv = h_q, MQA is h_kv = 1.
FLOPs per token: 2·d·(h_q + 2·h_kv)·d_h (projections), 2·h_q·d_h·d (W_O) and 2·2·h_q·d_h per attended key
(scores and values). KV cache per token: 2·h_kv·d_h elements.

The interface every attention module of this package has (MLA's too), which model.py relies on:
    Module(spec: ModelSpec, layer_index: int, details: Details | None = None)
    forward(x_BTD, pos_T, cache=None, *, causal=True, prefix=0) -> y_BTD
        pos_T: absolute positions (LongTensor, T) of the T new tokens, the same for every sequence
        cache: what new_cache() returned, updated in place
    new_cache() -> a layer cache (see cache.py: update(k, v, pos_T) -> (k, v, pos_S) and nbytes())
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transformer_math.config.spec import ModelSpec
from transformer_math.reference.cache import FullCache, WindowCache
from transformer_math.reference.details import Details, details_for
from transformer_math.reference.norms import RMSNorm
from transformer_math.reference.positions import RoPE, alibi_bias


def attention_mask(q_pos_T: torch.Tensor, k_pos_S: torch.Tensor, *, kind: str = "full", window: int | None = None,
                   causal: bool = True, prefix: int = 0, n_sinks: int = 0) -> torch.Tensor:
    """Boolean T×S: True where query t may attend to key s."""
    t, s = q_pos_T[:, None], k_pos_S[None, :]
    allowed = s <= t if causal else torch.ones_like(s <= t)
    if prefix:  # prefix-LM: the prefix sees itself both ways
        allowed = allowed | ((s < prefix) & (t < prefix))
    if kind == "sliding":
        assert window is not None
        local = (t - s).abs() < window
    elif kind == "chunked":
        assert window is not None
        local = (t // window) == (s // window)
    else:
        return allowed
    if n_sinks:
        local = local | (s < n_sinks)
    return allowed & local


class Attention(nn.Module):
    """Self-attention of layer `layer_index` of `spec` (formulas and interface in the module docstring)."""

    def __init__(self, spec: ModelSpec, layer_index: int, details: Details | None = None) -> None:
        super().__init__()
        det = details or details_for(spec)
        layer = spec.layers[layer_index]
        d, self.h_q, self.h_kv, self.d_h = spec.d_model, spec.n_heads, spec.n_kv_heads, spec.head_dim
        self.kind, self.window, self.n_sinks = layer.attention, layer.window, spec.n_sink_tokens
        self.q = nn.Linear(d, self.h_q * self.d_h, bias=spec.qkv_bias)
        self.k = nn.Linear(d, self.h_kv * self.d_h, bias=spec.qkv_bias)
        self.v = nn.Linear(d, self.h_kv * self.d_h, bias=spec.qkv_bias)
        self.o = nn.Linear(self.h_q * self.d_h, d, bias=spec.o_bias)
        self.qk_span = spec.qk_norm_span
        self.q_norm = self.k_norm = None
        if spec.qk_norm:
            all_heads = spec.qk_norm_span == "all"
            self.q_norm = RMSNorm(self.d_h * (self.h_q if all_heads else 1), det.norm_eps, det.norm_offset)
            self.k_norm = RMSNorm(self.d_h * (self.h_kv if all_heads else 1), det.norm_eps, det.norm_offset)
        self.sinks = nn.Parameter(torch.zeros(self.h_q)) if spec.sinks else None
        rope_cfg = det.rope_local if det.rope_local is not None and layer.attention != "full" else det.rope
        self.rope = RoPE(self.d_h, rope_cfg) if layer.rope and not spec.learned_positions and not det.alibi else None
        self.alibi = det.alibi
        self.scale = det.attn_scale if det.attn_scale is not None else self.d_h ** -0.5
        self.softcap = spec.attn_softcap
        self.use_sdpa = True  # False: the explicit softmax (always used with sinks, soft-cap or ALiBi)

    def new_cache(self) -> FullCache | WindowCache:
        if self.kind == "full":
            return FullCache()
        assert self.window is not None
        return WindowCache(self.window, self.n_sinks)

    def forward(self, x_BTD: torch.Tensor, pos_T: torch.Tensor, cache: FullCache | WindowCache | None = None, *,
                causal: bool = True, prefix: int = 0, bias: torch.Tensor | None = None) -> torch.Tensor:
        """`bias`: an additive score bias broadcast over B×h_q×T×S (T5's relative positions), if any."""
        B, T, _ = x_BTD.shape
        q, k, v = self.q(x_BTD), self.k(x_BTD), self.v(x_BTD)
        if self.q_norm is not None and self.k_norm is not None and self.qk_span == "all":
            q, k = self.q_norm(q), self.k_norm(k)
        q_BHTD = q.view(B, T, self.h_q, self.d_h).transpose(1, 2)
        k_BHTD = k.view(B, T, self.h_kv, self.d_h).transpose(1, 2)
        v_BHTD = v.view(B, T, self.h_kv, self.d_h).transpose(1, 2)
        if self.q_norm is not None and self.k_norm is not None and self.qk_span == "head":
            q_BHTD, k_BHTD = self.q_norm(q_BHTD), self.k_norm(k_BHTD)
        if self.rope is not None:
            q_BHTD, k_BHTD = self.rope(q_BHTD, pos_T), self.rope(k_BHTD, pos_T)
        k_pos_S = pos_T
        if cache is not None:
            k_BHTD, v_BHTD, k_pos_S = cache.update(k_BHTD, v_BHTD, pos_T)
        mask_TS = attention_mask(pos_T, k_pos_S, kind=self.kind, window=self.window, causal=causal, prefix=prefix,
                                 n_sinks=self.n_sinks)
        if self.use_sdpa and self.sinks is None and self.softcap is None and not self.alibi and bias is None:
            y_BHTD = F.scaled_dot_product_attention(q_BHTD, k_BHTD, v_BHTD, attn_mask=mask_TS, scale=self.scale,
                                                    enable_gqa=self.h_kv != self.h_q)
        else:
            y_BHTD = self._explicit(q_BHTD, k_BHTD, v_BHTD, mask_TS, pos_T, k_pos_S, bias)
        return self.o(y_BHTD.transpose(1, 2).reshape(B, T, self.h_q * self.d_h))

    def _explicit(self, q_BHTD: torch.Tensor, k_BHSD: torch.Tensor, v_BHSD: torch.Tensor, mask_TS: torch.Tensor,
                  pos_T: torch.Tensor, k_pos_S: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        g = self.h_q // self.h_kv  # each KV head serves g query heads
        k_BHSD, v_BHSD = k_BHSD.repeat_interleave(g, dim=1), v_BHSD.repeat_interleave(g, dim=1)
        s_BHTS = (q_BHTD @ k_BHSD.transpose(-1, -2)) * self.scale
        if self.softcap is not None:
            s_BHTS = self.softcap * torch.tanh(s_BHTS / self.softcap)
        if self.alibi:
            s_BHTS = s_BHTS + alibi_bias(self.h_q, pos_T, k_pos_S).to(s_BHTS.dtype)
        if bias is not None:
            s_BHTS = s_BHTS + bias
        s_BHTS = s_BHTS.masked_fill(~mask_TS, float("-inf"))
        if self.sinks is None:
            p_BHTS = torch.softmax(s_BHTS.float(), dim=-1).to(q_BHTD.dtype)
        else:  # one more logit per head in the softmax's denominator, attending to nothing
            B, H, T, _ = s_BHTS.shape
            sink_BHT1 = self.sinks.view(1, H, 1, 1).expand(B, H, T, 1).to(s_BHTS.dtype)
            p_BHTS = torch.softmax(torch.cat((s_BHTS, sink_BHT1), dim=-1).float(), dim=-1)[..., :-1]
            p_BHTS = p_BHTS.to(q_BHTD.dtype)
        return p_BHTS @ v_BHSD
