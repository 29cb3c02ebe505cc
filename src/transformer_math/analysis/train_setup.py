"""A training job's inputs: the parallel layout, the workload (batch, sequence, precision, optimizer,
recompute, fine-tuning), LoRA's adapted shapes, and the checks that a layout fits the model."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from transformer_math.config.spec import LayerSpec, ModelSpec
from transformer_math.errors import TmathError
from transformer_math.units import parse_dtype

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass

# Bytes per trainable parameter of optimizer state (b_m, b_v: Adam's two moments, Kingma & Ba 2015); fp32 master
# weights (4) come on top (ZeRO, Rajbhandari et al. 2020 §3.1).
OPTIMIZERS = {"adamw": (4, 4), "adam8bit": (1, 1), "sgd": (4, 0), "adafactor": (0, 0)}
RECOMPUTE = ("none", "selective", "full")
SCHEDULES = ("1f1b", "gpipe")  # 1F1B with interleave v > 1 is the interleaved schedule
PRECISIONS = ("bf16", "fp8", "fp4")
FINETUNES = ("full", "lora", "qlora")
NF4 = parse_dtype("nf4")
BF16 = parse_dtype("bf16")


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """A parallel layout (T_p, P_p, D_p, C_p, E_p; docs/conventions.md), its schedule, recompute and ZeRO stage."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    micro_batch: int = 1
    recompute: str = "none"
    zero: int = 1
    sequence_parallel: bool = True
    interleave: int = 1
    schedule: str = "1f1b"

    @property
    def gpus(self) -> int:
        """n_GPU = T_p·P_p·D_p·C_p (experts borrow E_p from the data × context ranks)."""
        return self.tp * self.pp * self.dp * self.cp



@dataclass(frozen=True, kw_only=True, slots=True)
class Finetune:
    """What is trained: 'full', or LoRA adapters of rank r on target modules (QLoRA: 4-bit NF4 base)."""

    mode: str = "full"  # full | lora | qlora
    rank: int = 16
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True, kw_only=True, slots=True)
class Workload:
    """What one optimizer step does: B sequences of s tokens, precision, optimizer, what is trained."""

    global_batch: int
    seq: int
    precision: str = "bf16"  # bf16 | fp8 | fp4 (the linear layers; attention and norms stay 16-bit)
    optimizer: str = "adamw"
    finetune: Finetune = field(default_factory=Finetune)
    flash_attention: bool = True


LORA_SHAPES = {  # module name → (d_in, d_out) from the spec
    "q_proj": lambda s, l: (s.d_model, s.n_heads * s.head_dim),
    "k_proj": lambda s, l: (s.d_model, s.kv_dim),
    "v_proj": lambda s, l: (s.d_model, s.kv_dim),
    "o_proj": lambda s, l: (s.n_heads * s.head_dim, s.d_model),
    "gate_proj": lambda s, l: (s.d_model, l.d_ff),
    "up_proj": lambda s, l: (s.d_model, l.d_ff),
    "down_proj": lambda s, l: (l.d_ff, s.d_model),
}


def lora_linears(s: ModelSpec, layer: LayerSpec, targets: tuple[str, ...]) -> list[tuple[int, int]]:
    """(d_in, d_out) of the nn.Linear modules PEFT wraps in one layer of this kind.

    In MoE layers only shared experts are nn.Linear modules (routed experts are 3-D parameter tensors PEFT
    does not wrap); MLA projections have other names and are not targeted by these names.
    """
    mlp: LayerSpec | None = layer
    if layer.mlp != "dense":
        mlp = replace(layer, d_ff=s.moe.shared_width) if s.moe and s.moe.n_shared else None
    out = []
    for t in targets:
        if t in ("gate_proj", "up_proj", "down_proj") and (mlp is None or s.n_up != 2):
            continue
        out.append(LORA_SHAPES[t](s, mlp or layer))
    return out


def lora_params(s: ModelSpec, rank: int, targets: tuple[str, ...]) -> int:
    """Σ over targeted linears of r·(d_in + d_out): PEFT's lora_A (r×d_in) and lora_B (d_out×r).

    Checked against PEFT's get_peft_model in tests/test_perf_crosscheck.py.
    """
    bad = [t for t in targets if t not in LORA_SHAPES]
    if bad or not targets:
        raise TmathError("lora_targets", ",".join(bad) or "(empty)", f"module names among {', '.join(LORA_SHAPES)}")
    if s.mla is not None or s.family == "gpt2":
        raise TmathError("finetune", s.family, "LoRA counts for llama-layout projections (q/k/v/o, gate/up/down)")
    return sum(n * rank * (a + b) for layer, n in s.layer_kinds for a, b in lora_linears(s, layer, targets))


def validate(s: ModelSpec, L: Layout, w: Workload) -> None:
    """One clear error per bad choice, naming the field, the value and what is allowed."""
    checks = [
        (w.optimizer in OPTIMIZERS, "optimizer", w.optimizer, f"one of {', '.join(OPTIMIZERS)}"),
        (L.recompute in RECOMPUTE, "recompute", L.recompute, "none, selective or full"),
        (w.precision in PRECISIONS, "precision", w.precision, "bf16, fp8 or fp4 (NVFP4/MXFP4 linear layers)"),
        (w.finetune.mode in FINETUNES, "finetune", w.finetune.mode, "full, lora or qlora"),
        (L.schedule in SCHEDULES, "schedule", L.schedule, "1f1b or gpipe"),
        (L.zero in (0, 1, 2, 3), "zero", L.zero, "a ZeRO stage 0, 1, 2 or 3 (3 = FSDP)"),
    ]
    for name in ("tp", "pp", "dp", "cp", "ep", "micro_batch", "interleave"):
        v = getattr(L, name)
        checks.append((isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10**6, name, v,
                       "an integer from 1 to 10^6"))
    for name in ("global_batch", "seq"):
        v = getattr(w, name)
        checks.append((isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10**9, name, v,
                       "an integer from 1 to 10^9"))
    for ok, name, value, allowed in checks:
        if not ok:
            raise TmathError(name, value, allowed)
    structural = [
        (w.global_batch % (L.dp * L.micro_batch) == 0, "global_batch", w.global_batch,
         f"a multiple of D_p·b = {L.dp}·{L.micro_batch}"),
        (L.pp <= s.n_layers, "pp", L.pp, f"at most N_L = {s.n_layers} stages"),
        (s.n_heads % L.tp == 0, "tp", L.tp, f"a divisor of h_q = {s.n_heads}"),
        (w.seq % L.cp == 0, "cp", L.cp, f"a divisor of the sequence length {w.seq}"),
        (L.ep == 1 or s.moe is not None, "ep", L.ep, "1: expert parallelism needs an MoE model"),
        (s.moe is None or s.moe.n_experts % L.ep == 0, "ep", L.ep,
         f"a divisor of E = {s.moe.n_experts if s.moe else 0} experts"),
        ((L.dp * L.cp) % L.ep == 0, "ep", L.ep, f"a divisor of D_p·C_p = {L.dp * L.cp} (experts borrow E_p from "
                                                "the data × context ranks)"),
        (L.interleave == 1 or L.pp > 1, "interleave", L.interleave, "1 without pipeline parallelism (P_p = 1)"),
        (L.interleave == 1 or s.n_layers >= L.pp * L.interleave, "interleave", L.interleave,
         f"at most N_L/P_p = {s.n_layers // L.pp} chunks per stage"),
        (L.interleave == 1 or L.schedule == "1f1b", "schedule", L.schedule, "1f1b when interleaving (v > 1)"),
    ]
    m = w.global_batch // (L.dp * L.micro_batch) if w.global_batch % (L.dp * L.micro_batch) == 0 else 0
    rounds = max(1, m // L.pp)
    structural.append((L.interleave == 1 or m % rounds == 0, "global_batch", w.global_batch,
                       f"m = {m} micro-batches in whole rounds of {m // rounds} for the interleaved schedule "
                       "(torch ScheduleInterleaved1F1B: m a multiple of ⌊m/P_p⌋)"))
    for ok, name, value, allowed in structural:
        if not ok:
            raise TmathError(name, value, allowed)
    if w.finetune.mode != "full":
        lora_params(s, w.finetune.rank, w.finetune.targets)
