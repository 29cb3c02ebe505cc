"""Parallel layouts (T_p, P_p, D_p, C_p, E_p; docs/conventions.md, Names): shards, pipeline schedules,
activations per GPU.

Written with arithmetic only (no branches on values), so the layout search can pass numpy arrays of layouts
where the explained plan passes numbers: one definition for both.
"""

from transformer_math.formulas._registry import ceil, formula, maximum, minimum

_SHARD = ("torch.chunk / DTensor Shard(dim) and FSDP2 dim-0 sharding: a dimension of n split over k ranks gives "
          "⌈n/k⌉ to the first ranks and fewer (or none) to the last; nested splits of one dimension compose "
          "(⌈⌈n/a⌉/b⌉ = ⌈n/(a·b)⌉ on rank 0)")


@formula(id="parallel.shard", symbol="n_r", unit="elements", expr="max(0, min(⌈n/k⌉, n − r·⌈n/k⌉))", source=_SHARD)
def shard_rows(*, n: int, k: int, r: int) -> int:
    c = -(-n // k)
    return max(0, min(c, n - r * c))


@formula(id="parallel.tensor_elements", symbol="n_local", unit="parameters",
         expr="c·⌈n_0/k_0⌉·⌈n_1/k_1⌉·⌈n_2/k_2⌉",
         source=_SHARD + "; rank 0 holds the largest shard of every tensor, so its sum is the peak over ranks. "
                         "k_i is the product of the degrees that split dimension i (TP, EP, FSDP)")
def tensor_elements(*, c: int, n_0: int, k_0: int, n_1: int, k_1: int, n_2: int, k_2: int) -> int:
    return c * -(-n_0 // k_0) * -(-n_1 // k_1) * -(-n_2 // k_2)


@formula(id="parallel.stage_layers", symbol="n_stage", unit="layers",
         expr="N_L/P_p when P_p divides N_L; else ⌊(N_L + 2)/P_p⌋ + 1_(i < (N_L + 2) mod P_p) − 1_(i = 0) − 1_(i = P_p "
              "− 1)",
         source="Megatron-LM splits the layers evenly over the stages; when they do not divide, torchtitan's split "
                "(generate_llm_fqn_per_model_part, input and output weight 1) counts the embedding and the LM head as "
                "a layer each, so the first and last stages hold fewer (Llama 3 405B §3.3.2: 7 + 14·8 + 7 = 126)")
def stage_layers(*, N_L: int, P_p: int, i: int) -> int:
    if N_L % P_p == 0:
        return N_L // P_p
    q, extra = divmod(N_L + 2, P_p)
    return q + (i < extra) - (i == 0) - (i == P_p - 1)


@formula(id="pipeline.in_flight", symbol="m_live", unit="micro-batches",
         expr="1_g·m + (1 − 1_g)·(1_(v=1)·min(m, P_p − i) + 1_(v>1)·min(m·v, (v − 1)·m_r + 2·(P_p − 1 − i) + 1)/v), "
              "m_r = ⌊m/max(1, ⌊m/P_p⌋)⌋",
         source="Narayanan et al. 2021 §2.2: GPipe keeps all m micro-batches; 1F1B keeps P_p − i on stage i; the "
                "interleaved schedule warms up (v − 1)·m_r + 2·(P_p − 1 − i) chunks of 1/v stage each, m_r = m per "
                "round = P_p when P_p divides m, so the first stage holds P_p·(1 + (P_p − 1)/(P_p·v)) stages' worth "
                "(Korthikanti et al. 2022 §4.2.3). Equal to what torch.distributed.pipelining keeps alive "
                "(_get_warmup_ops; measured in tests/test_execution_pipeline.py)")
def in_flight(*, g: bool, v: int, P_p: int, m: int, i: int) -> float:
    v1 = v == 1
    m_r = m // maximum(1, m // P_p)  # torch: micro-batches per round
    return g * m + (1 - g) * (v1 * minimum(m, P_p - i)
                              + (1 - v1) * minimum(m * v, (v - 1) * m_r + 2 * (P_p - 1 - i) + 1) / v)


@formula(id="pipeline.bubble", symbol="t_bubble", unit="s", expr="(P_p − 1)/v · t_mb",
         source="Narayanan et al. 2021 §2.2.1 (bubble fraction (P_p − 1)/(v·m) of m micro-batch times t_mb); "
                "Llama 3 §3.3.2 writes the same ratio")
def bubble_time(*, P_p: int, v: int, t_mb: float) -> float:
    return (P_p - 1) / v * t_mb


@formula(id="memory.activations_per_gpu", symbol="M_act,GPU", unit="bytes",
         expr="⌈m_live·(M_rep + M_split/T_p) + M_work⌉",
         source="Korthikanti et al. 2022 §4 (Table 2): tensor parallelism splits the attention and MLP activations "
                "by T_p; sequence parallelism also splits the norm and residual ones (M_rep = 0 with SP); "
                "M_work: the LM head's logits (last stage) and, under full recompute, one layer rebuilt in backward")
def activations_per_gpu(*, m_live: float, M_rep: float, M_split: float, T_p: int, M_work: float) -> int:
    return ceil(m_live * (M_rep + M_split / T_p) + M_work)


@formula(id="memory.reserve", symbol="M_reserve", unit="bytes", expr="⌈M_fixed + f_reserve·M_HBM⌉",
         source="memory no tensor of the model holds: the CUDA context, kernels and NCCL buffers (M_fixed = 1 GiB) and "
                "a share of HBM left free — allocator fragmentation in training (f_reserve = 0.05), the serving "
                "engine's headroom 1 − gpu_memory_utilization (vLLM's default 0.9: f_reserve = 0.10)")
def reserve_bytes(*, M_fixed: float, f_reserve: float, M_HBM: float) -> int:
    return ceil(M_fixed + f_reserve * M_HBM)
