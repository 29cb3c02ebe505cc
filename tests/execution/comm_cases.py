"""The cases of comm.py: one training step each under TP, FSDP2, FSDP × TP, EP and CP, and the report.

From ``tests/``: ``python -m execution.comm_cases`` prints every table (markdown, ~10 s on CPU)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .comm import CommRecorder, Row, fake_world, summarize
from .comm_model import TinyConfig, _batch, _hf_llama, _step, _tiny

TINY = TinyConfig()  # the default widths of every case

# --------------------------------------------------------------------------------------------------
# case 1/2: tensor parallel (torchtitan's Llama plan)
# --------------------------------------------------------------------------------------------------


def tp_plan(seq_parallel: bool, loss_parallel: bool, n_layers: int, prepare_input: bool = False) -> dict[str, Any]:
    """torchtitan's Llama TP plan in HF names (torchtitan/models/llama3/infra/parallelize.py).

    ``prepare_input`` (no-SP only; not torchtitan): also give self_attn / mlp a
    PrepareModuleInput(Replicate -> Replicate) so q/k/v (gate/up) share ONE DTensor input.
    """
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import ColwiseParallel, PrepareModuleInput, RowwiseParallel, SequenceParallel

    sp = Shard(1) if seq_parallel else Replicate()
    plan: dict[str, Any] = {
        "embed_tokens": RowwiseParallel(input_layouts=Replicate(), output_layouts=sp),
        "lm_head": ColwiseParallel(input_layouts=sp, output_layouts=Shard(-1) if loss_parallel else Replicate(),
                                   use_local_output=not loss_parallel),
    }
    if seq_parallel:
        plan["norm"] = SequenceParallel()
    for i in range(n_layers):
        p = f"layers.{i}."
        plan.update({
            p + "self_attn.q_proj": ColwiseParallel(),
            p + "self_attn.k_proj": ColwiseParallel(),
            p + "self_attn.v_proj": ColwiseParallel(),
            p + "self_attn.o_proj": RowwiseParallel(output_layouts=sp),
            p + "mlp.gate_proj": ColwiseParallel(),
            p + "mlp.up_proj": ColwiseParallel(),
            p + "mlp.down_proj": RowwiseParallel(output_layouts=sp),
        })
        if prepare_input and not seq_parallel:
            plan.update({
                p + "self_attn": PrepareModuleInput(input_layouts=(Replicate(),), desired_input_layouts=(Replicate(),)),
                p + "mlp": PrepareModuleInput(input_layouts=(Replicate(),), desired_input_layouts=(Replicate(),)),
            })
        if seq_parallel:
            plan.update({
                p + "input_layernorm": SequenceParallel(),
                p + "post_attention_layernorm": SequenceParallel(),
                p + "self_attn": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
                p + "mlp": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
            })
    return plan


def case_tp(T: int = 2, seq_parallel: bool = False, loss_parallel: bool = False, c: TinyConfig = TINY,
            prepare_input: bool = False, hf: bool = False, opt_step: bool = False, raw: bool = False):
    """TP over T ranks, one micro-batch (b, s) fwd+bwd.  Plan (:func:`tp_plan`, torchtitan):

    embed_tokens  RowwiseParallel(input_layouts=Replicate(), output_layouts=Replicate() | Shard(1) with SP)
    q/k/v_proj, gate/up_proj   ColwiseParallel()
    o_proj, down_proj          RowwiseParallel(output_layouts=Replicate() | Shard(1) with SP)
    lm_head       ColwiseParallel(input_layouts=Replicate() | Shard(1), output_layouts=Replicate(), local output)
                  or, loss_parallel: output_layouts=Shard(-1) kept as DTensor, loss under ``loss_parallel()``
    SP only:      input_layernorm, post_attention_layernorm, norm: SequenceParallel();
                  self_attn, mlp: PrepareModuleInput(Shard(1) -> Replicate())
    prepare_input (no SP): self_attn, mlp: PrepareModuleInput(Replicate() -> Replicate()), DTensor kept
    hf (no SP): run HF ``LlamaForCausalLM`` instead of :class:`TinyLlama` (plan keys under "model.").
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import loss_parallel as lp
    from torch.distributed.tensor.parallel import parallelize_module

    with fake_world(T):
        mesh = init_device_mesh("cpu", (T,), mesh_dim_names=("tp",))
        plan = tp_plan(seq_parallel, loss_parallel, c.n_layers, prepare_input)
        if hf:
            if seq_parallel:
                raise ValueError("HF Llama's layers take position_embeddings / masks built for the full "
                                 "sequence at model level; sequence parallelism shards it: use TinyLlama")
            plan = {k if k == "lm_head" else "model." + k: v for k, v in plan.items()}
        model = parallelize_module(_hf_llama(c) if hf else _tiny(c), mesh, plan)
        ids, labels = _batch(c)
        records = _step(model, ids, labels, mesh, lp if loss_parallel else contextlib.nullcontext, opt_step)
    return records if raw else summarize(records)


# --------------------------------------------------------------------------------------------------
# case 3/4: FSDP2, and FSDP2 x TP
# --------------------------------------------------------------------------------------------------


def _fully_shard_llama(model: nn.Module, mesh, reshard_after_forward: bool | None, mixed_precision: bool) -> None:
    """torchtitan's wrapping: ``fully_shard`` each decoder layer, then the root (embed, norm, lm_head)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if mixed_precision
          else MixedPrecisionPolicy())
    layers = model.model.layers if hasattr(model, "model") else model.layers  # HF or TinyLlama
    for layer in layers:
        fully_shard(layer, mesh=mesh, reshard_after_forward=reshard_after_forward, mp_policy=mp)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward, mp_policy=mp)


def case_fsdp(F_: int = 4, reshard_after_forward: bool | None = True, mixed_precision: bool = False,
              c: TinyConfig = TINY, hf: bool = False, opt_step: bool = False, raw: bool = False):
    """FSDP2 over F_ ranks, no TP; each rank runs its own micro-batch (b, s).

    Plan: ``fully_shard(layer)`` for every decoder layer, then ``fully_shard(model)`` (the root group
    holds embed_tokens, norm, lm_head), all with ``reshard_after_forward`` and, if ``mixed_precision``,
    ``MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)`` (params stored in ``c.dtype``).
    ``reshard_after_forward=None`` is torch's default: True for the layers, False for the root.
    FSDP2 cuts every parameter on dim 0 into F_ chunks padded to ceil(dim0/F_) rows; one all-gather /
    reduce-scatter per group moves the concatenation of the group's (padded) chunks.
    ``hf``: HF ``LlamaForCausalLM`` instead of :class:`TinyLlama` (same widths).
    """
    from torch.distributed.device_mesh import init_device_mesh

    with fake_world(F_):
        mesh = init_device_mesh("cpu", (F_,), mesh_dim_names=("fsdp",))
        model = _hf_llama(c) if hf else _tiny(c)
        _fully_shard_llama(model, mesh, reshard_after_forward, mixed_precision)
        ids, labels = _batch(c)
        records = _step(model, ids, labels, mesh, opt_step=opt_step)
    return records if raw else summarize(records)


def case_fsdp_tp(F_: int = 2, T: int = 2, seq_parallel: bool = True, reshard_after_forward: bool | None = True,
                 mixed_precision: bool = False, c: TinyConfig = TINY, opt_step: bool = False,
                 raw: bool = False):
    """2-D: mesh (F_, T) named ("fsdp", "tp"), rank = f·T + t.  TP first (:func:`tp_plan` on "tp",
    no loss parallel), then FSDP2 (:func:`_fully_shard_llama`) on "fsdp" over the TP-local shards."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import parallelize_module

    with fake_world(F_ * T):
        mesh = init_device_mesh("cpu", (F_, T), mesh_dim_names=("fsdp", "tp"))
        model = parallelize_module(_tiny(c), mesh["tp"], tp_plan(seq_parallel, False, c.n_layers))
        _fully_shard_llama(model, mesh["fsdp"], reshard_after_forward, mixed_precision)
        ids, labels = _batch(c)
        records = _step(model, ids, labels, mesh, opt_step=opt_step)
    return records if raw else summarize(records)


# --------------------------------------------------------------------------------------------------
# case 5: expert parallel
# --------------------------------------------------------------------------------------------------


class EPMoE(nn.Module):
    """Tiny top-k MoE layer, experts split over an expert-parallel group of E_p ranks (E/E_p local).

    Per rank: n = b·s tokens of width d.  Each token goes to k experts -> n·k routed copies.
    dispatch: ``all_to_all_single`` of the (n·k, d) routed copies, EVEN splits n·k/E_p per peer
              (balanced routing assumed: the fake group cannot exchange real split sizes, so the
              copies are sorted by expert and cut into E_p equal slices whatever the router chose);
    experts:  the n·k received rows, cut into E/E_p equal slices, one per local expert (SwiGLU d->d_moe->d);
    combine:  ``all_to_all_single`` back (same splits), un-sort, weight by the router's top-k probs, sum.
    Both all-to-alls are the autograd-aware funcol op, so backward issues one all-to-all each as well.
    """

    def __init__(self, d: int, d_moe: int, n_experts: int, top_k: int, group: dist.ProcessGroup) -> None:
        super().__init__()
        self.group, self.top_k, self.ep = group, top_k, group.size()
        self.n_local = n_experts // self.ep
        self.router = nn.Linear(d, n_experts, bias=False)
        self.w_gate = nn.Parameter(torch.randn(self.n_local, d, d_moe) * d ** -0.5)
        self.w_up = nn.Parameter(torch.randn(self.n_local, d, d_moe) * d ** -0.5)
        self.w_down = nn.Parameter(torch.randn(self.n_local, d_moe, d) * d_moe ** -0.5)

    def forward(self, x):
        from torch.distributed._functional_collectives import all_to_all_single_autograd as a2a

        tokens = x.reshape(-1, x.shape[-1])  # (n, d)
        n, d = tokens.shape
        top_p, top_e = self.router(tokens).softmax(-1).topk(self.top_k, -1)  # (n, k)
        order = top_e.flatten().argsort(stable=True)  # routed copies grouped by expert, i.e. by owner rank
        routed = tokens.repeat_interleave(self.top_k, 0)[order]  # (n·k, d)
        splits = [n * self.top_k // self.ep] * self.ep  # balanced routing
        recv = a2a(routed, splits, splits, self.group)  # dispatch
        h = recv.view(self.n_local, -1, d)  # (local experts, rows each, d)
        h = torch.bmm(F.silu(torch.bmm(h, self.w_gate)) * torch.bmm(h, self.w_up), self.w_down)
        back = a2a(h.reshape(-1, d), splits, splits, self.group)  # combine
        out = back[order.argsort()].view(n, self.top_k, d)  # un-sort to (token, slot)
        return (out * top_p.unsqueeze(-1).to(out.dtype)).sum(1).view_as(x)


def case_ep(E_p: int = 2, n_experts: int = 4, top_k: int = 2, d: int = 64, d_moe: int = 32, b: int = 2, s: int = 16,
            dtype: torch.dtype = torch.float32, raw: bool = False):
    """One MoE layer (:class:`EPMoE`) over an expert-parallel group of E_p ranks (the whole fake world):
    forward on x (b, s, d) requiring grad, loss = sum of the output, backward."""
    from torch.distributed.device_mesh import init_device_mesh

    with fake_world(E_p):
        mesh = init_device_mesh("cpu", (E_p,), mesh_dim_names=("ep",))
        torch.manual_seed(0)
        moe = EPMoE(d, d_moe, n_experts, top_k, mesh.get_group("ep")).to(dtype)
        x = torch.randn(b, s, d, dtype=dtype, requires_grad=True)
        with CommRecorder(moe, mesh) as rec:
            moe(x).float().sum().backward()
    return rec.records if raw else summarize(rec.records)


# --------------------------------------------------------------------------------------------------
# case 6: context parallel
# --------------------------------------------------------------------------------------------------




def case_cp(C: int = 2, rotate: str = "allgather", c: TinyConfig = TINY, raw: bool = False):
    """Context parallel over C ranks: the whole :class:`TinyLlama` step on this rank's s/C tokens of each
    sequence (ids and labels (b, s/C)); every attention is :class:`RingAttention` over the "cp" group.

    The K/V that travel are what reaches SDPA: this model repeats K/V heads to n_heads before SDPA (as
    torchtitan's Llama does), so KV = 2·b·n_heads·(s/C)·head_dim elements.  No parameter-gradient
    collective appears: CP ranks' weight grads are reduced by the data-parallel / FSDP reduction whose
    group includes the CP ranks (torchtitan: "dp_shard_cp"), not recorded here.
    ``rotate``: torch's ``set_rotate_method`` ("allgather" default, or "alltoall").
    Load balancing (torch's default head-tail order) changes which blocks are computed, not what moves.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.experimental._context_parallel import _attention as cp

    old = cp._cp_options.rotate_method
    with fake_world(C):
        mesh = init_device_mesh("cpu", (C,), mesh_dim_names=("cp",))
        model = _tiny(c)
        for layer in model.layers:
            layer.self_attn.cp_group = mesh.get_group("cp")
        ids, labels = _batch(c)
        rank = dist.get_rank()
        ids, labels = ids.chunk(C, 1)[rank], labels.chunk(C, 1)[rank]
        try:
            cp.set_rotate_method(rotate)
            records = _step(model, ids, labels, mesh)
        finally:
            cp._cp_options.rotate_method = old
    return records if raw else summarize(records)


# --------------------------------------------------------------------------------------------------
# report: every case at several sizes
# --------------------------------------------------------------------------------------------------


def merge_sizes(results: dict[str, list[Row]]) -> list[dict[str, Any]]:
    """Line up the rows of one case run at several sizes (label -> rows): one dict per distinct
    (phase, module, collective, dtype, group, k-th occurrence) with ``count`` and ``bytes`` per label."""
    table: dict[tuple, dict[str, Any]] = {}
    for label, rows in results.items():
        seen: Counter = Counter()
        for r in rows:
            key = (r.phase, r.module, r.collective, r.dtype, f"{r.group}={r.group_size}")
            seen[key] += 1
            entry = table.setdefault(key + (seen[key],), {"key": key, "count": {}, "bytes": {}, "in": {}, "out": {}})
            entry["count"][label], entry["bytes"][label] = r.count, r.bytes
            entry["in"][label], entry["out"][label] = r.in_bytes, r.out_bytes
    return list(table.values())


def markdown(results: dict[str, list[Row]]) -> str:
    labels = list(results)
    head = "| phase | module | collective | dtype | group | n | " + " | ".join(f"bytes {x}" for x in labels) + " |"
    out = [head, "|" + "---|" * (6 + len(labels))]
    for e in merge_sizes(results):
        counts = [e["count"].get(x, 0) for x in labels]
        n = str(counts[0]) if len(set(counts)) == 1 else "/".join(map(str, counts))
        cells = []
        for x in labels:
            if x not in e["bytes"]:
                cells.append("-")
            elif e["in"][x] != e["out"][x]:
                cells.append(f"{e['bytes'][x]} ({e['in'][x]}->{e['out'][x]})")
            else:
                cells.append(str(e["bytes"][x]))
        out.append("| " + " | ".join(e["key"]) + f" | {n} | " + " | ".join(cells) + " |")
    return "\n".join(out)


SIZES = {  # the same case at three sizes: read the dependence on s and on d off the columns
    "A(s16,d64)": TinyConfig(),
    "B(s32)": TinyConfig(s=32),
    "C(d128)": TinyConfig(d=128),
}


def report() -> str:
    import functools
    import warnings

    warnings.filterwarnings("ignore")
    P = functools.partial
    cases: list[tuple[str, Any]] = [
        ("1a TP no-SP, T=2 (logits gathered)", P(case_tp, 2)),
        ("1b TP no-SP, T=4", P(case_tp, 4)),
        ("1c TP no-SP + loss_parallel, T=2", P(case_tp, 2, loss_parallel=True)),
        ("1d TP no-SP + PrepareModuleInput(Replicate->Replicate) on self_attn/mlp, T=2",
         P(case_tp, 2, prepare_input=True)),
        ("1e TP no-SP, HF LlamaForCausalLM, T=2", P(case_tp, 2, hf=True)),
        ("2a TP + SP, T=2 (+ SGD step, phase opt)", P(case_tp, 2, True, opt_step=True)),
        ("2b TP + SP, T=4", P(case_tp, 4, True)),
        ("2c TP + SP + loss_parallel, T=2", P(case_tp, 2, True, True)),
        ("3a FSDP2 F=4, reshard_after_forward=True", P(case_fsdp, 4, True)),
        ("3b FSDP2 F=4, reshard_after_forward=None (torch default: layers True, root False)", P(case_fsdp, 4, None)),
        ("3c FSDP2 F=4, reshard_after_forward=False", P(case_fsdp, 4, False)),
        ("3d FSDP2 F=4, reshard_after_forward=True, MixedPrecision(param bf16, reduce fp32)",
         P(case_fsdp, 4, True, True)),
        ("4a FSDP2 F=2 x TP+SP T=2", P(case_fsdp_tp, 2, 2, True)),
        ("4b FSDP2 F=2 x TP no-SP T=2", P(case_fsdp_tp, 2, 2, False)),
        ("6a CP C=2, rotate allgather", P(case_cp, 2, "allgather")),
        ("6b CP C=4, rotate allgather", P(case_cp, 4, "allgather")),
        ("6c CP C=2, rotate alltoall", P(case_cp, 2, "alltoall")),
        ("6d CP C=4, rotate alltoall", P(case_cp, 4, "alltoall")),
    ]
    bf16 = {k: dataclasses.replace(c, dtype=torch.bfloat16) for k, c in SIZES.items()}
    cases_bf16: list[tuple[str, Any]] = [
        ("1f TP no-SP + loss_parallel, T=2, bf16 model", P(case_tp, 2, loss_parallel=True)),
        ("2d TP + SP, T=2, bf16 model", P(case_tp, 2, True)),
        ("6e CP C=2, rotate alltoall, bf16 model", P(case_cp, 2, "alltoall")),
    ]
    parts = []
    for title, fn in cases:
        parts.append(f"### {title}\n\n" + markdown({k: fn(c=c) for k, c in SIZES.items()}))
    for title, fn in cases_bf16:
        parts.append(f"### {title}\n\n" + markdown({k: fn(c=c) for k, c in bf16.items()}))
    ep_sizes = {"A(s16,d64)": dict(s=16, d=64), "B(s32)": dict(s=32, d=64), "C(d128)": dict(s=16, d=128)}
    for E_p, dtype in ((2, torch.float32), (4, torch.float32), (2, torch.bfloat16)):
        title = f"5 EP E_p={E_p}, E=4 experts, top-2, d_moe=32, b=2, {str(dtype)[6:]}"
        parts.append(f"### {title}\n\n" + markdown({k: case_ep(E_p, dtype=dtype, **kw) for k, kw in ep_sizes.items()}))
    return "\n\n".join(parts)


if __name__ == "__main__":
    print(report())
