"""Serving plan: does it fit, how much KV room, how fast (TTFT, TPOT, tokens/s) — with a low–high band.

A replica spans T_p GPUs (attention heads, MLP width and the vocabulary split T_p ways, as vLLM and SGLang
run tensor parallelism); D_p replicas serve side by side. Routed experts are split in width over the T_p
GPUs of a replica, or, with expert parallelism, spread over E_p ranks of all T_p·D_p GPUs (each expert then
split T_p·D_p/E_p ways). Memory per GPU = weights (exact shards, sharding.py) + paged KV cache + the
chunked-prefill workspace + the reserve; the KV pool takes what is left, which gives the largest batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from transformer_math.analysis import efficiency as k
from transformer_math.analysis.costs import (
    OpCost,
    Sharding,
    check_act_dtype,
    compute_dtype,
    head_cost,
    layer_costs,
    total_time,
)
from transformer_math.analysis.efficiency import Efficiency, band_for, efficiency_for, engine
from transformer_math.analysis.flops import cached_tokens
from transformer_math.analysis.quantity import Book, Quantity, q, total
from transformer_math.analysis.sharding import Mesh, local_params
from transformer_math.config.hardware import HardwareSpec
from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError
from transformer_math.formulas import comm
from transformer_math.formulas import memory as fm
from transformer_math.formulas import parallel as fp
from transformer_math.formulas import plan as fl
from transformer_math.units import DType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


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
class ServeLayout:
    """T_p GPUs per replica, D_p replicas, routed experts over E_p ranks (E_p divides T_p·D_p)."""

    tp: int = 1
    dp: int = 1
    ep: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.dp

    @property
    def expert_tp(self) -> int:
        """Ways each routed expert is split in width: T_p, or T_p·D_p/E_p under expert parallelism."""
        return self.tp if self.ep == 1 else self.gpus // self.ep

    def mesh(self, shard_lm_head: bool = True) -> Mesh:
        return Mesh(tp=self.tp, ep=self.ep, expert_tp=self.expert_tp, vocab_tp=self.tp if shard_lm_head else 1)


@dataclass(frozen=True, kw_only=True, slots=True)
class ServeWorkload:
    batch: int = 1  # concurrent sequences per replica
    prompt: int = 1024
    gen: int = 256
    weights: Mapping[str, DType] = field(default_factory=dict)  # per group, "*" the rest
    kv: DType
    block: int = 16
    speculative: Speculative | None = None
    shard_lm_head: bool = True  # vocab-parallel LM head (vLLM, TensorRT-LLM); gpt-fast keeps it whole
    gpu_memory_utilization: float = k.GPU_MEMORY_UTILIZATION  # the engine's share of HBM (vLLM's setting)
    engine: str = "vllm"  # its per-step CPU cost and kernel fusion (presets/efficiency/engines/)
    # activation dtype of the linear layers (costs.compute_dtype): nvfp4/mxfp4 with FP4 weights = W4A4
    act: str = "auto"

    @property
    def decode_context(self) -> int:
        """The mean context of a decode step: prompt + gen/2."""
        return self.prompt + self.gen // 2


@dataclass(frozen=True, kw_only=True, slots=True)
class ServePlan:
    model: str
    gpu: str
    layout: ServeLayout
    workload: ServeWorkload
    quantities: dict[str, Quantity]
    band: dict[str, tuple[float, ...]]  # slow end, mid, fast end (validation quantiles): ttft_s, tpot_s, tokens_per_s
    decode_ops: list[OpCost]
    prefill_ops: list[OpCost]
    batch_curve: list[tuple[int, float, float, int]]  # (B, TPOT, tokens/s, bytes/GPU)
    compute_bound_batch: int
    notes: tuple[str, ...]

    def __getitem__(self, key: str) -> Any:
        return self.quantities[key].value

    @property
    def fits(self) -> bool:
        return bool(self["memory.over"] <= 0)


def validate(s: ModelSpec, L: ServeLayout, w: ServeWorkload) -> None:
    for name, v, high in (("tp", L.tp, 4096), ("dp", L.dp, 10**6), ("ep", L.ep, 10**6), ("batch", w.batch, 10**6),
                          ("prompt", w.prompt, 10**8), ("gen", w.gen, 10**8), ("block", w.block, 4096)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= high:
            raise TmathError(name, v, f"an integer from 1 to {high}")
    if s.n_heads % L.tp:
        raise TmathError("tp", L.tp, f"a divisor of h_q = {s.n_heads}")
    engine(w.engine)  # an unknown engine is an error naming the ones there are
    if L.ep > 1 and s.moe is None:
        raise TmathError("ep", L.ep, "1: expert parallelism needs an MoE model")
    if s.moe and s.moe.n_experts % L.ep:
        raise TmathError("ep", L.ep, f"a divisor of E = {s.moe.n_experts} experts")
    if L.gpus % L.ep:
        raise TmathError("ep", L.ep, f"a divisor of the T_p·D_p = {L.tp}·{L.dp} = {L.gpus} GPUs the experts spread "
                                     f"over (add --dp for attention data parallelism, or raise --tp)")
    if w.speculative and not 1 <= w.speculative.k <= 64:
        raise TmathError("draft_k", w.speculative.k, "an integer from 1 to 64")
    if not 0.05 <= w.gpu_memory_utilization <= 1:
        raise TmathError("gpu_memory_utilization", w.gpu_memory_utilization, "a fraction from 0.05 to 1")
    if w.speculative and not 0 <= w.speculative.acceptance < 1:
        raise TmathError("acceptance", w.speculative.acceptance, "a probability in [0, 1)")


def kv_tokens(s: ModelSpec, L: int, *, block: int = 16) -> int:
    """Cached elements of one sequence at context L with paged blocks: full layers hold L tokens, window layers
    min(L + 1, S) (with the token being decoded) in pools of their own, each rounded up to whole blocks.
    A linear-attention layer's state is not paged by tokens: one fixed slot of h_kv·(d_h·d_h + d_h) elements
    per sequence (as vLLM keeps recurrent states), whatever L."""
    width = (s.mla.kv_rank + s.mla.d_rope) if s.mla else 2 * s.kv_dim
    total_ = 0
    for layer, n in s.layer_kinds:
        if layer.attention == "linear":
            total_ += n * s.n_kv_heads * (s.head_dim * s.head_dim + s.head_dim)
            continue
        tokens = cached_tokens(layer, L, s.n_sink_tokens) + (0 if layer.attention == "full" else 1)
        total_ += n * math.ceil(tokens / block) * block * width
    return total_


def kv_bytes_per_sequence(s: ModelSpec, L: int, kv: DType, *, block: int = 16) -> int:
    return fl.kv_per_sequence(n_blk=kv_tokens(s, L, block=block), b_kv=float(kv.bytes_per_element))


def _kv_sharding(s: ModelSpec, tp: int) -> tuple[int, int]:
    """(r_kv, k_kv): KV heads split over T_p, replicated when h_kv < T_p; an MLA latent on every rank."""
    if s.mla is not None:
        return 1, 1
    return max(1, tp // s.n_kv_heads), tp


def _step(s: ModelSpec, hw: HardwareSpec, eff: Efficiency, L: ServeLayout, w: ServeWorkload, *, B: int, T: int,
          ctx: int, decode: bool, spec: ModelSpec | None = None) -> list[OpCost]:
    """Every op of one prefill (T tokens per sequence) or decode step on one GPU, with its collectives."""
    model = spec or s
    ep = L.ep if model.moe else 1
    shard = Sharding(tp=L.tp, expert_shards=L.tp if ep == 1 else L.gpus,
                     expert_group_tokens=B * T * (L.dp if ep > 1 else 1))
    ops: list[OpCost] = []
    for layer, n in model.layer_kinds:
        ops += layer_costs(model, layer, n, hw, eff, B=B, T=T, L=ctx, decode=decode, shard=shard, wd=w.weights, kv=w.kv,
                           act=w.act)
    ops.append(head_cost(model, hw, eff, N=B * T, tp=L.tp, wd=w.weights, shard_lm_head=w.shard_lm_head, act=w.act))
    N = B * T
    inside = L.tp * max(ep, 1) <= hw.gpus_per_node
    link, alpha = ((hw.link_bandwidth_bytes_per_s * eff.link, eff.alpha_link_s) if inside else
                   (hw.nic_bandwidth_bytes_per_s * eff.nic, eff.alpha_nic_s))
    if L.tp > 1:  # two all-reduces of the residual stream per layer (attention and MLP outputs)
        size = N * model.d_model * 2
        ring = comm.all_reduce_ring(n=L.tp, α=alpha, S=size, BW=link)
        tree = comm.all_reduce_tree(n=L.tp, α=alpha, S=size, BW=link)
        ops.append(OpCost("comm", "tp.all_reduce ×2/layer", "comm", 2 * model.n_layers, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                          min(ring, tree), {"formula": f"t_1 = min(ring {ring:.3g} s, tree {tree:.3g} s): all-reduce "
                                                       f"of S = {size:,} bytes over T_p = {L.tp} (comm.all_reduce.*)"}))
    if ep > 1 and model.moe:  # dispatch and combine of the e routed copies per MoE layer
        size = N * model.moe.experts_per_token * model.d_model * 2
        t = comm.all_to_all(n=ep, α=alpha, S=size, BW=link)
        ops.append(OpCost("comm", "ep.all_to_all ×2/moe layer", "comm", 2 * model.n_moe_layers, 0.0, 0.0, 0.0, 0.0, 0.0,
                          0.0, t, {"formula": f"t_1: all-to-all of S = {size:,} bytes over E_p = {ep} "
                                              "(comm.all_to_all)"}))
    if eff.step_overhead_s or eff.step_overhead_per_seq_s:
        x: dict[str, Any] = dict(t_0=eff.step_overhead_s, t_seq=eff.step_overhead_per_seq_s, B=B,
                                 t_gpu=total_time(ops), a=int(eff.async_cpu))
        ops.append(OpCost("engine", "step_overhead", "overhead", 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                          fl.engine_overhead(**x), x))
    return ops


def _memory(book: Book, s: ModelSpec, hw: HardwareSpec, L: ServeLayout, w: ServeWorkload, *, B: int, ctx: int) -> Any:
    """Per-GPU bytes with B sequences decoded to `ctx` tokens, every part a registered formula."""
    mesh = L.mesh(w.shard_lm_head)
    keys = []
    for g, P in local_params(s, mesh).items():
        keys.append(f"weights.{g}")
        book.f(keys[-1], fm.weight_bytes, symbol="M_param", note=w.weights.get(g, w.weights["*"]).name, P=P,
               b_w=w.weights.get(g, w.weights["*"]).bytes_per_element)
    book.sum("memory.weights", keys, unit="bytes", symbol="M_w")
    r_kv, k_kv = _kv_sharding(s, L.tp)
    book.f("memory.kv_per_sequence", fl.kv_per_sequence, n_blk=kv_tokens(s, ctx, block=w.block),
           b_kv=w.kv.bytes_per_element)
    book.f("memory.kv_cache", fl.kv_per_gpu, B=B, M_KV_seq=book.ref("memory.kv_per_sequence"), r_kv=r_kv, k_kv=k_kv)
    d_ff = max(layer.d_ff for layer in s.layers)
    book.f("memory.workspace", fl.workspace, N_chunk=k.PREFILL_CHUNK, d=s.d_model, d_ff=d_ff, T_p=L.tp, b_a=2,
           N_seq=k.SAMPLED_SEQUENCES, V=s.vocab_size)
    book.f("memory.reserve", fp.reserve_bytes, M_fixed=k.RESERVE_FIXED,
           f_reserve=round(1 - w.gpu_memory_utilization, 6), M_HBM=hw.memory_bytes)
    parts = ["memory.weights", "memory.kv_cache", "memory.workspace", "memory.reserve"]
    if w.speculative:
        d = w.speculative.draft
        book.f("memory.draft_weights", fm.weight_bytes, symbol="M_param",
               P=sum(local_params(d, Mesh(tp=L.tp, vocab_tp=L.tp if w.shard_lm_head else 1)).values()),
               b_w=w.weights["*"].bytes_per_element)
        book.f("memory.draft_kv_per_sequence", fl.kv_per_sequence, n_blk=kv_tokens(d, ctx, block=w.block),
               b_kv=w.kv.bytes_per_element)
        r, kk = _kv_sharding(d, L.tp)
        book.f("memory.draft_kv", fl.kv_per_gpu, B=B, M_KV_seq=book.ref("memory.draft_kv_per_sequence"), r_kv=r,
               k_kv=kk)
        parts += ["memory.draft_weights", "memory.draft_kv"]
    return book.sum("memory.per_gpu", parts, unit="bytes", symbol="M_GPU")


def plan_serving(s: ModelSpec, hw: HardwareSpec, layout: ServeLayout, w: ServeWorkload, *,
                 eff: Efficiency | None = None) -> ServePlan:
    validate(s, layout, w)
    check_act_dtype(hw, w.act)
    eff = eff or efficiency_for(hw, w.engine)
    L, B = layout, w.batch
    ctx = w.prompt + w.gen
    book = Book(explain=True)
    M = _memory(book, s, hw, L, w, B=B, ctx=ctx)
    book.f("memory.over", fl.over_bytes, M_GPU=M, M_HBM=hw.memory_bytes)
    per_seq = (book.values["memory.kv_cache"] + book.values.get("memory.draft_kv", 0)) / B
    book.f("serve.max_batch", fl.max_batch, M_HBM=hw.memory_bytes,
           M_w=book.ref("memory.weights") + book.values.get("memory.draft_weights", 0),
           M_act=book.ref("memory.workspace"), M_reserve=book.ref("memory.reserve"), M_KV_GPU=per_seq)
    book.put(_max_context(s, hw, L, w))
    book.f("serve.phi_cache", fl.phi_cache, M_KV=book.ref("memory.kv_cache"), M_HBM=hw.memory_bytes)
    prefill = _step(s, hw, eff, L, w, B=B, T=w.prompt, ctx=0, decode=False)
    decode = _step(s, hw, eff, L, w, B=B, T=1, ctx=w.decode_context, decode=True)
    book.put(total("serve.ttft", [c.quantity() for c in prefill], unit="s", symbol="TTFT",
                   note=f"prefill of all B = {B} prompts of {w.prompt} tokens, causal attention as flash kernels "
                        "run it"))
    book.put(total("serve.decode_step", [c.quantity() for c in decode], unit="s", symbol="t_step",
                   note=f"one decode step of B = {B} sequences at the mean context L = {w.decode_context}"))
    _tpot(book, s, hw, eff, L, w, B=B)
    book.f("serve.tokens_per_s", fl.serve_tokens_per_s, D_p=L.dp, B=B, TPOT=book.ref("serve.tpot"))
    prefill_band, decode_band = band_for(hw, "prefill"), band_for(hw, "decode")
    ttft, tpot = book.values["serve.ttft"], book.values["serve.tpot"]
    bands = {"ttft_s": (ttft / prefill_band.low, ttft, ttft / prefill_band.high),
             "tpot_s": (tpot / decode_band.low, tpot, tpot / decode_band.high),
             "tokens_per_s": tuple(L.dp * B / t for t in (tpot / decode_band.low, tpot, tpot / decode_band.high))}
    curve, compute_bound = _curve(s, hw, eff, L, w, max_batch=book.ref("serve.max_batch"))
    notes = [f"B = {B} concurrent sequences per replica; {L.dp} replica(s) of {L.tp} GPU(s)",
             f"reserve = 1 GiB + {1 - w.gpu_memory_utilization:.0%} of HBM (gpu_memory_utilization "
             f"{w.gpu_memory_utilization}); paged KV in blocks of {w.block} tokens; "
             f"prefill in chunks of {k.PREFILL_CHUNK} tokens",
             f"TPOT at the mean decode context L = prompt + gen/2 = {w.decode_context}",
             "weights: a single dtype quantizes the linear layers of the blocks; embeddings, LM head, norms and "
             "routers stay 16-bit (AWQ, GPTQ, bitsandbytes, compressed-tensors defaults)"]
    notes.append(_compute_note(s, hw, w))
    r_kv, _ = _kv_sharding(s, L.tp)
    if r_kv > 1:
        notes.append(f"h_kv = {s.n_kv_heads} < T_p = {L.tp}: each KV head is replicated on {r_kv} ranks")
    if L.ep > 1:
        notes.append(f"experts over E_p = {L.ep} of the {L.gpus} GPUs, each split {L.expert_tp} ways")
    return ServePlan(model=s.name, gpu=hw.id, layout=L, workload=w, quantities=book.quantities,
                     band=bands, decode_ops=decode, prefill_ops=prefill,
                     batch_curve=curve, compute_bound_batch=compute_bound, notes=tuple(notes))


def _compute_note(s: ModelSpec, hw: HardwareSpec, w: ServeWorkload) -> str:
    """Which peak the linear layers run at, per weight format: W4A4 at fp4, W4A16 (weight-only) at bf16."""
    by: dict[str, list[str]] = {}
    groups = ["attention", "lm_head"] + (["experts"] + ["shared_experts"] * bool(s.moe.n_shared) if s.moe else [])
    groups += ["mlp"] * any(layer.mlp == "dense" for layer in s.layers)
    for g in groups:
        dt = w.weights.get(g, w.weights["*"])
        runs = compute_dtype(dt, w.act)
        by.setdefault(f"{runs} (F_peak = {hw.peak(runs):.3g} FLOP/s)", []).append(f"{g} {dt.name}")
    acts = "activations 16-bit (fp8 with fp8 weights)" if w.act == "auto" else f"activations {w.act}"
    return f"linear layers, {acts}: " + "; ".join(f"{', '.join(gs)} → {peak}" for peak, gs in by.items())


def _tpot(book: Book, s: ModelSpec, hw: HardwareSpec, eff: Efficiency, L: ServeLayout, w: ServeWorkload, *, B: int,
          explain: bool = True) -> None:
    sp = w.speculative
    if sp is None:
        book.f("serve.tpot", fl.tpot, k_draft=0, t_draft=0.0, t_step=book.ref("serve.decode_step"), E_tokens=1.0)
        return
    draft = _step(s, hw, eff, L, w, B=B, T=1, ctx=w.decode_context, decode=True, spec=sp.draft)
    verify = _step(s, hw, eff, L, w, B=B, T=sp.k + 1, ctx=w.decode_context, decode=False)
    if explain:
        book.put(total("serve.draft_step", [c.quantity() for c in draft], unit="s", symbol="t_draft"))
        book.put(total("serve.verify_step", [c.quantity() for c in verify], unit="s", symbol="t_verify",
                       note=f"the target over k + 1 = {sp.k + 1} tokens per sequence"))
    else:
        book.values["serve.draft_step"], book.values["serve.verify_step"] = total_time(draft), total_time(verify)
    book.f("serve.tpot", fl.tpot, k_draft=sp.k, t_draft=book.ref("serve.draft_step"),
           t_step=book.ref("serve.verify_step"), E_tokens=sp.tokens_per_step)


def _max_context(s: ModelSpec, hw: HardwareSpec, L: ServeLayout, w: ServeWorkload) -> Quantity:
    """The largest L ≤ L_max whose KV cache (B sequences) fits beside weights, workspace and reserve."""

    def fits(n: int) -> bool:
        book = Book(explain=False)
        return bool(_memory(book, s, hw, L, w, B=w.batch, ctx=n) <= hw.memory_bytes)

    return q("serve.max_context", fl.max_context, L_max=s.max_context, L_fit=_largest(fits, s.max_context))


def _largest(fits: Any, cap: int) -> int:
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


def _curve(s: ModelSpec, hw: HardwareSpec, eff: Efficiency, L: ServeLayout, w: ServeWorkload, *,
           max_batch: int) -> tuple[list[tuple[int, float, float, int]], int]:
    """Continuous batching: TPOT, tokens/s and memory per GPU at B = 1, 2, 4, …, and the B where the MLP
    matmuls of a decode step turn compute bound."""
    curve = []
    B, compute_bound = 1, 0
    while B <= 2**16 and (B <= max(1, max_batch) or not compute_bound):
        decode = _step(s, hw, eff, L, w, B=B, T=1, ctx=w.decode_context, decode=True)
        t = total_time(decode)
        if B <= max(1, max_batch):
            book = Book(explain=False)
            curve.append((B, t, L.dp * B / t, int(_memory(book, s, hw, L, w, B=B, ctx=w.prompt + w.gen))))
        mlp = [c for c in decode if c.name.startswith(("mlp.", "moe.experts", "moe.shared"))]
        if not compute_bound and mlp and all(c.compute_s >= c.memory_s for c in mlp):
            compute_bound = B
        B *= 2
    return curve, compute_bound
