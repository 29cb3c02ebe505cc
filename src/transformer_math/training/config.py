"""TrainConfig: every number one single-process training run reads, in the symbols of the formulas that use it."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformer_math.errors import TmathError, check_int, check_number

DECAYS = ("cosine", "linear")


def sym(symbol: str, unit: str, doc: str) -> dict[str, str]:
    return {"symbol": symbol, "unit": unit, "doc": doc}


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainConfig:
    """One training run: schedule, AdamW, clipping, accumulation, losses, precision. Validated once, on creation:
    a bad value raises TmathError(field, value, allowed)."""

    # -- schedule (optim.lr_at) ----------------------------------------------------------------------------------
    lr: float = field(default=3e-4, metadata=sym("η", "-", "peak learning rate, reached at the end of warmup"))
    warmup_steps: int = field(default=0, metadata=sym("W", "steps", "linear warmup length"))
    total_steps: int = field(default=1000, metadata=sym("S", "steps", "end of the decay; the floor r·η after it"))
    decay: str = field(default="cosine", metadata=sym("-", "-", "cosine | linear decay from η to r·η"))
    min_lr_ratio: float = field(default=0.1, metadata=sym("r", "-", "floor of the decay as a fraction of η"))
    # -- AdamW (optim.adamw_update) ------------------------------------------------------------------------------
    beta1: float = field(default=0.9, metadata=sym("β₁", "-", "first-moment decay"))
    beta2: float = field(default=0.95, metadata=sym("β₂", "-", "second-moment decay"))
    eps: float = field(default=1e-8, metadata=sym("ε", "-", "added to √v̂ in the denominator"))
    weight_decay: float = field(default=0.1, metadata=sym(
        "λ_wd", "-", "decoupled weight decay, on ≥2-D weights only (optim.param_groups)"))
    grad_clip: float | None = field(default=1.0, metadata=sym(
        "c", "-", "max global gradient L2 norm; None: no clipping"))
    # -- batch -----------------------------------------------------------------------------------------------------
    micro_batch: int = field(default=2, metadata=sym("b", "sequences", "sequences per micro-batch"))
    n_micro: int = field(default=1, metadata=sym("n_micro", "-", "micro-batches accumulated per optimizer step"))
    seq_len: int = field(default=32, metadata=sym("T", "tokens", "tokens per sequence"))
    # -- loss (losses.total_loss) ----------------------------------------------------------------------------------
    label_smoothing: float = field(default=0.0, metadata=sym("ε_ls", "-", "label smoothing of the cross-entropy"))
    lambda_load: float = field(default=0.01, metadata=sym(
        "λ_load", "-", "weight of Σ load_balance over MoE layers (Switch Transformer's α = 0.01)"))
    lambda_z: float = field(default=0.001, metadata=sym(
        "λ_z", "-", "weight of Σ router_z over MoE layers (ST-MoE's c_z = 0.001)"))
    # -- precision and determinism ---------------------------------------------------------------------------------
    bf16: bool = field(default=False, metadata=sym(
        "-", "-", "torch.autocast(bfloat16) around the forward; weights, gradients, optimizer stay fp32"))
    seed: int = field(default=0, metadata=sym("-", "-", "seeds the token batches and torch's global generator"))

    def __post_init__(self) -> None:
        check_number("lr", self.lr, low=0.0, high=10.0, open_low=True)
        check_int("total_steps", self.total_steps, low=1, high=10**9)
        check_int("warmup_steps", self.warmup_steps, low=0, high=self.total_steps)
        if self.decay not in DECAYS:
            raise TmathError("decay", self.decay, f"one of {', '.join(DECAYS)}")
        check_number("min_lr_ratio", self.min_lr_ratio, low=0.0, high=1.0)
        for name in ("beta1", "beta2"):
            b = getattr(self, name)
            if not (isinstance(b, int | float) and not isinstance(b, bool) and 0.0 <= b < 1.0):
                raise TmathError(name, b, "a number from 0 to below 1")
        check_number("eps", self.eps, low=0.0, high=1.0, open_low=True)
        check_number("weight_decay", self.weight_decay, low=0.0, high=10.0)
        if self.grad_clip is not None:
            check_number("grad_clip", self.grad_clip, low=0.0, high=1e9, open_low=True)
        check_int("micro_batch", self.micro_batch, low=1, high=10**6)
        check_int("n_micro", self.n_micro, low=1, high=10**6)
        check_int("seq_len", self.seq_len, low=2, high=10**9)  # two tokens: one next-token target
        if not (isinstance(self.label_smoothing, int | float) and 0.0 <= self.label_smoothing < 1.0):
            raise TmathError("label_smoothing", self.label_smoothing, "a number from 0 to below 1")
        check_number("lambda_load", self.lambda_load, low=0.0, high=1e3)
        check_number("lambda_z", self.lambda_z, low=0.0, high=1e3)
        if not isinstance(self.bf16, bool):
            raise TmathError("bf16", self.bf16, "True or False")
        check_int("seed", self.seed, low=0, high=2**31 - 1)  # batch i draws from seed·2³² + i
