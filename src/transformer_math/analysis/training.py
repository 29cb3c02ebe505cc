"""Training step model: memory per GPU, step time with TP/PP/DP/CP/EP and ZeRO, MFU/HFU, time and cost.

Per micro-batch of b sequences of s tokens, one GPU runs its pipeline stage's share of the layers (N_L/P_p),
its tensor-parallel shard (1/T_p of every GEMM) and its context-parallel share of the sequence (1/C_p).
Forward GEMMs are timed with the efficiency model's shape-dependent η; backward costs two forwards (one
when weights are frozen, as in LoRA); recompute adds the forward again (full) or the attention core
(selective). The arithmetic after the GEMM timing works on numpy arrays, so one call evaluates every layout
of a search at once; a single plan is the same call on 0-d arrays.

Stated assumptions: DP gradient and FSDP traffic overlaps compute by η_overlap; TP and CP collectives do
not overlap (Megatron-LM's default); the 1F1B schedule keeps min(P_p, m) micro-batches in flight on the
first stage, interleaving (v chunks) divides the bubble (P_p − 1)/(v·m) by v.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from transformer_math.analysis.efficiency import MID, Efficiency
from transformer_math.analysis.flops import layer_ops
from transformer_math.analysis.memory import activation_bytes
from transformer_math.analysis.params import by_group, params_breakdown
from transformer_math.config.hardware import HardwareSpec
from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError
from transformer_math.formulas import comm

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Bytes per trainable parameter of optimizer state (seed 000 §7: b_m, b_v); fp32 master weights (4) come on top.
OPTIMIZERS = {"adamw": (4, 4), "adam8bit": (1, 1), "sgd": (4, 0), "adafactor": (0, 0)}
RECOMPUTE = ("none", "selective", "full")
SCORE_PASSES = 6  # unfused attention: scale+mask, softmax, dropout each read and write the b·h·s² scores
FP8_OVERHEAD = 1.10  # casts and per-tensor scaling around each FP8 GEMM (Transformer Engine), about 10 %


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """A parallel layout (seed 000 §9: D_p, T_p, P_p, C_p, E_p) and its schedule."""

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


@dataclass(frozen=True, kw_only=True, slots=True)
class Finetune:
    """What is trained: 'full', or LoRA adapters of rank r on target modules (QLoRA: 4-bit NF4 base)."""

    mode: str = "full"  # full | lora | qlora
    rank: int = 16
    alpha: int = 32
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


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
    trainable_params: int


def palm_model_flops_per_token(s: ModelSpec, P: int, seq: int) -> float:
    """6·N + 12·N_L·h_q·d_h·s (PaLM App. B): FLOPs per token, attention not discounted, recompute not counted."""
    return 6 * P + 12 * s.n_layers * s.n_heads * s.head_dim * seq


LORA_SHAPES = {  # module name → (d_in, d_out) from the spec
    "q_proj": lambda s, l: (s.d_model, s.n_heads * s.head_dim),
    "k_proj": lambda s, l: (s.d_model, s.kv_dim),
    "v_proj": lambda s, l: (s.d_model, s.kv_dim),
    "o_proj": lambda s, l: (s.n_heads * s.head_dim, s.d_model),
    "gate_proj": lambda s, l: (s.d_model, l.d_ff),
    "up_proj": lambda s, l: (s.d_model, l.d_ff),
    "down_proj": lambda s, l: (l.d_ff, s.d_model),
}


def lora_params(s: ModelSpec, rank: int, targets: tuple[str, ...]) -> int:
    """Σ over targeted linears of r·(d_in + d_out): PEFT's lora_A (r×d_in) and lora_B (d_out×r).

    In MoE layers only shared experts are nn.Linear modules (routed experts are 3-D parameter tensors PEFT
    does not wrap); MLA projections have other names and are not targeted by these names. Checked against
    PEFT's get_peft_model in tests/test_perf_crosscheck.py.
    """
    bad = [t for t in targets if t not in LORA_SHAPES]
    if bad:
        raise TmathError("lora targets", bad, f"module names among {', '.join(LORA_SHAPES)}")
    if s.mla is not None or s.family == "gpt2":
        raise TmathError("finetune", s.family, "LoRA counts for llama-layout projections (q/k/v/o, gate/up/down)")
    total = 0
    for layer, n in s.layer_kinds:
        mlp = layer
        if layer.mlp != "dense":  # only shared experts are nn.Linear modules in MoE layers
            mlp = replace(layer, d_ff=s.moe.shared_width) if s.moe and s.moe.n_shared else None
        for t in targets:
            if t in ("gate_proj", "up_proj", "down_proj") and (mlp is None or s.n_up != 2):
                continue
            d_in, d_out = LORA_SHAPES[t](s, mlp or layer)
            total += n * rank * (d_in + d_out)
    return total


@lru_cache(maxsize=4096)
def _forward_times(s: ModelSpec, hw: HardwareSpec, eff: Efficiency, b: int, T: int, tp: int, ep: int, peak: float,
                   flash: bool) -> tuple[float, float, float]:
    """(GEMM, attention core, elementwise) seconds of one all-layer forward of b×T tokens on one GPU.

    Fused (flash) attention runs the causal half of the scores at η_attention; unfused attention runs the
    full score matrix as batched GEMMs and streams it through memory SCORE_PASSES times.
    """
    gemm = attn = elem = 0.0
    bw = eff.bw * hw.memory_bandwidth_bytes_per_s
    for layer, n in s.layer_kinds:
        for op in layer_ops(s, layer, B=b, T=T, attention="causal" if flash else "dense"):
            x = op.flops.inputs
            if op.name.startswith(("attention.scores", "attention.values")):
                if flash:
                    attn += n * op.flops.value / tp / (eff.attention * peak)
                else:
                    attn += n * op.flops.value / tp / (eff.gemm * peak)
                    attn += n * SCORE_PASSES / 2 * b * s.n_heads / tp * T * T * 2 / bw
                continue
            shard = ep if op.name.startswith("moe.experts") else tp
            gemm += n * op.flops.value / shard / (eff.gemm_efficiency(max(x["d_out"] / shard, 1), x["d_in"]) * peak)
        d_ff = layer.d_ff if layer.mlp == "dense" else s.moe.experts_per_token * s.moe.d_moe  # type: ignore[union-attr]
        elem += n * b * T * 2 * (14 * s.d_model + 4 * d_ff / tp) / bw
    gemm += 2 * b * T * s.d_model * s.vocab_size / tp / (eff.gemm_efficiency(s.vocab_size / tp, s.d_model) * peak)
    return gemm, attn, elem


def _activation_per_layer(s: ModelSpec, b: int, T: int, recompute: str) -> float:
    act = activation_bytes(s, B=b, T=T, recompute=recompute, profile="fused")
    return (act.value - act.children[-1].value - act.children[-2].value) / s.n_layers


def evaluate(s: ModelSpec, hw: HardwareSpec, *, tp: Any, pp: Any, dp: Any, cp: Any, ep: Any, mb: Any, rec: Any,
             zero: Any, sp: Any = True, interleave: Any = 1, global_batch: int, seq: int, eff: Efficiency = MID,
             precision: str = "bf16", optimizer: str = "adamw", finetune: Finetune = Finetune(),
             flash_attention: bool = True) -> dict[str, Any]:
    """Memory and time of one optimizer step for arrays of layouts (broadcast together); rec: 0/1/2 index."""
    import numpy as np

    tp, pp, dp, cp, ep, mb, rec, zero, sp, v = np.broadcast_arrays(*(np.asarray(a) for a in (
        tp, pp, dp, cp, ep, mb, rec, zero, sp, interleave)))
    params = params_breakdown(s)
    P = int(params.value)
    P_exp = by_group(params).get("experts", 0)
    P_gpu = (P - P_exp) / (tp * pp) + P_exp / (ep * pp)
    trainable = P if finetune.mode == "full" else lora_params(s, finetune.rank, finetune.targets)
    train_gpu = P_gpu * trainable / P
    b_m, b_v = OPTIMIZERS[optimizer]
    frozen_b = {"full": 0.0, "lora": 2.0, "qlora": 4.127 / 8}[finetune.mode]  # NF4 + double-quantized absmax
    master = 4 if finetune.mode == "full" else 0  # adapters train in fp32 directly
    w_b = 2 if finetune.mode == "full" else 4
    m = global_batch / (dp * mb)
    mem_w = train_gpu * w_b / np.where(zero >= 3, dp, 1) + (P_gpu - train_gpu) * frozen_b
    mem_g = train_gpu * w_b / np.where(zero >= 2, dp, 1)
    mem_o = train_gpu * (master + b_m + b_v) / np.where(zero >= 1, dp, 1)
    T = np.maximum(seq // cp, 1)
    act_layer = np.zeros(tp.shape)
    gemm = np.zeros(tp.shape)
    attn = np.zeros(tp.shape)
    elem = np.zeros(tp.shape)
    peak = hw.peak("fp8" if precision == "fp8" else "bf16")
    for key in set(zip(mb.ravel().tolist(), T.ravel().tolist(), tp.ravel().tolist(), ep.ravel().tolist(),
                       rec.ravel().tolist())):
        b_, T_, tp_, ep_, r_ = key
        where = (mb == b_) & (T == T_) & (tp == tp_) & (ep == ep_) & (rec == r_)
        g, a, e = _forward_times(s, hw, eff, b_, T_, tp_, ep_, peak, flash_attention)
        gemm[where], attn[where], elem[where] = g, a, e
        act_layer[where] = _activation_per_layer(s, b_, T_, RECOMPUTE[r_])
    if precision == "fp8":
        gemm = gemm * FP8_OVERHEAD
    if finetune.mode == "qlora":  # every use of a frozen 4-bit weight dequantizes it first (fwd, bwd, recompute)
        gemm = gemm + P_gpu * eff.dequant_ops / hw.peak("fp32") * 2
    tp_div = np.where(sp, tp, np.sqrt(tp))  # without SP, norms and residuals stay replicated on TP ranks
    in_flight = np.where(pp > 1, np.minimum(pp, m) * (1 + (pp - 1) / (pp * v)), 1)
    mem_a = act_layer * s.n_layers / pp / tp_div * in_flight
    reserve = 0.05 * hw.memory_bytes + 2**30
    mem_total = mem_w + mem_g + mem_o + mem_a + reserve

    fwd = (gemm + attn + elem) / pp
    backward = np.where(finetune.mode == "full", 2.0, 1.0)  # frozen weights: dL/dX only
    recompute = np.select([rec == 1, rec == 2], [attn / pp, fwd], 0.0)
    t_mb = (1 + backward) * fwd + recompute
    link = hw.link_bandwidth_bytes_per_s * eff.link
    node_bw = np.minimum(link, hw.gpus_per_node * hw.nic_bandwidth_bytes_per_s * eff.nic)

    def bus(ranks: Any) -> tuple[Any, Any]:
        inside = ranks <= hw.gpus_per_node
        return np.where(inside, link, node_bw), np.where(inside, eff.alpha_link_s, eff.alpha_nic_s)

    act_msg = mb * T * s.d_model * 2
    bw_tp, a_tp = bus(tp * cp)
    n_ar = (4 + 2 * (rec == 2)) * s.n_layers / pp
    t_tp = n_ar * comm.all_reduce_ring(n=tp, α=a_tp, S=act_msg, BW=bw_tp)
    t_cp = 3 * s.n_layers / pp * comm.all_gather(n=cp, α=a_tp, S=2 * act_msg * s.kv_dim / s.d_model * cp, BW=bw_tp)
    t_ep = np.zeros(tp.shape)
    if s.moe is not None:
        a2a = comm.all_to_all(n=ep, α=eff.alpha_link_s, S=act_msg * s.moe.experts_per_token, BW=link)
        t_ep = 2 * 3 * s.n_moe_layers / pp * a2a  # dispatch + combine, forward and backward
    t_mb_total = t_mb + t_tp + t_cp + t_ep
    bubble = (pp - 1) / v * t_mb_total
    nic = hw.nic_bandwidth_bytes_per_s * eff.nic
    pp_bw = np.where(tp * cp * pp > hw.gpus_per_node, nic, link)
    t_p2p = np.where(pp > 1, 2 * m * comm.p2p(α=eff.alpha_nic_s, S=act_msg / np.where(sp, tp, 1), BW=pp_bw), 0.0)
    bw_dp, a_dp = bus(tp * pp * dp * cp)
    t_dp = np.where(zero >= 3, m * 3 * comm.all_gather(n=dp, α=a_dp, S=P_gpu * 2, BW=bw_dp),
                    comm.all_reduce_ring(n=dp, α=a_dp, S=train_gpu * w_b, BW=bw_dp))
    compute_total = m * t_mb_total
    exposed_dp = np.maximum(t_dp - eff.overlap * compute_total, (1 - eff.overlap) * t_dp)
    t_opt = train_gpu / np.where(zero >= 1, dp, 1) * (2 * w_b + 2 * (master + b_m + b_v)) / (
        eff.bw * hw.memory_bandwidth_bytes_per_s)
    step = compute_total + bubble + t_p2p + exposed_dp + t_opt
    tokens = global_batch * seq
    # PaLM's 6N + 12·N_L·h_q·d_h·s counts forward (1/3) and backward (2/3); frozen weights skip dL/dW (1/3)
    palm = palm_model_flops_per_token(s, P, seq) * tokens
    attn_fwd = 4 * s.n_layers * s.n_heads * s.head_dim * seq * tokens
    model_flops = palm * (1 + backward) / 3
    hw_flops = model_flops + np.select([rec == 2, rec == 1], [palm / 3, attn_fwd], 0.0)
    n = tp * pp * dp * cp
    return {
        "memory": {"weights": mem_w, "gradients": mem_g, "optimizer": mem_o, "activations": mem_a,
                   "reserve": np.full(tp.shape, reserve)},
        "memory_total": mem_total, "fits": mem_total <= hw.memory_bytes,
        "time": {"compute": m * t_mb, "tp_comm": m * t_tp, "cp_comm": m * t_cp, "ep_comm": m * t_ep,
                 "pipeline_bubble": bubble, "pp_p2p": t_p2p, "dp_comm_exposed": exposed_dp, "optimizer": t_opt},
        "step": step, "micro_batches": m, "trainable": trainable, "tokens": tokens, "model_flops": model_flops,
        "hw_flops": hw_flops, "mfu": model_flops / (step * n * hw.peak("bf16")),
        "hfu": hw_flops / (step * n * hw.peak("bf16")), "tflops_per_gpu": model_flops / (step * n) / 1e12,
        "tokens_per_s": tokens / step,
    }


def plan_training(s: ModelSpec, hw: HardwareSpec, layout: Layout, *, global_batch: int, seq: int,
                  eff: Efficiency = MID, precision: str = "bf16", optimizer: str = "adamw",
                  finetune: Finetune = Finetune(), flash_attention: bool = True) -> TrainResult:
    """Memory per GPU and step time of one optimizer step of `global_batch` sequences of `seq` tokens."""
    L = layout
    if optimizer not in OPTIMIZERS:
        raise TmathError("optimizer", optimizer, f"one of {', '.join(OPTIMIZERS)}")
    if L.recompute not in RECOMPUTE:
        raise TmathError("recompute", L.recompute, "none, selective or full")
    if precision not in ("bf16", "fp8"):
        raise TmathError("precision", precision, "bf16 or fp8")
    if global_batch % (L.dp * L.micro_batch):
        raise TmathError("global_batch", global_batch, f"a multiple of D_p·b = {L.dp}·{L.micro_batch}")
    if L.pp > s.n_layers:
        raise TmathError("pp", L.pp, f"at most N_L = {s.n_layers} stages")
    if s.n_heads % L.tp:
        raise TmathError("tp", L.tp, f"a divisor of h_q = {s.n_heads}")
    if seq % L.cp:
        raise TmathError("cp", L.cp, f"a divisor of the sequence length {seq}")
    r = evaluate(s, hw, tp=L.tp, pp=L.pp, dp=L.dp, cp=L.cp, ep=L.ep, mb=L.micro_batch,
                 rec=RECOMPUTE.index(L.recompute), zero=L.zero, sp=L.sequence_parallel, interleave=L.interleave,
                 global_batch=global_batch, seq=seq, eff=eff, precision=precision, optimizer=optimizer,
                 finetune=finetune, flash_attention=flash_attention)
    f = float
    return TrainResult(layout=L, fits=bool(r["fits"]), memory_per_gpu_bytes=int(r["memory_total"]),
                       memory={k: int(v) for k, v in r["memory"].items()}, step_time_s=f(r["step"]),
                       time={k: f(v) for k, v in r["time"].items()}, model_flops_per_step=f(r["model_flops"]),
                       hardware_flops_per_step=f(r["hw_flops"]), tokens_per_step=int(r["tokens"]), mfu=f(r["mfu"]),
                       hfu=f(r["hfu"]), tflops_per_gpu=f(r["tflops_per_gpu"]), tokens_per_s=f(r["tokens_per_s"]),
                       micro_batches=int(r["micro_batches"]), trainable_params=int(r["trainable"]))


def search_layouts(s: ModelSpec, hw: HardwareSpec, *, gpus: int, global_batch: int, seq: int, eff: Efficiency = MID,
                   precision: str = "bf16", optimizer: str = "adamw", finetune: Finetune = Finetune(),
                   top: int = 10) -> tuple[list[tuple[Layout, dict[str, float]]], int, float]:
    """Every TP × PP × DP × CP × EP × micro-batch × recompute × ZeRO layout of `gpus` GPUs, evaluated at once.

    Returns the `top` fastest layouts that fit, the number of layouts evaluated and the seconds it took.
    """
    import time

    import numpy as np

    t0 = time.perf_counter()
    pows = [2**i for i in range(0, 20) if 2**i <= gpus]
    tps = [t for t in pows if s.n_heads % t == 0 and t <= 2 * hw.gpus_per_node]
    pps = [p for p in pows if p <= s.n_layers]
    cps = [c for c in pows if seq % c == 0 and seq // c >= 512]
    eps = [e for e in pows if s.moe and s.moe.n_experts % e == 0] if s.moe else [1]
    grid = np.array(np.meshgrid(tps, pps, cps, eps, [1, 2, 4, 8, 16], [0, 1, 2], [1, 3], indexing="ij")).reshape(7, -1)
    tp, pp, cp, ep, mb, rec, zero = grid
    dp = gpus // (tp * pp * cp)
    ok = (tp * pp * cp * dp == gpus) & (dp > 0) & (ep <= dp * tp) & (global_batch % np.maximum(dp * mb, 1) == 0)
    tp, pp, cp, ep, mb, rec, zero, dp = (a[ok] for a in (tp, pp, cp, ep, mb, rec, zero, dp))
    if tp.size == 0:
        return [], 0, time.perf_counter() - t0
    r = evaluate(s, hw, tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, mb=mb, rec=rec, zero=zero, global_batch=global_batch,
                 seq=seq, eff=eff, precision=precision, optimizer=optimizer, finetune=finetune)
    step = np.where(r["fits"], r["step"], np.inf)
    order = np.argsort(step)[:top]
    out = []
    for i in order:
        if not np.isfinite(step[i]):
            break
        lay = Layout(tp=int(tp[i]), pp=int(pp[i]), dp=int(dp[i]), cp=int(cp[i]), ep=int(ep[i]), micro_batch=int(mb[i]),
                     recompute=RECOMPUTE[int(rec[i])], zero=int(zero[i]))
        out.append((lay, {"step_time_s": float(r["step"][i]), "mfu": float(r["mfu"][i]),
                          "memory_per_gpu_bytes": float(r["memory_total"][i])}))
    return out, int(tp.size), time.perf_counter() - t0
