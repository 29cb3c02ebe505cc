"""The JSON API returns exactly what the CLI prints; bad requests are 4xx naming the field."""

import json

import pytest

from transformer_math.cli import main

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from transformer_math.web.app import MAX_BODY, app  # noqa: E402

client = TestClient(app, base_url="http://localhost")  # the Host the app answers (not "testserver")


def cli_json(argv, capsys):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_analyze_equals_cli(capsys):
    api = client.post("/api/analyze", json={"model": "gemma-3-4b", "batch": 3, "context": 5000, "kv_dtype": "fp8"})
    assert api.status_code == 200
    cli = cli_json(["analyze", "gemma-3-4b", "--batch", "3", "--context", "5000", "--kv-dtype", "fp8", "--json"], capsys)
    assert api.json() == json.loads(json.dumps(cli))


def test_serve_and_train_equal_cli(capsys):
    api = client.post("/api/serve", json={"model": "llama-3.1-8b", "gpu": "a100-80gb", "batch": 8, "tp": 2}).json()
    cli = cli_json(["serve", "llama-3.1-8b", "--gpu", "a100-80gb", "--batch", "8", "--tp", "2", "--json"], capsys)
    for k in ("fits", "memory_per_gpu_bytes", "ttft_s", "tpot_s", "tokens_per_s", "max_batch"):
        assert api[k] == cli[k]
    api = client.post("/api/train", json={"model": "qwen3-8b", "gpu": "h100-sxm", "gpus": 16, "tp": 2,
                                          "global_batch": 32, "seq": 2048}).json()
    cli = cli_json(["train", "qwen3-8b", "--gpu", "h100-sxm", "--gpus", "16", "--tp", "2", "--global-batch", "32",
                    "--seq", "2048", "--sequence-parallel", "--json"], capsys)
    for k in ("fits", "memory_per_gpu_bytes", "step_time_s", "tflops_per_gpu", "mfu", "days"):
        assert api[k] == cli[k]


def test_custom_config_and_compare():
    cfg = {"model_type": "llama", "vocab_size": 99, "hidden_size": 64, "intermediate_size": 37,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 24}
    r = client.post("/api/analyze", json={"config": cfg}).json()
    assert r["params.total"] == 64064  # counted by HF on the meta device (tests/test_random_configs.py)
    rows = client.post("/api/compare", json={"models": ["llama-3.1-8b", "qwen3-8b"]}).json()
    assert [x["params.total"] for x in rows] == [8_030_261_248, 8_190_735_360]


@pytest.mark.parametrize("body, field", [
    ({"config": {"model_type": "bert"}}, "model_type"),
    ({"model": "llama-3.1-8c"}, "model"),
    ({"model": "/etc/passwd"}, "model"),
    ({"model": "gpt2", "batch": 0}, "batch"),
    ({"model": "gpt2", "context": 10**12}, "context"),
    ({"model": "gpt2", "kv_dtype": "fp7"}, "kv_dtype"),
    ({"config": {"model_type": "llama", "hidden_size": -1}}, "hidden_size"),
])
def test_bad_analyze_requests(body, field):
    r = client.post("/api/analyze", json=body)
    assert r.status_code == 422 and field in r.json()["field"] + r.json()["detail"]


def test_malformed_json_oversized_body_and_paths():
    r = client.post("/api/analyze", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "malformed JSON" in r.json()["detail"]
    big = b'{"config": {"x": "' + b"a" * MAX_BODY + b'"}}'
    assert client.post("/api/analyze", content=big, headers={"content-type": "application/json"}).status_code == 413
    assert client.post("/api/serve", json={"model": "gpt2", "gpu": "/tmp/x.json"}).status_code == 422
    assert client.post("/api/curve", json={"model": "gpt2", "contexts": list(range(1, 100))}).status_code == 422
    assert client.post("/api/train", json={"model": "gpt2", "gpus": 10**9}).status_code == 422
    assert client.get("/static/../../app.py").status_code == 404


def test_page_symbols_and_offline_plotly():
    assert "transformer-math" in client.get("/").text
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000  # served from the plotly package, no CDN
    page = client.get("/symbols").text
    assert "id='M_KV'" in page and "id='N_L'" in page
    assert "cdn" not in client.get("/").text.lower()
