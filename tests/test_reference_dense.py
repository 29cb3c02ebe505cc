"""The reference modules (transformer_math.reference) against Hugging Face and against the analyzer.

1. Equal to the real thing: tiny random HF models (fp32, eager) loaded into ours give the same logits and loss.
2. Cached decoding (full cache, window ring buffer, pinned sinks, chunks) equals recomputing everything.
3. Teaching equivalences: MHA/MQA as GQA with expanded K/V weights; causal = prefix-LM with an empty prefix.
4. The analyzer counts what our module executes: parameters, prefill and decode FLOPs, KV-cache bytes.
"""

from dataclasses import replace

import pytest

import transformer_math as tm

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from reference_support import hf_model, logits_and_loss_match, ours
from transformer_math import reference as ref

V, T, B = 96, 20, 2
_LLAMA = dict(vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256)
CONFIGS = {
    "llama": dict(model_type="llama", **_LLAMA, rope_theta=500000.0),
    "qwen3": dict(model_type="qwen3", **_LLAMA, head_dim=16, tie_word_embeddings=True),
    "mistral": dict(model_type="mistral", **_LLAMA, sliding_window=6),
    "phi3": dict(model_type="phi3", **{**_LLAMA, "num_key_value_heads": 4}, partial_rotary_factor=0.5),
    "olmo2": dict(model_type="olmo2", **_LLAMA),
    "gemma3_text": dict(model_type="gemma3_text", **{**_LLAMA, "num_hidden_layers": 3}, head_dim=16,
                        query_pre_attn_scalar=24, sliding_window=5, hidden_activation="gelu_pytorch_tanh",
                        layer_types=["sliding_attention", "full_attention", "sliding_attention"]),
    "gemma2": dict(model_type="gemma2", **_LLAMA, head_dim=16, query_pre_attn_scalar=16, sliding_window=5,
                   hidden_activation="gelu_pytorch_tanh",
                   attn_logit_softcapping=5.0, final_logit_softcapping=3.0),
    "gpt2": dict(model_type="gpt2", vocab_size=V, n_embd=64, n_layer=2, n_head=4, n_positions=64),
    "gpt_neox": dict(model_type="gpt_neox", vocab_size=V, hidden_size=64, intermediate_size=128,
                     num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64, rotary_pct=0.25),
}


@pytest.mark.parametrize("family", list(CONFIGS))
def test_equal_to_hugging_face(family):
    hf, hf_cfg = hf_model(CONFIGS[family])
    spec, model = ours(CONFIGS[family], hf, hf_cfg)
    ids = logits_and_loss_match(hf, model, V=V, B=B, T=T, family=family)
    # and the HF cached decode of 3 more tokens equals ours
    assert torch.equal(ref.generate_greedy(model, ids[:, :8], 3), hf.generate(
        ids[:, :8], attention_mask=torch.ones_like(ids[:, :8]), max_new_tokens=3, min_new_tokens=3, do_sample=False))


def _spec(family: str, **changes) -> tm.ModelSpec:
    spec = tm.load_model(CONFIGS[family])
    return replace(spec, **changes) if changes else spec


def _variants() -> dict[str, tm.ModelSpec]:
    """Every dense family, plus layers HF has no tiny model for: chunked, NoPE, learned sinks, pinned sinks."""
    llama = _spec("llama")
    mixed = (tm.LayerSpec(attention="chunked", window=4, d_ff=96), tm.LayerSpec(rope=False, d_ff=96),
             tm.LayerSpec(attention="sliding", window=3, d_ff=96))
    out = {f: _spec(f) for f in CONFIGS}
    out["chunked+nope+sinks"] = replace(llama, n_layers=3, layers=mixed, sinks=True)
    out["pinned-sinks"] = replace(_spec("mistral"), n_sink_tokens=2)
    return out


VARIANTS = _variants()


def _random_model(spec):
    torch.manual_seed(0)
    model = ref.build(spec).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p)) if p.ndim == 1 else p.normal_(0, 0.08)
    return model


@pytest.mark.parametrize("name", list(VARIANTS))
def test_cached_decode_equals_recompute(name):
    """Prefill 5 tokens, then decode one at a time: each step's logits equal those of the full forward."""
    model = _random_model(VARIANTS[name])
    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache()
        steps = [model(ids[:, :5], cache)] + [model(ids[:, t:t + 1], cache) for t in range(5, T)]
    assert (torch.cat(steps, dim=1) - full).abs().max().item() <= 1e-5
    assert torch.equal(ref.generate_greedy(model, ids[:, :6], 4), ref.generate_greedy(model, ids[:, :6], 4,
                                                                                       use_cache=False))


def test_window_cache_holds_window_and_sinks():
    """A window layer keeps S − 1 tokens (a ring buffer), plus the k_sinks first ones when pinned."""
    spec = VARIANTS["pinned-sinks"]
    S, k = spec.layers[0].window, spec.n_sink_tokens
    cache = ref.WindowCache(S, k)
    for t in range(12):
        x = torch.full((1, 1, 1, 2), float(t))
        cache.update(x, x, torch.tensor([t]))
    kept = sorted(torch.cat((cache.sinks.pos, cache.ring.pos)).tolist())
    assert kept == [0, 1, *range(12 - (S - 1), 12)]
    assert cache.nbytes() == 2 * (k + S - 1) * 2 * 4


def _expanded_mha(spec, model):
    """The MHA model whose K/V heads repeat the GQA ones g_GQA times: same function, h_kv = h_q."""
    mha = ref.build(replace(spec, n_kv_heads=spec.n_heads)).eval()
    state = dict(model.state_dict())
    g, d_h = spec.gqa_group, spec.head_dim
    for name, t in list(state.items()):
        if name.endswith((".attn.k.weight", ".attn.v.weight", ".attn.k.bias", ".attn.v.bias")):
            heads = t.reshape(spec.n_kv_heads, d_h, *t.shape[1:])
            state[name] = heads.repeat_interleave(g, dim=0).reshape(spec.n_heads * d_h, *t.shape[1:])
    mha.load_state_dict(state)
    return mha


@pytest.mark.parametrize("h_kv", [2, 1])
def test_gqa_and_mqa_are_mha_with_shared_heads(h_kv):
    """GQA (h_kv = 2) and MQA (h_kv = 1) equal MHA whose K/V weights repeat each shared head g_GQA times."""
    spec = _spec("llama", n_kv_heads=h_kv)
    model = _random_model(spec)
    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (model(ids) - _expanded_mha(spec, model)(ids)).abs().max().item() <= 1e-5


def test_sdpa_equals_explicit_softmax():
    model = _random_model(_spec("mistral"))
    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        fused = model(ids)
        for block in model.layers:
            block.attn.use_sdpa = False
        assert (model(ids) - fused).abs().max().item() <= 1e-5


def test_masks():
    """Causal = prefix-LM with an empty prefix; a prefix of p tokens sees itself both ways; bidirectional differs."""
    pos = torch.arange(6)
    causal = ref.attention_mask(pos, pos)
    assert torch.equal(causal, ref.attention_mask(pos, pos, prefix=0))
    prefix = ref.attention_mask(pos, pos, prefix=3)
    assert prefix[:3, :3].all() and torch.equal(prefix[3:], causal[3:]) and not prefix[:3, 3:].any()
    model = _random_model(_spec("llama"))
    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(model(ids), model(ids, prefix=0))
        assert not torch.allclose(model(ids), model(ids, causal=False))
    sliding = ref.attention_mask(pos, pos, kind="sliding", window=2)
    assert sliding.sum(-1).tolist() == [1, 2, 2, 2, 2, 2]
    chunked = ref.attention_mask(pos, pos, kind="chunked", window=4)
    assert chunked.sum(-1).tolist() == [1, 2, 3, 4, 1, 2]


def test_rope_recipes_equal_hugging_face():
    """ω of the linear, dynamic, llama3 and YaRN recipes equal transformers' (d_rope = 32)."""
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    recipes = [{"rope_type": "linear", "factor": 4.0},
               {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64},
               {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}]
    for params in recipes:
        hf_cfg = AutoConfig.for_model("llama", **{**_LLAMA, "head_dim": 32}, rope_parameters=dict(
            params, rope_theta=10000.0))
        omega_hf, temp_hf = ROPE_INIT_FUNCTIONS[params["rope_type"]](hf_cfg, "cpu")
        cfg = ref.details_from_hf(hf_cfg.to_dict()).rope
        omega, temp = ref.rope_frequencies(cfg, 32)
        assert torch.allclose(omega, omega_hf.float(), rtol=1e-6, atol=0), params["rope_type"]
        assert temp == pytest.approx(temp_hf)


def test_positions_teaching():
    """RoPE scores depend on p − s only; ALiBi slopes of 8 heads are 2^-1 … 2^-8; sinusoids are bounded by 1."""
    rope = ref.RoPE(16, ref.RopeConfig())
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(p, s):
        return (rope(q, torch.tensor([p])) * rope(k, torch.tensor([s]))).sum().item()

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-4)
    assert ref.alibi_slopes(8).tolist() == [2.0 ** -i for i in range(1, 9)]
    assert ref.sinusoidal_positions(torch.arange(5), 8).abs().max() <= 1
    for det in (ref.Details(alibi=True), ref.Details(sinusoidal=True)):
        model = ref.build(_spec("llama"), det).eval()
        with torch.no_grad():
            assert model(torch.zeros(1, 4, dtype=torch.long)).isfinite().all()


def _flops(fn) -> int:
    """FLOPs FlopCounterMode sees; SDPA in its math form (the fused CPU kernel is invisible to the counter)."""
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        fn()
    return int(counter.get_total_flops())


@pytest.mark.parametrize("name", list(VARIANTS))
def test_analyzer_counts_what_our_module_executes(name):
    """params.total, flops.prefill (dense convention), flops.decode_token and memory.kv_cache_bytes (fp32 cache)
    equal what our module has and executes for B = 2 and a prompt longer than every window."""
    spec = VARIANTS[name]
    model = ref.build(spec).eval()
    r = tm.analyze(spec, batch=B, context=T, kv_dtype="fp32")
    assert sum(p.numel() for p in model.parameters()) == r["params.total"]
    ids = torch.zeros((B, T), dtype=torch.long)
    assert _flops(lambda: model(ids)) == r["flops.prefill"]
    cache = model.new_cache()
    with torch.no_grad():
        model(ids, cache)
    assert cache.nbytes() == r["memory.kv_cache_bytes"]
    assert _flops(lambda: model(ids[:, :1], cache)) == r["flops.decode_token"]
