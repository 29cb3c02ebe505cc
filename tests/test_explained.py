"""Every number is explained: each quantity's substituted formula evaluates back to its value."""

import math
import re

import pytest

import transformer_math as tm
from transformer_math.formulas._registry import REGISTRY

EVALUABLE = re.compile(r"^[0-9·+\-*/() ]+$")


@pytest.mark.parametrize("name", tm.list_presets())
def test_substituted_formulas_evaluate_to_values(name):
    r = tm.analyze(name, batch=3, context=5000, kv_dtype="int4-g64-zp")
    checked = 0
    for top in r.quantities.values():
        for x in top.walk():
            text = x.substituted
            if x.formula_id is None:
                assert sum(c.value for c in x.children) == x.value
                continue
            if not EVALUABLE.match(text):
                continue
            value = eval(text.replace("·", "*"))  # noqa: S307 - digits and operators only
            assert math.ceil(value - 1e-9) == x.value, (x.key, text)
            checked += 1
    assert checked > 10


def test_every_formula_has_source_and_unit():
    for f in REGISTRY.values():
        assert f.source and f.unit and f.expr and f.symbol


def test_weight_dtype_groups():
    """Mixtral with int4 experts (g_q = 128, fp16 scale: 4.125 bits) and bf16 elsewhere."""
    r = tm.analyze("mixtral-8x7b", weight_dtype="experts=int4,*=bf16")
    groups = r.to_dict()["params.by_group"]
    experts = groups.pop("experts")
    assert r["memory.weights_bytes"] == math.ceil(experts * 33 / 64) + 2 * sum(groups.values())


def test_quantized_dtype_bytes():
    from transformer_math.units import parse_dtype

    assert parse_dtype("int4-g128-zp").bytes_per_element * 128 == 64 + 2 + 0.5  # data + fp16 scale + 4-bit zp
    assert float(parse_dtype("mxfp4").bytes_per_element) * 8 == 4.25
    assert float(parse_dtype("nf4").bytes_per_element) * 8 == 4.5
    with pytest.raises(tm.TmathError, match="dtype"):
        parse_dtype("int3")


def test_causal_convention_counts_unmasked_pairs():
    """Causal prefill: T(T+1)/2 pairs on full layers, ≤ S per query on window layers."""
    T = 4096
    spec = tm.load_model("gpt-oss-20b")
    dense = tm.analyze(spec, context=T)
    causal = tm.analyze(spec, context=T, conventions=tm.Conventions(attention="causal"))
    per_pair = 2 * 2 * spec.n_heads * spec.head_dim  # QK^T + PV per query-key pair
    S = 128
    pairs_dense = 24 * T * T
    pairs_causal = 12 * T * (T + 1) // 2 + 12 * (S * (S + 1) // 2 + (T - S) * S)
    assert dense["flops.prefill"] - causal["flops.prefill"] == per_pair * (pairs_dense - pairs_causal)


def test_training_step_is_three_forwards_plus_recompute():
    fwd = tm.analyze("llama-3.1-8b", context=4096)["flops.prefill"]
    full = tm.analyze("llama-3.1-8b", context=4096, conventions=tm.Conventions(recompute="full"))
    spec = tm.load_model("llama-3.1-8b")
    head = 2 * 4096 * spec.d_model * spec.vocab_size
    assert full["flops.train_step"] == 3 * fwd + (fwd - head)
