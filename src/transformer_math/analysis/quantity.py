"""Quantity: a value with its unit, symbol, formula and the formula with values substituted.

A quantity is either computed by one registered formula (times a layer count) or is the checked sum
of its children: a breakdown whose parts do not add up raises at construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from transformer_math.formulas._registry import REGISTRY

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any


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

    @property
    def refs(self) -> dict[str, str]:
        """Inputs that are other quantities: input symbol → that quantity's key."""
        return {k: v.key for k, v in self.inputs.items() if isinstance(v, Ref)}

    def to_dict(self, *, deep: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "unit": self.unit, "symbol": self.symbol,
                               "formula": self.formula, "substituted": self.substituted, "source": self.source}
        if self.refs:
            out["refs"] = self.refs
        if self.note:
            out["note"] = self.note
        if deep and self.children:
            out["children"] = {c.key: c.to_dict() for c in self.children}
        return out

    def walk(self) -> Iterable[Quantity]:
        yield self
        for c in self.children:
            yield from c.walk()


def q(key: str, fn: Callable[..., int | float], *, symbol: str | None = None, count: int = 1, note: str = "",
      **inputs: Any) -> Quantity:
    """Evaluate one registered formula (times `count` identical copies) into a Quantity."""
    meta = REGISTRY[fn.formula_id]  # type: ignore[attr-defined]
    return Quantity(key=key, value=count * fn(**inputs), unit=meta.unit, symbol=symbol or meta.symbol,
                    formula_id=meta.id, inputs=inputs, count=count, note=note)


def total(key: str, parts: Iterable[Quantity], *, unit: str, symbol: str, note: str = "") -> Quantity:
    """A quantity that is the checked sum of its parts (zero-valued parts are dropped)."""
    kids = tuple(p for p in parts if p.value)
    return Quantity(key=key, value=sum(p.value for p in kids), unit=unit, symbol=symbol, children=kids, note=note)


class Ref(float):
    """A number that is another quantity of the same plan (its key travels along, so an explanation can point to
    that quantity's own derivation)."""

    key: str

    def __new__(cls, value: float, key: str) -> Ref:
        x = super().__new__(cls, value)
        x.key = key
        return x


class Book:
    """Evaluates registered formulas on numbers, or on numpy arrays of layouts (the search), with one code path.

    With explain=True every value is also kept as a Quantity under its key, so the plan that a user explains and
    the vectorized search are the same composition of the same formulas.
    """

    def __init__(self, *, explain: bool) -> None:
        self.explain = explain
        self.values: dict[str, Any] = {}
        self.quantities: dict[str, Quantity] = {}

    def f(self, key: str, fn: Callable[..., Any], *, symbol: str | None = None, count: int = 1, note: str = "",
          **inputs: Any) -> Any:
        """key = count·fn(**inputs)."""
        if self.explain:
            return self.put(q(key, fn, symbol=symbol, count=count, note=note, **inputs))
        self.values[key] = value = count * fn(**inputs)
        return value

    def sum(self, key: str, parts: Iterable[str], *, unit: str, symbol: str, note: str = "") -> Any:
        """key = Σ parts (a checked breakdown when explained)."""
        parts = list(parts)
        if self.explain:
            return self.put(total(key, [self.quantities[p] for p in parts], unit=unit, symbol=symbol, note=note))
        self.values[key] = value = sum(self.values[p] for p in parts)
        return value

    def ref(self, key: str) -> Any:
        """The value of `key` as an input of another formula (a Ref when explained, the plain value otherwise)."""
        v = self.values[key]
        return Ref(v, key) if self.explain and not hasattr(v, "shape") else v

    def put(self, x: Quantity) -> Any:
        self.quantities[x.key] = x
        self.values[x.key] = x.value
        return x.value

    def given(self, key: str, value: Any, quantity: Callable[[], Quantity] | None = None) -> Any:
        """A value computed elsewhere (per-op costs, activations of the core); its Quantity only when explained."""
        if self.explain and quantity is not None:
            return self.put(quantity())
        self.values[key] = value
        return value
