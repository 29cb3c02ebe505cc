"""Collective communication time [s]: ring and tree cost models (α latency per step, β = 1/bandwidth).

NCCL picks the faster algorithm; `collective_time` does the same between ring and tree for all-reduce.
"""

import math

from transformer_math.formulas._registry import formula


@formula(id="comm.all_reduce.ring", symbol="t_AR", unit="s", expr="2·(n - 1)·α + 2·(n - 1)/n·S / BW",
         source="ring all-reduce = reduce-scatter + all-gather, each n-1 steps of S/n bytes (Patarasuk & Yuan 2009)")
def all_reduce_ring(*, n: int, α: float, S: float, BW: float) -> float:
    return 2 * (n - 1) * α + 2 * (n - 1) / n * S / BW  # 0 for n = 1; works on arrays of n too


@formula(id="comm.all_reduce.tree", symbol="t_AR", unit="s", expr="2·log2(n)·α + 2·S / BW",
         source="double binary tree all-reduce (NCCL 2.4): log-depth latency, every byte up and down once")
def all_reduce_tree(*, n: int, α: float, S: float, BW: float) -> float:
    return 0.0 if n <= 1 else 2 * math.log2(n) * α + 2 * S / BW


@formula(id="comm.all_gather", symbol="t_AG", unit="s", expr="(n - 1)·α + (n - 1)/n·S / BW",
         source="ring all-gather (or reduce-scatter) of S bytes in total over n ranks")
def all_gather(*, n: int, α: float, S: float, BW: float) -> float:
    return (n - 1) * α + (n - 1) / n * S / BW


@formula(id="comm.all_to_all", symbol="t_A2A", unit="s", expr="(n - 1)·α + (n - 1)/n·S / BW",
         source="pairwise all-to-all: each rank keeps 1/n of its S bytes and sends the rest (MoE dispatch/combine)")
def all_to_all(*, n: int, α: float, S: float, BW: float) -> float:
    return (n - 1) * α + (n - 1) / n * S / BW


@formula(id="comm.p2p", symbol="t_p2p", unit="s", expr="α + S / BW",
         source="one point-to-point send (pipeline stage boundary)")
def p2p(*, α: float, S: float, BW: float) -> float:
    return α + S / BW
