"""FLOPs per operation and per phase: prefill over B×T tokens, one decode step at context L, a training step.

Conventions (conventions.md): 2 FLOPs per MAC; only matrix products; attention 'dense' (full T×T, the
default, as eager attention and MFU count it) or 'causal' (unmasked pairs only); MoE counts the e routed
experts per token plus router and shared experts; MLA prefill in the naive form, decode absorbed.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformer_math.analysis.quantity import Quantity, q, total
from transformer_math.config.spec import LayerSpec, ModelSpec
from transformer_math.formulas import flops as f

ATTENTION_CONVENTIONS = ("dense", "causal")


@dataclass(frozen=True, slots=True)
class Op:
    """One row of the per-operation table: operation, output shape, FLOPs."""

    name: str
    shape: tuple[int, ...]
    flops: Quantity


def cached_tokens(layer: LayerSpec, L: int, k_sinks: int = 0) -> int:
    """L_kv: tokens a layer's cache holds after L tokens: all of them on full layers; on window layers the last
    S − 1 (as Hugging Face keeps them) plus the k_sinks first tokens a StreamingLLM cache pins; none on linear
    layers, whose fixed-size state (memory.linear_state) replaces the tokens."""
    if layer.attention == "linear":
        return 0
    return L if layer.attention == "full" else min(L, layer.window - 1 + k_sinks)  # type: ignore[operator]


def _pairs(s: ModelSpec, layer: LayerSpec, T: int, attention: str, causal: bool) -> Quantity:
    if attention == "dense" or not causal:  # an encoder attends to every pair under both conventions
        return q("n_pairs", f.dense_pairs, T=T)
    if s.prefix_length:  # prefix-LMs have full layers only (spec validation)
        return q("n_pairs", f.prefix_pairs, T=T, P=min(s.prefix_length, T))
    return q("n_pairs", f.causal_pairs, T=T, kind=layer.attention, S=layer.window)


def layer_ops(s: ModelSpec, layer: LayerSpec, *, B: int, T: int, L: int = 0, attention: str = "dense",
              decode: bool = False, mla_decode: str = "absorbed", causal: bool = True, T_enc: int = 0) -> list[Op]:
    """Ops of one layer: prefill of T tokens per sequence, or (decode) one token over L cached ones.

    causal=False: an encoder layer (bidirectional). T_enc > 0: a decoder layer of an encoder–decoder model, which
    also cross-attends to T_enc encoder outputs (their K and V projected in the forward, read from the cache when
    decoding). mla_decode='naive' is what Hugging Face executes: it decompresses every cached latent at each step.
    """
    if layer.attention == "linear":  # no query-key pairs: T tokens (1 when decoding), whatever L
        lin = _Linear(B=B, N=B * (1 if decode else T))
        return _linear_attention_ops(s, lin, B=B, T=1 if decode else T) + _mlp_ops(s, layer, lin)
    if decode:
        keys = pairs = cached_tokens(layer, L, s.n_sink_tokens) + 1
    else:
        keys, pairs = T, int(_pairs(s, layer, T, attention, causal).value)
    lin = _Linear(B=B, N=B * T)
    if s.mla is None:
        attn = _attention_ops(s, lin, B=B, T=T, keys=keys, pairs=pairs)
    else:
        attn = _mla_ops(s, lin, B=B, T=T, keys=keys, pairs=pairs, decode=decode,
                        absorbed=decode and mla_decode == "absorbed")
    if T_enc:
        attn += _cross_attention_ops(s, lin, B=B, T=T, T_enc=T_enc, decode=decode)
    return attn + _mlp_ops(s, layer, lin)


class _Linear:
    """A linear op over N tokens (B sequences) unless told otherwise: F = 2·N_tok·d_in·d_out."""

    __slots__ = ("B", "N")

    def __init__(self, *, B: int, N: int) -> None:  # a plain class: a dataclass costs start-up time
        self.B, self.N = B, N

    def __call__(self, name: str, d_in: int, d_out: int, *, tokens: int | None = None) -> Op:
        n = self.N if tokens is None else tokens
        return Op(name, (self.B, n // self.B, d_out), q(name, f.linear_flops, N_tok=n, d_in=d_in, d_out=d_out))


def _core(B: int, T: int, keys: int, pairs: int, h_q: int, d_qk: int, d_v: int, block: str = "attention") -> list[Op]:
    """QKᵀ over the attended pairs and the weighted sum of values."""
    return [Op(f"{block}.scores QK^T", (B, h_q, T, keys),
               q(f"{block}.scores", f.attention_score_flops, B=B, h_q=h_q, n_pairs=pairs, d_qk=d_qk)),
            Op(f"{block}.values PV", (B, h_q, T, d_v),
               q(f"{block}.values", f.attention_value_flops, B=B, h_q=h_q, n_pairs=pairs, d_v=d_v))]


def _attention_ops(s: ModelSpec, lin: _Linear, *, B: int, T: int, keys: int, pairs: int) -> list[Op]:
    d, h_q, h_kv, d_h = s.d_model, s.n_heads, s.n_kv_heads, s.head_dim
    return [lin("attention.q_proj", d, h_q * d_h), lin("attention.k_proj", d, h_kv * d_h),
            lin("attention.v_proj", d, h_kv * d_h), *_core(B, T, keys, pairs, h_q, d_h, d_h),
            lin("attention.o_proj", h_q * d_h, d)]


def _cross_attention_ops(s: ModelSpec, lin: _Linear, *, B: int, T: int, T_enc: int, decode: bool) -> list[Op]:
    """Queries from the T decoder tokens, keys and values from the T_enc encoder outputs (projected once: a decode
    step reads them from the cross-attention cache)."""
    d, h_q, h_kv, d_h = s.d_model, s.n_heads, s.n_kv_heads, s.head_dim
    kv = [] if decode else [lin("cross_attention.k_proj", d, h_kv * d_h, tokens=B * T_enc),
                            lin("cross_attention.v_proj", d, h_kv * d_h, tokens=B * T_enc)]
    pairs = int(q("n_pairs", f.cross_pairs, T=T, T_enc=T_enc).value)
    return [lin("cross_attention.q_proj", d, h_q * d_h), *kv,
            *_core(B, T, T_enc, pairs, h_q, d_h, d_h, "cross_attention"),
            lin("cross_attention.o_proj", h_q * d_h, d)]


def _linear_attention_ops(s: ModelSpec, lin: _Linear, *, B: int, T: int) -> list[Op]:
    """Linear attention (reference/linear_attention.py): the attention projections, then per token the state
    update φ(k)ᵀv per KV head and the readout φ(q)·S, φ(q)·z per query head, prefill and decode alike."""
    d, h_q, h_kv, d_h = s.d_model, s.n_heads, s.n_kv_heads, s.head_dim
    return [lin("attention.q_proj", d, h_q * d_h), lin("attention.k_proj", d, h_kv * d_h),
            lin("attention.v_proj", d, h_kv * d_h),
            Op("attention.linear_state φ(k)^T v", (B, h_kv, T, d_h, d_h),
               q("attention.linear_state", f.linear_attention_state_flops, B=B, T=T, h_kv=h_kv, d_k=d_h, d_v=d_h)),
            Op("attention.linear_readout φ(q)·S, φ(q)·z", (B, h_q, T, d_h + 1),
               q("attention.linear_readout", f.linear_attention_readout_flops, B=B, T=T, h_q=h_q, d_k=d_h,
                 d_v=d_h)),
            lin("attention.o_proj", h_q * d_h, d)]


def _mla_ops(s: ModelSpec, lin: _Linear, *, B: int, T: int, keys: int, pairs: int, decode: bool,
             absorbed: bool) -> list[Op]:
    """Multi-head latent attention: naive (latents decompressed to per-head K and V; in decode, every cached
    latent) or absorbed (W_UK folded into the query, W_UV applied after attending)."""
    m, d, h_q, N = s.mla, s.d_model, s.n_heads, lin.N
    assert m is not None
    d_qk = m.d_nope + m.d_rope
    if m.q_rank:
        ops = [lin("attention.q_a_proj", d, m.q_rank), lin("attention.q_b_proj", m.q_rank, h_q * d_qk)]
    else:
        ops = [lin("attention.q_proj", d, h_q * d_qk)]
    ops.append(lin("attention.kv_a_proj", d, m.kv_rank + m.d_rope))
    if absorbed:
        ops += [lin("attention.absorb_q W_UK", m.d_nope, m.kv_rank, tokens=N * h_q),
                *_core(B, T, keys, pairs, h_q, m.kv_rank + m.d_rope, m.kv_rank),
                lin("attention.absorb_o W_UV", m.kv_rank, m.d_v, tokens=N * h_q)]
    else:
        ops += [lin("attention.kv_b_proj", m.kv_rank, h_q * (m.d_nope + m.d_v), tokens=B * keys if decode else N),
                *_core(B, T, keys, pairs, h_q, d_qk, m.d_v)]
    return ops + [lin("attention.o_proj", h_q * m.d_v, d)]


def _mlp_ops(s: ModelSpec, layer: LayerSpec, lin: _Linear) -> list[Op]:
    d, g = s.d_model, s.n_up
    if layer.mlp == "dense":
        return [lin("mlp.up_gate" if g == 2 else "mlp.up", d, g * layer.d_ff), lin("mlp.down", layer.d_ff, d)]
    moe = s.moe
    assert moe is not None
    ops = [lin("moe.router", d, moe.n_experts), *_expert_ops(s, lin)]
    if moe.n_shared:
        ops += [lin("moe.shared.up_gate" if g == 2 else "moe.shared.up", d, g * moe.shared_width),
                lin("moe.shared.down", moe.shared_width, d)]
    if moe.shared_gate:  # one logit per token: sigmoid(x·w_g) scales the shared output
        ops.append(lin("moe.shared_gate", d, 1))
    return ops


def _expert_ops(s: ModelSpec, lin: _Linear) -> list[Op]:
    """The routed experts' two matmuls: N·e rows, or with a capacity factor E·C_exp rows (every expert runs its
    C_exp slots, empty ones zero-padded, as reference/moe.py executes them; overflowing assignments dropped)."""
    moe, d, g = s.moe, s.d_model, s.n_up
    assert moe is not None
    up = "moe.experts.up_gate" if g == 2 else "moe.experts.up"
    if moe.capacity_factor is None:
        routed = lin.N * moe.experts_per_token
        return [lin(up, d, g * moe.d_moe, tokens=routed), lin("moe.experts.down", moe.d_moe, d, tokens=routed)]
    E, e = moe.n_experts, moe.experts_per_token
    C = f.expert_capacity(C_cap=moe.capacity_factor, N_tok=lin.N, e=e, E=E)
    rows = f.expert_rows(N_tok=lin.N, e=e, E=E, C_exp=C)
    drop = f.dropped_min(N_tok=lin.N, e=e, E=E, C_exp=C)
    note = (f"C_cap = {moe.capacity_factor:g}: C_exp = ⌈C_cap·N·e/E⌉ = {C} slots per expert, N_rows = E·C_exp = "
            f"{rows} rows (padding included) for N·e = {lin.N * e} assignments; n_drop,min = {drop} of them dropped "
            "even under perfectly balanced routing (more when routing is skewed)")
    return [Op(name, (E, C, d_out), q(name, f.linear_flops, N_tok=rows, d_in=d_in, d_out=d_out, note=note))
            for name, d_in, d_out in ((up, d, g * moe.d_moe), ("moe.experts.down", moe.d_moe, d))]


def forward_flops(s: ModelSpec, *, B: int, T: int, L: int = 0, attention: str = "dense", decode: bool = False,
                  key: str, mla_decode: str = "absorbed", symbol: str | None = None, T_enc: int = 0) -> Quantity:
    """Σ over layer kinds of n·(Σ ops) + the LM head over every position (B·T tokens).

    An encoder–decoder model runs its encoder over T_enc tokens first (not when decoding: its output is cached),
    then the decoder over T. The total's symbol names the phase: F_decode for a decode step, else `symbol`
    (F_prefill for a prompt pass, F_fwd, the default, for the forward of a training step)."""
    parts = []
    if s.encoder_layers and not decode:
        for layer, n in s.encoder_kinds:
            ops = layer_ops(s, layer, B=B, T=T_enc, attention=attention, causal=False)
            parts.append(total(f"encoder.layers[{layer.kind}]×{n}",
                               [_times(op.flops, n) for op in ops], unit="FLOPs", symbol="F_layers"))
    for layer, n in s.layer_kinds:
        ops = layer_ops(s, layer, B=B, T=T, L=L, attention=attention, decode=decode, mla_decode=mla_decode,
                        causal=s.causal, T_enc=T_enc)
        parts.append(total(f"layers[{layer.kind}]×{n}",
                           [_times(op.flops, n) for op in ops], unit="FLOPs", symbol="F_layers"))
    if s.head_transform:
        parts.append(q("lm_head.transform", f.linear_flops, N_tok=B * T, d_in=s.d_model, d_out=s.d_model))
    parts.append(q("lm_head", f.linear_flops, N_tok=B * T, d_in=s.d_model, d_out=s.vocab_size))
    return total(key, parts, unit="FLOPs", symbol="F_decode" if decode else symbol or "F_fwd")


def _times(x: Quantity, n: int) -> Quantity:
    return Quantity(key=x.key, value=x.value * n, unit=x.unit, symbol=x.symbol, formula_id=x.formula_id,
                    inputs=x.inputs, count=n, note=x.note)


def recompute_flops(s: ModelSpec, *, B: int, T: int, recompute: str, attention: str = "dense",
                    T_enc: int = 0) -> Quantity:
    """Extra forward work in backward: none; selective = attention core (QK^T, PV); full = every layer."""
    parts = []
    if recompute != "none":
        stacks = [(layer, n, T_enc, False, 0) for layer, n in s.encoder_kinds]  # (…, tokens, causal, cross keys)
        stacks += [(layer, n, T, s.causal, T_enc) for layer, n in s.layer_kinds]
        for layer, n, T_layer, causal, cross in stacks:
            ops = layer_ops(s, layer, B=B, T=T_layer, attention=attention, causal=causal, T_enc=cross)
            if recompute == "selective":
                ops = [op for op in ops if op.name.startswith(("attention.scores", "attention.values",
                                                               "cross_attention.scores", "cross_attention.values"))]
            parts += [_times(op.flops, n) for op in ops]
    return total("flops.recompute", parts, unit="FLOPs", symbol="F_recompute",
                 note=f"recompute={recompute} (Korthikanti et al. 2022 §5: selective recomputes the attention core)")


def train_step_flops(s: ModelSpec, *, B: int, T: int, recompute: str = "none", attention: str = "dense",
                     T_enc: int = 0) -> Quantity:
    fwd = forward_flops(s, B=B, T=T, attention=attention, key="flops.forward", T_enc=T_enc)
    rec = recompute_flops(s, B=B, T=T, recompute=recompute, attention=attention, T_enc=T_enc)
    return q("flops.train_step", f.train_step_flops, F_fwd=int(fwd.value), k_bwd=2, F_recompute=int(rec.value))
