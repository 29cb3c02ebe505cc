"""ASGI middleware in front of the API: every request is checked before FastAPI parses it.

FastAPI trusts its input more than a public (or DNS-rebound) port can afford: it reads a body of any length,
waits for it forever, and hands Python's json.loads whatever it gets. Here, in order:
  Host     a name of this machine (hosts.py), else 400 — DNS rebinding;
  size     Content-Length and the bytes actually received ≤ max_body (a chunked body has no Content-Length), else 413;
  time     the whole body within body_timeout_s, else 408 — a client trickling its body holds no slot;
  JSON     a JSON body parses as strict JSON: nesting ≤ MAX_DEPTH, no NaN/Infinity, numbers finite, integers
           ≤ MAX_DIGITS digits, strings valid Unicode (no lone surrogates), else 422 naming the field or "body".
The body is read once (at most max_body bytes are kept) and replayed to the app.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from transformer_math.web.hosts import host_ok

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
MAX_DEPTH = 32  # a Hugging Face config.json nests 3 or 4 levels; json.loads itself gives up near 1000
MAX_DIGITS = 400  # a finite float has at most 309 integer digits; Python refuses int() past 4300


class Rejected(Exception):
    """A request refused before the app sees it: status, and the JSON error body."""

    def __init__(self, status: int, field: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.field, self.detail = status, field, detail


class _Disconnected(Exception):
    """The client went away while sending its body: nobody to answer."""


class Guard:
    """The checks above, as pure ASGI (BaseHTTPMiddleware would hide the receive channel this needs)."""

    def __init__(self, app: ASGIApp, *, max_body: int, body_timeout_s: float, extra_hosts: frozenset[str] = frozenset(),
                 any_ip: bool = False) -> None:
        self.app, self.max_body, self.body_timeout_s = app, max_body, body_timeout_s
        self.extra_hosts, self.any_ip = extra_hosts, any_ip

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        try:
            if not host_ok(headers.get("host"), self.extra_hosts, self.any_ip):
                raise Rejected(400, "host", f"host: {headers.get('host', '')[:100]!r} is not a name of this "
                                            "server (localhost, 127.0.0.1, [::1] or the --host it was started with)")
            _check_length(headers, self.max_body)
            body = await _read_body(receive, self.max_body, self.body_timeout_s)
            if body and _is_json(headers.get("content-type")):
                check_json(body)
        except Rejected as e:
            return await _answer(send, e)
        except _Disconnected:
            return None
        await self.app(scope, _replay(body, receive), send)


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    """Header name → value (the first of repeated ones), as latin-1 text (what HTTP/1.1 carries)."""
    out: dict[str, str] = {}
    for k, v in scope.get("headers", []):
        out.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
    return out


def _check_length(headers: dict[str, str], max_body: int) -> None:
    """Refused before a byte of the body is read (the server has already rejected a malformed one on the wire)."""
    size = headers.get("content-length")
    if size is None:
        return
    if not size.isdigit():
        raise Rejected(400, "body", f"body: Content-Length {size[:20]!r} is not a byte count")
    if len(size) > 12 or int(size) > max_body:
        raise Rejected(413, "body", f"body: at most {max_body} bytes (Content-Length: {size[:20]})")


async def _read_body(receive: Receive, max_body: int, timeout_s: float) -> bytes:
    """The whole body, stopping as soon as it exceeds max_body (what is over is never kept) or time runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            msg = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
        except TimeoutError:
            raise Rejected(408, "body", f"body: not received within {timeout_s:g} s") from None
        if msg["type"] == "http.disconnect":
            raise _Disconnected
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > max_body:
            raise Rejected(413, "body", f"body: at most {max_body} bytes")
        chunks.append(chunk)
        if not msg.get("more_body", False):
            return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    """Whenever FastAPI would parse the body as JSON (application/json, application/*+json), and then some."""
    return "json" in (content_type or "").lower()


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read above as one message; then the real channel (for the disconnect a streaming response awaits)."""
    pending = True

    async def again() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _answer(send: Send, e: Rejected) -> None:
    """The JSON error, and Connection: close when the rest of the request was left unread on the wire."""
    payload = json.dumps({"detail": e.detail, "field": e.field}, ensure_ascii=True).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if e.status in (408, 413):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": e.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


# ------------------------------------------------------------------------------------------------------------------
# strict JSON


class _Bad(ValueError):
    """Raised from json.loads' hooks: what is wrong with a literal."""


def _constant(name: str) -> Any:
    """NaN, Infinity, -Infinity: Python's json reads them, no JSON encoder writes them back (500 at the end)."""
    raise _Bad("body: a non-finite number literal is not JSON (JSON numbers are finite)")


def _float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise _Bad(f"body: number {text[:40]} is out of range")
    return x


def _int(text: str) -> int:
    if len(text) > MAX_DIGITS:
        raise _Bad(f"body: an integer of {len(text)} digits (at most {MAX_DIGITS})")
    return int(text)


def check_json(body: bytes) -> Any:
    """body parsed as strict JSON (RFC 8259 numbers, bounded nesting, valid Unicode), else Rejected(422)."""
    try:
        data = json.loads(body, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except _Bad as e:
        raise Rejected(422, "body", str(e)) from None
    except RecursionError:
        raise Rejected(422, "body", f"body: nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as e:
        raise Rejected(422, "body", f"body: malformed JSON ({e.msg} at character {e.pos})") from None
    except UnicodeDecodeError:
        raise Rejected(422, "body", "body: malformed JSON (not UTF-8)") from None
    _walk(data, body)
    return data


_SCALARS = frozenset({int, float, bool, type(None)})
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")  # the JSON escape of \ud800-\udfff: the only way one gets in


def _walk(data: Any, body: bytes) -> None:
    """Depth and Unicode of every value, without recursion (the depth is what is being checked). Strings are looked
    at only when the body holds a surrogate escape, and a container of plain numbers costs one set(map(type, …))."""
    strings = _SURROGATE.search(body) is not None
    if strings and isinstance(data, str):
        _unicode(data, data, data)
    plain = _SCALARS if strings else _SCALARS | {str}
    stack: list[tuple[Any, int]] = [(data, 1)] if isinstance(data, dict | list) else []
    while stack:
        x, depth = stack.pop()
        if depth > MAX_DEPTH:
            field = _field(_path(data, x)[:1]) if isinstance(data, dict) else "body"
            raise Rejected(422, field, f"{field}: nested deeper than {MAX_DEPTH} levels")
        values = x.values() if isinstance(x, dict) else x
        if strings and isinstance(x, dict):
            for k in x:
                _unicode(k, data, x)
        if set(map(type, values)) <= plain:
            continue
        for v in values:
            if isinstance(v, dict | list):
                stack.append((v, depth + 1))
            elif strings and isinstance(v, str):
                _unicode(v, data, v)


def _unicode(s: str, data: Any, where: Any) -> None:
    """A lone surrogate (JSON allows the escape \\ud800) cannot be encoded back to UTF-8 by any response."""
    if s.isascii():
        return
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        field = _field(_path(data, where))
        raise Rejected(422, field, f"{field}: a lone surrogate (\\ud800-\\udfff) is not a Unicode character") \
            from None


def _path(data: Any, target: Any, depth: int = 0) -> tuple[str, ...]:
    """Keys from data down to the object `target` (found by identity; a dict key is named by itself), for naming
    the field of an error. Recursive, but only ever called on data whose depth is MAX_DEPTH + 1 at most here."""
    if data is target or depth > MAX_DEPTH:
        return ()
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        if k is target or v is target:
            return (str(k),)
        if isinstance(v, dict | list):
            sub = _path(v, target, depth + 1)
            if sub:
                return (str(k), *sub)
    return ()


def _field(path: tuple[str, ...]) -> str:
    """The dotted field name, as the validation errors write it; a name that is itself bad is not echoed."""
    safe = [p if p.isascii() and len(p) <= 64 else "?" for p in path]
    return ".".join(safe) or "body"
