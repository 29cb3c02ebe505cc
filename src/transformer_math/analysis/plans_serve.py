"""serve(): the serving plan of a model on a GPU, and the nearest changes that fit when it does not."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace

from transformer_math.analysis.efficiency import Efficiency
from transformer_math.analysis.efficiency import engine as engine_profile
from transformer_math.analysis.plans_common import Suggestion, _check_count, _model, _quantities, _Result
from transformer_math.analysis.report import describe_weight_dtypes, parse_weight_dtypes
from transformer_math.analysis.serving import ServeLayout, ServePlan, ServeWorkload, Speculative, plan_serving
from transformer_math.config import load_model
from transformer_math.config.hardware import load_hardware
from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError
from transformer_math.units import parse_dtype

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


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
