"""`tmath web`: uvicorn with every limit it offers set, plus the one it lacks (a deadline on reading a request).

uvicorn (0.54, h11) settings used, and why:
  timeout_keep_alive=5           an idle kept-alive connection is closed 5 s after its last response;
  limit_concurrency=100          past 100 connections + tasks, new requests get uvicorn's 503 instead of memory;
  h11_max_incomplete_event_size  request line + headers ≤ 32 KiB (else 400): a header flood is cut off early;
  backlog=128                    pending connections the kernel queues for us;
  timeout_graceful_shutdown=5    Ctrl-C does not wait on stuck clients;
  ws="none", proxy_headers=False no WebSocket upgrade path, no X-Forwarded-* trusted: neither is used.
uvicorn has no header-read or body-read timeout: its keep-alive timer starts only after a response and every byte
received cancels it, so a client that connects and says nothing, or trickles a byte at a time, would keep its
connection forever. DeadlineH11 adds that deadline; the body's own 10 s deadline (408) is guard.py's.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from transformer_math.web.app import create_app
from transformer_math.web.hosts import check_bind, exposure_warning

REQUEST_TIMEOUT_S = 15.0  # > the body's 10 s, so a slow body gets guard.py's 408 before the connection is cut
LIMITS: dict[str, Any] = {"timeout_keep_alive": 5, "limit_concurrency": 100, "h11_max_incomplete_event_size": 32 * 1024,
                          "backlog": 128, "timeout_graceful_shutdown": 5, "ws": "none", "proxy_headers": False}


class DeadlineH11(H11Protocol):
    """uvicorn's h11 protocol, plus: while this connection waits on its client — for a request (head and body) or
    for it to read a response — it gets `request_timeout_s` seconds in all, then it is closed."""

    request_timeout_s = REQUEST_TIMEOUT_S
    _deadline: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def pause_writing(self) -> None:  # the client stopped reading: its response must drain in time too
        super().pause_writing()
        self._arm()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Armed while the client owes us request bytes; disarmed once the whole request is in (the app's turn)."""
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) or self.flow.write_paused:
            self._arm()
        else:
            self._disarm()

    def _arm(self) -> None:
        if self._deadline is None and not self.transport.is_closing():
            self._deadline = self.loop.call_later(self.request_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        self.logger.debug("closing a connection that sent or read nothing in time")
        self.transport.close()


def config(app: Any, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration `tmath web` runs (tests and benchmarks/soak_web.py start the same one)."""
    return uvicorn.Config(app, host=host, port=port,
                          **{"http": DeadlineH11, "log_level": "warning", "access_log": False, **LIMITS, **overrides})


def serve(host: str, port: int) -> int:
    """`tmath web`: check the address, warn when it reaches beyond this machine, serve until Ctrl-C."""
    check_bind(host, port)
    warning = exposure_warning(host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    shown = f"[{host}]" if ":" in host else host
    print(f"transformer-math web app: http://{shown}:{port}/", flush=True)
    uvicorn.Server(config(create_app(bind_host=host), host, port)).run()
    return 0


class Background:
    """A server in a thread of this process, for tests and the soak benchmark: `with Background(app) as url: …`."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, **overrides: Any) -> None:
        self.server = uvicorn.Server(config(app, host, port, **overrides))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.025)
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
