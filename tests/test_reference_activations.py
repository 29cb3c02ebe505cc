"""Saved activations of our own reference modules equal the analyzer's `reference` profile, exactly.

One fp32 training forward with the reference trainer's loss (transformer_math.training.losses.causal_lm_loss), every
distinct storage autograd saves counted once (parameters excluded, as checks/execution.py counts), against
analyze(..., conventions=Conventions(activations="reference")) — for the variants no Hugging Face family has in this
form (parallel block with RMS norms, post-norm without qk-norm, prefix-LM, chunked and NoPE layers) and for the
dense layouts the families use. The MoE capacity slots are checked inside the expert computation.
"""

from dataclasses import replace

import pytest
import torch

import transformer_math as tm
from reference_support import saved_bytes
from transformer_math import reference as ref
from transformer_math.errors import TmathError

pytestmark = pytest.mark.torch
REFERENCE = tm.Conventions(activations="reference")
LLAMA = dict(model_type="llama", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2)


def _variant(name: str) -> tm.ModelSpec:
    llama = tm.load_model(LLAMA)
    return {
        "llama-gqa": lambda: llama,
        "mha": lambda: tm.load_model({**LLAMA, "num_key_value_heads": 4}),
        "mqa": lambda: tm.load_model({**LLAMA, "num_key_value_heads": 1}),
        "parallel-rmsnorm": lambda: replace(llama, block="parallel"),
        "post-norm": lambda: replace(llama, norm_placement="post"),
        "prefix-lm": lambda: replace(llama, prefix_length=5),
        "chunked-and-nope": lambda: replace(llama, layers=(
            tm.LayerSpec(attention="chunked", window=4, d_ff=48), tm.LayerSpec(rope=False, d_ff=48))),
        "sliding": lambda: tm.load_model({**LLAMA, "model_type": "mistral", "sliding_window": 5}),
        "sandwich": lambda: tm.load_model({**LLAMA, "model_type": "gemma2", "head_dim": 8,
                                           "attn_logit_softcapping": None, "final_logit_softcapping": None,
                                           "query_pre_attn_scalar": 8}),
        "partial-rotary": lambda: tm.load_model({**LLAMA, "model_type": "phi3", "partial_rotary_factor": 0.5}),
        "gpt2": lambda: tm.load_model(dict(model_type="gpt2", vocab_size=64, n_embd=32, n_layer=2, n_head=4,
                                           n_positions=32)),
        "gpt-neox-parallel": lambda: tm.load_model(dict(model_type="gpt_neox", vocab_size=64, hidden_size=32,
                                                        intermediate_size=48, num_hidden_layers=2,
                                                        num_attention_heads=4)),
        "relu": lambda: replace(llama, activation="relu", n_up=1),
    }[name]()


def _training_saved_bytes(model: torch.nn.Module, ids_BT: torch.Tensor) -> int:
    """Saved bytes of one training forward with the reference trainer's loss."""
    from transformer_math.training.losses import causal_lm_loss

    return saved_bytes(model, lambda: causal_lm_loss(model(ids_BT), ids_BT))


@pytest.mark.parametrize("name", ["llama-gqa", "mha", "mqa", "parallel-rmsnorm", "post-norm", "prefix-lm",
                                  "chunked-and-nope", "sliding", "sandwich", "partial-rotary", "gpt2",
                                  "gpt-neox-parallel", "relu"])
@pytest.mark.parametrize("B,T", [(2, 12), (3, 7)])
def test_saved_bytes_equal_the_reference_profile(name, B, T):
    spec = _variant(name)
    torch.manual_seed(0)
    model = ref.build(spec).float()
    ids = torch.randint(0, spec.vocab_size, (B, T), generator=torch.Generator().manual_seed(B * T))
    measured = _training_saved_bytes(model, ids)
    assert measured == tm.analyze(spec, batch=B, context=T, conventions=REFERENCE)["memory.activations_bytes"]


def test_parallel_block_norms_share_their_input():
    """In a parallel block both RMS norms read the block input, kept once: the analyzer's shared-input term is what
    separates it from two independent norms (and the measurement agrees, test above)."""
    spec = replace(tm.load_model(LLAMA), block="parallel")
    r = tm.analyze(spec, batch=2, context=12, conventions=REFERENCE)
    layers = next(c for c in r.quantities["memory.activations_bytes"].children if c.key.startswith("layers["))
    shared = next(c for c in layers.children if c.key == "norms.shared_input")
    single = next(c for c in layers.children if c.key == "norms")
    assert single.value - shared.value == 2 * 2 * 12 * 32 * 4  # the fp32 input (4 bytes per element), per layer


def _expert_scope_bytes(moe, x_BTD: torch.Tensor) -> int:
    """Bytes saved inside MoE._experts_batched (its dispatched input x_ECD included)."""
    seen: dict[int, int] = {}
    params = {p.untyped_storage()._cdata for p in moe.parameters()}
    inside = [False]
    original = moe._experts_batched

    def scoped(x_ECD):
        inside[0] = True
        try:
            return original(x_ECD)
        finally:
            inside[0] = False

    def pack(t):
        st = t.untyped_storage()
        if inside[0] and st._cdata not in params:
            seen[st._cdata] = max(seen.get(st._cdata, 0), st.nbytes())
        return t

    moe._experts_batched = scoped
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        moe(x_BTD).sum()
    return sum(seen.values())


@pytest.mark.parametrize("C_cap", [0.5, 1.0, 2.0])
def test_capacity_slots_are_what_the_experts_keep(C_cap):
    """With a capacity factor every expert runs its C_exp slots, padding included: bf16 dispatched rows (2 bytes per
    feature) and gate, up, act and product (8 per d_moe feature) for E·C_exp rows — whatever the routing, so the
    count at C_cap = 2 exceeds the uncapped e·N rows the formula would count without the capacity."""
    from transformer_math.reference.moe import MoE

    config = {"model_type": "mixtral", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 24,
              "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 4,
              "num_experts_per_tok": 2}
    spec = tm.load_model(config)
    spec = replace(spec, moe=replace(spec.moe, capacity_factor=C_cap))
    torch.manual_seed(0)
    moe = MoE(spec).to(torch.bfloat16)
    B, T = 2, 10
    x = torch.randn(B, T, 32, dtype=torch.bfloat16, requires_grad=True)
    measured = _expert_scope_bytes(moe, x)
    r = tm.analyze(spec, batch=B, context=T, conventions=tm.Conventions(activations="eager"))
    layer = next(c for c in r.quantities["memory.activations_bytes"].children if c.key.startswith("layers["))
    experts = next(c for c in layer.children if c.key == "moe.experts")
    C = moe.capacity(B * T)
    assert measured == experts.value == 4 * C * (8 * 24 + 2 * 32)
    if C_cap == 2.0:
        assert 4 * C > B * T * 2  # more slots than routed assignments: padding is kept too


@pytest.mark.parametrize("config", [
    {"model_type": "mixtral", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 24, "num_hidden_layers": 1,
     "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2},
    {**LLAMA, "model_type": "qwen3", "head_dim": 8},
])
def test_reference_profile_refuses_what_it_was_not_measured_on(config):
    with pytest.raises(TmathError) as e:
        tm.analyze(config, conventions=REFERENCE)
    assert e.value.field == "activations" and "reference" in str(e.value)
