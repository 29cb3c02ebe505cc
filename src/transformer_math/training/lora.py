"""LoRA adapters on the reference model's nn.Linear layers, chosen by name; the base weights frozen.

    h = W₀x + b + (α/r)·B·A·dropout(x)        A: r×d_in (Kaiming-uniform), B: d_out×r (zeros) → h = W₀x + b at init
Trainable parameters per wrapped linear: r·(d_in + d_out) — the analyzer's lora_params
(transformer_math.analysis.train_setup) counts the same for the same targets.

Targets name module leaves. Our names (reference/attention.py, mlp.py, moe.py) and the Hugging Face names the
analyzer and PEFT use are both accepted:
    q | q_proj,  k | k_proj,  v | v_proj,  o | o_proj       attention projections
    gate | gate_proj,  up | up_proj,  down | down_proj      dense MLP branches, and in MoE layers the shared
                                                            experts' shared_*_proj (routed experts are 3-D
                                                            tensors, not nn.Linear: PEFT does not wrap them either)
Any other name is taken as a literal leaf name (MLA's kv_b_proj, the router); a target that matches no nn.Linear
is skipped; targets that match nothing at all are an error (as in PEFT). One difference from the analyzer: it
counts gate/up/down only for gated MLPs (n_up = 2), because plain-MLP families (GPT-NeoX, GPT-2) spell them
otherwise in Hugging Face; here a plain MLP's up/down are wrapped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from transformer_math.errors import TmathError, check_int, check_number
from transformer_math.training.config import sym

# canonical target → the module leaf names it wraps
_LEAVES = {"q": ("q", "q_proj"), "k": ("k", "k_proj"), "v": ("v", "v_proj"), "o": ("o", "o_proj"),
           "gate": ("gate", "gate_proj", "shared_gate_proj"), "up": ("up", "up_proj", "shared_up_proj"),
           "down": ("down", "down_proj", "shared_down_proj")}
_CANONICAL = {**{k: k for k in _LEAVES}, **{f"{k}_proj": k for k in _LEAVES}}


@dataclass(frozen=True, kw_only=True, slots=True)
class LoRAConfig:
    """LoRA settings (Hu et al. 2021); validated on creation (TmathError naming the field)."""

    rank: int = field(default=8, metadata=sym("r", "-", "rank of B·A"))
    alpha: float = field(default=16.0, metadata=sym("α", "-", "the update is scaled by α/r"))
    dropout: float = field(default=0.0, metadata=sym("p_drop", "-", "dropout on the adapter's input (training)"))
    targets: tuple[str, ...] = field(default=("q", "k", "v", "o"), metadata=sym(
        "-", "-", "module leaf names to wrap (module docstring)"))

    def __post_init__(self) -> None:
        check_int("lora_rank", self.rank, low=1, high=65536)
        check_number("lora_alpha", self.alpha, low=0.0, high=1e6, open_low=True)
        if not (isinstance(self.dropout, int | float) and 0.0 <= self.dropout < 1.0):
            raise TmathError("lora_dropout", self.dropout, "a number from 0 to below 1")
        if not isinstance(self.targets, tuple) or not self.targets or not all(isinstance(t, str) and t
                                                                       for t in self.targets):
            raise TmathError("lora_targets", self.targets, "a non-empty tuple of module names, e.g. ('q', 'v')")

    @property
    def scale(self) -> float:
        """α/r."""
        return self.alpha / self.rank


class LoRALinear(nn.Module):
    """base(x) + (α/r)·lora_B(lora_A(dropout(x))); base frozen, lora_B zero at init (so equal to base)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        base.requires_grad_(False)
        dev, dt = base.weight.device, base.weight.dtype
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, device=dev, dtype=dt)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, device=dev, dtype=dt)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # PEFT's and the LoRA paper's default
        nn.init.zeros_(self.lora_B.weight)  # ΔW = B·A = 0 at init
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scale = alpha / rank

    def forward(self, x: Tensor) -> Tensor:
        h: Tensor = self.base(x) + self.scale * self.lora_B(self.lora_A(self.drop(x)))
        return h

    @torch.no_grad()
    def merged_weight(self) -> Tensor:
        """W₀ + (α/r)·B·A: the plain linear weight this adapter equals (without dropout)."""
        return self.base.weight + self.scale * (self.lora_B.weight @ self.lora_A.weight)


def _wanted_leaves(targets: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for t in targets:
        out.update(_LEAVES[_CANONICAL[t]] if t in _CANONICAL else (t,))
    return out


def apply_lora(model: nn.Module, cfg: LoRAConfig) -> list[str]:
    """Freeze every parameter of `model`, then replace each targeted nn.Linear by a LoRALinear (in place).

    Returns the wrapped modules' names. Raises TmathError when no target matches any nn.Linear.
    """
    model.requires_grad_(False)
    leaves = _wanted_leaves(cfg.targets)
    found = [(name, mod) for name, mod in model.named_modules()
             if isinstance(mod, nn.Linear) and name.rpartition(".")[2] in leaves]
    if not found:  # as PEFT: an error only when nothing matches (Mixtral has no gate/up/down nn.Linear at all)
        raise TmathError("lora_targets", ",".join(cfg.targets), "names of nn.Linear modules of this model "
                                                                 "(q, k, v, o, gate, up, down or their *_proj names)")
    for name, mod in found:
        parent_name, _, leaf = name.rpartition(".")
        assert isinstance(mod, nn.Linear)
        setattr(model.get_submodule(parent_name), leaf, LoRALinear(mod, cfg.rank, cfg.alpha, cfg.dropout))
    return [name for name, _ in found]


def trainable_params(model: nn.Module) -> int:
    """Σ numel of parameters with requires_grad (LoRA: Σ r·(d_in + d_out) over wrapped linears)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
