"""Training losses (transformer_math.training.losses) on hand-worked examples, against torch and Hugging Face.

1. Next-token cross-entropy: shifted labels, ignore_index −100, a V = 3 example worked by hand.
2. SFT prompt masking: only answer tokens are targets (the same hand-worked logits).
3. Label smoothing ε_ls by hand, and equal to F.cross_entropy(label_smoothing=ε_ls); CE equal to HF's ForCausalLMLoss.
4. L = L_CE + λ_load·Σ load_balance + λ_z·Σ router_z with a router set by hand (E = 2, e = 1, two tokens).
"""

import math

import pytest

import transformer_math as tm

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

import torch.nn.functional as F

from transformer_math import reference as ref
from transformer_math.training import (
    IGNORE,
    TrainConfig,
    causal_lm_loss,
    loss_fn,
    moe_aux_sums,
    next_token_targets,
    sft_labels,
    token_losses,
    total_loss,
)
from transformer_math.training.loop import Batch
from transformer_math.training.losses import count_targets

# Hand-worked logits, V = 3, one sequence of T = 3 positions; labels [0, 2, 0] → position 0 predicts 2, position 1
# predicts 0, position 2 predicts nothing (the shift).
#   position 0: z = [1, 2, 3], y = 2: lse = ln(e + e² + e³) = 3 + ln(1 + e⁻¹ + e⁻²) = 3.4076059644
#               ℓ₀ = lse − z_y = 0.4076059644
#   position 1: z = [0, 0, 0], y = 0: ℓ₁ = ln 3 = 1.0986122887
#   L_CE = (ℓ₀ + ℓ₁)/2 = 0.7531091265
LOGITS_BTV = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [9.0, 9.0, 9.0]]])
LABELS_BT = torch.tensor([[0, 2, 0]])
LSE0 = math.log(math.e + math.e**2 + math.e**3)
L0, L1 = LSE0 - 3.0, math.log(3.0)


def test_hand_worked_cross_entropy():
    assert LSE0 == pytest.approx(3.4076059644, abs=1e-10) and L0 == pytest.approx(0.4076059644, abs=1e-10)
    assert next_token_targets(LABELS_BT).tolist() == [[2, 0, IGNORE]]
    assert token_losses(LOGITS_BTV, next_token_targets(LABELS_BT))[0].tolist() == pytest.approx([L0, L1, 0.0])
    assert causal_lm_loss(LOGITS_BTV, LABELS_BT).item() == pytest.approx(0.7531091265, abs=1e-6)
    # ignore_index: with label 2 set to −100, position 1 no longer counts: L = ℓ₀ alone
    assert causal_lm_loss(LOGITS_BTV, torch.tensor([[0, 2, IGNORE]])).item() == pytest.approx(L0, abs=1e-6)
    # a fixed count (gradient accumulation): Σℓ / n_tok with n_tok = 4 → (ℓ₀ + ℓ₁)/4
    assert causal_lm_loss(LOGITS_BTV, LABELS_BT, n_tokens=4).item() == pytest.approx((L0 + L1) / 4, abs=1e-6)
    # no target at all: 0, not NaN
    assert causal_lm_loss(LOGITS_BTV, torch.full((1, 3), IGNORE)).item() == 0.0


def test_hand_worked_sft_prompt_masking():
    # ids [1, 1, 2, 0], prompt of 2 tokens → labels [−100, −100, 2, 0]: position 1 (the prompt's last token)
    # predicts the answer's first token 2, position 2 predicts 0; position 0 would predict the prompt token 1.
    ids_BT = torch.tensor([[1, 1, 2, 0]])
    labels_BT = sft_labels(ids_BT, [2])
    assert labels_BT.tolist() == [[IGNORE, IGNORE, 2, 0]]
    logits_BTV = torch.tensor([[[5.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [9.0, 9.0, 9.0]]])
    # masked: the same two positions as above: (ℓ₀ + ℓ₁)/2 = 0.7531091265
    assert causal_lm_loss(logits_BTV, labels_BT).item() == pytest.approx(0.7531091265, abs=1e-6)
    # unmasked, position 0 counts too: z = [5, 0, 0], y = 1: ℓ = 5 + ln(1 + 2e⁻⁵) − 0 = 5.0133859017
    l_prompt = 5.0 + math.log(1.0 + 2.0 * math.exp(-5.0))
    assert l_prompt == pytest.approx(5.0133859017, abs=1e-9)
    assert causal_lm_loss(logits_BTV, ids_BT).item() == pytest.approx((l_prompt + L0 + L1) / 3, abs=1e-6)
    # padding: lengths mark the real tokens; the second sequence has a 1-token prompt and 3 real tokens
    both = sft_labels(torch.tensor([[1, 1, 2, 0], [2, 2, 2, 2]]), torch.tensor([2, 1]), lengths_B=[4, 3])
    assert both.tolist() == [[IGNORE, IGNORE, 2, 0], [IGNORE, 2, 2, IGNORE]]
    assert count_targets(both) == 2 + 2


def test_hand_worked_label_smoothing():
    # target q = (1−ε)·onehot(y) + ε/V, so ℓ = (1−ε)·(lse − z_y) + ε·(lse − mean_v z_v) = ℓ_CE + ε·(z_y − mean z)
    #   position 0, ε = 0.1: 0.4076059644 + 0.1·(3 − 2) = 0.5076059644;  position 1 (z uniform): ln 3 still
    #   L = (0.5076059644 + 1.0986122887)/2 = 0.8031091265
    eps = 0.1
    assert causal_lm_loss(LOGITS_BTV, LABELS_BT, label_smoothing=eps).item() == pytest.approx(0.8031091265, abs=1e-6)
    assert (L0 + eps * 1.0 + L1) / 2 == pytest.approx(0.8031091265, abs=1e-10)
    ref_loss = F.cross_entropy(LOGITS_BTV[0, :2], torch.tensor([2, 0]), label_smoothing=eps)
    assert ref_loss.item() == pytest.approx(0.8031091265, abs=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_equal_to_torch_cross_entropy(eps):
    g = torch.Generator().manual_seed(0)
    B, T, V = 3, 7, 11
    logits_BTV = 3 * torch.randn(B, T, V, generator=g)
    labels_BT = torch.randint(0, V, (B, T), generator=g)
    labels_BT[0, 2:5] = IGNORE  # some ignored targets: both must leave them out of sum and count
    want = F.cross_entropy(logits_BTV[:, :-1].reshape(-1, V), labels_BT[:, 1:].reshape(-1), ignore_index=IGNORE,
                           label_smoothing=eps)
    assert causal_lm_loss(logits_BTV, labels_BT, label_smoothing=eps).item() == pytest.approx(want.item(), abs=1e-6)


def test_equal_to_hugging_face_for_causal_lm_loss():
    pytest.importorskip("transformers")
    from transformers.loss.loss_utils import ForCausalLMLoss

    g = torch.Generator().manual_seed(1)
    B, T, V = 2, 9, 13
    logits_BTV = 2 * torch.randn(B, T, V, generator=g)
    labels_BT = sft_labels(torch.randint(0, V, (B, T), generator=g), [3, 5])
    assert causal_lm_loss(logits_BTV, labels_BT).item() == pytest.approx(
        ForCausalLMLoss(logits_BTV, labels_BT, vocab_size=V).item(), abs=1e-6)
    # num_items_in_batch (HF's accumulation count) is our n_tokens
    assert causal_lm_loss(logits_BTV, labels_BT, n_tokens=20).item() == pytest.approx(
        ForCausalLMLoss(logits_BTV, labels_BT, vocab_size=V, num_items_in_batch=torch.tensor(20)).item(), abs=1e-6)


_MIXTRAL = dict(model_type="mixtral", vocab_size=32, hidden_size=16, intermediate_size=8, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64, num_local_experts=2,
                num_experts_per_tok=1)


def _hand_router_moe(spec, x0_T):
    """An MoE layer whose router logits are [x₀, 0] per token: W_r = [[1, 0, …], [0, 0, …]]."""
    from transformer_math.reference.moe import MoE

    moe = MoE(spec)
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.weight[0, 0] = 1.0
    x_BTD = torch.zeros(1, len(x0_T), spec.d_model)
    x_BTD[0, :, 0] = torch.tensor(x0_T)
    moe(x_BTD)
    return moe


def test_hand_worked_moe_aux_and_total_loss():
    # E = 2 experts, e = 1, N = 2 tokens. Router logits [x₀, 0] → p = softmax = [x₀ = ln 3: 3/4, 1/4].
    #   balanced layer, x₀ = (ln 3, −ln 3): p = [3/4, 1/4], [1/4, 3/4] → experts 0 and 1
    #       f = [1/2, 1/2], m = [1/2, 1/2] → load_balance = E·Σ f·m = 2·(1/4 + 1/4) = 1.0
    #   skewed layer, x₀ = (ln 3, ln 3): both tokens → expert 0: f = [1, 0], m = [3/4, 1/4] → 2·3/4 = 1.5
    #   router_z = mean over tokens of (logsumexp [x₀, 0])²:  lse(ln 3, 0) = ln 4,  lse(−ln 3, 0) = ln(4/3)
    #     balanced layer: ((ln 4)² + (ln 4/3)²)/2 = (1.9218120557 + 0.0827609748)/2 = 1.0022865152
    #     skewed layer:   (ln 4)² = 1.9218120557
    #   Σ load_balance = 2.5, Σ router_z = 2.9240985709
    #   L = 2.0 + 0.01·2.5 + 0.001·2.9240985709 = 2.0279240986
    spec = tm.load_model(_MIXTRAL)
    ln3 = math.log(3.0)
    balanced, skewed = _hand_router_moe(spec, [ln3, -ln3]), _hand_router_moe(spec, [ln3, ln3])
    assert balanced.aux_losses["load_balance"].item() == pytest.approx(1.0, abs=1e-6)
    assert skewed.aux_losses["load_balance"].item() == pytest.approx(1.5, abs=1e-6)
    z_bal = (math.log(4) ** 2 + math.log(4 / 3) ** 2) / 2
    assert z_bal == pytest.approx(1.0022865152, abs=1e-9)
    assert balanced.aux_losses["router_z"].item() == pytest.approx(z_bal, abs=1e-6)
    assert skewed.aux_losses["router_z"].item() == pytest.approx(math.log(4) ** 2, abs=1e-6)
    lb, z = moe_aux_sums(torch.nn.ModuleList([balanced, skewed]))
    assert lb.item() == pytest.approx(2.5, abs=1e-6) and z.item() == pytest.approx(2.9240985709, abs=1e-6)
    loss = total_loss(torch.tensor(2.0), lb, z, lambda_load=0.01, lambda_z=0.001)
    assert loss.total.item() == pytest.approx(2.0279240986, abs=1e-6)
    assert (loss.ce.item(), loss.load_balance.item()) == (2.0, lb.item())


def test_loss_fn_on_models():
    """On a whole MoE model, loss_fn's aux parts are the sums of what Model.aux_losses() collects; a dense model
    has none, and its total is the plain shifted cross-entropy."""
    cfg = TrainConfig(lambda_load=0.5, lambda_z=0.25, label_smoothing=0.0)
    ids_BT = torch.randint(0, 32, (2, 10), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    moe_model = ref.build(tm.load_model(_MIXTRAL))
    loss = loss_fn(moe_model, Batch(ids_BT, ids_BT), cfg)
    aux = moe_model.aux_losses()  # [lb₀, z₀, lb₁, z₁]
    assert len(aux) == 4 and loss.load_balance.item() == pytest.approx((aux[0] + aux[2]).item(), rel=1e-6)
    assert loss.router_z.item() == pytest.approx((aux[1] + aux[3]).item(), rel=1e-6)
    assert loss.total.item() == pytest.approx((loss.ce + 0.5 * loss.load_balance + 0.25 * loss.router_z).item(),
                                              rel=1e-6)
    dense = ref.build(tm.load_model({**_MIXTRAL, "model_type": "llama"}))
    loss = loss_fn(dense, Batch(ids_BT, ids_BT), cfg)
    logits_BTV = dense(ids_BT)
    assert loss.load_balance.item() == loss.router_z.item() == 0.0
    assert loss.total.item() == pytest.approx(
        F.cross_entropy(logits_BTV[:, :-1].reshape(-1, 32), ids_BT[:, 1:].reshape(-1)).item(), abs=1e-6)
