"""Per-rank parameters, gradients and optimizer states equal the sharding formulas exactly (torch on the meta device).

torch's own parallelize_module / distribute_tensor / fully_shard shard the real Hugging Face model over a fake
process group (tests/execution/sharding.py); a real AdamW step creates the states. Every parameter of every
rank looked at must hold exactly the elements analysis/sharding.py says, uneven shards included, and the
training plan's memory per GPU must be those elements times its bytes per element, for ZeRO-1/2/3.
"""

import re

import pytest

import transformer_math as tm
from transformer_math.analysis.sharding import Mesh, edge_tensors, layer_tensors, tensor_at, training_mesh
from transformer_math.analysis.training import Layout, Workload, plan_training
from transformer_math.config.hardware import load_hardware

pytestmark = pytest.mark.torch

HF_NAMES = {  # Hugging Face parameter (after model.layers.N.) → the inventory's name
    "self_attn.q_proj.weight": "attention.q_proj.weight", "self_attn.k_proj.weight": "attention.k_proj.weight",
    "self_attn.v_proj.weight": "attention.v_proj.weight", "self_attn.o_proj.weight": "attention.o_proj.weight",
    "self_attn.q_norm.weight": "attention.q_norm", "self_attn.k_norm.weight": "attention.k_norm",
    "self_attn.q_a_proj.weight": "attention.q_a_proj.weight", "self_attn.q_a_layernorm.weight": "attention.q_a_norm",
    "self_attn.q_b_proj.weight": "attention.q_b_proj.weight",
    "self_attn.kv_a_proj_with_mqa.weight": "attention.kv_a_proj.weight",
    "self_attn.kv_a_layernorm.weight": "attention.kv_a_norm",
    "self_attn.kv_b_proj.weight": "attention.kv_b_proj.weight",
    "input_layernorm.weight": "norms.0", "post_attention_layernorm.weight": "norms.1",
    "mlp.gate_proj.weight": "mlp.gate_proj.weight", "mlp.up_proj.weight": "mlp.up_proj.weight",
    "mlp.down_proj.weight": "mlp.down_proj.weight", "mlp.gate.weight": "moe.router.weight",
    "mlp.experts.gate_up_proj": "moe.experts.gate_up", "mlp.experts.down_proj": "moe.experts.down",
    "mlp.shared_experts.gate_proj.weight": "moe.shared_experts.gate_proj.weight",
    "mlp.shared_experts.up_proj.weight": "moe.shared_experts.up_proj.weight",
    "mlp.shared_experts.down_proj.weight": "moe.shared_experts.down_proj.weight",
}
EDGE = {"model.embed_tokens.weight": "embedding", "model.norm.weight": "final_norm", "lm_head.weight": "lm_head"}


def _setup(preset, n_layers):
    from execution.sharding import _fewer_layers

    config = _fewer_layers(dict(tm.load_preset(preset)["config"]), n_layers)
    return config, tm.load_model(config)


def _inventory(s):
    """HF name → (Tensor) for the reduced model."""
    out = {hf: t for t in edge_tensors(s, first=True, last=True, pp=1) for hf, ours in EDGE.items() if ours == t.name}
    for i, layer in enumerate(s.layers):
        by_name = {t.name: t for t in layer_tensors(s, layer)}
        for hf, ours in HF_NAMES.items():
            if ours in by_name:
                out[f"model.layers.{i}.{hf}"] = by_name[ours]
    return out


def _coords(rank, T, E_p):
    f, t = divmod(rank, T)
    g, e = divmod(f, E_p)
    return dict(tp=t, fsdp=f, ep=e, efsdp=g)


LAYOUTS = [  # preset, layers kept, T_p, FSDP ranks (D_p·C_p), E_p, ranks looked at
    ("llama-3.1-70b", 2, 8, 16, 1, (0, 127)),
    ("llama-3.1-405b", 2, 8, 128, 1, (0, 1023)),  # the vocabulary splits unevenly: 126 rows, then 30
    ("mixtral-8x7b", 2, 2, 4, 4, (0, 7)),
    ("mixtral-8x7b", 2, 2, 16, 2, (0, 31)),  # 4 local experts < 8 expert-FSDP ranks: FSDP on dim 1
    ("qwen3-30b-a3b", 2, 4, 8, 8, (0, 31)),
    ("deepseek-v3", 4, 8, 32, 32, (0, 255)),  # 3 dense layers + 1 MoE layer, MLA, shared experts
]


@pytest.mark.parametrize("preset, layers, T, F, E_p, ranks", LAYOUTS)
def test_every_parameter_shard_equals_the_formula(preset, layers, T, F, E_p, ranks):
    from execution.sharding import shard_numels

    config, s = _setup(preset, layers)
    inventory = _inventory(s)
    meshes = {"tp_local": Mesh(tp=T, ep=E_p), "fsdp_local": Mesh(tp=T, ep=E_p, fsdp=F, expert_fsdp=F // E_p)}
    for rank in ranks:
        measured = shard_numels(config, T=T, F=F, E_p=E_p, rank=rank, optimizer=rank == ranks[0])
        assert set(measured["fsdp_local"]) == set(inventory), preset  # every parameter has its formula
        coords = _coords(rank, T, E_p)
        for key, mesh in meshes.items():
            for name, n in measured[key].items():
                assert tensor_at(inventory[name], mesh, coords) == n, (preset, rank, key, name)
        if measured["optimizer"]:
            for name, (m, v) in measured["optimizer"].items():
                assert m == v == measured["fsdp_local"][name], (preset, name)


@pytest.mark.parametrize("zero", [1, 2, 3])
@pytest.mark.parametrize("preset, layers, T, dp, cp, E_p", [
    ("llama-3.1-70b", 2, 8, 4, 4, 1),  # FSDP over the data × context mesh
    ("mixtral-8x7b", 2, 2, 2, 2, 4),
    ("deepseek-v3", 4, 8, 8, 4, 32),
])
def test_plan_memory_is_rank0_shards_times_bytes(preset, layers, T, dp, cp, E_p, zero):
    """ZeRO-1 shards optimizer states, ZeRO-2 also gradients, ZeRO-3 also parameters — over D_p·C_p ranks."""
    from execution.sharding import shard_numels

    config, s = _setup(preset, layers)
    measured = shard_numels(config, T=T, F=dp * cp, E_p=E_p, rank=0)
    tp_only, sharded = sum(measured["tp_local"].values()), sum(measured["fsdp_local"].values())
    plan = plan_training(s, load_hardware("h100-sxm"), Layout(tp=T, dp=dp, cp=cp, ep=E_p, zero=zero),
                         Workload(global_batch=dp, seq=4096 * cp))
    assert plan["memory.weights"] == 2 * (sharded if zero >= 3 else tp_only)  # bf16 compute copy
    assert plan["memory.gradients"] == 2 * (sharded if zero >= 2 else tp_only)  # bf16 gradients
    assert plan["memory.optimizer"] == 12 * sharded  # fp32 master, m and v
    mesh = training_mesh(tp=T, ep=E_p, dp=dp, cp=cp, sharded=zero >= 3)
    assert plan["params.per_gpu"] == sum(tensor_at(t, mesh, _coords(0, T, E_p)) for t in _inventory(s).values())


def test_names_cover_the_families():
    """The name map is complete for each family checked (a new HF parameter would fail here first)."""
    for preset, layers, *_ in LAYOUTS:
        config, s = _setup(preset, layers)
        from transformer_math.checks import execution as cc

        names = {n for n, _ in cc.build_meta(config).named_parameters()}
        assert names == set(_inventory(s)), preset
        assert all(re.sub(r"\.\d+\.", ".", n) for n in names)
