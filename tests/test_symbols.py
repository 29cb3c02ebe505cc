"""The symbol dictionary (transformer_math.symbols) and its generated page docs/symbols.md."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from transformer_math.symbols import SYMBOLS, UNITS, Symbol, lookup, render_table

ROOT = Path(__file__).resolve().parent.parent
FIELDS = [f.name for f in dataclasses.fields(Symbol)]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_symbols_doc", ROOT / "scripts" / "gen_symbols_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_symbol_is_frozen_slotted_keyword_only():
    s = SYMBOLS[0]
    assert FIELDS == ["code", "ascii", "latex", "unit", "meaning", "section"]
    assert not hasattr(s, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.code = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Symbol("a", "b", "c", "d", "e", "f")  # type: ignore[misc]


@pytest.mark.parametrize("sym", SYMBOLS, ids=lambda s: s.code)
def test_fields_non_empty_and_unit_known(sym: Symbol):
    for name in FIELDS:
        value = getattr(sym, name)
        assert isinstance(value, str) and value.strip(), f"{sym.code}.{name} is empty"
    assert sym.unit in UNITS
    assert sym.section.startswith(("§", "project"))
    assert sym.ascii.isascii() and sym.code.isascii()
    assert sym.code == sym.code.lower() and " " not in sym.code


def test_codes_and_ascii_unique_and_unambiguous():
    codes = [s.code for s in SYMBOLS]
    asciis = [s.ascii for s in SYMBOLS]
    assert len(set(codes)) == len(codes)
    assert len(set(asciis)) == len(asciis)
    # A name that is one symbol's code and another's ASCII spelling would make lookup ambiguous.
    for s in SYMBOLS:
        assert all(o is s for o in SYMBOLS if s.code in (o.code, o.ascii))


REQUIRED = """N_L d h_q h_kv g_GQA d_h d_ff r_ff g_up L_max L S k_sinks d_rope theta_base s_rope V 1_tie E e N_L,moe
    d_moe
    1_shared b b_w b_a b_kv b_m b_v q_w q_kv g_q 1_zp B B_seq L_train A n_GPU T_train D_p T_p P_p S_p E_p F_peak BW_HBM
    BW_NVLink BW_NIC eta_compute eta_bw P P_active P_tok P_expert M_param M_opt M_grad M_act M_KV F_proj F_attn F_mlp
    F_router F_decode F_prefill I rho_comm phi_cache chi T_tok/s n_pairs L_kv d_c d_h^rope d_v n_norm k_norm""".split()


def test_required_symbols_present():
    asciis = {s.ascii for s in SYMBOLS}
    assert [name for name in REQUIRED if name not in asciis] == []


def test_conventions_code_names():
    expected = {"N_L": "n_layers", "d": "d_model", "h_q": "n_heads", "h_kv": "n_kv_heads", "d_h": "head_dim",
                "d_ff": "d_ff", "g_up": "n_up", "V": "vocab_size", "1_tie": "tie_embeddings", "L_max": "max_context",
                "S": "window", "k_sinks": "n_sink_tokens", "theta_base": "rope_theta", "s_rope": "rope_scaling",
                "E": "n_experts", "e": "experts_per_token", "d_moe": "d_moe", "1_shared": "n_shared_experts"}
    assert {a: lookup(a).code for a in expected} == expected


@pytest.mark.parametrize("sym", SYMBOLS, ids=lambda s: s.code)
def test_lookup_by_code_and_ascii(sym: Symbol):
    assert lookup(sym.code) is sym
    assert lookup(sym.ascii) is sym


def test_lookup_greek_and_case():
    assert lookup("θ_base") is lookup("rope_theta")
    assert lookup("η_compute").code == "compute_util"
    assert lookup("χ").code == "attn_mlp_ratio"
    assert lookup("E").code == "n_experts" and lookup("e").code == "experts_per_token"
    assert lookup("B").code == "batch" and lookup("b").code == "bytes_per_elt"


def test_lookup_unknown_raises_with_suggestions():
    with pytest.raises(KeyError, match="h_kv"):
        lookup("h_k")
    with pytest.raises(KeyError, match="unknown symbol"):
        lookup("no_such_symbol_at_all")


def test_markdown_table_has_one_row_per_symbol():
    lines = render_table("markdown").splitlines()
    assert lines[0].startswith("| symbol") and set(lines[1]) <= {"|", "-"}
    rows = lines[2:]
    assert len(rows) == len(SYMBOLS)
    for row, sym in zip(rows, SYMBOLS):
        assert f"`{sym.code}`" in row and f"`{sym.ascii}`" in row
        assert row.count(" | ") == 4


def test_text_table_has_one_row_per_symbol():
    lines = render_table("text").splitlines()
    assert len(lines) == 2 + len(SYMBOLS)
    assert all(line.split()[0] == s.ascii for line, s in zip(lines[2:], SYMBOLS))
    with pytest.raises(ValueError):
        render_table("html")


def test_doc_is_up_to_date():
    gen = _generator()
    expected = gen.generate()
    assert "generated" in expected.lower().split("|")[0]
    assert expected.endswith(render_table("markdown"))
    assert (ROOT / "docs" / "symbols.md").read_text(encoding="utf-8") == expected, (
        "docs/symbols.md is stale: run PYTHONPATH=src python scripts/gen_symbols_doc.py")
    assert gen.main(["--check"]) == 0
