"""Training the reference models, single process: losses, AdamW and its schedule, LoRA, checkpoints, the loop.

Needs torch (`pip install 'transformer-math[torch]'`, plus safetensors for checkpoints); `import transformer_math`
never imports this package. (It is not named `train`: a subpackage of that name would replace the public function
`transformer_math.train` on import.)

    from transformer_math.training import TrainConfig, build_trainer
    trainer = build_trainer(spec, TrainConfig(lr=1e-3, warmup_steps=10, total_steps=200))
    logs = trainer.train_steps(100); trainer.save("ckpt"); trainer.load("ckpt")

Modules: config (TrainConfig), losses (causal-LM/SFT cross-entropy, label smoothing, MoE aux), optim (AdamW groups,
lr schedule, clipping), lora (LoRALinear, apply_lora), checkpoint (safetensors save/resume), loop (loss_fn,
train_step, Trainer). Tests: tests/test_train_losses.py, test_train_optim.py, test_train_lora.py,
test_train_checkpoint.py.
"""

from __future__ import annotations

from transformer_math.training.checkpoint import load_checkpoint, save_checkpoint
from transformer_math.training.config import TrainConfig
from transformer_math.training.loop import (
    Batch,
    StepLog,
    TokenBatches,
    Trainer,
    accumulate_gradients,
    build_trainer,
    loss_fn,
    train_step,
)
from transformer_math.training.lora import LoRAConfig, LoRALinear, apply_lora, trainable_params
from transformer_math.training.losses import (
    IGNORE,
    Loss,
    causal_lm_loss,
    moe_aux_sums,
    next_token_targets,
    sft_labels,
    token_losses,
    total_loss,
)
from transformer_math.training.optim import (
    adamw_update,
    build_optimizer,
    build_scheduler,
    clip_grad_norm,
    lr_at,
    lr_factor,
    param_groups,
)

__all__ = [
    "IGNORE", "Batch", "LoRAConfig", "LoRALinear", "Loss", "StepLog", "TokenBatches", "TrainConfig", "Trainer",
    "accumulate_gradients", "adamw_update", "apply_lora", "build_optimizer", "build_scheduler", "build_trainer",
    "causal_lm_loss", "clip_grad_norm", "load_checkpoint", "loss_fn", "lr_at", "lr_factor", "moe_aux_sums",
    "next_token_targets", "param_groups", "save_checkpoint", "sft_labels", "token_losses", "total_loss", "train_step",
    "trainable_params",
]
