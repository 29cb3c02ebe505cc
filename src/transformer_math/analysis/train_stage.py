"""Per-stage components of a training step: op costs, activations and sharded parameters of one pipeline
stage, computed exactly once per distinct (micro-batch, tokens, T_p, C_p, E_p, …) key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

from transformer_math.analysis import efficiency as k
from transformer_math.analysis.costs import OpCost, Sharding, head_cost, layer_costs
from transformer_math.analysis.efficiency import Efficiency
from transformer_math.analysis.memory import activation_bytes
from transformer_math.analysis.sharding import (
    stage_kinds,
    stage_tensors,
)
from transformer_math.analysis.train_setup import BF16, NF4, Finetune, Workload, lora_linears
from transformer_math.config.hardware import HardwareSpec
from transformer_math.config.spec import LayerSpec, ModelSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass


@dataclass(frozen=True, slots=True)
class Stage:
    """One pipeline stage's forward of one micro-batch on one GPU, and what it keeps in memory."""

    layers: tuple[tuple[tuple[OpCost, ...], int], ...]  # per layer kind: the ops of one layer, and how many layers
    head: OpCost | None  # the LM head on the last stage
    aux: tuple[OpCost, ...]  # FP8 casts, dequantization, LoRA adapters: already times their passes
    n_layers: int
    n_moe: int
    n_norms: int  # replicated norm weights on the stage (their gradients are all-reduced under SP)
    act_rep: float  # activation bytes per micro-batch replicated on tensor-parallel ranks (0 with SP)
    act_split: float  # activation bytes per micro-batch split over T_p
    act_work: float  # logits (last stage) and, under full recompute, one rebuilt layer

    def counted(self) -> list[tuple[OpCost, int]]:
        return [(op, n) for ops, n in self.layers for op in ops] + ([(self.head, 1)] if self.head else [])

    @property
    def ops(self) -> tuple[OpCost, ...]:
        """Every forward op with its count (layers), for tables and explanations."""
        return tuple(replace(op, count=n) if n != op.count else op for op, n in self.counted())

    def time(self, kind: str) -> float:
        return sum(n * op.time_s for op, n in self.counted() if op.kind == kind)


_REPLICATED = ("norms", "post_norms", "q_latent_norm", "kv_latent_norm", "moe.routing")


@lru_cache(maxsize=512)
def _activations(s: ModelSpec, b: int, T: int, recompute: str, flash: bool = True
                 ) -> tuple[dict[LayerSpec, tuple[float, float]], float]:
    """Per layer of each kind: (replicated, split) saved bytes of one micro-batch; and the head's bytes.

    Fused kernels (memory.activations' fused profile); without flash attention and without recomputation the
    b·h_q·s² scores and softmax output (2 + 2 bytes) are kept too (Korthikanti et al. 2022's 5as/h term
    without the dropout mask)."""
    act = activation_bytes(s, B=b, T=T, recompute=recompute, profile="fused")
    scores = 0 if flash or recompute != "none" else 4 * b * s.n_heads * T * T
    per: dict[LayerSpec, tuple[float, float]] = {}
    for (layer, n), part in zip(s.layer_kinds, act.children, strict=False):  # children end with final_norm, head
        if recompute == "full":
            per[layer] = (part.value / n, 0.0)
            continue
        rep = sum(c.value for c in part.children if c.key in _REPLICATED)
        per[layer] = (rep / n, (part.value - rep) / n + scores)
    head = sum(c.value for c in act.children if c.key in ("final_norm", "head"))
    return per, head


def _fp8_casts(ops: list[tuple[OpCost, int]], hw: HardwareSpec, eff: Efficiency, tp: int) -> OpCost | None:
    """FP8 training casts x and W in the forward, dY, xᵀ and Wᵀ in the backward of every linear (torchao
    Float8Linear with dynamic scaling; Transformer Engine alike): 2·N·d_in + N·d_out activation and 2·d_in·d_out
    weight elements per micro-batch, each costing an amax read, a read and a write."""
    elems = sum(count * ((2 * n * d_in + n * d_out) + 2 * d_in * d_out) / tp
                for c, count in ops if c.kind in ("linear", "head") for n, d_in, d_out in [c.shape])
    return _memory_op(hw, eff, "fp8 casts (x, W fwd; dY, xᵀ, Wᵀ bwd)", elems * k.FP8_CAST_BYTES) if elems else None


def _memory_op(hw: HardwareSpec, eff: Efficiency, name: str, moved: float) -> OpCost:
    t = moved / (eff.bw * hw.memory_bandwidth_bytes_per_s)
    return OpCost("aux", name, "aux", 1, 0.0, moved, 0.0, 0.0, 0.0, t, t,
                  dict(F=0.0, η_compute=1.0, F_peak=hw.peak("bf16"), M_moved=moved, η_bw=eff.bw,
                       BW_HBM=hw.memory_bandwidth_bytes_per_s, t_dq=0.0, t_launch=0.0))


@lru_cache(maxsize=8192)
def _kind_ops(s: ModelSpec, hw: HardwareSpec, eff: Efficiency, w: Workload, layer: LayerSpec, b: int, T: int,
              shard: Sharding) -> tuple[OpCost, ...]:
    """Forward ops of one layer of a kind (count 1): shared by every stage and layout that cut it the same way."""
    return tuple(layer_costs(s, layer, 1, hw, eff, B=b, T=T, shard=shard, wd={"*": BF16}, kv=BF16,
                             linear_peak=None if w.precision == "bf16" else w.precision, flash=w.flash_attention,
                             training=True))


@lru_cache(maxsize=4096)
def stage(s: ModelSpec, hw: HardwareSpec, eff: Efficiency, w: Workload, *, tp: int, cp: int, sp: bool, ep: int,
          b: int, pp: int, i: int, recompute: str) -> Stage:
    """Forward costs and memory terms of pipeline stage i for one micro-batch of b sequences."""
    return build_stage(s, hw, eff, w, tp=tp, cp=cp, sp=sp, ep=ep, b=b, pp=pp, i=i, recompute=recompute,
                       kind_ops=lambda layer, T, shard: _kind_ops(s, hw, eff, w, layer, b, T, shard))


def build_stage(s: ModelSpec, hw: HardwareSpec, eff: Efficiency, w: Workload, *, tp: int, cp: int, sp: bool, ep: int,
                b: int, pp: int, i: int, recompute: str, kind_ops: Callable[..., tuple[OpCost, ...]]) -> Stage:
    T = w.seq // cp
    shard = Sharding(tp=tp, cp=cp, sp=sp, expert_shards=ep * tp, expert_group_tokens=b * T * ep)
    kinds = stage_kinds(s, pp, i)
    per, head_bytes = _activations(s, b, T, recompute, w.flash_attention)
    layers, act_rep, act_split = [], 0.0, 0.0
    for layer, n in kinds:
        layers.append((kind_ops(layer, T, shard), n))
        rep, split = per[layer]
        if sp:  # sequence parallelism splits the norm and residual activations too
            rep, split = 0.0, rep + split
        act_rep += n * rep
        act_split += n * split
    last = i == pp - 1
    head = head_cost(s, hw, eff, N=b * T, tp=tp, wd={"*": BF16},
                     linear_peak=None if w.precision == "bf16" else w.precision) if last else None
    work = head_bytes / tp if last else 0.0
    if recompute == "full":  # backward rebuilds one layer's full activations at a time
        full, _ = _activations(s, b, T, "none")
        work += max((r if not sp else 0.0) + (x if not sp else r + x) / tp for r, x in full.values())
    counted = [(op, n) for ops, n in layers for op in ops] + ([(head, 1)] if head else [])
    aux: list[OpCost] = []
    if w.precision != "bf16":
        cast = _fp8_casts(counted, hw, eff, tp)
        if cast:
            aux.append(cast)
    ft = w.finetune
    if ft.mode == "qlora":  # bitsandbytes dequantizes each NF4 weight to bf16 for every use: fwd, dX (+ recompute)
        elems = sum(n * c.weight_bytes / 2 for c, n in counted if c.kind == "linear")
        uses = 2 + (recompute == "full")
        aux.append(_memory_op(hw, eff, f"NF4 → bf16 dequantization ×{uses}",
                              uses * elems * (float(NF4.bytes_per_element) + k.DEQUANT_BYTES)))
    if ft.mode != "full":
        aux += _adapters(s, hw, eff, kinds, ft, b=b, T=T, tp=tp, passes=3 + (recompute == "full"))
    norms = sum(n for t, n in stage_tensors(s, pp, i) if t.group == "norms")
    return Stage(layers=tuple(layers), head=head, aux=tuple(aux), n_layers=sum(n for _, n in kinds),
                 n_moe=sum(n for layer, n in kinds if layer.mlp == "moe"), n_norms=norms,
                 act_rep=act_rep, act_split=act_split, act_work=work)


def _adapters(s: ModelSpec, hw: HardwareSpec, eff: Efficiency, kinds: list[tuple[LayerSpec, int]], ft: Finetune, *,
              b: int, T: int, tp: int, passes: int) -> list[OpCost]:
    """LoRA's two thin matmuls per targeted linear (x·A: d_in → r, then ·B: r → d_out), each a roofline op run
    `passes` times (forward, dX and dW in backward, + recompute): small r leaves them memory bound."""
    N, r = b * T, ft.rank
    out = []
    for layer, n in kinds:
        for d_in, d_out in lora_linears(s, layer, ft.targets):
            for name, a, c in (("lora_A", d_in, r), ("lora_B", r, d_out)):
                F = 2 * N * a * c / tp
                moved = N * (a + c) * 2 / tp + a * c * 4 / tp
                eta = eff.gemm_efficiency(max(c / tp, 1), a)
                t = max(F / (eta * hw.peak("bf16")), moved / (eff.bw * hw.memory_bandwidth_bytes_per_s)) + eff.launch_s
                out.append(OpCost(layer.kind, f"{name} ({d_in}→{d_out}) ×{passes} passes", "aux", n * passes, F, moved,
                                  0.0, 0.0, F / (eta * hw.peak("bf16")),
                                  moved / (eff.bw * hw.memory_bandwidth_bytes_per_s), t,
                                  dict(F=F, η_compute=eta, F_peak=hw.peak("bf16"), M_moved=moved, η_bw=eff.bw,
                                       BW_HBM=hw.memory_bandwidth_bytes_per_s, t_dq=0.0, t_launch=eff.launch_s)))
    return out
