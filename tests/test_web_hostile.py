"""Hostile requests, by hand: each once got a 5xx, a traceback, a hang or unbounded memory (see web/guard.py,
web/slots.py, web/server.py). Most go through httpx's ASGI transport; what lives on the wire (chunked bodies,
Content-Length lies, slow and idle clients) goes over raw sockets to a real uvicorn server in a thread, started
with the configuration `tmath web` uses and short timeouts.
"""

import asyncio
import json
import os
import socket
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from transformer_math.cli import main  # noqa: E402
from transformer_math.web import server  # noqa: E402
from transformer_math.web.app import MAX_BODY, app, create_app  # noqa: E402
from transformer_math.web.guard import MAX_DEPTH  # noqa: E402

JSON = {"content-type": "application/json"}


def call(method, path, *, application=app, host="localhost", **kw):
    """One request through the ASGI transport (the app's exceptions become its 500s, as on a real server)."""
    async def go():
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as c:
            return await c.request(method, path, **kw)
    return asyncio.run(go())


def post(path, body: bytes, **kw):
    return call("POST", path, content=body, headers=JSON, **kw)


def error(r, status, field=None):
    """r is the ErrorBody of `status` (naming `field` when given)."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"detail", "field"} and isinstance(body["detail"], str), body
    assert "Traceback" not in r.text and "NaN" not in r.text
    if field is not None:
        assert body["field"] == field, body
    return body


# ------------------------------------------------------------------------------------------------------------------
# Host header (DNS rebinding)


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:65535",
                                  "[::1]", "[::1]:8000"])
def test_loopback_hosts_are_answered(host):
    assert call("GET", "/api/presets", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io",
                                  "10.0.0.1:8000", "::1", "[::1", "[evil]:80", "localhost:http", "", "testserver"])
def test_other_hosts_are_refused(host):
    error(call("GET", "/api/presets", headers={"host": host}), 400, "host")
    error(call("POST", "/api/analyze", json={"model": "gpt2"}, headers={"host": host}), 400, "host")
    error(call("GET", "/", headers={"host": host}), 400, "host")


def test_the_bound_address_is_answered_too():
    lan = create_app(bind_host="192.168.1.5")
    assert call("GET", "/api/presets", application=lan, headers={"host": "192.168.1.5:8000"}).status_code == 200
    error(call("GET", "/api/presets", application=lan, headers={"host": "evil.example"}), 400, "host")
    wild = create_app(bind_host="0.0.0.0")  # reached by any of this machine's addresses; names are still checked
    assert call("GET", "/api/presets", application=wild, headers={"host": "10.1.2.3:8000"}).status_code == 200
    error(call("GET", "/api/presets", application=wild, headers={"host": "evil.example:8000"}), 400, "host")


# ------------------------------------------------------------------------------------------------------------------
# routes, methods, static files


@pytest.mark.parametrize("path", ["/static/..%2F..%2Fapp.py", "/static/%2e%2e%2fguard.py", "/static/app.py",
                                  "/static/%2e%2e", "/static/.%2E/web/app.py", "/static/%00", "/static/" + "a" * 5000])
def test_static_serves_its_three_files_only(path):
    r = call("GET", path)
    assert r.status_code == 404 and "import" not in r.text and r.json()["field"] in ("name", "path")


def test_unknown_routes_and_wrong_methods_are_json():
    error(call("GET", "/nope"), 404, "path")
    error(call("GET", "/api/analyze/../../etc/passwd"), 404, "path")
    r = error(call("PUT", "/api/analyze", json={}), 405, "method")
    assert call("DELETE", "/api/presets").headers["allow"] == "GET"
    assert "POST" in r["detail"]
    error(call("GET", "/api/train"), 405, "method")


# ------------------------------------------------------------------------------------------------------------------
# bodies: JSON the parser accepts and the app must not


@pytest.mark.parametrize("body, field", [
    (b"{nope", "body"),
    (b"", "body"),
    (b"[1, 2]", "body"),
    (b'"gpt2"', "body"),
    (b"null", "body"),
    (b"\xff\xfe\x00", "body"),
    (b'{"model": "gpt2"' + b" " * 100 + b"", "body"),
])
def test_malformed_or_wrong_json(body, field):
    error(post("/api/analyze", body), 422, field)


def test_not_json_content_types():
    error(call("POST", "/api/analyze", content=b'{"model": "gpt2"}', headers={"content-type": "text/plain"}), 422)
    error(call("POST", "/api/analyze", content=b'{"model": "gpt2"}'), 422)


@pytest.mark.parametrize("depth", [10**5, 2000, 990, MAX_DEPTH + 1])
@pytest.mark.parametrize("path", ["/api/analyze", "/api/train"])
def test_deeply_nested_json(depth, path):
    nested = b"[" * depth + b"]" * depth
    error(post(path, b'{"model": "gpt2", "config": {"x": ' + nested + b"}}"), 422)
    error(post(path, nested), 422, "body")


def test_nesting_a_config_needs_is_fine():
    cfg = {"model_type": "llama", "vocab_size": 99, "hidden_size": 64, "intermediate_size": 37,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 24,
           "rope_scaling": {"type": "llama3", "factor": 8.0, "deep": {"a": [[{"b": [1]}]]}}}
    r = call("POST", "/api/analyze", json={"config": cfg})
    assert r.status_code == 200 and r.json()["params.total"] == 64064


@pytest.mark.parametrize("literal", [b"1" * 5000, b"-" + b"9" * 4300, b"1" * 401])
def test_huge_integer_literals(literal):
    error(post("/api/analyze", b'{"model": "gpt2", "batch": ' + literal + b"}"), 422, "body")
    error(post("/api/analyze", b'{"config": {"model_type": "llama", "hidden_size": ' + literal + b"}}"), 422, "body")
    error(post("/api/train", b'{"model": "gpt2", "tokens": ' + literal + b"}"), 422, "body")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])
@pytest.mark.parametrize("where", [b'{"model": "gpt2", "gpu": "l4", "acceptance": %s}',
                                   b'{"model": "gpt2", "price": %s}', b'{"model": "gpt2", "tokens": %s}',
                                   b'{"config": {"model_type": "llama", "rope_theta": %s}}',
                                   b'{"model": "gpt2", "batch": %s}'])
def test_nan_and_infinity_literals(literal, where):
    for path in ("/api/serve", "/api/train", "/api/analyze"):
        error(post(path, where % literal), 422)


@pytest.mark.parametrize("body, field", [
    (b'{"config": {"model_type": "\\ud800"}}', "config.model_type"),
    (b'{"config": {"\\udfff": 1, "model_type": "llama"}}', "config"),
    (b'{"model": "gpt2", "weight_dtype": "int4\\ud800"}', "weight_dtype"),
    (b'{"model": "gpt2", "kv_dtype": "\\udc00"}', "kv_dtype"),
    (b'{"model": "\\ud800"}', "model"),
    (b'{"config": {"model_type": "llama", "layer_types": ["full", "\\ud83d"]}}', "config.layer_types.1"),
])
def test_lone_surrogates(body, field):
    error(post("/api/analyze", body), 422, field)
    error(post("/api/serve", body), 422, field)


def test_surrogate_pairs_are_unicode():
    r = post("/api/analyze", b'{"model": "gpt2", "kv_dtype": "\\ud83d\\ude00"}')  # 😀: valid, just not a dtype
    error(r, 422, "kv_dtype")


@pytest.mark.parametrize("field", ["weight_dtype", "kv_dtype"])
def test_long_strings_are_bounded_by_the_schema(field):
    error(call("POST", "/api/analyze", json={"model": "gpt2", field: "x" * 100_000}), 422, field)
    error(call("POST", "/api/train", json={"model": "gpt2", "lora_targets": "q," * 50_000}), 422, "lora_targets")


def test_long_strings_inside_a_config():
    r = call("POST", "/api/analyze", json={"config": {"model_type": "llama" + "x" * 500_000}})
    error(r, 422, "model_type")
    assert len(r.text) < 2000  # the value is not echoed back in full


def test_body_at_the_cap_is_read_and_one_byte_more_is_not():
    body = b'{"model": "gpt2"}'
    assert post("/api/analyze", body + b" " * (MAX_BODY - len(body))).status_code == 200
    error(post("/api/analyze", body + b" " * (MAX_BODY + 1 - len(body))), 413, "body")
    error(call("POST", "/api/analyze", content=body, headers={**JSON, "content-length": "abc"}), 400, "body")


def test_schema_valid_input_never_500s():
    """The library's own errors (the other side of these inputs) are 422s, whatever the values."""
    for body in [{"config": {"model_type": "llama", "hidden_size": 10**300}},
                 {"config": {"model_type": "llama", "hidden_size": 1e308, "num_hidden_layers": -0.0}},
                 {"config": {"model_type": "llama", "num_hidden_layers": [], "vocab_size": {}}},
                 {"config": {}}, {}, {"model": None, "config": None}]:
        r = call("POST", "/api/analyze", json=body)
        assert 400 <= r.status_code < 500, (body, r.text)
        error(r, r.status_code)


def test_unexpected_errors_are_500_json_without_traceback(monkeypatch):
    from transformer_math.web import app as web

    def boom(r):
        raise RuntimeError("secret internals /home/user/.ssh")

    monkeypatch.setattr(web, "_analyze", boom)
    monkeypatch.setattr(web, "_train", boom)
    for path in ("/api/analyze", "/api/train"):
        body = error(call("POST", path, json={"model": "gpt2"}), 500, "server")
        assert "secret" not in body["detail"] and "RuntimeError" in body["detail"]


# ------------------------------------------------------------------------------------------------------------------
# bounded work: computation slots


def test_a_busy_server_answers_503_and_recovers():
    busy = create_app(slots=1, slot_wait_s=0.2)
    release = threading.Event()
    held = busy.state.slots._pool.submit(release.wait, 10)  # the one slot, taken

    async def burst(n):
        transport = httpx.ASGITransport(app=busy, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            return await asyncio.gather(*[c.post("/api/serve", json={"model": "gpt2", "gpu": "l4"})
                                          for _ in range(n)])

    t0 = time.monotonic()
    rs = asyncio.run(asyncio.wait_for(burst(20), 5))
    assert time.monotonic() - t0 < 3
    for r in rs:
        error(r, 503, "server")
        assert r.headers["retry-after"].isdigit() and r.json()["detail"].startswith("busy")
    assert call("GET", "/api/presets", application=busy).status_code == 200  # light endpoints do not queue
    release.set()
    held.result(5)
    assert call("POST", "/api/serve", application=busy, json={"model": "gpt2", "gpu": "l4"}).status_code == 200


def test_many_concurrent_requests_all_answered():
    small = create_app(slots=1, slot_wait_s=0.3)

    async def burst():
        transport = httpx.ASGITransport(app=small, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            reqs = [c.post("/api/train", json={"model": "llama-3.1-70b", "gpus": 4096, "search": True}),
                    c.post("/api/curve", json={"model": "qwen3-8b", "gpu": "l4"}),
                    c.post("/api/compare", json={"models": ["gpt2", "qwen3-8b"]}),
                    c.post("/api/analyze", json={"model": "gpt2"})] * 15
            return await asyncio.gather(*reqs)

    rs = asyncio.run(asyncio.wait_for(burst(), 30))
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 503} and codes.count(200) >= 15, codes  # every analyze, some plans, no hang
    assert all(r.status_code == 200 for r in rs[3::4])


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
