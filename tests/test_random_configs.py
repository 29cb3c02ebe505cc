"""Property test: random valid configs of every family agree exactly with the HF implementation.

Our presets are a sample; this draws odd sizes, head_dim ≠ d/h_q, biases, tied heads, window patterns,
dense/MoE interleaving and MLA ranks, and checks parameters, KV-cache bytes and prefill FLOPs.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import transformer_math as tm

pytestmark = pytest.mark.torch
small = st.integers(1, 5)


@st.composite
def base(draw, *, head_dim=True):
    h_kv = draw(small)
    h_q = h_kv * draw(st.integers(1, 3))
    # transformers rejects hidden_size % num_attention_heads != 0 even when head_dim is given
    cfg = {"vocab_size": draw(st.integers(5, 97)), "hidden_size": h_q * draw(st.integers(1, 6)) * 2,
           "num_hidden_layers": draw(st.integers(1, 5)), "num_attention_heads": h_q, "num_key_value_heads": h_kv,
           "intermediate_size": draw(st.integers(3, 41)), "tie_word_embeddings": draw(st.booleans())}
    if head_dim:
        cfg["head_dim"] = draw(st.integers(1, 12)) * 2
    return cfg


def _layer_types(draw, n, kinds=("full_attention", "sliding_attention")):
    return [draw(st.sampled_from(kinds)) for _ in range(n)]


def _mistral(draw, c):
    return {"sliding_window": draw(st.sampled_from([None, 3, 7, 12]))}


def _phi3(draw, c):  # Phi3Config defaults pad_token_id to 32000, outside these small vocabularies
    return {"sliding_window": draw(st.sampled_from([None, 4, 9])), "pad_token_id": None, "eos_token_id": None,
            "bos_token_id": None}


def _gemma2(draw, c):
    n = c["num_hidden_layers"]
    out = {"sliding_window": draw(st.integers(2, 12)), "attention_bias": draw(st.booleans()),
           "attn_logit_softcapping": draw(st.sampled_from([None, 50.0])), "final_logit_softcapping": 30.0}
    if draw(st.booleans()):
        out["layer_types"] = _layer_types(draw, n)
    return out


def _olmo2(draw, c):
    return {"attention_bias": draw(st.booleans()), "pad_token_id": None, "eos_token_id": None}


def _qwen2_moe(draw, c):
    n, E = c["num_hidden_layers"], draw(st.integers(1, 6))
    out = {"num_experts": E, "num_experts_per_tok": draw(st.integers(1, E)), "moe_intermediate_size": draw(small) * 3,
           "shared_expert_intermediate_size": draw(st.integers(1, 20)), "decoder_sparse_step": draw(st.integers(1, 2)),
           "mlp_only_layers": draw(st.lists(st.integers(0, n - 1), max_size=2, unique=True)),
           "qkv_bias": draw(st.booleans())}
    if draw(st.booleans()):
        out.update(use_sliding_window=True, sliding_window=draw(st.integers(2, 12)),
                   max_window_layers=draw(st.integers(0, n)))
    return out


def _deepseek_v2(draw, c):
    E = draw(st.integers(2, 8))
    return {"n_routed_experts": E, "num_experts_per_tok": draw(st.integers(1, E)), "n_group": 1, "topk_group": 1,
            "topk_method": "greedy", "n_shared_experts": draw(st.integers(0, 2)),
            "moe_intermediate_size": draw(small) * 2,
            "first_k_dense_replace": draw(st.integers(0, c["num_hidden_layers"])),
            "q_lora_rank": draw(st.sampled_from([None, 6, 10])), "kv_lora_rank": draw(small) * 2,
            "qk_nope_head_dim": draw(small) * 2, "qk_rope_head_dim": draw(small) * 2, "v_head_dim": draw(small) * 2,
            "attention_bias": draw(st.booleans()), "num_key_value_heads": c["num_attention_heads"]}


def _gpt_neox(draw, c):
    return {"rotary_pct": draw(st.sampled_from([0.25, 0.5, 1.0])), "use_parallel_residual": draw(st.booleans()),
            "attention_bias": draw(st.booleans()), "hidden_act": draw(st.sampled_from(["gelu", "gelu_new", "relu"])),
            "eos_token_id": None, "bos_token_id": None}


# The families added with their own generators: what each draws on top of `base`.
NEW_FAMILIES = {"mistral": _mistral, "phi3": _phi3, "gemma2": _gemma2, "olmo2": _olmo2, "qwen2_moe": _qwen2_moe,
                "deepseek_v2": _deepseek_v2, "gpt_neox": _gpt_neox}


@st.composite
def configs(draw):
    family = draw(st.sampled_from(["llama", "qwen2", "qwen3", "qwen3_moe", "mixtral", "gemma3_text", "gpt_oss",
                                   "seed_oss", "llama4_text", "deepseek_v3", "gpt2", *NEW_FAMILIES]))
    c = draw(base(head_dim=family not in ("qwen2", "mixtral", "gpt2", "deepseek_v3", "phi3", "olmo2", "qwen2_moe",
                                          "deepseek_v2", "gpt_neox")))
    if family in NEW_FAMILIES:
        if family == "gpt_neox":  # multi-head only: GPTNeoXConfig has no num_key_value_heads
            del c["num_key_value_heads"]
        return {"model_type": family, **c, **NEW_FAMILIES[family](draw, c)}
    n = c["num_hidden_layers"]
    window = draw(st.integers(2, 12))
    if family == "llama":
        c.update(attention_bias=draw(st.booleans()), mlp_bias=draw(st.booleans()))
    elif family in ("qwen2", "qwen3"):
        if draw(st.booleans()):
            c.update(use_sliding_window=True, sliding_window=window, max_window_layers=draw(st.integers(0, n)))
    elif family == "qwen3_moe":
        E = draw(st.integers(1, 6))
        c.update(num_experts=E, num_experts_per_tok=draw(st.integers(1, E)), moe_intermediate_size=draw(small) * 3,
                 decoder_sparse_step=draw(st.integers(1, 2)),
                 mlp_only_layers=draw(st.lists(st.integers(0, n - 1), max_size=2, unique=True)),
                 attention_bias=draw(st.booleans()))
    elif family == "mixtral":
        E = draw(st.integers(1, 6))
        c.update(num_local_experts=E, num_experts_per_tok=draw(st.integers(1, E)))
        if draw(st.booleans()):
            c["sliding_window"] = window
    elif family == "gemma3_text":
        c.update(sliding_window=window, layer_types=_layer_types(draw, n), attention_bias=draw(st.booleans()))
    elif family == "gpt_oss":
        E = draw(st.integers(1, 6))
        c.update(num_local_experts=E, num_experts_per_tok=draw(st.integers(1, E)), sliding_window=window,
                 layer_types=_layer_types(draw, n), attention_bias=draw(st.booleans()))
    elif family == "seed_oss":
        c.update(attention_bias=draw(st.booleans()), attention_out_bias=draw(st.booleans()),
                 mlp_bias=draw(st.booleans()))
    elif family == "llama4_text":
        E = draw(st.integers(1, 4))
        c.update(num_local_experts=E, num_experts_per_tok=1, intermediate_size_mlp=draw(st.integers(3, 41)),
                 interleave_moe_layer_step=draw(st.integers(1, 3)), attention_chunk_size=window,
                 no_rope_layer_interval=draw(st.integers(1, 4)))
    elif family == "deepseek_v3":
        E = draw(st.integers(2, 8))
        c.update(n_routed_experts=E, num_experts_per_tok=draw(st.integers(1, E)), n_group=1, topk_group=1,
                 n_shared_experts=draw(st.integers(0, 2)), moe_intermediate_size=draw(small) * 2,
                 first_k_dense_replace=draw(st.integers(0, n)), q_lora_rank=draw(st.sampled_from([None, 6, 10])),
                 kv_lora_rank=draw(small) * 2, qk_nope_head_dim=draw(small) * 2, qk_rope_head_dim=draw(small) * 2,
                 v_head_dim=draw(small) * 2, attention_bias=draw(st.booleans()))
        c["num_key_value_heads"] = c["num_attention_heads"]
    elif family == "gpt2":
        c = {"vocab_size": c["vocab_size"], "n_embd": c["hidden_size"], "n_layer": n,
             "n_head": c["num_attention_heads"], "n_positions": draw(st.integers(40, 80)),
             "n_inner": draw(st.sampled_from([None, 37])), "tie_word_embeddings": c["tie_word_embeddings"]}
    return {"model_type": family, **c}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(cfg=configs(), batch=st.integers(1, 2), tokens=st.integers(1, 30))
def test_random_config_matches_execution(cfg, batch, tokens):
    from transformer_math.checks import execution as cc

    spec = tm.spec_from_hf(cfg)
    m = cc.measure(cc.build_meta(cfg), batch=batch, tokens=tokens)
    r = tm.analyze(spec, batch=batch, context=tokens)
    assert r["params.total"] == m.params
    assert r["memory.kv_cache_bytes"] == m.kv_cache_bytes
    extra = 0
    if spec.family == "llama4":  # HF runs all E experts on every token; we count the e routed ones
        moe = spec.moe
        extra = (moe.n_experts - moe.experts_per_token) * batch * tokens * 2 * (spec.n_up + 1) * spec.d_model \
            * moe.d_moe * spec.n_moe_layers
    assert r["flops.prefill"] + extra == m.prefill_flops
