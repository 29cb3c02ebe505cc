"""No dead formulas: every registered formula is called from the library outside the line that defines it."""

import ast
import importlib
import pathlib
import pkgutil

import transformer_math.formulas
from transformer_math.formulas._registry import REGISTRY

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "transformer_math"


def _registered_functions() -> list[tuple[str, str]]:
    """(function name, formula id) of the @formula decorators of every module of the package."""
    out = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                for dec in node.decorator_list:
                    if isinstance(dec, ast.Call) and getattr(dec.func, "id", "") == "formula":
                        ids = [k.value.value for k in dec.keywords if k.arg == "id"]
                        out.append((node.name, ids[0]))
    return out


def _referenced_names() -> set[str]:
    names = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                names.add(node.id)
    return names


def test_every_registered_formula_is_called():
    for m in pkgutil.iter_modules(transformer_math.formulas.__path__):
        importlib.import_module(f"transformer_math.formulas.{m.name}")
    registered = _registered_functions()
    assert {fid for _, fid in registered} == set(REGISTRY)  # the scan finds every registration
    dead = sorted(fid for name, fid in registered if name not in _referenced_names())
    assert not dead, f"registered but never called: {dead}"
