"""train() and search(): the training plan of a layout, the layouts that fit, and the nearest changes that fit."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, replace

from transformer_math.analysis.efficiency import Efficiency
from transformer_math.analysis.plans_common import Suggestion, _check_count, _model, _quantities, _Result
from transformer_math.analysis.train_search import search_layouts
from transformer_math.analysis.training import RECOMPUTE, Finetune, Layout, TrainPlan, Workload, plan_training, validate
from transformer_math.config.hardware import HardwareSpec, load_hardware
from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SUGGESTION_SEARCH_S = 2.0  # layout searches that look for a plan that fits, all together
MFU_CONVENTION = ("MFU = model FLOPs / (t_step·n_GPU·F_peak,bf16); model FLOPs = the step's required work: 3× the "
                  "forward (routed experts only, attention over unmasked pairs), no recomputation. HFU adds what is "
                  "recomputed. mfu_palm uses PaLM's 6·P_active + 12·N_L·h_q·d_h·s per token (every query–key pair), "
                  "the convention of most published MFUs.")
MFU_FINETUNE = ("Fine-tuning (LoRA/QLoRA): frozen weights need no weight gradient, so model FLOPs = 2× the matmul "
                "forward (forward + dL/dX, ≈ 4·N per token) + 3× attention + 3× the adapters; no PaLM figure.")


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainResult(_Result):
    plan: TrainPlan
    _prefix = "train"

    def to_dict(self) -> dict[str, Any]:
        p, L, w = self.plan, self.plan.layout, self.plan.workload
        ok, q = p.fits, p.quantities

        def get(k: str) -> Any:
            return q[k].value if k in q else 0.0  # a zero term is dropped from its sum

        memory = {k: int(get(f"memory.{k}")) for k in ("weights", "gradients", "optimizer", "activations", "reserve")}
        time = {k: get(f"time.{k}") for k in ("compute", "tp", "cp", "ep", "pp")}
        time_step = {"microbatches": p["train.micro_batches"] * p["time.microbatch"], "bubble": get("train.bubble"),
                     "dp_exposed": get("train.dp"), "optimizer": get("train.optimizer")}
        tflops = p["train.model_flops"] / (p["train.step_time"] * L.gpus) / 1e12
        out: dict[str, Any] = {
            "model": p.model, "gpu": p.gpu, "gpus": L.gpus,
            "layout": {k: getattr(L, k) for k in ("tp", "pp", "dp", "cp", "ep", "micro_batch", "recompute", "zero",
                                                  "sequence_parallel", "interleave", "schedule")},
            "global_batch": w.global_batch, "seq": w.seq, "precision": w.precision, "optimizer": w.optimizer,
            "finetune": w.finetune.mode, "micro_batches": p["train.micro_batches"],
            "fits": ok, "memory_per_gpu_bytes": int(p["memory.per_gpu"]), "memory_bytes": self.hardware.memory_bytes,
            "over_bytes": max(0, int(p["train.over"])), "memory": memory, "memory_stage": p.memory_stage,
            "time_stage": p.time_stage,
            "step_time_s": p["train.step_time"] if ok else None,
            "time_per_microbatch": time if ok else None, "time_per_step": time_step if ok else None,
            "tokens_per_s": p["train.tokens_per_s"] if ok else None, "tflops_per_gpu": tflops if ok else None,
            "band": _train_band(self.hardware, p["train.tokens_per_s"]) if ok else None,
            "profile": self.hardware.id if self.hardware.efficiency else (self.hardware.device_class or "default"),
            "mfu": p["train.mfu"] if ok else None, "hfu": p["train.hfu"] if ok else None,
            "mfu_palm": q["train.mfu_palm"].value if ok and "train.mfu_palm" in q else None,
            "mfu_convention": MFU_FINETUNE if w.finetune.mode != "full" else MFU_CONVENTION,
            "trainable_params": p.trainable_params,
            "tokens": p.tokens, "price": p.price,
            "days": q["train.days"].value if ok and "train.days" in q else None,
            "cost_usd": q["train.cost"].value if ok and "train.cost" in q else None,
            "command": self.command, "suggestions": [x.to_dict() for x in self.suggestions],
            "quantities": _quantities(q),
        }
        return out


def _train_band(hw: HardwareSpec, tokens_per_s: float) -> dict[str, list[float]]:
    """The calibration runs' 10th–90th percentile of measured/predicted throughput around this prediction."""
    from transformer_math.analysis.efficiency import band_for

    b = band_for(hw, "training")
    return {"tokens_per_s": [tokens_per_s * b.low, tokens_per_s, tokens_per_s * b.high]}


def _layout_args(L: Layout) -> dict[str, Any]:
    return {k: getattr(L, k) for k in ("tp", "pp", "dp", "cp", "ep", "micro_batch", "recompute", "zero",
                                       "sequence_parallel", "interleave", "schedule")}


def train_command(ref: str, gpu: str, L: Layout, w: Workload, *, tokens: float = 0.0, price: float = 0.0) -> str:
    """The full `tmath train …` line: every choice that changes the plan, so its --json gives the same numbers."""
    parts = ["tmath", "train", ref, "--gpu", gpu, "--gpus", str(L.gpus)]
    for k, v in _layout_args(L).items():
        if k == "sequence_parallel":
            parts.append("--sequence-parallel" if v else "--no-sequence-parallel")
        else:
            parts += [f"--{k.replace('_', '-')}", str(v)]
    parts += ["--global-batch", str(w.global_batch), "--seq", str(w.seq), "--precision", w.precision,
              "--optimizer", w.optimizer, "--finetune", w.finetune.mode]
    if w.finetune.mode != "full":
        parts += ["--lora-rank", str(w.finetune.rank), "--lora-targets", ",".join(w.finetune.targets)]
    if not w.flash_attention:
        parts.append("--no-flash-attention")
    if tokens:
        parts += ["--tokens", f"{tokens:g}", "--price", f"{price:g}"]
    return shlex.join(parts)


def _workload(s: ModelSpec, *, global_batch: int, seq: int, precision: str, optimizer: str, finetune: str,
              lora_rank: int, lora_targets: str | tuple[str, ...], flash_attention: bool) -> Workload:
    _check_count("lora_rank", lora_rank, 1, 65536, integer=True)
    targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip()) if isinstance(lora_targets, str) else (
        tuple(lora_targets))
    return Workload(global_batch=global_batch, seq=seq, precision=precision, optimizer=optimizer,
                    finetune=Finetune(mode=finetune, rank=lora_rank, targets=targets), flash_attention=flash_attention)


def train(model: Any, gpu: Any, *, global_batch: int, seq: int = 4096, gpus: int | None = None, tp: int = 1,
          pp: int = 1, dp: int | None = None, cp: int = 1, ep: int = 1, micro_batch: int = 1, recompute: str = "none",
          zero: int = 1, sequence_parallel: bool | None = None, interleave: int = 1, schedule: str = "1f1b",
          precision: str = "bf16", optimizer: str = "adamw", finetune: str = "full", lora_rank: int = 16,
          lora_targets: str | tuple[str, ...] = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
          flash_attention: bool = True, tokens: float = 0.0, price: float = 2.0, efficiency: Efficiency | None = None,
          suggest: bool = True) -> TrainResult:
    """Training plan: one optimizer step of `global_batch` sequences of `seq` tokens on T_p·P_p·D_p·C_p GPUs.
    D_p defaults to gpus/(T_p·P_p·C_p); sequence parallelism defaults to on when T_p > 1."""
    s, ref = _model(model)
    hw = load_hardware(gpu)
    _check_count("tokens", tokens, 0, 1e18)
    _check_count("price", price, 0, 1e6)
    if dp is None:
        if gpus is None:
            raise TmathError("gpus", None, "the GPU count, or --dp")
        dp, left = divmod(gpus, tp * pp * cp)
        if left or dp < 1:
            raise TmathError("gpus", gpus, f"a multiple of T_p·P_p·C_p = {tp}·{pp}·{cp} = {tp * pp * cp}")
    L = Layout(tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, micro_batch=micro_batch, recompute=recompute, zero=zero,
               sequence_parallel=tp > 1 if sequence_parallel is None else sequence_parallel, interleave=interleave,
               schedule=schedule)
    if gpus is not None and L.gpus != gpus:
        raise TmathError("gpus", gpus, f"= T_p·P_p·D_p·C_p = {tp}·{pp}·{dp}·{cp} = {L.gpus}")
    w = _workload(s, global_batch=global_batch, seq=seq, precision=precision, optimizer=optimizer, finetune=finetune,
                  lora_rank=lora_rank, lora_targets=lora_targets, flash_attention=flash_attention)
    plan = plan_training(s, hw, L, w, eff=efficiency, tokens=tokens, price=price)
    result = TrainResult(plan=plan, hardware=hw, command=train_command(ref, hw.id, L, w, tokens=tokens, price=price))
    if plan.fits or not suggest:
        return result
    return replace(result, suggestions=tuple(_train_suggestions(s, ref, hw, L, w, efficiency, tokens, price)))


def _train_suggestions(s: ModelSpec, ref: str, hw: HardwareSpec, L: Layout, w: Workload, eff: Efficiency | None,
                       tokens: float, price: float) -> list[Suggestion]:
    """Nearby layouts that fit, fastest first: FSDP, recomputation, sequence parallelism, a smaller micro-batch,
    more tensor/pipeline/context parallelism on the same GPUs, more GPUs, shorter sequences."""
    tries: list[tuple[str, Layout, Workload]] = []
    if L.zero < 3 and L.dp * L.cp > 1:
        tries.append(("--zero 3 (FSDP)", replace(L, zero=3), w))
    for r in RECOMPUTE[RECOMPUTE.index(L.recompute) + 1:]:
        tries.append((f"--recompute {r}", replace(L, recompute=r), w))
    if L.tp > 1 and not L.sequence_parallel:
        tries.append(("--sequence-parallel", replace(L, sequence_parallel=True), w))
    if L.micro_batch > 1:
        tries.append(("--micro-batch 1", replace(L, micro_batch=1), w))
    for name in ("tp", "pp", "cp"):
        for f in (2, 4, 8):
            if L.dp % f == 0:
                lay = replace(L, dp=L.dp // f, **{name: getattr(L, name) * f})
                if name == "tp":
                    lay = replace(lay, sequence_parallel=True)
                tries.append((f"--{name} {getattr(lay, name)} --dp {lay.dp}", lay, w))
    for f in (2, 4, 8):
        tries.append((f"--gpus {L.gpus * f} (D_p = {L.dp * f}, FSDP)", replace(L, dp=L.dp * f, zero=3),
                      replace(w, global_batch=w.global_batch * f) if w.global_batch % (L.dp * f * L.micro_batch)
                      else w))
    if w.seq >= 1024:
        tries.append((f"--seq {w.seq // 2}", L, replace(w, seq=w.seq // 2)))
    out = []
    for change, lay, wl in tries:
        try:
            validate(s, lay, wl)
            p = plan_training(s, hw, lay, wl, eff=eff, tokens=tokens, price=price)
        except TmathError:
            continue
        if p.fits:
            out.append(Suggestion(change=change, command=train_command(ref, hw.id, lay, wl, tokens=tokens, price=price),
                                  memory_per_gpu_bytes=int(p["memory.per_gpu"]),
                                  values={"step_time_s": p["train.step_time"], "mfu": p["train.mfu"],
                                          "tokens_per_s": p["train.tokens_per_s"]}))
    out = sorted(out, key=lambda x: x.values["step_time_s"])[:6]
    deadline = time.perf_counter() + SUGGESTION_SEARCH_S
    if len(out) < 3:  # no single change is enough: the fastest layouts that fit, on these GPUs or on more
        for n in (L.gpus, 2 * L.gpus, 4 * L.gpus, 8 * L.gpus, 16 * L.gpus):
            left = deadline - time.perf_counter()
            if left <= 0 or n > 65536:
                break
            try:
                rows, _, _ = search_layouts(s, hw, w, gpus=n, eff=eff, top=3 - len(out), time_limit_s=left)
            except TmathError:  # out of time: the suggestions so far
                break
            for row in rows:
                out.append(Suggestion(change=f"layout search on {n} GPUs", command=train_command(
                    ref, hw.id, row.layout, w, tokens=tokens, price=price),
                    memory_per_gpu_bytes=int(row.values["memory.per_gpu"]),
                    values={"step_time_s": row.values["train.step_time"], "mfu": row.values["train.mfu"],
                            "tokens_per_s": row.values["train.tokens_per_s"]}))
            if len(out) >= 3:
                break
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchResult:
    rows: tuple[dict[str, Any], ...]
    evaluated: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"layouts_evaluated": self.evaluated, "seconds": self.seconds,
                "layouts_per_s": self.evaluated / self.seconds if self.seconds else None, "best": list(self.rows)}


def search(model: Any, gpu: Any, *, gpus: int, global_batch: int, seq: int = 4096, precision: str = "bf16",
           optimizer: str = "adamw", finetune: str = "full", lora_rank: int = 16,
           lora_targets: str | tuple[str, ...] = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
           flash_attention: bool = True, tokens: float = 0.0, price: float = 2.0, top: int = 10,
           time_limit_s: float = 60.0, efficiency: Efficiency | None = None) -> SearchResult:
    """The fastest layouts of `gpus` GPUs that fit, each with the `tmath train` command that reproduces it."""
    s, ref = _model(model)
    hw = load_hardware(gpu)
    _check_count("gpus", gpus, 1, 65536, integer=True)
    w = _workload(s, global_batch=global_batch, seq=seq, precision=precision, optimizer=optimizer, finetune=finetune,
                  lora_rank=lora_rank, lora_targets=lora_targets, flash_attention=flash_attention)
    validate(s, Layout(), replace(w, global_batch=w.global_batch))
    _check_count("top", top, 1, 1000, integer=True)
    _check_count("time_limit_s", time_limit_s, 0.001, 3600)
    _check_count("tokens", tokens, 0, 1e18)
    _check_count("price", price, 0, 1e6)
    found, n, dt = search_layouts(s, hw, w, gpus=gpus, eff=efficiency, top=int(top), time_limit_s=time_limit_s)
    rows = []
    for r in found:
        v = r.values
        row: dict[str, Any] = {"layout": _layout_args(r.layout), "step_time_s": v["train.step_time"],
                               "mfu": v["train.mfu"], "hfu": v["train.hfu"],
                               "memory_per_gpu_bytes": int(v["memory.per_gpu"]),
                               "tokens_per_s": v["train.tokens_per_s"],
                               "command": train_command(ref, hw.id, r.layout, w, tokens=tokens, price=price)}
        if tokens:
            row["days"] = tokens / v["train.tokens_per_s"] / 86400
            row["cost_usd"] = row["days"] * 24 * gpus * price
        rows.append(row)
    return SearchResult(rows=tuple(rows), evaluated=n, seconds=dt)
