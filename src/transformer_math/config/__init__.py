"""Model input: the spec, HF adapters and the one loader that turns a preset, path or dict into a spec."""

from __future__ import annotations

import os
from collections.abc import Mapping
TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

from transformer_math.config.hf import load_config_file, spec_from_hf
from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError


def load_model(model: str | os.PathLike[str] | Mapping[str, Any] | ModelSpec) -> ModelSpec:
    """A ModelSpec from a preset name, a config.json path, a config dict, or a spec (returned as is)."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, Mapping):
        return _warn_near_misses(spec_from_hf(model))
    if not isinstance(model, str | os.PathLike):
        raise TmathError("model", model, "a preset name, a config.json path or a config dict")
    text = os.fspath(model)
    if text.endswith(".json") or os.sep in text or os.path.isfile(text):
        if os.path.isdir(text):
            text = os.path.join(text, "config.json")
        cfg = load_config_file(text)
        return _warn_near_misses(spec_from_hf(cfg, name=str(cfg.get("_name_or_path") or os.path.basename(
            os.path.dirname(os.path.abspath(text))) or text)))
    from transformer_math.presets import load_preset

    return spec_from_hf(load_preset(text)["config"], name=text)


def _warn_near_misses(spec: ModelSpec) -> ModelSpec:
    """A ConfigKeyWarning per config key that is ignored but nearly matches one the adapter looked for."""
    import warnings

    from transformer_math.errors import ConfigKeyWarning

    for key, meant in spec.near_miss_keys:
        warnings.warn(ConfigKeyWarning(key, meant), stacklevel=3)
    return spec
