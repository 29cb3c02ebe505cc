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

Run ``python tests/execution/comm.py`` to print every table (markdown, ~10 s on CPU).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
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


# --------------------------------------------------------------------------------------------------
# tiny Llama-style model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinyConfig:
    """Widths divisible by T (heads and kv heads too: TP splits whole heads)."""

    vocab: int = 128
    d: int = 64  # hidden
    n_layers: int = 2
    n_heads: int = 8
    n_kv_heads: int = 4  # GQA
    ffn: int = 96  # intermediate
    b: int = 2  # micro-batch
    s: int = 16  # sequence
    dtype: torch.dtype = torch.float32

    @property
    def head_dim(self) -> int:
        return self.d // self.n_heads


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _rope(x, theta: float = 10000.0):
    """Rotate-half RoPE over positions 0..s-1 of x: (b, heads, s, hd)."""
    s, hd = x.shape[-2], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = torch.outer(torch.arange(s, dtype=torch.float32), inv)
    cos, sin = torch.cat([ang.cos()] * 2, -1).to(x.dtype), torch.cat([ang.sin()] * 2, -1).to(x.dtype)
    x1, x2 = x.chunk(2, -1)
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Attention(nn.Module):
    def __init__(self, c: TinyConfig) -> None:
        super().__init__()
        hd = c.head_dim
        self.hd = hd
        self.q_proj = nn.Linear(c.d, c.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(c.d, c.n_kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(c.d, c.n_kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(c.n_heads * hd, c.d, bias=False)
        self.cp_group: dist.ProcessGroup | None = None  # set by case_cp: ring attention over it

    def forward(self, x):
        b, s, _ = x.shape  # under TP the heads below are this rank's heads (-1)
        q = self.q_proj(x).view(b, s, -1, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, s, -1, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, s, -1, self.hd).transpose(1, 2)
        q, k = _rope(q), _rope(k)
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        if self.cp_group is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            o = RingAttention.apply(q, k, v, self.cp_group)
        return self.o_proj(o.transpose(1, 2).reshape(b, s, -1))


class MLP(nn.Module):
    def __init__(self, c: TinyConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(c.d, c.ffn, bias=False)
        self.up_proj = nn.Linear(c.d, c.ffn, bias=False)
        self.down_proj = nn.Linear(c.ffn, c.d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c: TinyConfig) -> None:
        super().__init__()
        self.input_layernorm, self.self_attn = RMSNorm(c.d), Attention(c)
        self.post_attention_layernorm, self.mlp = RMSNorm(c.d), MLP(c)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class TinyLlama(nn.Module):
    def __init__(self, c: TinyConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab, c.d)
        self.layers = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.d)
        self.lm_head = nn.Linear(c.d, c.vocab, bias=False)

    def forward(self, ids):
        h = self.embed_tokens(ids)
        for layer in self.layers:
            h = layer(h)
        return self.lm_head(self.norm(h))


def _tiny(c: TinyConfig) -> TinyLlama:
    torch.manual_seed(0)
    return TinyLlama(c).to(c.dtype)


def _hf_llama(c: TinyConfig) -> nn.Module:
    """Cross-check model: HF ``LlamaForCausalLM`` (untied) of the same widths, built locally (no hub)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=c.vocab, hidden_size=c.d, num_hidden_layers=c.n_layers,
                      num_attention_heads=c.n_heads, num_key_value_heads=c.n_kv_heads,
                      intermediate_size=c.ffn, tie_word_embeddings=False, attn_implementation="sdpa")
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(c.dtype)


def _batch(c: TinyConfig):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, c.vocab, (c.b, c.s), generator=g)
    return ids, torch.roll(ids, -1, 1)


def _step(model, ids, labels, mesh, loss_ctx=contextlib.nullcontext, opt_step: bool = False) -> list[CommRecord]:
    """Record one micro-batch: forward, token-mean cross-entropy (fp32 upcast), backward.

    ``opt_step``: also record a plain SGD step (phase "opt") -- not part of the counted step, but it
    shows collectives torch defers past backward (e.g. Partial gradients of replicated params).
    """
    with CommRecorder(model, mesh) as rec:
        with loss_ctx():
            logits = model(ids)
            logits = getattr(logits, "logits", logits)  # HF returns a ModelOutput
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(0, 1))
            loss.backward()
        if opt_step:
            rec.phase = "opt"
            torch.optim.SGD(model.parameters(), lr=1e-3, foreach=False).step()
    return rec.records


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


def case_tp(T: int = 2, seq_parallel: bool = False, loss_parallel: bool = False, c: TinyConfig = TinyConfig(),
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
              c: TinyConfig = TinyConfig(), hf: bool = False, opt_step: bool = False, raw: bool = False):
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
                 mixed_precision: bool = False, c: TinyConfig = TinyConfig(), opt_step: bool = False,
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


class RingAttention(torch.autograd.Function):
    """Causal attention over a CP group: torch's OWN ring attention
    (``torch.distributed.tensor.experimental._context_parallel._attention._templated_ring_attention``
    and ``_templated_ring_attention_backward``, what ``context_parallel()`` dispatches SDPA to), driven
    with the CPU flash kernels ``aten._scaled_dot_product_flash_attention_for_cpu[_backward]``.

    Why not ``context_parallel()`` itself: on CPU SDPA lowers to ``..._flash_attention_for_cpu``, which
    has neither a CP handler nor a DTensor sharding rule (NotImplementedError: "does not have a sharding
    strategy registered"); CP only handles the CUDA flash / efficient / cuDNN ops.  The collectives
    (issued by torch's rotaters, chosen by ``set_rotate_method``) do not depend on the kernel:
      forward  KV = cat(K, V) flattened; "allgather": ONE all-gather of KV;
               "alltoall": C-1 ring steps, each ``permute_tensor`` = all_to_all_single sending all of KV
               to rank+1;
      backward KV rotated again the same way, plus C ring steps of dKV (always all-to-all), in fp32
               (``_cp_options.convert_to_f32``).
    """

    @staticmethod
    def forward(ctx, q, k, v, group):
        from torch.distributed.tensor.experimental._context_parallel._attention import _templated_ring_attention

        out, lse = _templated_ring_attention(group, 2, torch.ops.aten._scaled_dot_product_flash_attention_for_cpu,
                                             q, k, v, is_causal=True)[:2]
        out = out.to(q.dtype)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.group = group
        return out

    @staticmethod
    def backward(ctx, dout):
        from torch.distributed.tensor.experimental._context_parallel._attention import (
            _templated_ring_attention_backward,
        )

        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _templated_ring_attention_backward(
            ctx.group, 2, torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward.default,
            grad_out=dout.contiguous(), grad_out_name="grad_out", query=q, key=k, value=v, out=out,
            logsumexp=lse, is_causal=True, dropout_p=0.0)[:3]
        return dq, dk, dv, None


def case_cp(C: int = 2, rotate: str = "allgather", c: TinyConfig = TinyConfig(), raw: bool = False):
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
