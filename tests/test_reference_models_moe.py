"""Whole MoE and MLA models (transformer_math.reference) against Hugging Face and against the analyzer.

Tiny random HF models (fp32, eager) of each MoE/MLA family, loaded into ours by name (routers, fused or per-expert
expert tensors, shared experts and their gate, gpt-oss sinks and expert biases, DeepSeek's correction bias and MLA
projections), give the same logits and loss and the same cached greedy tokens; the analyzer's parameter count is
the number of parameters our model holds.
"""

import pytest

import transformer_math as tm

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from reference_support import hf_model, logits_and_loss_match, ours
from transformer_math import reference as ref

V, T, B = 96, 16, 2
_BASE = dict(vocab_size=V, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=256)
_MLA = dict(kv_lora_rank=16, q_lora_rank=24, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8,
            num_key_value_heads=4, intermediate_size=64, moe_intermediate_size=16, first_k_dense_replace=1)
CONFIGS = {
    "mixtral": dict(model_type="mixtral", **_BASE, intermediate_size=24, num_local_experts=8, num_experts_per_tok=2),
    "qwen3_moe": dict(model_type="qwen3_moe", **_BASE, head_dim=16, intermediate_size=64, moe_intermediate_size=16,
                      num_experts=8, num_experts_per_tok=2, norm_topk_prob=True),
    "qwen2_moe": dict(model_type="qwen2_moe", **_BASE, intermediate_size=64, moe_intermediate_size=16,
                      shared_expert_intermediate_size=40, num_experts=8, num_experts_per_tok=3,
                      norm_topk_prob=False, mlp_only_layers=[0]),
    "gpt_oss": dict(model_type="gpt_oss", **_BASE, head_dim=16, intermediate_size=16, num_local_experts=8,
                    num_experts_per_tok=2, sliding_window=5, layer_types=["sliding_attention", "full_attention"]),
    "deepseek_v3": dict(model_type="deepseek_v3", **{**_BASE, **_MLA}, n_routed_experts=8, num_experts_per_tok=3,
                        n_shared_experts=2, n_group=4, topk_group=2, routed_scaling_factor=2.5, norm_topk_prob=True),
    "deepseek_v3_yarn": dict(model_type="deepseek_v3", **{**_BASE, **_MLA, "q_lora_rank": None},
                             n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1, n_group=2, topk_group=1,
                             routed_scaling_factor=1.5, norm_topk_prob=True,
                             rope_parameters={"rope_type": "yarn", "rope_theta": 5000.0, "factor": 4.0,
                                              "original_max_position_embeddings": 64, "mscale": 0.8,
                                              "mscale_all_dim": 1.0}),
    "deepseek_v2": dict(model_type="deepseek_v2", **{**_BASE, **_MLA}, n_routed_experts=8, num_experts_per_tok=3,
                        n_shared_experts=1, n_group=4, topk_group=2, topk_method="group_limited_greedy",
                        routed_scaling_factor=1.5),
}


@pytest.mark.parametrize("family", list(CONFIGS))
def test_equal_to_hugging_face(family):
    hf, hf_cfg = hf_model(CONFIGS[family], buffers=True)
    spec, model = ours(CONFIGS[family], hf, hf_cfg)
    ids = logits_and_loss_match(hf, model, V=V, B=B, T=T, family=family)
    # the HF cached decode of 4 more tokens equals ours (cached)
    prompt = ids[:, :8]
    assert torch.equal(ref.generate_greedy(model, prompt, 4), hf.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=4, min_new_tokens=4, do_sample=False))


@pytest.mark.parametrize("family", list(CONFIGS))
def test_analyzer_counts_our_parameters(family):
    """params.total equals the parameters our model holds (DeepSeek-V3's correction bias is a buffer, not one)."""
    spec = tm.load_model(CONFIGS[family])
    model = ref.build(spec)
    assert sum(p.numel() for p in model.parameters()) == tm.analyze(spec, batch=B, context=T)["params.total"]


def _per_expert(state: dict, family: str) -> dict:
    """The checkpoint-file layout: one matrix per expert (experts.j.*_proj, Mixtral's block_sparse_moe.*.w1/w2/w3)."""
    out = {}
    for name, t in state.items():
        if name.endswith("mlp.experts.gate_up_proj"):
            stem = name.removesuffix(".gate_up_proj")
            for j, w in enumerate(t):
                gate, up = w.chunk(2, dim=0)
                if family == "mixtral":
                    out[f"{stem.replace('mlp.', 'block_sparse_moe.')}.{j}.w1.weight"] = gate
                    out[f"{stem.replace('mlp.', 'block_sparse_moe.')}.{j}.w3.weight"] = up
                else:
                    out[f"{stem}.{j}.gate_proj.weight"], out[f"{stem}.{j}.up_proj.weight"] = gate, up
        elif name.endswith("mlp.experts.down_proj"):
            stem = name.removesuffix(".down_proj")
            for j, w in enumerate(t):
                if family == "mixtral":
                    out[f"{stem.replace('mlp.', 'block_sparse_moe.')}.{j}.w2.weight"] = w
                else:
                    out[f"{stem}.{j}.down_proj.weight"] = w
        elif family == "mixtral" and ".mlp.gate." in name:
            out[name.replace(".mlp.", ".block_sparse_moe.")] = t
        else:
            out[name] = t
    return out


@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe", "deepseek_v3"])
def test_per_expert_checkpoint_names_load_the_same(family):
    """A state dict with one tensor per expert loads into the same model as the fused one."""
    hf, hf_cfg = hf_model(CONFIGS[family], buffers=True)
    _, fused = ours(CONFIGS[family], hf, hf_cfg)
    _, split = ours(CONFIGS[family], hf, hf_cfg, state=_per_expert(hf.state_dict(), family))
    for (name, a), (_, b) in zip(fused.state_dict().items(), split.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_unknown_names_are_refused():
    hf, hf_cfg = hf_model(CONFIGS["qwen2_moe"], buffers=True)
    state = dict(hf.state_dict(), **{"model.layers.1.mlp.mystery.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="mystery"):
        ours(CONFIGS["qwen2_moe"], hf, hf_cfg, state=state)
