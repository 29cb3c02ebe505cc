"""Checkpoints and the training loop (transformer_math.training.checkpoint, loop).

1. Resume is exact: N steps straight equal k steps, save, everything rebuilt fresh, load, N − k steps — every loss
   compared with ==, and the final weights with torch.equal (dense, MoE with aux losses, LoRA with dropout).
2. What the files hold: model tensors (a tied matrix once), AdamW moments per parameter, the RNG, JSON metadata.
3. The loop learns: the loss on the arithmetic-progression batches falls.
"""

import json

import pytest

import transformer_math as tm

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from safetensors import safe_open

from transformer_math.training import LoRAConfig, TokenBatches, TrainConfig, build_trainer

_BASE = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=64)
SPECS = {
    "llama": dict(model_type="llama", **_BASE, intermediate_size=48),
    "mixtral": dict(model_type="mixtral", **_BASE, intermediate_size=16, num_local_experts=4, num_experts_per_tok=2),
    "qwen3-tied": dict(model_type="qwen3", **_BASE, intermediate_size=48, head_dim=8, tie_word_embeddings=True),
}
# warmup then cosine, 2 micro-batches, clipping: every piece of state a step reads moves during the run
CFG = TrainConfig(lr=3e-3, warmup_steps=2, total_steps=6, min_lr_ratio=0.1, n_micro=2, micro_batch=2, seq_len=12,
                  grad_clip=0.5, weight_decay=0.1, seed=7)
N, K = 6, 3


def _losses(logs):
    return [(e.loss, e.ce, e.load_balance, e.router_z, e.lr, e.grad_norm) for e in logs]


@pytest.mark.parametrize("case", ["llama", "mixtral", "qwen3-tied", "llama-lora-dropout"])
def test_resume_repeats_the_loss_curve_bit_for_bit(case, tmp_path):
    spec = tm.load_model(SPECS[case.removesuffix("-lora-dropout")])
    lora = LoRAConfig(rank=4, dropout=0.2, targets=("q", "v", "down")) if "lora" in case else None
    straight = build_trainer(spec, CFG, lora=lora)
    want = _losses(straight.train_steps(N))

    first = build_trainer(spec, CFG, lora=lora)
    got = _losses(first.train_steps(K))
    first.save(tmp_path / "ckpt")
    torch.manual_seed(12345)  # the resumed run must not depend on the generator's state before load
    resumed = build_trainer(spec, CFG, lora=lora)  # fresh model, optimizer, schedule, data
    resumed.load(tmp_path / "ckpt")
    assert (resumed.step, resumed.data_position) == (K, K * CFG.n_micro)
    got += _losses(resumed.train_steps(N - K))
    assert got == want  # every loss, lr and gradient norm equal, not close
    assert all(torch.equal(a, b) for a, b in zip(straight.model.state_dict().values(),
                                                 resumed.model.state_dict().values(), strict=True))
    if lora is not None:  # the restored RNG matters: dropout draws other masks from another generator state
        other = build_trainer(spec, CFG, lora=lora)
        other.load(tmp_path / "ckpt")
        torch.manual_seed(12345)
        assert _losses(other.train_steps(N - K)) != want[K:]


def test_checkpoint_files(tmp_path):
    trainer = build_trainer(tm.load_model(SPECS["qwen3-tied"]), CFG)
    trainer.train_steps(2)
    trainer.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "state.safetensors"]
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    n_params = len(list(trainer.model.parameters()))  # the tied embedding/LM head is one parameter
    assert sum(k.endswith("weight") for k in keys) == n_params
    with safe_open(str(tmp_path / "state.safetensors"), framework="pt") as f:
        keys, meta = set(f.keys()), {k: json.loads(v) for k, v in f.metadata().items()}
        assert f.get_tensor("optim.0.step").item() == 2.0
    assert keys == {"rng.torch_cpu"} | {f"optim.{i}.{m}" for i in range(n_params)
                                        for m in ("step", "exp_avg", "exp_avg_sq")}
    assert (meta["step"], meta["data_position"], meta["scheduler"]["last_epoch"]) == (2, 4, 2)
    assert meta["config"]["lr"] == CFG.lr and [g["weight_decay"] for g in meta["param_groups"]] == [0.1, 0.0]


def test_loss_falls():
    cfg = TrainConfig(lr=1e-2, warmup_steps=5, total_steps=40, micro_batch=8, seq_len=16, seed=1)
    trainer = build_trainer(tm.load_model({**SPECS["llama"], "vocab_size": 16}), cfg)
    assert torch.equal(TokenBatches(vocab_size=16, batch=8, seq_len=16, seed=1)(3).ids_BT, trainer.data(3).ids_BT)
    losses = [e.loss for e in trainer.train_steps(40)]
    assert sum(losses[-5:]) / 5 < 0.8 * losses[0], losses  # 3.06 → about 2.1 (ln 16 = 2.77)
