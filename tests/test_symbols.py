"""The symbol dictionary (transformer_math.symbols) and its generated page docs/symbols.md."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from transformer_math.symbols import SECTIONS, SYMBOLS, UNITS, Symbol, lookup, render_table

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
    assert sym.section in SECTIONS
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
    1_shared b_elt b_w b_a b_kv b_m b_v q_w q_kv g_q 1_zp B b m L_train A n_GPU T_train D_p T_p P_p C_p S_p E_p F_peak
    BW_HBM BW_NVLink BW_NIC eta_compute eta_bw P P_active P_tok P_expert M_param M_opt M_grad M_act M_KV F_proj F_attn
    F_mlp F_router F_prefill F_decode F_prefill,tok F_decode,tok F_fwd F_train I rho_comm phi_cache chi tok/s n_pairs
    L_kv d_c d_cq d_h^nope d_h^rope d_v n_norm k_norm Norm P_emb P_LM""".split()


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
    assert lookup("B").code == "batch" and lookup("b").code == "micro_batch"
    assert lookup("ΔM").code == "over_bytes" and lookup("φ_cache").code == "cache_fraction"


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
    for row, sym in zip(rows, SYMBOLS, strict=True):
        assert f"`{sym.code}`" in row and f"`{sym.ascii}`" in row
        assert row.count(" | ") == 4


def test_text_table_has_one_row_per_symbol():
    lines = render_table("text").splitlines()
    assert len(lines) == 2 + len(SYMBOLS)
    assert all(line.split()[0] == s.ascii for line, s in zip(lines[2:], SYMBOLS, strict=True))
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


# ---------------------------------------------------------------------------------------------------------------
# Coverage: every symbol the outputs print is in the dictionary, with a meaning and the unit it is printed with.

import importlib  # noqa: E402
import pkgutil  # noqa: E402
import re  # noqa: E402
from dataclasses import fields  # noqa: E402

import transformer_math as tm  # noqa: E402
from transformer_math.cli import main  # noqa: E402
from transformer_math.config.spec import LayerSpec, MLASpec, ModelSpec, MoESpec  # noqa: E402

# A plan prints these option names as name=value (e.g. "TP=2 PP=1 ... recompute=none", "kv=bf16"); they are the
# command's options, not symbols (TP is --tp, whose symbol T_p the serving header prints).
OPTION_LABELS = {"TP", "PP", "DP", "CP", "EP", "SP", "weights", "kv", "prompt", "gen", "recompute", "attention"}
PRESETS = ("llama-3.1-8b", "deepseek-v3", "gpt-oss-20b", "mixtral-8x7b", "gemma-3-4b", "gpt2", "qwen3-30b-a3b")


def _registry():
    import transformer_math.formulas as pkg
    from transformer_math.formulas._registry import REGISTRY

    for m in pkgutil.iter_modules(pkg.__path__):  # importing a formula module registers its formulas
        importlib.import_module(f"{pkg.__name__}.{m.name}")
    importlib.import_module("transformer_math.units")  # registrations outside formulas/
    importlib.import_module("transformer_math.analysis.quantity")
    return REGISTRY


def _known(symbol: str) -> Symbol | None:
    try:
        return lookup(symbol)
    except KeyError:
        return None


def _quantity_symbols(d, out: dict[str, set[str]]) -> dict[str, set[str]]:
    """symbol → units, from every {"symbol": …, "unit": …} object in a JSON report."""
    if isinstance(d, dict):
        if isinstance(d.get("symbol"), str):
            out.setdefault(d["symbol"], set()).add(d.get("unit"))
        for v in d.values():
            _quantity_symbols(v, out)
    elif isinstance(d, list):
        for v in d:
            _quantity_symbols(v, out)
    return out


def _check(found: dict[str, set[str]], where: str) -> None:
    missing = sorted(s for s in found if _known(s) is None)
    assert not missing, f"{where}: symbols missing from symbols.py: {missing}"
    wrong = {s: (sorted(u for u in units if u), lookup(s).unit) for s, units in found.items()
             if any(u and u != lookup(s).unit for u in units)}
    assert not wrong, f"{where}: printed unit differs from the dictionary's: {wrong}"


def test_registered_formula_symbols():
    found: dict[str, set[str]] = {}
    for f in _registry().values():
        found.setdefault(f.symbol, set()).add(f.unit)
    assert len(found) > 50
    _check(found, "formula registry")


def test_spec_symbols():
    found: dict[str, set[str]] = {}
    for cls in (ModelSpec, MoESpec, MLASpec, LayerSpec):
        for f in fields(cls):
            s = f.metadata.get("symbol")
            if s and s != "-":
                found.setdefault(s, set()).add(f.metadata.get("unit"))
    for name in tm.list_presets():
        for s in tm.load_model(name).symbols():
            found.setdefault(s, set())
    for s in ("d_cq", "θ_base", "Norm", "d_h^nope", "d_shared"):
        assert s in found
    _check(found, "ModelSpec.symbols()")


@pytest.mark.parametrize("name", PRESETS)
def test_analyze_symbols(name):
    r = tm.analyze(name, batch=2, context=1024)
    d = r.to_dict()
    found = _quantity_symbols(d["quantities"], {})
    for s in d["symbols"]:
        found.setdefault(s, set())
    _check(found, f"analyze({name})")


def test_prefill_and_decode_flops_have_their_own_symbols():
    r = tm.analyze("llama-3.1-8b", batch=2, context=1024)
    assert r.quantities["flops.prefill"].symbol == "F_prefill"
    assert r.quantities["flops.decode_token"].symbol == "F_decode"
    assert r.quantities["flops.train_step"].symbol == "F_train"
    assert "F_prefill = Σ" in r.explain("flops.prefill") and "F_decode = Σ" in r.explain("flops.decode_token")
    for s in ("F_prefill", "F_decode", "F_prefill,tok", "F_decode,tok", "F_fwd"):
        assert lookup(s).unit == "FLOPs"


@pytest.mark.parametrize("name", PRESETS)
def test_plan_symbols(name):
    found: dict[str, set[str]] = {}
    _quantity_symbols(tm.serve(name, "h100-sxm", batch=4).to_dict(), found)
    _quantity_symbols(tm.serve(name, "h100-sxm", batch=2, weight_dtype="int4", kv_dtype="fp8",
                               draft="gpt2" if name == "gpt2" else None).to_dict(), found)
    _quantity_symbols(tm.train(name, "h100-sxm", global_batch=64, seq=1024, gpus=64, tp=2, pp=2).to_dict(), found)
    _quantity_symbols(tm.train(name, "h100-sxm", global_batch=64, seq=1024, gpus=64, tp=2, pp=2, cp=2,
                               recompute="full", zero=3, interleave=2, precision="fp8", tokens=1e12).to_dict(), found)
    assert {"TPOT", "MFU", "M_GPU", "t_step"} <= set(found)
    _check(found, f"serve/train({name})")


def test_finetune_and_chinchilla_symbols():
    found: dict[str, set[str]] = {}
    for mode in ("lora", "qlora"):
        _quantity_symbols(tm.train("llama-3.1-8b", "h100-sxm", global_batch=16, seq=1024, gpus=8, finetune=mode,
                                   recompute="selective").to_dict(), found)
    _quantity_symbols(tm.chinchilla(1e23).to_dict(), found)
    assert {"N_opt", "D_opt", "GPU_h", "L(N,D)"} <= set(found)
    _check(found, "train(finetune)/chinchilla")


_ASSIGN = re.compile(r"(?<![\w.\-/])([^\s=:(),\[\]]+)=(?=\S)")  # N_L=32, θ_base=5e5, b=1, TP=2
_BRACKET = re.compile(r"\s\[([^\]\s]+)\]")  # "… = 1,024 bytes   [M_KV]" in explanations


@pytest.mark.parametrize("argv", [
    ["analyze", "llama-3.1-8b"], ["analyze", "deepseek-v3", "--batch", "2"], ["analyze", "gpt-oss-20b"],
    ["analyze", "gemma-3-4b"], ["analyze", "gpt2"],
    ["serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--batch", "8"],
    ["serve", "mixtral-8x7b", "--gpu", "h100-sxm", "--tp", "2", "--weight-dtype", "int4"],
    ["train", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "16", "--tp", "2", "--pp", "2", "--global-batch", "64"],
    ["train", "qwen3-30b-a3b", "--gpu", "h100-sxm", "--gpus", "8", "--ep", "8", "--global-batch", "64"],
    ["explain", "deepseek-v3", "flops.prefill"], ["explain", "llama-3.1-8b", "flops.decode_token"],
    ["explain", "gpt-oss-20b", "memory.activations_bytes"],
    ["serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--explain", "serve.tpot"],
    ["train", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "8", "--global-batch", "64", "--explain", "train.mfu"],
    ["train", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "16", "--pp", "2", "--global-batch", "64", "--explain",
     "train.step_time"],
    ["chinchilla", "--flops", "1e23"],
], ids=lambda a: " ".join(a[:2]) + (" " + a[-1] if "--explain" in a else ""))
def test_cli_text_symbols(argv, capsys):
    main(argv)
    text = capsys.readouterr().out
    names = set(_ASSIGN.findall(text)) | set(_BRACKET.findall(text))
    unknown = sorted(n for n in names - OPTION_LABELS if _known(n) is None)
    assert not unknown, f"tmath {' '.join(argv)} prints symbols missing from symbols.py: {unknown}"
