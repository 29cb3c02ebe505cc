"""What each endpoint computes: calls into analyze(), serve(), train(), search(), shaped for JSON. No math here."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from transformer_math.errors import TmathError
from transformer_math.web.models import (
    MAX_COMPARED,
    AnalyzeRequest,
    CompareRequest,
    CompareWith,
    CurveRequest,
    ServeRequest,
    TrainRequest,
    ViewRequest,
)

SEARCH_LIMIT_S = 10.0  # one layout search holds a computation slot at most this long (then a 422 says so)
COMPARED = ("params.total", "params.active", "memory.weights_bytes", "memory.kv_cache_bytes", "flops.prefill",
            "flops.decode_token")
LAYOUT = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "recompute", "zero", "sequence_parallel", "interleave",
          "schedule")


class Memo:
    """The last `size` answers of a part of the view, by request: one edit changes some parts and not others (a new
    batch leaves the training plan as it was, a new context the curve), so the page's next answer reuses those.
    Answers are deterministic and never mutated; requests whose key is over `max_key` characters are not kept."""

    def __init__(self, fn: Callable[[Any], Any], size: int = 16, max_key: int = 65536) -> None:
        self.fn, self.size, self.max_key = fn, size, max_key
        self._kept: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, r: BaseModel) -> Any:
        key = r.model_dump_json()
        if len(key) > self.max_key:
            return self.fn(r)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        out = self.fn(r)  # outside the lock: parts of other requests go on meanwhile
        with self._lock:
            self._kept[key] = out
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return out


def analyze_(r: AnalyzeRequest) -> dict[str, Any]:
    from transformer_math.analysis.report import Conventions, analyze

    return analyze(r.source(), batch=r.batch, context=r.context, weight_dtype=r.weight_dtype, kv_dtype=r.kv_dtype,
                   conventions=Conventions(attention=r.attention, recompute=r.recompute,
                                           activations=r.activations)).to_dict()


def serve_(r: ServeRequest, *, suggest: bool = True) -> dict[str, Any]:
    from transformer_math.analysis.plans import serve

    res = serve(r.source(), r.gpu, **r.model_dump(exclude={"model", "config", "gpu", "contexts"}), suggest=suggest)
    out = res.to_dict()
    hw = res.hardware
    out["hardware"] = {"name": hw.name, "peak_bf16": hw.peak("bf16"), "bandwidth": hw.memory_bandwidth_bytes_per_s,
                       "memory_bytes": hw.memory_bytes}
    return out


def train_(r: TrainRequest) -> dict[str, Any]:
    from transformer_math.analysis.plans import search, train

    kw = r.model_dump(exclude={"model", "config", "gpu", "search"})
    if r.search:
        return search(r.source(), r.gpu, time_limit_s=SEARCH_LIMIT_S,
                      **{k: v for k, v in kw.items() if k not in LAYOUT}).to_dict()
    return train(r.source(), r.gpu, **kw).to_dict()


def _point(r: ServeRequest, context: int) -> dict[str, Any]:
    """One point of the context curve: the plan's headline numbers, read off the plan (no JSON of the whole plan)."""
    from transformer_math.analysis.plans import serve

    if not 1 <= context <= 10**6:
        raise TmathError("contexts", context, "integers from 1 to 10^6")
    kw = r.model_dump(exclude={"model", "config", "gpu", "contexts"}) | {"prompt": context, "gen": 1}
    p = serve(r.source(), r.gpu, **kw, suggest=False).plan
    ok = p.fits
    return {"context": context, "memory_per_gpu_bytes": int(p["memory.per_gpu"]),
            "ttft_s": p["serve.ttft"] if ok else None, "tpot_s": p["serve.tpot"] if ok else None, "fits": ok}


def curve_(r: CurveRequest) -> list[dict[str, Any]]:
    return [_point(r, c) for c in r.contexts]


def _row(name: str, analysis: dict[str, Any]) -> dict[str, Any]:
    return {"model": name, **{k: analysis.get(k) for k in COMPARED}}  # None: an encoder has no cache, no decode


def _compared(w: CompareWith, field: str, room: int) -> list[tuple[str, AnalyzeRequest]]:
    """(row name, request without workload) for each preset, then each config; 1 to `room` of them."""
    n = len(w.models) + len(w.configs)
    if not 1 <= n <= room:
        raise TmathError(field, n, f"1 to {room} models and configs in all")
    out = [(m, AnalyzeRequest.model_validate({"model": m})) for m in w.models]
    for i, c in enumerate(w.configs):
        named = c.name or (c.config.get("_name_or_path") if isinstance(c.config.get("_name_or_path"), str) else None)
        out.append((named or f"config {i + 1}", AnalyzeRequest.model_validate({"config": c.config})))
    return out


def _rows(compared: list[tuple[str, AnalyzeRequest]], workload: BaseModel) -> list[dict[str, Any]]:
    """A row per model, at the workload's batch, context and dtypes."""
    update = workload.model_dump(include={"batch", "context", "kv_dtype", "weight_dtype"})
    return [_row(name, analyze_(req.model_copy(update=update))) for name, req in compared]


def compare_(r: CompareRequest) -> list[dict[str, Any]]:
    """The headline numbers of each model, one row each, in the order asked (presets, then configs)."""
    return _rows(_compared(r, "models", MAX_COMPARED), r)


_view_serve = Memo(serve_)
_view_train = Memo(train_)
_view_curve = Memo(curve_)


def view_(r: ViewRequest) -> dict[str, Any]:
    """Everything the page shows, from one request: the analysis, both plans, the context curve, the comparison
    (this model's row first). The plans and the curve come from the memo when this edit left their inputs alone."""
    model = {"model": r.model, "config": r.config}
    analysis = analyze_(AnalyzeRequest.model_validate(model | r.analyze.model_dump()))
    serve_opts = r.serve.model_dump()
    curve_opts = {k: v for k, v in serve_opts.items() if k not in ("prompt", "gen")}  # the curve sets its own
    out: dict[str, Any] = {
        "analysis": analysis,
        "serve": _view_serve(ServeRequest.model_validate(model | serve_opts)),
        "train": _view_train(TrainRequest.model_validate(model | r.train.model_dump())),
        "curve": _view_curve(CurveRequest.model_validate(model | curve_opts | {"contexts": r.curve}))
        if r.curve else [],
        "compare": None}
    if r.compare is not None:
        others = [(n, q) for n, q in _compared(r.compare, "compare", MAX_COMPARED - 1) if q.model != r.model]
        out["compare"] = [_row(r.model or analysis["model"], analysis), *_rows(others, r.analyze)]
    return out
