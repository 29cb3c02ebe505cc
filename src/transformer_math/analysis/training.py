"""Training plan: memory per GPU and time of one optimizer step under a parallel layout; MFU, HFU, days, cost.

One GPU runs its pipeline stage's layers (torchtitan's split), its tensor-parallel shard of every matmul
(1/T_p), its context-parallel share of each sequence (s/C_p tokens; (s/C_p)·s query–key pairs, the causal half
executed by flash kernels) and, for MoE, its experts (E/E_p of them, split over T_p in width). Parameters,
gradients and optimizer states shard over the data × context ranks by ZeRO stage (FSDP = ZeRO-3), exactly as
analysis/sharding.py counts them. Per micro-batch the forward of every op is a roofline cost (costs.py); the
backward and recompute multiply those by their passes; collectives, the pipeline bubble and exposed
data-parallel traffic come on top.

The composition is written once (`_compose`) over a `Book`: the explained plan evaluates it on numbers and
keeps every term as a registered, explainable Quantity; the layout search evaluates it on numpy arrays of
layouts. Terms that need per-op tables (op costs, activations of the core, sharded tensors) are computed per
distinct (micro-batch, tokens, T_p, …) and spread over the arrays.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache

from transformer_math.analysis import collectives
from transformer_math.analysis import efficiency as k
from transformer_math.analysis.collectives import Collective
from transformer_math.analysis.costs import OpCost, Sharding, head_cost, layer_costs
from transformer_math.analysis.efficiency import Efficiency, efficiency_for
from transformer_math.analysis.flops import forward_flops
from transformer_math.analysis.memory import activation_bytes
from transformer_math.analysis.params import active_params, params_breakdown
from transformer_math.analysis.quantity import Book, Quantity, total
from transformer_math.analysis.sharding import (fsdp_units, local_params, local_params_quantity, stage_kinds,
                                                 stage_tensors, training_mesh)
from transformer_math.config.hardware import HardwareSpec
from transformer_math.config.spec import LayerSpec, ModelSpec
from transformer_math.errors import TmathError
from transformer_math.formulas import comm
from transformer_math.formulas import memory as fm
from transformer_math.formulas import parallel as fp
from transformer_math.formulas import plan as fl
from transformer_math.units import parse_dtype

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Bytes per trainable parameter of optimizer state (seed 000 §7: b_m, b_v); fp32 master weights (4) come on top.
OPTIMIZERS = {"adamw": (4, 4), "adam8bit": (1, 1), "sgd": (4, 0), "adafactor": (0, 0)}
RECOMPUTE = ("none", "selective", "full")
SCHEDULES = ("1f1b", "gpipe")  # 1F1B with interleave v > 1 is the interleaved schedule
PRECISIONS = ("bf16", "fp8", "fp4")
FINETUNES = ("full", "lora", "qlora")
NF4 = parse_dtype("nf4")
BF16 = parse_dtype("bf16")


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """A parallel layout (seed 000 §9: T_p, P_p, D_p, C_p, E_p), its schedule, recompute and ZeRO stage."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    micro_batch: int = 1
    recompute: str = "none"
    zero: int = 1
    sequence_parallel: bool = True
    interleave: int = 1
    schedule: str = "1f1b"

    @property
    def gpus(self) -> int:
        """n_GPU = T_p·P_p·D_p·C_p (experts borrow E_p from the data × context ranks)."""
        return self.tp * self.pp * self.dp * self.cp

    @property
    def schedule_name(self) -> str:
        return "interleaved" if self.interleave > 1 else self.schedule


@dataclass(frozen=True, kw_only=True, slots=True)
class Finetune:
    """What is trained: 'full', or LoRA adapters of rank r on target modules (QLoRA: 4-bit NF4 base)."""

    mode: str = "full"  # full | lora | qlora
    rank: int = 16
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True, kw_only=True, slots=True)
class Workload:
    """What one optimizer step does: B sequences of s tokens, precision, optimizer, what is trained."""

    global_batch: int
    seq: int
    precision: str = "bf16"  # bf16 | fp8 | fp4 (the linear layers; attention and norms stay 16-bit)
    optimizer: str = "adamw"
    finetune: Finetune = field(default_factory=Finetune)
    flash_attention: bool = True


LORA_SHAPES = {  # module name → (d_in, d_out) from the spec
    "q_proj": lambda s, l: (s.d_model, s.n_heads * s.head_dim),
    "k_proj": lambda s, l: (s.d_model, s.kv_dim),
    "v_proj": lambda s, l: (s.d_model, s.kv_dim),
    "o_proj": lambda s, l: (s.n_heads * s.head_dim, s.d_model),
    "gate_proj": lambda s, l: (s.d_model, l.d_ff),
    "up_proj": lambda s, l: (s.d_model, l.d_ff),
    "down_proj": lambda s, l: (l.d_ff, s.d_model),
}


def lora_linears(s: ModelSpec, layer: LayerSpec, targets: tuple[str, ...]) -> list[tuple[int, int]]:
    """(d_in, d_out) of the nn.Linear modules PEFT wraps in one layer of this kind.

    In MoE layers only shared experts are nn.Linear modules (routed experts are 3-D parameter tensors PEFT
    does not wrap); MLA projections have other names and are not targeted by these names.
    """
    mlp: LayerSpec | None = layer
    if layer.mlp != "dense":
        mlp = replace(layer, d_ff=s.moe.shared_width) if s.moe and s.moe.n_shared else None
    out = []
    for t in targets:
        if t in ("gate_proj", "up_proj", "down_proj") and (mlp is None or s.n_up != 2):
            continue
        out.append(LORA_SHAPES[t](s, mlp or layer))
    return out


def lora_params(s: ModelSpec, rank: int, targets: tuple[str, ...]) -> int:
    """Σ over targeted linears of r·(d_in + d_out): PEFT's lora_A (r×d_in) and lora_B (d_out×r).

    Checked against PEFT's get_peft_model in tests/test_perf_crosscheck.py.
    """
    bad = [t for t in targets if t not in LORA_SHAPES]
    if bad or not targets:
        raise TmathError("lora_targets", ",".join(bad) or "(empty)", f"module names among {', '.join(LORA_SHAPES)}")
    if s.mla is not None or s.family == "gpt2":
        raise TmathError("finetune", s.family, "LoRA counts for llama-layout projections (q/k/v/o, gate/up/down)")
    return sum(n * rank * (a + b) for layer, n in s.layer_kinds for a, b in lora_linears(s, layer, targets))


def validate(s: ModelSpec, L: Layout, w: Workload) -> None:
    """One clear error per bad choice, naming the field, the value and what is allowed."""
    checks = [
        (w.optimizer in OPTIMIZERS, "optimizer", w.optimizer, f"one of {', '.join(OPTIMIZERS)}"),
        (L.recompute in RECOMPUTE, "recompute", L.recompute, "none, selective or full"),
        (w.precision in PRECISIONS, "precision", w.precision, "bf16, fp8 or fp4 (NVFP4/MXFP4 linear layers)"),
        (w.finetune.mode in FINETUNES, "finetune", w.finetune.mode, "full, lora or qlora"),
        (L.schedule in SCHEDULES, "schedule", L.schedule, "1f1b or gpipe"),
        (L.zero in (0, 1, 2, 3), "zero", L.zero, "a ZeRO stage 0, 1, 2 or 3 (3 = FSDP)"),
    ]
    for name in ("tp", "pp", "dp", "cp", "ep", "micro_batch", "interleave"):
        v = getattr(L, name)
        checks.append((isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10**6, name, v,
                       "an integer from 1 to 10^6"))
    for name in ("global_batch", "seq"):
        v = getattr(w, name)
        checks.append((isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10**9, name, v,
                       "an integer from 1 to 10^9"))
    for ok, name, value, allowed in checks:
        if not ok:
            raise TmathError(name, value, allowed)
    structural = [
        (w.global_batch % (L.dp * L.micro_batch) == 0, "global_batch", w.global_batch,
         f"a multiple of D_p·b = {L.dp}·{L.micro_batch}"),
        (L.pp <= s.n_layers, "pp", L.pp, f"at most N_L = {s.n_layers} stages"),
        (s.n_heads % L.tp == 0, "tp", L.tp, f"a divisor of h_q = {s.n_heads}"),
        (w.seq % L.cp == 0, "cp", L.cp, f"a divisor of the sequence length {w.seq}"),
        (L.ep == 1 or s.moe is not None, "ep", L.ep, "1: expert parallelism needs an MoE model"),
        (s.moe is None or s.moe.n_experts % L.ep == 0, "ep", L.ep,
         f"a divisor of E = {s.moe.n_experts if s.moe else 0} experts"),
        ((L.dp * L.cp) % L.ep == 0, "ep", L.ep, f"a divisor of D_p·C_p = {L.dp * L.cp} (experts borrow E_p from "
                                                "the data × context ranks)"),
        (L.interleave == 1 or L.pp > 1, "interleave", L.interleave, "1 without pipeline parallelism (P_p = 1)"),
        (L.interleave == 1 or s.n_layers >= L.pp * L.interleave, "interleave", L.interleave,
         f"at most N_L/P_p = {s.n_layers // L.pp} chunks per stage"),
        (L.interleave == 1 or L.schedule == "1f1b", "schedule", L.schedule, "1f1b when interleaving (v > 1)"),
    ]
    m = w.global_batch // (L.dp * L.micro_batch) if w.global_batch % (L.dp * L.micro_batch) == 0 else 0
    rounds = max(1, m // L.pp)
    structural.append((L.interleave == 1 or m % rounds == 0, "global_batch", w.global_batch,
                       f"m = {m} micro-batches in whole rounds of {m // rounds} for the interleaved schedule "
                       "(torch ScheduleInterleaved1F1B: m a multiple of ⌊m/P_p⌋)"))
    for ok, name, value, allowed in structural:
        if not ok:
            raise TmathError(name, value, allowed)
    if w.finetune.mode != "full":
        lora_params(s, w.finetune.rank, w.finetune.targets)


# ---------------------------------------------------------------------------------------------------------------
# Per-stage components: op costs, activations, sharded parameters (exact, per distinct key)


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
    for (layer, n), part in zip(s.layer_kinds, act.children):
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
    head = head_cost(s, hw, eff, N=b * T, tp=tp, wd={"*": BF16}, linear_peak=None if w.precision == "bf16" else w.precision
                     ) if last else None
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


# ---------------------------------------------------------------------------------------------------------------
# The composition, once, over numbers (explained) or arrays (search)

ROLES = ("first", "second", "last")  # stage 0, stage 1, stage P_p − 1: the peaks of memory and time lie among them


def role_stage(role: str, pp: int) -> int:
    return {"first": 0, "second": min(1, pp - 1), "last": pp - 1}[role]


def _bus(hw: HardwareSpec, eff: Efficiency, span: Any) -> tuple[Any, Any]:
    """(BW, α) of a collective whose ranks span `span` consecutive GPUs: the link inside a node, else the NICs."""
    inside = span <= hw.gpus_per_node
    link = hw.link_bandwidth_bytes_per_s * eff.link
    net = min(link, hw.gpus_per_node * hw.nic_bandwidth_bytes_per_s * eff.nic)
    return inside * link + (1 - inside) * net, inside * eff.alpha_link_s + (1 - inside) * eff.alpha_nic_s


def _memory_terms(book: Book, s: ModelSpec, hw: HardwareSpec, w: Workload, x: dict[str, Any], c: dict[str, Any],
                  p: str) -> Any:
    """Memory per GPU of one stage role (prefix p): weights, gradients, optimizer states, activations, reserve."""
    ft = w.finetune
    b_m, b_v = OPTIMIZERS[w.optimizer]
    b_w = (NF4 if ft.mode == "qlora" else BF16).bytes_per_element
    keys = []
    for g, P in c["P_w"].items():
        keys.append(f"{p}weights.{g}")
        book.f(keys[-1], fm.weight_bytes, symbol="M_param", P=P, b_w=b_w)
    if ft.mode != "full":  # the adapters themselves, trained in fp32
        keys.append(f"{p}weights.lora")
        book.f(keys[-1], fm.gradient_bytes, symbol="M_param", P_train=c["P_lora_gpu"], b_g=4)
    book.sum(f"{p}memory.weights", keys, unit="bytes", symbol="M_w")
    if ft.mode == "full":
        for name, P_by, fn, kw in (("gradients", c["P_g"], fm.gradient_bytes, dict(b_g=2)),
                                   ("optimizer", c["P_o"], fm.optimizer_bytes, dict(b_master=4, b_m=b_m, b_v=b_v))):
            for g, P in P_by.items():
                book.f(f"{p}{name}.{g}", fn, P_train=P, **kw)
            book.sum(f"{p}memory.{name}", [f"{p}{name}.{g}" for g in P_by], unit="bytes",
                     symbol="M_grad" if name == "gradients" else "M_opt")
    else:  # adapters train in fp32 directly: no master copy
        book.f(f"{p}memory.gradients", fm.gradient_bytes, P_train=c["P_lora_gpu"], b_g=4)
        book.f(f"{p}memory.optimizer", fm.optimizer_bytes, P_train=c["P_lora_gpu"], b_master=0, b_m=b_m, b_v=b_v)
    book.f(f"{p}pipeline.in_flight", fp.in_flight, g=x["gpipe"], v=x["v"], P_p=x["pp"], m=x["m"], i=c["i"])
    book.f(f"{p}memory.activations", fp.activations_per_gpu, m_live=book.ref(f"{p}pipeline.in_flight"),
           M_rep=c["act_rep"],
           M_split=c["act_split"], T_p=x["tp"], M_work=c["act_work"])
    book.f(f"{p}memory.reserve", fp.reserve_bytes, M_fixed=k.RESERVE_FIXED, f_reserve=k.RESERVE_FRACTION_TRAIN,
           M_HBM=hw.memory_bytes)
    return book.sum(f"{p}memory.per_gpu", [f"{p}memory.{n}" for n in ("weights", "gradients", "optimizer",
                                                                      "activations", "reserve")],
                    unit="bytes", symbol="M_GPU")


def _collective_terms(book: Book, hw: HardwareSpec, eff: Efficiency, key: str, entries: list[Collective],
                      ranks: dict[str, Any], spans: dict[str, Any]) -> list[str]:
    """Each collective: count × the time of one call (ring models of formulas/comm.py); returns the keys."""
    keys = []
    for j, e in enumerate(entries):
        bw, alpha = _bus(hw, eff, spans[e.group])
        one = f"{key}.{e.group}.{e.phase}.{e.kind}.{j}"
        if e.kind == "send" or (e.group == "cp" and e.kind == "all_to_all"):  # a ring pass: the buffer to rank + 1
            book.f(f"{one}.t1", comm.p2p, symbol="t_p2p", α=alpha, S=e.bytes, BW=bw)
        else:
            fn = {"all_reduce": comm.all_reduce_ring, "all_to_all": comm.all_to_all}.get(e.kind, comm.all_gather)
            book.f(f"{one}.t1", fn, symbol="t_1", n=ranks[e.group], α=alpha, S=e.bytes, BW=bw)
        book.f(one, fl.collectives_time, symbol="t_coll", note=e.note, n_coll=e.count, t_1=book.ref(f"{one}.t1"))
        keys.append(one)
    return keys


def _spans(x: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ranks of each group and the consecutive GPUs it spans (mesh order: TP innermost, then CP, DP, PP)."""
    tp, cp, dp, ep = x["tp"], x["cp"], x["dp"], x["ep"]
    F = dp * cp
    ranks = dict(tp=tp, cp=cp, ep=ep, pp=2, dp=F, dp_e=F // ep)
    spans = dict(tp=tp, cp=tp * cp, ep=tp * ep, pp=tp * F * x["pp"], dp=tp * F, dp_e=tp * F)
    return ranks, spans


def _time_terms(book: Book, s: ModelSpec, hw: HardwareSpec, eff: Efficiency, w: Workload, x: dict[str, Any],
                c: dict[str, Any], p: str) -> Any:
    """Time of one micro-batch on one stage role: compute passes, TP/CP/EP collectives, pipeline sends."""
    full, k_att = x["full"], (k.ATTENTION_BACKWARD if w.flash_attention else 2.0)
    sel = x["sel"] * (not w.flash_attention)
    book.given(f"{p}time.linear", c["t_lin"], c.get("q_lin"))
    book.given(f"{p}time.attention", c["t_att"], c.get("q_att"))
    book.given(f"{p}time.elementwise", c["t_elem"], c.get("q_elem"))
    book.given(f"{p}time.aux", c["t_aux"], c.get("q_aux"))
    t_lin, t_att, t_elem = (book.ref(f"{p}time.{k_}") for k_ in ("linear", "attention", "elementwise"))
    book.f(f"{p}time.recompute", fl.recompute_time, full=full, sel=sel, t_lin=t_lin, t_att=t_att, t_elem=t_elem)
    book.f(f"{p}time.compute", fl.compute_time, k_bwd=x["k_bwd"], t_lin=t_lin, k_att=k_att, t_att=t_att,
           k_el=k.ELEMENTWISE_BACKWARD, t_elem=t_elem, t_rec=book.ref(f"{p}time.recompute"),
           t_aux=book.ref(f"{p}time.aux"))
    ranks, spans = _spans(x)
    tok = x["mb"] * x["T"]
    S = tok * s.d_model * 2
    first, last = c["i"] == 0, c["i"] == x["pp"] - 1
    tp_on = x["tp"] > 1
    tp = collectives.tensor_parallel(n_L=c["n_layers"] * tp_on, first=first * tp_on, last=last * tp_on,
                                     sp=x["sp"], full=full, S=S, S_loss=tok * 4 * tp_on,
                                     n_norms=c["n_norms"] * tp_on, b_norm=s.d_model * 4)
    book.sum(f"{p}time.tp", _collective_terms(book, hw, eff, f"{p}time.tp", tp, ranks, spans), unit="s",
             symbol="t_TP")
    heads = s.n_heads / x["tp"]  # torchtitan expands GQA's K/V to h_q heads before the attention kernel
    width = (s.mla.d_nope + s.mla.d_rope + s.mla.d_v) if s.mla else 2 * s.head_dim
    KV = tok * heads * width * 2
    cp = collectives.context_parallel(n_L=c["n_layers"], C_p=x["cp"], full=full, KV=KV, dKV=2 * KV)
    cp_keys = _collective_terms(book, hw, eff, f"{p}time.cp", cp, ranks, spans)
    n_att = c["n_layers"] * (x["cp"] > 1)
    per_layer = lambda phase: sum(book.values[k_] for k_, e in zip(cp_keys, cp) if e.phase == phase) / (  # noqa: E731
        n_att + (n_att == 0))
    book.f(f"{p}time.cp", fl.cp_exposed, n_att=n_att, t_f=per_layer("fwd"), t_b=per_layer("bwd"),
           t_att_l=c["t_att"] / (c["n_layers"] + (c["n_layers"] == 0)), k_att=k_att)
    e = s.moe.experts_per_token if s.moe else 0
    ep = collectives.expert_parallel(n_moe=c["n_moe"], E_p=x["ep"], full=full, S_tok=S * e / x["sp_div"])
    book.sum(f"{p}time.ep", _collective_terms(book, hw, eff, f"{p}time.ep", ep, ranks, spans), unit="s",
             symbol="t_EP")
    pp = collectives.pipeline(P_p=x["pp"], S=S / x["sp_div"])
    book.sum(f"{p}time.pp", _collective_terms(book, hw, eff, f"{p}time.pp", pp, ranks, spans), unit="s",
             symbol="t_PP")
    return book.f(f"{p}time.microbatch", fl.microbatch_time, t_comp=book.ref(f"{p}time.compute"),
                  t_TP=book.ref(f"{p}time.tp"), t_CP=book.ref(f"{p}time.cp"), t_EP=book.ref(f"{p}time.ep"),
                  t_PP=book.ref(f"{p}time.pp"), η_TP=eff.overlap_tp, η_EP=eff.overlap_ep)


def _step_terms(book: Book, s: ModelSpec, hw: HardwareSpec, eff: Efficiency, w: Workload, x: dict[str, Any],
                c: dict[str, Any], *, t_mb: Any, M_GPU: Any, tokens: float, price: float) -> None:
    """Step time from the bottleneck micro-batch time, then MFU, HFU, throughput, days and cost."""
    book.f("train.micro_batches", fl.micro_batches, B=w.global_batch, D_p=x["dp"], b=x["mb"])
    m = book.ref("train.micro_batches")
    book.f("train.bubble", fp.bubble_time, P_p=x["pp"], v=x["v"], t_mb=t_mb)
    ranks, spans = _spans(x)
    full_ft = w.finetune.mode == "full"
    if full_ft:
        dp = collectives.data_parallel(zero=x["zero"], m=m, F=ranks["dp"], F_e=ranks["dp_e"], P_layers=c["P_layers"],
                                       P_experts=c["P_experts"], P_root=c["P_root"], n_L=c["n_layers"],
                                       n_moe=c["n_moe"], b_w=2, b_g=2)
    else:  # only the adapters' gradients are reduced
        dp = [collectives.Collective("dp", "bwd", "all_reduce", 1, c["P_lora_gpu"] * 4, "adapter gradients")]
    book.sum("train.dp.total", _collective_terms(book, hw, eff, "train.dp", dp, ranks, spans), unit="s",
             symbol="t_DP_all")
    book.f("train.dp", fl.dp_exposed, t_DP_all=book.ref("train.dp.total"), η_ov=eff.overlap, m=m, t_mb=t_mb)
    b_m, b_v = OPTIMIZERS[w.optimizer]
    master = 4 if w.finetune.mode == "full" else 0
    b_w = 2 if w.finetune.mode == "full" else 4
    book.f("train.optimizer", fl.optimizer_time, P_opt=c["P_opt"], b_rw=2 * b_w + 2 * (master + b_m + b_v),
           η_bw=eff.bw * eff.elementwise_bw, BW_HBM=hw.memory_bandwidth_bytes_per_s)
    book.f("train.step_time", fl.step_time, m=m, t_mb=t_mb, t_bubble=book.ref("train.bubble"),
           t_DP=book.ref("train.dp"), t_opt=book.ref("train.optimizer"))
    t_step = book.ref("train.step_time")
    book.f("train.model_flops", fl.model_flops, k_bwd=x["k_bwd"], F_lin=c["F_lin"], F_att=c["F_att"],
           F_adapt=c["F_adapt"])
    F_model = book.ref("train.model_flops")
    k_att = k.ATTENTION_BACKWARD if w.flash_attention else 2.0
    book.f("train.hardware_flops", fl.hardware_flops, F_model=F_model, full=x["full"],
                  sel=x["sel"] * (not w.flash_attention), F_lin=c["F_lin"], F_att=c["F_att"], F_adapt=c["F_adapt"],
                  k_att=k_att)
    n = x["tp"] * x["pp"] * x["dp"] * x["cp"]
    peak = hw.peak("bf16")
    book.f("train.mfu", fl.utilization, symbol="MFU", F=F_model, t_step=t_step, n_GPU=n, F_peak=peak)
    book.f("train.hfu", fl.utilization, symbol="HFU", F=book.ref("train.hardware_flops"), t_step=t_step, n_GPU=n,
           F_peak=peak)
    if w.finetune.mode == "full":
        book.f("train.palm_flops", fl.palm_flops, P_active=c["P_active"], N_L=s.n_layers, h_q=s.n_heads,
               d_qk=c["d_qk"], d_v=c["d_v"], s=w.seq, B=w.global_batch)
        book.f("train.mfu_palm", fl.utilization, symbol="MFU_PaLM", F=book.ref("train.palm_flops"),
               t_step=t_step, n_GPU=n, F_peak=peak)
    book.f("train.tokens_per_s", fl.tokens_per_s, B=w.global_batch, s=w.seq, t_step=t_step)
    if tokens:
        book.f("train.days", fl.days, T_train=tokens, tok_s=book.ref("train.tokens_per_s"))
        book.f("train.cost", fl.cost, t_train=book.ref("train.days"), n_GPU=n, price=price)
    book.f("train.over", fl.over_bytes, M_GPU=M_GPU, M_HBM=hw.memory_bytes)


def _layout_values(s: ModelSpec, w: Workload, *, tp: Any, pp: Any, dp: Any, cp: Any, ep: Any, mb: Any, rec: Any,
                   zero: Any, sp: Any, v: Any, gpipe: Any) -> dict[str, Any]:
    """The layout as the formulas' inputs (numbers, or numpy arrays of layouts); rec: 0/1/2 = none/selective/full."""
    return dict(tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, mb=mb, zero=zero, v=v, gpipe=gpipe, full=rec == 2, sel=rec == 1,
                k_bwd=2 if w.finetune.mode == "full" else 1, m=w.global_batch / (dp * mb), T=w.seq // cp,
                sp=sp, sp_div=tp ** sp)


@lru_cache(maxsize=64)
def _model_flops(s: ModelSpec, w: Workload) -> dict[str, Any]:
    """Model-level inputs of MFU: forward FLOPs of the global batch (causal: what the model requires) split into
    matmuls and the attention core, adapters, and PaLM's P_active."""
    fwd = forward_flops(s, B=w.global_batch, T=w.seq, attention="causal", key="flops.forward")
    att = sum(c.value for layer in fwd.children for c in layer.children if c.key.startswith("attention.scores")
              or c.key.startswith("attention.values"))
    P_lora = lora_params(s, w.finetune.rank, w.finetune.targets) if w.finetune.mode != "full" else 0
    params = params_breakdown(s)
    m = s.mla
    return dict(F_lin=fwd.value - att, F_att=att, F_adapt=2 * w.global_batch * w.seq * P_lora, P_lora=P_lora,
                P_active=int(active_params(s, params).value), d_qk=m.d_nope + m.d_rope if m else s.head_dim,
                d_v=m.d_v if m else s.head_dim)


def _lora_on_stage(s: ModelSpec, w: Workload, pp: int, i: int) -> int:
    ft = w.finetune
    if ft.mode == "full":
        return 0
    return sum(n * ft.rank * (a + b) for layer, n in stage_kinds(s, pp, i) for a, b in lora_linears(s, layer, ft.targets))


def _params(s: ModelSpec, x: dict[str, Any], pp: int, i: int) -> dict[str, Any]:
    """Local parameter elements per group on rank 0 of stage i: as held (ZeRO-3), as gradients (ZeRO ≥ 2), as
    optimizer states (ZeRO ≥ 1); and per FSDP unit as ZeRO-3 shards them (what data-parallel collectives move)."""
    mesh = lambda z: training_mesh(tp=x["tp"], ep=x["ep"], dp=x["dp"], cp=x["cp"], sharded=x["zero"] >= z)  # noqa: E731
    out = {name: local_params(s, mesh(z), pp=pp, stage=i) for name, z in (("P_w", 3), ("P_g", 2), ("P_o", 1))}
    units = fsdp_units(s, mesh(0), pp=pp, stage=i)
    out.update(P_layers=units["layers"], P_experts=units["experts"], P_root=units["root"])
    return out


def _role(s: ModelSpec, hw: HardwareSpec, eff: Efficiency, w: Workload, L: Layout, x: dict[str, Any], role: str, *,
          explain: bool) -> dict[str, Any]:
    """Component values of one stage role for a single layout (and, explained, their per-op quantities)."""
    i = role_stage(role, L.pp)
    st = stage(s, hw, eff, w, tp=L.tp, cp=L.cp, sp=L.sequence_parallel, ep=L.ep, b=L.micro_batch, pp=L.pp, i=i,
               recompute=L.recompute)
    c = _stage_values(st)
    c.update(_params(s, x, L.pp, i), i=i, **_model_flops(s, w))
    lora = _lora_on_stage(s, w, L.pp, i)
    c.update(P_lora_gpu=lora / L.tp, P_opt=sum(c["P_o"].values()) if w.finetune.mode == "full" else lora / L.tp)
    if explain:
        for key, kind in (("q_lin", ("linear", "head")), ("q_att", ("attention",)), ("q_elem", ("elementwise",))):
            name = {"q_lin": "time.linear", "q_att": "time.attention", "q_elem": "time.elementwise"}[key]
            c[key] = _ops_total(name, [o for o in st.ops if o.kind in kind])
        c["q_aux"] = _ops_total("time.aux", list(st.aux))
    return c


def _stage_values(st: Stage) -> dict[str, Any]:
    return dict(t_lin=st.time("linear") + st.time("head"), t_att=st.time("attention"), t_elem=st.time("elementwise"),
                t_aux=sum(a.count * a.time_s for a in st.aux), n_layers=st.n_layers, n_moe=st.n_moe,
                n_norms=st.n_norms, act_rep=st.act_rep, act_split=st.act_split, act_work=st.act_work)


def _ops_total(key: str, ops: list[OpCost]) -> Callable[[], Quantity]:
    return lambda: total(key, [o.quantity() for o in ops], unit="s", symbol="t")


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainPlan:
    """One layout's plan: every number a registered, explained quantity (`quantities`), plus the layout."""

    model: str
    gpu: str
    layout: Layout
    workload: Workload
    quantities: dict[str, Quantity]
    memory_stage: int
    time_stage: int
    trainable_params: int
    tokens: float = 0.0
    price: float = 0.0

    def __getitem__(self, key: str) -> Any:
        return self.quantities[key].value

    @property
    def fits(self) -> bool:
        return self["train.over"] <= 0


def plan_training(s: ModelSpec, hw: HardwareSpec, layout: Layout, w: Workload, *, eff: Efficiency | None = None,
                  tokens: float = 0.0, price: float = 0.0) -> TrainPlan:
    """Memory per GPU and step time of one optimizer step, every number explained."""
    validate(s, layout, w)
    eff = eff or efficiency_for(hw)
    L = layout
    x = _layout_values(s, w, tp=L.tp, pp=L.pp, dp=L.dp, cp=L.cp, ep=L.ep, mb=L.micro_batch,
                       rec=RECOMPUTE.index(L.recompute), zero=L.zero, sp=L.sequence_parallel, v=L.interleave,
                       gpipe=L.schedule == "gpipe")
    scratch = Book(explain=False)
    mem, tmb = {}, {}
    for role in ROLES:
        c = _role(s, hw, eff, w, L, x, role, explain=False)
        mem[role] = _memory_terms(scratch, s, hw, w, x, c, f"{role}.")
        tmb[role] = _time_terms(scratch, s, hw, eff, w, x, c, f"{role}.")
    mem_role = max(ROLES, key=lambda r: mem[r])
    time_role = max(ROLES, key=lambda r: tmb[r])
    book = Book(explain=True)
    _memory_terms(book, s, hw, w, x, _role(s, hw, eff, w, L, x, mem_role, explain=True), "")
    c_time = _role(s, hw, eff, w, L, x, time_role, explain=True)
    _time_terms(book, s, hw, eff, w, x, c_time, "")
    _step_terms(book, s, hw, eff, w, x, c_time, t_mb=book.ref("time.microbatch"), M_GPU=book.ref("memory.per_gpu"),
                tokens=tokens, price=price)
    book.put(local_params_quantity(s, training_mesh(tp=L.tp, ep=L.ep, dp=L.dp, cp=L.cp, sharded=L.zero >= 3),
                                   pp=L.pp, stage=role_stage(mem_role, L.pp), key="params.per_gpu"))
    trainable = int(params_breakdown(s).value) if w.finetune.mode == "full" else _model_flops(s, w)["P_lora"]
    return TrainPlan(model=s.name, gpu=hw.id, layout=L, workload=w, quantities=book.quantities,
                     memory_stage=role_stage(mem_role, L.pp), time_stage=role_stage(time_role, L.pp),
                     trainable_params=trainable, tokens=tokens, price=price)


def evaluate(s: ModelSpec, hw: HardwareSpec, w: Workload, *, tp: Any, pp: Any, dp: Any, cp: Any, ep: Any, mb: Any,
             rec: Any, zero: Any, sp: Any, v: Any, gpipe: Any, eff: Efficiency | None = None,
             deadline: float | None = None) -> dict[str, Any]:
    """The same composition on numpy arrays of layouts (broadcast together): every value of plan_training for each.

    Terms that need per-op tables are computed once per distinct (T_p, C_p, SP, E_p, b, P_p, stage, recompute) and
    spread over the arrays; the rest is the registered formulas on arrays. Returns the Book's values by key.
    """
    import numpy as np

    eff = eff or efficiency_for(hw)
    arrs = np.broadcast_arrays(*(np.asarray(a) for a in (tp, pp, dp, cp, ep, mb, rec, zero, sp, v, gpipe)))
    tp, pp, dp, cp, ep, mb, rec, zero, sp, v, gpipe = arrs
    x = _layout_values(s, w, tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, mb=mb, rec=rec, zero=zero, sp=sp, v=v, gpipe=gpipe)
    book = Book(explain=False)
    model = _model_flops(s, w)
    per_role: dict[str, dict[str, Any]] = {}
    mem, tmb = [], []
    keys, inverse = np.unique(np.stack([tp, cp, sp, ep, mb, pp, rec]).reshape(7, -1).T, axis=0, return_inverse=True)
    inverse = inverse.reshape(tp.shape)
    memo: dict[Any, tuple[OpCost, ...]] = {}  # per layer kind and cut: keyed on small values, not the spec

    def kind_ops(b_: int) -> Callable[..., tuple[OpCost, ...]]:
        def get(layer: LayerSpec, T: int, shard: Sharding) -> tuple[OpCost, ...]:
            key = (layer, b_, T, shard)
            if key not in memo:
                memo[key] = _kind_ops(s, hw, eff, w, layer, b_, T, shard)
            return memo[key]
        return get

    for role in ROLES:
        stages = []
        for tp_, cp_, sp_, ep_, mb_, pp_, rec_ in keys.tolist():
            if deadline is not None and time.perf_counter() > deadline:
                raise TmathError("search", f"{len(keys):,} layout shapes", "a search that ends within its time limit: "
                                 "fix some choices (--tp, --pp) or search fewer GPUs")
            i = role_stage(role, pp_)
            st = build_stage(s, hw, eff, w, tp=tp_, cp=cp_, sp=bool(sp_), ep=ep_, b=mb_, pp=pp_, i=i,
                             recompute=RECOMPUTE[rec_], kind_ops=kind_ops(mb_))
            lora = _lora_on_stage(s, w, pp_, i)
            stages.append({**_stage_values(st), "i": i, "lora": lora / tp_})
        c: dict[str, Any] = {name: np.array([u[name] for u in stages])[inverse] for name in stages[0]}
        c["P_lora_gpu"] = c.pop("lora")
        groups: dict[str, dict[str, Any]] = {"P_w": {}, "P_g": {}, "P_o": {}}
        for name in ("P_layers", "P_experts", "P_root"):
            c[name] = np.zeros(tp.shape)
        for pp_ in np.unique(pp).tolist():  # sharded parameters: arrays of degrees, one pass per P_p
            where = pp == pp_
            sub = {name: a[where] for name, a in x.items() if hasattr(a, "shape") and a.shape == tp.shape}
            params = _params(s, sub, pp_, role_stage(role, pp_))
            for name in ("P_w", "P_g", "P_o"):
                for g, val in params[name].items():
                    groups[name].setdefault(g, np.zeros(tp.shape))[where] = val
            for name in ("P_layers", "P_experts", "P_root"):
                c[name][where] = params[name]
        c["P_opt"] = sum(groups["P_o"].values()) if w.finetune.mode == "full" else c["P_lora_gpu"]
        c.update(groups, **{key: float(val) for key, val in model.items()})  # FLOPs beyond int64
        per_role[role] = c
        mem.append(_memory_terms(book, s, hw, w, x, c, f"{role}."))
        tmb.append(_time_terms(book, s, hw, eff, w, x, c, f"{role}."))
    M, t = np.stack(mem), np.stack(tmb)
    pick = np.argmax(t, axis=0)
    chosen = {key: np.choose(pick, [per_role[r][key] for r in ROLES]) for key in (
        "P_layers", "P_experts", "P_root", "P_opt", "P_lora_gpu", "n_layers", "n_moe")}
    _step_terms(book, s, hw, eff, w, x, {**per_role[ROLES[0]], **chosen}, t_mb=t.max(axis=0), M_GPU=M.max(axis=0),
                tokens=0.0, price=0.0)
    out = {key: np.broadcast_to(v, tp.shape) for key, v in book.values.items()}
    out["memory.per_gpu"], out["time.microbatch"] = M.max(axis=0), t.max(axis=0)
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchRow:
    layout: Layout
    values: dict[str, float]


MAX_LAYOUTS = 300_000  # a search's grid; more is a typo in --gpus or a model no layout search needs


def search_layouts(s: ModelSpec, hw: HardwareSpec, w: Workload, *, gpus: int, eff: Efficiency | None = None,
                   top: int = 10, time_limit_s: float = 60.0) -> tuple[list[SearchRow], int, float]:
    """Every TP × PP × DP (ZeRO 1–3) × CP × EP × micro-batch × recompute × interleave × SP layout of `gpus` GPUs,
    evaluated at once on arrays; the `top` fastest that fit, without equivalent rows (a layout whose step time
    equals another's that differs only by a ZeRO stage keeps the lower-memory one). Returns (rows, layouts
    evaluated, seconds)."""
    import itertools

    import numpy as np

    t0 = time.perf_counter()
    pows = [2**i for i in range(0, 21) if 2**i <= gpus]
    tps = [t for t in pows if s.n_heads % t == 0 and t <= hw.gpus_per_node]
    pps = [p for p in pows if p <= min(s.n_layers, 128)]
    cps = [c for c in pows if w.seq % c == 0 and w.seq // c >= 1024 and c <= 16]
    eps = [e for e in pows if s.moe.n_experts % e == 0 and e <= 64] if s.moe else [1]
    recs = [0, 2] if w.flash_attention else [0, 1, 2]
    rows = []
    for tp_, pp_, cp_, ep_, mb_, rec_, z_, sp_, v_ in itertools.product(
            tps, pps, cps, eps, (1, 2, 4, 8), recs, (1, 2, 3), (False, True), (1, 2, 4)):
        dp_, left = divmod(gpus, tp_ * pp_ * cp_)
        if left or dp_ < 1 or (dp_ * cp_) % ep_ or w.global_batch % (dp_ * mb_):
            continue
        if (tp_ == 1 and sp_) or (dp_ * cp_ == 1 and z_ != 1) or (v_ > 1 and (
                pp_ == 1 or s.n_layers < pp_ * v_ or (w.global_batch // (dp_ * mb_)) % pp_)):
            continue
        rows.append((tp_, pp_, dp_, cp_, ep_, mb_, rec_, z_, sp_, v_))
    if not rows:
        return [], 0, time.perf_counter() - t0
    if len(rows) > MAX_LAYOUTS:
        raise TmathError("search", f"{len(rows):,} layouts", f"at most {MAX_LAYOUTS:,}: search fewer GPUs")
    tp, pp, dp, cp, ep, mb, rec, zero, sp, v = np.array(rows, dtype=np.int64).T
    r = evaluate(s, hw, w, tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, mb=mb, rec=rec, zero=zero, sp=sp.astype(bool), v=v,
                 gpipe=np.zeros(tp.shape, dtype=bool), eff=eff, deadline=t0 + time_limit_s)
    fits = r["memory.per_gpu"] <= hw.memory_bytes
    step = np.where(fits, r["train.step_time"], np.inf)
    order = np.lexsort((r["memory.per_gpu"], step))
    out: list[SearchRow] = []
    seen: set[tuple[Any, ...]] = set()
    for i in order:
        if not np.isfinite(step[i]) or len(out) >= top:
            break
        same = (round(float(step[i]), 12), tp[i], pp[i], dp[i], cp[i], ep[i], mb[i], rec[i], sp[i], v[i])
        if same in seen:
            continue
        seen.add(same)
        lay = Layout(tp=int(tp[i]), pp=int(pp[i]), dp=int(dp[i]), cp=int(cp[i]), ep=int(ep[i]), micro_batch=int(mb[i]),
                     recompute=RECOMPUTE[int(rec[i])], zero=int(zero[i]), sequence_parallel=bool(sp[i]),
                     interleave=int(v[i]))
        out.append(SearchRow(layout=lay, values={key: float(r[key][i]) for key in (
            "train.step_time", "train.mfu", "train.hfu", "memory.per_gpu", "train.tokens_per_s")}))
    return out, int(tp.size), time.perf_counter() - t0
