"""Every constant of the performance model, in one place, each with where it comes from.

Nothing here is fitted per run. A device's behaviour follows from its specs (F_peak per dtype, BW_HBM, links)
and its class's profile of achieved fractions (presets/efficiency/<class>.json, written by
scripts/fit_efficiency.py from a named calibration set, or by `tmath calibrate` for the user's own device);
a serving engine adds its per-step costs (presets/efficiency/engines/). The band of every figure is the 10th–90th
percentile of measured/predicted over leave-one-group-out predictions of the calibration rows; how many
validation rows it covers is reported by benchmarks/validate_published.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import cache

from transformer_math.errors import TmathError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from transformer_math.config.hardware import HardwareSpec


@dataclass(frozen=True, kw_only=True, slots=True)
class Efficiency:
    """Achieved fractions of the peaks (η_compute, η_bw in docs/symbols.md) and fixed costs of one device class,
    with the serving engine's per-step costs folded in (`with_engine`). Profiles are data: presets/efficiency/."""

    gemm: float = 0.78  # η_compute of a large bf16 GEMM (cuBLAS on random data; MAMF)
    gemm_fp8: float = 0.70  # η_compute of a large FP8 GEMM relative to F_peak(fp8)
    gemm_dim_half: float = 256.0  # a weight dimension x scales η by x / (x + this): small matrices underfill the GPU
    gemm_rows_half: float = 64.0  # the token dimension m scales η by m / (m + this): few rows underfill the tiles
    attention: float = 0.55  # η_compute of fused (flash) attention at d_h = 128 and long sequences
    attention_keys_half: float = 512.0  # keys per query at which a flash kernel reaches half its long-sequence η
    attention_head_exponent: float = 0.3  # η × (d_h/128)^this below d_h = 128 (FA2 Fig. 5: d_h 64 ≈ 0.8 × 128)
    bw: float = 0.80  # η_bw: achieved fraction of BW_HBM for streaming kernels
    attention_bw: float = 1.0  # decode attention reads the KV cache (paged, split over heads and blocks) at this
    #                            share of η_bw
    elementwise_bw: float = 1.0  # element-wise kernels (norms, activations, optimizer) reach this share of η_bw
    #                              (≈ 1 on GPUs; a CPU's transcendental and bf16-convert work makes it < 1)
    link: float = 0.75  # achieved fraction of the intra-node link for collectives (NCCL bus bandwidth)
    nic: float = 0.75  # achieved fraction of the per-GPU NIC bandwidth
    launch_s: float = 4e-6  # per-kernel fixed cost (launch under CUDA graphs, ramp-up and tail of the kernel)
    eager_op_s: float = 2e-5  # per-op cost when an eager framework dispatches each op from Python (PyTorch
    #                           dispatcher + nn.Module call; measured by tmath calibrate)
    dequant_ops: float = 3.0  # CUDA-core ops per weight element to dequantize weight-only int8/int4/nf4/mxfp4
    alpha_link_s: float = 1.5e-6  # α per collective step inside a node (NCCL LL protocol)
    alpha_nic_s: float = 5e-6  # α per collective step across nodes
    overlap: float = 0.8  # fraction of data-parallel/FSDP communication hidden behind compute
    overlap_tp: float = 0.0  # fraction of tensor-parallel communication hidden (Megatron tp-comm-overlap)
    overlap_ep: float = 0.0  # fraction of expert-parallel all-to-all hidden (DeepEP / a2a overlap)
    power_exponent: float = 0.6  # compute η × (P_cap/TDP)^this on a power-capped part (clocks fall with power)
    moe_gemm: float = 0.7  # grouped expert GEMMs reach this share of a dense GEMM's η (ragged tiles, routing)
    moe_layer_s: float = 2e-4  # training: fixed time per MoE layer and pass (router, top-k, token counts synced to
    #                            the host by the token dispatcher); serving engines fuse the routing into graphs
    step_overhead_s: float = 0.0  # serving engine: CPU time per step not hidden behind the GPU (schedule, sample)
    step_overhead_per_seq_s: float = 0.0  # and per running sequence (sampling, detokenizing, bookkeeping)
    async_cpu: bool = False  # the engine prepares step n + 1 while the GPU runs step n: only the excess shows
    elementwise_kernels: int = 3  # kernels per layer for norms, residual adds, RoPE, activation (fused: 3)
    name: str = "default"

    def gemm_efficiency(self, n: float, k: float, m: float = 1e9, dtype: str = "bf16") -> float:
        """η_compute of an (m×k)·(k×n) GEMM: the weight's dimensions and the rows decide how well tiles fill."""
        h, r = self.gemm_dim_half, self.gemm_rows_half
        top = self.gemm_fp8 if dtype.startswith(("fp8", "fp4")) else self.gemm
        return top * (n / (n + h)) * (k / (k + h)) * (m / (m + r))

    def attention_efficiency(self, d_h: float, keys: float) -> float:
        """η_compute of a flash-attention kernel for head dimension d_h over `keys` keys per query."""
        head = float(min(1.0, d_h / 128) ** self.attention_head_exponent)
        return self.attention * head * keys / (keys + self.attention_keys_half)

    def capped(self, factor: float) -> Efficiency:
        """Compute η on a part held to `factor` = P_cap/TDP of its rated power."""
        f = min(1.0, factor) ** self.power_exponent
        return replace(self, gemm=self.gemm * f, gemm_fp8=self.gemm_fp8 * f, attention=self.attention * f)

    def with_engine(self, engine: Engine) -> Efficiency:
        return replace(self, bw=min(0.98, self.bw * engine.bw), step_overhead_s=engine.step_overhead_s,
                       step_overhead_per_seq_s=engine.step_overhead_per_seq_s, async_cpu=engine.async_cpu,
                       launch_s=self.eager_op_s if engine.eager else self.launch_s,
                       elementwise_kernels=engine.elementwise_kernels,
                       name=f"{self.name}+{engine.id}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Engine:
    """A serving engine's behaviour beyond the kernels' roofline: per-step CPU cost, kernel fusion, KV paging."""

    id: str
    name: str
    step_overhead_s: float  # exposed CPU time per scheduler step (scheduling, sampling, detokenizing)
    step_overhead_per_seq_s: float = 0.0  # and per running sequence
    async_cpu: bool = False  # CPU work of the next step overlaps the GPU's current one
    bw: float = 1.0  # its decode kernels' bandwidth relative to the device's η_bw
    eager: bool = False  # ops dispatched one by one from Python (each pays the device's eager_op_s)
    elementwise_kernels: int = 3
    block_tokens: int = 16  # paged-KV block size
    max_num_seqs: int = 256
    prefill_chunk: int = 8192
    source: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Band:
    """The 10th and 90th percentiles of measured/predicted (as throughput) on the calibration rows of one kind of
    figure (scripts/fit_efficiency.py); benchmarks/validate_published.py reports how many validation rows fall
    inside."""

    low: float = 0.8
    high: float = 1.25
    calibration_rows: int = 0


def _profiles_dir() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "presets", "efficiency")


ENGINE_FIELDS = ("step_overhead_s", "step_overhead_per_seq_s", "async_cpu", "elementwise_kernels")  # with_engine


def efficiency_from_dict(d: Mapping[str, Any], *, name: str, where: str) -> Efficiency:
    allowed = {f.name: f.type for f in fields(Efficiency) if f.name != "async_cpu"}
    out: dict[str, Any] = {}
    for key, v in d.items():
        if key not in allowed or key == "name":
            raise TmathError(f"{where}.{key}", v, f"a field among {', '.join(sorted(set(allowed) - {'name'}))}")
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1e6:
            raise TmathError(f"{where}.{key}", v, "a non-negative number")
        out[key] = int(v) if key == "elementwise_kernels" else float(v)
    return replace(Efficiency(), name=name, **out)


@cache
def device_profile(device_class: str) -> tuple[Efficiency, Mapping[str, Band]]:
    """The fitted profile of a device class (presets/efficiency/<class>.json) and its bands per figure kind."""
    from transformer_math.config.jsonfile import read_json_file

    path = os.path.join(_profiles_dir(), f"{device_class}.json")
    if not os.path.isfile(path):
        return MID, {}
    d = read_json_file(path, field="device_class")
    bands = {k: Band(**v) for k, v in d.get("band", {}).items()}
    return efficiency_from_dict(d["efficiency"], name=device_class, where=f"{device_class}.efficiency"), bands


def list_engines() -> list[str]:
    return sorted(n.removesuffix(".json") for n in os.listdir(os.path.join(_profiles_dir(), "engines"))
                  if n.endswith(".json"))


@cache
def engine(name: str) -> Engine:
    from transformer_math.config.jsonfile import read_json_file

    if name not in list_engines():
        raise TmathError("engine", name, f"one of {', '.join(list_engines())}")
    d = read_json_file(os.path.join(_profiles_dir(), "engines", f"{name}.json"), field="engine")
    return Engine(**{f.name: d[f.name] for f in fields(Engine) if f.name in d})


MID = Efficiency()

# Kernel facts (not utilizations): how much work or traffic a step implies.
ATTENTION_BACKWARD = 2.5  # flash-attention backward / forward FLOPs: it recomputes QK^T, then dV, dP, dQ, dK
#                           (5 matmuls for the forward's 2; Dao 2023, FlashAttention-2 §3.1.2)
SCORE_PASSES = 6  # unfused attention: scale+mask, softmax, dropout each read and write the b·h·s² scores
ELEMENTWISE_D = 12  # d-wide values read or written per token per layer by fused norm, residual-add and RoPE kernels
ELEMENTWISE_FF = 3  # d_ff-wide values per token per layer by the MLP activation (gate and up read, product written)
ELEMENTWISE_BACKWARD = 2  # their backward reads the saved inputs and the incoming gradient and writes one
MOE_DISPATCH_PASSES = 4  # permute (read, write) and unpermute (read, write) of the e routed copies of each token
#                          (Megatron-Core token dispatcher, vLLM fused_moe align/sort)
FP8_CAST_BYTES = 5  # per element cast to FP8 with dynamic (current) scaling: amax read 2 + read 2 + write 1
#                     (torchao Float8Linear, Transformer Engine current scaling)
WEIGHT_ONLY = ("int8", "int4", "nf4", "mxfp4", "nvfp4")  # formats dequantized to bf16 before the tensor cores
#                                                          (unless activations are FP4 too: W4A4, costs.compute_dtype)
DEQUANT_BYTES = 2  # bytes written per weight element when a weight-only format is dequantized for a GEMM (bf16)

# Memory no tensor of the model holds (formulas/parallel.py memory.reserve): the CUDA context, kernels and NCCL
# buffers, plus a share of HBM left free — by the allocator's fragmentation in training, by the serving engine's
# memory-utilization setting in serving (vLLM gpu_memory_utilization = 0.9 by default).
RESERVE_FIXED = 2**30
RESERVE_FRACTION_TRAIN = 0.05
GPU_MEMORY_UTILIZATION = 0.90
PREFILL_CHUNK = 8192  # tokens per prefill step in serving engines (vLLM's max_num_batched_tokens default)
SAMPLED_SEQUENCES = 256  # sequences whose logits a step can hold (vLLM's max_num_seqs default)


def efficiency_for(hw: HardwareSpec, engine_id: str | None = None) -> Efficiency:
    """The achieved fractions for a device: its own calibrated profile, else its class's fitted one; held to its
    power cap; with a serving engine's per-step costs when one is named."""
    if hw.efficiency:
        eff = efficiency_from_dict(dict(hw.efficiency), name=hw.id, where=hw.id)
    else:
        eff = device_profile(hw.device_class)[0]
    if hw.power_cap_w and hw.tdp_w:
        eff = eff.capped(hw.power_cap_w / hw.tdp_w)
    return eff.with_engine(engine(engine_id)) if engine_id else eff


def band_for(hw: HardwareSpec, kind: str) -> Band:
    """The measured/predicted band of a figure kind (training, decode, prefill, throughput) for a device."""
    return device_profile(hw.device_class)[1].get(kind) or device_profile("default")[1].get(kind) or Band()
