"""Normalization layers over the last axis (width d, or d_h for per-head q/k norms).

RMSNorm (Llama, Qwen, Mistral, OLMo-2, Gemma):   y = x / √(mean(x²) + ε) · (o + w)
    o = 0 normally; o = 1 in Gemma, whose weights are stored as w − 1 (initialized at zero).
LayerNorm (GPT-2, GPT-NeoX):                    y = (x − mean(x)) / √(var(x) + ε) · w + b
    k_norm = 2 learned vectors (w, b) with a bias, 1 without.
Both are computed in float32 and cast back, as the reference implementations do.
"""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """x / √(mean(x²) + ε) · (offset + w), in fp32; offset = 1 for Gemma's stored w − 1."""

    def __init__(self, dim: int, eps: float = 1e-6, offset: float = 0.0) -> None:
        super().__init__()
        self.eps, self.offset = eps, offset
        self.weight = nn.Parameter(torch.full((dim,), 1.0 - offset))  # the gain o + w starts at 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        rms_inv = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x32 * rms_inv * (self.offset + self.weight.float())).to(x.dtype)


class LayerNorm(nn.Module):
    """(x − mean(x)) / √(var(x) + ε) · w (+ b), in fp32."""

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        mean = x32.mean(-1, keepdim=True)
        var = (x32 - mean).pow(2).mean(-1, keepdim=True)
        y = (x32 - mean) * torch.rsqrt(var + self.eps) * self.weight.float()
        if self.bias is not None:
            y = y + self.bias.float()
        return y.to(x.dtype)


def make_norm(kind: str, dim: int, eps: float, offset: float = 0.0) -> nn.Module:
    """The spec's Norm: 'rmsnorm' or 'layernorm' (with bias)."""
    if kind == "rmsnorm":
        return RMSNorm(dim, eps, offset)
    if kind == "layernorm":
        return LayerNorm(dim, eps)
    raise ValueError(f"norm {kind!r}: rmsnorm or layernorm")
