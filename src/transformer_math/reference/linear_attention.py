"""Causal linear attention (Katharopoulos et al. 2020, "Transformers are RNNs", arXiv 2006.16236 §3.2–3.4).

The softmax kernel exp(q·k) is replaced by a positive feature map, sim(q, k) = φ(q)·φ(k), so the sums over
the keys factor out of each query:
    y_t = φ(q_t)·S_t / (φ(q_t)·z_t + ε)      S_t = Σ_{s≤t} φ(k_s)ᵀ v_s  (d_k × d_v),   z_t = Σ_{s≤t} φ(k_s)  (d_k)
Feature maps φ (`feature_map`):
    "elu1": elu(x) + 1                 Katharopoulos et al. 2020 §3.2.1 eq. 7 (the default)
    "relu": max(x, 0)                  Qin et al. 2022, "cosFormer" (arXiv 2202.08791) §3.2, its φ without the
                                       cos re-weighting; ε keeps a query whose features all vanish finite (y = 0)
Projections as attention.py (q, k, v, o; h_q query heads, h_kv key/value heads, d_k = d_v = d_h; qk-norm if the
spec has it); no RoPE and no score scale. Each KV head keeps one state, read by its g_GQA = h_q / h_kv query heads.

Two forms, equal up to rounding (tests/test_linear_attention.py):
    parallel (prefill, training; §3.3): the outer products φ(k_t)ᵀv_t of all T tokens, a cumulative sum over t
        (from the cached state when there is one), then every query reads its prefix state;
    recurrent (decoding; §3.4): one step per token, S ← S + φ(k)ᵀv, z ← z + φ(k), y = φ(q)·S / (φ(q)·z + ε).
`mode` picks: "auto" (parallel for T > 1, recurrent for one token), "parallel" or "recurrent".
Both run the same matrix products, so per token and layer (2 FLOPs per MAC, FlopCounterMode's count):
    F_state = 2·h_kv·d_k·d_v      (φ(k)ᵀv as a matmul with inner dimension 1)
    F_read  = 2·h_q·d_k·(d_v + 1) (φ(q)·S and φ(q)·z)
plus the projections; the cumulative sum is additions only. No quantity depends on the context L.
State cache (LinearStateCache): S, B × h_kv × d_k × d_v, and z, B × h_kv × d_k, per layer; nbytes() equals the
analyzer's memory.linear_state.
Training (the parallel form under autograd) keeps, per token and layer, besides the input the projections share:
φ's input and output for q and k (elu1; relu keeps its output only: n_phi = 1), v, every prefix state S_t and z_t
(h_kv·(d_k·d_v + d_k): §3.3's causal form without its custom gradient), φ(q)·S_t, φ(q)·z_t + ε and the output
W_O reads, as the analyzer's memory.activations.linear_attention counts them. q, k and v are laid out head-major
before φ, so the products read views and no hidden copy depends on h_kv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from transformer_math.config.spec import ModelSpec
from transformer_math.reference.attention import Attention
from transformer_math.reference.details import Details

FEATURE_MAPS = ("elu1", "relu")
EPS = 1e-6


def feature_map(x: torch.Tensor, kind: str) -> torch.Tensor:
    """φ(x), positive (elu1) or non-negative (relu), elementwise."""
    if kind == "elu1":
        return F.elu(x) + 1
    if kind == "relu":
        return F.relu(x)
    raise ValueError(f"feature_map: {kind!r}; one of {FEATURE_MAPS}")


class LinearStateCache:
    """The recurrent state of one linear-attention layer: S = Σ φ(k)ᵀv and z = Σ φ(k) over the tokens seen."""

    def __init__(self) -> None:
        self.S: torch.Tensor | None = None  # B × h_kv × d_k × d_v
        self.z: torch.Tensor | None = None  # B × h_kv × d_k

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.S, self.z) if t is not None)

    def select(self, idx_B: torch.Tensor) -> None:
        """Keep batch rows idx_B, in that order (beam search: each beam continues the state it came from)."""
        if self.S is not None and self.z is not None:
            self.S, self.z = self.S[idx_B], self.z[idx_B]


class LinearAttention(Attention):
    """Linear attention of layer `layer_index` (formulas in the module docstring; attention.py's interface)."""

    def __init__(self, spec: ModelSpec, layer_index: int, details: Details | None = None,
                 feature_map: str = "elu1") -> None:
        super().__init__(spec, layer_index, details)
        self.rope = None  # positions enter only through causality
        self.feature_map = feature_map
        self.mode = "auto"  # "parallel" | "recurrent" | "auto" (parallel for T > 1)

    def new_cache(self) -> LinearStateCache:  # type: ignore[override]
        return LinearStateCache()

    def forward(self, x_BTD: torch.Tensor, pos_T: torch.Tensor,  # type: ignore[override]
                cache: LinearStateCache | None = None, *, causal: bool = True, prefix: int = 0) -> torch.Tensor:
        if not causal or prefix:
            raise NotImplementedError("linear attention is causal only")
        B, T, _ = x_BTD.shape
        q, k, v = self.q(x_BTD), self.k(x_BTD), self.v(x_BTD)
        if self.q_norm is not None and self.k_norm is not None and self.qk_span == "all":
            q, k = self.q_norm(q), self.k_norm(k)
        G = self.h_q // self.h_kv
        # Head-major copies before φ (no FLOPs, nothing saved): the products below then read φ(q), φ(k) and v as
        # views, so what autograd keeps is the same set of tensors whatever h_kv (module docstring).
        q_BHTGD = q.view(B, T, self.h_kv, G, self.d_h).transpose(1, 2).contiguous()  # query head = kv head·G + group
        k_BHTD = k.view(B, T, self.h_kv, self.d_h).transpose(1, 2).contiguous()
        v_BHTD = v.view(B, T, self.h_kv, self.d_h).transpose(1, 2).contiguous()
        if self.q_norm is not None and self.k_norm is not None and self.qk_span == "head":
            q_BHTGD, k_BHTD = self.q_norm(q_BHTGD), self.k_norm(k_BHTD)
        fq = feature_map(q_BHTGD, self.feature_map).transpose(2, 3)  # B × h_kv × G × T × d_k, a view
        fk = feature_map(k_BHTD, self.feature_map)
        S0 = torch.zeros(B, self.h_kv, self.d_h, self.d_h, dtype=x_BTD.dtype, device=x_BTD.device)
        z0 = torch.zeros(B, self.h_kv, self.d_h, dtype=x_BTD.dtype, device=x_BTD.device)
        if cache is not None and cache.S is not None and cache.z is not None:
            S0, z0 = cache.S, cache.z
        recurrent = self.mode == "recurrent" or (self.mode == "auto" and T == 1)
        step = self._recurrent if recurrent else self._parallel
        y_BHGTD, S, z = step(fq, fk, v_BHTD, S0, z0)
        if cache is not None:
            cache.S, cache.z = S, z
        y_BTD = y_BHGTD.permute(0, 3, 1, 2, 4).reshape(B, T, self.h_q * self.d_h)
        return self.o(y_BTD)

    @staticmethod
    def _parallel(fq_BHGTD: torch.Tensor, fk_BHTD: torch.Tensor, v_BHTD: torch.Tensor, S0_BHDE: torch.Tensor,
                  z0_BHD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All T prefix states at once: S_t = S_0 + Σ_{s≤t} φ(k_s)ᵀv_s (cumulative sum of outer products)."""
        kv_BHTDE = fk_BHTD.unsqueeze(-1) @ v_BHTD.unsqueeze(-2)  # φ(k_t)ᵀv_t: matmul, inner dimension 1
        S_BHTDE = S0_BHDE.unsqueeze(2) + kv_BHTDE.cumsum(dim=2)
        z_BHTD = z0_BHD.unsqueeze(2) + fk_BHTD.cumsum(dim=2)
        fq_BHTGD = fq_BHGTD.transpose(2, 3)
        num_BHTGE = fq_BHTGD @ S_BHTDE  # φ(q_t)·S_t for the G query heads of each KV head
        den_BHTG1 = fq_BHTGD @ z_BHTD.unsqueeze(-1)  # φ(q_t)·z_t
        y_BHGTE = (num_BHTGE / (den_BHTG1 + EPS)).transpose(2, 3)
        return y_BHGTE, S_BHTDE[:, :, -1], z_BHTD[:, :, -1]

    @staticmethod
    def _recurrent(fq_BHGTD: torch.Tensor, fk_BHTD: torch.Tensor, v_BHTD: torch.Tensor, S_BHDE: torch.Tensor,
                   z_BHD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One token at a time, an RNN: S ← S + φ(k)ᵀv, z ← z + φ(k), y = φ(q)·S / (φ(q)·z + ε)."""
        ys = []
        for t in range(fk_BHTD.shape[2]):
            S_BHDE = S_BHDE + fk_BHTD[:, :, t, :, None] @ v_BHTD[:, :, t, None, :]
            z_BHD = z_BHD + fk_BHTD[:, :, t]
            fq_BHGD = fq_BHGTD[:, :, :, t]
            ys.append((fq_BHGD @ S_BHDE) / (fq_BHGD @ z_BHD.unsqueeze(-1) + EPS))
        return torch.stack(ys, dim=3), S_BHDE, z_BHD
