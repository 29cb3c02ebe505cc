"""Hostile requests, by hand: each once got a 5xx, a traceback, a hang or unbounded memory (see web/guard.py,
web/slots.py). They go through httpx's ASGI transport; what lives on the wire (chunked bodies, Content-Length
lies, slow and idle clients) is in test_web_wire.py.
"""

import asyncio
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

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
