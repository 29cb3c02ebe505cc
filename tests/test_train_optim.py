"""AdamW, its parameter groups, the learning-rate schedule, clipping, accumulation and bf16 autocast
(transformer_math.training.optim and loop), on hand-worked numbers and against torch.

1. Schedule: warmup then cosine/linear decay to r·η, by hand; the LambdaLR gives the optimizer the same η_s.
2. AdamW: a 1-parameter example worked by hand, equal to adamw_update and to torch.optim.AdamW.
3. Weight decay on ≥2-D tensors only; the tied matrix counted once.
4. Clipping by global norm: gradients (3, 4) and (12) have norm 13.
5. Accumulating n_micro micro-batches gives the full batch's gradient (prompt-masked labels too).
6. bf16 autocast: the forward runs in bf16, the loss is close to fp32's, gradients stay fp32.
7. TrainConfig rejects bad values with TmathError naming the field.
"""

import math

import pytest

import transformer_math as tm

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from transformer_math import reference as ref
from transformer_math.errors import TmathError
from transformer_math.training import (
    Batch,
    TrainConfig,
    accumulate_gradients,
    adamw_update,
    build_optimizer,
    build_scheduler,
    clip_grad_norm,
    loss_fn,
    lr_at,
    param_groups,
    sft_labels,
)

# Schedule by hand: η = 1, W = 2 warmup steps, S = 6, floor r = 0.1.
#   s = 0, 1 (warmup, (s+1)/W): 0.5, 1.0
#   s = 2..6: p = (s − 2)/4 = 0, 1/4, 1/2, 3/4, 1
#     cosine 0.1 + 0.9·½(1 + cos πp): 1.0, 0.1 + 0.45·(1 + √2/2) = 0.8681980515, 0.55,
#                                     0.1 + 0.45·(1 − √2/2) = 0.2318019485, 0.1
#     linear 0.1 + 0.9·(1 − p):       1.0, 0.775, 0.55, 0.325, 0.1
#   s ≥ 7: the floor 0.1
COSINE = [0.5, 1.0, 1.0, 0.8681980515, 0.55, 0.2318019485, 0.1, 0.1, 0.1]
LINEAR = [0.5, 1.0, 1.0, 0.775, 0.55, 0.325, 0.1, 0.1, 0.1]


@pytest.mark.parametrize("decay, want", [("cosine", COSINE), ("linear", LINEAR)])
def test_hand_worked_schedule(decay, want):
    cfg = TrainConfig(lr=1.0, warmup_steps=2, total_steps=6, min_lr_ratio=0.1, decay=decay)
    assert [lr_at(s, cfg) for s in range(9)] == pytest.approx(want, abs=1e-10)
    assert 0.1 + 0.45 * (1 + math.sqrt(2) / 2) == pytest.approx(0.8681980515, abs=1e-10)
    # the LambdaLR sets each step's η on the optimizer (η = 10⁻³ here)
    cfg = TrainConfig(lr=1e-3, warmup_steps=2, total_steps=6, min_lr_ratio=0.1, decay=decay)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2, 2))], lr=cfg.lr)
    sched = build_scheduler(opt, cfg)
    seen = []
    for _ in range(9):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([1e-3 * w for w in want], rel=1e-9)
    # no warmup: the first step already has η
    assert lr_at(0, TrainConfig(lr=2.0, warmup_steps=0, total_steps=4)) == 2.0


def test_hand_worked_adamw_step():
    # One parameter θ₀ = 1, η = 0.1, β₁ = 0.9, β₂ = 0.999, ε = 10⁻⁸, λ_wd = 0.1; gradients g₁ = 0.5, g₂ = −1.
    # step 1: θ ← 1·(1 − 0.1·0.1) = 0.99;  m₁ = 0.1·0.5 = 0.05;  v₁ = 0.001·0.25 = 0.00025
    #         m̂ = 0.05/0.1 = 0.5;  v̂ = 0.00025/0.001 = 0.25;  θ₁ = 0.99 − 0.1·0.5/(0.5 + 10⁻⁸) = 0.890000002
    # step 2: θ ← 0.890000002·0.99 = 0.88110000198;  m₂ = 0.9·0.05 − 0.1 = −0.055;
    #         v₂ = 0.999·0.00025 + 0.001·1 = 0.00124975;  m̂ = −0.055/0.19 = −0.2894736842;
    #         v̂ = 0.00124975/0.001999 = 0.6251875938, √v̂ = 0.7906880509;
    #         θ₂ = 0.88110000198 + 0.1·0.2894736842/(0.7906880509 + 10⁻⁸) = 0.9177103542
    hp = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1)
    theta1, m, v = adamw_update(1.0, 0.5, 0.0, 0.0, 1, **hp)
    assert (theta1, m, v) == pytest.approx((0.890000002, 0.05, 0.00025), abs=1e-12)
    theta2, m, v = adamw_update(theta1, -1.0, m, v, 2, **hp)
    assert (theta2, m, v) == pytest.approx((0.9177103542, -0.055, 0.00124975), abs=1e-10)
    # torch.optim.AdamW (fp64) computes the same
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = torch.optim.AdamW([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    for g, want in ((0.5, theta1), (-1.0, theta2)):
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        assert p.item() == pytest.approx(want, abs=1e-14)


def _spec(model_type="llama", **extra):
    return tm.load_model(dict(model_type=model_type, vocab_size=64, hidden_size=32, intermediate_size=48,
                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                              max_position_embeddings=64, **extra))


def test_weight_decay_on_matrices_only():
    # GPT-2: learned positions, LayerNorm weights and biases, linear biases, an LM head tied to the embedding
    spec = tm.load_model(dict(model_type="gpt2", vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=64))
    model = ref.build(spec)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert decayed == {n for n, p in model.named_parameters() if p.ndim == 2}
    assert "embed.weight" in decayed and "pos_embed.weight" in decayed and "lm_head.weight" not in names.values()
    assert all(n.endswith("bias") or "norm" in n for n in (names[id(p)] for p in no_decay["params"]))
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))  # tied: once
    # frozen parameters are left out
    model.embed.weight.requires_grad_(False)
    assert "embed.weight" not in {names[id(p)] for p in param_groups(model, 0.1)[0]["params"]}
    opt = build_optimizer(ref.build(spec), TrainConfig(weight_decay=0.05, beta1=0.8, beta2=0.9, eps=1e-6))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert opt.param_groups[0]["betas"] == (0.8, 0.9) and opt.param_groups[0]["eps"] == 1e-6


def test_hand_worked_clipping():
    # gradients (3, 4) and (12): ‖g‖ = √(9 + 16 + 144) = 13; c = 6.5 → every g × 6.5/(13 + 10⁻⁶) ≈ 0.5
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([12.0])
    assert clip_grad_norm([a, b], None) == pytest.approx(13.0) and b.grad.item() == 12.0  # measured only
    assert clip_grad_norm([a, b], 6.5) == pytest.approx(13.0)
    assert a.grad.tolist() + b.grad.tolist() == pytest.approx([1.5, 2.0, 6.0], rel=1e-6)
    assert clip_grad_norm([a, b], 100.0) == pytest.approx(6.5, rel=1e-6)  # under c: unchanged
    assert b.grad.item() == pytest.approx(6.0, rel=1e-6)


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("masked", [False, True])
def test_accumulated_gradient_equals_full_batch(masked):
    """4 sequences as one batch, as 2 micro-batches of 2, and as 4 of 1: the same gradient (fp32 tolerance).
    With prompt masking the micro-batches hold different numbers of targets; dividing each by the step's total
    count keeps the sum exact, where averaging the micro-batch means would weight their tokens unequally."""
    torch.manual_seed(0)
    model = ref.build(_spec())
    cfg = TrainConfig()
    ids_BT = torch.randint(0, 64, (4, 12), generator=torch.Generator().manual_seed(3))
    labels_BT = sft_labels(ids_BT, [2, 9, 4, 10]) if masked else ids_BT
    grads = {}
    for n_micro in (1, 2, 4):
        model.zero_grad(set_to_none=True)
        size = 4 // n_micro
        micro = [Batch(ids_BT[i:i + size], labels_BT[i:i + size]) for i in range(0, 4, size)]
        accumulate_gradients(model, micro, cfg)
        grads[n_micro] = _grads(model)
    for n_micro in (2, 4):
        for name, g in grads[1].items():
            torch.testing.assert_close(grads[n_micro][name], g, rtol=1e-5, atol=1e-6)
    if masked:  # the mean of micro-batch means (1/n_micro·Σ L_j) is another, wrong, gradient here
        model.zero_grad(set_to_none=True)
        for i in range(2):
            (loss_fn(model, Batch(ids_BT[2 * i:2 * i + 2], labels_BT[2 * i:2 * i + 2]), cfg).total / 2).backward()
        diff = max((p.grad - grads[1][n]).abs().max().item() for n, p in model.named_parameters())
        assert diff > 1e-4


def test_bf16_autocast():
    torch.manual_seed(0)
    model = ref.build(_spec())
    ids_BT = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(ids_BT).dtype == torch.bfloat16  # the reference model runs under CPU autocast
    fp32 = loss_fn(model, Batch(ids_BT, ids_BT), TrainConfig(bf16=False))
    bf16 = loss_fn(model, Batch(ids_BT, ids_BT), TrainConfig(bf16=True))
    assert bf16.total.dtype == torch.float32 and fp32.total.item() != bf16.total.item()
    assert bf16.total.item() == pytest.approx(fp32.total.item(), abs=0.05)
    bf16.total.backward()
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("field, value", [("lr", 0.0), ("lr", float("nan")), ("warmup_steps", 11),
                                          ("decay", "step"), ("min_lr_ratio", 1.5), ("beta2", 1.0),
                                          ("grad_clip", -1.0), ("n_micro", 0), ("label_smoothing", 1.0),
                                          ("bf16", 1), ("seed", -1), ("seq_len", 1)])
def test_config_validation(field, value):
    with pytest.raises(TmathError) as err:
        TrainConfig(total_steps=10, **{field: value})
    assert err.value.field == field
