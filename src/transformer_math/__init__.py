"""transformer-math: parameters, memory and FLOPs of modern LLMs, exact and explained; serving and training plans.

`import transformer_math` never imports torch or transformers; those are extras for the cross-checks.
"""

from transformer_math.errors import TmathError

TYPE_CHECKING = False
if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from transformer_math.analysis.compare import compare
    from transformer_math.analysis.plans import (
        ChinchillaResult,
        SearchResult,
        ServeResult,
        TrainResult,
        chinchilla,
        search,
        serve,
        train,
    )
    from transformer_math.analysis.report import Conventions, Report, analyze
    from transformer_math.config import load_model
    from transformer_math.config.hf import spec_from_hf
    from transformer_math.config.spec import LayerSpec, MLASpec, ModelSpec, MoESpec
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

# Each public name and the module that defines it: loaded on first use, so `import transformer_math` (and every
# tmath command) imports only what it needs.
_LAZY = {
    "analyze": "analysis.report", "Conventions": "analysis.report", "Report": "analysis.report",
    "compare": "analysis.compare", "load_model": "config", "spec_from_hf": "config.hf",
    "LayerSpec": "config.spec", "MLASpec": "config.spec", "ModelSpec": "config.spec", "MoESpec": "config.spec",
    "list_presets": "presets", "load_preset": "presets",
    **dict.fromkeys(("ChinchillaResult", "SearchResult", "ServeResult", "TrainResult", "chinchilla", "search",
                     "serve", "train"), "analysis.plans"),
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'transformer_math' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"transformer_math.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
