"""A mixture-of-experts MLP that runs: router, top-e routing, gated experts, shared experts, capacity, aux losses.

Shapes are written as suffixes: B batch, T tokens per sequence, D = d (d_model), N = B·T tokens, E experts,
K = e experts per token, F = d_moe, S = n_shared·d_shared (the shared experts as one MLP), C capacity.

Router (one linear, 2·N·d·E FLOPs, as the analyzer's `moe.router`):
    logits_NE = (x_ND·W_rᵀ + b_r) / τ                        b_r only with spec.moe.router_bias; τ the temperature
    softmax scoring:  p_NE = softmax(logits_NE)              (Mixtral, Qwen-MoE, DeepSeek-V2, gpt-oss)
    sigmoid scoring:  p_NE = σ(logits_NE)                    (DeepSeek-V3)
Top-e choice:
    choice_NE = p_NE + b_corr                                b_corr: DeepSeek-V3's score-correction bias (a buffer,
                                                             moved by load statistics, not by gradients)
    group-limited (DeepSeek): the E experts fall into G groups; a group scores the sum of its 2 best choice
    scores (sigmoid) or its best score (softmax); only experts of the topk_group best groups can be chosen
    idx_NK = top-e(choice_NE),  w_NK = p_NK = p_NE[idx_NK]
    w_NK ← w_NK / Σ_k w_NK        if spec.moe.norm_topk (Mixtral always; Qwen2-MoE and DeepSeek-V2 never)
    w_NK ← ρ·w_NK                 ρ = routed_scaling_factor (DeepSeek; 1 elsewhere)
Experts (expert j, a gated MLP with g_up = spec.n_up up branches; 2·(g_up+1)·d·F FLOPs per routed token):
    E_j(x) = (act(x·W_gate,jᵀ + b_g) ⊙ (x·W_up,jᵀ + b_u))·W_down,jᵀ + b_d      (b only with spec.moe.expert_bias)
    gpt-oss's clamped SwiGLU: g = min(x·W_gate,jᵀ + b_g, ℓ), u = clip(x·W_up,jᵀ + b_u, −ℓ, ℓ),
                              h = (u + 1) ⊙ g·σ(α·g),  α = 1.702, ℓ = swiglu_limit (7)
    y_ND = Σ_k w_NK · E_idx(x_N)  +  [σ(x·w_sgᵀ)] · Shared(x)   (the σ gate only with spec.moe.shared_gate)
Capacity (capacity_factor C_cap; None = unlimited):
    C = ⌈C_cap · N·e / E⌉ slots per expert. Assignments claim slots slot-major (every token's first choice before
    any second choice), in token order; an assignment that finds its expert full is dropped (contributes 0, the
    residual carries the token). Every expert then runs on exactly C rows, the empty ones zero padding, so the
    executed expert FLOPs are E·C·2·(g_up+1)·d·F whatever the routing; without a capacity, N·e·2·(g_up+1)·d·F.
    The analyzer counts the same (`moe.experts.*`, C_exp = C) when spec.moe.capacity_factor is set: this module
    takes C_cap as a constructor argument and does not read it from the spec, so pass the same number.
    At least max(0, N·e − E·C) assignments are dropped (a bound reached only by perfectly balanced routing);
    `dropped` counts the last forward's.
Auxiliary losses (`aux_losses`, refreshed by each forward):
    load_balance = E · Σ_j f_j · m_j,  f_j = (assignments to j) / (N·e),  m_j = mean_N P_Nj
                   with P = softmax(logits) (sigmoid scoring: p normalized to sum 1 per token); 1 when balanced.
                   Hugging Face's load_balancing_loss_func counts f_j per token, not per assignment: e × this.
    router_z     = mean_N (logsumexp_E logits_NE)²   (ST-MoE)

What the spec does not carry and the constructor takes (defaults are the Hugging Face family's):
n_group, topk_group, routed_scaling (DeepSeek-V3: 8, 4, 2.5; DeepSeek-V2: no groups, ρ = 1 — its configs say
topk_method; pass n_group/topk_group for 'group_limited_greedy'), the score-correction bias (DeepSeek-V3 only),
swiglu_limit (gpt-oss: 7), temperature τ (1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transformer_math.config.spec import ModelSpec

# (n_group, topk_group, routed_scaling_factor) of the HF config classes when the config file is silent
_FAMILY_ROUTING = {"deepseek_v3": (8, 4, 2.5), "deepseek_v2": (1, 1, 1.0)}
_GPT_OSS_ALPHA = 1.702


def activation(name: str) -> Callable[[Tensor], Tensor]:
    """The elementwise activation a spec names (HF's hidden_act spellings)."""
    if name in ("silu", "swish"):
        return F.silu
    if name in ("gelu", "gelu_python"):
        return F.gelu
    if name in ("gelu_pytorch_tanh", "gelu_new", "gelu_fast", "gelu_tanh"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu
    raise ValueError(f"activation {name!r} is not modelled here")


class MoE(nn.Module):
    """The MoE MLP of one layer of `spec` (see the module docstring for every formula)."""

    def __init__(self, spec: ModelSpec, *, capacity_factor: float | None = None, temperature: float = 1.0,
                 n_group: int | None = None, topk_group: int | None = None, routed_scaling: float | None = None,
                 score_correction: bool | None = None, swiglu_limit: float | None = None) -> None:
        super().__init__()
        if spec.moe is None:
            raise ValueError(f"{spec.name} has no MoE settings")
        m = spec.moe
        self.spec, self.moe = spec, m
        D, E, F_, g = spec.d_model, m.n_experts, m.d_moe, spec.n_up
        if g not in (1, 2):
            raise ValueError(f"n_up = {g}: experts have one or two up branches")
        capacity_factor = m.capacity_factor if capacity_factor is None else capacity_factor  # the spec's C_cap
        if capacity_factor is not None and capacity_factor <= 0:
            raise ValueError("capacity_factor must be positive (None: no capacity limit)")
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        G, G_top, rho = _FAMILY_ROUTING.get(spec.family, (1, 1, 1.0))
        self.n_group = G if n_group is None else n_group
        self.topk_group = min(G_top, self.n_group) if topk_group is None else topk_group
        if E % self.n_group or not 1 <= self.topk_group <= self.n_group:
            raise ValueError(f"n_group = {self.n_group} must divide E = {E} and topk_group = {self.topk_group} "
                             f"lie in 1..n_group (pass n_group/topk_group for a small E)")
        if self.topk_group * (E // self.n_group) < m.experts_per_token:
            raise ValueError("the chosen groups hold fewer experts than e")
        self.routed_scaling = rho if routed_scaling is None else routed_scaling
        self.capacity_factor, self.temperature = capacity_factor, temperature
        self.clamped = spec.family == "gpt_oss" or swiglu_limit is not None
        self.swiglu_limit = 7.0 if swiglu_limit is None else swiglu_limit
        self.act = activation(spec.activation)

        self.router = nn.Linear(D, E, bias=m.router_bias)
        use_corr = spec.family == "deepseek_v3" if score_correction is None else score_correction
        self.score_correction_E: Tensor | None
        if use_corr:
            self.register_buffer("score_correction_E", torch.zeros(E))
        else:
            self.score_correction_E = None
        self.gate_EFD = nn.Parameter(torch.empty(E, F_, D)) if g == 2 else None
        self.up_EFD = nn.Parameter(torch.empty(E, F_, D))
        self.down_EDF = nn.Parameter(torch.empty(E, D, F_))
        bias = m.expert_bias
        self.gate_bias_EF = nn.Parameter(torch.zeros(E, F_)) if bias and g == 2 else None
        self.up_bias_EF = nn.Parameter(torch.zeros(E, F_)) if bias else None
        self.down_bias_ED = nn.Parameter(torch.zeros(E, D)) if bias else None
        for w in (self.gate_EFD, self.up_EFD, self.down_EDF):
            if w is not None:
                nn.init.normal_(w, std=0.02)
        S = m.shared_width
        self.shared_gate_proj = nn.Linear(D, S, bias=False) if S and g == 2 else None
        self.shared_up_proj = nn.Linear(D, S, bias=False) if S else None
        self.shared_down_proj = nn.Linear(S, D, bias=False) if S else None
        self.shared_gate = nn.Linear(D, 1, bias=False) if m.shared_gate else None
        self.aux_losses: dict[str, Tensor] = {}
        self.dropped = 0  # assignments the last forward dropped for lack of capacity

    # -- routing ---------------------------------------------------------------------------------------------
    def route(self, x_ND: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(logits_NE, p_NE, w_NK, idx_NK); the router runs in fp32 as DeepSeek's and Qwen's do."""
        m, E, K = self.moe, self.moe.n_experts, self.moe.experts_per_token
        b = None if self.router.bias is None else self.router.bias.float()
        logits_NE = F.linear(x_ND.float(), self.router.weight.float(), b) / self.temperature
        p_NE = logits_NE.sigmoid() if m.scoring == "sigmoid" else logits_NE.softmax(dim=-1)
        choice_NE = p_NE if self.score_correction_E is None else p_NE + self.score_correction_E
        if self.n_group > 1:
            N, G = choice_NE.shape[0], self.n_group
            choice_NGJ = choice_NE.view(N, G, E // G)
            if m.scoring == "sigmoid":  # DeepSeek-V3: a group's two best scores
                group_NG = choice_NGJ.topk(min(2, E // G), dim=-1).values.sum(dim=-1)
            else:  # DeepSeek-V2 group_limited_greedy: a group's best score
                group_NG = choice_NGJ.amax(dim=-1)
            best_NG = group_NG.topk(self.topk_group, dim=-1).indices
            keep_NG = torch.zeros_like(group_NG, dtype=torch.bool).scatter_(1, best_NG, True)
            keep_NE = keep_NG.unsqueeze(-1).expand(N, G, E // G).reshape(N, E)
            choice_NE = choice_NE.masked_fill(~keep_NE, float("-inf"))
        idx_NK = choice_NE.topk(K, dim=-1).indices
        w_NK = p_NE.gather(1, idx_NK)
        if m.norm_topk:
            w_NK = w_NK / (w_NK.sum(dim=-1, keepdim=True) + 1e-20)
        return logits_NE, p_NE, w_NK * self.routed_scaling, idx_NK

    def _losses(self, logits_NE: Tensor, p_NE: Tensor, idx_NK: Tensor) -> dict[str, Tensor]:
        E, (N, K) = self.moe.n_experts, idx_NK.shape
        f_E = torch.bincount(idx_NK.flatten(), minlength=E).to(p_NE.dtype) / (N * K)
        P_NE = p_NE / p_NE.sum(dim=-1, keepdim=True) if self.moe.scoring == "sigmoid" else p_NE
        m_E = P_NE.mean(dim=0)
        return {"load_balance": E * (f_E * m_E).sum(),
                "router_z": torch.logsumexp(logits_NE, dim=-1).pow(2).mean()}

    # -- experts ---------------------------------------------------------------------------------------------
    def _hidden(self, gate: Tensor | None, up: Tensor) -> Tensor:
        if gate is None:
            return self.act(up)
        if self.clamped:
            lim = self.swiglu_limit
            gate, up = gate.clamp(max=lim), up.clamp(min=-lim, max=lim)
            return (up + 1) * (gate * torch.sigmoid(_GPT_OSS_ALPHA * gate))
        return self.act(gate) * up

    def expert(self, j: int, x_MD: Tensor) -> Tensor:
        """E_j on M tokens."""
        gate = None if self.gate_EFD is None else F.linear(
            x_MD, self.gate_EFD[j], None if self.gate_bias_EF is None else self.gate_bias_EF[j])
        up = F.linear(x_MD, self.up_EFD[j], None if self.up_bias_EF is None else self.up_bias_EF[j])
        return F.linear(self._hidden(gate, up), self.down_EDF[j],
                        None if self.down_bias_ED is None else self.down_bias_ED[j])

    def _experts_batched(self, x_ECD: Tensor) -> Tensor:
        """All E experts on C rows each (three batched matmuls)."""
        def proj(w: Tensor, b: Tensor | None, a: Tensor) -> Tensor:
            out = torch.bmm(a, w.transpose(1, 2))
            return out if b is None else out + b.unsqueeze(1)

        gate = None if self.gate_EFD is None else proj(self.gate_EFD, self.gate_bias_EF, x_ECD)
        up = proj(self.up_EFD, self.up_bias_EF, x_ECD)
        return proj(self.down_EDF, self.down_bias_ED, self._hidden(gate, up))

    def capacity(self, n_tokens: int) -> int | None:
        """C = ⌈C_cap·N·e/E⌉, or None without a capacity limit."""
        if self.capacity_factor is None:
            return None
        m = self.moe
        return max(1, math.ceil(self.capacity_factor * n_tokens * m.experts_per_token / m.n_experts))

    def _dispatch_capacity(self, x_ND: Tensor, w_NK: Tensor, idx_NK: Tensor, C: int) -> Tensor:
        E, (N, K), D = self.moe.n_experts, idx_NK.shape, x_ND.shape[1]
        idx_A = idx_NK.t().reshape(-1)  # A = K·N assignments, slot-major: first choices claim slots first
        tok_A = torch.arange(N, device=x_ND.device).repeat(K)
        w_A = w_NK.t().reshape(-1)
        onehot_AE = F.one_hot(idx_A, E)
        pos_A = (onehot_AE.cumsum(dim=0) * onehot_AE).sum(dim=1) - 1  # slot index within its expert
        kept_A = pos_A < C
        self.dropped = int((~kept_A).sum())
        idx_A, tok_A, w_A, pos_A = idx_A[kept_A], tok_A[kept_A], w_A[kept_A], pos_A[kept_A]
        x_ECD = x_ND.new_zeros(E, C, D)
        x_ECD[idx_A, pos_A] = x_ND[tok_A]
        y_ECD = self._experts_batched(x_ECD)
        y_ND = x_ND.new_zeros(N, D)
        return y_ND.index_add_(0, tok_A, y_ECD[idx_A, pos_A] * w_A.to(x_ND.dtype).unsqueeze(-1))

    def _dispatch(self, x_ND: Tensor, w_NK: Tensor, idx_NK: Tensor) -> Tensor:
        y_ND = torch.zeros_like(x_ND)
        self.dropped = 0
        for j in range(self.moe.n_experts):
            tok_M, slot_M = (idx_NK == j).nonzero(as_tuple=True)
            if tok_M.numel() == 0:
                continue
            out_MD = self.expert(j, x_ND[tok_M]) * w_NK[tok_M, slot_M].to(x_ND.dtype).unsqueeze(-1)
            y_ND.index_add_(0, tok_M, out_MD)
        return y_ND

    def shared(self, x_ND: Tensor) -> Tensor | None:
        """The shared experts as one MLP of width n_shared·d_shared, times σ(x·w_sg) with a shared gate."""
        if self.shared_up_proj is None or self.shared_down_proj is None:
            return None
        up = self.shared_up_proj(x_ND)
        h = self.act(up) if self.shared_gate_proj is None else self.act(self.shared_gate_proj(x_ND)) * up
        out = self.shared_down_proj(h)
        return out if self.shared_gate is None else torch.sigmoid(self.shared_gate(x_ND)) * out

    def forward(self, x_BTD: Tensor) -> Tensor:
        B, T, D = x_BTD.shape
        x_ND = x_BTD.reshape(B * T, D)
        logits_NE, p_NE, w_NK, idx_NK = self.route(x_ND)
        self.aux_losses = self._losses(logits_NE, p_NE, idx_NK)
        C = self.capacity(B * T)
        y_ND = self._dispatch(x_ND, w_NK, idx_NK) if C is None else self._dispatch_capacity(x_ND, w_NK, idx_NK, C)
        s_ND = self.shared(x_ND)
        if s_ND is not None:
            y_ND = y_ND + s_ND
        return y_ND.reshape(B, T, D)
