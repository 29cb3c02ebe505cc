"""Linear attention (Katharopoulos et al. 2020): the reference module's two forms, and the analyzer against it.

1. The parallel (cumulative) form equals the recurrent form, and cached decoding equals recomputing the prefix.
2. Its causal normalisation equals a naive O(T²) masked implementation on random input.
3. The analyzer counts what the module executes: params, prefill and decode FLOPs, state bytes (mixed with full
   layers), for both feature maps and for GQA.
"""

from dataclasses import replace

import pytest

import transformer_math as tm
from transformer_math.errors import TmathError

V, T, B = 64, 12, 2


def _spec(h_kv: int = 2, layers: tuple[str, ...] = ("linear", "full", "linear"), qk_norm: bool = False):
    return tm.ModelSpec(name="tiny-linear", family="llama", n_layers=len(layers), d_model=32, n_heads=4,
                        n_kv_heads=h_kv, head_dim=8, vocab_size=V, max_context=64, qk_norm=qk_norm,
                        layers=tuple(tm.LayerSpec(attention=a, d_ff=48) for a in layers))


def test_window_on_linear_layer_is_rejected():
    spec = _spec()
    with pytest.raises(TmathError, match=r"layers\[0\]\.window") as e:
        replace(spec, layers=(tm.LayerSpec(attention="linear", window=4, d_ff=48), *spec.layers[1:]))
    assert e.value.field == "layers[0].window"
    with pytest.raises(TmathError, match="sinks"):
        replace(spec, sinks=True)


def test_state_bytes_do_not_grow_with_context():
    spec = _spec(layers=("linear", "linear"))
    sizes = {tm.analyze(spec, batch=3, context=L, kv_dtype="bf16")["memory.kv_cache_bytes"] for L in (1, 16, 64)}
    assert sizes == {3 * 2 * 2 * (8 * 8 + 8) * 2}  # B·N_L,lin·h_kv·(d_k·d_v + d_k)·b_kv


def test_serving_state_is_one_slot_per_sequence():
    from transformer_math.analysis.serving import kv_tokens

    spec = _spec()  # two linear layers, one full
    for L in (1, 15, 40):
        assert kv_tokens(spec, L, block=16) == 2 * 2 * (8 * 8 + 8) + -(-L // 16) * 16 * 2 * 2 * 8


def test_activation_memory_of_linear_layers_is_refused():
    spec = _spec()
    with pytest.raises(TmathError, match="linear"):
        from transformer_math.analysis.memory import activation_bytes

        activation_bytes(spec, B=1, T=8)


def test_analyze_reports_no_activations_for_linear_layers_and_renders():
    from transformer_math.cli.render import render_report

    r = tm.analyze(_spec(), batch=1, context=16)
    assert "memory.activations_bytes" not in r.quantities
    assert any("activation" in w and "linear" in w for w in r.warnings)
    assert "memory.kv_cache_bytes" in render_report(r)
    full = tm.analyze(_spec(), batch=1, context=16, conventions=tm.Conventions(recompute="full"))
    assert full["memory.activations_bytes"] > 0


# ---------------------------------------------------------------------------------------------------------------
# Execution (torch).

def _torch():
    return pytest.importorskip("torch")


def _model(spec, feature_map: str = "elu1"):
    torch = _torch()
    from transformer_math import reference as ref

    torch.manual_seed(0)
    model = ref.build(spec).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p)) if p.ndim == 1 else p.normal_(0, 0.15)
    for block in model.layers:
        if hasattr(block.attn, "feature_map"):
            block.attn.feature_map = feature_map
    return model


def _linear_modules(model):
    from transformer_math.reference.linear_attention import LinearAttention

    return [b.attn for b in model.layers if isinstance(b.attn, LinearAttention)]


def _set_mode(model, mode: str) -> None:
    for m in _linear_modules(model):
        m.mode = mode


@pytest.mark.torch
@pytest.mark.parametrize("feature_map", ["elu1", "relu"])
@pytest.mark.parametrize("h_kv", [4, 2])
def test_parallel_equals_recurrent_and_cached_decode_equals_recompute(feature_map, h_kv):
    torch = _torch()
    model = _model(_spec(h_kv=h_kv, qk_norm=h_kv == 2), feature_map)
    assert len(_linear_modules(model)) == 2
    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _set_mode(model, "parallel")
        parallel = model(ids)
        _set_mode(model, "recurrent")
        recurrent = model(ids)
        _set_mode(model, "auto")
        cache = model.new_cache()
        steps = [model(ids[:, :5], cache)] + [model(ids[:, t:t + 1], cache) for t in range(5, T)]
    assert (parallel - recurrent).abs().max().item() <= 1e-5
    assert (torch.cat(steps, dim=1) - parallel).abs().max().item() <= 1e-5


@pytest.mark.torch
@pytest.mark.parametrize("feature_map", ["elu1", "relu"])
def test_causal_normalisation_equals_naive_masked_attention(feature_map):
    """y_t = Σ_{s≤t} (φ(q_t)·φ(k_s)) v_s / Σ_{s≤t} φ(q_t)·φ(k_s), the T×T masked form, on random tensors."""
    torch = _torch()
    from transformer_math.reference.linear_attention import EPS, LinearAttention
    from transformer_math.reference.linear_attention import feature_map as phi

    g = torch.Generator().manual_seed(3)
    Bn, H, G, Tn, D = 2, 2, 3, 9, 5
    q = torch.randn(Bn, H, G, Tn, D, generator=g, dtype=torch.float64)
    k = torch.randn(Bn, H, Tn, D, generator=g, dtype=torch.float64)
    v = torch.randn(Bn, H, Tn, D, generator=g, dtype=torch.float64)
    fq, fk = phi(q, feature_map), phi(k, feature_map)
    sim = fq @ fk.unsqueeze(2).transpose(-1, -2)  # B×H×G×T×T
    sim = sim.masked_fill(~torch.ones(Tn, Tn, dtype=torch.bool).tril(), 0.0)
    naive = (sim @ v.unsqueeze(2)) / (sim.sum(-1, keepdim=True) + EPS)
    S0, z0 = torch.zeros(Bn, H, D, D, dtype=torch.float64), torch.zeros(Bn, H, D, dtype=torch.float64)
    for form in (LinearAttention._parallel, LinearAttention._recurrent):
        y, S, z = form(fq, fk, v, S0, z0)
        assert (y - naive).abs().max().item() <= 1e-10
        assert torch.allclose(S, fk.transpose(-1, -2) @ v) and torch.allclose(z, fk.sum(2))


@pytest.mark.torch
@pytest.mark.parametrize("h_kv", [4, 2, 1])
def test_analyzer_counts_what_the_module_executes(h_kv):
    """params.total, flops.prefill, flops.decode_token and memory.kv_cache_bytes (fp32 state and K/V)."""
    torch = _torch()
    from torch.utils.flop_counter import FlopCounterMode

    def flops(fn) -> int:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            fn()
        return int(counter.get_total_flops())

    spec = _spec(h_kv=h_kv)
    model = _model(spec)
    for block in model.layers:  # the full layer in its math form, as the dense convention counts it
        block.attn.use_sdpa = False
    r = tm.analyze(spec, batch=B, context=T, kv_dtype="fp32")
    assert sum(p.numel() for p in model.parameters()) == r["params.total"]
    ids = torch.zeros((B, T), dtype=torch.long)
    assert flops(lambda: model(ids)) == r["flops.prefill"]
    cache = model.new_cache()
    with torch.no_grad():
        model(ids, cache)
    assert cache.nbytes() == r["memory.kv_cache_bytes"]
    assert sum(c.nbytes() for c in cache.layers if hasattr(c, "S")) == 2 * B * h_kv * (8 * 8 + 8) * 4
    assert flops(lambda: model(ids[:, :1], cache)) == r["flops.decode_token"]
    _set_mode(model, "recurrent")  # the recurrent form runs the same products as the parallel one
    assert flops(lambda: model(ids)) == r["flops.prefill"]
