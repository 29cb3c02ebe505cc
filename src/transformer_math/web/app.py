"""FastAPI app: thin HTTP over analyze(), serve(), train(), search(); no math here.

Every request's work is bounded: sizes capped by the request models (models.py), grids capped, bodies ≤ 1 MiB
received within 10 s as strict JSON (guard.py), plans computed in a few slots at a time (slots.py). Bad input is a 4xx
naming the field, every error body is ErrorBody (handlers.py), nothing escapes as a traceback; the page and its files
are pages.py, the plotting library served from the installed plotly package. What each endpoint computes is
compute.py; the page itself asks /api/view, one request per change of its inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from transformer_math.config.hardware import list_hardware
from transformer_math.presets import list_presets
from transformer_math.units import json_ready
from transformer_math.web import handlers, pages
from transformer_math.web.compute import analyze_ as _analyze
from transformer_math.web.compute import compare_ as _compare
from transformer_math.web.compute import curve_ as _curve
from transformer_math.web.compute import serve_ as _serve
from transformer_math.web.compute import train_ as _train
from transformer_math.web.compute import view_ as _view
from transformer_math.web.guard import Guard
from transformer_math.web.hosts import WILDCARDS, allowed_hosts
from transformer_math.web.models import (
    HEAVY,
    POST,
    READ,
    AnalyzeRequest,
    CompareRequest,
    CurveRequest,
    ErrorBody,
    ServeRequest,
    TrainRequest,
    ViewRequest,
)
from transformer_math.web.slots import Slots, cpu_count

__all__ = ["MAX_BODY", "ErrorBody", "app", "create_app"]
MAX_BODY = 2**20
BODY_TIMEOUT_S = 10.0  # a 1 MiB body arrives in milliseconds on any link this app is meant for
SLOT_WAIT_S = 10.0


def ok(data: Any) -> JSONResponse:
    return JSONResponse(json_ready(data))


def _reads(app: FastAPI) -> None:
    """The lists the page's menus offer."""

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


def _plans(app: FastAPI, compute: Callable[[Callable[..., Any], Any], Any]) -> None:
    """One endpoint per CLI command (the functions looked up here at call time, so tests can replace them)."""

    @app.post("/api/analyze", responses=POST)
    def api_analyze(r: AnalyzeRequest) -> JSONResponse:
        """Exactly `tmath analyze … --json`."""
        return ok(_analyze(r))

    @app.post("/api/serve", responses=HEAVY)
    async def api_serve(r: ServeRequest) -> JSONResponse:
        """Exactly `tmath serve … --json` (plus the device's roof for the chart)."""
        return await compute(_serve, r)

    @app.post("/api/train", responses=HEAVY)
    async def api_train(r: TrainRequest) -> JSONResponse:
        """Exactly `tmath train … --json` (`tmath train … --search --json` with "search": true)."""
        return await compute(_train, r)


def _page_data(app: FastAPI, compute: Callable[[Callable[..., Any], Any], Any]) -> None:
    """What the page draws beyond the plans: the context curve, the comparison, and all of it in one request."""

    @app.post("/api/curve", responses=HEAVY)
    async def api_curve(r: CurveRequest) -> JSONResponse:
        """Memory per GPU and latency against context length (one serving plan per context)."""
        return await compute(_curve, r)

    @app.post("/api/compare", responses=HEAVY)
    async def api_compare(r: CompareRequest) -> JSONResponse:
        """The headline numbers of up to 8 models side by side: presets and config.json objects."""
        return await compute(_compare, r)

    @app.post("/api/view", responses=HEAVY)
    async def api_view(r: ViewRequest) -> JSONResponse:
        """Everything the page shows, in one answer: {analysis, serve, train, curve, compare}, each part what its
        own endpoint answers for the same model and options (the comparison's first row is this model)."""
        return await compute(_view, r)


def create_app(*, bind_host: str | None = None, body_timeout_s: float = BODY_TIMEOUT_S, slots: int | None = None,
               slot_wait_s: float = SLOT_WAIT_S) -> FastAPI:
    """The app; `bind_host` is `tmath web --host` (its name is answered too), the rest are limits tests shorten."""
    app = FastAPI(title="transformer-math", version="0.1.0",
                  description="Parameters, memory, FLOPs, serving and training plans of LLMs — every number explained.")
    app.add_middleware(Guard, max_body=MAX_BODY, body_timeout_s=body_timeout_s, extra_hosts=allowed_hosts(bind_host),
                       any_ip=bind_host in WILDCARDS)
    app.state.slots = Slots(slots or cpu_count(), slot_wait_s)
    handlers.install(app)

    async def compute(fn: Callable[..., Any], r: Any) -> JSONResponse:
        """fn(r) in a computation slot (503 if none frees up in time)."""
        return ok(await app.state.slots.run(fn, r))

    app.include_router(pages.router)
    _reads(app)
    _plans(app, compute)
    _page_data(app, compute)
    return app


app = create_app()
