"""Training losses of the reference models: next-token cross-entropy (label smoothing, prompt masking) and MoE aux.

Shapes as suffixes: B sequences, T positions, V vocabulary. Labels sit at the token's own position (labels_BT = ids_BT
for pre-training, sft_labels for fine-tuning) and the loss shifts them, as Hugging Face's ForCausalLMLoss does:
position t predicts label t+1; the last position predicts nothing. IGNORE (−100) marks a label that does not count.

    ℓ_t   = −(1−ε_ls)·log p_t[y_t] − (ε_ls/V)·Σ_v log p_t[v]        p_t = softmax(z_t), y_t the next token
    L_CE  = Σ_{t counted} ℓ_t / n_tok                                 n_tok: counted targets (or a given count)
    L     = L_CE + λ_load·Σ_layers load_balance + λ_z·Σ_layers router_z
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transformer_math.errors import TmathError

IGNORE = -100  # torch's and Hugging Face's ignore_index


def next_token_targets(labels_BT: Tensor) -> Tensor:
    """targets_BT[:, t] = labels_BT[:, t+1], and IGNORE at the last position (nothing follows it)."""
    return F.pad(labels_BT[:, 1:], (0, 1), value=IGNORE)


def sft_labels(ids_BT: Tensor, prompt_lens_B: Tensor | list[int], lengths_B: Tensor | list[int] | None = None
               ) -> Tensor:
    """Labels for supervised fine-tuning: ids where t ≥ prompt length (the answer), IGNORE elsewhere.

    The prompt's last token still predicts the answer's first (the shift reads label t+1), so only answer tokens are
    targets. With lengths_B (real tokens per sequence, the rest padding), padding is IGNORE too.
    """
    B, T = ids_BT.shape
    pos_BT = torch.arange(T, device=ids_BT.device).expand(B, T)
    prompt_B1 = torch.as_tensor(prompt_lens_B, device=ids_BT.device).reshape(B, 1)
    keep_BT = pos_BT >= prompt_B1
    if lengths_B is not None:
        keep_BT &= pos_BT < torch.as_tensor(lengths_B, device=ids_BT.device).reshape(B, 1)
    return ids_BT.masked_fill(~keep_BT, IGNORE)


def token_losses(logits_BTV: Tensor, targets_BT: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
    """ℓ_BT (nats per target), 0 where the target is IGNORE. Computed in fp32 whatever the logits' dtype.

    ℓ = −(1−ε_ls)·log p[y] − (ε_ls/V)·Σ_v log p[v]: cross-entropy against the target (1−ε_ls)·onehot(y) + ε_ls/V.
    Source: Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision" §7 (label smoothing);
    the same as torch.nn.functional.cross_entropy(label_smoothing=ε_ls).
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise TmathError("label_smoothing", label_smoothing, "a number from 0 to below 1")
    logp_BTV = logits_BTV.float().log_softmax(dim=-1)
    counted_BT = targets_BT != IGNORE
    safe_BT = targets_BT.masked_fill(~counted_BT, 0)  # any valid index; masked out below
    nll_BT = -logp_BTV.gather(-1, safe_BT.unsqueeze(-1)).squeeze(-1)
    loss_BT = nll_BT if label_smoothing == 0.0 else (
        (1.0 - label_smoothing) * nll_BT - label_smoothing * logp_BTV.mean(dim=-1))
    return loss_BT.masked_fill(~counted_BT, 0.0)


def count_targets(labels_BT: Tensor) -> int:
    """n_tok: the targets the shifted labels count (labels t ≥ 1 that are not IGNORE)."""
    return int((labels_BT[:, 1:] != IGNORE).sum())


def causal_lm_loss(logits_BTV: Tensor, labels_BT: Tensor, *, label_smoothing: float = 0.0,
                   n_tokens: int | None = None) -> Tensor:
    """L_CE = Σ ℓ_t / n_tok (nats per token) over the shifted, counted targets.

    n_tokens overrides n_tok: with gradient accumulation, pass the count of the whole step's targets so that the
    micro-batch losses add up to the full batch's mean (Hugging Face's num_items_in_batch). No target at all gives
    0 (not NaN): a micro-batch of prompts only then adds nothing.
    """
    loss_BT = token_losses(logits_BTV, next_token_targets(labels_BT), label_smoothing=label_smoothing)
    n = count_targets(labels_BT) if n_tokens is None else n_tokens
    return loss_BT.sum() / max(n, 1)


def moe_aux_sums(model: nn.Module) -> tuple[Tensor, Tensor]:
    """(Σ load_balance, Σ router_z) over the MoE layers' last forward (`aux_losses` dicts; moe.py has the formulas:
    load_balance = E·Σ_j f_j·m_j, Switch Transformer eq. 4, Fedus et al. 2021; router_z = mean (logsumexp z)²,
    ST-MoE eq. 5, Zoph et al. 2022). Zeros for a dense model."""
    aux: list[dict[str, Tensor]] = []
    for module in model.modules():
        found = getattr(module, "aux_losses", None)
        if isinstance(found, dict):  # MoE layers; Model.aux_losses is a method, not a dict
            aux.append(found)
    return (_sum(a["load_balance"] for a in aux if "load_balance" in a),
            _sum(a["router_z"] for a in aux if "router_z" in a))


def _sum(values: Iterable[Tensor]) -> Tensor:
    total: Tensor | None = None
    for v in values:
        total = v.float() if total is None else total + v.float()
    return torch.zeros(()) if total is None else total


class Loss(NamedTuple):
    """The total loss (to backpropagate) and its parts (for logging)."""

    total: Tensor
    ce: Tensor
    load_balance: Tensor
    router_z: Tensor


def total_loss(ce: Tensor, load_balance: Tensor, router_z: Tensor, *, lambda_load: float, lambda_z: float) -> Loss:
    """L = L_CE + λ_load·Σ load_balance + λ_z·Σ router_z (nats per token; the aux terms are dimensionless).

    Source: Fedus et al. 2021, "Switch Transformers" eq. 4–5 (α = λ_load = 0.01); Zoph et al. 2022, "ST-MoE"
    eq. 5–6 (c_z = λ_z = 0.001). Σ runs over MoE layers, as Switch and ST-MoE sum per-layer terms.
    """
    return Loss(ce + lambda_load * load_balance + lambda_z * router_z, ce, load_balance, router_z)
