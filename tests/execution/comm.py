"""Count every collective (and its bytes, per rank) of ONE training step of a tiny real model.

One process plays global rank ``rank`` of a world of N ranks over torch's "fake" process group
(``FakeStore`` + backend "fake"): every collective returns at once and moves no data, so tensor
*values* after a collective are garbage but every *shape* and *dtype* is what a real rank sees.
The model is real (CPU tensors, not meta: FSDP2's forward refuses meta), so torch itself decides
which collectives to issue; nothing here predicts them.

Recording (:class:`CommRecorder`)
---------------------------------
A ``TorchDispatchMode`` sees every op below autograd.  It lets DTensor desugar its ops first
(returns ``NotImplemented`` for DTensor arguments) and records each collective op it then sees:

* functional collectives (DTensor redistribute, funcol autograd): ``_c10d_functional.*``
* eager c10d ops (``dist.all_reduce``, FSDP2's all-gather / reduce-scatter, ``batch_isend_irecv``):
  ``c10d.*``

Each record holds the phase ("fwd" unless autograd's engine is running: "bwd"; "opt" where a case
labels an optimizer step), the innermost module running (``ModTracker`` driven by per-module hooks that
run before the module's own pre-hooks and after its own post-hooks, so TP's input/output
redistributions count for the module they belong to; FQN relative to the root model, ``"-"`` =
outside every module, e.g. the loss), for FSDP2's collectives the FSDP group they serve
(``fsdp_group``: prefetching issues a group's all-gather while another module runs), the collective,
the group (mesh dim name when the mesh is given) and its size, the dtype, and the bytes of the input
and output tensors on this rank.

Per-rank payload convention (``CommRecord.bytes``)
---------------------------------------------------
  all_gather      bytes = gathered OUTPUT size      (in_bytes = this rank's shard = bytes / group)
  reduce_scatter  bytes = full INPUT size           (out_bytes = this rank's shard = bytes / group)
  all_reduce      bytes = tensor size               (in_bytes == out_bytes)
  all_to_all      bytes = INPUT size                (out_bytes = what this rank receives)
  broadcast       bytes = tensor size
  send / recv     bytes = the tensor sent / the buffer received into
These are sizes of the tensors handed to the collective, not wire traffic: a ring all-gather moves
(g-1)/g of ``bytes`` per rank, a ring all-reduce 2(g-1)/g, an all-to-all (g-1)/g of its input.

Model (:class:`TinyLlama`)
--------------------------
Own ~60-line Llama-style decoder (HF names: embed_tokens, layers.i.{input_layernorm, self_attn.
{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj}, norm, lm_head (untied)), no
biases, RMSNorm, RoPE, GQA, SwiGLU, causal SDPA.  Attention takes only ``x`` and builds RoPE from the
sequence length it sees.  HF's ``LlamaForCausalLM`` (same widths) serves as a cross-check where it
fits (``hf=True``: TP without SP, FSDP) and gives identical counts and bytes; with sequence
parallelism its decoder layers fight the styles (position_embeddings / masks are built at model
level from ``inputs_embeds.shape``, which SP shards to s/T).

Cases (each returns the summarized rows, see :func:`summarize`; ``raw=True`` gives the records)
-----
:func:`case_tp`      tensor parallel, torchtitan's Llama plan, with/without sequence parallel and
                     with/without loss parallel.
:func:`case_fsdp`    FSDP2 ``fully_shard`` per layer + root, reshard_after_forward True/None/False,
                     optional MixedPrecisionPolicy.
:func:`case_fsdp_tp` FSDP2 over "fsdp" × TP over "tp" (2-D mesh).
:func:`case_ep`      a tiny MoE layer, dispatch/combine by ``all_to_all_single`` with even splits.
:func:`case_cp`      context parallel attention (torch's ring attention, see its docstring).

The model and the cases live in ``comm_model.py`` and ``comm_cases.py``; from ``tests/`` run
``python -m execution.comm_cases`` to print every table (markdown, ~10 s on CPU).
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._tools.mod_tracker import ModTracker
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

# --------------------------------------------------------------------------------------------------
# fake world
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def fake_world(world_size: int, rank: int = 0) -> Iterator[None]:
    """Default process group over torch's fake backend (one process, no data moved); destroyed on exit."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        raise RuntimeError("a default process group is already initialized")
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


# --------------------------------------------------------------------------------------------------
# recorder
# --------------------------------------------------------------------------------------------------

_FC = torch.ops._c10d_functional
_C10D = torch.ops.c10d


def _resolve_group(pg_or_name: Any) -> dist.ProcessGroup:
    if isinstance(pg_or_name, str):  # functional collectives receive the group's name
        from torch.distributed.distributed_c10d import _resolve_process_group

        return _resolve_process_group(pg_or_name)
    if isinstance(pg_or_name, torch.ScriptObject):  # c10d ops receive the boxed group
        return dist.ProcessGroup.unbox(pg_or_name)
    return pg_or_name


# op packet -> (collective, index of input tensor(s), index of output tensor(s) or "ret", index of group)
# For functional ops the output is the op's return value ("ret").
_OPS: dict[Any, tuple[str, int, int | str, int]] = {
    _FC.all_reduce: ("all_reduce", 0, "ret", 2),
    _FC.all_reduce_: ("all_reduce", 0, "ret", 2),
    _FC.all_reduce_coalesced: ("all_reduce", 0, "ret", 2),
    _FC.all_reduce_coalesced_: ("all_reduce", 0, "ret", 2),
    _FC.all_gather_into_tensor: ("all_gather", 0, "ret", 2),
    _FC.all_gather_into_tensor_out: ("all_gather", 0, "ret", 2),
    _FC.all_gather_into_tensor_coalesced: ("all_gather", 0, "ret", 2),
    _FC.reduce_scatter_tensor: ("reduce_scatter", 0, "ret", 3),
    _FC.reduce_scatter_tensor_coalesced: ("reduce_scatter", 0, "ret", 3),
    _FC.all_to_all_single: ("all_to_all", 0, "ret", 3),
    _FC.broadcast: ("broadcast", 0, "ret", 2),
    _FC.broadcast_: ("broadcast", 0, "ret", 2),
    _C10D.allreduce_: ("all_reduce", 0, 0, 1),
    _C10D.allreduce_coalesced_: ("all_reduce", 0, 0, 1),
    _C10D._allgather_base_: ("all_gather", 1, 0, 2),
    _C10D.allgather_: ("all_gather", 1, 0, 2),
    _C10D.allgather_into_tensor_coalesced_: ("all_gather", 1, 0, 2),
    _C10D._reduce_scatter_base_: ("reduce_scatter", 1, 0, 2),
    _C10D.reduce_scatter_: ("reduce_scatter", 1, 0, 2),
    _C10D.reduce_scatter_tensor_coalesced_: ("reduce_scatter", 1, 0, 2),
    _C10D.alltoall_base_: ("all_to_all", 1, 0, 2),
    _C10D.alltoall_: ("all_to_all", 1, 0, 2),
    _C10D.broadcast_: ("broadcast", 0, 0, 1),
    _C10D.send: ("send", 0, 0, 1),
    _C10D.recv_: ("recv", 0, 0, 1),
    _C10D.recv_any_source_: ("recv", 0, 0, 1),
    _C10D.reduce_: ("reduce", 0, 0, 1),
    _C10D.gather_: ("gather", 1, 0, 2),
    _C10D.scatter_: ("scatter", 1, 0, 2),
}


def _tensors(x: Any) -> list[torch.Tensor]:
    return [t for t in tree_leaves(x) if isinstance(t, torch.Tensor)]


def _nbytes(ts: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in ts)


@dataclass(frozen=True)
class CommRecord:
    """One collective call as rank ``rank`` issues it."""

    phase: str  # "fwd" | "bwd"
    module: str  # innermost running module, FQN relative to the root ("-": none)
    collective: str  # all_reduce | all_gather | reduce_scatter | all_to_all | broadcast | send | recv
    op: str  # the torch op, e.g. "_c10d_functional.all_reduce" or "c10d._allgather_base_"
    group_size: int
    group: str  # mesh dim name ("tp", "fsdp", ...) when the recorder knows the mesh, "world", else c10d's name
    dtype: str  # e.g. "float32"; "a+b" if a coalesced call mixes dtypes
    in_bytes: int
    out_bytes: int
    in_shape: tuple  # shape of the (first) input tensor
    n_tensors: int = 1  # >1 for coalesced calls
    fsdp_group: str = ""  # FSDP2 only: FQN of the fully_shard module whose params/grads move ("<root>")

    @property
    def bytes(self) -> int:
        """Per-rank payload, see the module docstring: gathered output / full input / tensor size."""
        if self.collective in ("all_gather", "recv", "gather"):
            return self.out_bytes
        return self.in_bytes


class CommRecorder(TorchDispatchMode):
    """Records every collective issued inside the ``with`` block (forward and backward).

    ``root``: the model; with it, module attribution uses per-module hooks (recommended).
    ``mesh``: a DeviceMesh; its dims' names label the groups of the records.

    >>> with CommRecorder(model) as rec:
    ...     loss = model(x).sum(); loss.backward()
    >>> rec.records  # list[CommRecord]
    """

    def __init__(self, root: nn.Module | None = None, mesh: Any = None) -> None:
        super().__init__()
        self._group_labels: dict[str, str] = {}
        if mesh is not None:
            for i, name in enumerate(mesh.mesh_dim_names or range(mesh.ndim)):
                self._group_labels[mesh.get_group(i).group_name] = str(name)
        self.records: list[CommRecord] = []
        self.phase: str | None = None  # set e.g. to "opt" to label records outside fwd/bwd
        self._root = root
        self._handles: list[Any] = []
        self._tracker = ModTracker()
        self._seq: dict[str, int] = {}
        self._n = 0
        self._tracker.register_user_hooks(pre_fw_hook=self._mark, pre_bw_hook=self._mark)
        self._fsdp_owner: list[str] = []
        self._fsdp_patched: list[tuple[Any, str, Any]] = []

    def _patch_fsdp(self) -> None:
        """Label FSDP2's collectives with the group they serve (prefetching issues a group's all-gather
        while another module runs): wrap FSDPParamGroup.unshard / post_backward for the block."""
        try:
            from torch.distributed.fsdp._fully_shard._fsdp_param_group import FSDPParamGroup
        except ImportError:  # pragma: no cover
            return
        for name in ("unshard", "post_backward"):
            orig = getattr(FSDPParamGroup, name)

            def wrapped(group, *a, _orig=orig, **k):
                self._fsdp_owner.append(group._module_fqn or "<root>")
                try:
                    return _orig(group, *a, **k)
                finally:
                    self._fsdp_owner.pop()

            self._fsdp_patched.append((FSDPParamGroup, name, orig))
            setattr(FSDPParamGroup, name, wrapped)

    # which module runs: the deepest FQN among ModTracker.parents, the latest entered among equals
    def _mark(self, mod: nn.Module | None, *_: Any) -> None:
        if mod is None:
            return
        name = self._tracker.get_known_fqn(mod)
        if name is not None:
            self._n += 1
            self._seq[name] = self._n

    def _module(self) -> str:
        names = [n for n in self._tracker.parents if n != "Global"]
        if not names:
            return "-"
        name = max(names, key=lambda n: (n.count("."), self._seq.get(n, 0)))
        return name.split(".", 1)[1] if "." in name else "<root>"

    def __enter__(self) -> CommRecorder:
        if self._root is None:
            self._tracker.__enter__()  # global module hooks
        else:
            # Per-module hooks, so that collectives issued by the module's OWN hooks (TP's
            # input/output redistribution, FSDP2's all-gather) count for that module: our pre-hook runs
            # first (prepend), our post-hook last.  Global hooks (ModTracker's default) would run
            # before the module's own post-hooks and charge e.g. o_proj's output all-reduce to self_attn.
            t = self._tracker
            for m in self._root.modules():
                self._handles.append(m.register_forward_pre_hook(t._fw_pre_hook, prepend=True))
                self._handles.append(m.register_forward_hook(t._fw_post_hook, always_call=True))
        self._patch_fsdp()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        if self._root is None:
            self._tracker.__exit__(*exc)
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for cls, name, orig in reversed(self._fsdp_patched):
            setattr(cls, name, orig)
        self._fsdp_patched.clear()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        kwargs = kwargs or {}
        if isinstance(func, torch._ops.HigherOrderOperator):
            return func(*args, **kwargs)
        from torch.distributed.tensor import DTensor

        if any(issubclass(t, DTensor) for t in types):
            return NotImplemented  # let DTensor desugar into plain-tensor collectives first
        out = func(*args, **kwargs)
        spec = _OPS.get(func._overloadpacket)
        if spec is not None:
            self._record(func, spec, args, kwargs, out)
        return out

    def _record(self, func, spec, args, kwargs, out) -> None:
        collective, i_in, i_out, i_group = spec
        schema_args = func._schema.arguments
        full = list(args) + [kwargs.get(a.name) for a in schema_args[len(args):]]
        ins = _tensors(full[i_in])
        outs = _tensors(out) if i_out == "ret" else _tensors(full[i_out])
        dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in ins + outs})
        pg = _resolve_group(full[i_group])
        label = self._group_labels.get(pg.group_name)
        if label is None:
            label = "world" if pg.group_name == dist.group.WORLD.group_name else pg.group_name
        self.records.append(
            CommRecord(
                phase=self.phase or ("bwd" if self._tracker.is_bw else "fwd"),
                module=self._module(),
                collective=collective,
                op=str(func._overloadpacket._qualified_op_name).replace("::", "."),
                group_size=pg.size(),
                group=label,
                dtype="+".join(dtypes),
                in_bytes=_nbytes(ins),
                out_bytes=_nbytes(outs),
                in_shape=tuple(ins[0].shape) if ins else (),
                n_tensors=len(ins),
                fsdp_group=self._fsdp_owner[-1] if self._fsdp_owner else "",
            )
        )


def record(fn, *args: Any, root: nn.Module | None = None, **kwargs: Any) -> list[CommRecord]:
    """Run ``fn(*args, **kwargs)`` under a :class:`CommRecorder`; return its records."""
    with CommRecorder(root) as rec:
        fn(*args, **kwargs)
    return rec.records


# --------------------------------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------------------------------


class Row(NamedTuple):
    """Identical calls grouped: ``count`` calls of ``bytes`` each (per-rank payload, see docstring)."""

    phase: str
    module: str  # CommRecord.module, or "fsdp:<fsdp_group>" for FSDP2's collectives; "layers.<i>" -> "layers.*"
    collective: str
    count: int
    bytes: int  # per call
    dtype: str
    group: str  # "tp", "fsdp", "ep", "cp", "world", ...
    group_size: int
    in_bytes: int  # per call
    out_bytes: int  # per call
    in_shape: tuple


def _collapse(module: str) -> str:
    return re.sub(r"layers\.\d+", "layers.*", module)


def summarize(records: list[CommRecord], collapse_layers: bool = True) -> list[Row]:
    """Group identical calls, in order of first occurrence."""
    counts: Counter = Counter()
    for r in records:
        mod = f"fsdp:{r.fsdp_group}" if r.fsdp_group else r.module
        mod = _collapse(mod) if collapse_layers else mod
        counts[(r.phase, mod, r.collective, r.bytes, r.dtype, r.group, r.group_size, r.in_bytes, r.out_bytes,
                r.in_shape)] += 1
    return [Row(k[0], k[1], k[2], n, *k[3:]) for k, n in counts.items()]


def totals(rows: list[Row]) -> dict[tuple[str, str], tuple[int, int]]:
    """(phase, collective) -> (calls, bytes summed over calls)."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for r in rows:
        c, b = out.get((r.phase, r.collective), (0, 0))
        out[(r.phase, r.collective)] = (c + r.count, b + r.count * r.bytes)
    return out


def format_rows(rows: list[Row]) -> str:
    lines = [f"{'phase':5} {'module':34} {'collective':14} {'n':>3} {'bytes/call':>10} {'in':>9} {'out':>9}"
             f"  {'dtype':8} {'group':8} in_shape"]
    for r in rows:
        lines.append(f"{r.phase:5} {r.module:34} {r.collective:14} {r.count:3d} {r.bytes:10d} {r.in_bytes:9d} "
                     f"{r.out_bytes:9d}  {r.dtype:8} {r.group}={r.group_size:<3} {r.in_shape}")
    return "\n".join(lines)
