"""Perceiver latent cross-attention (reference/latent.py) and its analyzer (analysis/latent.py).

1. The analyzer counts what the module has and executes: parameters on the meta device, FlopCounterMode's forward
   FLOPs (SDPA in its math form) and the bytes autograd saves in a bf16 training forward (fused SDPA), for MHA,
   GQA and MQA, gated and plain MLPs, RMSNorm and LayerNorm.
2. The headline: for a fixed N_lat the executed FLOPs are a + b·T, b = flops.latent.per_input_token; self-attention
   over the same tokens is not linear in T.
3. Equivalences: latents set to the inputs (N_lat = T) make the block one bidirectional pre-norm self-attention
   block (model.Block with causal=False, same weights); without positions the inputs are a set (any permutation of
   the T tokens gives the same latents).
"""

import pytest

torch = pytest.importorskip("torch")

from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import transformer_math as tm
from reference_support import saved_bytes
from transformer_math.analysis.latent import (
    analyze_latent,
    latent_activation_bytes,
    latent_flops,
    latent_input_token_flops,
    latent_params,
)
from transformer_math.reference import Attention, Block, LatentBlock, details_for
from transformer_math.symbols import lookup

pytestmark = pytest.mark.torch

D, H, D_H, D_FF = 32, 4, 8, 48


def _spec(h_kv: int = 2, n_up: int = 2, act: str = "silu", norm: str = "rmsnorm", bias: bool = False):
    return tm.ModelSpec(name="tiny-latent", family="llama", n_layers=1, d_model=D, n_heads=H, n_kv_heads=h_kv,
                        head_dim=D_H, vocab_size=64, max_context=64, n_up=n_up, activation=act, norm=norm,
                        qkv_bias=bias, o_bias=bias, mlp_bias=bias, layers=(tm.LayerSpec(d_ff=D_FF, rope=False),))


SPECS = {
    "gqa-swiglu": _spec(),
    "mha-gelu-layernorm-bias": _spec(h_kv=4, n_up=1, act="gelu", norm="layernorm", bias=True),
    "mqa-relu-gated": _spec(h_kv=1, act="relu"),
    "gqa-relu-plain": _spec(n_up=1, act="relu"),
}


def _block(spec, n_latents: int, dtype=torch.float32) -> LatentBlock:
    torch.manual_seed(0)
    block = LatentBlock(spec, n_latents).to(dtype)
    with torch.no_grad():  # norms off their initial ones, so a swapped gain would show
        for name, p in block.named_parameters():
            p.add_(0.1 * torch.randn_like(p)) if name.startswith("norm") else p.normal_(0, 0.2)
    return block


def _input(B: int, T: int, dtype=torch.float32, seed: int = 1) -> torch.Tensor:
    return torch.randn(B, T, D, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _flops(fn) -> int:
    """Forward FLOPs FlopCounterMode sees; SDPA in its math form (the fused CPU kernel is invisible to the counter).
    Grad stays on: under no_grad the counter's module tracker rejects the latents' batch view of a parameter."""
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        fn()
    return int(counter.get_total_flops())


@pytest.mark.parametrize("name", list(SPECS))
def test_params_equal_the_module_on_the_meta_device(name):
    spec = SPECS[name]
    for n_latents in (1, 6):
        with torch.device("meta"):
            block = LatentBlock(spec, n_latents)
        P = latent_params(spec, n_latents=n_latents)
        assert sum(p.numel() for p in block.parameters()) == P.value
        assert {c.key: c.value for c in P.children}["latents"] == block.latents.numel() == n_latents * D
    with torch.device("meta"):  # a d_ff other than the spec's
        assert sum(p.numel() for p in LatentBlock(spec, 3, d_ff=20).parameters()) == latent_params(
            spec, n_latents=3, d_ff=20).value


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize(("B", "T", "n_latents"), [(2, 7, 3), (1, 16, 5)])
def test_forward_flops_equal_flop_counter(name, B, T, n_latents):
    spec = SPECS[name]
    block = _block(spec, n_latents)
    x = _input(B, T)
    assert _flops(lambda: block(x)) == latent_flops(spec, B=B, T=T, n_latents=n_latents).value


def test_flops_are_linear_in_T_for_fixed_latents():
    """F(T) = a + b·T: doubling T adds T·b, b = flops.latent.per_input_token; self-attention's increments grow."""
    spec, B, N = SPECS["gqa-swiglu"], 2, 4
    block = _block(spec, N)
    Ts = (8, 16, 32, 64)
    F = [_flops(lambda T=T: block(_input(B, T))) for T in Ts]
    slope = latent_input_token_flops(spec, B=B, n_latents=N).value
    assert slope == 4 * B * D_H * (D * 2 + H * N)
    for i in range(len(Ts) - 1):
        assert F[i + 1] - F[i] == (Ts[i + 1] - Ts[i]) * slope
        assert F[i + 1] < 2 * F[i]  # the latents' own work (W_Q, W_O, the MLP) does not grow with T
    assert [latent_flops(spec, B=B, T=T, n_latents=N).value for T in Ts] == F

    attn = Attention(spec, 0)  # self-attention over the T tokens: T² pairs
    S = [_flops(lambda T=T: attn(_input(B, T), torch.arange(T), causal=False)) for T in Ts]
    increments = [(S[i + 1] - S[i]) // (Ts[i + 1] - Ts[i]) for i in range(len(Ts) - 1)]
    assert increments[0] < increments[1] < increments[2]


def _saved_bytes(module, fn) -> int:
    return saved_bytes(module, fn)


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize(("B", "T", "n_latents"), [(2, 7, 3), (1, 12, 5)])
def test_activation_bytes_equal_what_autograd_saves(name, B, T, n_latents):
    """bf16 training forward, the input from an earlier layer (requires grad), torch's default (fused) SDPA."""
    spec = SPECS[name]
    block = _block(spec, n_latents, torch.bfloat16)
    x = _input(B, T, torch.bfloat16).requires_grad_(True)
    out = {}
    saved = _saved_bytes(block, lambda: out.setdefault("y", block(x)))
    M = latent_activation_bytes(spec, B=B, T=T, n_latents=n_latents)
    assert saved == M.value
    out["y"].float().sum().backward()  # what was saved is enough for backward
    assert x.grad is not None and block.latents.grad is not None


def test_activation_bytes_are_linear_in_T():
    spec = SPECS["gqa-swiglu"]
    M = [latent_activation_bytes(spec, B=2, T=T, n_latents=4).value for T in (8, 16, 32)]
    assert M[2] - M[1] == 2 * (M[1] - M[0]) > 0


@pytest.mark.parametrize("h_kv", [4, 2])
def test_latents_equal_inputs_is_a_bidirectional_self_attention_block(h_kv):
    """N_lat = T and lat = x: each latent is a token attending to all tokens, so the block is model.Block (pre-norm,
    causal=False) with the same weights, Norm_lat = Norm_x = its attention norm."""
    spec, B, T = _spec(h_kv=h_kv), 2, 6
    latent = _block(spec, T)
    ref = Block(spec, 0, details_for(spec))
    with torch.no_grad():
        latent.norm_x.load_state_dict(latent.norm_lat.state_dict())
        ref.norm_attn_in.load_state_dict(latent.norm_lat.state_dict())
        ref.norm_mlp_in.load_state_dict(latent.norm_mlp.state_dict())
        ref.mlp.load_state_dict(latent.mlp.state_dict())
        for name in "qkvo":
            getattr(ref.attn, name).load_state_dict(getattr(latent, name).state_dict())
    x = _input(B, T)
    with torch.no_grad():
        expected = ref(x, torch.arange(T), causal=False)
        assert torch.allclose(latent(x, x), expected, atol=1e-5, rtol=1e-5)
        assert torch.allclose(latent.cross_attention(x, x), ref.attn(ref.norm_attn_in(x), torch.arange(T),
                                                                      causal=False), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(expected, ref(x, torch.arange(T)), atol=1e-3)  # the causal block differs
    F_lat = latent_flops(spec, B=B, T=T, n_latents=T).value  # and costs what the T² self-attention block costs
    assert F_lat == _flops(lambda: ref(x, torch.arange(T), causal=False))


def test_the_inputs_are_a_set():
    """No positions: permuting the T inputs permutes K and V alike and leaves every latent unchanged."""
    block = _block(SPECS["gqa-swiglu"], 3)
    x = _input(2, 9)
    with torch.no_grad():
        y, y_perm = block(x), block(x[:, torch.randperm(9, generator=torch.Generator().manual_seed(5))])
    assert y.shape == (2, 3, D) and torch.allclose(y, y_perm, atol=1e-5)


def test_quantities_explain_themselves():
    spec = SPECS["gqa-swiglu"]
    r = analyze_latent(spec, B=2, T=10, n_latents=4)
    assert set(r) == {"latent.params", "latent.flops", "latent.flops_per_input_token", "latent.activations_bytes"}
    flops = r["latent.flops"]
    scores = next(c for c in flops.children if c.key == "scores")
    assert scores.formula == "2·B·h_q·n_pairs·d_qk" and scores.substituted == "2·2·4·40·8"
    assert r["latent.params"].children[0].substituted == "4·32"
    slope = r["latent.flops_per_input_token"]
    assert slope.symbol == "F_lat,T" and slope.substituted == "4·2·8·(32·2 + 4·4)"
    assert lookup("N_lat").unit == "tokens" and lookup("P_lat").unit == "parameters"
