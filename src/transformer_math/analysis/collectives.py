"""The collectives one GPU issues per training micro-batch (TP, CP, EP, PP) and per step (data parallel / FSDP).

Counts and per-call bytes follow what torch issues for torchtitan-style plans, checked by running a step over
a fake process group and recording every collective (tests/test_execution_comm.py). Per-call bytes use one
convention: all-reduce = the tensor; all-gather = the gathered output; reduce-scatter = the full input;
all-to-all = this rank's input; send = the buffer. Counts may be numpy arrays (the layout search), so the
list's shape never depends on the layout: a collective a layout does not issue has count 0.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True, slots=True)
class Collective:
    group: str  # tp | cp | ep | pp | dp
    phase: str  # fwd | bwd (recomputed forwards run in the backward)
    kind: str  # all_reduce | all_gather | reduce_scatter | all_to_all | send
    count: Any
    bytes: Any  # per call, per rank (convention above)
    note: str = ""


def tensor_parallel(*, n_L: Any, first: Any, last: Any, sp: Any, full: Any, S: Any, S_loss: Any, n_norms: Any,
                    b_norm: Any) -> list[Collective]:
    """Tensor parallelism (Megatron-LM §3; torchtitan's plan with attention and MLP inputs prepared once, a
    vocab-parallel embedding and a loss-parallel LM head). S = b·s·d·b_a, the full activation of the micro-batch.

    Without SP: forward all-reduces after o_proj and down_proj (2 per layer) and the embedding; backward 2 per
    layer for the attention and MLP inputs and 1 for the LM head's input. With SP each all-reduce is a
    reduce-scatter + all-gather pair, and the replicated norm weights' gradients are all-reduced once each.
    The loss-parallel cross entropy all-reduces three fp32 values per token (max, Σexp, target logit).
    Full recomputation repeats the layers' forward collectives in the backward.
    """
    no_sp = 1 - sp
    fwd_layers, bwd_layers = 2 * n_L, 2 * n_L * (1 + full)
    return [
        Collective("tp", "fwd", "all_reduce", no_sp * (fwd_layers + first), S, "o_proj, down_proj; embedding"),
        Collective("tp", "bwd", "all_reduce", no_sp * (bwd_layers + last), S, "attention and MLP inputs; LM head"),
        Collective("tp", "fwd", "reduce_scatter", sp * (fwd_layers + first), S, "o_proj, down_proj; embedding"),
        Collective("tp", "fwd", "all_gather", sp * (fwd_layers + last), S, "attention and MLP inputs; LM head"),
        Collective("tp", "bwd", "all_gather", sp * (bwd_layers + first), S, "o_proj, down_proj grads; embedding"),
        Collective("tp", "bwd", "reduce_scatter", sp * (bwd_layers + last), S, "attention and MLP inputs; LM head"),
        Collective("tp", "bwd", "all_reduce", sp * n_norms, b_norm, "norm weight gradients (SP)"),
        Collective("tp", "fwd", "all_reduce", 3 * last, S_loss, "loss-parallel cross entropy"),
    ]


def context_parallel(*, n_L: Any, C_p: Any, full: Any, KV: Any, dKV: Any) -> list[Collective]:
    """Ring attention as torch's context_parallel runs it (rotate method 'allgather', torchtitan's default):
    per layer the forward all-gathers the C_p blocks of K and V (KV bytes each: the heads reaching the kernel,
    torchtitan expands GQA's K/V to h_q first); the backward gathers them again and passes the fp32 dK/dV
    accumulator around the ring in C_p sends (issued as all_to_all)."""
    on = C_p > 1
    return [Collective("cp", "fwd", "all_gather", on * n_L, C_p * KV, "K/V blocks"),
            Collective("cp", "bwd", "all_gather", on * n_L * (1 + full), C_p * KV, "K/V blocks again"),
            Collective("cp", "bwd", "all_to_all", on * n_L * C_p, dKV, "dK/dV ring (fp32)")]


def expert_parallel(*, n_moe: Any, E_p: Any, full: Any, S_tok: Any) -> list[Collective]:
    """MoE dispatch and combine (GShard §2.2; torchtitan's all_to_all_single): two all-to-alls of the routed
    copies (S_tok = tokens·e·d·b_a on this rank) per MoE layer in the forward, two in the backward."""
    on = E_p > 1
    return [Collective("ep", "fwd", "all_to_all", on * 2 * n_moe, S_tok, "dispatch, combine"),
            Collective("ep", "bwd", "all_to_all", on * 2 * n_moe * (1 + full), S_tok, "their gradients")]


def pipeline(*, P_p: Any, S: Any) -> list[Collective]:
    """Stage boundaries (Narayanan et al. 2021 §2.2): activations forward and their gradients backward."""
    on = P_p > 1
    return [Collective("pp", "fwd", "send", on, S, "activations to the next stage"),
            Collective("pp", "bwd", "send", on, S, "gradients to the previous stage")]


def data_parallel(*, zero: Any, m: Any, F: Any, F_e: Any, P_layers: Any, P_experts: Any, P_root: Any, n_L: Any,
                  n_moe: Any, b_w: Any, b_g: Any) -> list[Collective]:
    """Per optimizer step over the F = D_p·C_p ranks (routed experts over their own F_e = F/E_p). P_layers,
    P_experts, P_root: rank 0's elements under ZeRO-3 of the stage's decoder layers (without routed experts), of
    its routed experts, and of the root group (embedding, final norm, LM head). FSDP2 pads every rank's shard to
    rank 0's, so a gather moves F times that.

    ZeRO-0: one all-reduce of the gradients. ZeRO-1/2: a reduce-scatter of the gradients and an all-gather of
    the updated parameters (Rajbhandari et al. 2020 §5). ZeRO-3 (FSDP2 with its default resharding): in every
    micro-batch an all-gather per layer and for the root in the forward, per layer again in the backward (the
    root stays gathered), and a reduce-scatter of each one's gradients; experts are units of their own."""
    z0, z12, z3 = zero == 0, (zero == 1) + (zero == 2), zero >= 3
    per_layer = P_layers / (n_L + (n_L == 0))
    has = P_experts > 0
    per_moe = P_experts / (n_moe + (n_moe == 0))
    dense, experts = F * (P_layers + P_root), F_e * P_experts
    return [Collective("dp", "bwd", "all_reduce", z0, dense * b_g, "gradients"),
            Collective("dp", "bwd", "reduce_scatter", z12, dense * b_g, "gradients"),
            Collective("dp", "bwd", "all_gather", z12, dense * b_w, "updated parameters"),
            Collective("dp", "fwd", "all_gather", z3 * m * n_L, F * per_layer * b_w, "layer parameters"),
            Collective("dp", "fwd", "all_gather", z3 * m, F * P_root * b_w, "root parameters"),
            Collective("dp", "bwd", "all_gather", z3 * m * n_L, F * per_layer * b_w, "layer parameters again"),
            Collective("dp", "bwd", "reduce_scatter", z3 * m * n_L, F * per_layer * b_g, "layer gradients"),
            Collective("dp", "bwd", "reduce_scatter", z3 * m, F * P_root * b_g, "root gradients"),
            Collective("dp_e", "bwd", "all_reduce", has * z0, experts * b_g, "expert gradients"),
            Collective("dp_e", "bwd", "reduce_scatter", has * z12, experts * b_g, "expert gradients"),
            Collective("dp_e", "bwd", "all_gather", has * z12, experts * b_w, "updated experts"),
            Collective("dp_e", "fwd", "all_gather", z3 * m * n_moe, F_e * per_moe * b_w, "experts"),
            Collective("dp_e", "bwd", "all_gather", z3 * m * n_moe, F_e * per_moe * b_w, "experts again"),
            Collective("dp_e", "bwd", "reduce_scatter", z3 * m * n_moe, F_e * per_moe * b_g, "expert gradients")]
