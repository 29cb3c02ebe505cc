"""The plans' public API beside analyze(): serve(), train(), search(), chinchilla().

Typed keyword arguments in; results out with to_dict() (what `tmath … --json` prints and the web API returns)
and explain(key) (every number's derivation). A plan that does not fit reports no throughput, latency, days or
cost — only what is over, by how much, and the nearest changes that fit, each with its numbers and the command
that gives it. The CLI and the web app call only these functions.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from transformer_math.analysis.efficiency import Efficiency
from transformer_math.analysis.efficiency import engine as engine_profile
from transformer_math.analysis.quantity import Quantity
from transformer_math.analysis.report import describe_weight_dtypes, parse_weight_dtypes, render_explanation
from transformer_math.analysis.serving import ServeLayout, ServePlan, ServeWorkload, Speculative, plan_serving
from transformer_math.analysis.train_search import search_layouts
from transformer_math.analysis.training import RECOMPUTE, Finetune, Layout, TrainPlan, Workload, plan_training, validate
from transformer_math.config import load_model
from transformer_math.config.hardware import HardwareSpec, load_hardware
from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError
from transformer_math.units import parse_dtype

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


def _model(model: Any) -> tuple[ModelSpec, str]:
    """The spec, and how to name the model on a command line."""
    s = load_model(model)
    return s, os.fspath(model) if isinstance(model, str | os.PathLike) else s.name


def _quantities(qs: Mapping[str, Quantity]) -> dict[str, Any]:
    return {k: v.to_dict() for k, v in qs.items()}


def _explain(qs: Mapping[str, Quantity], key: str, prefix: str) -> str:
    for k in (key, key.removeprefix(prefix + "."), f"{prefix}.{key}"):
        if k in qs:
            return render_explanation(qs[k], quantities=qs)
    raise TmathError("quantity", key, f"one of {', '.join(sorted(k for k in qs if '.t1' not in k))}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Suggestion:
    """A nearby change that fits, with the numbers it gives and the command that shows them."""

    change: str
    command: str
    memory_per_gpu_bytes: int
    values: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"change": self.change, "command": self.command, "memory_per_gpu_bytes": self.memory_per_gpu_bytes,
                **self.values}


@dataclass(frozen=True, kw_only=True, slots=True)
class _Result:
    """What serve() and train() return: the plan, the device, the command that gives it, nearby plans that fit."""

    plan: Any
    hardware: HardwareSpec
    command: str
    suggestions: tuple[Suggestion, ...] = ()
    _prefix = ""  # the namespace of the plan's own quantities ("serve." / "train.")

    @property
    def fits(self) -> bool:
        return bool(self.plan.fits)

    def explain(self, key: str) -> str:
        return _explain(self.plan.quantities, key, self._prefix)


# ---------------------------------------------------------------------------------------------------------------
# serve


@dataclass(frozen=True, kw_only=True, slots=True)
class ServeResult(_Result):
    plan: ServePlan
    _prefix = "serve"

    def to_dict(self) -> dict[str, Any]:
        p, L, w = self.plan, self.plan.layout, self.plan.workload
        ok = p.fits
        memory = {k.removeprefix("memory."): int(p[k]) for k in p.quantities if k.startswith("memory.") and k not in (
            "memory.per_gpu", "memory.over", "memory.kv_per_sequence", "memory.draft_kv_per_sequence")}
        out: dict[str, Any] = {
            "model": p.model, "gpu": p.gpu, "gpus": L.gpus, "layout": {"tp": L.tp, "dp": L.dp, "ep": L.ep,
                                                                        "expert_tp": L.expert_tp},
            "batch": w.batch, "prompt": w.prompt, "gen": w.gen, "kv_dtype": w.kv.name, "engine": w.engine,
            "act_dtype": w.act,
            "profile": self.hardware.id if self.hardware.efficiency else (self.hardware.device_class or "default"),
            "weight_dtype": {g: d.name for g, d in w.weights.items()},
            "weight_dtype_meaning": describe_weight_dtypes(w.weights),
            "fits": ok, "memory_per_gpu_bytes": int(p["memory.per_gpu"]), "memory_bytes": self.hardware.memory_bytes,
            "over_bytes": max(0, int(p["memory.over"])), "memory": memory,
            "max_batch": p["serve.max_batch"], "max_context": p["serve.max_context"], "phi_cache": p["serve.phi_cache"],
            "ttft_s": p["serve.ttft"] if ok else None, "tpot_s": p["serve.tpot"] if ok else None,
            "tokens_per_s": p["serve.tokens_per_s"] if ok else None,
            "band": {k: list(v) for k, v in p.band.items()} if ok else None,
            "compute_bound_batch": p.compute_bound_batch,
            "batch_curve": [{"batch": b, "tpot_s": t, "tokens_per_s": r, "memory_per_gpu_bytes": m}
                            for b, t, r, m in p.batch_curve],
            "decode_ops": [_op(c) for c in p.decode_ops], "prefill_ops": [_op(c) for c in p.prefill_ops],
            "notes": list(p.notes), "command": self.command,
            "suggestions": [x.to_dict() for x in self.suggestions],
            "quantities": _quantities(p.quantities),
        }
        return out


def _op(c: Any) -> dict[str, Any]:
    return {"layer": c.layer, "op": c.name, "count": c.count, "flops": c.flops, "bytes": c.bytes,
            "intensity": c.intensity, "bound": c.bound, "time_s": c.time_s}


def serve(model: Any, gpu: Any, *, tp: int = 1, dp: int = 1, ep: int = 1, batch: int = 1, prompt: int = 1024,
          gen: int = 256, weight_dtype: str | Mapping[str, str] = "auto", kv_dtype: str = "bf16",
          engine: str = "vllm", block: int | None = None, act_dtype: str = "auto",
          draft: Any = None, draft_k: int = 4, acceptance: float = 0.7, shard_lm_head: bool = True,
          gpu_memory_utilization: float = 0.9, efficiency: Efficiency | None = None,
          suggest: bool = True) -> ServeResult:
    """Serving plan of `model` on `gpu`: T_p GPUs per replica, D_p replicas, experts over E_p ranks; B sequences
    per replica with `prompt` + `gen` tokens, served by `engine` (its KV block size unless `block` is given).
    See analysis/serving.py."""
    s, ref = _model(model)
    hw = load_hardware(gpu)
    block = engine_profile(engine).block_tokens if block is None else block
    _check_count("draft_k", draft_k, 1, 64, integer=True)
    if isinstance(acceptance, bool) or not isinstance(acceptance, int | float) or not 0 <= acceptance < 1:
        raise TmathError("acceptance", acceptance, "a probability in [0, 1)")
    spec = Speculative(draft=load_model(draft), k=draft_k, acceptance=acceptance) if draft is not None else None
    w = ServeWorkload(batch=batch, prompt=prompt, gen=gen, weights=parse_weight_dtypes(weight_dtype, s),
                      kv=parse_dtype(kv_dtype, field="kv_dtype"), block=block, speculative=spec,
                      shard_lm_head=shard_lm_head, gpu_memory_utilization=gpu_memory_utilization, engine=engine,
                      act=act_dtype)
    L = ServeLayout(tp=tp, dp=dp, ep=ep)
    plan = plan_serving(s, hw, L, w, eff=efficiency)
    args = dict(tp=tp, dp=dp, ep=ep, batch=batch, prompt=prompt, gen=gen, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
                engine=engine, block=block,
                draft=None if draft is None else (os.fspath(draft) if isinstance(draft, str | os.PathLike)
                                                  else load_model(draft).name),
                draft_k=draft_k, acceptance=acceptance, gpu_memory_utilization=gpu_memory_utilization,
                act_dtype=act_dtype)
    result = ServeResult(plan=plan, hardware=hw, command=_serve_command(ref, hw.id, args))
    if plan.fits or not suggest:
        return result
    return replace(result, suggestions=tuple(_serve_suggestions(model, gpu, s, plan, args, efficiency)))


def _serve_command(ref: str, gpu: str, a: Mapping[str, Any]) -> str:
    parts = ["tmath", "serve", ref, "--gpu", gpu]
    for k in ("tp", "dp", "ep", "batch", "prompt", "gen", "weight_dtype", "kv_dtype", "engine", "block",
              "gpu_memory_utilization"):
        parts += [f"--{k.replace('_', '-')}", str(a[k])]
    if a.get("act_dtype", "auto") != "auto":
        parts += ["--act-dtype", str(a["act_dtype"])]
    if a.get("draft"):
        parts += ["--draft", str(a["draft"]), "--draft-k", str(a["draft_k"]), "--acceptance", str(a["acceptance"])]
    return shlex.join(parts)


def _serve_suggestions(model: Any, gpu: Any, s: ModelSpec, plan: ServePlan, a: dict[str, Any],
                       eff: Efficiency | None) -> list[Suggestion]:
    """The nearest changes that fit: the fewest GPUs per replica (at the weights' dtype, or with FP8 / int4 linear
    layers), an FP8 KV cache, a smaller batch, a shorter context, a larger memory share — each a whole plan."""
    out: list[Suggestion] = []
    tps = [t for t in (1, 2, 4, 8, 16, 32, 64) if t >= a["tp"] and s.n_heads % t == 0]
    dtypes = [None] + [d for d in ("fp8", "int4") if str(a["weight_dtype"]) not in (d, "int4")]
    best_tp = None
    for d in dtypes:  # the smallest T_p that fits, per weight precision, while it saves GPUs
        for t in tps:
            if best_tp is not None and t >= best_tp:
                break
            delta = {"tp": t} | ({"weight_dtype": d} if d else {})
            if _try(model, gpu, a, delta, eff, out, " ".join(f"--{k.replace('_', '-')} {v}" for k, v in delta.items())
                    + (f" ({t * a['dp']} GPUs)" if t != a["tp"] else "") + (" (linear layers)" if d else "")):
                best_tp = t
                break
    if plan.workload.kv.bits > 8:
        _try(model, gpu, a, {"kv_dtype": "fp8"}, eff, out, "--kv-dtype fp8")
    if 1 <= plan["serve.max_batch"] < a["batch"]:
        _try(model, gpu, a, {"batch": plan["serve.max_batch"]}, eff, out, f"--batch {plan['serve.max_batch']}")
    fit_ctx = plan["serve.max_context"]
    if a["gen"] < fit_ctx < a["prompt"] + a["gen"]:
        _try(model, gpu, a, {"prompt": fit_ctx - a["gen"]}, eff, out,
             f"--prompt {fit_ctx - a['gen']} (context {fit_ctx:,})")
    if a["gpu_memory_utilization"] < 0.95:
        _try(model, gpu, a, {"gpu_memory_utilization": 0.95}, eff, out, "--gpu-memory-utilization 0.95")
    return out


def _try(model: Any, gpu: Any, a: dict[str, Any], delta: dict[str, Any], eff: Efficiency | None, out: list[Suggestion],
         change: str) -> bool:
    try:
        r = serve(model, gpu, **{**a, **delta}, efficiency=eff, suggest=False)
    except TmathError:
        return False
    if r.fits:
        out.append(Suggestion(change=change, command=r.command, memory_per_gpu_bytes=int(r.plan["memory.per_gpu"]),
                              values={"ttft_s": r.plan["serve.ttft"], "tpot_s": r.plan["serve.tpot"],
                                      "tokens_per_s": r.plan["serve.tokens_per_s"],
                                      "max_batch": r.plan["serve.max_batch"]}))
    return r.fits


# ---------------------------------------------------------------------------------------------------------------
# train


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


def _check_count(name: str, v: Any, low: float, high: float, *, integer: bool = False) -> None:
    import math

    kinds = int if integer else int | float
    if isinstance(v, bool) or not isinstance(v, kinds) or not math.isfinite(v) or not low <= v <= high:
        raise TmathError(name, v, f"{'an integer' if integer else 'a number'} from {low:g} to {high:g}")


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


# ---------------------------------------------------------------------------------------------------------------
# search


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


# ---------------------------------------------------------------------------------------------------------------
# chinchilla


@dataclass(frozen=True, kw_only=True, slots=True)
class ChinchillaResult:
    quantities: dict[str, Quantity]
    gpu: str

    def __getitem__(self, key: str) -> Any:
        return self.quantities[key].value

    def explain(self, key: str) -> str:
        return _explain(self.quantities, key, "chinchilla")

    def to_dict(self) -> dict[str, Any]:
        q = self.quantities
        return {"flops": q["chinchilla.n_opt"].inputs["C"], "n_opt": self["chinchilla.n_opt"],
                "d_opt": self["chinchilla.d_opt"],
                "tokens_per_param": self["chinchilla.d_opt"] / self["chinchilla.n_opt"],
                "loss": self["chinchilla.loss"], "gpu_hours": self["chinchilla.gpu_hours"],
                "cost_usd": self["chinchilla.cost"], "gpu": self.gpu,
                "rule_of_thumb": {"n": self["chinchilla.n_20"], "d": self["chinchilla.d_20"],
                                  "note": "D ≈ 20·N with C = 6·N·D (Approach 1/2)"},
                "quantities": _quantities(q)}


def chinchilla(flops: float, *, gpu: Any = "h100-sxm", mfu: float = 0.40, price: float = 2.0) -> ChinchillaResult:
    """Compute-optimal parameters and tokens for a budget C (Hoffmann et al. 2022), and its GPU-hours and cost."""
    from transformer_math.analysis.quantity import Book
    from transformer_math.formulas import scaling as f

    _check_count("flops", flops, 1e10, 1e32)
    _check_count("mfu", mfu, 1e-6, 1)
    _check_count("price", price, 0, 1e6)
    hw = load_hardware(gpu)
    c = f.CHINCHILLA
    b = Book(explain=True)
    N = b.f("chinchilla.n_opt", f.n_opt, C=flops, α=c["alpha"], β=c["beta"], A=c["A"], B=c["B"])
    D = b.f("chinchilla.d_opt", f.d_opt, C=flops, N_opt=N)
    b.f("chinchilla.loss", f.chinchilla_loss, N=N, D=D, E=c["E"], A=c["A"], B=c["B"], α=c["alpha"], β=c["beta"])
    N_20 = b.f("chinchilla.n_20", f.n_rule_of_thumb, C=flops)
    b.f("chinchilla.d_20", f.d_opt, C=flops, N_opt=N_20)  # = 20·N_20: the budget spent at N_20 parameters
    h = b.f("chinchilla.gpu_hours", f.gpu_hours, C=flops, MFU=mfu, F_peak=hw.peak("bf16"))
    b.f("chinchilla.cost", f.cost, GPU_h=h, price=price)
    return ChinchillaResult(quantities=b.quantities, gpu=hw.id)
