"""transformer-math: parameters, memory and FLOPs of modern LLMs, exact and explained; serving and training plans.

`import transformer_math` never imports torch or transformers; those are extras for the cross-checks.
"""

from transformer_math.analysis.report import Conventions, Report, analyze
from transformer_math.config import load_model
from transformer_math.config.hf import spec_from_hf
from transformer_math.config.spec import LayerSpec, MLASpec, ModelSpec, MoESpec
from transformer_math.errors import TmathError
from transformer_math.presets import list_presets, load_preset

__all__ = [
    "ChinchillaResult",
    "Conventions",
    "LayerSpec",
    "MLASpec",
    "MoESpec",
    "ModelSpec",
    "Report",
    "SearchResult",
    "ServeResult",
    "TmathError",
    "TrainResult",
    "analyze",
    "chinchilla",
    "compare",
    "list_presets",
    "load_model",
    "load_preset",
    "search",
    "serve",
    "spec_from_hf",
    "train",
]

_PLANS = ("ChinchillaResult", "SearchResult", "ServeResult", "TrainResult", "chinchilla", "search", "serve", "train")


def __getattr__(name: str) -> object:
    """The plans (serve, train, search, chinchilla) and compare load on first use: the import stays light."""
    if name in _PLANS:
        from transformer_math.analysis import plans

        return getattr(plans, name)
    if name == "compare":
        from transformer_math.compare import compare

        return compare
    raise AttributeError(f"module 'transformer_math' has no attribute {name!r}")
