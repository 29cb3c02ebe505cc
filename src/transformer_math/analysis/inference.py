"""Roofline per operation and the latency of prefill (TTFT) and decode (TPOT), with tensor/expert parallelism.

Each op of the per-op table gets the bytes it moves (weights, activations, KV reads and writes), its
intensity, its bound and its time max(F/(η_compute·F_peak), bytes/(η_bw·BW_HBM)) + t_launch. Norms,
residual adds, RoPE and activation functions are one memory-bound 'elementwise' row per layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from transformer_math.analysis.efficiency import Efficiency
from transformer_math.analysis.flops import cached_tokens, layer_ops
from transformer_math.config.hardware import HardwareSpec
from transformer_math.config.spec import LayerSpec, ModelSpec
from transformer_math.formulas import comm
from transformer_math.formulas import roofline as rf
from transformer_math.units import DType

ELEMENTWISE_KERNELS = 3  # norm(+residual) ×2 and RoPE/activation, as compilers fuse them
WEIGHT_ONLY = ("int8", "int4", "nf4", "mxfp4")  # formats dequantized to bf16 before the tensor cores


@dataclass(frozen=True, slots=True)
class OpCost:
    """One op on one GPU (after tensor-parallel sharding), repeated `count` times (layers)."""

    layer: str
    name: str
    count: int
    flops: float
    bytes: float
    weight_bytes: float
    kv_bytes: float
    compute_s: float
    memory_s: float
    time_s: float

    @property
    def intensity(self) -> float:
        return rf.intensity(F=self.flops, M_moved=self.bytes)

    @property
    def bound(self) -> str:
        if self.time_s <= 0:
            return "-"
        return "compute" if self.compute_s >= self.memory_s else "memory"


def _group(name: str) -> str:
    if name.startswith("moe.experts"):
        return "experts"
    if name.startswith("moe.shared"):
        return "shared_experts"
    if name.startswith("moe.router"):
        return "router"
    return name.split(".", 1)[0]


def experts_touched(E: int, e: int, tokens: int) -> float:
    """Expected distinct experts a batch of tokens routes to (uniform routing): E·(1 - (1 - e/E)^tokens)."""
    return E * (1 - (1 - e / E) ** tokens)


def layer_costs(s: ModelSpec, layer: LayerSpec, n: int, hw: HardwareSpec, eff: Efficiency, *, B: int, T: int, L: int,
                decode: bool, tp: int, ep: int, wd: Mapping[str, DType], kv: DType, b_a: int = 2) -> list[OpCost]:
    """Costs of one layer kind's ops on one GPU: prefill of T tokens, or one decode step over L cached tokens."""
    out = []
    N = B * T
    keys = cached_tokens(layer, L) + 1 if decode else T
    for op in layer_ops(s, layer, B=B, T=T, L=L, decode=decode):
        x = op.flops.inputs
        F = op.flops.value / tp
        kv_bytes = dequant = 0.0
        if op.name.startswith(("attention.scores", "attention.values")):
            if decode:
                width = (s.mla.kv_rank + s.mla.d_rope) if s.mla else s.kv_dim
                kv_bytes = float(B * keys * width * kv.bytes_per_element) / (1 if s.mla else tp)
                moved = kv_bytes + 2 * B * s.n_heads * s.head_dim * b_a / tp
            else:  # fused attention reads Q, K, V once and writes O
                moved = N * (s.n_heads + 2 * s.n_kv_heads) * s.head_dim * b_a / tp
            compute = F / (eff.attention * hw.peak("bf16"))
            weights = 0.0
        else:
            d_in, d_out, tokens = x["d_in"], x["d_out"], x["N_tok"]
            dt = wd.get(_group(op.name), wd["*"])
            per = d_in * d_out * dt.bytes_per_element
            if op.name.startswith("moe.experts") and s.moe:
                touched = experts_touched(s.moe.n_experts, s.moe.experts_per_token, N)
                weights = float(per) * touched / ep
                F = op.flops.value / ep
            else:
                weights = float(per) / tp
            moved = weights + tokens * (d_in + d_out) * b_a / tp
            peak = hw.peak("fp8" if dt.name.startswith("fp8") else "bf16")
            compute = F / (eff.gemm_efficiency(max(d_out / tp, 1), d_in) * peak)
            if dt.name.split("-")[0] in WEIGHT_ONLY:  # dequantizing in the load path adds CUDA-core work
                dequant = weights / float(dt.bytes_per_element) * eff.dequant_ops / hw.peak("fp32")
        memory = moved / (eff.bw * hw.memory_bandwidth_bytes_per_s)
        out.append(OpCost(layer.kind, op.name, n, F, moved, weights, kv_bytes, compute, memory,
                          max(compute, memory) + dequant + eff.launch_s))
    d_ff = layer.d_ff if layer.mlp == "dense" else (s.moe.experts_per_token * s.moe.d_moe + s.moe.shared_width)  # type: ignore[union-attr]
    elem = N * b_a * (12 * s.d_model + 3 * d_ff / tp)
    out.append(OpCost(layer.kind, "elementwise", n, 0.0, elem, 0.0, 0.0, 0.0,
                      elem / (eff.bw * hw.memory_bandwidth_bytes_per_s),
                      elem / (eff.bw * hw.memory_bandwidth_bytes_per_s) + ELEMENTWISE_KERNELS * eff.launch_s))
    if decode:  # the new token's K and V written into the cache
        width = (s.mla.kv_rank + s.mla.d_rope) if s.mla else 2 * s.kv_dim
        w = float(B * width * kv.bytes_per_element) / (1 if s.mla else tp)
        out.append(OpCost(layer.kind, "kv_write", n, 0.0, w, 0.0, w, 0.0, w / (eff.bw * hw.memory_bandwidth_bytes_per_s),
                          w / (eff.bw * hw.memory_bandwidth_bytes_per_s)))
    return out


def step_costs(s: ModelSpec, hw: HardwareSpec, eff: Efficiency, *, B: int, T: int, L: int, decode: bool, tp: int,
               ep: int, wd: Mapping[str, DType], kv: DType, shard_lm_head: bool = True) -> list[OpCost]:
    """All ops of one prefill (T tokens) or decode step, plus LM head and tensor/expert-parallel communication.

    shard_lm_head: vocab-parallel LM head (vLLM, TensorRT-LLM, Megatron); gpt-fast keeps it whole on every rank.
    """
    costs: list[OpCost] = []
    for layer, n in s.layer_kinds:
        costs += layer_costs(s, layer, n, hw, eff, B=B, T=T, L=L, decode=decode, tp=tp, ep=ep, wd=wd, kv=kv)
    N = B * T
    head_dt = wd.get("lm_head", wd["*"])
    t_head = tp if shard_lm_head else 1
    per = s.d_model * s.vocab_size * head_dt.bytes_per_element / t_head
    F = 2 * N * s.d_model * s.vocab_size / t_head
    moved = float(per) + N * (s.d_model + s.vocab_size / t_head) * 2
    compute = F / (eff.gemm_efficiency(s.vocab_size / t_head, s.d_model) * hw.peak("bf16"))
    if head_dt.name.split("-")[0] in WEIGHT_ONLY:
        compute += float(per / head_dt.bytes_per_element) * eff.dequant_ops / hw.peak("fp32")
    memory = moved / (eff.bw * hw.memory_bandwidth_bytes_per_s)
    costs.append(OpCost("head", "lm_head", 1, F, moved, float(per), 0.0, compute, memory,
                        max(compute, memory) + eff.launch_s))
    link, alpha = (hw.link_bandwidth_bytes_per_s * eff.link, eff.alpha_link_s) if tp * ep <= hw.gpus_per_node else (
        hw.nic_bandwidth_bytes_per_s * eff.nic, eff.alpha_nic_s)
    if tp > 1:  # two all-reduces of the residual stream per layer (attention out, MLP out)
        size = N * s.d_model * 2
        t = min(comm.all_reduce_ring(n=tp, α=alpha, S=size, BW=link), comm.all_reduce_tree(n=tp, α=alpha, S=size, BW=link))
        costs.append(OpCost("comm", "tp.all_reduce ×2/layer", 2 * s.n_layers, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, t))
    if ep > 1 and s.moe:  # dispatch and combine of the e routed copies per MoE layer
        size = N * s.moe.experts_per_token * s.d_model * 2
        t = comm.all_to_all(n=ep, α=alpha, S=size, BW=link)
        costs.append(OpCost("comm", "ep.all_to_all ×2/moe layer", 2 * s.n_moe_layers, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, t))
    return costs


def total_time(costs: list[OpCost]) -> float:
    return sum(c.count * c.time_s for c in costs)
