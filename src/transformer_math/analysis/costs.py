"""Roofline cost of every operation on one GPU: prefill, one decode step, or the forward of a training micro-batch.

Each op of the per-op table gets the bytes it moves (weights, activations, KV reads and writes), its FLOPs as
the kernel executes them (flash kernels skip masked blocks: causal pairs, windows), its bound and its time
max(F/(η_compute·F_peak), bytes/(η_bw·BW_HBM)) + t_dequant + t_launch. Norms, residual adds, RoPE and
activation functions are one memory-bound 'elementwise' row per layer. Serving and training share these rows;
training multiplies each kind by its passes (backward, recompute).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from transformer_math.analysis import efficiency as k
from transformer_math.analysis.efficiency import Efficiency
from transformer_math.analysis.flops import Op, cached_tokens, layer_ops
from transformer_math.analysis.quantity import Quantity, q
from transformer_math.config.hardware import HardwareSpec
from transformer_math.config.spec import LayerSpec, ModelSpec
from transformer_math.formulas import roofline as rf
from transformer_math.units import DType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True, slots=True)
class OpCost:
    """One op on one GPU (after sharding), repeated `count` times (layers); `kind` decides its training passes."""

    layer: str
    name: str
    kind: str  # linear | attention | elementwise | kv_write | head | comm | overhead
    count: int
    flops: float
    bytes: float
    weight_bytes: float
    kv_bytes: float
    compute_s: float
    memory_s: float
    time_s: float
    inputs: Mapping[str, Any] = field(default_factory=dict, compare=False)  # the roofline formula's inputs
    shape: tuple[int, int, int] = field(default=(0, 0, 0), compare=False)  # linear ops: (tokens, d_in, d_out)

    @property
    def intensity(self) -> float | None:
        """I = F / M_moved (roofline.intensity); None for ops that move or compute nothing (no point on a roofline)."""
        return rf.intensity(F=self.flops, M_moved=self.bytes) if self.bytes and self.flops else None

    @property
    def bound(self) -> str:
        if self.kind == "comm":
            return "network"
        if self.kind == "overhead":
            return "cpu"
        return "compute" if self.compute_s >= self.memory_s else "memory"

    def quantity(self) -> Quantity:
        """This op's time as an explained quantity: count × the roofline formula, or count × one collective."""
        key = f"{self.layer} {self.name}"
        if self.kind == "comm":
            from transformer_math.formulas.plan import collectives_time

            return q(key, collectives_time, note=str(self.inputs.get("formula", "")), n_coll=self.count,
                     t_1=self.time_s)
        if self.kind == "overhead":
            from transformer_math.formulas.plan import engine_overhead

            return q(key, engine_overhead, **self.inputs)
        return q(key, rf.op_time, count=self.count, **self.inputs)


@dataclass(frozen=True, kw_only=True, slots=True)
class Sharding:
    """How one GPU's share of a step is cut: tensor, context and expert parallelism, and sequence parallelism.

    expert_shards: GPUs the routed experts' weights are spread over (T_p without EP; E_p·T_e with it);
    expert_group_tokens: tokens routed in the expert group per step (for the experts a batch touches).
    """

    tp: int = 1
    cp: int = 1
    sp: bool = False
    expert_shards: int = 1
    expert_group_tokens: int = 0  # 0: this GPU's tokens


def _roofline(hw: HardwareSpec, eff: Efficiency, *, layer: str, name: str, kind: str, count: int, F: float,
              eta: float, peak: float, moved: float, weights: float = 0.0, kv_bytes: float = 0.0,
              t_dq: float = 0.0, kernels: int = 1, t_fixed: float = 0.0, bw_factor: float = 1.0,
              shape: tuple[int, int, int] = (0, 0, 0)) -> OpCost:
    eta_bw = eff.bw * (eff.elementwise_bw if kind == "elementwise" else bw_factor)
    inputs = dict(F=F, η_compute=eta, F_peak=peak, M_moved=moved, η_bw=eta_bw,
                  BW_HBM=hw.memory_bandwidth_bytes_per_s, t_dq=t_dq, t_launch=kernels * eff.launch_s + t_fixed)
    compute = F / (eta * peak) if F else 0.0
    memory = moved / (eta_bw * hw.memory_bandwidth_bytes_per_s)
    return OpCost(layer, name, kind, count, F, moved, weights, kv_bytes, compute, memory, rf.op_time(**inputs),
                  inputs, shape)


def experts_touched(E: int, e: int, tokens: float) -> float:
    """Expected distinct experts a batch of tokens routes to (uniform routing): E·(1 - (1 - e/E)^tokens)."""
    return float(E * (1 - (1 - e / E) ** tokens))


def _dtype_group(name: str) -> str:
    if name.startswith("moe.experts"):
        return "experts"
    if name.startswith("moe.shared"):
        return "shared_experts"
    if name.startswith("moe.router"):
        return "router"
    return name.split(".", 1)[0]


# Activation dtypes a serving engine can feed the tensor cores (--act-dtype), and the peak each one runs at.
ACT_DTYPES = ("auto", "bf16", "fp16", "fp8", "nvfp4", "mxfp4")
_ACT_CLASS = {"bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "nvfp4": "fp4", "mxfp4": "fp4"}
_WIDTH = {"fp4": 0, "fp8": 1, "bf16": 2}


def weight_class(dt: DType) -> str | None:
    """The tensor-core input a weight format is natively: fp4 (NVFP4, MXFP4), fp8, bf16 (16/32-bit floats);
    None for integer and GGUF formats, which are dequantized to whatever the activations are."""
    name = dt.name.split("-")[0]
    if name in ("nvfp4", "mxfp4"):
        return "fp4"
    if name.startswith("fp8"):
        return "fp8"
    if name in ("bf16", "fp16", "fp32"):
        return "bf16"
    return None


def compute_dtype(dt: DType, act: str = "auto") -> str:
    """The F_peak a linear layer runs at: the wider of its weights' and its activations' formats (an MMA runs at
    the rate of its widest operand). W4A4 (NVFP4/MXFP4 weights and activations) → fp4; W4A16 (weight-only, the
    weights dequantized to bf16, as gpt-oss's MXFP4 experts run on Hopper) → bf16; W8A8 → fp8. act 'auto': FP8
    weights run W8A8 (vLLM's dynamic activation scaling), everything else at bf16."""
    if act == "auto":
        return "fp8" if dt.name.startswith("fp8") else "bf16"
    a = _ACT_CLASS[act]
    w = weight_class(dt) or a
    return max(w, a, key=_WIDTH.__getitem__)


def dequantized(dt: DType, runs_at: str) -> bool:
    """Weights a kernel expands before the tensor cores (weight-only formats not run natively): t_dq applies."""
    weight_only = dt.name.split("-")[0] in k.WEIGHT_ONLY or bool(dt.block_bytes or dt.mix)
    return weight_only and weight_class(dt) != runs_at


def check_act_dtype(hw: HardwareSpec, act: str) -> None:
    """An explicit low-precision activation dtype needs a device that computes in it: no silent fallback."""
    from transformer_math.errors import TmathError

    if act not in ACT_DTYPES:
        raise TmathError("act_dtype", act, f"one of {', '.join(ACT_DTYPES)}")
    need = _ACT_CLASS.get(act)
    if need in ("fp8", "fp4") and need not in dict(hw.peak_flops_per_s):
        have = [d for d in ("fp4", "fp8") if d in dict(hw.peak_flops_per_s)]
        raise TmathError("act_dtype", act, f"{hw.id} lists no {need} peak (its JSON: "
                         f"{', '.join(dict(hw.peak_flops_per_s))}), so it cannot run {act} activations; use "
                         + (f"--act-dtype {'fp8' if 'fp8' in have else have[0]} or " if have else "")
                         + "--act-dtype bf16 (weight-only: the weights are dequantized to 16 bits)")


def elementwise_bytes(s: ModelSpec, layer: LayerSpec, *, N: int, tp: int, sp: bool, b_a: int = 2) -> float:
    """Bytes the fused norm / residual / RoPE / activation kernels move for N tokens of one layer.

    N·b_a·(12·d + 3·d_ff/T_p): the d-wide part is replicated on tensor-parallel ranks unless sequence parallelism
    splits it (÷T_p); the activation runs on each rank's d_ff/T_p columns. One definition for serving and training.
    """
    m = s.moe
    d_ff = layer.d_ff if layer.mlp == "dense" else m.experts_per_token * m.d_moe + m.shared_width  # type: ignore[union-attr]
    return N * b_a * (k.ELEMENTWISE_D * s.d_model / (tp if sp else 1) + k.ELEMENTWISE_FF * d_ff / tp)


def layer_costs(s: ModelSpec, layer: LayerSpec, n: int, hw: HardwareSpec, eff: Efficiency, *, B: int, T: int,
                L: int = 0, decode: bool = False, shard: Sharding = Sharding(), wd: Mapping[str, DType],
                kv: DType, linear_peak: str | None = None, flash: bool = True, b_a: int = 2,
                training: bool = False, act: str = "auto") -> list[OpCost]:
    """Costs of one layer kind's ops on one GPU.

    Prefill / training: B sequences of T tokens on this GPU (T = s/C_p under context parallelism: the GPU's
    ring-attention share is (s/C_p)·s query–key pairs, the causal half of them executed). Decode: one token
    per sequence over L cached ones. linear_peak: the dtype the linear layers run at (fp8 training); act: the
    activation dtype of serving (compute_dtype: W4A4 runs at the fp4 peak, and its GEMMs read fp4 inputs).
    """
    tp, cp = shard.tp, shard.cp
    N = B * T
    keys = cached_tokens(layer, L, s.n_sink_tokens) + 1 if decode else T * cp
    linear_ops = layer_ops(s, layer, B=B, T=T, L=L, decode=decode)
    attention_ops = linear_ops if decode else layer_ops(s, layer, B=B, T=T * cp,
                                                        attention="causal" if flash else "dense")
    bf16 = hw.peak("bf16")
    out = [_linear_cost(s, layer, n, hw, eff, op, shard=shard, N=N, wd=wd, runs_at=linear_peak, act=act, b_a=b_a)
           for op in linear_ops
           if not op.name.startswith(("attention.scores", "attention.values", "attention.linear_"))]
    out += _attention(s, layer, n, hw, eff, ops=attention_ops, B=B, N=N, keys=keys, decode=decode, tp=tp, cp=cp,
                      kv=kv, flash=flash, b_a=b_a, bf16=bf16)
    return out + _memory_ops(s, layer, n, hw, eff, B=B, N=N, decode=decode, shard=shard, kv=kv, b_a=b_a,
                             training=training)


def _linear_cost(s: ModelSpec, layer: LayerSpec, n: int, hw: HardwareSpec, eff: Efficiency, op: Op, *,
                 shard: Sharding, N: int, wd: Mapping[str, DType], runs_at: str | None, act: str,
                 b_a: int) -> OpCost:
    """One linear op on one GPU: its weights (routed experts: those the tokens touch, over E_p), activations in
    and out, the GEMM efficiency of its shape, and the dequantization work of weight-only formats."""
    tp, x = shard.tp, op.flops.inputs
    d_in, d_out, tokens = x["d_in"], x["d_out"], x["N_tok"]
    dt = wd.get(_dtype_group(op.name), wd["*"])
    per = float(d_in * d_out * dt.bytes_per_element)
    experts = op.name.startswith("moe.experts") and s.moe is not None
    if experts and s.moe:
        touched = experts_touched(s.moe.n_experts, s.moe.experts_per_token, shard.expert_group_tokens or N)
        weights = per * touched / shard.expert_shards
    else:
        weights = per / tp
    runs_at = runs_at or compute_dtype(dt, act)
    b_in = _act_bytes(act) if act != "auto" and runs_at == _ACT_CLASS[act] else b_a
    moved = weights + tokens * (d_in * b_in + d_out * b_a) / tp
    t_dq = 0.0
    if dequantized(dt, runs_at):  # dequantizing in the load path adds CUDA-core work
        t_dq = weights / float(dt.bytes_per_element) * eff.dequant_ops / hw.peak("fp32")
    if experts and s.moe:  # each expert's GEMM has its share of the routed rows
        eta = eff.moe_gemm * eff.gemm_efficiency(max(d_out / tp, 1), d_in, tokens / s.moe.n_experts, runs_at)
    else:
        eta = eff.gemm_efficiency(max(d_out / tp, 1), d_in, tokens, runs_at)
    return _roofline(hw, eff, layer=layer.kind, name=op.name, kind="linear", count=n, F=op.flops.value / tp,
                     eta=eta, peak=hw.peak(runs_at), moved=moved, weights=weights, t_dq=t_dq,
                     shape=(tokens, d_in, d_out))


def _memory_ops(s: ModelSpec, layer: LayerSpec, n: int, hw: HardwareSpec, eff: Efficiency, *, B: int, N: int,
                decode: bool, shard: Sharding, kv: DType, b_a: int, training: bool) -> list[OpCost]:
    """The bandwidth-bound rest of a layer: element-wise kernels, MoE token permutation, the KV-cache write."""
    tp, bf16 = shard.tp, hw.peak("bf16")
    out = [_roofline(hw, eff, layer=layer.kind, name="elementwise", kind="elementwise", count=n, F=0.0, eta=1.0,
                     peak=bf16, moved=elementwise_bytes(s, layer, N=N, tp=tp, sp=shard.sp, b_a=b_a),
                     kernels=eff.elementwise_kernels)]
    if layer.mlp != "dense" and s.moe:  # tokens permuted to their experts and back: e copies written and read twice
        moved = float(N * s.moe.experts_per_token * s.d_model * b_a * k.MOE_DISPATCH_PASSES) / (tp if shard.sp else 1)
        out.append(_roofline(hw, eff, layer=layer.kind, name="moe.dispatch", kind="elementwise", count=n, F=0.0,
                             eta=1.0, peak=bf16, moved=moved, kernels=2,
                             t_fixed=eff.moe_layer_s if training else 0.0))
    if decode:  # the new token's K and V written into the cache
        width = (s.mla.kv_rank + s.mla.d_rope) if s.mla else 2 * s.kv_dim
        w = float(B * width * kv.bytes_per_element) / (1 if s.mla else tp)
        out.append(_roofline(hw, eff, layer=layer.kind, name="kv_write", kind="kv_write", count=n, F=0.0, eta=1.0,
                             peak=bf16, moved=w, kv_bytes=w, kernels=0))
    return out


def _attention(s: ModelSpec, layer: LayerSpec, n: int, hw: HardwareSpec, eff: Efficiency, *, ops: list[Any], B: int,
               N: int, keys: int, decode: bool, tp: int, cp: int, kv: DType, flash: bool, b_a: int,
               bf16: float) -> list[OpCost]:
    """QK^T and PV as one attention kernel: flash (fused, η_attention) or unfused (batched GEMMs + score passes)."""
    F = sum(op.flops.value for op in ops
            if op.name.startswith(("attention.scores", "attention.values", "attention.linear_"))) / tp / cp
    kv_bytes = 0.0
    if decode:
        width = (s.mla.kv_rank + s.mla.d_rope) if s.mla else s.kv_dim
        kv_bytes = float(B * keys * width * kv.bytes_per_element) / (1 if s.mla else tp)
        moved = kv_bytes + 2 * B * s.n_heads * s.head_dim * b_a / tp
    else:  # a fused kernel reads Q, K and V and writes O once
        moved = N * (2 * s.n_heads + 2 * s.n_kv_heads) * s.head_dim * b_a / tp
    if flash or decode:  # decode kernels split the cache and reduce the parts: two launches (flash-decoding)
        mean_keys = keys if decode else keys / 2  # a causal query attends to half the keys on average
        return [_roofline(hw, eff, layer=layer.kind, name="attention.core", kind="attention", count=n, F=F,
                          eta=eff.attention_efficiency(s.head_dim, mean_keys), peak=bf16, moved=moved,
                          kv_bytes=kv_bytes, kernels=2 if decode else 1,
                          bw_factor=eff.attention_bw if decode else 1.0)]
    # Unfused (Megatron-LM 2021): the b·h·s² scores are materialized and streamed through memory between kernels
    scores = k.SCORE_PASSES * B * s.n_heads / tp * keys * (N // B) * b_a / 2
    return [_roofline(hw, eff, layer=layer.kind, name="attention.core", kind="attention", count=n, F=F, eta=eff.gemm,
                      peak=bf16, moved=0.0),
            _roofline(hw, eff, layer=layer.kind, name="attention.score_passes", kind="attention", count=n, F=0.0,
                      eta=1.0, peak=bf16, moved=scores, kernels=0)]


def head_cost(s: ModelSpec, hw: HardwareSpec, eff: Efficiency, *, N: int, tp: int, wd: Mapping[str, DType],
              shard_lm_head: bool = True, linear_peak: str | None = None, act: str = "auto") -> OpCost:
    """The LM head over N positions: vocab-parallel over T_p (vLLM, Megatron), or whole on every rank (gpt-fast)."""
    dt = wd.get("lm_head", wd["*"])
    runs_at = linear_peak or compute_dtype(dt, act)
    t_head = tp if shard_lm_head else 1
    per = float(s.d_model * s.vocab_size * dt.bytes_per_element) / t_head
    F = 2 * N * s.d_model * s.vocab_size / t_head
    moved = per + N * (s.d_model + s.vocab_size / t_head) * 2
    t_dq = per / float(dt.bytes_per_element) * eff.dequant_ops / hw.peak("fp32") if dequantized(dt, runs_at) else 0.0
    return _roofline(hw, eff, layer="head", name="lm_head", kind="head", count=1, F=F,
                     eta=eff.gemm_efficiency(s.vocab_size / t_head, s.d_model, N, runs_at), peak=hw.peak(runs_at),
                     moved=moved,
                     weights=per, t_dq=t_dq, shape=(N, s.d_model, s.vocab_size))


def _act_bytes(act: str) -> float:
    from transformer_math.units import parse_dtype

    return float(parse_dtype(act).bytes_per_element)


def total_time(costs: list[OpCost]) -> float:
    return sum(c.count * c.time_s for c in costs)
