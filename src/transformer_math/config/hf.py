"""Read Hugging Face config.json dicts into a ModelSpec — the only module that knows HF key names.

Each family adapter states which keys it reads; every other key is reported as ignored. Defaults for
absent optional keys are the ones transformers' config classes use, so that a config means here what
it means there (Qwen3's head_dim defaults to 128, not d/h_q; Gemma 3 ties embeddings by default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace

from transformer_math.config.families import ADAPTERS
from transformer_math.config.reader import _Reader, positive_number  # noqa: F401  (importable from here as before)
from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

# Multimodal wrappers whose language model sits under text_config.
_WRAPPERS = {"gemma3": "gemma3_text", "llama4": "llama4_text"}
# Gemma 3's shipped text_configs list only what differs from Gemma3TextConfig's defaults (transformers
# configuration_gemma3.py), so those defaults are part of what the files mean.
_FAMILY_DEFAULTS = {"gemma3_text": {"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216,
                                    "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4}}
SUPPORTED = tuple(sorted((*ADAPTERS, *_WRAPPERS)))


# Groups the implementation keeps in fp32 whatever the checkpoint's dtype: Hugging Face DeepSeek-V3's
# `_keep_in_fp32_modules_strict = ["e_score_correction_bias", "gate.weight"]` (modeling_deepseek_v3.py); DeepSeek-V2's
# router weight likewise (`["gate.weight"]`, modeling_deepseek_v2.py)
_KEPT_FP32 = {"deepseek_v3": (("router", "fp32"),), "deepseek_v2": (("router", "fp32"),)}


def _quantized(r: _Reader, spec_family: str) -> tuple[tuple[str, str], ...]:
    """Tensor groups stored at another width than the checkpoint's 16 bits: the ones the implementation keeps in
    fp32, then what a config's quantization_config stores below 16 bits."""
    return _KEPT_FP32.get(spec_family, ()) + _quantization_config(r)


def _quantization_config(r: _Reader) -> tuple[tuple[str, str], ...]:
    q = r.dict("quantization_config")
    if not q:
        return ()
    method = q.get("quant_method")
    if method == "mxfp4":  # gpt-oss: expert weights in MXFP4, everything in modules_to_not_convert in bf16
        return (("experts", "mxfp4"),)
    if method == "fp8":  # DeepSeek-V3: every linear weight in FP8 with 128×128 block scales
        return tuple((g, "fp8-block") for g in ("attention", "mlp", "experts", "shared_experts"))
    raise TmathError("quantization_config.quant_method", method, "mxfp4 or fp8 (others: pass --weight-dtype)")


def _clean(text: str, limit: int = 200) -> str:
    """A name fit for any output: valid UTF-8 (a lone surrogate becomes '?') and at most `limit` characters."""
    return text.encode("utf-8", "replace").decode("utf-8")[:limit]


def spec_from_hf(config: Mapping[str, Any], *, name: str | None = None) -> ModelSpec:
    """Build a ModelSpec from a Hugging Face config.json dict (multimodal: its text_config)."""
    top = _Reader(config)
    model_type = top.cfg.get("model_type")
    if not isinstance(model_type, str) or (model_type not in ADAPTERS and model_type not in _WRAPPERS):
        raise TmathError("model_type", model_type, f"one of {', '.join(SUPPORTED)}")
    top.read.add("model_type")
    r, family = top, model_type
    if model_type in _FAMILY_DEFAULTS:
        r = top = _Reader(config, defaults=_FAMILY_DEFAULTS[model_type])
    if model_type in _WRAPPERS:
        text = top.dict("text_config")
        if text is None:
            raise TmathError("text_config", None, f"a {model_type} config needs its text_config")
        family = _WRAPPERS[model_type]
        if "tie_word_embeddings" in config and "tie_word_embeddings" not in text:
            text = {**text, "tie_word_embeddings": config["tie_word_embeddings"]}
            top.read.add("tie_word_embeddings")
        r = _Reader(text, "text_config.", _FAMILY_DEFAULTS.get(family))
        top.read.update(k for k in config if k.startswith("vision") or k.endswith("token_index")
                        or k.endswith("token_id") or k in ("mm_tokens_per_image", "projector_hidden_act",
                                                            "multi_modal_projector_bias", "initializer_range"))
    name = _clean(name or str(config.get("_name_or_path") or family))
    spec = ADAPTERS[family](r, name)
    dtype = _clean(str(config.get("torch_dtype") or config.get("dtype") or "bf16"))
    quant = _quantized(top, family)
    ignored = top.ignored() + (r.ignored() if r is not top else ())
    read = tuple(sorted(top.prefix + k for k in top.read if k in config) +
                 sorted(r.prefix + k for k in r.read if k in r.cfg and r is not top))
    near = top.near_misses() + (r.near_misses() if r is not top else ())
    return replace(spec, weight_dtype=str(dtype), quantized=quant, read_keys=read, ignored_keys=ignored,
                   near_miss_keys=near)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a config.json (a regular file of at most a few MiB); anything wrong is a TmathError naming the path."""
    from transformer_math.config.jsonfile import read_json_file

    data = read_json_file(path, field="config.json")
    if not isinstance(data, dict):
        raise TmathError("config.json", type(data).__name__, "a JSON object at the top level")
    return data
