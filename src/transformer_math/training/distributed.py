"""Data-parallel (DDP, FSDP2) and tensor-parallel training of the reference models under torchrun.

    torchrun --nproc-per-node 2 -m transformer_math.training.distributed \\
        --model '{"model_type": "llama", "vocab_size": 67, ...}' --mode fsdp2 --steps 4 \\
        --train '{"lr": 3e-3, "micro_batch": 4, "seq_len": 12}' --out DIR

    setup()                   → Context: init_process_group from torchrun's env (gloo on CPU, nccl on CUDA)
    wrap(model, mode, ctx)    → the model under DDP, FSDP2 (fully_shard per Block, then the root) or TP
    run(spec, cfg, run, ctx)  → per-step losses (averaged over ranks) and per-rank bytes; main(argv) writes them

The global batch: TrainConfig.micro_batch (b) sequences per micro-batch over ALL ranks, n_micro micro-batches per
step, drawn by TokenBatches(V, b, T, seed) — the very batches a single-process Trainer with the same TrainConfig
reads. Every rank draws the whole global micro-batch and keeps rows [r·b/W, (r+1)·b/W) (data parallel), or all of
them (tensor parallel: the ranks split the weights, not the data). Drawing the whole batch costs nothing at these
sizes and gives every rank the global target count N without a collective.

Loss normalization (why the data-parallel gradient equals the full-batch gradient): DDP all-reduces and FSDP2
reduce-scatters gradients with an AVERAGE over the W ranks. Each rank backpropagates W·Σ_{t∈rank r} ℓ_t / N
(loop.accumulate_gradients with n_tokens = N, ce_scale = W), so the average is
(1/W)·Σ_r W·Σℓ_r/N = Σ_all ℓ_t / N = the full batch's mean loss — exactly, whatever each rank's own target count
(SFT masks make them unequal); with equal counts it is the same as each rank's local mean. MoE aux losses are a
mean over a rank's micro-batches and then over ranks, as for micro-batches in one process (not the full batch's
f·m, which is no sum of parts).

Outputs of main(): DIR/result.json (rank 0: config, losses per step, per-rank bytes, predictions) and
DIR/model.rank{r}.safetensors (each rank: the full fp32 state dict, gathered from shards under FSDP2/TP) so that
ranks and runs can be compared tensor by tensor.

Tensor parallelism ("tp") on a Block: ColwiseParallel on attention q/k/v and MLP up/gate, RowwiseParallel on
attention o and MLP down (Megatron's split; one all-reduce after o and one after down in the forward, one per
column-parallel input in the backward); the attention's head counts become the local ones. Embedding, norms and
the LM head stay replicated plain tensors. Only the plain Attention (not MLA, linear attention) and the dense MLP
are split; heads and d_ff must divide by W.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn

from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError, check_int
from transformer_math.training.config import TrainConfig, sym
from transformer_math.training.loop import Batch, StepLog, TokenBatches, train_step
from transformer_math.training.losses import count_targets
from transformer_math.training.optim import build_optimizer, build_scheduler

MODES = ("ddp", "fsdp2", "tp")
TP_COLWISE = ("attn.q", "attn.k", "attn.v", "mlp.up", "mlp.gate")  # Block-relative module names (reference/)
TP_ROWWISE = ("attn.o", "mlp.down")


@dataclass(frozen=True, kw_only=True, slots=True)
class DistributedRun:
    """How one distributed run trains: the parallel mode and the number of optimizer steps. Validated once."""

    mode: str = field(default="ddp", metadata=sym("-", "-", "ddp | fsdp2 | tp (tensor parallel over all ranks)"))
    steps: int = field(default=4, metadata=sym("S_run", "steps", "optimizer steps to take"))

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TmathError("mode", self.mode, f"one of {', '.join(MODES)}")
        check_int("steps", self.steps, low=1, high=10**6)


class Context(NamedTuple):
    """This process's place: global rank r, world size W, its device and the process group's backend."""

    rank: int
    world: int
    device: torch.device
    backend: str


def backend_for(device: torch.device) -> str:
    """nccl for CUDA devices, gloo for the CPU (the only backends torch ships for each)."""
    return "nccl" if device.type == "cuda" else "gloo"


def setup() -> Context:
    """init_process_group from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT; LOCAL_RANK picks the
    GPU). Uses CUDA when it is available, else the CPU; no CUDA call runs on the CPU path."""
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend_for(device), device_id=device if device.type == "cuda" else None)
    return Context(dist.get_rank(), dist.get_world_size(), device, backend_for(device))


def wrap(model: nn.Module, mode: str, ctx: Context) -> nn.Module:
    """The model (already on ctx.device, same initial weights on every rank) under DDP, FSDP2 or TP.

    ddp:   DistributedDataParallel; rank 0's weights are broadcast at construction.
    fsdp2: fully_shard on each Block, then on the root (embedding, final norm, LM head): every parameter becomes
           a DTensor sharded on dim 0 over the W ranks; each Block is all-gathered for its forward and backward.
           fully_shard shards each rank's own full tensor: the ranks must start from the same weights (seeded).
    tp:    parallelize_module per Block (module docstring); every rank holds 1/W of those matrices.
    """
    if mode not in MODES:
        raise TmathError("mode", mode, f"one of {', '.join(MODES)}")
    from torch.distributed.device_mesh import init_device_mesh

    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    mesh = init_device_mesh(ctx.device.type, (ctx.world,))
    if mode == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for block in _blocks(model):
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    for block in _blocks(model):
        attn = block.get_submodule("attn")
        h_q, h_kv = getattr(attn, "h_q", None), getattr(attn, "h_kv", None)
        for name, n in (("h_q", h_q), ("h_kv", h_kv)):
            if not isinstance(n, int) or n % ctx.world:
                raise TmathError(f"attention.{name}", n, f"a head count divisible by W = {ctx.world} (plain "
                                                           f"attention only)")
        linears = {n: lin for n in TP_COLWISE + TP_ROWWISE if (lin := _linear(block, n)) is not None}
        for n, lin in linears.items():
            # RowwiseParallel rebuilds its input DTensor from the local shards assuming equal sizes, so an uneven
            # split (d_ff = 45 over 2) fails in the next matmul: require W | d_ff (and W | h·d_h)
            width = lin.out_features if n in TP_COLWISE else lin.in_features
            if width % ctx.world:
                raise TmathError(n, width, f"a width divisible by W = {ctx.world} (tensor parallel)")
        plan: dict[str, Any] = {n: ColwiseParallel() if n in TP_COLWISE else RowwiseParallel() for n in linears}
        parallelize_module(block, mesh, plan)
        # the forward reshapes q/k/v by head count: under TP each rank computes h/W of the heads
        assert isinstance(h_q, int) and isinstance(h_kv, int)  # checked above
        setattr(attn, "h_q", h_q // ctx.world)  # noqa: B010
        setattr(attn, "h_kv", h_kv // ctx.world)  # noqa: B010
    return model


def _blocks(model: nn.Module) -> list[nn.Module]:
    layers = getattr(model, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise TmathError("model", type(model).__name__, "a decoder reference Model (with .layers)")
    return list(layers)


def _linear(block: nn.Module, name: str) -> nn.Linear | None:
    try:
        found = block.get_submodule(name)
    except AttributeError:  # no gate in a plain (n_up = 1) MLP; MLA and MoE have other names
        return None
    return found if isinstance(found, nn.Linear) else None


def unwrap(model: nn.Module) -> nn.Module:
    """The reference Model inside a DDP wrapper (FSDP2 and TP change the model in place)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) and type(model).__name__ == "DistributedDataParallel" else model


def rank_rows(batch: Batch, rank: int, world: int) -> Batch:
    """Rows [r·b/W, (r+1)·b/W) of a global micro-batch: rank r's slice (b divisible by W, checked by run)."""
    b = batch.ids_BT.shape[0] // world
    return Batch(batch.ids_BT[rank * b:(rank + 1) * b], batch.labels_BT[rank * b:(rank + 1) * b])


def grad_sync(model: nn.Module, mode: str) -> Callable[[bool], AbstractContextManager[object]] | None:
    """sync(is_last) for accumulate_gradients: reduce gradients only on the last micro-batch of a step.
    DDP: no_sync() before it; FSDP2: set_requires_gradient_sync(False) keeps unsharded gradients until then.
    TP: None (its collectives are part of the forward and backward, not a gradient reduction)."""
    if mode == "ddp":
        no_sync: Callable[[], AbstractContextManager[object]] = getattr(model, "no_sync")  # noqa: B009
        return lambda last: nullcontext() if last else no_sync()
    if mode == "fsdp2":
        set_sync: Callable[[bool], None] = getattr(model, "set_requires_gradient_sync")  # noqa: B009

        @contextmanager
        def fsdp_sync(last: bool) -> Iterator[None]:
            set_sync(last)
            yield

        return fsdp_sync
    return None


def fsdp2_shard_elements(shape: Sequence[int], *, world: int, rank: int) -> tuple[int, int]:
    """(n_r, n_pad): elements of one parameter on rank r under FSDP2 — the local shard and its padded storage.

        c = ⌈n_0/W⌉;  n_r = max(0, min(c, n_0 − r·c))·Π_{i≥1} n_i;   n_pad = c·Π_{i≥1} n_i
    Units: elements. Source: torch/distributed/fsdp/_fully_shard/_fsdp_param.py, FSDPParam._init_sharded_param:
    `chunks = _chunk_with_empty(param_data, shard_world_size, dim=0)` (torch.chunk, then empty chunks for the
    missing ranks) gives the local shard (what p.to_local() holds); `padded_sharded_size = chunks[0].size()`
    (every rank's storage is rank 0's chunk, zero-padded) gives n_pad. Same as formulas.parallel.shard_rows.
    """
    rest = math.prod(shape[1:])
    c = -(-shape[0] // world)
    return max(0, min(c, shape[0] - rank * c)) * rest, c * rest


def fsdp2_rank_bytes(shapes: Sequence[Sequence[int]], *, world: int, rank: int, element_size: int = 4
                     ) -> tuple[int, int]:
    """(M_r, M_pad) bytes: Σ over parameters of fsdp2_shard_elements·b (b bytes per element, 4 for fp32)."""
    local = padded = 0
    for shape in shapes:
        n_r, n_pad = fsdp2_shard_elements(shape, world=world, rank=rank)
        local, padded = local + n_r * element_size, padded + n_pad * element_size
    return local, padded


def _local(t: Tensor) -> Tensor:
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def _full(t: Tensor) -> Tensor:
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t  # a collective: every rank calls it in the same order


def rank_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """What this rank holds, in bytes: parameters (local shards; FSDP2's padded storage), the gradients left by
    the last step (FSDP2: reduce-scattered shards) and AdamW's states (the moments exp_avg, exp_avg_sq — shaped
    like the local shards — and the 0-d step counters)."""
    params = list({id(p): p for p in model.parameters()}.values())  # a tied matrix once
    out = {"params": sum(_local(p).numel() * p.element_size() for p in params),
           "params_storage": sum(_local(p).untyped_storage().nbytes() for p in params),
           "grads": sum(_local(p.grad).numel() * p.grad.element_size() for p in params if p.grad is not None),
           "adam_moments": 0, "adam_step": 0}
    for state in optimizer.state.values():
        for name, t in state.items():
            if torch.is_tensor(t):
                key = "adam_step" if name == "step" else "adam_moments"
                out[key] += _local(t).numel() * t.element_size()
    return out


def full_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Every tensor of the model's state dict, whole (shards gathered), on the CPU, as independent copies."""
    return {k: _full(v).detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}


def _implicit_replication() -> AbstractContextManager[object]:
    """TP leaves embedding, norms and LM head plain tensors; the gradient norm (clip_grad_norm_) over a list mixing
    them with DTensors refuses, unless plain tensors count as replicated DTensors (their gradients are equal on
    every rank: the row-parallel all-reduces make every activation and its gradient replicated)."""
    from torch.distributed.tensor.experimental import implicit_replication

    return implicit_replication()


def _mean_over_ranks(entry: StepLog, ctx: Context, mode: str) -> StepLog:
    """The step's loss parts averaged over the ranks (data parallel: each rank logged W·Σℓ_r/N, their mean is the
    global mean); lr and the gradient norm (of the reduced gradient) are the same on every rank."""
    if mode == "tp":
        return entry
    parts_4 = torch.tensor([entry.loss, entry.ce, entry.load_balance, entry.router_z], dtype=torch.float64,
                           device=ctx.device)
    dist.all_reduce(parts_4)  # SUM: gloo has no AVG
    loss, ce, lb, rz = (float(x) / ctx.world for x in parts_4.cpu())
    return entry._replace(loss=loss, ce=ce, load_balance=lb, router_z=rz)


def run(spec: ModelSpec, cfg: TrainConfig, how: DistributedRun, ctx: Context) -> tuple[dict[str, Any], nn.Module]:
    """Train how.steps steps of `spec` under how.mode; returns (this rank's result, the wrapped model).

    The result: losses per step (StepLog fields, mean over ranks), this rank's bytes (rank_bytes) and the
    FSDP2 prediction for this rank (fsdp2_rank_bytes of the unsharded parameter shapes).
    """
    from transformer_math.reference import build

    data_parallel = how.mode != "tp"
    if data_parallel and cfg.micro_batch % ctx.world:
        raise TmathError("micro_batch", cfg.micro_batch, f"a global micro-batch divisible by W = {ctx.world}")
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank, and as build_trainer's
    base: nn.Module = build(spec).to(ctx.device)
    shapes = [tuple(p.shape) for p in {id(p): p for p in base.parameters()}.values()]
    model = wrap(base.train(), how.mode, ctx)
    optimizer = build_optimizer(model, cfg)  # after wrapping: FSDP2/TP replace the parameters by DTensors
    scheduler = build_scheduler(optimizer, cfg)
    data = TokenBatches(vocab_size=spec.vocab_size, batch=cfg.micro_batch, seq_len=cfg.seq_len, seed=cfg.seed)
    sync = grad_sync(model, how.mode)
    logs = []
    for step in range(how.steps):
        global_batches = [data(step * cfg.n_micro + j) for j in range(cfg.n_micro)]
        n_tokens = sum(count_targets(b.labels_BT) for b in global_batches)  # N: the global step's targets
        mine = [rank_rows(b, ctx.rank, ctx.world) if data_parallel else b for b in global_batches]
        mine = [Batch(b.ids_BT.to(ctx.device), b.labels_BT.to(ctx.device)) for b in mine]
        with nullcontext() if data_parallel else _implicit_replication():
            entry = train_step(model, optimizer, scheduler, mine, cfg, step=step,
                               n_tokens=n_tokens if data_parallel else None,
                               ce_scale=float(ctx.world) if data_parallel else 1.0, sync=sync)
        logs.append(_mean_over_ranks(entry, ctx, how.mode)._asdict())
    predicted, predicted_padded = fsdp2_rank_bytes(shapes, world=ctx.world, rank=ctx.rank)
    result = {"rank": ctx.rank, "bytes": rank_bytes(model, optimizer),
              "fsdp2_predicted": {"params": predicted, "params_storage": predicted_padded}, "logs": logs}
    return result, model


def main(argv: Sequence[str] | None = None) -> int:
    """CLI (module docstring). Every rank writes DIR/model.rank{r}.safetensors; rank 0 writes DIR/result.json."""
    import transformer_math as tm

    parser = argparse.ArgumentParser(prog="python -m transformer_math.training.distributed",
                                     description="Train a reference model under torchrun with DDP, FSDP2 or TP.")
    parser.add_argument("--model", required=True,
                        help="a config as JSON text ({...}), or a preset name / config.json path for tm.load_model")
    parser.add_argument("--mode", default="ddp", help=f"one of {', '.join(MODES)}")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--train", default="{}", help="TrainConfig fields as JSON text or a JSON file path")
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args(argv)
    spec = tm.load_model(json.loads(args.model) if args.model.lstrip().startswith("{") else args.model)
    cfg = TrainConfig(**_json_arg(args.train))
    how = DistributedRun(mode=args.mode, steps=args.steps)
    ctx = setup()
    try:
        result, model = run(spec, cfg, how, ctx)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        state = full_state_dict(model)
        from safetensors.torch import save_file

        save_file(state, str(out / f"model.rank{ctx.rank}.safetensors"))
        result["checksum"] = float(sum(t.double().sum() for t in state.values()))
        gathered: list[Any] = [None] * ctx.world
        dist.all_gather_object(gathered, result)
        if ctx.rank == 0:
            summary = {"mode": how.mode, "world": ctx.world, "backend": ctx.backend, "device": str(ctx.device),
                       "steps": how.steps, "train": asdict(cfg), "losses": [e["loss"] for e in result["logs"]],
                       "logs": result["logs"], "ranks": [{k: v for k, v in r.items() if k != "logs"}
                                                         for r in gathered]}
            (out / "result.json").write_text(json.dumps(summary, indent=1))
        dist.barrier()  # no rank tears its connections down while another still talks to it
    finally:
        dist.destroy_process_group()
    return 0


def _json_arg(text: str) -> dict[str, Any]:
    value = json.loads(Path(text).read_text() if not text.lstrip().startswith("{") else text)
    if not isinstance(value, dict):
        raise TmathError("train", text, "a JSON object of TrainConfig fields")
    return value


if __name__ == "__main__":
    sys.exit(main())
