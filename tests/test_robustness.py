"""Bad input: one clear TmathError naming the field — never another exception, never a silent number."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import transformer_math as tm
from transformer_math.cli import main

BASE = tm.load_preset("llama-3.1-8b")["config"]
PRESET_CONFIGS = [tm.load_preset(n)["config"] for n in tm.list_presets()]

junk = st.one_of(st.none(), st.booleans(), st.integers(-10**13, 10**13), st.floats(allow_nan=True),
                 st.text(max_size=5), st.lists(st.integers(-3, 3), max_size=3),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@st.composite
def mutated(draw):
    cfg = json.loads(json.dumps(draw(st.sampled_from(PRESET_CONFIGS))))
    target = cfg["text_config"] if "text_config" in cfg and draw(st.booleans()) else cfg
    for _ in range(draw(st.integers(1, 3))):
        keys = sorted(target)
        action = draw(st.sampled_from(["set", "delete", "add"]))
        if action == "delete" and keys:
            target.pop(draw(st.sampled_from(keys)))
        elif action == "set" and keys:
            target[draw(st.sampled_from(keys))] = draw(junk)
        else:
            target[draw(st.text(min_size=1, max_size=8))] = draw(junk)
    return cfg


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(cfg=mutated(), batch=st.integers(-2, 10**10), context=st.integers(-2, 10**10))
def test_only_tmath_errors_escape(cfg, batch, context):
    try:
        r = tm.analyze(cfg, batch=batch, context=context)
    except tm.TmathError as e:
        assert str(e)
        return
    assert r["params.total"] > 0 and r["flops.prefill"] > 0
    if r.spec.arch == "encoder":  # bidirectional: no cache at all (tests/test_reference_encoders.py)
        assert "memory.kv_cache_bytes" not in r
        return
    # A window of 1 token caches nothing after the prefill (the cache holds S − 1 tokens, as Hugging Face's does)
    assert r["memory.kv_cache_bytes"] > 0 or all(layer.window == 1 for layer in r.spec.layers)


@pytest.mark.parametrize("change, field", [
    ({"model_type": "roberta"}, "model_type"),
    ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ({"hidden_size": -4096}, "hidden_size"),
    ({"num_key_value_heads": 5}, "n_kv_heads"),
    ({"num_hidden_layers": 10**12}, "num_hidden_layers"),
    ({"vocab_size": "128256"}, "vocab_size"),
    ({"intermediate_size": 1.5}, "intermediate_size"),
    ({"tie_word_embeddings": "yes"}, "tie_word_embeddings"),
    ({"hidden_act": "swiglu2"}, "hidden_act"),
])
def test_bad_field_named(change, field):
    with pytest.raises(tm.TmathError) as err:
        tm.analyze({**BASE, **change})
    assert field in str(err.value)


def test_experts_per_token_above_experts():
    cfg = {**tm.load_preset("mixtral-8x7b")["config"], "num_experts_per_tok": 9}
    with pytest.raises(tm.TmathError, match="experts_per_token"):
        tm.analyze(cfg)


def test_missing_key_named():
    cfg = dict(BASE)
    del cfg["hidden_size"]
    with pytest.raises(tm.TmathError, match="hidden_size.*required"):
        tm.analyze(cfg)


@pytest.mark.parametrize("argv", [
    ["analyze", "llama-3.1-8b", "--batch", "0"],
    ["analyze", "llama-3.1-8b", "--weight-dtype", "int3"],
    ["analyze", "llama-3.1-8b", "--kv-dtype", "fp7"],
    ["analyze", "llama-3.1-8c"],
    ["analyze", "/nonexistent/config.json"],
    ["explain", "llama-3.1-8b", "memory.nothing"],
])
def test_cli_bad_input_one_line_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tmath: error:")


def test_cli_malformed_json(tmp_path, capsys):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    assert main(["analyze", str(bad)]) == 2
    assert "valid JSON" in capsys.readouterr().err


def test_unwritable_output_is_one_line(capsys):
    assert main(["sweep", "gpt2", "--csv", "/proc/no/such/dir/grid.csv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tmath: error:")
