"""Every constant of the performance model, in one place, each with where it comes from.

Nothing here is fitted per run. Each device's behaviour follows from its specs (F_peak per dtype, BW_HBM,
links) and these utilizations; the low and high ends give the band every serving time carries.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, kw_only=True, slots=True)
class Efficiency:
    """Achieved fractions of the peaks (seed 000 §9, §13: η_compute, η_bw) and fixed costs."""

    gemm: float = 0.78  # η_compute of a large GEMM (MAMF: A100 bf16 ≈ 0.86, H100 ≈ 0.80; ml-engineering tables)
    gemm_dim_half: float = 256.0  # a weight dimension x scales η by x / (x + this): small matrices underfill the GPU
    attention: float = 0.55  # η_compute of fused (flash) attention kernels relative to GEMM peak (FA2 on A100)
    bw: float = 0.80  # η_bw: achieved fraction of BW_HBM for streaming kernels
    link: float = 0.75  # achieved fraction of the intra-node link for collectives (NCCL bus bandwidth)
    nic: float = 0.75  # achieved fraction of the per-GPU NIC bandwidth
    launch_s: float = 4e-6  # per-kernel fixed cost (launch under CUDA graphs, ramp-up and tail of the kernel)
    dequant_ops: float = 3.0  # CUDA-core ops per weight element to dequantize weight-only int8/int4/nf4/mxfp4
    alpha_link_s: float = 1.5e-6  # α per collective step inside a node (NCCL LL protocol)
    alpha_nic_s: float = 5e-6  # α per collective step across nodes
    overlap: float = 0.8  # fraction of data-parallel/FSDP communication hidden behind compute
    name: str = "mid"

    def gemm_efficiency(self, n: float, k: float) -> float:
        """η_compute of an (m×k)·(k×n) GEMM: the weight's dimensions decide how well tiles fill the GPU."""
        h = self.gemm_dim_half
        return self.gemm * (n / (n + h)) * (k / (k + h))

    def scaled(self, factor: float, name: str) -> Efficiency:
        """The same assumptions with every utilization × factor (capped at 0.98) and fixed costs ÷ factor."""
        cap = lambda x: min(0.98, x * factor)  # noqa: E731
        return replace(self, gemm=cap(self.gemm), attention=cap(self.attention), bw=cap(self.bw),
                       link=cap(self.link), nic=cap(self.nic), launch_s=self.launch_s / factor,
                       dequant_ops=self.dequant_ops / factor,
                       alpha_link_s=self.alpha_link_s / factor, alpha_nic_s=self.alpha_nic_s / factor,
                       overlap=min(1.0, self.overlap * factor), name=name)


MID = Efficiency()
BAND = (MID.scaled(0.85, "low"), MID, MID.scaled(1.12, "high"))

# Kernel facts (not utilizations): how much work or traffic a step implies.
ATTENTION_BACKWARD = 2.5  # flash-attention backward / forward FLOPs: it recomputes QK^T, then dV, dP, dQ, dK
#                           (5 matmuls for the forward's 2; Dao 2023, FlashAttention-2 §3.1.2)
SCORE_PASSES = 6  # unfused attention: scale+mask, softmax, dropout each read and write the b·h·s² scores
ELEMENTWISE_D = 12  # d-wide values read or written per token per layer by fused norm, residual-add and RoPE kernels
ELEMENTWISE_FF = 3  # d_ff-wide values per token per layer by the MLP activation (gate and up read, product written)
ELEMENTWISE_KERNELS = 3  # kernels per layer for them: norm(+residual) ×2 and RoPE/activation, as compilers fuse them
ELEMENTWISE_BACKWARD = 2  # their backward reads the saved inputs and the incoming gradient and writes one
FP8_CAST_BYTES = 5  # per element cast to FP8 with dynamic (current) scaling: amax read 2 + read 2 + write 1
#                     (torchao Float8Linear, Transformer Engine current scaling)
WEIGHT_ONLY = ("int8", "int4", "nf4", "mxfp4")  # formats dequantized to bf16 before the tensor cores
DEQUANT_BYTES = 2  # bytes written per weight element when a weight-only format is dequantized for a GEMM (bf16)

# Memory no tensor of the model holds (formulas/parallel.py memory.reserve): the CUDA context, kernels and NCCL
# buffers, plus a share of HBM left free — by the allocator's fragmentation in training, by the serving engine's
# memory-utilization setting in serving (vLLM gpu_memory_utilization = 0.9 by default).
RESERVE_FIXED = 2**30
RESERVE_FRACTION_TRAIN = 0.05
GPU_MEMORY_UTILIZATION = 0.90
PREFILL_CHUNK = 8192  # tokens per prefill step in serving engines (vLLM's max_num_batched_tokens default)
SAMPLED_SEQUENCES = 256  # sequences whose logits a step can hold (vLLM's max_num_seqs default)
