"""The executable MoE and MLA (transformer_math.reference.moe / .mla): equal to Hugging Face's modules with the same
weights, the teaching equivalences (E = e = 1 is a dense MLP, ample capacity drops nothing, naive MLA = absorbed,
cached decode = recompute), and the analyzer's per-layer FLOPs and KV bytes equal to what these modules execute."""

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoConfig

import transformer_math as tm
from transformer_math.analysis.flops import layer_ops
from transformer_math.reference.mla import MLA
from transformer_math.reference.moe import MoE

pytestmark = pytest.mark.torch

D = 32
COMMON = {"hidden_size": D, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 4,
          "vocab_size": 64, "max_position_embeddings": 256}
MOE_CONFIGS = {
    "mixtral": {"intermediate_size": 16, "num_local_experts": 8, "num_experts_per_tok": 2},
    "qwen3_moe": {"intermediate_size": 48, "moe_intermediate_size": 16, "num_experts": 8, "num_experts_per_tok": 2,
                  "norm_topk_prob": True, "head_dim": 8},
    "qwen2_moe": {"intermediate_size": 48, "moe_intermediate_size": 16, "shared_expert_intermediate_size": 24,
                  "num_experts": 8, "num_experts_per_tok": 3, "norm_topk_prob": False},
    "deepseek_v3": {"intermediate_size": 48, "moe_intermediate_size": 16, "n_routed_experts": 8,
                    "num_experts_per_tok": 3, "n_shared_experts": 2, "n_group": 4, "topk_group": 2,
                    "routed_scaling_factor": 2.5, "norm_topk_prob": True, "first_k_dense_replace": 0,
                    "kv_lora_rank": 16, "q_lora_rank": 24, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4,
                    "v_head_dim": 8},
    "deepseek_v2": {"intermediate_size": 48, "moe_intermediate_size": 16, "n_routed_experts": 8,
                    "num_experts_per_tok": 2, "n_shared_experts": 1, "n_group": 4, "topk_group": 2,
                    "topk_method": "group_limited_greedy", "routed_scaling_factor": 1.5, "first_k_dense_replace": 0,
                    "kv_lora_rank": 16, "q_lora_rank": 24, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4,
                    "v_head_dim": 8},
    "gpt_oss": {"intermediate_size": 16, "num_local_experts": 8, "num_experts_per_tok": 2, "head_dim": 8,
                "layer_types": ["full_attention"]},
}


def configs(family: str, **extra: object) -> tuple[tm.ModelSpec, object]:
    """One tiny config as our spec and as Hugging Face's config object."""
    raw = {**COMMON, **MOE_CONFIGS.get(family, {}), **extra}
    spec = tm.load_model({"model_type": family, **raw})
    hf = AutoConfig.for_model(family, **raw)
    hf._attn_implementation = "eager"
    return spec, hf


def randomize(module: nn.Module, seed: int, std: float = 0.3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]:
            p.copy_(torch.randn(p.shape, generator=g) * std)


def hf_moe_block(family: str, hf: object) -> nn.Module:
    import transformers.models as M

    blocks = {"mixtral": M.mixtral.modeling_mixtral.MixtralSparseMoeBlock,
              "qwen3_moe": M.qwen3_moe.modeling_qwen3_moe.Qwen3MoeSparseMoeBlock,
              "qwen2_moe": M.qwen2_moe.modeling_qwen2_moe.Qwen2MoeSparseMoeBlock,
              "deepseek_v3": M.deepseek_v3.modeling_deepseek_v3.DeepseekV3MoE,
              "deepseek_v2": M.deepseek_v2.modeling_deepseek_v2.DeepseekV2Moe,
              "gpt_oss": M.gpt_oss.modeling_gpt_oss.GptOssMLP}
    block = blocks[family](hf).eval()
    randomize(block, seed=1)
    return block


def copy_moe(ours: MoE, block: nn.Module, family: str) -> None:
    """Copy a Hugging Face sparse block's weights into our MoE (names and layouts differ per family)."""
    F_ = ours.moe.d_moe
    with torch.no_grad():
        if family == "gpt_oss":  # [E, D, 2F] with gate and up interleaved, x @ W
            ours.router.weight.copy_(block.router.weight)
            ours.router.bias.copy_(block.router.bias)
            ex = block.experts
            ours.gate_EFD.copy_(ex.gate_up_proj[..., 0::2].transpose(1, 2))
            ours.up_EFD.copy_(ex.gate_up_proj[..., 1::2].transpose(1, 2))
            ours.gate_bias_EF.copy_(ex.gate_up_proj_bias[:, 0::2])
            ours.up_bias_EF.copy_(ex.gate_up_proj_bias[:, 1::2])
            ours.down_EDF.copy_(ex.down_proj.transpose(1, 2))
            ours.down_bias_ED.copy_(ex.down_proj_bias)
            return
        ours.router.weight.copy_(block.gate.weight)
        if ours.score_correction_E is not None:
            ours.score_correction_E.copy_(block.gate.e_score_correction_bias)
        ex = block.experts  # [E, 2F, D]: gate rows first, then up
        ours.gate_EFD.copy_(ex.gate_up_proj[:, :F_])
        ours.up_EFD.copy_(ex.gate_up_proj[:, F_:])
        ours.down_EDF.copy_(ex.down_proj)
        shared = getattr(block, "shared_experts", None) or getattr(block, "shared_expert", None)
        if shared is not None:
            ours.shared_gate_proj.weight.copy_(shared.gate_proj.weight)
            ours.shared_up_proj.weight.copy_(shared.up_proj.weight)
            ours.shared_down_proj.weight.copy_(shared.down_proj.weight)
        if ours.shared_gate is not None:
            ours.shared_gate.weight.copy_(block.shared_expert_gate.weight)


@pytest.mark.parametrize("family", ["mixtral", "qwen3_moe", "qwen2_moe", "deepseek_v3", "deepseek_v2", "gpt_oss"])
def test_moe_equals_hugging_face_block(family):
    spec, hf = configs(family)
    block = hf_moe_block(family, hf)
    kw = {"n_group": hf.n_group, "topk_group": hf.topk_group,
          "routed_scaling": hf.routed_scaling_factor} if family.startswith("deepseek") else {}
    ours = MoE(spec, **kw).eval()
    copy_moe(ours, block, family)
    x = torch.randn(2, 7, D, generator=torch.Generator().manual_seed(2)) * 2
    with torch.no_grad():
        want = block(x)
        want = want[0] if isinstance(want, tuple) else want
        got = ours(x)
    assert (got - want).abs().max() <= 1e-5 * max(1.0, want.abs().max().item())
    if family == "gpt_oss":  # the clamp bites: some gate pre-activations exceed the limit of 7
        gate = torch.einsum("nd,efd->nef", x.reshape(-1, D), ours.gate_EFD) + ours.gate_bias_EF
        assert gate.max() > ours.swiglu_limit
    if family == "deepseek_v3":  # the correction bias moves the choice, not the weights: a choice differs from σ
        _, p, _, idx = ours.route(x.reshape(-1, D))
        assert not torch.equal(idx.sort(-1).values, p.topk(3, dim=-1).indices.sort(-1).values)


def test_load_balance_loss_matches_hugging_face():
    """Ours counts f_j per assignment (1 when balanced); HF's load_balancing_loss_func per token: e × ours."""
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    spec, hf = configs("mixtral")
    ours = MoE(spec)
    randomize(ours, seed=3)
    x = torch.randn(2, 9, D, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ours(x)
        logits = ours.route(x.reshape(-1, D))[0]
    want = load_balancing_loss_func((logits,), num_experts=8, top_k=2)
    assert ours.aux_losses["load_balance"] * 2 == pytest.approx(want.item(), rel=1e-5)
    assert ours.aux_losses["router_z"] == pytest.approx((torch.logsumexp(logits, -1) ** 2).mean().item(), rel=1e-6)


def test_single_expert_equals_dense_swiglu():
    """E = e = 1: the router's softmax is 1, so the layer is the dense gated MLP with the expert's weights."""
    from transformer_math.reference.mlp import MLP

    spec, _ = configs("mixtral", num_local_experts=1, num_experts_per_tok=1)
    ours = MoE(spec)
    randomize(ours, seed=5)
    dense = MLP(D, 16, act="silu", n_up=2)
    with torch.no_grad():
        dense.gate.weight.copy_(ours.gate_EFD[0])
        dense.up.weight.copy_(ours.up_EFD[0])
        dense.down.weight.copy_(ours.down_EDF[0])
    x = torch.randn(3, 5, D)
    with torch.no_grad():
        assert (ours(x) - dense(x)).abs().max() <= 1e-6


@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe", "deepseek_v3"])
def test_ample_capacity_drops_nothing(family):
    """C_cap = E/e gives C = N slots per expert: no assignment can be dropped, the output is the unlimited one;
    a tight capacity drops some and changes it."""
    spec, hf = configs(family)
    kw = {"n_group": 4, "topk_group": 2} if family == "deepseek_v3" else {}
    free = MoE(spec, **kw)
    randomize(free, seed=6)
    E, e = spec.moe.n_experts, spec.moe.experts_per_token
    ample, tight = MoE(spec, capacity_factor=E / e, **kw), MoE(spec, capacity_factor=0.5, **kw)
    ample.load_state_dict(free.state_dict())
    tight.load_state_dict(free.state_dict())
    x = torch.randn(2, 8, D, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = free(x)
        assert (ample(x) - want).abs().max() <= 1e-5 and ample.dropped == 0
        assert (tight(x) - want).abs().max() > 1e-4 and tight.dropped > 0


def flops_of(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def analyzer_flops(spec, prefix: str, **kw) -> int:
    ops = layer_ops(spec, spec.layers[0], **kw)
    return sum(int(op.flops.value) for op in ops if op.name.startswith(prefix))


@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe", "deepseek_v3"])
def test_analyzer_moe_flops_equal_execution(family):
    """Router d×E, e of E experts per token, shared experts (+ the shared gate): FlopCounterMode agrees."""
    spec, hf = configs(family)
    ours = MoE(spec, **({"n_group": 4, "topk_group": 2} if family == "deepseek_v3" else {}))
    randomize(ours, seed=8)
    B, T = 2, 6
    x = torch.randn(B, T, D)
    assert flops_of(lambda: ours(x)) == analyzer_flops(spec, "moe.", B=B, T=T)


def test_capacity_expert_flops_by_hand():
    """With capacity every expert runs C rows, padding included: E·C·2·(g_up+1)·d·d_moe (+ the router), worked
    by hand here; tests/test_moe_capacity.py holds the analyzer's capacity formulas against the same module."""
    spec, _ = configs("mixtral")
    B, T, E, e, F_ = 2, 6, 8, 2, 16
    for cap in (1.0, 1.25, 3.0):
        ours = MoE(spec, capacity_factor=cap)
        C = math.ceil(cap * B * T * e / E)
        assert ours.capacity(B * T) == C
        want = E * C * 2 * (spec.n_up + 1) * D * F_ + 2 * B * T * D * E
        assert flops_of(lambda m=ours: m(torch.randn(B, T, D))) == want


# -- MLA ----------------------------------------------------------------------------------------------------------
MLA_CASES = {
    "v3": ("deepseek_v3", {}),
    "v3_full_rank_q": ("deepseek_v3", {"q_lora_rank": None}),
    "v3_yarn": ("deepseek_v3", {"rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                     "original_max_position_embeddings": 64, "beta_fast": 32,
                                                     "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}}),
    "v3_yarn_mscale": ("deepseek_v3", {"qk_rope_head_dim": 8, "rope_parameters": {
        "rope_type": "yarn", "rope_theta": 500.0, "factor": 8.0, "original_max_position_embeddings": 32,
        "beta_fast": 16, "beta_slow": 2, "mscale": 0.8, "mscale_all_dim": 1.0}}),
    "v3_not_interleaved": ("deepseek_v3", {"rope_interleave": False}),
    "v2": ("deepseek_v2", {}),
}


def hf_attention(family: str, hf: object) -> tuple[nn.Module, nn.Module]:
    import transformers.models as M

    mod = M.deepseek_v3.modeling_deepseek_v3 if family == "deepseek_v3" else M.deepseek_v2.modeling_deepseek_v2
    cls = "DeepseekV3" if family == "deepseek_v3" else "DeepseekV2"
    attn = getattr(mod, cls + "Attention")(hf, layer_idx=0).eval()
    randomize(attn, seed=9, std=0.2)
    with torch.no_grad():  # norms near 1
        for norm in (attn.q_a_layernorm, attn.kv_a_layernorm):
            if norm is not None:
                norm.weight.add_(1.0)
    return attn, getattr(mod, cls + "RotaryEmbedding")(hf)


def copy_mla(ours: MLA, attn: nn.Module) -> None:
    with torch.no_grad():
        pairs = [(ours.kv_a_proj, attn.kv_a_proj_with_mqa), (ours.kv_b_proj, attn.kv_b_proj),
                 (ours.o_proj, attn.o_proj), (ours.q_proj, attn.q_proj), (ours.q_a_proj, attn.q_a_proj),
                 (ours.q_b_proj, attn.q_b_proj)]
        for mine, theirs in pairs:
            if mine is not None:
                mine.load_state_dict(theirs.state_dict())
        ours.kv_a_norm.weight.copy_(attn.kv_a_layernorm.weight)
        if ours.q_a_norm is not None:
            ours.q_a_norm.weight.copy_(attn.q_a_layernorm.weight)


@pytest.mark.parametrize("case", list(MLA_CASES))
def test_mla_equals_hugging_face_attention(case):
    family, extra = MLA_CASES[case]
    spec, hf = configs(family, **extra)
    attn, rotary = hf_attention(family, hf)
    ours = MLA(spec, 0, rope=extra.get("rope_parameters"), interleaved=extra.get("rope_interleave", True)).eval()
    copy_mla(ours, attn)
    B, T = 2, 9
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(10))
    pos = torch.arange(T)
    mask = torch.full((T, T), float("-inf")).triu(1).expand(B, 1, T, T)
    with torch.no_grad():
        want = attn(x, position_embeddings=rotary(x, pos.expand(B, T)), attention_mask=mask)[0]
        for absorbed in (False, True):
            got = ours(x, pos, absorbed=absorbed)
            assert (got - want).abs().max() <= 2e-5, (case, absorbed)
    if case == "v3_yarn":  # the spec's factor alone (L_orig = L_max/factor, DeepSeek's mscale) gives the same
        plain = MLA(spec, 0)
        plain.load_state_dict(ours.state_dict())
        with torch.no_grad():
            assert (plain(x, pos) - want).abs().max() <= 2e-5
        assert ours.scale != (8 + 4) ** -0.5  # DeepSeek's mscale_all_dim² sharpens the softmax


def test_mla_naive_equals_absorbed_and_cached_decode_equals_recompute():
    spec, _ = configs("deepseek_v3")
    ours = MLA(spec, 0)
    randomize(ours, seed=11, std=0.2)
    B, T = 2, 10
    x = torch.randn(B, T, D, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        full = ours(x, torch.arange(T))
        assert (ours(x, torch.arange(T), absorbed=True) - full).abs().max() <= 1e-5
        cache = ours.new_cache()
        steps = [ours(x[:, :6], torch.arange(6), cache, absorbed=True)]
        for t in range(6, T):
            steps.append(ours(x[:, t:t + 1], torch.tensor([t]), cache, absorbed=True))
        assert (torch.cat(steps, dim=1) - full).abs().max() <= 1e-5
        assert cache.k.shape == (B, 1, T, 16) and cache.v.shape == (B, 1, T, 4)


@pytest.mark.parametrize("q_rank", [24, None])
def test_analyzer_mla_flops_and_kv_bytes_equal_execution(q_rank):
    """Prefill naive and decode absorbed (and naive): FlopCounterMode equals the analyzer's attention ops; the
    latent cache holds exactly the analyzer's KV bytes per layer, (d_c + d_rope) per token."""
    spec, _ = configs("deepseek_v3", q_lora_rank=q_rank, num_hidden_layers=2)
    ours = MLA(spec, 1)
    B, L = 2, 7
    x, step = torch.randn(B, L, D), torch.randn(B, 1, D)
    cache = ours.new_cache()
    assert flops_of(lambda: ours(x, torch.arange(L), cache)) == analyzer_flops(spec, "attention.", B=B, T=L)
    per_layer = tm.analyze(spec, batch=B, context=L, kv_dtype="fp32")["memory.kv_cache_bytes"] // spec.n_layers
    assert cache.nbytes() == per_layer == B * L * (16 + 4) * 4
    got = flops_of(lambda: ours(step, torch.tensor([L]), cache, absorbed=True))
    assert got == analyzer_flops(spec, "attention.", B=B, T=1, L=L, decode=True)
    again = ours.new_cache()
    ours(x, torch.arange(L), again)
    naive = flops_of(lambda: ours(step, torch.tensor([L]), again))  # the naive form: what HF runs
    assert naive == analyzer_flops(spec, "attention.", B=B, T=1, L=L, decode=True, mla_decode="naive")


def test_reference_model_with_mla_and_moe_decodes_like_recompute():
    """reference.build picks MLA and MoE for a DeepSeek-V3 spec; cached greedy decoding (latent caches) equals
    recomputing the whole prefix, in the naive and the absorbed form."""
    from transformer_math.reference import build, generate_greedy

    spec, _ = configs("deepseek_v3", num_hidden_layers=2)
    torch.manual_seed(13)
    model = build(spec).eval()
    ids = torch.randint(0, 64, (2, 5))
    want = generate_greedy(model, ids, 4, use_cache=False)
    for absorbed in (False, True):
        for block in model.layers:
            block.attn.absorbed = absorbed
        assert torch.equal(generate_greedy(model, ids, 4, use_cache=True), want)
    assert {type(block.attn).__name__ for block in model.layers} == {"MLA"}
    assert all(set(block.mlp.aux_losses) == {"load_balance", "router_z"} for block in model.layers)


def test_model_collects_the_moe_losses_as_tensors():
    """Model.aux_losses(): each MoE layer's load-balancing and z-loss as scalar tensors a trainer can weigh and add
    (a balanced router gives a load-balancing loss near 1 by construction: E·Σ f·m with f = m = 1/E)."""
    from transformer_math.reference import build

    spec, _ = configs("mixtral", num_hidden_layers=2)
    torch.manual_seed(3)
    model = build(spec)
    model(torch.randint(0, 64, (2, 9)))
    losses = model.aux_losses()
    assert len(losses) == 2 * spec.n_moe_layers
    assert all(isinstance(x, torch.Tensor) and x.ndim == 0 and torch.isfinite(x) for x in losses)
    assert sum(losses).requires_grad
