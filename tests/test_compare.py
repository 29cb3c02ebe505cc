"""tmath compare: several models side by side; every number is analyze()'s for the same model and workload."""

from __future__ import annotations

import csv
import json

import pytest

import transformer_math as tm
from transformer_math.analysis.compare import KEYS, compare
from transformer_math.analysis.report import Conventions
from transformer_math.cli import main
from transformer_math.errors import TmathError

MODELS = ["llama-3.1-8b", "qwen3-30b-a3b", "gemma-3-4b"]
QUANTITIES = ("params.total", "params.active", "memory.weights_bytes", "memory.kv_cache_bytes", "flops.prefill",
              "flops.decode_token")


@pytest.mark.parametrize("workload", [{"batch": 1, "context": 2048, "weight_dtype": "auto", "kv_dtype": "bf16"},
                                      {"batch": 4, "context": 32768, "weight_dtype": "int4", "kv_dtype": "fp8"}])
def test_values_equal_analyze(workload):
    c = Conventions(attention="causal")
    rows = compare(MODELS, conventions=c, **workload)
    assert [r["model"] for r in rows] == MODELS and all(list(r) == list(KEYS) for r in rows)
    for model, row in zip(MODELS, rows, strict=True):
        report = tm.analyze(model, conventions=c, **workload)
        assert {k: row[k] for k in QUANTITIES} == {k: report.to_dict()[k] for k in QUANTITIES}
        s = report.spec
        assert (row["n_layers"], row["d_model"], row["n_heads"], row["n_kv_heads"], row["head_dim"],
                row["vocab_size"], row["max_context"]) == (s.n_layers, s.d_model, s.n_heads, s.n_kv_heads,
                                                            s.head_dim, s.vocab_size, s.max_context)
        assert row["n_experts"] == (s.moe.n_experts if s.moe else None)
        # per token: the cache of one sequence at L = 1, from analyze itself
        one = tm.analyze(model, batch=1, context=1, weight_dtype=workload["weight_dtype"],
                         kv_dtype=workload["kv_dtype"])
        assert row["memory.kv_per_token_bytes"] == one["memory.kv_cache_bytes"]


def test_model_count_and_bad_names():
    for models in (["gpt2"], ["gpt2"] * 17, "gpt2"):
        with pytest.raises(TmathError, match="^models:"):
            compare(models)
    with pytest.raises(TmathError, match="^model:"):
        compare(["gpt2", "no-such-model"])
    assert len(compare(["gpt2"] * 16)) == 16


def test_text_table_has_a_column_per_model(capsys):
    assert main(["compare", *MODELS, "-B", "2", "-L", "4Ki"]) == 0
    out = capsys.readouterr().out
    header, rule, *body = out.splitlines()
    assert header.split() == MODELS and len(rule.split()) == 1 + len(MODELS)
    rows = {line[:len(rule.split()[0])].strip(): line[len(rule.split()[0]):].split("  ") for line in body[:15]}
    assert "total params" in rows and "8.03 B" in out and "128/8" in out and "–" in out
    assert "2^30" in out and "TFLOP" in out
    for label in ("family", "total params", "weights (GiB)", "KV per token (KiB)", "decode FLOPs per token step"):
        assert len([c for c in rows[label] if c.strip()]) == len(MODELS), label


def test_json_has_raw_ints(capsys):
    assert main(["compare", *MODELS, "--context", "8192", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out, list) and [r["model"] for r in out] == MODELS
    for r in out:
        assert list(r) == list(KEYS)
        assert all(type(r[k]) is int for k in (*QUANTITIES, "memory.kv_per_token_bytes", "n_layers", "context"))
    assert out[0]["memory.kv_cache_bytes"] == tm.analyze(MODELS[0], context=8192)["memory.kv_cache_bytes"]


def test_csv_into_a_missing_directory(tmp_path, capsys):
    path = tmp_path / "new" / "deeper" / "cmp.csv"
    assert main(["compare", *MODELS, "--csv", str(path)]) == 0
    assert "wrote 3 models" in capsys.readouterr().out
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + len(MODELS)
    rows = list(csv.DictReader(lines))
    assert list(rows[0]) == list(KEYS) and [r["model"] for r in rows] == MODELS
    assert int(rows[1]["params.total"]) == tm.analyze(MODELS[1])["params.total"]


def test_one_model_is_a_one_line_error(capsys):
    assert main(["compare", "gpt2"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tmath: error: models: got 1") and not captured.out
    assert main(["compare", "gpt2", "no-such-model"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
