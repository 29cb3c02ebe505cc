"""Training and serving plans: step time, utilization, throughput, days and cost; serving memory and latency.

Arithmetic only (maximum/minimum work on numbers and on numpy arrays), so the layout search evaluates these
same functions on arrays of layouts.
"""

from transformer_math.formulas._registry import ceil, formula, maximum

_PALM = "Chowdhery et al. 2022 (PaLM) §4.1 and App. B"


@formula(id="train.micro_batches", symbol="m", unit="micro-batches", expr="B / (D_p·b)",
         source="Narayanan et al. 2021 (arXiv 2104.04473) §3.1 notation: m = B/(b·d) micro-batches of b sequences per "
                "pipeline, d = D_p data-parallel replicas")
def micro_batches(*, B: int, D_p: int, b: int) -> float:
    return B / (D_p * b)


@formula(id="train.compute_time", symbol="t_comp", unit="s",
         expr="(1 + k_bwd)·t_lin + (1 + k_att)·t_att + (1 + k_el)·t_elem + t_rec + t_aux",
         source="backward = 2× forward for matmuls (dL/dX and dL/dW; 1× when weights are frozen), PaLM App. B; "
                "flash-attention backward k_att = 2.5× its forward (FlashAttention-2 §3.1.2); element-wise backward "
                "k_el = 2; t_rec: recomputed forward (Korthikanti et al. 2022 §5); t_aux: FP8 casts, dequantization, "
                "LoRA adapters")
def compute_time(*, k_bwd: float, t_lin: float, k_att: float, t_att: float, k_el: float, t_elem: float,
                 t_rec: float, t_aux: float) -> float:
    return (1 + k_bwd) * t_lin + (1 + k_att) * t_att + (1 + k_el) * t_elem + t_rec + t_aux


@formula(id="train.recompute_time", symbol="t_rec", unit="s", expr="1_full·(t_lin + t_att + t_elem) + 1_sel·t_att",
         source="Korthikanti et al. 2022 §5: full recomputation reruns each layer's forward in backward; selective "
                "reruns the attention core (a flash kernel recomputes it anyway: 1_sel = 0 there)")
def recompute_time(*, full: bool, sel: bool, t_lin: float, t_att: float, t_elem: float) -> float:
    return full * (t_lin + t_att + t_elem) + sel * t_att


@formula(id="comm.repeated", symbol="t_coll", unit="s", expr="n_coll·t_1",
         source="n_coll collectives of one kind and size (for training: counted per micro-batch or step as torch "
                "issues them, tests/test_execution_comm.py), each taking t_1 (the ring/tree models of comm.*)")
def collectives_time(*, n_coll: float, t_1: float) -> float:
    return n_coll * t_1


@formula(id="train.cp_exposed", symbol="t_CP", unit="s",
         expr="n_att·(max(0, t_f − t_att_l) + max(0, t_b − k_att·t_att_l))",
         source="ring attention (Liu et al. 2023 §3; torch context_parallel): a layer's K/V exchange of the forward "
                "(t_f) and of the backward (t_b: K/V again and the dK/dV ring) runs beside that layer's attention; "
                "only what its compute cannot hide is exposed")
def cp_exposed(*, n_att: int, t_f: float, t_b: float, t_att_l: float, k_att: float) -> float:
    return n_att * (maximum(0, t_f - t_att_l) + maximum(0, t_b - k_att * t_att_l))


@formula(id="train.microbatch_time", symbol="t_mb", unit="s",
         expr="t_comp + (1 − η_TP)·t_TP + t_CP + (1 − η_EP)·t_EP + t_PP",
         source="Megatron-LM (Narayanan et al. 2021 §3): tensor-, context- and expert-parallel collectives and "
                "pipeline sends sit on the critical path of each micro-batch, except the share η_TP, η_EP that "
                "communication overlap (Megatron tp-comm-overlap, EP all-to-all overlap, DualPipe) hides; η from "
                "the device class profile")
def microbatch_time(*, t_comp: float, t_TP: float, t_CP: float, t_EP: float, t_PP: float, η_TP: float = 0.0,
                    η_EP: float = 0.0) -> float:
    return t_comp + (1 - η_TP) * t_TP + t_CP + (1 - η_EP) * t_EP + t_PP


@formula(id="train.dp_exposed", symbol="t_DP", unit="s", expr="max(t_DP_all − η_ov·m·t_mb, (1 − η_ov)·t_DP_all)",
         source="gradient reduce-scatter / all-reduce and FSDP all-gathers overlap the backward and forward (PyTorch "
                "DDP buckets, FSDP prefetch; Li et al. 2020 §3.2); η_ov of it hides, the rest is exposed")
def dp_exposed(*, t_DP_all: float, η_ov: float, m: float, t_mb: float) -> float:
    return maximum(t_DP_all - η_ov * m * t_mb, (1 - η_ov) * t_DP_all)


@formula(id="train.optimizer_time", symbol="t_opt", unit="s", expr="P_opt·b_rw / (η_bw·BW_HBM)",
         source="the optimizer step streams every local trainable parameter's master weight, gradient and states "
                "once in and once out: AdamW b_rw = 2·b_w + 2·(b_master + b_m + b_v) = 28 bytes")
def optimizer_time(*, P_opt: float, b_rw: float, η_bw: float, BW_HBM: float) -> float:
    return P_opt * b_rw / (η_bw * BW_HBM)


@formula(id="train.step_time", symbol="t_step", unit="s", expr="m·t_mb + t_bubble + t_DP + t_opt",
         source="Narayanan et al. 2021 §3 (m micro-batches, the pipeline bubble, exposed data-parallel communication) "
                "plus the optimizer step")
def step_time(*, m: float, t_mb: float, t_bubble: float, t_DP: float, t_opt: float) -> float:
    return m * t_mb + t_bubble + t_DP + t_opt


@formula(id="train.model_flops", symbol="F_model", unit="FLOPs", expr="(1 + k_bwd)·F_lin + 3·F_att + 3·F_adapt",
         source=_PALM + " (model FLOPs: the work the step requires, no recomputation) with the forward of the core "
                "(routed experts only, attention over unmasked pairs: conventions.md): matmuls cost 1 + k_bwd "
                "forwards (k_bwd = 2, or 1 when weights are frozen), attention (no weights) and adapters 3")
def model_flops(*, k_bwd: float, F_lin: float, F_att: float, F_adapt: float) -> float:
    return (1 + k_bwd) * F_lin + 3 * F_att + 3 * F_adapt


@formula(id="train.hardware_flops", symbol="F_hw", unit="FLOPs",
         expr="F_model + 1_full·(F_lin + F_att + F_adapt) + 1_sel·F_att + (k_att − 2)·F_att",
         source=_PALM + " (hardware FLOPs add what is recomputed: the forward under full recomputation, the attention "
                "core under selective; flash backward recomputes QK^T, k_att − 2 = 0.5 forwards)")
def hardware_flops(*, F_model: float, full: bool, sel: bool, F_lin: float, F_att: float, F_adapt: float,
                   k_att: float) -> float:
    return F_model + full * (F_lin + F_att + F_adapt) + sel * F_att + (k_att - 2) * F_att


@formula(id="train.palm_flops", symbol="F_PaLM", unit="FLOPs", expr="(6·P_active + 6·N_L·h_q·(d_qk + d_v)·s)·B·s",
         source=_PALM + ": 6N + 12·L·H·Q·T per token with the parameters a token touches (P_active) and every "
                "query–key pair counted; the convention most published MFUs use")
def palm_flops(*, P_active: int, N_L: int, h_q: int, d_qk: int, d_v: int, s: int, B: int) -> float:
    return (6 * P_active + 6 * N_L * h_q * (d_qk + d_v) * s) * B * s


@formula(id="train.utilization", symbol="MFU", unit="fraction", expr="F / (t_step·n_GPU·F_peak)",
         source=_PALM + ": achieved FLOP/s over the peak of all GPUs (dense bf16 peak, also for FP8 runs)")
def utilization(*, F: float, t_step: float, n_GPU: int, F_peak: float) -> float:
    return F / (t_step * n_GPU * F_peak)


@formula(id="train.tokens_per_s", symbol="tok/s", unit="tokens/s", expr="B·s / t_step",
         source="definition: the B·s tokens of one optimizer step over the step time")
def tokens_per_s(*, B: int, s: int, t_step: float) -> float:
    return B * s / t_step


@formula(id="train.days", symbol="t_train", unit="days", expr="T_train / tok_s / 86400",
         source="definition: T_train tokens at the step's throughput, 86,400 s per day")
def days(*, T_train: float, tok_s: float) -> float:
    return T_train / tok_s / 86400


@formula(id="train.cost", symbol="cost", unit="USD", expr="t_train·24·n_GPU·price",
         source="GPU-hours × price per GPU-hour")
def cost(*, t_train: float, n_GPU: int, price: float) -> float:
    return t_train * 24 * n_GPU * price


@formula(id="memory.over", symbol="ΔM", unit="bytes", expr="M_GPU − M_HBM",
         source="the plan fits when M_GPU ≤ M_HBM; a positive ΔM is what must go")
def over_bytes(*, M_GPU: int, M_HBM: int) -> int:
    return M_GPU - M_HBM


@formula(id="serve.kv_per_sequence", symbol="M_KV,seq", unit="bytes", expr="⌈n_blk·b_kv⌉",
         source="vLLM PagedAttention (Kwon et al. 2023 §4.2): n_blk = Σ_kinds n·⌈L_kv/b_blk⌉·b_blk·w elements: "
                "whole blocks of b_blk tokens per layer; window layers keep L_kv = min(L, S) tokens in their own "
                "pool; w = 2·h_kv·d_h (MLA: d_c + d_rope)")
def kv_per_sequence(*, n_blk: int, b_kv: float) -> int:
    return ceil(n_blk * b_kv)


@formula(id="serve.kv_per_gpu", symbol="M_KV", unit="bytes", expr="⌈B·M_KV_seq·r_kv / k_kv⌉",
         source="vLLM/Megatron tensor parallelism splits the KV heads over T_p (k_kv = T_p); with h_kv < T_p each "
                "head is replicated r_kv = T_p/h_kv times; an MLA latent is replicated on every TP rank (k_kv = 1)")
def kv_per_gpu(*, B: int, M_KV_seq: float, r_kv: int, k_kv: int) -> int:
    return ceil(B * M_KV_seq * r_kv / k_kv)


@formula(id="serve.workspace", symbol="M_act", unit="bytes", expr="⌈N_chunk·(4·d + 2·d_ff/T_p)·b_a + N_seq·V·4/T_p⌉",
         source="the engine reserves activation memory for its largest step before sizing the KV pool (vLLM profiles "
                "a run of max_num_batched_tokens = N_chunk tokens): residual, norm and MLP buffers of that chunk plus "
                "fp32 logits of max_num_seqs = N_seq sequences; it does not grow with the batch")
def workspace(*, N_chunk: int, d: int, d_ff: int, T_p: int, b_a: int, N_seq: int, V: int) -> int:
    return ceil(N_chunk * (4 * d + 2 * d_ff / T_p) * b_a + N_seq * V * 4 / T_p)


@formula(id="serve.max_batch", symbol="B_max", unit="sequences", expr="⌊(M_HBM − M_w − M_act − M_reserve) / M_KV_GPU⌋",
         source="Kwon et al. 2023 (vLLM, PagedAttention): sequences whose paged KV cache fits beside weights, "
                "workspace and reserve (vLLM sizes its KV block pool from what profiling leaves free)")
def max_batch(*, M_HBM: float, M_w: float, M_act: float, M_reserve: float, M_KV_GPU: float) -> int:
    room = M_HBM - M_w - M_act - M_reserve
    return int(room // M_KV_GPU) if room > 0 else 0


@formula(id="serve.max_context", symbol="L_fit", unit="tokens", expr="min(L_max, max{L : M_GPU(B, L) ≤ M_HBM})",
         source="the longest context whose KV cache for B sequences still fits (bisection over L on the paged "
                "KV formula), capped at the model's L_max")
def max_context(*, L_max: int, L_fit: int) -> int:
    return min(L_max, L_fit)


@formula(id="serve.tpot", symbol="TPOT", unit="s", expr="(k_draft·t_draft + t_step) / E_tokens",
         source="Pope et al. 2022 (decode latency: each generated token costs one step over all B sequences); "
                "speculative decoding: "
                "k_draft draft steps and one verification of k + 1 tokens yield E[tokens] = (1 − α^(k+1))/(1 − α) "
                "(Leviathan et al. 2023 §3.3); without a draft k_draft = 0, E = 1")
def tpot(*, k_draft: int, t_draft: float, t_step: float, E_tokens: float) -> float:
    return (k_draft * t_draft + t_step) / E_tokens


@formula(id="serve.engine_overhead", symbol="t_cpu", unit="s", expr="max(0, t_0 + t_seq·B − a·t_gpu)",
         source="the serving engine's profile (presets/efficiency/engines/, fitted by scripts/fit_efficiency.py): "
                "CPU time per step — scheduling, sampling, output processing of B sequences; an engine that "
                "prepares the next step while the GPU runs this one (a = 1: SGLang's overlap scheduler, TensorRT-LLM; "
                "vLLM's asynchronous scheduling is opt-in) exposes only what exceeds the GPU's t_gpu")
def engine_overhead(*, t_0: float, t_seq: float, B: int, t_gpu: float, a: int) -> float:
    return maximum(0.0, t_0 + t_seq * B - a * t_gpu)


@formula(id="serve.tokens_per_s", symbol="tok/s", unit="tokens/s", expr="D_p·B / TPOT",
         source="decode throughput: B sequences per replica each get a token every TPOT, D_p replicas")
def serve_tokens_per_s(*, D_p: int, B: int, TPOT: float) -> float:
    return D_p * B / TPOT


@formula(id="serve.phi_cache", symbol="φ_cache", unit="fraction", expr="M_KV / M_HBM",
         source="definition: the share of device memory the KV cache takes")
def phi_cache(*, M_KV: float, M_HBM: float) -> float:
    return M_KV / M_HBM
