"""Hostile clients on the wire: chunked bodies, Content-Length lies, slow, idle and stalled clients, oversized
headers — over raw sockets to a real uvicorn server in a thread, started with the configuration `tmath web` uses
and short timeouts (web/server.py); and the address `tmath web` binds. Requests that need no socket are in
test_web_hostile.py.
"""

import json
import os
import socket
import threading
import time

import pytest

pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from transformer_math.cli import main  # noqa: E402
from transformer_math.web import server  # noqa: E402
from transformer_math.web.app import create_app  # noqa: E402

# ------------------------------------------------------------------------------------------------------------------
# the wire: a real server, raw sockets


class QuickDeadline(server.DeadlineH11):
    request_timeout_s = 1.0


@pytest.fixture(scope="module")
def addr():
    with server.Background(create_app(body_timeout_s=0.5), http=QuickDeadline) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def connect(addr):
    s = socket.create_connection(addr, timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s):
    """(status, headers, body) of one response, or None if the server closed the connection first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return None
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers.get("content-length", 0)):
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed_within(s, seconds):
    """The server closed the connection (EOF or reset) within `seconds`."""
    s.settimeout(seconds)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def request(path, body=b"", extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}\r\n").encode() + body


def rss_mib():
    """This process's resident memory now (the server runs in one of its threads)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def test_wire_ok(addr):
    with connect(addr) as s:
        body = b'{"model": "gpt2"}'
        s.sendall(request("/api/analyze", body, f"Content-Length: {len(body)}\r\n"))
        status, _, out = read_response(s)
        assert status == 200 and json.loads(out)["params.total"] > 0


def test_chunked_body_over_the_cap_is_cut_off(addr):
    """128 MiB chunked: refused once 1 MiB is in, without holding the rest (RSS) or waiting for it."""
    before = rss_mib()
    sent = [0]
    with connect(addr) as s:
        s.sendall(request("/api/analyze", extra="Transfer-Encoding: chunked\r\n"))
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)

        def flood():
            try:
                while sent[0] < 128 * 2**20:
                    s.sendall(chunk)
                    sent[0] += 65536
                s.sendall(b"0\r\n\r\n")
            except OSError:
                pass

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        status, headers, body = read_response(s)
        assert status == 413 and json.loads(body)["field"] == "body" and headers["connection"] == "close"
        t.join(5)
    assert sent[0] < 32 * 2**20 and rss_mib() - before < 64


def test_content_length_over_the_cap_is_refused_before_the_body(addr):
    with connect(addr) as s:
        s.sendall(request("/api/analyze", extra=f"Content-Length: {128 * 2**20}\r\n"))
        status, _, body = read_response(s)
        assert status == 413 and json.loads(body)["field"] == "body"


def test_content_length_smaller_than_the_body(addr):
    """The body is cut at Content-Length (malformed JSON, 422); the rest is a garbage request (400), then close."""
    body = b'{"model": "gpt2", "batch": 3}'
    with connect(addr) as s:
        s.sendall(request("/api/analyze", body, "Content-Length: 10\r\n"))
        status, _, out = read_response(s)
        assert status == 422 and json.loads(out)["field"] == "body"
        second = read_response(s)
        assert second is None or second[0] == 400
        assert closed_within(s, 3)


def test_content_length_larger_than_the_body_times_out(addr):
    body = b'{"model": "gpt2"}'
    with connect(addr) as s:
        t0 = time.monotonic()
        s.sendall(request("/api/analyze", body, "Content-Length: 1000\r\n"))
        status, _, out = read_response(s)
        assert status == 408 and json.loads(out)["field"] == "body" and time.monotonic() - t0 < 3
        assert closed_within(s, 2)


def test_slow_body_times_out(addr):
    """A byte every 0.1 s keeps the connection busy, never complete: 408 at the body deadline."""
    body = b'{"model": "gpt2", "weight_dtype": "' + b"a" * 100 + b'"}'
    with connect(addr) as s:
        s.sendall(request("/api/analyze", extra=f"Content-Length: {len(body)}\r\n"))
        t0 = time.monotonic()
        s.settimeout(0.1)
        for b in body:
            s.sendall(bytes([b]))
            try:
                if s.recv(1, socket.MSG_PEEK):
                    break
            except TimeoutError:
                continue
        s.settimeout(5)
        status, _, out = read_response(s)
        assert status == 408 and json.loads(out)["field"] == "body" and time.monotonic() - t0 < 3


def test_idle_connection_is_closed(addr):
    with connect(addr) as s:
        t0 = time.monotonic()
        assert closed_within(s, 5) and time.monotonic() - t0 < 3


def test_trickled_headers_are_cut_off(addr):
    """Each byte would reset uvicorn's own keep-alive timer; the request deadline does not move."""
    with connect(addr) as s:
        t0 = time.monotonic()
        try:
            for b in b"GET /api/presets HTTP/1.1\r\nX-Slow: " + b"a" * 100:
                s.sendall(bytes([b]))
                time.sleep(0.05)
                if time.monotonic() - t0 > 4:
                    break
        except OSError:
            pass
        assert closed_within(s, 2) and time.monotonic() - t0 < 3


def test_a_client_that_stops_reading_is_cut_off(addr):
    """Asks for plotly.min.js (4.8 MB) and reads nothing: once the socket buffers are full, the server waits
    request_timeout_s for the client to read, then closes (uvicorn alone would wait forever)."""
    import plotly

    size = os.path.getsize(os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js"))
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        if int(f.read().split()[-1]) >= size:
            pytest.skip("this kernel's send buffer would hold the whole file: no stall to cut off")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    with s:
        s.connect(addr)
        s.sendall(b"GET /static/plotly.min.js HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(2.5)
        s.settimeout(2)
        got = b""
        try:
            while chunk := s.recv(1 << 20):
                got += chunk
        except ConnectionResetError:
            pass
        head, _, body = got.partition(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n")[0] and 0 < len(body) < size


def test_oversized_headers_are_refused(addr):
    """A head still incomplete past 32 KiB is refused (h11_max_incomplete_event_size) instead of buffered on."""
    with connect(addr) as s:
        s.sendall(b"GET /api/presets HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20_000)
        time.sleep(0.1)
        s.sendall(b"a" * 20_000)
        status, _, _ = read_response(s)
        assert status == 400


def test_keep_alive_still_works_and_host_is_checked_on_the_wire(addr):
    with connect(addr) as s:
        for _ in range(3):
            s.sendall(b"GET /api/presets HTTP/1.1\r\nHost: localhost:8000\r\n\r\n")
            assert read_response(s)[0] == 200
        s.sendall(b"GET /api/presets HTTP/1.1\r\nHost: attacker.example\r\n\r\n")
        status, _, body = read_response(s)
        assert status == 400 and json.loads(body)["field"] == "host"


def test_both_content_length_and_chunked_is_not_a_5xx(addr):
    with connect(addr) as s:
        s.sendall(request("/api/analyze", b"5\r\nhello\r\n0\r\n\r\n",
                          "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"))
        out = read_response(s)
        assert out is None or out[0] in (400, 422)


# ------------------------------------------------------------------------------------------------------------------
# tmath web: the address


@pytest.mark.parametrize("argv, message", [
    (["--port", "70000"], "port: got 70000; an integer from 1 to 65535"),
    (["--port", "0"], "port: got 0"),
    (["--port", "-1"], "port: got -1"),
    (["--host", "not a host!"], "host: got 'not a host!'"),
    (["--host", ""], "host: got ''"),
    (["--host=-x"], "host: got '-x'"),
])
def test_bad_address_is_one_line_error(argv, message, capsys):
    assert main(["web", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tmath: error: ") and message in err and "Traceback" not in err


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("localhost", False), ("::1", False),
                                          ("0.0.0.0", True), ("::", True), ("192.168.1.5", True)])
def test_binding_beyond_loopback_warns(host, warned, monkeypatch, capsys):
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: started.append(self.config))
    assert main(["web", "--host", host, "--port", "8123"]) == 0
    err = capsys.readouterr().err
    assert ("warning" in err and "without authentication" in err) == warned
    cfg = started[0]
    assert cfg.host == host and cfg.port == 8123 and cfg.limit_concurrency and cfg.http is server.DeadlineH11
