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
    cli = cli_json(["analyze", "gemma-3-4b", "--batch", "3", "--context", "5000", "--kv-dtype", "fp8", "--json"],
                   capsys)
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


TINY = {"model_type": "llama", "vocab_size": 99, "hidden_size": 64, "intermediate_size": 37, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 24}


def test_compare_takes_configs_as_the_analysis_does():
    """Presets and config.json objects side by side: each row what /api/analyze says of it, presets' rows first."""
    body = {"models": ["qwen3-8b"], "batch": 4, "context": 1000, "kv_dtype": "fp8",
            "configs": [{"config": TINY, "name": "tiny"}, {"config": {**TINY, "_name_or_path": "me/tiny"}},
                        {"config": {**TINY, "hidden_size": 128, "head_dim": 32}}]}
    r = client.post("/api/compare", json=body)
    assert r.status_code == 200, r.text
    rows = r.json()
    assert [x["model"] for x in rows] == ["qwen3-8b", "tiny", "me/tiny", "config 3"]
    assert rows[1]["params.total"] == rows[2]["params.total"] == 64064
    alone = client.post("/api/analyze", json={"config": TINY, "batch": 4, "context": 1000, "kv_dtype": "fp8"}).json()
    assert rows[1]["memory.kv_cache_bytes"] == alone["memory.kv_cache_bytes"] == 4 * 1000 * 2 * 2 * 2 * 24 * 1
    assert client.post("/api/compare", json={"configs": [{"config": TINY}]}).json()[0]["model"] == "config 1"


@pytest.mark.parametrize("body, field", [
    ({}, "models"),
    ({"models": [], "configs": []}, "models"),
    ({"models": ["gpt2"] * 5, "configs": [{"config": TINY}] * 4}, "models"),
    ({"configs": [{"config": {"model_type": "roberta"}}]}, "model_type"),
    ({"configs": [{"config": {**TINY, "hidden_size": -1}}]}, "hidden_size"),
    ({"configs": [{"name": "x"}]}, "configs.0.config"),
    ({"configs": [{"config": TINY, "name": "x" * 101}]}, "configs.0.name"),
    ({"models": ["/etc/passwd"]}, "models.0"),
])
def test_bad_compare_requests(body, field):
    r = client.post("/api/compare", json=body)
    assert r.status_code == 422 and field in r.json()["field"] + r.json()["detail"], r.text


def test_view_is_every_part_in_one_answer():
    """/api/view: what the page shows, each part what its own endpoint answers for the same inputs."""
    serve = {"gpu": "a100-80gb", "batch": 8, "tp": 2, "prompt": 3000, "gen": 100, "kv_dtype": "fp8"}
    train = {"gpu": "h100-sxm", "gpus": 16, "tp": 2, "global_batch": 32, "seq": 3000}
    analyze = {"batch": 8, "context": 3000, "kv_dtype": "fp8", "recompute": "selective"}
    body = {"model": "llama-3.1-8b", "analyze": analyze, "serve": serve, "train": train, "curve": [512, 8192],
            "compare": {"models": ["qwen3-8b", "llama-3.1-8b"], "configs": [{"config": TINY, "name": "tiny"}]}}
    for _ in range(2):  # the second answer comes partly from the view's memo: the same
        v = client.post("/api/view", json=body)
        assert v.status_code == 200, v.text
        v = v.json()
        assert v["analysis"] == client.post("/api/analyze", json={"model": "llama-3.1-8b", **analyze}).json()
        assert v["serve"] == client.post("/api/serve", json={"model": "llama-3.1-8b", **serve}).json()
        assert v["train"] == client.post("/api/train", json={"model": "llama-3.1-8b", **train}).json()
        assert v["curve"] == client.post("/api/curve", json={"model": "llama-3.1-8b", **serve,
                                                             "contexts": [512, 8192]}).json()
        compare = client.post("/api/compare", json={"models": ["llama-3.1-8b", "qwen3-8b"], "batch": 8,
                                                     "context": 3000, "kv_dtype": "fp8",
                                                     "configs": [{"config": TINY, "name": "tiny"}]}).json()
        assert v["compare"] == compare  # this model first, once
    v = client.post("/api/view", json={"config": TINY, "compare": {"models": ["gpt2"]}}).json()
    assert [r["model"] for r in v["compare"]] == ["llama", "gpt2"] and v["compare"][0]["params.total"] == 64064
    assert v["analysis"]["params.total"] == 64064 and v["serve"]["fits"] and v["curve"][0]["context"] == 256


@pytest.mark.parametrize("body, status, field", [
    ({}, 422, "model"),
    ({"model": "gpt2", "analyze": {"batch": 0}}, 422, "analyze.batch"),
    ({"model": "gpt2", "serve": {"gpu": "/tmp/x.json"}}, 422, "serve.gpu"),
    ({"model": "gpt2", "curve": [2**30]}, 422, "contexts"),
    ({"model": "gpt2", "curve": list(range(1, 10))}, 422, "curve"),
    ({"model": "gpt2", "compare": {}}, 422, "compare"),
    ({"model": "gpt2", "compare": {"models": ["gpt2"] * 8}}, 422, "compare"),
    ({"config": {"model_type": "roberta"}}, 422, "model_type"),
])
def test_bad_view_requests(body, status, field):
    r = client.post("/api/view", json=body)
    assert r.status_code == status and field in r.json()["field"] + r.json()["detail"], r.text


@pytest.mark.parametrize("body, field", [
    ({"config": {"model_type": "roberta"}}, "model_type"),
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
