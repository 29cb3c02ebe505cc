"""Shipped presets cite public material only, and every hardware file is complete and loadable."""

from __future__ import annotations

import json
import os
import re

import pytest

from transformer_math.config.hardware import list_hardware, load_hardware

PRESETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "transformer_math",
                       "presets")
HARDWARE = os.path.join(PRESETS, "hardware")
DEVICE_CLASSES = {"ampere", "hopper", "blackwell", "ada", "cdna3", "tpu"}
LOCAL = re.compile(r"/work/|/root/|/home/|/tmp/|\.\./shared|shared/data|[A-Za-z]:\\", re.IGNORECASE)


def _json_files(root: str) -> list[str]:
    out = []
    for d, _, names in os.walk(root):
        out += [os.path.relpath(os.path.join(d, n), root) for n in names if n.endswith(".json")]
    return sorted(out)


def _strings(x):
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)


def test_presets_exist():
    assert len(_json_files(PRESETS)) > 10
    assert len(_json_files(HARDWARE)) >= 10


@pytest.mark.parametrize("rel", _json_files(PRESETS))
def test_no_local_paths(rel):
    with open(os.path.join(PRESETS, rel), encoding="utf-8") as f:
        data = json.load(f)
    bad = [s for s in _strings(data) if LOCAL.search(s)]
    assert not bad, f"{rel} cites a local path or the shared folder: {[LOCAL.search(s).group(0) for s in bad]}"


def test_pattern_catches_local_paths():
    for s in ("/work/shared/data/published.json", "../shared/x", "see shared/data/y", "/root/a", "/home/u/b", "/tmp/c",
              "C:\\data\\x"):
        assert LOCAL.search(s), s
    for s in ("GitHub stas00/ml-engineering@7bc7c30 compute/accelerator/README.md", "https://www.amd.com/en/products"):
        assert not LOCAL.search(s), s


@pytest.mark.parametrize("hw_id", list_hardware())
def test_hardware_file(hw_id):
    with open(os.path.join(HARDWARE, f"{hw_id}.json"), encoding="utf-8") as f:
        data = json.load(f)
    src = data.get("source")
    assert src, f"{hw_id}: empty source"
    if isinstance(src, dict):
        assert all(isinstance(v, str) and v.strip() for v in src.values()), f"{hw_id}: empty source entry"
    assert data.get("device_class") in DEVICE_CLASSES, f"{hw_id}: device_class {data.get('device_class')!r}"
    spec = load_hardware(hw_id)
    assert spec.id == hw_id
    assert spec.device_class == data["device_class"]
    assert spec.memory_bytes > 0 and spec.memory_bandwidth_bytes_per_s > 0 and spec.link_bandwidth_bytes_per_s > 0
    assert spec.peak("bf16") > 0


def test_new_devices_listed():
    for hw_id in ("rtx-3090", "rtx-5090", "l40", "h20", "mi325x"):
        assert hw_id in list_hardware()


# ---------------------------------------------------------------------------------------------------------------
# Formulas, docstrings and shipped docs cite public works (papers, model cards, specs, implementation files) or
# this repository's docs/conventions.md, never the internal notes the project started from.

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERNAL = re.compile(r"\bseeds?\s*(?:no\.?\s*|#\s*)?\d{3}\b|\.\./shared\b|\bshared/seeds\b", re.IGNORECASE)
SHIPPED = [os.path.join("src", "transformer_math"), "docs", "scripts", "benchmarks", "README.md"]


def _shipped_files() -> list[str]:
    out = []
    for top in SHIPPED:
        path = os.path.join(ROOT, top)
        if os.path.isfile(path):
            out.append(top)
            continue
        for d, dirs, names in os.walk(path):
            dirs[:] = [x for x in dirs if x not in ("__pycache__", "node_modules")]
            out += [os.path.relpath(os.path.join(d, n), ROOT) for n in names
                    if n.endswith((".py", ".md", ".json", ".html", ".js", ".txt", ".toml", ".yaml", ".yml"))]
    return sorted(out)


def _registry():
    import importlib
    import pkgutil

    import transformer_math.formulas as pkg
    from transformer_math.formulas._registry import REGISTRY

    for m in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{m.name}")
    return REGISTRY


def test_internal_citation_pattern():
    for s in ("seed 000 §7", "Seed 004", "seed 001 §10.3", "(seed 000, DeepSeek)", "seeds 000", "../shared/seeds/x.txt",
              "see shared/seeds"):
        assert INTERNAL.search(s), s
    for s in ("seed-oss-36b", "seed_oss", "torch.manual_seed(0)", "def run(seed: int = 0)", "random.Random(seed)",
              "Kaplan et al. 2020 §2.1", "ByteDance-Seed/Seed-OSS-36B-Base"):
        assert not INTERNAL.search(s), s


def test_formula_sources_are_public():
    reg = _registry()
    assert len(reg) > 50
    bad = {f.id: f.source for f in reg.values() if INTERNAL.search(f.source) or LOCAL.search(f.source)}
    assert not bad, f"formula sources cite internal notes or local paths: {bad}"
    assert all(len(f.source) >= 15 for f in reg.values()), [f.id for f in reg.values() if len(f.source) < 15]


def test_docstrings_of_formula_functions():
    import inspect
    import sys

    reg = _registry()
    for mod in [m for name, m in sys.modules.items() if name.startswith("transformer_math") and m is not None]:
        for text in [mod.__doc__ or ""] + [inspect.getdoc(o) or "" for o in vars(mod).values()
                                           if callable(o) and getattr(o, "__module__", None) == mod.__name__]:
            assert not INTERNAL.search(text), f"{mod.__name__}: {INTERNAL.search(text).group(0)!r} in a docstring"
    assert reg


def test_shipped_files_cite_no_internal_notes():
    files = _shipped_files()
    assert len(files) > 30 and "README.md" in files and os.path.join("docs", "formulas.md") in files
    hits = []
    for rel in files:
        with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        hits += [f"{rel}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}" for m in INTERNAL.finditer(text)]
    assert not hits, f"shipped files cite internal notes: {hits}"
