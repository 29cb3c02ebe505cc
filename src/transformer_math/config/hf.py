"""Read Hugging Face config.json dicts into a ModelSpec — the only module that knows HF key names.

Each family adapter states which keys it reads; every other key is reported as ignored. Defaults for
absent optional keys are the ones transformers' config classes use, so that a config means here what
it means there (Qwen3's head_dim defaults to 128, not d/h_q; Gemma 3 ties embeddings by default).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

from transformer_math.config.spec import MAX_CONTEXT, MAX_LAYERS, MAX_SIZE, LayerSpec, MLASpec, ModelSpec, MoESpec
from transformer_math.errors import TmathError

_MISSING = object()
# Keys that never change the architecture's arithmetic: reading them would only hide real omissions.
_INERT = frozenset({
    "architectures", "model_type", "transformers_version", "_name_or_path", "bos_token_id", "eos_token_id",
    "pad_token_id", "initializer_range", "use_cache", "rms_norm_eps", "layer_norm_epsilon",
    "torch_dtype", "dtype", "output_router_logits", "router_aux_loss_coef", "pretraining_tp",
    "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels", "summary_first_dropout",
    "task_specific_params", "auto_map", "for_llm_compressor",
})  # dropout keys are not inert: activations are counted without dropout masks, so --show-ignored lists them


class _Reader:
    """A config dict that records which keys were read and checks each value's type once."""

    def __init__(self, cfg: Mapping[str, Any], prefix: str = "", defaults: Mapping[str, Any] | None = None) -> None:
        if not isinstance(cfg, Mapping):
            raise TmathError(prefix.rstrip(".") or "config", type(cfg).__name__, "a JSON object")
        self.cfg, self.prefix, self.read = cfg, prefix, set[str]()
        self.defaults = defaults or {}

    def _get(self, key: str, default: Any) -> Any:
        self.read.add(key)
        value = self.cfg.get(key, _MISSING)
        if (value is _MISSING or value is None) and key in self.defaults:
            value = self.defaults[key]
        if value is _MISSING or value is None:
            if default is _MISSING:
                raise TmathError(self.prefix + key, None, "this key is required for this model_type")
            return default
        return value

    def int(self, key: str, default: Any = _MISSING, *, low: int = 1, high: int = MAX_SIZE) -> Any:
        """An integer in [low, high] — checked before anything is built from it (a layer count of 10^9 must
        fail here, not after a billion-entry list)."""
        value = self._get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise TmathError(self.prefix + key, value, f"an integer from {low} to {high:,}")
        return value

    def bool(self, key: str, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise TmathError(self.prefix + key, value, "true or false")
        return value

    def str(self, key: str, default: Any = _MISSING) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise TmathError(self.prefix + key, value, "a string")
        return value

    def float(self, key: str, default: Any = _MISSING) -> float | None:
        value = self._get(key, default)
        return None if value is None else positive_number(self.prefix + key, value)

    def int_list(self, key: str, default: Any = _MISSING) -> list[int]:
        value = self._get(key, default)
        if not isinstance(value, list) or len(value) > MAX_LAYERS or not all(
                isinstance(v, int) and not isinstance(v, bool) and -MAX_LAYERS <= v <= MAX_LAYERS for v in value):
            raise TmathError(self.prefix + key, value, f"a list of at most {MAX_LAYERS:,} layer indices")
        return value

    def str_list(self, key: str, n: int, allowed: tuple[str, ...]) -> list[str] | None:
        value = self._get(key, None)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) != n or any(v not in allowed for v in value):
            raise TmathError(self.prefix + key, value, f"a list of {n} entries, each one of {', '.join(allowed)}")
        return value

    def dict(self, key: str) -> Mapping[str, Any] | None:
        value = self._get(key, None)
        if value is not None and not isinstance(value, Mapping):
            raise TmathError(self.prefix + key, value, "a JSON object")
        return value

    def ignored(self) -> tuple[str, ...]:
        return tuple(sorted(self.prefix + k for k in self.cfg if k not in self.read and k not in _INERT))

    def near_misses(self) -> tuple[tuple[str, str], ...]:
        """(ignored key, the absent key it was probably meant to be): a typo falls back to a default silently."""
        import difflib

        wanted = [k for k in self.read if k not in self.cfg]
        out = []
        for k in self.cfg:
            if k not in self.read and k not in _INERT:
                close = difflib.get_close_matches(k, wanted, n=1, cutoff=0.85)
                if close:
                    out.append((self.prefix + k, self.prefix + close[0]))
        return tuple(sorted(out))


def positive_number(field: str, value: Any, high: float = 1e15) -> float:
    """A finite number in (0, high]: NaN, infinities and 400-digit integers are errors, not floats."""
    try:
        number = float(value) if not isinstance(value, bool) and isinstance(value, int | float) else None
    except OverflowError:
        number = None
    if number is None or not 0 < number <= high:  # NaN fails both comparisons
        raise TmathError(field, value, f"a finite number above 0 and at most {high:g}")
    return number


_GATED = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh",
          "relu": "relu", "gelu_fast": "gelu_tanh"}


def _common(r: _Reader, *, head_dim_default: int | None, tie_default: bool = False,
            act_key: str = "hidden_act", ctx_default: int = 2048) -> dict[str, Any]:
    """The keys every RoPE decoder family shares (llama layout)."""
    d, h_q = r.int("hidden_size"), r.int("num_attention_heads")
    h_kv = r.int("num_key_value_heads", h_q)
    head_dim = r.int("head_dim", head_dim_default)
    if head_dim is None:
        if d % h_q:
            raise TmathError(r.prefix + "head_dim", None,
                             f"required when hidden_size ({d}) is not a multiple of num_attention_heads ({h_q})")
        head_dim = d // h_q
    act = r.str(act_key, "silu")
    if act not in _GATED:
        raise TmathError(r.prefix + act_key, act, f"one of {', '.join(sorted(_GATED))}")
    rope_key = "rope_scaling" if r.cfg.get("rope_scaling") is not None else "rope_parameters"
    rope = r.dict(rope_key) or {}
    factor, theta = rope.get("factor"), rope.get("rope_theta")
    return dict(
        n_layers=r.int("num_hidden_layers", high=MAX_LAYERS), d_model=d, n_heads=h_q, n_kv_heads=h_kv,
        head_dim=head_dim, vocab_size=r.int("vocab_size"),
        max_context=r.int("max_position_embeddings", ctx_default, high=MAX_CONTEXT),
        tie_embeddings=r.bool("tie_word_embeddings", tie_default), activation=_GATED[act],
        rope_theta=r.float("rope_theta", None) or (
            None if theta is None else positive_number(f"{r.prefix}{rope_key}.rope_theta", theta)),
        rope_scaling=None if factor is None else positive_number(f"{r.prefix}{rope_key}.factor", factor, 1e6),
    )


def _layer_attention(r: _Reader, n: int, *, default: str = "full", window_key: str = "sliding_window",
                     window_default: int | None = None) -> list[tuple[str, int | None]]:
    """(attention kind, window) per layer from layer_types, else every layer `default`."""
    window = r.int(window_key, window_default, high=MAX_CONTEXT)
    kinds = r.str_list("layer_types", n, ("full_attention", "sliding_attention", "chunked_attention"))
    if kinds is None:
        kinds = [default + "_attention"] * n
    out = []
    for i, k in enumerate(kinds):
        kind = k.removesuffix("_attention")
        if kind != "full" and window is None:
            raise TmathError(r.prefix + window_key, None, f"layer {i} is {k}: a window size is required")
        out.append((kind, window if kind != "full" else None))
    return out


def _dense_layers(attn: list[tuple[str, int | None]], d_ff: int) -> tuple[LayerSpec, ...]:
    return tuple(LayerSpec(attention=a, window=w, d_ff=d_ff) for a, w in attn)


def _llama(r: _Reader, name: str) -> ModelSpec:
    c = _common(r, head_dim_default=None)
    bias = r.bool("attention_bias", False)
    attn = _layer_attention(r, c["n_layers"])
    return ModelSpec(name=name, family="llama", **c, qkv_bias=bias, o_bias=bias, mlp_bias=r.bool("mlp_bias", False),
                     layers=_dense_layers(attn, r.int("intermediate_size")))


def _qwen_window(r: _Reader, n: int) -> list[tuple[str, int | None]]:
    """Qwen2/3: sliding_window applies only with use_sliding_window, to layers ≥ max_window_layers."""
    if r.cfg.get("layer_types") is None and r.bool("use_sliding_window", False):
        start = r.int("max_window_layers", 28, low=0, high=MAX_LAYERS)
        w = r.int("sliding_window", 4096, high=MAX_CONTEXT)
        return [("sliding", w) if i >= start else ("full", None) for i in range(n)]
    r.read.update(("use_sliding_window", "max_window_layers", "sliding_window"))
    if r.cfg.get("layer_types") is not None and r.bool("use_sliding_window", False):
        return _layer_attention(r, n, window_default=4096)
    return [("full", None)] * n


def _qwen2(r: _Reader, name: str) -> ModelSpec:
    c = _common(r, head_dim_default=None, ctx_default=32768)
    return ModelSpec(name=name, family="qwen2", **c, qkv_bias=True,
                     layers=_dense_layers(_qwen_window(r, c["n_layers"]), r.int("intermediate_size")))


def _qwen3(r: _Reader, name: str) -> ModelSpec:
    c = _common(r, head_dim_default=128, ctx_default=32768)
    bias = r.bool("attention_bias", False)
    return ModelSpec(name=name, family="qwen3", **c, qkv_bias=bias, o_bias=bias, qk_norm=True,
                     layers=_dense_layers(_qwen_window(r, c["n_layers"]), r.int("intermediate_size")))


def _qwen3_moe(r: _Reader, name: str) -> ModelSpec:
    c = _common(r, head_dim_default=None, ctx_default=32768)
    bias = r.bool("attention_bias", False)
    n = c["n_layers"]
    moe = MoESpec(n_experts=r.int("num_experts"), experts_per_token=r.int("num_experts_per_tok"),
                  d_moe=r.int("moe_intermediate_size"))
    dense_only, step = set(r.int_list("mlp_only_layers", [])), r.int("decoder_sparse_step", 1)
    d_ff = r.int("intermediate_size")
    layers = tuple(LayerSpec(attention=a, window=w, d_ff=d_ff,
                             mlp="moe" if i not in dense_only and (i + 1) % step == 0 else "dense")
                   for i, (a, w) in enumerate(_qwen_window(r, n)))
    return ModelSpec(name=name, family="qwen3_moe", **c, qkv_bias=bias, o_bias=bias, qk_norm=True,
                     moe=moe, layers=layers)


def _mixtral(r: _Reader, name: str) -> ModelSpec:
    c = _common(r, head_dim_default=None, ctx_default=131072)
    n = c["n_layers"]
    window = r.int("sliding_window", None, high=MAX_CONTEXT)
    attn = [("sliding", window) if window else ("full", None)] * n
    moe = MoESpec(n_experts=r.int("num_local_experts"), experts_per_token=r.int("num_experts_per_tok"),
                  d_moe=r.int("intermediate_size"))
    return ModelSpec(name=name, family="mixtral", **c, moe=moe,
                     layers=tuple(LayerSpec(attention=a, window=w, mlp="moe") for a, w in attn))


def _gemma3(r: _Reader, name: str) -> ModelSpec:
    c = _common(r, head_dim_default=256, tie_default=True, act_key="hidden_activation", ctx_default=131072)
    n = c["n_layers"]
    if r.cfg.get("layer_types") is None:
        pattern = r.int("sliding_window_pattern", 6)
        window = r.int("sliding_window", 4096, high=MAX_CONTEXT)
        attn = [("sliding", window) if (i + 1) % pattern else ("full", None) for i in range(n)]
    else:
        attn = _layer_attention(r, n, window_default=4096)
    bias = r.bool("attention_bias", False)
    return ModelSpec(name=name, family="gemma3", **c, norms_per_layer=4, qk_norm=True, qkv_bias=bias, o_bias=bias,
                     layers=_dense_layers(attn, r.int("intermediate_size")))


def _gpt_oss(r: _Reader, name: str) -> ModelSpec:
    c = _common(r, head_dim_default=64, ctx_default=131072)
    n = c["n_layers"]
    if r.cfg.get("layer_types") is None:
        window = r.int("sliding_window", 128, high=MAX_CONTEXT)
        attn = [("sliding", window) if i % 2 == 0 else ("full", None) for i in range(n)]
    else:
        attn = _layer_attention(r, n, window_default=128)
    bias = r.bool("attention_bias", True)
    e = r.int("num_experts_per_tok", 4)
    r.read.add("experts_per_token")  # duplicate of num_experts_per_tok in the shipped configs
    moe = MoESpec(n_experts=r.int("num_local_experts", 128), experts_per_token=e,
                  d_moe=r.int("intermediate_size"), router_bias=True, expert_bias=True)
    r.read.update(("swiglu_limit", "initial_context_length"))
    return ModelSpec(name=name, family="gpt_oss", **c, qkv_bias=bias, o_bias=bias, sinks=True, moe=moe,
                     layers=tuple(LayerSpec(attention=a, window=w, mlp="moe") for a, w in attn))


def _seed_oss(r: _Reader, name: str) -> ModelSpec:
    c = _common(r, head_dim_default=128, ctx_default=524288)
    attn = _layer_attention(r, c["n_layers"])
    return ModelSpec(name=name, family="seed_oss", **c, qkv_bias=r.bool("attention_bias", True),
                     o_bias=r.bool("attention_out_bias", False), mlp_bias=r.bool("mlp_bias", False),
                     layers=_dense_layers(attn, r.int("intermediate_size")))


def _llama4(r: _Reader, name: str) -> ModelSpec:
    c = _common(r, head_dim_default=128, ctx_default=131072)
    n = c["n_layers"]
    interval = r.int("no_rope_layer_interval", 4)
    rope_flags = r.int_list("no_rope_layers", []) or [int((i + 1) % interval != 0) for i in range(n)]
    if len(rope_flags) != n:
        raise TmathError(r.prefix + "no_rope_layers", rope_flags, f"a list of {n} flags (1 = RoPE layer)")
    chunk = r.int("attention_chunk_size", 8192, high=MAX_CONTEXT)
    kinds = r.str_list("layer_types", n, ("full_attention", "chunked_attention", "sliding_attention")) or [
        "chunked_attention" if flag and chunk is not None else "full_attention" for flag in rope_flags]
    moe_layers = r.cfg.get("moe_layers")
    step = r.int("interleave_moe_layer_step", 1)
    moe_set = set(r.int_list("moe_layers") if moe_layers is not None else range(step - 1, n, step))
    d_moe, d_dense = r.int("intermediate_size"), r.int("intermediate_size_mlp")
    moe = MoESpec(n_experts=r.int("num_local_experts"), experts_per_token=r.int("num_experts_per_tok"),
                  d_moe=d_moe, n_shared=1, d_shared=d_moe)
    layers = tuple(LayerSpec(attention=k.removesuffix("_attention"), window=None if k == "full_attention" else chunk,
                             rope=bool(rope_flags[i]), mlp="moe" if i in moe_set else "dense", d_ff=d_dense)
                   for i, k in enumerate(kinds))
    bias = r.bool("attention_bias", False)
    # parameter-free: an L2 qk-norm, attention temperature on NoPE layers, router noise in training
    r.read.update(("use_qk_norm", "attn_temperature_tuning", "floor_scale", "attn_scale", "router_jitter_noise"))
    return ModelSpec(name=name, family="llama4", **c, qkv_bias=bias, o_bias=bias, moe=moe, layers=layers)


def _deepseek_v3(r: _Reader, name: str) -> ModelSpec:
    c = _common(r, head_dim_default=None, ctx_default=4096)
    n, h = c["n_layers"], c["n_heads"]
    mla = MLASpec(q_rank=r.int("q_lora_rank", 0, low=0), kv_rank=r.int("kv_lora_rank"),
                  d_nope=r.int("qk_nope_head_dim"), d_rope=r.int("qk_rope_head_dim"), d_v=r.int("v_head_dim"))
    c.update(n_kv_heads=h, head_dim=mla.d_nope + mla.d_rope)
    d_moe, shared = r.int("moe_intermediate_size"), r.int("n_shared_experts", 0, low=0)
    moe = MoESpec(n_experts=r.int("n_routed_experts"), experts_per_token=r.int("num_experts_per_tok"), d_moe=d_moe,
                  n_shared=shared, d_shared=d_moe)
    first_dense, d_ff = r.int("first_k_dense_replace", 0, low=0, high=MAX_LAYERS), r.int("intermediate_size")
    r.read.update(("moe_layer_freq", "n_group", "topk_group", "routed_scaling_factor", "norm_topk_prob",
                   "topk_method", "scoring_func", "num_nextn_predict_layers", "ep_size", "aux_loss_alpha",
                   "seq_aux", "rope_interleave"))
    bias = r.bool("attention_bias", False)
    layers = tuple(LayerSpec(mlp="dense" if i < first_dense else "moe", d_ff=d_ff) for i in range(n))
    return ModelSpec(name=name, family="deepseek_v3", **c, qkv_bias=bias, o_bias=bias, moe=moe, mla=mla,
                     layers=layers)


def _gpt2(r: _Reader, name: str) -> ModelSpec:
    d, h = r.int("n_embd"), r.int("n_head")
    if d % h:
        raise TmathError(r.prefix + "n_head", h, f"must divide n_embd = {d}")
    act = r.str("activation_function", "gelu_new")
    if act not in _GATED:
        raise TmathError(r.prefix + "activation_function", act, f"one of {', '.join(sorted(_GATED))}")
    n = r.int("n_layer", high=MAX_LAYERS)
    r.read.update(("n_ctx", "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"))
    return ModelSpec(name=name, family="gpt2", n_layers=n, d_model=d, n_heads=h, n_kv_heads=h, head_dim=d // h,
                     vocab_size=r.int("vocab_size"), max_context=r.int("n_positions", 1024, high=MAX_CONTEXT), n_up=1,
                     activation=_GATED[act], tie_embeddings=r.bool("tie_word_embeddings", True),
                     learned_positions=True, norm="layernorm", qkv_bias=True, o_bias=True, mlp_bias=True,
                     layers=tuple(LayerSpec(d_ff=r.int("n_inner", 4 * d)) for _ in range(n)))


ADAPTERS: dict[str, Callable[[_Reader, str], ModelSpec]] = {
    "llama": _llama, "qwen2": _qwen2, "qwen3": _qwen3, "qwen3_moe": _qwen3_moe, "mixtral": _mixtral,
    "gemma3_text": _gemma3, "gpt_oss": _gpt_oss, "seed_oss": _seed_oss, "llama4_text": _llama4,
    "deepseek_v3": _deepseek_v3, "gpt2": _gpt2,
}
# Multimodal wrappers whose language model sits under text_config.
_WRAPPERS = {"gemma3": "gemma3_text", "llama4": "llama4_text"}
# Gemma 3's shipped text_configs list only what differs from Gemma3TextConfig's defaults (transformers
# configuration_gemma3.py), so those defaults are part of what the files mean.
_FAMILY_DEFAULTS = {"gemma3_text": {"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216,
                                    "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4}}
SUPPORTED = tuple(sorted((*ADAPTERS, *_WRAPPERS)))


# Groups the implementation keeps in fp32 whatever the checkpoint's dtype: Hugging Face DeepSeek-V3's
# `_keep_in_fp32_modules_strict = ["e_score_correction_bias", "gate.weight"]` (modeling_deepseek_v3.py)
_KEPT_FP32 = {"deepseek_v3": (("router", "fp32"),)}


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
