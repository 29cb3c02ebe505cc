"""Training step model: memory per GPU, step time with TP/PP/DP/CP/EP and ZeRO, MFU/HFU, time and cost.

Per micro-batch of b sequences of s tokens, one GPU runs its pipeline stage's share of the layers (N_L/P_p),
its tensor-parallel shard (1/T_p of every GEMM) and its context-parallel share of the sequence (1/C_p).
Forward GEMMs are timed with the efficiency model's shape-dependent η; backward costs two forwards; recompute
adds the forward again (full) or the attention core (selective). Assumptions stated in `describe()`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from transformer_math.analysis.efficiency import MID, Efficiency
from transformer_math.analysis.flops import layer_ops
from transformer_math.analysis.memory import activation_bytes
from transformer_math.analysis.params import by_group, params_breakdown
from transformer_math.config.hardware import HardwareSpec
from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError
from transformer_math.formulas import comm

# Bytes per parameter of optimizer state (seed 000 §7: b_m, b_v) and whether fp32 master weights are kept.
OPTIMIZERS = {"adamw": (4, 4), "adam8bit": (1, 1), "sgd": (4, 0), "adafactor": (0, 0)}


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """A parallel layout (seed 000 §9: D_p, T_p, P_p, S_p/C_p, E_p) and its schedule."""

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

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp * self.cp


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainResult:
    layout: Layout
    fits: bool
    memory_per_gpu_bytes: int
    memory: dict[str, int]
    step_time_s: float
    time: dict[str, float]
    model_flops_per_step: float
    hardware_flops_per_step: float
    tokens_per_step: int
    mfu: float
    hfu: float
    tflops_per_gpu: float
    tokens_per_s: float
    micro_batches: int
    notes: tuple[str, ...] = field(default=())


def palm_model_flops_per_token(s: ModelSpec, P: int, seq: int) -> float:
    """6·N + 12·N_L·h_q·d_h·s (PaLM App. B): matmul FLOPs per token, attention not discounted, embedding excluded."""
    return 6 * P + 12 * s.n_layers * s.n_heads * s.head_dim * seq


SCORE_PASSES = 6  # unfused attention: scale+mask, softmax, dropout each read and write the b·h·s² scores


def bus(hw: HardwareSpec, eff: Efficiency, ranks: int) -> tuple[float, float]:
    """(bandwidth, α) a collective over `ranks` GPUs sees: the link inside a node; across nodes NCCL runs one
    ring per NIC, so the bus carries gpus_per_node × BW_NIC (capped by the link)."""
    if ranks <= hw.gpus_per_node:
        return hw.link_bandwidth_bytes_per_s * eff.link, eff.alpha_link_s
    node = hw.gpus_per_node * hw.nic_bandwidth_bytes_per_s * eff.nic
    return min(hw.link_bandwidth_bytes_per_s * eff.link, node), eff.alpha_nic_s


def _gemm_time(s: ModelSpec, hw: HardwareSpec, eff: Efficiency, *, b: int, seq: int, tp: int, cp: int, ep: int,
               peak: float, flash: bool) -> tuple[float, float, float]:
    """(all-layer forward GEMM time, attention-core time, elementwise time) of one micro-batch on one GPU.

    Fused (flash) attention runs the causal half of the scores at η_attention; unfused attention runs the
    full score matrix as batched GEMMs and streams it through memory SCORE_PASSES times.
    """
    gemm = attn = elem = 0.0
    T = max(seq // cp, 1)
    for layer, n in s.layer_kinds:
        for op in layer_ops(s, layer, B=b, T=T, attention="causal" if flash else "dense"):
            x = op.flops.inputs
            if op.name.startswith(("attention.scores", "attention.values")):
                if flash:
                    attn += n * op.flops.value / tp / (eff.attention * peak)
                else:  # batched GEMMs at the GEMM rate; the s² traffic below is what makes them slow
                    attn += n * op.flops.value / tp / (eff.gemm * peak)
                    attn += n * SCORE_PASSES / 2 * b * s.n_heads / tp * T * T * 2 / (
                        eff.bw * hw.memory_bandwidth_bytes_per_s)
                continue
            shard = ep if op.name.startswith("moe.experts") else tp
            eta = eff.gemm_efficiency(max(x["d_out"] / shard, 1), x["d_in"])
            gemm += n * op.flops.value / shard / (eta * peak)
        d_ff = layer.d_ff if layer.mlp == "dense" else s.moe.experts_per_token * s.moe.d_moe  # type: ignore[union-attr]
        elem += n * b * T * 2 * (14 * s.d_model + 4 * d_ff / tp) / (eff.bw * hw.memory_bandwidth_bytes_per_s)
    head = 2 * b * T * s.d_model * s.vocab_size / tp / (eff.gemm_efficiency(s.vocab_size / tp, s.d_model) * peak)
    return gemm + head, attn, elem


def plan_training(s: ModelSpec, hw: HardwareSpec, layout: Layout, *, global_batch: int, seq: int,
                  eff: Efficiency = MID, precision: str = "bf16", optimizer: str = "adamw",
                  trainable: int | None = None, frozen_bytes_per_param: float = 2.0,
                  flash_attention: bool = True) -> TrainResult:
    """Memory per GPU and step time of one optimizer step of `global_batch` sequences of `seq` tokens."""
    L = layout
    if optimizer not in OPTIMIZERS:
        raise TmathError("optimizer", optimizer, f"one of {', '.join(OPTIMIZERS)}")
    if global_batch % (L.dp * L.micro_batch):
        raise TmathError("global_batch", global_batch, f"a multiple of D_p·b = {L.dp}·{L.micro_batch}")
    if s.n_layers % L.pp:
        raise TmathError("pp", L.pp, f"a divisor of N_L = {s.n_layers}")
    m = global_batch // (L.dp * L.micro_batch)
    params = params_breakdown(s)
    P = int(params.value)
    groups = by_group(params)
    P_exp = groups.get("experts", 0)
    P_gpu = (P - P_exp) / (L.tp * L.pp) + P_exp / (L.ep * L.pp)
    P_train = P if trainable is None else trainable
    train_gpu = P_gpu * P_train / P
    b_m, b_v = OPTIMIZERS[optimizer]
    master = 4  # fp32 master weights in mixed precision, whatever the optimizer
    shard_opt = L.dp if L.zero >= 1 else 1
    shard_grad = L.dp if L.zero >= 2 else 1
    shard_w = L.dp if L.zero >= 3 else 1
    frozen = (P_gpu - train_gpu) * frozen_bytes_per_param
    mem = {
        "weights": int(train_gpu * 2 / shard_w + frozen),
        "gradients": int(train_gpu * 2 / shard_grad),
        "optimizer": int(train_gpu * (master + b_m + b_v) / shard_opt),
    }
    act = activation_bytes(s, B=L.micro_batch, T=max(seq // L.cp, 1), recompute=L.recompute, profile="fused")
    per_layer = (act.value - act.children[-1].value - act.children[-2].value) / s.n_layers
    tp_div = L.tp if L.sequence_parallel else math.sqrt(L.tp)  # without SP norms and residuals stay replicated
    in_flight = min(L.pp, m) * (1 + (L.pp - 1) / (L.pp * L.interleave)) if L.pp > 1 else 1
    mem["activations"] = int(per_layer * s.n_layers / L.pp / tp_div * in_flight)
    reserve = int(0.05 * hw.memory_bytes) + 2**30
    mem["reserve"] = reserve
    total_mem = sum(mem.values())

    peak = hw.peak("fp8" if precision == "fp8" else "bf16")
    gemm, attn, elem = _gemm_time(s, hw, eff, b=L.micro_batch, seq=seq, tp=L.tp, cp=L.cp, ep=L.ep, peak=peak,
                                  flash=flash_attention)
    if precision == "fp8":
        gemm *= 1.1  # per-tensor scaling and casts around each FP8 GEMM (Transformer Engine): about 10 %
    stage = 1 / L.pp
    fwd = (gemm + attn + elem) * stage
    recompute = {"none": 0.0, "selective": attn * stage, "full": fwd}[L.recompute]
    t_mb = 3 * fwd + recompute
    link = hw.link_bandwidth_bytes_per_s * eff.link
    nic = hw.nic_bandwidth_bytes_per_s * eff.nic
    bw_tp, a_tp = bus(hw, eff, L.tp * L.cp)
    act_msg = L.micro_batch * (seq // L.cp) * s.d_model * 2
    n_ar = (4 + 2 * (L.recompute == "full")) * s.n_layers / L.pp
    t_tp = n_ar * comm.all_reduce_ring(n=L.tp, α=a_tp, S=act_msg, BW=bw_tp)
    t_cp = 3 * s.n_layers / L.pp * comm.all_gather(n=L.cp, α=a_tp, S=2 * act_msg * s.kv_dim / s.d_model * L.cp,
                                                  BW=bw_tp)
    t_ep = 0.0
    if L.ep > 1 and s.moe:
        a2a = comm.all_to_all(n=L.ep, α=eff.alpha_link_s, S=act_msg * s.moe.experts_per_token, BW=link)
        t_ep = 2 * 3 * s.n_moe_layers / L.pp * a2a  # dispatch + combine, forward and backward
    t_mb_total = t_mb + t_tp + t_cp + t_ep
    bubble = (L.pp - 1) / L.interleave * t_mb_total
    pp_cross = L.tp * L.cp * L.pp > hw.gpus_per_node
    t_p2p = 2 * m * comm.p2p(α=eff.alpha_nic_s, S=act_msg / (L.tp if L.sequence_parallel else 1),
                             BW=nic if pp_cross else link) if L.pp > 1 else 0.0
    bw_dp, a_dp = bus(hw, eff, L.gpus)
    grad_bytes = train_gpu * 2
    if L.zero >= 3:  # FSDP: gather weights for forward and backward, reduce-scatter gradients, every micro-batch
        t_dp = m * 3 * comm.all_gather(n=L.dp, α=a_dp, S=P_gpu * 2, BW=bw_dp)
    else:
        t_dp = comm.all_reduce_ring(n=L.dp, α=a_dp, S=grad_bytes, BW=bw_dp)
    compute_total = m * t_mb_total
    exposed_dp = max(t_dp - eff.overlap * compute_total, (1 - eff.overlap) * t_dp)
    t_opt = train_gpu / shard_opt * (2 + 2 + 2 * (master + b_m + b_v)) / (eff.bw * hw.memory_bandwidth_bytes_per_s)
    step = compute_total + bubble + t_p2p + exposed_dp + t_opt
    tokens = global_batch * seq
    model_flops = palm_model_flops_per_token(s, P, seq) * tokens
    hw_flops = model_flops * (4 / 3 if L.recompute == "full" else 1.0)
    time = {"compute": m * t_mb, "tp_comm": m * t_tp, "cp_comm": m * t_cp, "ep_comm": m * t_ep, "pipeline_bubble": bubble,
            "pp_p2p": t_p2p, "dp_comm_exposed": exposed_dp, "optimizer": t_opt}
    n = L.gpus
    return TrainResult(layout=L, fits=total_mem <= hw.memory_bytes, memory_per_gpu_bytes=total_mem, memory=mem,
                       step_time_s=step, time=time, model_flops_per_step=model_flops,
                       hardware_flops_per_step=hw_flops, tokens_per_step=tokens,
                       mfu=model_flops / (step * n * hw.peak("bf16")), hfu=hw_flops / (step * n * hw.peak("bf16")),
                       tflops_per_gpu=model_flops / (step * n) / 1e12, tokens_per_s=tokens / step, micro_batches=m)
