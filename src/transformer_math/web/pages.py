"""The page, its static files (a fixed list: never a path from the request) and the symbol dictionary."""

from __future__ import annotations

import os
from html import escape

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from transformer_math.web.handlers import error

STATIC = os.path.join(os.path.dirname(__file__), "static")
FILES = ("app.js", "explain.js", "render.js", "charts.js", "style.css")
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index() -> FileResponse:
    return FileResponse(os.path.join(STATIC, "index.html"))


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)


@router.get("/static/{name}", response_model=None)
def static(name: str) -> Response:
    if name == "plotly.min.js":
        import plotly  # type: ignore[import-untyped]

        return FileResponse(os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js"))
    if name not in FILES:
        return error(404, "name", f"static: no file {name[:100]!r}")
    return FileResponse(os.path.join(STATIC, name))


def _symbol_rows() -> str:
    from transformer_math.symbols import SYMBOLS

    return "".join(f"<tr id='{escape(s.ascii)}'><td><a href='#{escape(s.ascii)}'>{escape(s.ascii)}</a></td>"
                   f"<td><code>{escape(s.code)}</code></td><td>{escape(s.unit)}</td><td>{escape(s.meaning)}</td>"
                   f"<td>{escape(s.section)}</td></tr>" for s in SYMBOLS)


@router.get("/symbols", response_class=HTMLResponse)
def symbols_page() -> HTMLResponse:
    return HTMLResponse("<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' content="
                        "'width=device-width,initial-scale=1'><title>Symbols — transformer-math</title>"
                        "<link rel='stylesheet' href='/static/style.css'></head><body><main class='page'>"
                        "<h1>Symbol dictionary</h1><p><a href='/'>← calculator</a></p><div class='scroll'>"
                        "<table class='table'><thead><tr><th>symbol</th><th>code</th><th>unit</th>"
                        f"<th>meaning</th><th>section</th></tr></thead><tbody>{_symbol_rows()}</tbody></table></div>"
                        "</main></body></html>")
