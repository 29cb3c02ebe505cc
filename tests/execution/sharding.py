"""Per-rank parameter shards of a Hugging Face model under torch's own TP / EP / FSDP2, measured on meta.

One process pretends to be global rank `rank` of a world of F·T ranks: a "fake" process group (no
communication), the model built on the meta device (no memory), then torch's `parallelize_module`,
`distribute_tensor` and `fully_shard` shard it. Every parameter becomes a DTensor and
`p.to_local().numel()` is what that rank holds.

Mesh (row-major, rank = f·T + t, f = g·E_p + e):  world = ("efsdp"=F/E_p, "ep"=E_p, "tp"=T);
"fsdp" = ("efsdp", "ep") flattened (size F: the data × context ranks, as torchtitan does).

Plan (torchtitan-style; placements on "tp"):
  embed_tokens                 RowwiseParallel on nn.Embedding -> weight Shard(0) (vocab-parallel)
  q/k/v_proj, q_b_proj, kv_b_proj, gate_proj, up_proj (dense MLP, shared experts), lm_head
                               ColwiseParallel -> weight Shard(0), bias Shard(0)
  o_proj, down_proj (dense MLP, shared experts)
                               RowwiseParallel -> weight Shard(1), bias Replicate
  everything else (norms, router mlp.gate, MLA q_a_proj / kv_a_proj_with_mqa)   replicated over "tp"
  routed experts (HF layout)   gate_up_proj (E, 2·d_moe, d): [Shard(0) on "ep", Shard(1) on "tp"]
                               down_proj    (E, d, d_moe):   [Shard(0) on "ep", Shard(2) on "tp"]
FSDP2: per decoder layer, the routed experts first get `fully_shard` over "efsdp" (size F/E_p) with
torchtitan's placement (torchtitan/distributed/fsdp.py: Shard(1) when efsdp·ep = F > E, else Shard(0)),
then `fully_shard(layer)` over "fsdp"; finally `fully_shard(model)` over "fsdp".

How torch sizes shards (measured, torch 2.13): DTensor Shard(d) and FSDP2 both cut with torch.chunk
semantics: ceil(n/k) rows per rank, trailing ranks smaller or empty (5 over 4 -> 2,2,1,0). FSDP2 shards
the TP-local tensor (a _StridedShard when both cut the same dim). `to_local()` is NOT padded, but FSDP2's
storage behind it is padded to rank 0's chunk on every rank: "fsdp_padded" reports that storage.
FSDP2 refuses uneven sharding on a dim other than 0 (NotImplementedError), which surfaces as is.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, Shard, distribute_tensor
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
from torch.testing._internal.distributed.fake_pg import FakeStore

from transformer_math.checks import execution as cc

COLWISE = {"q_proj", "k_proj", "v_proj", "q_b_proj", "kv_b_proj", "gate_proj", "up_proj"}
ROWWISE = {"o_proj", "down_proj"}
EXPERT_TP_DIM = {"gate_up_proj": 1, "down_proj": 2}  # HF layout (E, 2·d_moe, d) and (E, d, d_moe)
N_EXPERTS_KEYS = ("num_local_experts", "num_experts", "n_routed_experts")


def shard_numels(config: dict, *, T: int, F: int, E_p: int = 1, rank: int = 0, n_layers: int | None = None,
                 optimizer: bool = False) -> dict:
    """Local numels of every parameter on global rank `rank` (see the module docstring for the plan).

    Returns {"tp_local": {name: numel after TP/EP only (ZeRO-1/2: no FSDP)},
             "fsdp_local": {name: p.to_local().numel() after FSDP2},
             "fsdp_padded": {name: numel of FSDP2's (padded) local storage},
             "optimizer": {name: (exp_avg numel, exp_avg_sq numel)} after a real AdamW step, or None,
             "dtypes": {name: element size in bytes}}.
    n_layers: keep that many decoder layers (DeepSeek's first_k_dense_replace becomes min(k, n_layers-1)
    so at least one MoE layer stays).
    """
    if F % E_p:
        raise ValueError(f"E_p={E_p} must divide F={F}")
    if not 0 <= rank < F * T:
        raise ValueError(f"rank {rank} outside world {F * T}")
    if dist.is_initialized():
        raise RuntimeError("a process group is already initialised")
    cfg = _fewer_layers(dict(config), n_layers)
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=F * T)
    try:
        mesh = init_device_mesh("cpu", (F // E_p, E_p, T), mesh_dim_names=("efsdp", "ep", "tp"))
        fsdp_mesh = mesh["efsdp", "ep"]._flatten("fsdp")
        model = cc.build_meta(cfg)
        dtypes = {n: p.element_size() for n, p in model.named_parameters()}
        experts = _apply_tp_ep(model, mesh)
        tp_local = {n: _local(p).numel() for n, p in model.named_parameters()}
        n_experts = next((cfg[k] for k in N_EXPERTS_KEYS if k in cfg), None)
        expert_placement = Shard(1) if n_experts is not None and F > n_experts else Shard(0)
        for layer in model.model.layers:
            for mod in experts.get(id(layer), ()):
                fully_shard(mod, mesh=mesh["efsdp"], shard_placement_fn=lambda _p: expert_placement)
            fully_shard(layer, mesh=fsdp_mesh)
        fully_shard(model, mesh=fsdp_mesh)
        fsdp_local = {n: _local(p).numel() for n, p in model.named_parameters()}
        fsdp_padded = {n: _local(p).untyped_storage().nbytes() // p.element_size()
                       for n, p in model.named_parameters()}
        states = _adamw_states(model) if optimizer else None
    finally:
        dist.destroy_process_group()
    return {"tp_local": tp_local, "fsdp_local": fsdp_local, "fsdp_padded": fsdp_padded, "optimizer": states,
            "dtypes": dtypes}


def _fewer_layers(cfg: dict, n_layers: int | None) -> dict:
    if n_layers is None:
        return cfg
    cfg["num_hidden_layers"] = n_layers
    if "first_k_dense_replace" in cfg:
        cfg["first_k_dense_replace"] = min(cfg["first_k_dense_replace"], max(n_layers - 1, 0))
    if isinstance(cfg.get("layer_types"), list):
        cfg["layer_types"] = cfg["layer_types"][:n_layers]
    if isinstance(cfg.get("mlp_only_layers"), list):
        cfg["mlp_only_layers"] = [i for i in cfg["mlp_only_layers"] if i < n_layers]
    return cfg


def _local(p: torch.Tensor) -> torch.Tensor:
    return p.to_local() if isinstance(p, DTensor) else p


def _apply_tp_ep(model: nn.Module, mesh: Any) -> dict[int, list[nn.Module]]:
    """TP styles on the "tp" mesh, routed experts by distribute_tensor on ("ep", "tp"). Returns the experts
    modules of each decoder layer (keyed by id(layer))."""
    tp = mesh["tp"]
    names = {mod: name for name, mod in model.named_modules()}
    root_plan = {names[model.get_input_embeddings()]: RowwiseParallel()}
    if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        root_plan[names[model.get_output_embeddings()]] = ColwiseParallel()
    parallelize_module(model, tp, root_plan)
    experts: dict[int, list[nn.Module]] = {}
    for layer in model.model.layers:
        plan = {}
        for name, mod in layer.named_modules():
            leaf = name.rsplit(".", 1)[-1]
            if isinstance(mod, nn.Linear) and leaf in COLWISE:
                plan[name] = ColwiseParallel()
            elif isinstance(mod, nn.Linear) and leaf in ROWWISE:
                plan[name] = RowwiseParallel()
            elif any(p.ndim == 3 for p in mod.parameters(recurse=False)):
                _distribute_experts(mod, mesh["ep", "tp"])
                experts.setdefault(id(layer), []).append(mod)
        parallelize_module(layer, tp, plan)
    return experts


def _distribute_experts(mod: nn.Module, ep_tp: Any) -> None:
    for name, p in list(mod.named_parameters(recurse=False)):
        if name not in EXPERT_TP_DIM:
            raise NotImplementedError(f"expert parameter {name} {tuple(p.shape)} is not in the plan")
        placements = [Shard(0), Shard(EXPERT_TP_DIM[name])]
        setattr(mod, name, nn.Parameter(distribute_tensor(p.data, ep_tp, placements), p.requires_grad))


def _adamw_states(model: nn.Module) -> dict[str, tuple[int, int]]:
    """One real AdamW step on the meta DTensors (zero gradients with the params' placements)."""
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt = torch.optim.AdamW(model.parameters(), foreach=False)
    opt.step()
    return {n: (_local(opt.state[p]["exp_avg"]).numel(), _local(opt.state[p]["exp_avg_sq"]).numel())
            for n, p in model.named_parameters()}
