"""Shared by the plans: the spec of a model argument, results with to_dict() and explain(), suggestions, checks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from transformer_math.analysis.quantity import Quantity
from transformer_math.analysis.report import render_explanation
from transformer_math.config import load_model
from transformer_math.config.hardware import HardwareSpec
from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError, check_int, check_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _model(model: Any) -> tuple[ModelSpec, str]:
    """The spec, and how to name the model on a command line (plans model decoder-only LMs: an encoder has no
    decode phase, and the parallel layouts and pipelines are written for one stack)."""
    s = load_model(model)
    if s.arch != "decoder":
        raise TmathError("model", s.name, f"a decoder-only model for serving and training plans ({s.name} is "
                         f"{s.arch.replace('_', '-')}; `tmath analyze` covers its parameters, memory and FLOPs)")
    return s, os.fspath(model) if isinstance(model, str | os.PathLike) else s.name


def _quantities(qs: Mapping[str, Quantity]) -> dict[str, Any]:
    return {k: v.to_dict() for k, v in qs.items()}


def _explain(qs: Mapping[str, Quantity], key: str, prefix: str) -> str:
    for k in (key, key.removeprefix(prefix + "."), f"{prefix}.{key}"):
        if k in qs:
            return render_explanation(qs[k], quantities=qs)
    raise TmathError("quantity", key, f"one of {', '.join(sorted(k for k in qs if '.t1' not in k))}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Suggestion:
    """A nearby change that fits, with the numbers it gives and the command that shows them."""

    change: str
    command: str
    memory_per_gpu_bytes: int
    values: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"change": self.change, "command": self.command, "memory_per_gpu_bytes": self.memory_per_gpu_bytes,
                **self.values}


@dataclass(frozen=True, kw_only=True, slots=True)
class _Result:
    """What serve() and train() return: the plan, the device, the command that gives it, nearby plans that fit."""

    plan: Any
    hardware: HardwareSpec
    command: str
    suggestions: tuple[Suggestion, ...] = ()
    _prefix = ""  # the namespace of the plan's own quantities ("serve." / "train.")

    @property
    def fits(self) -> bool:
        return bool(self.plan.fits)

    def explain(self, key: str) -> str:
        return _explain(self.plan.quantities, key, self._prefix)


def _check_count(name: str, v: Any, low: float, high: float, *, integer: bool = False) -> None:
    if integer:
        check_int(name, v, low=int(low), high=int(high))
    else:
        check_number(name, v, low=low, high=high)
