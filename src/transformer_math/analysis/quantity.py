"""Quantity: a value with its unit, symbol, formula and the formula with values substituted.

A quantity is either computed by one registered formula (times a layer count) or is the checked sum
of its children: a breakdown whose parts do not add up raises at construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

from transformer_math.formulas._registry import REGISTRY


@dataclass(frozen=True, slots=True)
class Quantity:
    key: str
    value: int | float
    unit: str
    symbol: str
    formula_id: str | None = None  # None: the sum of the children
    inputs: Mapping[str, Any] = field(default_factory=dict)
    count: int = 1  # how many identical copies (layers) the formula value is multiplied by
    children: tuple[Quantity, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if self.formula_id is None and self.children:
            total = sum(c.value for c in self.children)
            if total != self.value:
                raise AssertionError(f"{self.key}: parts sum to {total}, total is {self.value}")

    @property
    def formula(self) -> str:
        if self.formula_id is None:
            return "Σ " + " + ".join(c.key for c in self.children) if self.children else "0"
        expr = REGISTRY[self.formula_id].expr
        return expr if self.count == 1 else f"n·({expr})"

    @property
    def substituted(self) -> str:
        if self.formula_id is None:
            return " + ".join(str(c.value) for c in self.children) or "0"
        text = REGISTRY[self.formula_id].substitute(self.inputs)
        return text if self.count == 1 else f"{self.count}·({text})"

    @property
    def source(self) -> str:
        return REGISTRY[self.formula_id].source if self.formula_id else "sum of the parts"

    def to_dict(self, *, deep: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "unit": self.unit, "symbol": self.symbol,
                               "formula": self.formula, "substituted": self.substituted, "source": self.source}
        if self.note:
            out["note"] = self.note
        if deep and self.children:
            out["children"] = {c.key: c.to_dict() for c in self.children}
        return out

    def walk(self) -> Iterable[Quantity]:
        yield self
        for c in self.children:
            yield from c.walk()


def q(key: str, fn: Callable[..., int], *, symbol: str | None = None, count: int = 1, note: str = "",
      **inputs: Any) -> Quantity:
    """Evaluate one registered formula (times `count` identical copies) into a Quantity."""
    meta = REGISTRY[fn.formula_id]  # type: ignore[attr-defined]
    return Quantity(key=key, value=count * fn(**inputs), unit=meta.unit, symbol=symbol or meta.symbol,
                    formula_id=meta.id, inputs=inputs, count=count, note=note)


def total(key: str, parts: Iterable[Quantity], *, unit: str, symbol: str, note: str = "") -> Quantity:
    """A quantity that is the checked sum of its parts (zero-valued parts are dropped)."""
    kids = tuple(p for p in parts if p.value)
    return Quantity(key=key, value=sum(p.value for p in kids), unit=unit, symbol=symbol, children=kids, note=note)
