"""FastAPI app: thin HTTP over analyze(), serve(), train(), search(); no math here.

Every request's work is bounded (sizes capped by the request models, grids capped, bodies ≤ 1 MiB), bad input
is a 4xx naming the field, and the page's plotting library is served from the installed plotly package.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from transformer_math.errors import TmathError
from transformer_math.units import json_ready

from transformer_math.config.hardware import list_hardware
from transformer_math.presets import list_presets

STATIC = os.path.join(os.path.dirname(__file__), "static")
# Names the schema enumerates, so clients (and the fuzzer) see exactly what is accepted: never a path.
PresetName = Literal[tuple(list_presets())]  # type: ignore[valid-type]
GpuId = Literal[tuple(list_hardware())]  # type: ignore[valid-type]
MAX_BODY = 2**20
Recompute = Literal["none", "selective", "full"]


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
    block: int = Field(16, ge=1, le=1024)
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


def _train(r: TrainRequest) -> dict[str, Any]:
    from transformer_math.analysis.plans import search, train

    kw = r.model_dump(exclude={"model", "config", "gpu", "search"})
    if r.search:
        layout = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "recompute", "zero", "sequence_parallel", "interleave",
                  "schedule")
        return search(r.source(), r.gpu, **{k: v for k, v in kw.items() if k not in layout}).to_dict()
    return train(r.source(), r.gpu, **kw).to_dict()


def create_app() -> FastAPI:
    app = FastAPI(title="transformer-math", version="0.1.0",
                  description="Parameters, memory, FLOPs, serving and training plans of LLMs — every number explained.")

    @app.middleware("http")
    async def cap_body(request: Request, call_next: Any) -> Response:
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
            return JSONResponse({"detail": f"body: at most {MAX_BODY} bytes", "field": "body"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(TmathError)
    async def tmath_error(request: Request, e: TmathError) -> JSONResponse:
        return JSONResponse({"detail": str(e), "field": e.field}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        if errs and errs[0].get("type") == "json_invalid":
            return JSONResponse({"detail": "body: malformed JSON", "field": "body"}, status_code=422)
        field = ".".join(str(p) for p in errs[0]["loc"] if p != "body") if errs else "body"
        msg = "; ".join(f"{'.'.join(str(p) for p in x['loc'] if p != 'body') or 'body'}: {x['msg']}" for x in errs[:5])
        return JSONResponse({"detail": msg, "field": field}, status_code=422)

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
            return JSONResponse({"detail": f"static: no file {name!r}", "field": "name"}, status_code=404)
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

    @app.get("/api/presets")
    def presets() -> JSONResponse:
        return ok(list_presets())

    @app.get("/api/hardware")
    def hardware() -> JSONResponse:
        from transformer_math.config.hardware import load_hardware

        return ok({i: load_hardware(i).name for i in list_hardware()})

    @app.get("/api/symbols")
    def symbols() -> JSONResponse:
        from transformer_math.symbols import SYMBOLS

        return ok([{"symbol": s.ascii, "code": s.code, "unit": s.unit, "meaning": s.meaning} for s in SYMBOLS])

    @app.post("/api/analyze")
    def api_analyze(r: AnalyzeRequest) -> JSONResponse:
        """Exactly `tmath analyze … --json`."""
        return ok(_analyze(r))

    @app.post("/api/serve")
    def api_serve(r: ServeRequest) -> JSONResponse:
        """Exactly `tmath serve … --json` (plus the device's roof for the chart)."""
        return ok(_serve(r))

    @app.post("/api/curve")
    def api_curve(r: CurveRequest) -> JSONResponse:
        """Memory per GPU and latency against context length (one serving plan per context)."""
        points = []
        for c in r.contexts:
            if not 1 <= c <= 10**6:
                raise TmathError("contexts", c, "integers from 1 to 10^6")
            out = _serve(r.model_copy(update={"prompt": c, "gen": 1}), suggest=False)
            points.append({"context": c, "memory_per_gpu_bytes": out["memory_per_gpu_bytes"], "ttft_s": out["ttft_s"],
                           "tpot_s": out["tpot_s"], "fits": out["fits"]})
        return ok(points)

    @app.post("/api/train")
    def api_train(r: TrainRequest) -> JSONResponse:
        """Exactly `tmath train … --json`."""
        return ok(_train(r))

    @app.post("/api/compare")
    def api_compare(r: CompareRequest) -> JSONResponse:
        rows = []
        for m in r.models:
            d = _analyze(AnalyzeRequest(model=m, batch=r.batch, context=r.context, kv_dtype=r.kv_dtype))
            rows.append({"model": m, **{k: d[k] for k in ("params.total", "params.active", "memory.weights_bytes",
                                                          "memory.kv_cache_bytes", "flops.prefill",
                                                          "flops.decode_token")}})
        return ok(rows)

    return app


app = create_app()
