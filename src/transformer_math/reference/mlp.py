"""The dense MLP of one layer, width d → d_ff → d.

plain (g_up = 1, GPT-2, GPT-NeoX):   y = W_down · φ(W_up x)                 φ ∈ {ReLU, GELU, GELU-tanh, SiLU}
gated (g_up = 2, SwiGLU, GeGLU):     y = W_down · (φ(W_gate x) ⊙ W_up x)    SwiGLU: φ = SiLU; GeGLU: φ = GELU

P_mlp = g_up·d·d_ff + d_ff·d (+ g_up·d_ff + d biases);  F_mlp = 2·(g_up + 1)·d·d_ff per token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact: x·Φ(x)
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    "silu": F.silu,  # x·σ(x)
}


def activation(name: str):  # type: ignore[no-untyped-def]
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r}: one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Dense MLP d → d_ff → d, plain (n_up = 1) or gated (n_up = 2); MoE layers use moe.MoE instead."""

    def __init__(self, d: int, d_ff: int, *, act: str = "silu", n_up: int = 2, bias: bool = False) -> None:
        super().__init__()
        if n_up not in (1, 2):
            raise ValueError(f"g_up = {n_up}: 1 (plain) or 2 (gated)")
        self.act = activation(act)
        self.up = nn.Linear(d, d_ff, bias=bias)
        self.gate = nn.Linear(d, d_ff, bias=bias) if n_up == 2 else None
        self.down = nn.Linear(d_ff, d, bias=bias)

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            h_BTF = self.act(self.up(x_BTD))
        else:
            h_BTF = self.act(self.gate(x_BTD)) * self.up(x_BTD)
        return self.down(h_BTF)
