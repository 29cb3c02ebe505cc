"""AdamW with decay on matrices only, the warmup + cosine/linear learning-rate schedule, and gradient clipping.

Weight decay, decided: λ_wd on every trainable tensor with ≥ 2 dimensions (linear weights, the embedding and the tied
LM head, MoE expert tensors), none on 1-D tensors (norm gains, biases, gpt-oss sinks). Decay pulls a matrix toward
0, which limits its scale; a norm gain pulled toward 0 (or a bias) only changes the function, so nanoGPT
(Karpathy, model.py configure_optimizers) and most LLM recipes exempt them. This is nanoGPT's rule exactly,
embeddings included (some recipes, e.g. OLMo-2, exempt embeddings as well; this one does not).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

from transformer_math.training.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups of the trainable parameters: ≥2-D tensors with λ_wd, 1-D tensors with 0 (module docstring).

    Frozen parameters (LoRA's base) are left out; a tied matrix counts once (named_parameters deduplicates).
    """
    decay = [p for _, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for _, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """torch.optim.AdamW(η, (β₁, β₂), ε) over param_groups(model, λ_wd); foreach off, fused off: one plain loop whose
    result does not depend on how tensors are batched together, which keeps resumed runs bit-identical."""
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             eps=cfg.eps, foreach=False)


def adamw_update(theta: float, g: float, m: float, v: float, t: int, *, lr: float, beta1: float, beta2: float,
                 eps: float, weight_decay: float) -> tuple[float, float, float]:
    """One AdamW step of a scalar parameter: (θ_t, m_t, v_t) from θ_{t−1}, g_t, m_{t−1}, v_{t−1} at step t ≥ 1.

        θ ← θ·(1 − η·λ_wd)                                  decoupled decay (before the Adam step, as torch does)
        m_t = β₁·m + (1−β₁)·g,   v_t = β₂·v + (1−β₂)·g²
        m̂ = m_t/(1−β₁ᵗ),  v̂ = v_t/(1−β₂ᵗ),   θ ← θ − η·m̂/(√v̂ + ε)
    Units: θ's; η, λ_wd, β, ε dimensionless. Source: Loshchilov & Hutter 2019, "Decoupled Weight Decay
    Regularization" Algorithm 2 (schedule multiplier folded into η); Kingma & Ba 2015, "Adam" Algorithm 1.
    The reference for tests: torch.optim.AdamW computes the same.
    """
    theta = theta * (1.0 - lr * weight_decay)
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    m_hat, v_hat = m / (1.0 - beta1**t), v / (1.0 - beta2**t)
    return theta - lr * m_hat / (math.sqrt(v_hat) + eps), m, v


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """η_s/η at optimizer step s (0-based; the step about to be taken):

        s < W:       (s+1)/W                                    linear warmup, nonzero at the first step
        W ≤ s ≤ S:   r + (1−r)·½(1 + cos(π·p))  (cosine)        p = (s−W)/(S−W) ∈ [0, 1]
                     r + (1−r)·(1 − p)          (linear)
        s > S:       r                                          the floor
    Source: Goyal et al. 2017, "Accurate, Large Minibatch SGD" §2.2 (gradual warmup); Loshchilov & Hutter 2017,
    "SGDR" eq. 5 (cosine annealing to η_min = r·η, without restarts).
    """
    W, S, r = cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio
    if step < W:
        return (step + 1) / W
    if step >= S:
        return r
    p = (step - W) / (S - W)  # S > W here: step ≥ W and step < S
    shape = 0.5 * (1.0 + math.cos(math.pi * p)) if cfg.decay == "cosine" else 1.0 - p
    return r + (1.0 - r) * shape


def lr_at(step: int, cfg: TrainConfig) -> float:
    """η_s = η·lr_factor(s) (the learning rate of optimizer step s)."""
    return cfg.lr * lr_factor(step, cfg)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> LambdaLR:
    """LambdaLR multiplying each group's η by lr_factor(s); call .step() after each optimizer step."""
    return LambdaLR(optimizer, partial(lr_factor, cfg=cfg))


def clip_grad_norm(parameters: list[Tensor] | list[nn.Parameter], max_norm: float | None) -> float:
    """‖g‖₂ over all gradients (before clipping); when ‖g‖ > c, every g ← g·c/(‖g‖ + 10⁻⁶).

    Source: Pascanu et al. 2013, "On the difficulty of training recurrent neural networks" §3.2 (clipping by norm);
    torch.nn.utils.clip_grad_norm_ computes it (and handles sharded DTensors for FSDP2). c = None: measure only.
    """
    grads = [p for p in parameters if p.grad is not None]
    if max_norm is None:
        return float(torch.nn.utils.get_total_norm([p.grad for p in grads if p.grad is not None]))
    return float(torch.nn.utils.clip_grad_norm_(grads, max_norm))
