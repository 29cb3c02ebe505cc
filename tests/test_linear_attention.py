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


def _part(quantity, key: str):
    """The first part named `key` in a quantity tree (depth first)."""
    if quantity.key == key:
        return quantity
    for child in quantity.children:
        found = _part(child, key)
        if found is not None:
            return found
    return None


def test_linear_layers_keep_their_states_not_scores_and_render():
    """A linear layer's attention keeps M_act,lin (no T×T scores, no log-sum-exp); analyze reports it, no warning."""
    from transformer_math.cli.render import render_report

    for activations in ("fused", "eager"):
        r = tm.analyze(_spec(), batch=B, context=T, conventions=tm.Conventions(activations=activations))
        assert not r.warnings and "memory.activations_bytes" in render_report(r)
        acts = r.quantities["memory.activations_bytes"]
        lin = next(c for c in acts.children if c.key.startswith("layers[linear"))
        assert _part(lin, "scores") is None and _part(lin, "attention") is None
        part = _part(lin, "linear_attention")
        # b_a·B·T·(n_φ·(h_q + h_kv)·d_k + h_kv·(d_v + d_k·d_v + d_k) + h_q·(2·d_v + 1)), n_φ = 2 (elu + 1)
        assert part.count == 2 and part.value == 2 * 2 * B * T * (2 * 6 * 8 + 2 * (8 + 64 + 8) + 4 * 17)
    T2 = 4 * T  # linear in T: the states S_t grow with T, nothing grows with T²
    lin_T = [_part(tm.analyze(_spec(), batch=B, context=t).quantities["memory.activations_bytes"],
                   "linear_attention").value for t in (T, T2)]
    assert lin_T[1] == 4 * lin_T[0]
    full = tm.analyze(_spec(), batch=1, context=16, conventions=tm.Conventions(recompute="full"))
    assert 0 < full["memory.activations_bytes"] < tm.analyze(_spec(), batch=1, context=16)["memory.activations_bytes"]


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


def _saved_bytes(model, ids, scope: type) -> tuple[int, list[int]]:
    """Bytes of the distinct tensors autograd saves in one training forward (loss included), as
    checks/execution.py saved_activation_bytes counts them, and per `scope` module the bytes saved inside its
    forward, less the input it reads (the norm's output, counted with the norm)."""
    torch = _torch()
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    seen: dict[int, int] = {}
    per_module: list[dict[int, int]] = []
    inputs: list[int] = []

    def pack(t):
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in params:
            seen[key] = max(seen.get(key, 0), storage.nbytes())
            if inputs and key != inputs[-1]:
                per_module[-1][key] = max(per_module[-1].get(key, 0), storage.nbytes())
        return t

    def enter(module, args):
        inputs.append(args[0].untyped_storage()._cdata)
        per_module.append({})

    def leave(module, args, out):
        inputs.pop()

    handles = [h for m in model.modules() if type(m) is scope
               for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(ids)
        torch.nn.functional.cross_entropy(logits[:, :-1].float().flatten(0, 1), ids[:, 1:].flatten())
    for h in handles:
        h.remove()
    return sum(seen.values()), [sum(d.values()) for d in per_module]


@pytest.mark.torch
@pytest.mark.parametrize("feature_map", ["elu1", "relu"])
@pytest.mark.parametrize("h_kv", [4, 2, 1])
def test_activation_bytes_equal_what_autograd_saves(feature_map, h_kv):
    """bf16 training forward of (linear, full, linear): each linear attention keeps exactly M_act,lin (n_φ = 2 for
    elu + 1, 1 for relu), and a linear layer changes nothing outside its attention module: the whole model keeps
    what the all-full model keeps, less the full attentions' tensors, plus M_act,lin per linear layer."""
    torch = _torch()
    from transformer_math.formulas.memory import linear_attention_activation_bytes
    from transformer_math.reference.attention import Attention
    from transformer_math.reference.linear_attention import LinearAttention

    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(2))
    spec, dense = _spec(h_kv=h_kv), _spec(h_kv=h_kv, layers=("full", "full", "full"))
    model = _model(spec, feature_map).to(torch.bfloat16).eval()
    total, linear = _saved_bytes(model, ids, LinearAttention)
    n_phi = {"elu1": 2, "relu": 1}[feature_map]
    expected = linear_attention_activation_bytes(b_a=2, B=B, T=T, n_phi=n_phi, h_q=4, h_kv=h_kv, d_k=8, d_v=8)
    assert linear == [expected, expected]
    if feature_map == "elu1":  # the analyzer's default φ
        r = tm.analyze(spec, batch=B, context=T)
        assert _part(r.quantities["memory.activations_bytes"], "linear_attention").value == 2 * expected
    dense_total, full = _saved_bytes(_model(dense).to(torch.bfloat16).eval(), ids, Attention)
    assert len(set(full)) == 1
    assert total == dense_total + 2 * (expected - full[0])
