"""LoRA on the reference models (transformer_math.training.lora).

1. One adapted linear by hand: h = W₀x + b + (α/r)·B·A·x, and its merged weight.
2. B = 0 at init: the wrapped model's logits equal the base model's exactly; base weights frozen, and a training
   step moves only the adapters.
3. Trainable parameters equal the analyzer's lora_params (Σ r·(d_in + d_out)) for dense and MoE specs and several
   target sets, and PEFT's count on the equivalent Hugging Face model.
"""

import copy

import pytest

import transformer_math as tm

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from transformer_math import reference as ref
from transformer_math.analysis.training import lora_params
from transformer_math.errors import TmathError
from transformer_math.training import LoRAConfig, LoRALinear, TrainConfig, apply_lora, build_trainer, trainable_params

_BASE = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=64)
CONFIGS = {
    "llama": dict(model_type="llama", **_BASE, intermediate_size=48),
    # layer 0 dense (mlp_only_layers), layer 1 MoE with a shared expert of width 40 (its gate/up/down are nn.Linear)
    "qwen2_moe": dict(model_type="qwen2_moe", **_BASE, intermediate_size=48, moe_intermediate_size=16,
                      shared_expert_intermediate_size=40, num_experts=4, num_experts_per_tok=2, mlp_only_layers=[0]),
    # every layer MoE, no shared expert: gate/up/down match nothing, only attention is adapted
    "mixtral": dict(model_type="mixtral", **_BASE, intermediate_size=24, num_local_experts=4, num_experts_per_tok=2),
}
ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TARGETS = [("q_proj", "v_proj"), ALL, ("q_proj", "o_proj", "gate_proj", "down_proj")]


def test_hand_worked_lora_linear():
    # d_in = 2, d_out = 1, r = 1, α = 2 (scale α/r = 2): W₀ = [1, 2], b = 0.5, A = [3, 4], B = [0.5], x = [1, 1]
    #   W₀x + b = 3.5;  A·x = 7, B·7 = 3.5, ×2 = 7;  h = 10.5
    #   merged: W₀ + 2·B·A = [1 + 3, 2 + 4] = [4, 6] → [4, 6]·x + 0.5 = 10.5
    base = torch.nn.Linear(2, 1)
    lora = LoRALinear(base, rank=1, alpha=2.0)
    assert lora.lora_B.weight.abs().sum().item() == 0.0 and lora.scale == 2.0
    with torch.no_grad():
        base.weight.copy_(torch.tensor([[1.0, 2.0]]))
        base.bias.fill_(0.5)
        lora.lora_A.weight.copy_(torch.tensor([[3.0, 4.0]]))
        lora.lora_B.weight.fill_(0.5)
    assert lora(torch.tensor([[1.0, 1.0]])).item() == 10.5
    assert lora.merged_weight().tolist() == [[4.0, 6.0]]
    assert not base.weight.requires_grad and lora.lora_A.weight.requires_grad


def test_equal_to_base_at_init_and_only_adapters_train():
    spec = tm.load_model(CONFIGS["llama"])
    trainer = build_trainer(spec, TrainConfig(lr=1e-2, seq_len=8, micro_batch=2, total_steps=10),
                            lora=LoRAConfig(rank=4, alpha=8.0, dropout=0.1, targets=("q", "k", "v", "o", "gate")))
    model = trainer.model
    base = ref.build(spec)  # the unwrapped model with the same weights
    base.load_state_dict({k.replace(".base.", "."): v for k, v in model.state_dict().items() if "lora_" not in k})
    ids_BT = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    model.eval()
    assert torch.equal(model(ids_BT), base(ids_BT))  # B = 0: exactly the base model
    model.train()
    assert torch.equal(model(ids_BT), base(ids_BT))  # dropout only feeds A, and B·anything = 0
    assert sorted({n.split(".")[-2] for n, p in model.named_parameters() if p.requires_grad}) == ["lora_A", "lora_B"]
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainer.train_steps(2)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)
    assert all(m.lora_B.weight.abs().sum() > 0 for m in model.modules() if isinstance(m, LoRALinear))
    with torch.no_grad():
        assert not torch.equal(model.eval()(ids_BT), base(ids_BT))


@pytest.mark.parametrize("family", list(CONFIGS))
@pytest.mark.parametrize("targets", TARGETS, ids=["qv", "all", "q-o-gate-down"])
def test_trainable_count_equals_analyzer(family, targets):
    spec = tm.load_model(CONFIGS[family])
    model = ref.build(spec)
    wrapped = apply_lora(model, LoRAConfig(rank=4, targets=targets))
    assert trainable_params(model) == lora_params(spec, 4, targets)
    # our short names wrap the same modules as the Hugging Face names
    short = tuple(t.removesuffix("_proj") for t in targets)
    assert apply_lora(copy.deepcopy(ref.build(spec)), LoRAConfig(rank=4, targets=short)) == wrapped


@pytest.mark.parametrize("family", ["llama", "qwen2_moe"])
def test_trainable_count_equals_peft(family):
    peft = pytest.importorskip("peft")
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(CONFIGS[family])
    hf = AutoModelForCausalLM.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    lora = peft.get_peft_model(hf, peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(ALL)))
    model = ref.build(tm.load_model(CONFIGS[family]))
    apply_lora(model, LoRAConfig(rank=4, alpha=8.0, targets=ALL))
    assert trainable_params(model) == sum(p.numel() for p in lora.parameters() if p.requires_grad)


def test_bad_lora_settings():
    model = ref.build(tm.load_model(CONFIGS["mixtral"]))
    with pytest.raises(TmathError) as err:
        apply_lora(model, LoRAConfig(targets=("gate_proj", "nonexistent")))  # Mixtral: no gate nn.Linear
    assert err.value.field == "lora_targets"
    for kw, field in ((dict(rank=0), "lora_rank"), (dict(alpha=-1.0), "lora_alpha"),
                      (dict(dropout=1.0), "lora_dropout"), (dict(targets="q"), "lora_targets"),
                      (dict(targets=()), "lora_targets")):
        with pytest.raises(TmathError) as err:
            LoRAConfig(**kw)
        assert err.value.field == field
