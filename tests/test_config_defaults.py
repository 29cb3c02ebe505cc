"""Keys a config.json leaves out take the Hugging Face config class's default, as the model HF builds does."""

import copy

import pytest

import transformer_math as tm

pytestmark = pytest.mark.torch


def _small_deepseek_v3() -> dict:
    cfg = copy.deepcopy(tm.load_preset("deepseek-v3")["config"])
    cfg.update(hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=5,
               num_attention_heads=4, num_key_value_heads=4, n_routed_experts=8, num_experts_per_tok=2, n_group=2,
               topk_group=1, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8, vocab_size=128)
    cfg.pop("quantization_config", None)
    return cfg


@pytest.mark.parametrize("absent", ["q_lora_rank", "n_shared_experts", "first_k_dense_replace"])
def test_deepseek_v3_absent_keys_take_the_config_class_defaults(absent):
    from transformer_math.checks import execution as cc

    cfg = _small_deepseek_v3()
    cfg.pop(absent)
    model = cc.build_meta(cfg)
    assert tm.analyze(cfg)["params.total"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("model_type, cls", [("gemma3_text", "Gemma3TextConfig"), ("gemma2", "Gemma2Config")])
def test_gemma_activation_defaults_to_the_config_class(model_type, cls):
    transformers = pytest.importorskip("transformers")
    preset = {"gemma3_text": "gemma-3-4b", "gemma2": "gemma-2-9b"}[model_type]
    cfg = copy.deepcopy(tm.load_preset(preset)["config"])
    cfg = cfg.get("text_config", cfg)
    cfg["model_type"] = model_type
    cfg.pop("hidden_activation", None)
    hf_default = getattr(transformers, cls)().hidden_activation
    assert hf_default == "gelu_pytorch_tanh" and tm.load_model(cfg).activation == "gelu_tanh"
