"""Sanity of the TP/EP/FSDP2 sharding harness (tests/execution/sharding.py) on a fake process group."""

import math

import pytest

pytestmark = pytest.mark.torch

# Replicated over the tp mesh by the plan (FSDP still shards them over the F data ranks).
REPLICATED = ("layernorm.weight", "norm.weight", "mlp.gate.weight", "q_a_proj.weight", "kv_a_proj_with_mqa.weight")


def _harness():
    """tests/execution/sharding.py, whether tests/ (plain `pytest`) or the repo root (`python -m pytest`) is on
    sys.path."""
    try:
        from tests.execution import sharding
    except ModuleNotFoundError:
        from execution import sharding
    return sharding


def _config(name, **overrides):
    from transformer_math import load_preset

    return {**load_preset(name)["config"], **overrides}


def _full_shapes(config, n_layers):
    from transformer_math.checks import execution as cc

    model = cc.build_meta(_harness()._fewer_layers(dict(config), n_layers))
    return {n: tuple(p.shape) for n, p in model.named_parameters()}


def _all_ranks(config, *, T, F, E_p=1, n_layers=1, optimizer=False):
    return [_harness().shard_numels(config, T=T, F=F, E_p=E_p, rank=r, n_layers=n_layers, optimizer=optimizer)
            for r in range(F * T)]


@pytest.mark.parametrize("name, n_layers, T, F, E_p", [
    ("llama-3.1-70b", 1, 2, 4, 1),
    ("mixtral-8x7b", 1, 2, 4, 2),      # experts: ep=2, expert-FSDP over the other 2 ranks
    ("qwen3-30b-a3b", 1, 2, 2, 2),
    ("deepseek-v3", 2, 2, 4, 4),       # one dense (MLA + MLP) layer, one MoE layer
])
def test_sum_over_ranks_is_the_full_count(name, n_layers, T, F, E_p):
    """After FSDP every element lives on exactly one rank, except tp-replicated tensors (on T ranks);
    after TP/EP only, every rank of the F data ranks holds a copy (experts: F/E_p copies)."""
    import torch.distributed as dist

    config = _config(name)
    full = {n: math.prod(s) for n, s in _full_shapes(config, n_layers).items()}
    ranks = _all_ranks(config, T=T, F=F, E_p=E_p, n_layers=n_layers, optimizer=True)
    assert not dist.is_initialized()
    for n, numel in full.items():
        replicated = n.endswith(REPLICATED)
        expert = ".experts." in n and "shared" not in n
        tp_copies = F * T if replicated else F // E_p if expert else F
        assert sum(r["tp_local"][n] for r in ranks) == tp_copies * numel, n
        assert sum(r["fsdp_local"][n] for r in ranks) == (T if replicated else 1) * numel, n
        assert all(r["optimizer"][n] == (r["fsdp_local"][n],) * 2 for r in ranks), n
    assert sum(full.values()) == sum(sum(r["fsdp_local"].values()) for r in ranks) - sum(
        (T - 1) * v for n, v in full.items() if n.endswith(REPLICATED))


def test_uneven_vocab_405b():
    """vocab 128256 / T=8 = 16032 rows, then FSDP over 128: torch.chunk = 126 rows on f < 127, 30 on f = 127;
    to_local() is unpadded, FSDP2's storage is padded to 126 rows on every rank."""
    shard_numels = _harness().shard_numels
    config, d = _config("llama-3.1-405b"), 16384
    first = shard_numels(config, T=8, F=128, rank=0, n_layers=1)
    last = shard_numels(config, T=8, F=128, rank=1023, n_layers=1)
    for n in ("model.embed_tokens.weight", "lm_head.weight"):
        assert first["tp_local"][n] == last["tp_local"][n] == 16032 * d
        assert (first["fsdp_local"][n], last["fsdp_local"][n]) == (126 * d, 30 * d)
        assert first["fsdp_padded"][n] == last["fsdp_padded"][n] == 126 * d
    assert first["fsdp_local"]["model.layers.0.mlp.down_proj.weight"] == 128 * 53248 // 8


def test_uneven_tp_follows_torch_chunk():
    """T=3 does not divide 4096 or 1024: ceil(n/3) on the first ranks, the rest on the last."""
    import torch

    config = _config("mixtral-8x7b")
    ranks = _all_ranks(config, T=3, F=1)
    for n, rows in (("model.layers.0.self_attn.k_proj.weight", 1024), ("lm_head.weight", 32000)):
        chunks = [c.shape[0] * 4096 for c in torch.empty(rows, 0).chunk(3)]
        assert [r["tp_local"][n] for r in ranks] == chunks, n
    assert sum(r["tp_local"]["model.layers.0.self_attn.k_proj.weight"] for r in ranks) == 1024 * 4096


@pytest.mark.parametrize("E, F, E_p, local", [
    (8, 4, 2, (2, 28672, 4096)),    # F <= E: Shard(0), 4 local experts over 2 expert-FSDP ranks
    (4, 8, 2, (2, 7168, 4096)),     # F > E: Shard(1), 2 local experts, 2·d_moe cut over 4 ranks
])
def test_expert_fsdp_placement(E, F, E_p, local):
    """torchtitan's rule: experts' FSDP uses Shard(1) when F = efsdp·ep > E, else Shard(0)."""
    config = _config("mixtral-8x7b", num_local_experts=E, num_experts_per_tok=2)
    ranks = _all_ranks(config, T=1, F=F, E_p=E_p)
    n = "model.layers.0.mlp.experts.gate_up_proj"
    assert {r["fsdp_local"][n] for r in ranks} == {math.prod(local)}
    assert sum(r["fsdp_local"][n] for r in ranks) == E * 28672 * 4096
