"""Sanity tests of the collective-counting harness ``tests/execution/comm.py`` (torch's fake process group).

The harness records what torch issues; the closed forms asserted below are the ones read off its
tables (torch 2.13), with L layers, per-rank micro-batch (b, s), hidden d, vocab V, fp32 = 4 bytes.
"""

import contextlib
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from execution import comm, comm_cases, comm_model  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore")]

C = comm_model.TinyConfig()
L, ACT, LOGITS = C.n_layers, C.b * C.s * C.d * 4, C.b * C.s * C.vocab * 4


def _tot(rows, phase, coll):
    return comm.totals(rows).get((phase, coll), (0, 0))


# ---------------------------------------------------------------------------------------------- recorder


def test_manual_collectives_are_recorded_with_bytes():
    from torch.distributed import _functional_collectives as fc

    with comm.fake_world(4):
        x = torch.ones(8)  # 32 bytes
        with comm.CommRecorder() as rec:
            dist.all_reduce(x)
            dist.all_gather_into_tensor(torch.empty(32), x)
            dist.reduce_scatter_tensor(torch.empty(2), x)
            dist.all_to_all_single(torch.empty(8), x)
            dist.broadcast(x, 0)
            for w in dist.batch_isend_irecv([dist.P2POp(dist.isend, x, 1),
                                             dist.P2POp(dist.irecv, torch.empty(8, dtype=torch.bfloat16), 3)]):
                w.wait()
            fc.all_reduce(x, "sum", dist.group.WORLD).wait()
    assert not dist.is_initialized()
    got = [(r.collective, r.bytes, r.in_bytes, r.out_bytes, r.dtype) for r in rec.records]
    assert got == [
        ("all_reduce", 32, 32, 32, "float32"),
        ("all_gather", 128, 32, 128, "float32"),  # gathered output; input = shard
        ("reduce_scatter", 32, 32, 8, "float32"),  # full input; output = shard
        ("all_to_all", 32, 32, 32, "float32"),
        ("broadcast", 32, 32, 32, "float32"),
        ("send", 32, 32, 32, "float32"),
        ("recv", 16, 16, 16, "bfloat16"),
        ("all_reduce", 32, 32, 32, "float32"),  # functional collective
    ]
    assert {(r.phase, r.module, r.group, r.group_size) for r in rec.records} == {("fwd", "-", "world", 4)}


def test_phase_and_module_attribution():
    from torch.distributed._functional_collectives import all_to_all_single_autograd

    class A2A(torch.nn.Module):
        def forward(self, x):
            return all_to_all_single_autograd(x, [2, 2], [2, 2], dist.group.WORLD)

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), A2A())
    with comm.fake_world(2):
        with comm.CommRecorder(model) as rec:
            model(torch.randn(4, 4)).sum().backward()
    assert [(r.phase, r.module, r.collective, r.bytes) for r in rec.records] == [
        ("fwd", "1", "all_to_all", 64), ("bwd", "1", "all_to_all", 64)]


@pytest.mark.parametrize("build", ["tp_sp_lp", "fsdp"])
def test_counts_agree_with_comm_debug_mode(build):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.debug import CommDebugMode
    from torch.distributed.tensor.parallel import loss_parallel, parallelize_module

    with comm.fake_world(2):
        mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("x",))
        model = comm_model._tiny(C)
        ctx = loss_parallel if build == "tp_sp_lp" else contextlib.nullcontext
        if build == "tp_sp_lp":
            parallelize_module(model, mesh, comm_cases.tp_plan(True, True, L))
        else:
            comm_cases._fully_shard_llama(model, mesh, True, False)
        with CommDebugMode() as cdm:
            records = comm_model._step(model, *comm_model._batch(C), mesh, ctx)
    kinds = {"all_reduce": 0, "all_gather": 0, "reduce_scatter": 0}
    for op, n in cdm.get_comm_counts().items():
        name = str(op).replace("allreduce", "all_reduce").replace("allgather", "all_gather")
        kinds[next(k for k in kinds if k in name)] += n
    mine = {k: sum(r.collective == k for r in records) for k in kinds}
    assert mine == kinds and sum(kinds.values()) > 0


def test_markdown_lines_up_sizes():
    res = {"A": comm_cases.case_ep(2, s=16), "B": comm_cases.case_ep(2, s=32)}
    md = comm_cases.markdown(res)
    assert "| fwd | <root> | all_to_all | float32 | ep=2 | 2 | 16384 | 32768 |" in md


# ---------------------------------------------------------------------------------------------- cases


def test_tp_without_sequence_parallel():
    rows = comm_cases.case_tp(2)
    assert _tot(rows, "fwd", "all_reduce") == (2 * L + 1, (2 * L + 1) * ACT)  # embed + o_proj + down_proj
    assert _tot(rows, "fwd", "all_gather") == (1, LOGITS)  # lm_head output gathered
    assert _tot(rows, "bwd", "all_reduce") == (5 * L + 1, (5 * L + 1) * ACT)  # q,k,v,gate,up + lm_head input
    rows = comm_cases.case_tp(2, prepare_input=True)  # one shared input per attention / MLP
    assert _tot(rows, "bwd", "all_reduce") == (2 * L + 1, (2 * L + 1) * ACT)
    rows = comm_cases.case_tp(4, loss_parallel=True)
    assert _tot(rows, "fwd", "all_gather") == (0, 0)
    assert _tot(rows, "fwd", "all_reduce") == (2 * L + 4, (2 * L + 1) * ACT + 3 * C.b * C.s * 4)


def test_tp_with_sequence_parallel():
    rows = comm_cases.case_tp(2, seq_parallel=True, opt_step=True)
    assert _tot(rows, "fwd", "reduce_scatter") == (2 * L + 1, (2 * L + 1) * ACT)
    assert _tot(rows, "fwd", "all_gather") == (2 * L + 2, (2 * L + 1) * ACT + LOGITS)
    assert _tot(rows, "bwd", "all_gather") == (2 * L + 1, (2 * L + 1) * ACT)
    assert _tot(rows, "bwd", "reduce_scatter") == (2 * L + 1, (2 * L + 1) * ACT)
    assert _tot(rows, "bwd", "all_reduce") == (0, 0)
    assert _tot(rows, "opt", "all_reduce") == (2 * L + 1, (2 * L + 1) * C.d * 4)  # Partial norm-weight grads


def _param_numels(c):
    m = comm_model._tiny(c)
    layer = sum(p.numel() for p in m.layers[0].parameters())
    return layer, sum(p.numel() for p in m.parameters()) - L * layer


@pytest.mark.parametrize("raf", [True, None, False])
def test_fsdp(raf):
    layer, root = _param_numels(C)  # F=4 divides every dim 0: no padding
    rows = comm_cases.case_fsdp(4, raf)
    assert _tot(rows, "fwd", "all_gather") == (L + 1, 4 * (L * layer + root))
    regather = {True: (L + 1, 4 * (L * layer + root)), None: (L, 4 * L * layer), False: (0, 0)}[raf]
    assert _tot(rows, "bwd", "all_gather") == regather
    assert _tot(rows, "bwd", "reduce_scatter") == (L + 1, 4 * (L * layer + root))
    assert {r.group for r in rows} == {"fsdp"}


def test_fsdp_mixed_precision_dtypes():
    rows = comm_cases.case_fsdp(4, True, mixed_precision=True)
    assert {r.dtype for r in rows if r.collective == "all_gather"} == {"bfloat16"}
    assert {r.dtype for r in rows if r.collective == "reduce_scatter"} == {"float32"}


def test_fsdp_tp():
    rows = comm_cases.case_fsdp_tp(2, 2, seq_parallel=True)
    assert {(r.collective, r.group) for r in rows if r.module.startswith("fsdp:")} >= {
        ("all_gather", "fsdp"), ("reduce_scatter", "fsdp"), ("all_reduce", "tp")}
    norm_ar = [r for r in rows if r.phase == "bwd" and r.collective == "all_reduce"]
    assert sum(r.count for r in norm_ar) == 2 * L + 1 and {r.bytes for r in norm_ar} == {C.d * 4}


@pytest.mark.parametrize("E_p", [2, 4])
def test_ep(E_p):
    rows = comm_cases.case_ep(E_p, n_experts=4, top_k=2, d=64, b=2, s=16)
    assert _tot(rows, "fwd", "all_to_all") == (2, 2 * 2 * 16 * 2 * 64 * 4)  # dispatch + combine of b·s·k·d
    assert _tot(rows, "bwd", "all_to_all") == (2, 2 * 2 * 16 * 2 * 64 * 4)


@pytest.mark.parametrize("cp", [2, 4])
def test_cp(cp):
    kv = 2 * C.b * C.n_heads * (C.s // cp) * C.head_dim * 4  # K and V of this rank, after repeat_kv
    rows = comm_cases.case_cp(cp, "allgather")
    assert _tot(rows, "fwd", "all_gather") == (L, L * cp * kv)
    assert _tot(rows, "bwd", "all_gather") == (L, L * cp * kv)
    assert _tot(rows, "bwd", "all_to_all") == (cp * L, cp * L * kv)  # dKV ring (fp32 here anyway)
    rows = comm_cases.case_cp(cp, "alltoall")
    assert _tot(rows, "fwd", "all_to_all") == ((cp - 1) * L, (cp - 1) * L * kv)
    assert _tot(rows, "bwd", "all_to_all") == ((2 * cp - 1) * L, (2 * cp - 1) * L * kv)
