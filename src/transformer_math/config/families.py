"""One adapter per Hugging Face model_type: which config keys it reads and what they mean for the spec.

Defaults for absent keys are those of the family's transformers config class (configuration_<family>.py), so
that a config means here what it means there; where the class's default differs from an explicit null (Mistral's
sliding_window, DeepSeek-V2's q_lora_rank, Gemma 2's soft-caps), absent and null are told apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from transformer_math.config.reader import _GATED, _common, _dense_layers, _layer_attention, _Reader, positive_number
from transformer_math.config.spec import MAX_CONTEXT, MAX_LAYERS, LayerSpec, MLASpec, ModelSpec, MoESpec
from transformer_math.errors import TmathError


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
                  d_moe=r.int("moe_intermediate_size"), norm_topk=r.bool("norm_topk_prob", False))
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
    c = _common(r, head_dim_default=256, tie_default=True, act_key="hidden_activation", ctx_default=131072,
                act_default="gelu_pytorch_tanh")  # Gemma3TextConfig's default
    n = c["n_layers"]
    if r.cfg.get("layer_types") is None:
        pattern = r.int("sliding_window_pattern", 6)
        window = r.int("sliding_window", 4096, high=MAX_CONTEXT)
        attn = [("sliding", window) if (i + 1) % pattern else ("full", None) for i in range(n)]
    else:
        attn = _layer_attention(r, n, window_default=4096)
    bias = r.bool("attention_bias", False)
    return ModelSpec(name=name, family="gemma3", **c, norms_per_layer=4, norm_placement="sandwich", qk_norm=True,
                     qkv_bias=bias, o_bias=bias, layers=_dense_layers(attn, r.int("intermediate_size")))


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
    # Llama4Router: sigmoid over the top-e logits, never renormalized
    return ModelSpec(name=name, family="llama4", **c, qkv_bias=bias, o_bias=bias,
                     moe=replace(moe, scoring="sigmoid", norm_topk=False), layers=layers)


def _deepseek(r: _Reader, name: str, *, family: str, q_rank: int, shared: int, ctx: int, scoring: str,
              norm_topk: bool | None, first_dense: int) -> ModelSpec:
    """DeepSeek-V2/V3: MLA attention, the first k layers dense, then routed + shared experts. The defaults for
    absent keys are the config classes' and differ between the two (q_rank, shared, ctx, first dense layers); an
    explicit null q_lora_rank is a full-rank W_Q (DeepSeek-V2-Lite)."""
    c = _common(r, head_dim_default=None, ctx_default=ctx)
    n, h = c["n_layers"], c["n_heads"]
    mla = MLASpec(q_rank=_int_or_null(r, "q_lora_rank", q_rank), kv_rank=r.int("kv_lora_rank"),
                  d_nope=r.int("qk_nope_head_dim"), d_rope=r.int("qk_rope_head_dim"), d_v=r.int("v_head_dim"))
    c.update(n_kv_heads=h, head_dim=mla.d_nope + mla.d_rope)
    d_moe, n_shared = r.int("moe_intermediate_size"), r.int("n_shared_experts", shared, low=0)
    moe = MoESpec(n_experts=r.int("n_routed_experts"), experts_per_token=r.int("num_experts_per_tok"), d_moe=d_moe,
                  n_shared=n_shared, d_shared=d_moe, scoring=scoring,
                  norm_topk=r.bool("norm_topk_prob", True) if norm_topk is None else norm_topk)
    first_dense, d_ff = r.int("first_k_dense_replace", first_dense, low=0, high=MAX_LAYERS), r.int("intermediate_size")
    r.read.update(("moe_layer_freq", "n_group", "topk_group", "routed_scaling_factor",
                   "topk_method", "scoring_func", "num_nextn_predict_layers", "ep_size", "aux_loss_alpha",
                   "seq_aux", "rope_interleave"))
    bias = r.bool("attention_bias", False)
    layers = tuple(LayerSpec(mlp="dense" if i < first_dense else "moe", d_ff=d_ff) for i in range(n))
    return ModelSpec(name=name, family=family, **c, qkv_bias=bias, o_bias=bias, moe=moe, mla=mla, layers=layers)


def _deepseek_v3(r: _Reader, name: str) -> ModelSpec:
    """DeepseekV3Config: q_lora_rank 1536, 1 shared expert and 3 first dense layers unless the file says otherwise;
    a sigmoid router with a score-correction bias (modeling_deepseek_v3.py)."""
    return _deepseek(r, name, family="deepseek_v3", q_rank=1536, shared=1, ctx=4096, scoring="sigmoid",
                     norm_topk=None, first_dense=3)


def _deepseek_v2(r: _Reader, name: str) -> ModelSpec:
    """DeepseekV2Config: q_lora_rank 1536 and 2 shared experts unless the file says otherwise; a softmax router
    with no score-correction bias (modeling_deepseek_v2.py); MLP biases (mlp_bias) are not modelled."""
    if r.bool("mlp_bias", False):
        raise TmathError(r.prefix + "mlp_bias", True, "false (biased DeepSeek-V2 MLPs are not modelled)")
    r.read.add("norm_topk_prob")  # DeepseekV2TopkRouter never renormalizes its top-e weights
    return _deepseek(r, name, family="deepseek_v2", q_rank=1536, shared=2, ctx=2048, scoring="softmax",
                     norm_topk=False, first_dense=0)

def _gpt2(r: _Reader, name: str) -> ModelSpec:
    d, h, act = _width_heads_activation(r, "n_embd", "n_head", "activation_function", "gelu_new")
    n = r.int("n_layer", high=MAX_LAYERS)
    r.read.update(("n_ctx", "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"))
    return ModelSpec(name=name, family="gpt2", n_layers=n, d_model=d, n_heads=h, n_kv_heads=h, head_dim=d // h,
                     vocab_size=r.int("vocab_size"), max_context=r.int("n_positions", 1024, high=MAX_CONTEXT), n_up=1,
                     activation=_GATED[act], tie_embeddings=r.bool("tie_word_embeddings", True),
                     learned_positions=True, norm="layernorm", qkv_bias=True, o_bias=True, mlp_bias=True,
                     layers=tuple(LayerSpec(d_ff=r.int("n_inner", 4 * d)) for _ in range(n)))


def _width_heads_activation(r: _Reader, d_key: str, h_key: str, act_key: str,
                            act_default: str) -> tuple[int, int, str]:
    """d, h and the activation of the GPT-2 / GPT-NeoX layouts (h must divide d: d_h = d/h)."""
    d, h = r.int(d_key), r.int(h_key)
    if d % h:
        raise TmathError(r.prefix + h_key, h, f"must divide {d_key} = {d}")
    act = r.str(act_key, act_default)
    if act not in _GATED:
        raise TmathError(r.prefix + act_key, act, f"one of {', '.join(sorted(_GATED))}")
    return d, h, act


def _int_or_null(r: _Reader, key: str, default: int | None, *, high: int = 10**7) -> int:
    """An int where an explicit null means 'none' (0) and an absent key the config class's default."""
    if key in r.cfg and r.cfg[key] is None:
        r.read.add(key)
        return 0
    value = r.int(key, default, low=0, high=high)
    return 0 if value is None else value


def _float_or_null(r: _Reader, key: str, default: float | None) -> float | None:
    """A positive number where an explicit null means 'off' and an absent key the config class's default."""
    if key in r.cfg and r.cfg[key] is None:
        r.read.add(key)
        return None
    return r.float(key, default)


def _one_window(r: _Reader, n: int, default: int | None) -> list[tuple[str, int | None]]:
    """Mistral/Phi-3: sliding_window, when set, applies to every layer (null: none)."""
    window = _int_or_null(r, "sliding_window", default, high=MAX_CONTEXT)
    return [("sliding", window) if window else ("full", None)] * n


def _mistral(r: _Reader, name: str) -> ModelSpec:
    c = _common(r, head_dim_default=None, ctx_default=131072)
    return ModelSpec(name=name, family="mistral", **c,
                     layers=_dense_layers(_one_window(r, c["n_layers"], 4096), r.int("intermediate_size")))


def _phi3(r: _Reader, name: str) -> ModelSpec:
    """Phi-3: fused qkv_proj and gate_up_proj (same shapes as llama's, concatenated), no biases whatever
    attention_bias says (Phi3Attention builds none), partial rotary on some checkpoints (Phi-4-mini)."""
    c = _common(r, head_dim_default=None, ctx_default=4096)
    rope = r.cfg.get("rope_scaling") or r.cfg.get("rope_parameters") or {}
    fraction = r.float("partial_rotary_factor", None) or rope.get("partial_rotary_factor", 1.0)
    r.read.update(("attention_bias", "original_max_position_embeddings", "rope_scaling"))
    return ModelSpec(name=name, family="phi3", **c, rotary_fraction=positive_number("partial_rotary_factor", fraction),
                     layers=_dense_layers(_one_window(r, c["n_layers"], None), r.int("intermediate_size")))


def _gemma2(r: _Reader, name: str) -> ModelSpec:
    """Gemma 2: sliding and full layers alternate (even layers slide), four norms per layer around each block,
    attention and final logits soft-capped (tanh, no weights), tied head by default."""
    c = _common(r, head_dim_default=256, tie_default=True, act_key="hidden_activation", ctx_default=8192,
                act_default="gelu_pytorch_tanh")  # Gemma2Config's default
    n = c["n_layers"]
    if r.cfg.get("layer_types") is None:
        window = r.int("sliding_window", 4096, high=MAX_CONTEXT)
        attn = [("sliding", window) if (i + 1) % 2 else ("full", None) for i in range(n)]
    else:
        attn = _layer_attention(r, n, window_default=4096)
    bias = r.bool("attention_bias", False)
    # hidden_act and sliding_window_size duplicate the keys read above in the shipped files; the pre-attention
    # scalar and the cache kind change no shape
    r.read.update(("hidden_act", "sliding_window_size", "query_pre_attn_scalar", "cache_implementation"))
    return ModelSpec(name=name, family="gemma2", **c, norms_per_layer=4, norm_placement="sandwich", qkv_bias=bias,
                     o_bias=bias, attn_softcap=_float_or_null(r, "attn_logit_softcapping", 50.0),
                     logit_softcap=_float_or_null(r, "final_logit_softcapping", 30.0),
                     layers=_dense_layers(attn, r.int("intermediate_size")))


def _olmo2(r: _Reader, name: str) -> ModelSpec:
    """OLMo 2: norms after attention and after the MLP (none before), RMS q/k norms over all heads at once."""
    c = _common(r, head_dim_default=None, ctx_default=2048)
    bias = r.bool("attention_bias", False)
    return ModelSpec(name=name, family="olmo2", **c, norm_placement="post", qk_norm=True, qk_norm_span="all",
                     qkv_bias=bias, o_bias=bias, layers=_dense_layers([("full", None)] * c["n_layers"],
                                                                      r.int("intermediate_size")))


def _qwen2_moe_window(r: _Reader, n: int) -> list[tuple[str, int | None]]:
    """Qwen2-MoE's config class slides even layers below max_window_layers when use_sliding_window is on."""
    use = r.bool("use_sliding_window", False)
    start = r.int("max_window_layers", 28, low=0, high=MAX_LAYERS)
    window = r.int("sliding_window", 4096, high=MAX_CONTEXT) if use else None
    if not use:
        r.read.update(("sliding_window", "layer_types"))
        return [("full", None)] * n
    if r.cfg.get("layer_types") is not None:
        return _layer_attention(r, n, window_default=4096)
    return [("sliding", window) if (i + 1) % 2 and i < start else ("full", None) for i in range(n)]


def _qwen2_moe(r: _Reader, name: str) -> ModelSpec:
    """Qwen2-MoE (Qwen1.5-MoE): routed experts plus one shared expert whose output a sigmoid gate Linear(d, 1)
    scales; q/k/v biases (qkv_bias); layers in mlp_only_layers or off the decoder_sparse_step are dense."""
    c = _common(r, head_dim_default=None, ctx_default=32768)
    n = c["n_layers"]
    shared = r.int("shared_expert_intermediate_size", 5632)
    moe = MoESpec(n_experts=r.int("num_experts", 60), experts_per_token=r.int("num_experts_per_tok", 4),
                  d_moe=r.int("moe_intermediate_size", 1408), n_shared=1, d_shared=shared, shared_gate=True,
                  norm_topk=r.bool("norm_topk_prob", False))
    dense_only, step = set(r.int_list("mlp_only_layers", [])), r.int("decoder_sparse_step", 1)
    d_ff = r.int("intermediate_size")
    layers = tuple(LayerSpec(attention=a, window=w, d_ff=d_ff,
                             mlp="moe" if i not in dense_only and (i + 1) % step == 0 else "dense")
                   for i, (a, w) in enumerate(_qwen2_moe_window(r, n)))
    return ModelSpec(name=name, family="qwen2_moe", **c, qkv_bias=r.bool("qkv_bias", True), moe=moe, layers=layers)


def _neox_rope(r: _Reader) -> tuple[float, float]:
    """(share of d_h rotated, RoPE base): rotary_pct / rotary_emb_base, or their rope_parameters spelling."""
    rope_key = "rope_scaling" if r.cfg.get("rope_scaling") is not None else "rope_parameters"
    rope = r.dict(rope_key) or {}
    pct = r.float("rotary_pct", None) or positive_number(f"{r.prefix}{rope_key}.partial_rotary_factor",
                                                         rope.get("partial_rotary_factor", 0.25))
    base = r.float("rotary_emb_base", None) or positive_number(f"{r.prefix}{rope_key}.rope_theta",
                                                               rope.get("rope_theta", 10000.0))
    return pct, base


def _gpt_neox(r: _Reader, name: str) -> ModelSpec:
    """GPT-NeoX / Pythia: fused biased QKV, LayerNorm with biases, a plain (ungated) biased MLP, partial rotary,
    untied embed_out, and (use_parallel_residual) attention and MLP side by side on one residual."""
    d, h, act = _width_heads_activation(r, "hidden_size", "num_attention_heads", "hidden_act", "gelu")
    n = r.int("num_hidden_layers", high=MAX_LAYERS)
    bias = r.bool("attention_bias", True)
    fraction, theta = _neox_rope(r)
    return ModelSpec(name=name, family="gpt_neox", n_layers=n, d_model=d, n_heads=h, n_kv_heads=h, head_dim=d // h,
                     vocab_size=r.int("vocab_size"), max_context=r.int("max_position_embeddings", 2048,
                                                                       high=MAX_CONTEXT),
                     n_up=1, activation=_GATED[act], tie_embeddings=r.bool("tie_word_embeddings", False),
                     norm="layernorm", qkv_bias=bias, o_bias=bias, mlp_bias=True, rotary_fraction=min(fraction, 1.0),
                     rope_theta=theta, block="parallel" if r.bool("use_parallel_residual", True) else "sequential",
                     layers=tuple(LayerSpec(d_ff=r.int("intermediate_size")) for _ in range(n)))


def _bert(r: _Reader, name: str) -> ModelSpec:
    """BERT (BertForMaskedLM): encoder-only, bidirectional, learned absolute and token-type embeddings with a
    LayerNorm after them, post-add LayerNorms, biased projections and a plain MLP; the MLM head maps d → d, applies
    the activation and a LayerNorm, then projects to V (tied to the embedding by default) with a bias."""
    d, h, act = _width_heads_activation(r, "hidden_size", "num_attention_heads", "hidden_act", "gelu")
    n = r.int("num_hidden_layers", high=MAX_LAYERS)
    kind = r.str("position_embedding_type", "absolute")
    if kind != "absolute":
        raise TmathError(r.prefix + "position_embedding_type", kind, "absolute (relative kinds are not modelled)")
    r.read.update(("layer_norm_eps", "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range",
                   "pad_token_id", "classifier_dropout", "use_cache", "is_decoder"))
    return ModelSpec(name=name, family="bert", arch="encoder", n_layers=n, d_model=d, n_heads=h, n_kv_heads=h,
                     head_dim=d // h, vocab_size=r.int("vocab_size"),
                     max_context=r.int("max_position_embeddings", 512, high=MAX_CONTEXT), n_up=1,
                     activation=_GATED[act], tie_embeddings=r.bool("tie_word_embeddings", True),
                     learned_positions=True, norm="layernorm", norm_placement="post_add", qkv_bias=True, o_bias=True,
                     mlp_bias=True, token_types=r.int("type_vocab_size", 2, low=0), embedding_norm=True,
                     head_transform=True, lm_head_bias=True,
                     layers=tuple(LayerSpec(d_ff=r.int("intermediate_size")) for _ in range(n)))


_T5_FF = {"relu": ("relu", 1), "gelu": ("gelu", 1), "gated-gelu": ("gelu_tanh", 2), "gated-silu": ("silu", 2),
          "gated-relu": ("relu", 2)}


def _t5(r: _Reader, name: str) -> ModelSpec:
    """T5 (T5ForConditionalGeneration): an encoder and a decoder stack of pre-norm RMS layers without biases; each
    decoder layer also cross-attends to the encoder's output; a learned relative-position bias per stack (in its
    first layer, shared by the rest); d_kv per head independent of d; one embedding for both stacks, tied to the
    LM head by default. feed_forward_proj picks the MLP: relu (T5) or gated-gelu (T5 v1.1, Flan-T5)."""
    ff = r.str("feed_forward_proj", "relu")
    if ff not in _T5_FF:
        raise TmathError(r.prefix + "feed_forward_proj", ff, f"one of {', '.join(_T5_FF)}")
    act, n_up = _T5_FF[ff]
    n_enc = r.int("num_layers", 6, high=MAX_LAYERS)
    n_dec = r.int("num_decoder_layers", n_enc, high=MAX_LAYERS)
    h, d_ff = r.int("num_heads", 8), r.int("d_ff", 2048)
    r.read.update(("relative_attention_max_distance", "layer_norm_epsilon", "dropout_rate", "initializer_factor",
                   "pad_token_id", "eos_token_id", "decoder_start_token_id", "is_encoder_decoder", "use_cache",
                   "n_positions", "dense_act_fn", "is_gated_act"))
    return ModelSpec(name=name, family="t5", arch="encoder_decoder", n_layers=n_dec, d_model=r.int("d_model", 512),
                     n_heads=h, n_kv_heads=h, head_dim=r.int("d_kv", 64), vocab_size=r.int("vocab_size", 32128),
                     max_context=r.int("n_positions", 512, high=MAX_CONTEXT), n_up=n_up, activation=act,
                     tie_embeddings=r.bool("tie_word_embeddings", True),
                     relative_buckets=r.int("relative_attention_num_buckets", 32),
                     layers=tuple(LayerSpec(d_ff=d_ff, rope=False) for _ in range(n_dec)),
                     encoder_layers=tuple(LayerSpec(d_ff=d_ff, rope=False) for _ in range(n_enc)))


ADAPTERS: dict[str, Callable[[_Reader, str], ModelSpec]] = {
    "llama": _llama, "qwen2": _qwen2, "qwen3": _qwen3, "qwen3_moe": _qwen3_moe, "mixtral": _mixtral,
    "gemma3_text": _gemma3, "gpt_oss": _gpt_oss, "seed_oss": _seed_oss, "llama4_text": _llama4,
    "deepseek_v3": _deepseek_v3, "gpt2": _gpt2, "mistral": _mistral, "phi3": _phi3, "gemma2": _gemma2,
    "olmo2": _olmo2, "qwen2_moe": _qwen2_moe, "deepseek_v2": _deepseek_v2, "gpt_neox": _gpt_neox,
    "bert": _bert, "t5": _t5,
}
