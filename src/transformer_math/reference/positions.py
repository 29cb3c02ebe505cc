"""Where a token sits: rotary (RoPE), learned or sinusoidal absolute embeddings, ALiBi biases.

RoPE rotates each pair of channels (c, c + d_rope/2) of q and k by the angle p·ω_i (p the position):
    ω_i = θ_base^(−2i/d_rope),  i = 0 … d_rope/2 − 1,   d_rope = f_rot·d_h (the rest of d_h passes through)
    rope(x)_p = x·cos(p·ω) + rotate_half(x)·sin(p·ω),   rotate_half([x₁, x₂]) = [−x₂, x₁]
so q_p·k_s depends on p − s only. Stretching for long contexts (s_rope = factor, L_orig = original context):
    linear:  ω_i / s_rope
    dynamic: θ_base · (s_rope·T/L_orig − (s_rope − 1))^(d_rope/(d_rope − 2)) once T > L_orig (NTK-aware)
    llama3:  wavelengths 2π/ω above L_orig/low_freq_factor divided by s_rope, below L_orig/high_freq_factor kept,
             a linear ramp in L_orig/wavelength between
    yarn:    per-channel ramp between ω_i/s_rope and ω_i (β_fast, β_slow rotations across L_orig), cos and sin
             times the temperature 0.1·ln(s_rope) + 1
Sinusoidal (Vaswani et al.): PE[p, 2i] = sin(p/10000^(2i/d)), PE[p, 2i+1] = cos(p/10000^(2i/d)).
Learned (GPT-2): a table W_pos of L_max×d (P_pos parameters) added to the token embedding.
ALiBi (Press et al.): score(p, s) += −m_h·(p − s), slopes m_h = 2^(−8h/h_q) for h = 1 … h_q (h_q a power of 2).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from transformer_math.reference.details import RopeConfig


def rope_frequencies(cfg: RopeConfig, d_rope: int, seq_len: int | None = None) -> tuple[torch.Tensor, float]:
    """(ω of d_rope/2 channels, attention factor multiplying cos and sin) for one recipe."""
    base, factor = cfg.theta, cfg.factor
    L_orig = cfg.original_context
    if cfg.kind == "dynamic" and L_orig and seq_len and seq_len > L_orig:
        base = base * ((factor * seq_len / L_orig) - (factor - 1)) ** (d_rope / (d_rope - 2))
    omega = 1.0 / (base ** (torch.arange(0, d_rope, 2, dtype=torch.int64).float() / d_rope))
    if cfg.kind == "linear":
        return omega / factor, 1.0
    if cfg.kind == "llama3":
        assert L_orig, "llama3 RoPE needs the original context"
        low_wavelen, high_wavelen = L_orig / cfg.low_freq_factor, L_orig / cfg.high_freq_factor
        wavelen = 2 * math.pi / omega
        scaled = torch.where(wavelen > low_wavelen, omega / factor, omega)
        ramp = (L_orig / wavelen - cfg.low_freq_factor) / (cfg.high_freq_factor - cfg.low_freq_factor)
        smoothed = (1 - ramp) * scaled / factor + ramp * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        return torch.where(medium, smoothed, scaled), 1.0
    if cfg.kind == "yarn":
        assert L_orig, "YaRN needs the original context"

        def channel(rotations: float) -> float:  # the channel that turns `rotations` times across L_orig
            return d_rope * math.log(L_orig / (rotations * 2 * math.pi)) / (2 * math.log(base))

        low, high = channel(cfg.beta_fast), channel(cfg.beta_slow)
        if cfg.truncate:
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, d_rope - 1)
        span = (high - low) or 0.001
        ramp = ((torch.arange(d_rope // 2, dtype=torch.float32) - low) / span).clamp(0, 1)
        keep = 1 - ramp  # 1: extrapolate (fast channels keep ω), 0: interpolate (ω / s_rope)
        temperature = cfg.attention_factor or (0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)
        return omega / factor * (1 - keep) + omega * keep, float(temperature)
    return omega, 1.0


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RoPE(nn.Module):
    """Rotary embedding of the first d_rope = int(f_rot·d_h) channels of each head."""

    omega: torch.Tensor

    def __init__(self, head_dim: int, cfg: RopeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.d_rope = int(head_dim * cfg.fraction)
        omega, self.temperature = rope_frequencies(cfg, self.d_rope)
        self.register_buffer("omega", omega, persistent=False)

    def cos_sin(self, pos_T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        omega, temp = self.omega, self.temperature
        if self.cfg.kind == "dynamic":
            omega, temp = rope_frequencies(self.cfg, self.d_rope, int(pos_T.max()) + 1)
            omega = omega.to(pos_T.device)
        angles_TR = pos_T.float()[:, None] * omega[None, :]  # an outer product: no matmul, no FLOPs counted
        angles_TD = torch.cat((angles_TR, angles_TR), dim=-1)
        return angles_TD.cos() * temp, angles_TD.sin() * temp

    def forward(self, x_BHTD: torch.Tensor, pos_T: torch.Tensor) -> torch.Tensor:
        cos, sin = self.cos_sin(pos_T)
        rot, rest = x_BHTD[..., : self.d_rope], x_BHTD[..., self.d_rope:]
        rotated = (rot * cos + rotate_half(rot) * sin).to(x_BHTD.dtype)
        return torch.cat((rotated, rest), dim=-1)


def sinusoidal_positions(pos_T: torch.Tensor, d: int) -> torch.Tensor:
    """PE of shape T×d (d even)."""
    omega = 1.0 / (10000.0 ** (torch.arange(0, d, 2, dtype=torch.float32, device=pos_T.device) / d))
    angles = pos_T.float()[:, None] * omega[None, :]
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


def alibi_slopes(h: int) -> torch.Tensor:
    """m_h for h heads; for h not a power of 2, the slopes of the next lower power n, then every other slope of 2n."""
    def ladder(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    n = 2 ** math.floor(math.log2(h))
    slopes = ladder(n) + ladder(2 * n)[0::2][: h - n]
    return torch.tensor(slopes)


def alibi_bias(h: int, q_pos_T: torch.Tensor, k_pos_S: torch.Tensor) -> torch.Tensor:
    """−m_h·|p − s| of shape h×T×S, added to the scores."""
    distance = (q_pos_T[:, None] - k_pos_S[None, :]).abs().float()
    return -alibi_slopes(h).to(distance.device)[:, None, None] * distance
