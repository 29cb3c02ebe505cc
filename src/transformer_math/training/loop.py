"""The training loop: a deterministic token-batch source, one optimizer step over n_micro micro-batches, a Trainer.

    loss_fn(model, batch, cfg)          → Loss            (forward under optional bf16 autocast, CE + MoE aux)
    train_step(model, opt, sched, micro_batches, cfg) → StepLog   (accumulate, clip, AdamW step, schedule step)
    Trainer(model, cfg, data).train_steps(n) / .save(dir) / .load(dir)

No module-level state: everything a step reads is passed in, so a distributed wrapper (DDP/FSDP2) can call
loss_fn/train_step on its wrapped model and its own shard of batches.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from transformer_math.config.spec import ModelSpec
from transformer_math.training.checkpoint import load_checkpoint, save_checkpoint
from transformer_math.training.config import TrainConfig
from transformer_math.training.lora import LoRAConfig, apply_lora
from transformer_math.training.losses import Loss, causal_lm_loss, count_targets, moe_aux_sums, total_loss
from transformer_math.training.optim import build_optimizer, build_scheduler, clip_grad_norm

log = logging.getLogger(__name__)


class Batch(NamedTuple):
    """Token ids and their labels at the same positions (losses.py shifts); labels = ids for pre-training."""

    ids_BT: Tensor
    labels_BT: Tensor


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenBatches:
    """Batch i, a pure function of (seed, i): b sequences of T tokens, each an arithmetic progression mod V,
    x_t = (a + k·t) mod V with a, k drawn per sequence — learnable (the loss falls), and resumable from i alone."""

    vocab_size: int
    batch: int
    seq_len: int
    seed: int = 0

    def __call__(self, index: int) -> Batch:
        g = torch.Generator().manual_seed((self.seed << 32) + index)
        start_B1 = torch.randint(0, self.vocab_size, (self.batch, 1), generator=g)
        stride_B1 = torch.randint(1, max(self.vocab_size, 2), (self.batch, 1), generator=g)
        ids_BT = (start_B1 + stride_B1 * torch.arange(self.seq_len)) % self.vocab_size
        return Batch(ids_BT, ids_BT)


class StepLog(NamedTuple):
    """What one optimizer step reports: its index, the loss and its parts (nats/token), η, the gradient norm."""

    step: int
    loss: float
    ce: float
    load_balance: float
    router_z: float
    lr: float
    grad_norm: float


def loss_fn(model: nn.Module, batch: Batch, cfg: TrainConfig, *, n_tokens: int | None = None) -> Loss:
    """Forward one batch and return L = L_CE + λ_load·Σ load_balance + λ_z·Σ router_z (losses.total_loss).

    The forward runs under torch.autocast(bfloat16) when cfg.bf16; the loss is always computed in fp32.
    n_tokens: the step's target count, so micro-batch CE terms add up to the full batch's mean.
    """
    with torch.autocast(batch.ids_BT.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
        logits_BTV = model(batch.ids_BT)
    ce = causal_lm_loss(logits_BTV, batch.labels_BT, label_smoothing=cfg.label_smoothing, n_tokens=n_tokens)
    load_balance, router_z = moe_aux_sums(model)
    return total_loss(ce, load_balance, router_z, lambda_load=cfg.lambda_load, lambda_z=cfg.lambda_z)


def accumulate_gradients(model: nn.Module, micro_batches: Sequence[Batch], cfg: TrainConfig, *,
                         n_tokens: int | None = None, ce_scale: float = 1.0,
                         sync: Callable[[bool], AbstractContextManager[object]] | None = None) -> Loss:
    """Backward every micro-batch into .grad; returns the step's loss parts (detached), as backpropagated.

    CE: each micro-batch's Σℓ is divided by the step's total target count N, so the gradients add up to the
    full-batch mean's exactly, masked (SFT) labels included — with equal counts this is the 1/n_micro scaling.
    Aux losses: each micro-batch's is scaled 1/n_micro (their mean; the full batch's f_j·m_j is not a sum of them).
    Data parallel (training/distributed.py): n_tokens = N over all ranks and ce_scale = W, because DDP and FSDP2
    average gradients over the W ranks: mean_r(W·Σℓ_r/N) = Σℓ/N. sync(is_last) wraps each micro-batch's
    forward and backward (DDP's no_sync before the last one: gradients are reduced once per step).
    """
    n_micro = len(micro_batches)
    if n_tokens is None:
        n_tokens = sum(count_targets(b.labels_BT) for b in micro_batches)
    total = ce = load_balance = router_z = torch.zeros(())  # 0-d CPU tensors add to tensors on any device
    for j, batch in enumerate(micro_batches):
        with nullcontext() if sync is None else sync(j == n_micro - 1):
            loss = loss_fn(model, batch, cfg, n_tokens=n_tokens)
            loss_ce = loss.ce * ce_scale if ce_scale != 1.0 else loss.ce
            micro = loss_ce + (loss.total - loss.ce) / n_micro
            torch.autograd.backward(micro)
        total, ce = total + micro.detach(), ce + loss_ce.detach()
        load_balance = load_balance + loss.load_balance.detach() / n_micro
        router_z = router_z + loss.router_z.detach() / n_micro
    return Loss(total, ce, load_balance, router_z)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
               micro_batches: Sequence[Batch], cfg: TrainConfig, *, step: int = 0, n_tokens: int | None = None,
               ce_scale: float = 1.0, sync: Callable[[bool], AbstractContextManager[object]] | None = None
               ) -> StepLog:
    """One optimizer step: zero grads, accumulate over the micro-batches, clip to c, AdamW step, schedule step.
    n_tokens, ce_scale, sync: see accumulate_gradients (set by the data-parallel wrapper; defaults: one process).
    The logged losses are this rank's (distributed.py averages them over the ranks)."""
    optimizer.zero_grad(set_to_none=True)
    loss = accumulate_gradients(model, micro_batches, cfg, n_tokens=n_tokens, ce_scale=ce_scale, sync=sync)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = clip_grad_norm(params, cfg.grad_clip)
    lr = float(optimizer.param_groups[0]["lr"])
    optimizer.step()
    scheduler.step()
    return StepLog(step, float(loss.total), float(loss.ce), float(loss.load_balance), float(loss.router_z), lr,
                   grad_norm)


class Trainer:
    """A model, its optimizer and schedule, a batch source and the position in it; trains, saves, resumes."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, data: Callable[[int], Batch]) -> None:
        self.model, self.cfg, self.data = model.train(), cfg, data
        self.optimizer = build_optimizer(model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.step = 0  # optimizer steps taken
        self.data_position = 0  # micro-batches consumed: the next one is data(data_position)
        self.history: list[StepLog] = []

    def next_micro_batches(self) -> list[Batch]:
        out = [self.data(self.data_position + j) for j in range(self.cfg.n_micro)]
        self.data_position += self.cfg.n_micro
        return out

    def train_steps(self, n: int) -> list[StepLog]:
        """Take n optimizer steps; log and return one StepLog each."""
        logs = []
        for _ in range(n):
            entry = train_step(self.model, self.optimizer, self.scheduler, self.next_micro_batches(), self.cfg,
                               step=self.step)
            self.step += 1
            log.info("step %d loss %.6f ce %.6f lr %.3e |g| %.3f", entry.step, entry.loss, entry.ce, entry.lr,
                     entry.grad_norm)
            logs.append(entry)
        self.history += logs
        return logs

    def save(self, directory: str | os.PathLike[str]) -> None:
        save_checkpoint(directory, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                        step=self.step, data_position=self.data_position, config=self.cfg)

    def load(self, directory: str | os.PathLike[str]) -> None:
        """Restore what save() wrote: weights, AdamW moments, schedule, step, data position, RNG states."""
        self.step, self.data_position = load_checkpoint(directory, model=self.model, optimizer=self.optimizer,
                                                        scheduler=self.scheduler)


def build_trainer(spec: ModelSpec, cfg: TrainConfig, *, lora: LoRAConfig | None = None,
                  data: Callable[[int], Batch] | None = None) -> Trainer:
    """torch.manual_seed(cfg.seed), the reference model of `spec` (LoRA-wrapped if asked), and its Trainer on
    TokenBatches(V, b, T, seed) unless `data` is given. Everything a fresh, resumable run needs."""
    from transformer_math.reference import build

    torch.manual_seed(cfg.seed)
    model = build(spec)
    if lora is not None:
        apply_lora(model, lora)
    data = data or TokenBatches(vocab_size=spec.vocab_size, batch=cfg.micro_batch, seq_len=cfg.seq_len,
                                seed=cfg.seed)
    return Trainer(model, cfg, data)
