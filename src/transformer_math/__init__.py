"""transformer-math: parameters, memory and FLOPs of modern LLMs, exact and explained.

`import transformer_math` never imports torch or transformers; those are extras for the cross-checks.
"""

from transformer_math.analysis.report import Conventions, Report, analyze
from transformer_math.config import load_model
from transformer_math.config.hf import spec_from_hf
from transformer_math.config.spec import LayerSpec, MLASpec, ModelSpec, MoESpec
from transformer_math.errors import TmathError
from transformer_math.presets import list_presets, load_preset

__all__ = [
    "Conventions",
    "LayerSpec",
    "MLASpec",
    "MoESpec",
    "ModelSpec",
    "Report",
    "TmathError",
    "analyze",
    "list_presets",
    "load_model",
    "load_preset",
    "spec_from_hf",
]
