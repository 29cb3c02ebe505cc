"""Every preset against the real Hugging Face implementation on the meta device: exact equality."""

import pytest

import transformer_math as tm

pytestmark = pytest.mark.torch
# decoder-only presets; bert-base-uncased and t5-small are built as BertForMaskedLM and T5ForConditionalGeneration
# in tests/test_reference_encoders.py (test_presets_equal_hugging_face_on_meta)
PRESETS = [n for n in tm.list_presets() if tm.load_model(n).arch == "decoder"]


def _tokens(spec: tm.ModelSpec) -> int:
    """A prompt longer than every window (so window layers hold S-1 tokens), capped for speed."""
    windows = [layer.window for layer in spec.layers if layer.window]
    return min(max(windows) + 8, 4096) if windows else 64


@pytest.fixture(scope="module", params=PRESETS)
def measured(request):
    from transformer_math.checks import execution as cc

    name = request.param
    spec = tm.load_model(name)
    T = _tokens(spec)
    model = cc.build_meta(tm.load_preset(name)["config"])
    WEIGHT_BYTES[name] = sum(p.numel() * p.element_size() for p in model.parameters())
    return name, spec, T, cc.measure(model, batch=2, tokens=T)


WEIGHT_BYTES: dict[str, int] = {}  # Σ numel·element_size of the parameters as Hugging Face builds them


def test_params_exact(measured):
    name, spec, T, m = measured
    r = tm.analyze(name)
    assert r["params.total"] == m.params


# Published totals, from the preset's source: Pythia paper (arXiv 2304.01373) Table 1; keras-hub phi3_presets.py.
PUBLISHED_PARAMS = {"pythia-1.4b": 1_414_647_808, "phi-3-mini-4k": 3_821_079_552}


def test_published_params(measured):
    """Where a model's exact parameter count is published, the HF build and our count both equal it."""
    name, spec, T, m = measured
    if name not in PUBLISHED_PARAMS:
        pytest.skip("no exact published count")
    assert m.params == tm.analyze(name)["params.total"] == PUBLISHED_PARAMS[name]


def test_active_params_exact(measured):
    """Active = all registered parameters but routed experts, plus e/E of the routed-expert tensors."""
    name, spec, T, m = measured
    e, E = (spec.moe.experts_per_token, spec.moe.n_experts) if spec.moe else (1, 1)
    assert m.routed_expert_params % E == 0
    assert tm.analyze(name)["params.active"] == m.params - m.routed_expert_params + m.routed_expert_params * e // E


def test_weight_bytes_exact(measured):
    """Unquantized (the meta build ignores quantization_config), weights take the bytes of the dtypes the
    implementation keeps: DeepSeek-V3's router stays fp32 (213 MB more than 2 bytes per parameter)."""
    name, spec, T, m = measured
    cfg = {k: v for k, v in tm.load_preset(name)["config"].items() if k != "quantization_config"}
    assert tm.analyze(cfg)["memory.weights_bytes"] == WEIGHT_BYTES[name]


def test_kv_cache_exact(measured):
    name, spec, T, m = measured
    assert tm.analyze(name, batch=2, context=T)["memory.kv_cache_bytes"] == m.kv_cache_bytes


def test_prefill_flops_exact(measured):
    """FlopCounterMode over an eager bf16 prefill equals flops.prefill (dense-attention convention).

    HF's llama4 runs every expert on every token: there the difference must be exactly the E-e
    experts the router did not pick, and we report the routed (required) count.
    """
    name, spec, T, m = measured
    ours = tm.analyze(name, batch=2, context=T)["flops.prefill"]
    extra = 0
    if spec.family == "llama4":
        moe = spec.moe
        per_expert_token = 2 * (spec.n_up + 1) * spec.d_model * moe.d_moe
        extra = (moe.n_experts - moe.experts_per_token) * 2 * T * per_expert_token * spec.n_moe_layers
        assert extra > 0
    assert m.prefill_flops == ours + extra


def test_decode_flops_exact(measured):
    """One decode step after a prefill of T tokens equals flops.decode_token at context L = T.

    Executed ≠ required in two families, and the difference is shown exactly: llama4 runs all E experts
    (E-e extra per token), and HF's DeepSeek-V3 decompresses every cached latent each step (the naive
    form) where engines run the absorbed form, which is what we report.
    """
    from transformer_math.analysis.flops import forward_flops
    from transformer_math.checks import execution as cc

    name, spec, T, _ = measured
    executed = cc.decode_flops(cc.build_meta(tm.load_preset(name)["config"]), batch=2, context=T)
    ours = tm.analyze(name, batch=2, context=T)["flops.decode_token"]
    if spec.family == "llama4":
        moe = spec.moe
        ours += (moe.n_experts - moe.experts_per_token) * 2 * 2 * (spec.n_up + 1) * spec.d_model * moe.d_moe \
            * spec.n_moe_layers
    if spec.mla is not None:
        naive = forward_flops(spec, B=2, T=1, L=T, decode=True, key="naive", mla_decode="naive").value
        assert naive > ours  # the absorbed form is cheaper at this context
        ours = naive
    assert executed == ours
