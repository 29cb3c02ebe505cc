"""FastAPI app: thin HTTP over analyze(), serve(), train(), search(); no math here.

Every request's work is bounded: sizes capped by the request models, grids capped, bodies ≤ 1 MiB received within
10 s as strict JSON (guard.py), plans computed in a few slots at a time (slots.py). Bad input is a 4xx naming the
field, every error body is ErrorBody, nothing escapes as a traceback; the page's plotting library is served from the
installed plotly package.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from transformer_math.analysis.efficiency import list_engines
from transformer_math.config.hardware import list_hardware
from transformer_math.errors import TmathError
from transformer_math.presets import list_presets
from transformer_math.units import json_ready
from transformer_math.web.guard import Guard
from transformer_math.web.hosts import WILDCARDS, allowed_hosts
from transformer_math.web.slots import Busy, Slots, cpu_count

STATIC = os.path.join(os.path.dirname(__file__), "static")
# Names the schema enumerates, so clients (and the fuzzer) see exactly what is accepted: never a path.
PresetName = Literal[tuple(list_presets())]  # type: ignore[valid-type]
GpuId = Literal[tuple(list_hardware())]  # type: ignore[valid-type]
MAX_BODY = 2**20
BODY_TIMEOUT_S = 10.0  # a 1 MiB body arrives in milliseconds on any link this app is meant for
SLOT_WAIT_S = 10.0
Recompute = Literal["none", "selective", "full"]


class ErrorBody(BaseModel):
    """Every error the API answers (4xx and 5xx alike): what is wrong, and the request field it is about — a body
    field ("batch", "config.hidden_size"), or "body", "host", "path", "method", "server"."""

    detail: str
    field: str


ERRORS = {400: "refused before parsing: the Host header is not a name of this server, or a bad Content-Length",
          408: "body not received in time",
          413: "body over 1 MiB", 422: "invalid request: the field and what is allowed",
          500: "unexpected error (a bug): no traceback, logged by the server",
          503: "busy: every computation slot stayed taken; retry after Retry-After seconds"}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes, all ErrorBody (FastAPI would document its HTTPValidationError)."""
    return {c: {"model": ErrorBody, "description": ERRORS[c]} for c in codes}


READ = errors(400, 500)
POST = errors(400, 408, 413, 422, 500)
HEAVY = errors(400, 408, 413, 422, 500, 503)


class ModelInput(BaseModel):
    model: PresetName | None = Field(None, description="preset name (GET /api/presets)")
    config: dict[str, Any] | None = Field(None, description="a Hugging Face config.json object")

    def source(self) -> Any:
        if self.config is not None:
            return self.config
        if self.model is None:
            raise TmathError("model", None, "a preset name or a config object")
        return self.model


class AnalyzeRequest(ModelInput):
    batch: int = Field(1, ge=1, le=10**6)
    context: int = Field(2048, ge=1, le=10**7)
    weight_dtype: str = Field("auto", max_length=200)
    kv_dtype: str = Field("bf16", max_length=20)
    attention: Literal["dense", "causal"] = "dense"
    recompute: Recompute = "none"
    activations: Literal["fused", "eager"] = "fused"


class ServeRequest(ModelInput):
    gpu: GpuId = "h100-sxm"
    tp: int = Field(1, ge=1, le=64)
    dp: int = Field(1, ge=1, le=4096)
    ep: int = Field(1, ge=1, le=256)
    batch: int = Field(1, ge=1, le=4096)
    prompt: int = Field(1024, ge=1, le=10**6)
    gen: int = Field(256, ge=1, le=10**6)
    weight_dtype: str = Field("auto", max_length=200)
    kv_dtype: str = Field("bf16", max_length=20)
    engine: Literal[tuple(list_engines())] = "vllm"  # type: ignore[valid-type]
    block: int | None = Field(None, ge=1, le=1024)  # None: the engine's
    draft: PresetName | None = None
    draft_k: int = Field(4, ge=1, le=16)
    acceptance: float = Field(0.7, ge=0, lt=1)
    gpu_memory_utilization: float = Field(0.9, ge=0.05, le=1)


class CurveRequest(ServeRequest):
    contexts: list[int] = Field(default_factory=lambda: [256, 1024, 4096, 16384],
                                min_length=1, max_length=24)


class TrainRequest(ModelInput):
    gpu: GpuId = "h100-sxm"
    gpus: int = Field(8, ge=1, le=65536)
    tp: int = Field(1, ge=1, le=64)
    pp: int = Field(1, ge=1, le=256)
    dp: int | None = Field(None, ge=1, le=65536)
    cp: int = Field(1, ge=1, le=64)
    ep: int = Field(1, ge=1, le=256)
    global_batch: int = Field(64, ge=1, le=10**6)
    seq: int = Field(4096, ge=1, le=10**6)
    micro_batch: int = Field(1, ge=1, le=1024)
    recompute: Recompute = "none"
    zero: Literal[0, 1, 2, 3] = 1
    sequence_parallel: bool | None = None
    interleave: int = Field(1, ge=1, le=64)
    schedule: Literal["1f1b", "gpipe"] = "1f1b"
    flash_attention: bool = True
    precision: Literal["bf16", "fp8"] = "bf16"
    optimizer: Literal["adamw", "adam8bit", "sgd", "adafactor"] = "adamw"
    finetune: Literal["full", "lora", "qlora"] = "full"
    lora_rank: int = Field(16, ge=1, le=4096)
    lora_targets: str = Field("q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", max_length=200)
    tokens: float = Field(0, ge=0, le=1e16)
    price: float = Field(2.0, ge=0, le=1e4)
    search: bool = False


class CompareRequest(BaseModel):
    models: list[PresetName] = Field(min_length=1, max_length=8)
    batch: int = Field(1, ge=1, le=10**6)
    context: int = Field(2048, ge=1, le=10**7)
    kv_dtype: str = Field("bf16", max_length=20)


def _analyze(r: AnalyzeRequest) -> dict[str, Any]:
    from transformer_math.analysis.report import Conventions, analyze

    return analyze(r.source(), batch=r.batch, context=r.context, weight_dtype=r.weight_dtype, kv_dtype=r.kv_dtype,
                   conventions=Conventions(attention=r.attention, recompute=r.recompute,
                                           activations=r.activations)).to_dict()


def _serve(r: ServeRequest, *, suggest: bool = True) -> dict[str, Any]:
    from transformer_math.analysis.plans import serve

    res = serve(r.source(), r.gpu, **r.model_dump(exclude={"model", "config", "gpu", "contexts"}), suggest=suggest)
    out = res.to_dict()
    hw = res.hardware
    out["hardware"] = {"name": hw.name, "peak_bf16": hw.peak("bf16"), "bandwidth": hw.memory_bandwidth_bytes_per_s,
                       "memory_bytes": hw.memory_bytes}
    return out


SEARCH_LIMIT_S = 10.0  # one layout search holds a computation slot at most this long (then a 422 says so)


def _train(r: TrainRequest) -> dict[str, Any]:
    from transformer_math.analysis.plans import search, train

    kw = r.model_dump(exclude={"model", "config", "gpu", "search"})
    if r.search:
        layout = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "recompute", "zero", "sequence_parallel", "interleave",
                  "schedule")
        return search(r.source(), r.gpu, time_limit_s=SEARCH_LIMIT_S,
                      **{k: v for k, v in kw.items() if k not in layout}).to_dict()
    return train(r.source(), r.gpu, **kw).to_dict()


def _curve(r: CurveRequest) -> list[dict[str, Any]]:
    points = []
    for c in r.contexts:
        if not 1 <= c <= 10**6:
            raise TmathError("contexts", c, "integers from 1 to 10^6")
        out = _serve(r.model_copy(update={"prompt": c, "gen": 1}), suggest=False)
        points.append({"context": c, "memory_per_gpu_bytes": out["memory_per_gpu_bytes"], "ttft_s": out["ttft_s"],
                       "tpot_s": out["tpot_s"], "fits": out["fits"]})
    return points


def _compare(r: CompareRequest) -> list[dict[str, Any]]:
    rows = []
    for m in r.models:
        d = _analyze(AnalyzeRequest(model=m, batch=r.batch, context=r.context, kv_dtype=r.kv_dtype))
        rows.append({"model": m, **{k: d[k] for k in ("params.total", "params.active", "memory.weights_bytes",
                                                      "memory.kv_cache_bytes", "flops.prefill", "flops.decode_token")}})
    return rows


def _error(status: int, field: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An ErrorBody response; the detail made safe to encode whatever text it quotes."""
    detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"detail": detail, "field": field}, status_code=status, headers=headers)


def _handlers(app: FastAPI) -> None:
    """Every exception becomes an ErrorBody: FastAPI's own errors too, and (as 500) whatever else escapes."""

    @app.exception_handler(TmathError)
    async def tmath_error(request: Request, e: TmathError) -> JSONResponse:
        return _error(422, e.field, str(e))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        if errs and errs[0].get("type") == "json_invalid":
            return _error(422, "body", "body: malformed JSON")
        field = ".".join(str(p) for p in errs[0]["loc"] if p != "body") if errs else ""
        msg = "; ".join(f"{'.'.join(str(p) for p in x['loc'] if p != 'body') or 'body'}: {x['msg']}" for x in errs[:5])
        return _error(422, field or "body", msg)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        if e.status_code == 404:
            return _error(404, "path", f"path: nothing at {request.url.path[:200]!r}", e.headers)
        if e.status_code == 405:
            allow = (e.headers or {}).get("Allow", "")
            return _error(405, "method", f"method: {request.method[:20]} not allowed here (allowed: {allow})", e.headers)
        field = "body" if e.status_code == 400 else "request"
        return _error(e.status_code, field, f"{field}: {e.detail}", e.headers)

    @app.exception_handler(Busy)
    async def busy(request: Request, e: Busy) -> JSONResponse:
        return _error(503, "server", str(e), {"Retry-After": str(e.retry_after_s)})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        # Starlette re-raises after answering, so the server logs the traceback; the client sees none of it.
        return _error(500, "server", f"server: internal error ({type(e).__name__}); it is logged on the server")


def create_app(*, bind_host: str | None = None, body_timeout_s: float = BODY_TIMEOUT_S, slots: int | None = None,
               slot_wait_s: float = SLOT_WAIT_S) -> FastAPI:
    """The app; `bind_host` is `tmath web --host` (its name is answered too), the rest are limits tests shorten."""
    app = FastAPI(title="transformer-math", version="0.1.0",
                  description="Parameters, memory, FLOPs, serving and training plans of LLMs — every number explained.")
    app.add_middleware(Guard, max_body=MAX_BODY, body_timeout_s=body_timeout_s, extra_hosts=allowed_hosts(bind_host),
                       any_ip=bind_host in WILDCARDS)
    app.state.slots = Slots(slots or cpu_count(), slot_wait_s)
    _handlers(app)

    async def compute(fn: Callable[..., Any], r: Any) -> JSONResponse:
        """fn(r) in a computation slot (503 if none frees up in time)."""
        return ok(await app.state.slots.run(fn, r))

    def ok(data: Any) -> JSONResponse:
        return JSONResponse(json_ready(data))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(os.path.join(STATIC, "index.html"))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        if name == "plotly.min.js":
            import plotly

            return FileResponse(os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js"))
        if name not in ("app.js", "style.css"):
            return _error(404, "name", f"static: no file {name[:100]!r}")
        return FileResponse(os.path.join(STATIC, name))

    @app.get("/symbols", response_class=HTMLResponse, include_in_schema=False)
    def symbols_page() -> HTMLResponse:
        from html import escape

        from transformer_math.symbols import SYMBOLS

        rows = "".join(f"<tr id='{escape(s.ascii)}'><td><a href='#{escape(s.ascii)}'>{escape(s.ascii)}</a></td>"
                       f"<td><code>{escape(s.code)}</code></td><td>{escape(s.unit)}</td><td>{escape(s.meaning)}</td>"
                       f"<td>{escape(s.section)}</td></tr>" for s in SYMBOLS)
        return HTMLResponse("<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' content="
                            "'width=device-width,initial-scale=1'><title>Symbols — transformer-math</title>"
                            "<link rel='stylesheet' href='/static/style.css'></head><body><main class='page'>"
                            "<h1>Symbol dictionary</h1><p><a href='/'>← calculator</a></p><div class='scroll'>"
                            "<table class='table'><thead><tr><th>symbol</th><th>code</th><th>unit</th>"
                            f"<th>meaning</th><th>section</th></tr></thead><tbody>{rows}</tbody></table></div>"
                            "</main></body></html>")

    @app.get("/api/presets", responses=READ)
    def presets() -> JSONResponse:
        return ok(list_presets())

    @app.get("/api/hardware", responses=READ)
    def hardware() -> JSONResponse:
        from transformer_math.config.hardware import load_hardware

        return ok({i: load_hardware(i).name for i in list_hardware()})

    @app.get("/api/symbols", responses=READ)
    def symbols() -> JSONResponse:
        from transformer_math.symbols import SYMBOLS

        return ok([{"symbol": s.ascii, "code": s.code, "unit": s.unit, "meaning": s.meaning} for s in SYMBOLS])

    @app.post("/api/analyze", responses=POST)
    def api_analyze(r: AnalyzeRequest) -> JSONResponse:
        """Exactly `tmath analyze … --json`."""
        return ok(_analyze(r))

    @app.post("/api/serve", responses=HEAVY)
    async def api_serve(r: ServeRequest) -> JSONResponse:
        """Exactly `tmath serve … --json` (plus the device's roof for the chart)."""
        return await compute(_serve, r)

    @app.post("/api/curve", responses=HEAVY)
    async def api_curve(r: CurveRequest) -> JSONResponse:
        """Memory per GPU and latency against context length (one serving plan per context)."""
        return await compute(_curve, r)

    @app.post("/api/train", responses=HEAVY)
    async def api_train(r: TrainRequest) -> JSONResponse:
        """Exactly `tmath train … --json` (`tmath train … --search --json` with "search": true)."""
        return await compute(_train, r)

    @app.post("/api/compare", responses=HEAVY)
    async def api_compare(r: CompareRequest) -> JSONResponse:
        """The headline numbers of up to 8 presets side by side."""
        return await compute(_compare, r)

    return app


app = create_app()
