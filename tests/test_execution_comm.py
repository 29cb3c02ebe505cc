"""Collectives per training step equal analysis/collectives.py exactly: counts and bytes, by execution.

A tiny Llama-style model runs one forward + backward over a fake process group with torch's own TP, SP,
FSDP2 and ring attention, and an MoE layer dispatches with all_to_all; every collective is recorded with
its bytes (tests/execution/comm.py, comm_cases.py). The formulas are in symbols, so small widths test them.
"""

from collections import Counter

import pytest

from transformer_math.analysis import collectives as col
from transformer_math.analysis.sharding import Mesh, fsdp_units
from transformer_math.config.spec import LayerSpec, ModelSpec

pytestmark = pytest.mark.torch


def _measured(rows, groups=None):
    """(phase, collective) → Counter of bytes per call → calls; optimizer-step collectives count as backward."""
    out: dict[tuple[str, str], Counter] = {}
    for r in rows:
        if groups and r.group not in groups:
            continue
        phase = "bwd" if r.phase == "opt" else r.phase
        out.setdefault((phase, r.collective), Counter())[r.bytes] += r.count
    return out


def _predicted(entries):
    out: dict[tuple[str, str], Counter] = {}
    for e in entries:
        if e.count:
            out.setdefault((e.phase, e.kind), Counter())[int(e.bytes)] += int(e.count)
    return out


def _tiny_spec(c):
    return ModelSpec(name="tiny", family="llama", n_layers=c.n_layers, d_model=c.d, n_heads=c.n_heads,
                     n_kv_heads=c.n_kv_heads, head_dim=c.head_dim, vocab_size=c.vocab, max_context=4096,
                     layers=tuple(LayerSpec(d_ff=c.ffn) for _ in range(c.n_layers)))


def _tp(c, *, sp, n_norms):
    tok, b_a = c.b * c.s, 4  # fp32 model
    return col.tensor_parallel(n_L=c.n_layers, first=1, last=1, sp=sp, full=0, S=tok * c.d * b_a, S_loss=tok * 4,
                               n_norms=n_norms, b_norm=c.d * 4)


@pytest.mark.parametrize("T", [2, 4])
@pytest.mark.parametrize("sp", [False, True])
@pytest.mark.parametrize("size", [{}, {"s": 32}, {"d": 128}])
def test_tensor_parallel(T, sp, size):
    from execution.comm_cases import TinyConfig, case_tp

    c = TinyConfig(**size)
    rows = case_tp(T=T, seq_parallel=sp, loss_parallel=True, prepare_input=True, opt_step=sp, c=c)
    assert _measured(rows) == _predicted(_tp(c, sp=sp, n_norms=2 * c.n_layers + 1))


@pytest.mark.parametrize("size", [{}, {"d": 128}])
def test_fsdp(size):
    """FSDP2 with torch's default resharding: layers gathered again in the backward, the root kept."""
    from execution.comm_cases import TinyConfig, case_fsdp

    c = TinyConfig(**size)
    F = 4
    units = fsdp_units(_tiny_spec(c), Mesh(fsdp=F))
    entries = col.data_parallel(zero=3, m=1, F=F, F_e=F, P_layers=units["layers"], P_experts=0, P_root=units["root"],
                                n_L=c.n_layers, n_moe=0, b_w=4, b_g=4)
    assert _measured(case_fsdp(F_=F, reshard_after_forward=None, c=c)) == _predicted(entries)


def test_fsdp_with_tensor_and_sequence_parallel():
    from execution.comm_cases import TinyConfig, case_fsdp_tp

    c, F, T = TinyConfig(), 2, 2
    rows = case_fsdp_tp(F_=F, T=T, seq_parallel=True, reshard_after_forward=None, c=c)
    units = fsdp_units(_tiny_spec(c), Mesh(tp=T, fsdp=F))
    dp = col.data_parallel(zero=3, m=1, F=F, F_e=F, P_layers=units["layers"], P_experts=0, P_root=units["root"],
                           n_L=c.n_layers, n_moe=0, b_w=4, b_g=4)
    tp = col.tensor_parallel(n_L=c.n_layers, first=1, last=1, sp=True, full=0, S=c.b * c.s * c.d * 4, S_loss=0,
                             n_norms=2 * c.n_layers + 1, b_norm=c.d * 4)
    tp = [e for e in tp if "loss" not in e.note]  # this case gathers the logits instead of a loss-parallel CE
    assert _measured(rows, {"fsdp"}) == _predicted(dp)
    measured_tp = _measured(rows, {"tp"})
    logits = measured_tp[("fwd", "all_gather")]
    logits[c.b * c.s * c.vocab * 4] -= 1  # the gathered logits (b·s·V) of the non-loss-parallel head
    assert +logits + Counter() == _predicted(tp)[("fwd", "all_gather")]
    assert {k: v for k, v in measured_tp.items() if k != ("fwd", "all_gather")} == {
        k: v for k, v in _predicted(tp).items() if k != ("fwd", "all_gather")}


@pytest.mark.parametrize("E_p", [2, 4])
@pytest.mark.parametrize("size", [{}, {"s": 32}, {"d": 128}])
def test_expert_parallel(E_p, size):
    from execution.comm_cases import case_ep

    kw = {"b": 2, "s": 16, "d": 64, "top_k": 2} | size
    rows = case_ep(E_p=E_p, **kw)
    S = kw["b"] * kw["s"] * kw["top_k"] * kw["d"] * 4
    assert _measured(rows) == _predicted(col.expert_parallel(n_moe=1, E_p=E_p, full=0, S_tok=S))


@pytest.mark.parametrize("C", [2, 4])
@pytest.mark.parametrize("size", [{}, {"s": 32}])
def test_context_parallel_ring(C, size):
    """torch's ring attention (rotate 'allgather'): K/V gathered forward and backward, dK/dV passed C times."""
    from execution.comm_cases import TinyConfig, case_cp

    c = TinyConfig(**size)
    KV = 2 * c.b * c.n_heads * (c.s // C) * c.head_dim * 4  # K and V at the heads reaching the kernel, fp32
    entries = col.context_parallel(n_L=c.n_layers, C_p=C, full=0, KV=KV, dKV=KV)
    assert _measured(case_cp(C=C, c=c)) == _predicted(entries)
