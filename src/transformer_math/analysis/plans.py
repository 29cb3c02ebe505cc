"""The plans' public API beside analyze(): serve(), train(), search(), chinchilla().

Typed keyword arguments in; results out with to_dict() (what `tmath … --json` prints and the web API returns)
and explain(key) (every number's derivation). A plan that does not fit reports no throughput, latency, days or
cost — only what is over, by how much, and the nearest changes that fit, each with its numbers and the command
that gives it. The CLI and the web app call only these functions.
"""


from __future__ import annotations

from dataclasses import dataclass

from transformer_math.analysis.plans_common import Suggestion, _check_count, _explain, _quantities
from transformer_math.analysis.plans_serve import ServeResult, serve
from transformer_math.analysis.plans_train import SearchResult, TrainResult, search, train, train_command
from transformer_math.analysis.quantity import Quantity
from transformer_math.config.hardware import load_hardware

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ChinchillaResult", "SearchResult", "ServeResult", "Suggestion", "TrainResult", "chinchilla", "search",
           "serve", "train", "train_command"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ChinchillaResult:
    quantities: dict[str, Quantity]
    gpu: str

    def __getitem__(self, key: str) -> Any:
        return self.quantities[key].value

    def explain(self, key: str) -> str:
        return _explain(self.quantities, key, "chinchilla")

    def to_dict(self) -> dict[str, Any]:
        q = self.quantities
        return {"flops": q["chinchilla.n_opt"].inputs["C"], "n_opt": self["chinchilla.n_opt"],
                "d_opt": self["chinchilla.d_opt"],
                "tokens_per_param": self["chinchilla.d_opt"] / self["chinchilla.n_opt"],
                "loss": self["chinchilla.loss"], "gpu_hours": self["chinchilla.gpu_hours"],
                "cost_usd": self["chinchilla.cost"], "gpu": self.gpu,
                "rule_of_thumb": {"n": self["chinchilla.n_20"], "d": self["chinchilla.d_20"],
                                  "note": "D ≈ 20·N with C = 6·N·D (Approach 1/2)"},
                "quantities": _quantities(q)}


def chinchilla(flops: float, *, gpu: Any = "h100-sxm", mfu: float = 0.40, price: float = 2.0) -> ChinchillaResult:
    """Compute-optimal parameters and tokens for a budget C (Hoffmann et al. 2022), and its GPU-hours and cost."""
    from transformer_math.analysis.quantity import Book
    from transformer_math.formulas import scaling as f

    _check_count("flops", flops, 1e10, 1e32)
    _check_count("mfu", mfu, 1e-6, 1)
    _check_count("price", price, 0, 1e6)
    hw = load_hardware(gpu)
    c = f.CHINCHILLA
    b = Book(explain=True)
    N = b.f("chinchilla.n_opt", f.n_opt, C=flops, α=c["alpha"], β=c["beta"], A=c["A"], B=c["B"])
    D = b.f("chinchilla.d_opt", f.d_opt, C=flops, N_opt=N)
    b.f("chinchilla.loss", f.chinchilla_loss, N=N, D=D, E=c["E"], A=c["A"], B=c["B"], α=c["alpha"], β=c["beta"])
    N_20 = b.f("chinchilla.n_20", f.n_rule_of_thumb, C=flops)
    b.f("chinchilla.d_20", f.d_opt, C=flops, N_opt=N_20)  # = 20·N_20: the budget spent at N_20 parameters
    h = b.f("chinchilla.gpu_hours", f.gpu_hours, C=flops, MFU=mfu, F_peak=hw.peak("bf16"))
    b.f("chinchilla.cost", f.cost, GPU_h=h, price=price)
    return ChinchillaResult(quantities=b.quantities, gpu=hw.id)
