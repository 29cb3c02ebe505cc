"""Encoder-only (BERT) and encoder–decoder (T5) models from a ModelSpec, with cross-attention and its cache.

Encoder-only (spec.arch = "encoder", Devlin et al. 2019):
    x⁰ = W_E[ids] + W_pos[p] + W_tt[type]         then Norm (spec.embedding_norm)
    each of the N_L layers attends both ways (no mask), its norms after the residual add (post_add):
        x ← Norm(x + Attn(x));   x ← Norm(x + MLP(x))
    logits = Norm(φ(x·W_tfᵀ + b_tf))·W_LM + b_LM   (spec.head_transform: BERT's MLM head; W_LM = W_Eᵀ when tied)
    Nothing is cached: every token sees every other, so there is no token-by-token decoding.

Encoder–decoder (spec.arch = "encoder_decoder", Raffel et al. 2020):
    encoder: N_enc layers over the T_enc input tokens, bidirectional, then a final norm → memory m (T_enc × d)
    decoder: N_L layers over the T decoder tokens, each three sublayers (pre-norm in T5):
        x ← x + SelfAttn(Norm(x))           causal, cached token by token like a decoder-only model
        x ← x + CrossAttn(Norm(x), m)       q = x·W_Q (T rows); k = m·W_K, v = m·W_V (T_enc rows, computed once
                                            per sequence and kept: the cross-attention cache, 2·h_kv·d_h·T_enc
                                            elements per layer, whatever the decoder length)
        x ← x + MLP(Norm(x))
    logits = (Norm(x)·s_head)·W_LM,  s_head = d^-½ before a tied head (T5), else 1
    Relative positions (n_rel buckets, spec.relative_buckets): the score of query i and key j gains a learned
    b[bucket(j − i), head], one table per stack, shared by its layers; no position enters the embeddings.
    bucket(r): half the buckets are exact offsets |r| < n/2, the rest grow logarithmically up to max_distance
    (128), beyond which offsets share the last bucket; the encoder tells r > 0 from r < 0 (n_rel/2 buckets each),
    the decoder only looks back (r ≤ 0). T5 also leaves the logits unscaled (no 1/√d_h).
Cross-attention FLOPs per decoder token: 2·d·h_q·d_h (W_Q) + 2·2·h_q·d_h·T_enc (scores, values) + 2·h_q·d_h·d (W_O);
per encoder token, once: 2·2·d·h_kv·d_h (W_K, W_V).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from transformer_math.config.spec import ModelSpec
from transformer_math.reference.cache import FullCache
from transformer_math.reference.details import Details, details_for
from transformer_math.reference.mlp import activation
from transformer_math.reference.model import Block, encoder_view, residual
from transformer_math.reference.norms import make_norm


def relative_bucket(rel_TS: torch.Tensor, *, bidirectional: bool, n_buckets: int, max_distance: int) -> torch.Tensor:
    """T5's bucket of each offset r = key position − query position (LongTensor of the same shape)."""
    bucket = torch.zeros_like(rel_TS)
    if bidirectional:  # keys after the query use the upper half of the buckets
        n_buckets //= 2
        bucket = bucket + (rel_TS > 0).long() * n_buckets
        dist = rel_TS.abs()
    else:  # a decoder never sees ahead: every later key falls in bucket 0
        dist = (-rel_TS).clamp(min=0)
    exact = n_buckets // 2
    far = exact + (torch.log(dist.float().clamp(min=1) / exact) / math.log(max_distance / exact)
                   * (n_buckets - exact)).long()
    return bucket + torch.where(dist < exact, dist, far.clamp(max=n_buckets - 1))


class RelativeBias(nn.Module):
    """b[bucket(j − i), head] for queries at q_pos_T and keys at k_pos_S: 1 × h × T × S, added to the scores."""

    def __init__(self, n_buckets: int, h: int, *, bidirectional: bool, max_distance: int) -> None:
        super().__init__()
        self.table = nn.Embedding(n_buckets, h)
        self.bidirectional, self.max_distance = bidirectional, max_distance

    def forward(self, q_pos_T: torch.Tensor, k_pos_S: torch.Tensor) -> torch.Tensor:
        b_TS = relative_bucket(k_pos_S[None, :] - q_pos_T[:, None], bidirectional=self.bidirectional,
                               n_buckets=self.table.num_embeddings, max_distance=self.max_distance)
        return self.table(b_TS).permute(2, 0, 1).unsqueeze(0)


class CrossCache(FullCache):
    """The K and V a decoder layer projected from the encoder output, kept for every later decoding step."""


class CrossAttention(nn.Module):
    """Decoder queries over the encoder's memory: no mask, no positions (formulas in the module docstring)."""

    def __init__(self, spec: ModelSpec, details: Details) -> None:
        super().__init__()
        d, self.h_q, self.h_kv, self.d_h = spec.d_model, spec.n_heads, spec.n_kv_heads, spec.head_dim
        self.q = nn.Linear(d, self.h_q * self.d_h, bias=spec.qkv_bias)
        self.k = nn.Linear(d, self.h_kv * self.d_h, bias=spec.qkv_bias)
        self.v = nn.Linear(d, self.h_kv * self.d_h, bias=spec.qkv_bias)
        self.o = nn.Linear(self.h_q * self.d_h, d, bias=spec.o_bias)
        self.scale = details.attn_scale if details.attn_scale is not None else self.d_h ** -0.5

    def forward(self, x_BTD: torch.Tensor, memory_BSD: torch.Tensor, cache: CrossCache | None = None) -> torch.Tensor:
        B, T, _ = x_BTD.shape
        q_BHTD = self.q(x_BTD).view(B, T, self.h_q, self.d_h).transpose(1, 2)
        if cache is not None and cache.k is not None and cache.v is not None:  # projected once, then read
            k_BHSD, v_BHSD = cache.k, cache.v
        else:
            S = memory_BSD.shape[1]
            k_BHSD = self.k(memory_BSD).view(B, S, self.h_kv, self.d_h).transpose(1, 2)
            v_BHSD = self.v(memory_BSD).view(B, S, self.h_kv, self.d_h).transpose(1, 2)
            if cache is not None:
                cache.update(k_BHSD, v_BHSD, torch.arange(S))
        g = self.h_q // self.h_kv
        k_BHSD, v_BHSD = k_BHSD.repeat_interleave(g, dim=1), v_BHSD.repeat_interleave(g, dim=1)
        s_BHTS = (q_BHTD @ k_BHSD.transpose(-1, -2)) * self.scale
        p_BHTS = torch.softmax(s_BHTS.float(), dim=-1).to(q_BHTD.dtype)
        return self.o((p_BHTS @ v_BHSD).transpose(1, 2).reshape(B, T, self.h_q * self.d_h))


class EncoderModel(nn.Module):
    """An encoder-only model (BERT): forward(ids_BT, types_BT=None) -> logits_BTV, every token seeing all others."""

    def __init__(self, spec: ModelSpec, details: Details | None = None) -> None:
        super().__init__()
        self.spec, self.details = spec, details or details_for(spec)
        d, V, det = spec.d_model, spec.vocab_size, self.details
        self.embed = nn.Embedding(V, d)
        self.pos_embed = nn.Embedding(spec.max_context, d) if spec.learned_positions else None
        self.type_embed = nn.Embedding(spec.token_types, d) if spec.token_types else None
        self.embed_norm = make_norm(spec.norm, d, det.norm_eps) if spec.embedding_norm else None
        self.layers = nn.ModuleList(Block(spec, i, det) for i in range(spec.n_layers))
        self.final_norm = Block.norm(spec, det, "in")  # pre-norm stacks end with a norm; post_add ones are normed
        self.head_transform = nn.Linear(d, d) if spec.head_transform else None
        self.head_norm = make_norm(spec.norm, d, det.norm_eps) if spec.head_transform else None
        self.lm_head = nn.Linear(d, V, bias=spec.lm_head_bias)
        if spec.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    def hidden(self, ids_BT: torch.Tensor, types_BT: torch.Tensor | None = None) -> torch.Tensor:
        """The last layer's output, B×T×d."""
        pos_T = torch.arange(ids_BT.shape[1], device=ids_BT.device)
        x_BTD = self.embed(ids_BT)
        if self.type_embed is not None:
            x_BTD = x_BTD + self.type_embed(torch.zeros_like(ids_BT) if types_BT is None else types_BT)
        if self.pos_embed is not None:
            x_BTD = x_BTD + self.pos_embed(pos_T)
        if self.embed_norm is not None:
            x_BTD = self.embed_norm(x_BTD)
        for block in self.layers:
            x_BTD = block(x_BTD, pos_T, causal=False)
        return x_BTD if self.final_norm is None else self.final_norm(x_BTD)

    def forward(self, ids_BT: torch.Tensor, types_BT: torch.Tensor | None = None) -> torch.Tensor:
        x_BTD = self.hidden(ids_BT, types_BT)
        if self.head_transform is not None and self.head_norm is not None:
            x_BTD = self.head_norm(activation(self.spec.activation)(self.head_transform(x_BTD)))
        return self.lm_head(x_BTD)


class DecoderBlock(Block):
    """A decoder layer of an encoder–decoder model: self-attention, cross-attention, MLP."""

    def __init__(self, spec: ModelSpec, layer_index: int, details: Details) -> None:
        super().__init__(spec, layer_index, details)
        self.cross = CrossAttention(spec, details)
        self.norm_cross_in, self.norm_cross_out = self.norm(spec, details, "in"), self.norm(spec, details, "out")

    def forward(self, x_BTD: torch.Tensor, pos_T: torch.Tensor, cache: object = None, *, causal: bool = True,
                prefix: int = 0, **kw: torch.Tensor) -> torch.Tensor:
        """kw: `memory` (B×T_enc×d, the encoder output), `bias` (the self-attention's), and with a cache `cross`."""
        memory, cross = kw.pop("memory"), kw.pop("cross", None)

        def attend(h: torch.Tensor) -> torch.Tensor:
            return self.attn(h, pos_T, cache, causal=True, bias=kw.get("bias"))

        def cross_attend(h: torch.Tensor) -> torch.Tensor:
            return self.cross(h, memory, cross)

        x_BTD = residual(x_BTD, attend, self.norm_attn_in, self.norm_attn_out, self.post_add)
        x_BTD = residual(x_BTD, cross_attend, self.norm_cross_in, self.norm_cross_out, self.post_add)
        return residual(x_BTD, self.mlp, self.norm_mlp_in, self.norm_mlp_out, self.post_add)


class EncoderDecoderCache:
    """Per decoder layer: the self-attention cache (grows by one token per step) and the cross-attention cache."""

    def __init__(self, n_layers: int) -> None:
        self.self_attn = [FullCache() for _ in range(n_layers)]
        self.cross = [CrossCache() for _ in range(n_layers)]
        self.seen = 0
        self.memory: torch.Tensor | None = None

    def nbytes(self) -> int:
        return sum(c.nbytes() for c in (*self.self_attn, *self.cross))


class EncoderDecoderModel(nn.Module):
    """An encoder–decoder model (T5): forward(ids_BS, dec_ids_BT, cache=None) -> logits_BTV of the decoder tokens.

    With a cache, the encoder runs on the first call only (its output is kept); later calls pass the next decoder
    tokens and may pass ids_BS = None."""

    def __init__(self, spec: ModelSpec, details: Details | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.details = det = details or details_for(spec)
        d, V, enc = spec.d_model, spec.vocab_size, encoder_view(spec)
        self.embed = nn.Embedding(V, d)
        self.encoder_layers = nn.ModuleList(Block(spec, i, det, encoder=True) for i in range(len(enc.layers)))
        self.encoder_norm = Block.norm(spec, det, "in")
        self.layers = nn.ModuleList(DecoderBlock(spec, i, det) for i in range(spec.n_layers))
        self.final_norm = Block.norm(spec, det, "in")
        self.encoder_bias = self.decoder_bias = None
        if spec.relative_buckets:
            kw = dict(n_buckets=spec.relative_buckets, h=spec.n_heads, max_distance=det.relative_max_distance)
            self.encoder_bias = RelativeBias(bidirectional=True, **kw)
            self.decoder_bias = RelativeBias(bidirectional=False, **kw)
        self.lm_head = nn.Linear(d, V, bias=spec.lm_head_bias)
        if spec.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    def new_cache(self) -> EncoderDecoderCache:
        return EncoderDecoderCache(self.spec.n_layers)

    def encode(self, ids_BS: torch.Tensor) -> torch.Tensor:
        """The encoder's output, B×T_enc×d."""
        pos_S = torch.arange(ids_BS.shape[1], device=ids_BS.device)
        bias = {} if self.encoder_bias is None else {"bias": self.encoder_bias(pos_S, pos_S)}
        x_BSD = self.embed(ids_BS)
        for block in self.encoder_layers:
            x_BSD = block(x_BSD, pos_S, causal=False, **bias)
        return x_BSD if self.encoder_norm is None else self.encoder_norm(x_BSD)

    def forward(self, ids_BS: torch.Tensor | None, dec_ids_BT: torch.Tensor,
                cache: EncoderDecoderCache | None = None) -> torch.Tensor:
        if cache is not None and cache.memory is not None:
            memory = cache.memory
        else:
            assert ids_BS is not None, "the first call needs the encoder's input ids"
            memory = self.encode(ids_BS)
            if cache is not None:
                cache.memory = memory
        start = 0 if cache is None else cache.seen
        pos_T = torch.arange(start, start + dec_ids_BT.shape[1], device=dec_ids_BT.device)
        k_pos_S = torch.arange(0, start + dec_ids_BT.shape[1], device=dec_ids_BT.device)
        kw: dict[str, torch.Tensor] = {"memory": memory}
        if self.decoder_bias is not None:
            kw["bias"] = self.decoder_bias(pos_T, k_pos_S)
        x_BTD = self.embed(dec_ids_BT)
        for i, block in enumerate(self.layers):
            layer_kw = kw if cache is None else {**kw, "cross": cache.cross[i]}
            x_BTD = block(x_BTD, pos_T, None if cache is None else cache.self_attn[i], **layer_kw)
        if cache is not None:
            cache.seen += dec_ids_BT.shape[1]
        x_BTD = x_BTD if self.final_norm is None else self.final_norm(x_BTD)
        return self.lm_head(x_BTD * self.details.head_scale)
