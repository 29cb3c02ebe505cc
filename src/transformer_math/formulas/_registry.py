"""Formula metadata: every formula function carries its symbol, unit, expression and source.

The expression is written in the symbols of the project's dictionary (symbols.py, docs/symbols.md); `substitute`
puts numbers in their place, so each result can be shown as `M_KV = B·L·N_L·2·h_kv·d_h·b_kv = 1·2048·32·2·8·128·2`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    FormulaFn = TypeVar("FormulaFn", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True, slots=True)
class Formula:
    id: str
    symbol: str
    unit: str
    expr: str
    source: str

    def substitute(self, inputs: Mapping[str, object]) -> str:
        """The expression with each symbol that has a value replaced by it (an indicator 1_x takes x's value)."""

        def value(m: re.Match[str]) -> str:
            name = m.group().removeprefix("1_")
            return _show(inputs[name]) if name in inputs else m.group()

        return _name_pattern().sub(value, self.expr)


REGISTRY: dict[str, Formula] = {}


def formula(*, id: str, symbol: str, unit: str, expr: str, source: str) -> Callable[[FormulaFn], FormulaFn]:
    """Register a pure formula function under `id`."""

    def wrap(fn: FormulaFn) -> FormulaFn:
        if id in REGISTRY:
            raise RuntimeError(f"formula id {id} registered twice")
        REGISTRY[id] = Formula(id=id, symbol=symbol, unit=unit, expr=expr, source=source)
        fn.formula_id = id  # type: ignore[attr-defined]
        return fn

    return wrap


@functools.cache
def _name_pattern() -> re.Pattern[str]:
    """Symbols in an expression (they may be Greek: α, η_bw); compiled on first use, not at start-up."""
    return re.compile(r"(?<![0-9])1_\w+|[^\W\d]\w*")


def _show(v: object) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def maximum(a: float, b: float) -> float:
    """max(a, b) that also works elementwise on numpy arrays (the layout search passes arrays of layouts)."""
    return (a + b + abs(a - b)) / 2


def minimum(a: float, b: float) -> float:
    """min(a, b), elementwise on arrays too."""
    return (a + b - abs(a - b)) / 2


def ceil(x: float) -> int:
    """⌈x⌉ as an int (bytes are integers), elementwise on numpy arrays."""
    return -(-x // 1) if hasattr(x, "shape") else -int(-x // 1)  # type: ignore[return-value]
