"""The config reader the family adapters share: a dict that records which keys were read, checks each value's
type, and reads the keys every RoPE decoder family shares (llama layout)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping

from transformer_math.config.spec import MAX_CONTEXT, MAX_LAYERS, MAX_SIZE, LayerSpec
from transformer_math.errors import TmathError, check_int, check_number

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

_MISSING = object()
# Keys that never change the architecture's arithmetic: reading them would only hide real omissions.
_INERT = frozenset({
    "architectures", "model_type", "transformers_version", "_name_or_path", "bos_token_id", "eos_token_id",
    "pad_token_id", "initializer_range", "use_cache", "rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps",
    "torch_dtype", "dtype", "output_router_logits", "router_aux_loss_coef", "pretraining_tp",
    "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels", "summary_first_dropout",
    "task_specific_params", "auto_map", "for_llm_compressor",
})  # dropout keys are not inert: activations are counted without dropout masks, so --show-ignored lists them


class _Reader:
    """A config dict that records which keys were read and checks each value's type once."""

    def __init__(self, cfg: Mapping[builtins.str, Any], prefix: builtins.str = "",
                 defaults: Mapping[builtins.str, Any] | None = None) -> None:
        if not isinstance(cfg, Mapping):
            raise TmathError(prefix.rstrip(".") or "config", type(cfg).__name__, "a JSON object")
        self.cfg, self.prefix, self.read = cfg, prefix, set[str]()
        self.defaults = defaults or {}

    def _get(self, key: builtins.str, default: Any) -> Any:
        self.read.add(key)
        value = self.cfg.get(key, _MISSING)
        if (value is _MISSING or value is None) and key in self.defaults:
            value = self.defaults[key]
        if value is _MISSING or value is None:
            if default is _MISSING:
                raise TmathError(self.prefix + key, None, "this key is required for this model_type")
            return default
        return value

    def int(self, key: builtins.str, default: Any = _MISSING, *, low: builtins.int = 1,
            high: builtins.int = MAX_SIZE) -> Any:
        """An integer in [low, high] — checked before anything is built from it (a layer count of 10^9 must
        fail here, not after a billion-entry list)."""
        value = self._get(key, default)
        if value is None:
            return None
        return check_int(self.prefix + key, value, low=low, high=high)

    def bool(self, key: builtins.str, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise TmathError(self.prefix + key, value, "true or false")
        return value

    def str(self, key: builtins.str, default: Any = _MISSING) -> builtins.str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise TmathError(self.prefix + key, value, "a string")
        return value

    def float(self, key: builtins.str, default: Any = _MISSING) -> builtins.float | None:
        value = self._get(key, default)
        return None if value is None else positive_number(self.prefix + key, value)

    def int_list(self, key: builtins.str, default: Any = _MISSING) -> list[builtins.int]:
        value = self._get(key, default)
        if not isinstance(value, list) or len(value) > MAX_LAYERS or not all(
                isinstance(v, int) and not isinstance(v, bool) and -MAX_LAYERS <= v <= MAX_LAYERS for v in value):
            raise TmathError(self.prefix + key, value, f"a list of at most {MAX_LAYERS:,} layer indices")
        return value

    def str_list(self, key: builtins.str, n: builtins.int,
                 allowed: tuple[builtins.str, ...]) -> list[builtins.str] | None:
        value = self._get(key, None)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) != n or any(v not in allowed for v in value):
            raise TmathError(self.prefix + key, value, f"a list of {n} entries, each one of {', '.join(allowed)}")
        return value

    def dict(self, key: builtins.str) -> Mapping[builtins.str, Any] | None:
        value = self._get(key, None)
        if value is not None and not isinstance(value, Mapping):
            raise TmathError(self.prefix + key, value, "a JSON object")
        return value

    def ignored(self) -> tuple[builtins.str, ...]:
        return tuple(sorted(self.prefix + k for k in self.cfg if k not in self.read and k not in _INERT))

    def near_misses(self) -> tuple[tuple[builtins.str, builtins.str], ...]:
        """(ignored key, the absent key it was probably meant to be): a typo falls back to a default silently."""
        if not self.ignored():
            return ()
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
    return check_number(field, value, low=0, high=high, open_low=True)


_GATED = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh",
          "relu": "relu", "gelu_fast": "gelu_tanh"}


def _common(r: _Reader, *, head_dim_default: int | None, tie_default: bool = False,
            act_key: str = "hidden_act", ctx_default: int = 2048, act_default: str = "silu") -> dict[str, Any]:
    """The keys every RoPE decoder family shares (llama layout)."""
    d, h_q = r.int("hidden_size"), r.int("num_attention_heads")
    h_kv = r.int("num_key_value_heads", h_q)
    head_dim = r.int("head_dim", head_dim_default)
    if head_dim is None:
        if d % h_q:
            raise TmathError(r.prefix + "head_dim", None,
                             f"required when hidden_size ({d}) is not a multiple of num_attention_heads ({h_q})")
        head_dim = d // h_q
    act = r.str(act_key, act_default)
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
