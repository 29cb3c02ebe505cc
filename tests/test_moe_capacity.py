"""MoE capacity factor in the analyzer (issue 11): MoESpec.capacity_factor C_cap gives C_exp = ⌈C_cap·N·e/E⌉ slots
per expert, and the routed experts' matmuls count E·C_exp rows (padding included), as reference/moe.py executes them.
FlopCounterMode on the reference module equals the analyzer's MoE ops exactly; without a capacity nothing changes."""

from __future__ import annotations

import dataclasses
import math

import pytest

import transformer_math as tm
from transformer_math.analysis.flops import layer_ops
from transformer_math.errors import TmathError
from transformer_math.formulas import flops as f
from transformer_math.symbols import lookup

D = 32
COMMON = {"hidden_size": D, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 4,
          "vocab_size": 64, "max_position_embeddings": 256}
FAMILIES = {  # mixtral: plain top-2; qwen2_moe: shared expert and its sigmoid gate; deepseek_v3: groups, shared
    "mixtral": {"intermediate_size": 16, "num_local_experts": 8, "num_experts_per_tok": 2},
    "qwen2_moe": {"intermediate_size": 48, "moe_intermediate_size": 16, "shared_expert_intermediate_size": 24,
                  "num_experts": 8, "num_experts_per_tok": 3, "norm_topk_prob": False},
    "deepseek_v3": {"intermediate_size": 48, "moe_intermediate_size": 16, "n_routed_experts": 8,
                    "num_experts_per_tok": 3, "n_shared_experts": 2, "n_group": 4, "topk_group": 2,
                    "first_k_dense_replace": 0, "kv_lora_rank": 16, "q_lora_rank": 24, "qk_nope_head_dim": 8,
                    "qk_rope_head_dim": 4, "v_head_dim": 8},
}
CAPACITIES = (0.5, 1.0, 1.25, 3.0)
TOKENS = ((1, 1), (2, 6), (3, 7), (4, 16))  # (B, T): N = 1, 12, 21, 64


def tiny(family: str, capacity: float | None = None) -> tm.ModelSpec:
    spec = tm.load_model({"model_type": family, **COMMON, **FAMILIES[family]})
    return with_capacity(spec, capacity)


def with_capacity(spec: tm.ModelSpec, capacity: object) -> tm.ModelSpec:
    assert spec.moe is not None
    return dataclasses.replace(spec, moe=dataclasses.replace(spec.moe, capacity_factor=capacity))


def moe_flops(spec: tm.ModelSpec, **kw: int) -> int:
    """The analyzer's MoE ops of the first layer: router, routed experts, shared experts (and their gate)."""
    return sum(int(op.flops.value) for op in layer_ops(spec, spec.layers[0], **kw) if op.name.startswith("moe."))


# -- without torch ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf"), True, "1.25", 1e8])
def test_bad_capacity_names_the_field(bad):
    with pytest.raises(TmathError) as err:
        tiny("mixtral", bad)
    assert err.value.field == "capacity_factor" and "capacity_factor" in str(err.value)


def test_capacity_is_a_spec_field_with_its_symbol():
    spec = tiny("mixtral")
    assert spec.moe.capacity_factor is None  # no supported family's config carries one: set it on the spec
    capped = with_capacity(spec, 1.25)
    assert capped.symbols()["C_cap"] == 1.25 and capped != spec and hash(capped) != hash(spec)
    assert lookup("C_cap").code == "capacity_factor" and lookup("C_exp").unit == "tokens"


@pytest.mark.parametrize("C_cap", CAPACITIES)
@pytest.mark.parametrize("N", [1, 12, 21, 64, 4096])
def test_capacity_formulas_by_hand(C_cap, N):
    E, e = 8, 2
    C = f.expert_capacity(C_cap=C_cap, N_tok=N, e=e, E=E)
    assert C == max(1, math.ceil(C_cap * N * e / E)) and C >= C_cap * N * e / E
    assert f.expert_rows(N_tok=N, e=e, E=E, C_exp=C) == E * C
    assert f.expert_rows(N_tok=N, e=e, E=E, C_exp=None) == N * e
    assert f.dropped_min(N_tok=N, e=e, E=E, C_exp=C) == max(0, N * e - E * C)
    if C_cap >= 1:  # E·C_exp ≥ N·e slots: balanced routing drops nothing
        assert f.dropped_min(N_tok=N, e=e, E=E, C_exp=C) == 0


def test_capacity_expert_ops_by_hand():
    """N = 12 tokens, e = 2 of E = 8: C_exp = ⌈1.25·12·2/8⌉ = 4, so 32 rows per expert matmul, not 24."""
    spec = tiny("mixtral", 1.25)
    ops = {op.name: op for op in layer_ops(spec, spec.layers[0], B=2, T=6)}
    up, down = ops["moe.experts.up_gate"], ops["moe.experts.down"]
    assert up.shape == (8, 4, 2 * 16) and down.shape == (8, 4, D)
    assert up.flops.value == 2 * 32 * D * 32 and down.flops.value == 2 * 32 * 16 * D
    assert up.flops.inputs["N_tok"] == 32 and "C_exp = ⌈C_cap·N·e/E⌉ = 4" in up.flops.note
    assert ops["moe.router"].flops.value == 2 * 12 * D * 8  # the router sees every token, capacity or not


@pytest.mark.parametrize("family", list(FAMILIES))
def test_no_capacity_leaves_every_number_unchanged(family):
    spec = tiny(family)
    E, e, F_ = spec.moe.n_experts, spec.moe.experts_per_token, spec.moe.d_moe
    shared = spec.moe.shared_width
    for B, T in TOKENS:
        N = B * T
        want = 2 * N * D * E + N * e * 2 * 3 * D * F_ + (N * 2 * 3 * D * shared if shared else 0)
        want += 2 * N * D if spec.moe.shared_gate else 0
        assert moe_flops(spec, B=B, T=T) == want
    a = tm.analyze(spec, batch=2, context=16).to_dict()
    b = tm.analyze(with_capacity(spec, None), batch=2, context=16).to_dict()
    assert a == b


def test_capacity_flows_into_analyze_and_train_step():
    spec = tiny("mixtral")
    base, capped = tm.analyze(spec, batch=2, context=6), tm.analyze(with_capacity(spec, 3.0), batch=2, context=6)
    # N = 12, e = 2, E = 8: C_exp = 9, 72 rows instead of 24 in both expert matmuls (g_up + 1 = 3 weight widths)
    extra = (72 - 24) * 2 * 3 * D * 16
    assert capped["flops.prefill"] - base["flops.prefill"] == extra
    assert capped["flops.train_step"] - base["flops.train_step"] == 3 * extra
    assert capped["params.total"] == base["params.total"]
    assert "C_exp" in capped.explain("flops.prefill")


# -- against the reference module ---------------------------------------------------------------------------------
def _reference(family: str, C_cap: float | None):
    torch = pytest.importorskip("torch")
    from transformer_math.reference.moe import MoE

    spec = tiny(family, C_cap)
    kw = {"n_group": 4, "topk_group": 2} if family == "deepseek_v3" else {}
    module = MoE(spec, capacity_factor=C_cap, **kw)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return torch, spec, module


def _executed(torch, module, x) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(x)
    return counter.get_total_flops()


@pytest.mark.torch
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("C_cap", [*CAPACITIES, None])
def test_reference_moe_flops_equal_analyzer(family, C_cap):
    """Router + experts (E·C_exp rows with a capacity, N·e without) + shared experts: equal, for prefill and decode."""
    torch, spec, module = _reference(family, C_cap)
    g = torch.Generator().manual_seed(12)
    for B, T in TOKENS:
        x = torch.randn(B, T, D, generator=g)
        assert _executed(torch, module, x) == moe_flops(spec, B=B, T=T), (B, T)
        if C_cap is not None:
            assert module.capacity(B * T) == f.expert_capacity(C_cap=C_cap, N_tok=B * T, e=spec.moe.experts_per_token,
                                                               E=spec.moe.n_experts)
            bound = f.dropped_min(N_tok=B * T, e=spec.moe.experts_per_token, E=spec.moe.n_experts,
                                  C_exp=module.capacity(B * T))
            assert module.dropped >= bound  # the balanced-routing bound; real routing drops at least this
    B, L = 3, 9  # one decode step: B tokens over L cached ones; the MoE sees only the B new tokens
    step = torch.randn(B, 1, D, generator=g)
    assert _executed(torch, module, step) == moe_flops(spec, B=B, T=1, L=L, decode=True)


@pytest.mark.torch
def test_reference_model_takes_the_capacity_from_the_spec():
    """reference.build(spec) runs the spec's C_cap: its MoE layer executes what the analyzer counts for that spec."""
    torch = pytest.importorskip("torch")
    from transformer_math.reference import build
    from transformer_math.reference.moe import MoE

    spec = tiny("mixtral", 1.25)
    module = next(m for m in build(spec).modules() if isinstance(m, MoE))
    assert module.capacity_factor == 1.25
    x = torch.randn(2, 6, D, generator=torch.Generator().manual_seed(5))
    assert _executed(torch, module, x) == moe_flops(spec, B=2, T=6) != moe_flops(tiny("mixtral"), B=2, T=6)
