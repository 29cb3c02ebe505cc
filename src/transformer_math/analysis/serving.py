"""Serving plan: does it fit, how much KV room, how fast (TTFT, TPOT, tokens/s) — with a low–high band.

Memory per GPU = weights/T_p (experts/E_p) + paged KV cache + activation workspace + a framework reserve
(the CUDA context, allocator and graphs: 1 GiB + 10 % of HBM, vLLM's gpu_memory_utilization = 0.9).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from transformer_math.analysis.efficiency import BAND, MID, Efficiency
from transformer_math.analysis.flops import cached_tokens
from transformer_math.analysis.inference import OpCost, step_costs, total_time
from transformer_math.analysis.params import by_group, params_breakdown
from transformer_math.config.hardware import HardwareSpec
from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError
from transformer_math.units import DType

RESERVE_FRACTION = 0.10
RESERVE_FIXED = 2**30
PREFILL_CHUNK = 8192  # tokens per prefill step (chunked prefill)


@dataclass(frozen=True, kw_only=True, slots=True)
class Speculative:
    """Speculative decoding (Leviathan et al. 2023): a draft proposes k tokens, the target verifies k + 1."""

    draft: ModelSpec
    k: int = 4
    acceptance: float = 0.7  # α: probability that each drafted token is accepted

    @property
    def tokens_per_step(self) -> float:
        """E[tokens] = (1 − α^(k+1)) / (1 − α)."""
        a = self.acceptance
        return self.k + 1 if a >= 1 else (1 - a ** (self.k + 1)) / (1 - a)


@dataclass(frozen=True, kw_only=True, slots=True)
class ServePlan:
    fits: bool
    memory_per_gpu_bytes: int
    memory: dict[str, int]
    phi_cache: float
    max_batch: int
    max_context: int
    ttft_s: tuple[float, float, float]  # low, mid, high
    tpot_s: tuple[float, float, float]
    tokens_per_s: tuple[float, float, float]
    decode_ops: list[OpCost] = field(default_factory=list)
    prefill_ops: list[OpCost] = field(default_factory=list)
    batch_curve: list[tuple[int, float, float, int]] = field(default_factory=list)  # (B, TPOT, tokens/s, bytes/GPU)
    compute_bound_batch: int = 0
    notes: tuple[str, ...] = ()


def kv_bytes_per_sequence(s: ModelSpec, L: int, kv: DType, *, block: int = 16) -> int:
    """Paged KV of one sequence at context L: each layer's pool rounds its tokens up to whole blocks.

    Full layers hold L tokens, window layers min(L, S − 1) (+1 for the token being decoded, ≤ S): separate
    pools, as vLLM keeps for sliding-window layers.
    """
    width = (s.mla.kv_rank + s.mla.d_rope) if s.mla else 2 * s.kv_dim
    total = 0
    for layer, n in s.layer_kinds:
        tokens = cached_tokens(layer, L) + (0 if layer.attention == "full" else 1)
        tokens = math.ceil(tokens / block) * block if block > 1 else tokens
        total += n * tokens * width
    return math.ceil(total * kv.bytes_per_element)


def plan_serving(s: ModelSpec, hw: HardwareSpec, *, batch: int, prompt: int, gen: int, tp: int = 1, ep: int = 1,
                 wd: Mapping[str, DType], kv: DType, block: int = 16, speculative: Speculative | None = None,
                 eff: Efficiency = MID, band: tuple[Efficiency, ...] = BAND,
                 shard_lm_head: bool = True) -> ServePlan:
    if s.moe is None and ep > 1:
        raise TmathError("ep", ep, "expert parallelism needs an MoE model (ep = 1)")
    if tp > s.n_heads or s.n_heads % tp:
        raise TmathError("tp", tp, f"a divisor of h_q = {s.n_heads}")
    params = params_breakdown(s)
    groups = by_group(params)
    w_bytes = 0.0
    for g, P in groups.items():
        dt = wd.get(g, wd["*"])
        shard = ep if g == "experts" else (1 if g == "norms" or (g in ("embedding", "lm_head") and not shard_lm_head)
                                           else tp)
        w_bytes += float(P * dt.bytes_per_element) / shard
    kv_shard = tp if s.mla is None else 1
    kv_replication = max(1, tp // s.n_kv_heads) if s.mla is None else 1  # fewer KV heads than ranks: copies
    d_ff = max(layer.d_ff for layer in s.layers)
    draft = None
    if speculative:
        d_groups = by_group(params_breakdown(speculative.draft))
        draft = int(sum(float(P * wd.get(g, wd["*"]).bytes_per_element) for g, P in d_groups.items()))

    def memory(B: int, P: int, L: int) -> dict[str, int]:
        """Per-GPU bytes with B sequences of prompt P, decoded to L tokens; prefill runs in chunks of
        PREFILL_CHUNK tokens (vLLM's max_num_batched_tokens), so its workspace does not grow with B·P."""
        chunk = min(B * P, PREFILL_CHUNK)
        act = chunk * (s.d_model * 4 + 2 * d_ff / tp) * 2 + B * s.vocab_size * 4 / (tp if shard_lm_head else 1)
        mem = {"weights": int(w_bytes),
               "kv_cache": int(kv_bytes_per_sequence(s, L, kv, block=block) * kv_replication / kv_shard * B),
               "activations": int(act), "reserve": int(RESERVE_FIXED + RESERVE_FRACTION * hw.memory_bytes)}
        if speculative and draft is not None:
            mem["draft_weights"] = draft
            mem["draft_kv"] = int(kv_bytes_per_sequence(speculative.draft, L, kv, block=block) * B)
        return mem

    def largest(fits: Callable[[int], bool], cap: int) -> int:
        if not fits(1):
            return 0
        lo, hi = 1, 2
        while hi <= cap and fits(hi):
            lo, hi = hi, hi * 2
        hi = min(hi, cap + 1)
        while lo < hi - 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return lo

    L = prompt + gen
    mem = memory(batch, prompt, L)
    total = sum(mem.values())
    max_batch = largest(lambda B: sum(memory(B, prompt, L).values()) <= hw.memory_bytes, 2**24)
    max_context = largest(lambda n: sum(memory(batch, min(prompt, n), n).values()) <= hw.memory_bytes, s.max_context)

    kw = dict(tp=tp, ep=ep, wd=wd, kv=kv, shard_lm_head=shard_lm_head)

    def times(e: Efficiency, B: int) -> tuple[float, float]:
        ttft = total_time(step_costs(s, hw, e, B=B, T=prompt, L=0, decode=False, **kw))
        if speculative:
            d = speculative.draft
            t_draft = total_time(step_costs(d, hw, e, B=B, T=1, L=prompt + gen // 2, decode=True, **kw))
            t_verify = total_time(step_costs(s, hw, e, B=B, T=speculative.k + 1, L=prompt + gen // 2, decode=False,
                                             **kw))
            tpot = (speculative.k * t_draft + t_verify) / speculative.tokens_per_step
        else:
            tpot = total_time(step_costs(s, hw, e, B=B, T=1, L=prompt + gen // 2, decode=True, **kw))
        return ttft, tpot

    ttfts, tpots = zip(*(times(e, batch) for e in band))
    # the slowest case sets the low end of throughput: pair (ttft, tpot) of the same efficiency
    tok = tuple(batch / t for t in tpots)
    curve = []
    B, compute_bound = 1, 0
    while B <= 2**16 and (B <= max(1, max_batch) or not compute_bound):
        decode = step_costs(s, hw, eff, B=B, T=1, L=prompt + gen // 2, decode=True, **kw)
        t = total_time(decode)
        if B <= max(1, max_batch):
            curve.append((B, t, B / t, sum(memory(B, prompt, L).values())))
        mlp = [c for c in decode if c.name.startswith(("mlp.", "moe.experts", "moe.shared"))]
        if not compute_bound and mlp and all(c.compute_s >= c.memory_s for c in mlp):
            compute_bound = B
        B *= 2
    notes = [f"max context is capped at the model's L_max = {s.max_context:,}",
             f"framework reserve = 1 GiB + {RESERVE_FRACTION:.0%} of HBM; paged KV in blocks of {block} tokens; "
             f"prefill in chunks of {PREFILL_CHUNK} tokens",
             f"TPOT at the mean decode context L = prompt + gen/2 = {prompt + gen // 2}"]
    if kv_replication > 1:
        notes.append(f"h_kv = {s.n_kv_heads} < T_p = {tp}: each KV head is replicated on {kv_replication} ranks")
    return ServePlan(fits=total <= hw.memory_bytes, memory_per_gpu_bytes=total, memory=mem,
                     phi_cache=mem["kv_cache"] / hw.memory_bytes, max_batch=max_batch, max_context=max_context,
                     ttft_s=(ttfts[0], ttfts[1], ttfts[2]), tpot_s=(tpots[0], tpots[1], tpots[2]),
                     tokens_per_s=(tok[0], tok[1], tok[2]),
                     decode_ops=step_costs(s, hw, eff, B=batch, T=1, L=prompt + gen // 2, decode=True, **kw),
                     prefill_ops=step_costs(s, hw, eff, B=batch, T=prompt, L=0, decode=False, **kw),
                     batch_curve=curve, compute_bound_batch=compute_bound, notes=tuple(notes))
