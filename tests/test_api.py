"""The public API: every exported name imports, is documented and typed; a Report reads like a mapping."""

from __future__ import annotations

import inspect

import pytest

import transformer_math as tm


def test_exported_names_are_importable_documented_and_typed():
    for name in tm.__all__:
        obj = getattr(tm, name)
        assert inspect.getdoc(obj), name
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)
            assert sig.return_annotation is not inspect.Signature.empty, name
            for p in sig.parameters.values():
                assert p.annotation is not inspect.Parameter.empty or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL), \
                    (name, p.name)
    assert {"analyze", "serve", "train", "search", "chinchilla", "load_model"} <= set(tm.__all__)


def test_report_reads_like_a_mapping():
    r = tm.analyze("llama-3.1-8b")
    assert "params.total" in r and len(r) == len(list(r)) == len(r.keys())
    assert dict(r.items())["params.total"] == r["params.total"] == 8_030_261_248  # Meta's model card: 8.03 B
    assert r.get("no.such.key", -1) == -1
    with pytest.raises(KeyError, match="did you mean params.total"):
        r["params.totl"]
