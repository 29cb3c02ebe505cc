"""Every exception becomes an ErrorBody (models.py): the library's errors, FastAPI's own, and (as 500) the rest."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from transformer_math.errors import TmathError
from transformer_math.web.slots import Busy


def error(status: int, field: str, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An ErrorBody response; the detail made safe to encode whatever text it quotes."""
    detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"detail": detail, "field": field}, status_code=status, headers=dict(headers or {}))


async def tmath_error(request: Request, e: TmathError) -> JSONResponse:
    return error(422, e.field, str(e))


async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
    errs = e.errors()
    if errs and errs[0].get("type") == "json_invalid":
        return error(422, "body", "body: malformed JSON")
    field = ".".join(str(p) for p in errs[0]["loc"] if p != "body") if errs else ""
    msg = "; ".join(f"{'.'.join(str(p) for p in x['loc'] if p != 'body') or 'body'}: {x['msg']}" for x in errs[:5])
    return error(422, field or "body", msg)


async def http_error(request: Request, e: HTTPException) -> JSONResponse:
    if e.status_code == 404:
        return error(404, "path", f"path: nothing at {request.url.path[:200]!r}", e.headers)
    if e.status_code == 405:
        allow = (e.headers or {}).get("Allow", "")
        return error(405, "method", f"method: {request.method[:20]} not allowed here (allowed: {allow})", e.headers)
    field = "body" if e.status_code == 400 else "request"
    return error(e.status_code, field, f"{field}: {e.detail}", e.headers)


async def busy(request: Request, e: Busy) -> JSONResponse:
    return error(503, "server", str(e), {"Retry-After": str(e.retry_after_s)})


async def unexpected(request: Request, e: Exception) -> JSONResponse:
    # Starlette re-raises after answering, so the server logs the traceback; the client sees none of it.
    return error(500, "server", f"server: internal error ({type(e).__name__}); it is logged on the server")


def install(app: FastAPI) -> None:
    for exc, handler in ((TmathError, tmath_error), (RequestValidationError, invalid), (HTTPException, http_error),
                         (Busy, busy), (Exception, unexpected)):
        app.add_exception_handler(exc, handler)  # type: ignore[arg-type]
