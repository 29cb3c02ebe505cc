"""`tmath train-tiny`: train a byte-level Llama on the shipped story corpus on the CPU, sample from it, and set what
the run measured beside what the analyzer predicts.

    from transformer_math.training.tiny import TinyConfig, run_tiny, render
    result = run_tiny(TinyConfig())                   # ≈ 1 minute on 2 CPU cores
    print(render(result)); result.to_dict()           # the table; the --json object

The model: V = 256 (one token per byte, so no tokenizer is shipped and any text encodes), d = 128, 4 layers, 4 query
heads sharing 2 KV heads (GQA), d_h = 32, SwiGLU with d_ff = 384, RMSNorm, RoPE, untied head: 853,120 parameters,
trained in fp32 with AdamW on b = 16 sequences of T = 128 bytes per step (11.7 GFLOPs a step). Chance level is
ln V = 5.545 nats per byte; the corpus (presets/corpus/stories.txt, composed by presets/corpus/compose.py) is
repetitive enough that 600 steps bring the loss from 5.77 to 0.18 (held-out 0.21), in 50 s on 2 idle CPU cores
(83 ms a step; the first run adds a 10 s calibration). A busy machine is slower: there `--threads 1` helps, since
two threads that wait on each other stall far more than one.

What is compared (each measured on the run itself; "exact" rows must be equal, the time rows are estimates):
  parameters        Σ numel over model.parameters()                        params.total                 exact
  optimizer state   nbytes of AdamW's exp_avg and exp_avg_sq tensors      optimizer_bytes, b_master = 0 exact
  FLOPs per step    FlopCounterMode over step 0 (forward, backward, AdamW;  flops.train_step             exact
                    SDPA in its math form: the fused CPU kernel is invisible to the counter)
  activations       distinct storages saved for backward (saved_tensors_hooks; parameters left out) in one
                    training forward with its loss                     memory.activations_bytes (reference) exact
  KV cache          the cache's nbytes() after sampling                   memory.kv_cache_bytes (fp32)  exact
  step time         median wall time of steps 2… (step 0 is counted, step 1 warms up)  train.step_time  estimate
  tokens/s          b·T / step time                                         train.tokens_per_s        estimate
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor, nn

from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError, check_int, check_number
from transformer_math.training.config import TrainConfig
from transformer_math.training.loop import Batch, Trainer, loss_fn

VOCAB = 256  # bytes: the tokenizer is bytes(text) itself
CORPUS = Path(__file__).resolve().parents[1] / "presets" / "corpus" / "stories.txt"
HELD_OUT = 0.1  # the corpus's last tenth is never trained on: the held-out loss reads it
HELD_OUT_BATCHES = 8
CALIBRATE_S = 10.0  # a short `tmath calibrate` on the CPU, done once and cached (the profile is the machine's)
MIN_FIT_ROWS = 6  # fp32 GEMM rows needed to fit η and both shape terms (fp32_device)
PROFILE_ENV = "TMATH_CACHE_DIR"  # where the calibrated CPU profile is cached (default: $XDG_CACHE_HOME/tmath)


@dataclass(frozen=True, kw_only=True, slots=True)
class TinyConfig:
    """One train-tiny run. Validated once, here: a bad value raises TmathError(field, value, allowed)."""

    steps: int = 600            # S: optimizer steps
    batch: int = 16             # b: sequences per step (one micro-batch)
    seq: int = 128              # T: bytes per sequence
    seed: int = 0               # model init, batches and sampling
    lr: float = 3e-3            # η: peak AdamW learning rate (a model this small takes a large one)
    warmup: int = 20            # W: linear warmup steps, then cosine decay to 0.1·η at step S
    d_model: int = 128          # d
    layers: int = 4             # N_L
    heads: int = 4              # h_q
    kv_heads: int = 2           # h_kv (GQA: h_q / h_kv query heads share each K/V head)
    d_ff: int = 384             # SwiGLU hidden width
    prompt: str = "Once upon a time"
    sample_tokens: int = 112    # n: bytes sampled after the prompt (16 + 112 = T: positions the model trained on)
    samples: int = 3            # sequences sampled at once (the KV cache holds all of them)
    temperature: float = 0.8
    top_k: int | None = 20
    profile: str = "auto"       # device JSON for the time rows; auto: a cached short CPU calibration; none: skip
    corpus: str | None = None   # a text file to train on instead of the shipped stories
    threads: int = 0            # torch CPU threads for calibration, training and sampling (0: torch's default)

    def __post_init__(self) -> None:
        check_int("steps", self.steps, low=1, high=1_000_000)
        check_int("batch", self.batch, low=1, high=4096)
        check_int("seq", self.seq, low=2, high=8192)
        check_int("seed", self.seed, low=0, high=2**31 - 1)
        check_number("lr", self.lr, low=0.0, high=10.0, open_low=True)
        check_int("warmup", self.warmup, low=0, high=self.steps)
        check_int("d_model", self.d_model, low=2, high=8192)
        check_int("layers", self.layers, low=1, high=256)
        check_int("heads", self.heads, low=1, high=self.d_model)
        check_int("kv_heads", self.kv_heads, low=1, high=self.heads)
        if self.heads % self.kv_heads:
            raise TmathError("kv_heads", self.kv_heads, f"a divisor of heads = {self.heads}")
        if self.d_model % self.heads or (self.d_model // self.heads) % 2:
            raise TmathError("heads", self.heads, f"a divisor of d_model = {self.d_model} leaving an even head "
                                                  "width (RoPE rotates pairs)")
        check_int("d_ff", self.d_ff, low=1, high=65536)
        if not isinstance(self.prompt, str) or not self.prompt.encode("utf-8"):
            raise TmathError("prompt", self.prompt, "a non-empty string")
        check_int("sample_tokens", self.sample_tokens, low=1, high=100_000)
        check_int("samples", self.samples, low=1, high=64)
        check_number("temperature", self.temperature, low=0.0, high=100.0, open_low=True)
        if self.top_k is not None:
            check_int("top_k", self.top_k, low=1, high=VOCAB)
        if not isinstance(self.profile, str) or not self.profile:
            raise TmathError("profile", self.profile, "auto, none or a path to a device JSON file")
        check_int("threads", self.threads, low=0, high=1024)
        if self.corpus is not None and not os.path.isfile(self.corpus):
            raise TmathError("corpus", self.corpus, "a path to a text file")


# ---- data ------------------------------------------------------------------------------------------------------------


def encode(text: str) -> Tensor:
    """Token ids of `text`: its UTF-8 bytes (V = 256)."""
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)


def decode(ids: Tensor) -> str:
    """The text of byte ids; a byte sequence that is not UTF-8 (a model may emit one) shows as U+FFFD."""
    return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


def load_corpus(path: str | os.PathLike[str] | None = None) -> bytes:
    data = Path(path or CORPUS).read_bytes()
    if len(data) < 64:
        raise TmathError("corpus", str(path or CORPUS), "a text file of at least 64 bytes")
    return data


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class CorpusBatches:
    """Batch i, a pure function of (seed, i) as loop.TokenBatches is: b windows of T bytes at offsets drawn from
    a generator seeded with seed·2³² + i, so a run is reproducible and resumable from i alone."""

    tokens: Tensor  # the corpus part to draw from, int64 byte ids
    batch: int
    seq_len: int
    seed: int = 0

    def __call__(self, index: int) -> Batch:
        g = torch.Generator().manual_seed((self.seed << 32) + index)
        starts_B = torch.randint(0, self.tokens.numel() - self.seq_len + 1, (self.batch,), generator=g)
        ids_BT = self.tokens[starts_B[:, None] + torch.arange(self.seq_len)]
        return Batch(ids_BT, ids_BT)


def split(data: bytes, seq: int) -> tuple[Tensor, Tensor]:
    """(train, held-out) byte ids: the last HELD_OUT share is held out, each part at least one window long."""
    ids = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
    cut = min(max(seq, int(len(ids) * (1 - HELD_OUT))), len(ids) - seq)
    if cut < seq:
        raise TmathError("seq", seq, f"at most {len(ids) // 2} for a corpus of {len(ids)} bytes")
    return ids[:cut], ids[cut:]


# ---- the model -----------------------------------------------------------------------------------------------


def tiny_config(cfg: TinyConfig) -> dict[str, Any]:
    """The Hugging Face config.json of the model (llama), as `tmath analyze` would read it."""
    return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": VOCAB,
            "hidden_size": cfg.d_model, "intermediate_size": cfg.d_ff, "num_hidden_layers": cfg.layers,
            "num_attention_heads": cfg.heads, "num_key_value_heads": cfg.kv_heads, "hidden_act": "silu",
            "max_position_embeddings": max(cfg.seq, len(cfg.prompt.encode("utf-8")) + cfg.sample_tokens),
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False}


def tiny_spec(cfg: TinyConfig) -> ModelSpec:
    from transformer_math.config import load_model

    return load_model(tiny_config(cfg))


# ---- measurements --------------------------------------------------------------------------------------------------


def saved_activation_bytes(model: nn.Module, batch: Batch, cfg: TrainConfig) -> int:
    """Bytes of the distinct storages autograd saves in one training forward with its loss (loss_fn, the trainer's
    own path). Views of one storage count once, at its size; parameters (weights a matmul saves) are not
    activations. The same count as checks/execution.py saved_activation_bytes, on the reference modules."""
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in params:
            seen[key] = max(seen.get(key, 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_fn(model, batch, cfg)
    return sum(seen.values())


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """nbytes of AdamW's moments m (exp_avg) and v (exp_avg_sq); the per-tensor step counters (one fp32 scalar per
    parameter tensor) are bookkeeping, not per-parameter state, and are left out as the formula leaves them."""
    return sum(t.numel() * t.element_size() for state in optimizer.state.values()
               for name, t in state.items() if name in ("exp_avg", "exp_avg_sq"))


def counted_step(trainer: Trainer) -> int:
    """One real training step (forward, backward, clipping, AdamW) under FlopCounterMode; its FLOPs. SDPA runs in
    its math form, whose matmuls the counter sees (the fused CPU kernel is not counted at all)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        trainer.train_steps(1)
    return int(counter.get_total_flops())


@torch.no_grad()
def held_out_loss(model: nn.Module, tokens: Tensor, cfg: TrainConfig, seed: int) -> float:
    """Mean cross-entropy (nats per byte) over HELD_OUT_BATCHES fixed batches of held-out windows."""
    data = CorpusBatches(tokens=tokens, batch=cfg.micro_batch, seq_len=cfg.seq_len, seed=seed + 1)
    model.eval()
    losses = [float(loss_fn(model, data(i), cfg).ce) for i in range(HELD_OUT_BATCHES)]
    model.train()
    return sum(losses) / len(losses)


# ---- the device profile for the time rows -------------------------------------------------------------------------


def cache_dir() -> Path:
    env = os.environ.get(PROFILE_ENV)
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tmath"


def resolve_profile(profile: str, log: Callable[[str], None]) -> str | None:
    """The device JSON path to predict step time with: the path given; for auto, the cached calibration of this
    CPU (a CALIBRATE_S-second `tmath calibrate --device cpu` run the first time); None for none."""
    if profile == "none":
        return None
    if profile != "auto":
        from transformer_math.config.hardware import load_hardware

        load_hardware(profile)  # a bad file fails here, before training
        return profile
    from transformer_math.checks.calibrate.fit import slug
    from transformer_math.checks.calibrate.measure import _cpu_name

    # the thread count is part of the machine calibrate measures: a profile per count
    path = cache_dir() / f"calibrated-{slug(_cpu_name())}-{torch.get_num_threads()}t.json"
    if path.is_file():
        return str(path)
    from transformer_math.checks import calibrate

    log(f"calibrating this CPU for {CALIBRATE_S:g} s (once; cached in {path}) ...")
    prof = calibrate.run("cpu", CALIBRATE_S)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(prof, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return str(path)


def fp32_device(profile: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The device JSON as the plan should see an fp32 run, and how it was derived.

    The plan prices every GEMM at the 16-bit peak with shape terms (η, dim_half, rows_half) fitted to calibrate's
    bf16 GEMMs. A CPU's bf16 and fp32 GEMMs differ several-fold in rate and in how it falls with small shapes (AMX
    needs large tiles), so the 16-bit peak and the GEMM terms are refitted here to the profile's fp32 GEMM rows with
    calibrate's own fit; attention keeps its measured absolute rate (calibrate times SDPA in bf16 only: an
    approximation). Bytes moved stay priced at 2 per element, as the plan's bf16 training moves them."""
    from transformer_math.checks.calibrate.fit import fit_gemm

    out: dict[str, Any] = json.loads(json.dumps(profile))  # a copy
    peaks, m = out.get("peak_flops_per_s", {}), out.get("measurements") or {}
    rows = [x for x in m.get("gemm") or [] if x.get("dtype") == "fp32" and x.get("seconds", 0) > 0]
    if "fp32" not in peaks or not rows:
        return out, "priced at the profile's 16-bit GEMM rate (it has no fp32 GEMM measurements)"
    bandwidth = m["bandwidth"].get("gemv") or m["bandwidth"]
    if len(rows) >= MIN_FIT_ROWS:
        top, h, r = fit_gemm(rows, peaks["fp32"], bandwidth["bytes_per_s"], m["launch_s"])
    else:  # three shape terms from a few rows extrapolate wildly: the best row's rate, flat over shapes
        top, h, r = max(x["flop_per_s"] for x in rows) / peaks["fp32"], 0.0, 0.0
    eff = out.setdefault("efficiency", {})
    old_peak = peaks.get("bf16") or peaks["fp32"]
    if "attention" in eff:
        eff["attention"] *= old_peak / peaks["fp32"]  # the same FLOP/s against the new peak
    eff.update(gemm=top, gemm_dim_half=h, gemm_rows_half=r)
    peaks["bf16"] = peaks["fp32"]
    return out, (f"GEMMs refitted to the profile's {len(rows)} fp32 GEMM rows ({peaks['fp32'] / 1e9:.0f} GFLOP/s best, "
                 f"η {top:.3g}, dim_half {h:.4g}, rows_half {r:.4g}); attention at its measured bf16 SDPA rate")


def predicted_step_time(spec: ModelSpec, profile: str, *, batch: int, seq: int) -> tuple[float, str]:
    """train.step_time of the performance model for one step of b sequences of T tokens on one device, and how the
    device was read: a device JSON file through fp32_device, a shipped device id as it is (its bf16 rates)."""
    import transformer_math as tm
    from transformer_math.config.hardware import hardware_from_dict, load_hardware

    if os.path.isfile(profile):
        with open(profile, encoding="utf-8") as f:
            device, how = fp32_device(json.load(f))
        hw = hardware_from_dict(device, where=profile)
    else:
        hw, how = load_hardware(profile), "a shipped device, priced at its bf16 rates"
    plan = tm.train(spec, hw, global_batch=batch, seq=seq, gpus=1, micro_batch=batch, suggest=False).plan
    return float(plan["train.step_time"]), how


# ---- the run ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Row:
    """One measured-vs-predicted line. Units: integer counts, bytes and FLOPs; float seconds and tokens/s."""

    key: str
    label: str
    unit: str
    measured: int | float
    predicted: int | float | None  # None: the analyzer cannot predict it yet (note says why)
    exact: bool  # must be equal; otherwise an estimate with its relative error
    note: str = ""

    @property
    def error(self) -> float | None:
        """predicted / measured − 1."""
        if self.predicted is None or not self.measured:
            return None
        return self.predicted / self.measured - 1

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "unit": self.unit, "measured": self.measured, "predicted": self.predicted,
                "exact": self.exact, "equal": None if self.predicted is None else self.measured == self.predicted,
                "relative_error": self.error, "note": self.note}


@dataclass(frozen=True, kw_only=True, slots=True)
class TinyResult:
    config: TinyConfig
    model_config: dict[str, Any]
    params: int
    corpus: str
    corpus_bytes: int
    train_bytes: int
    losses: tuple[float, ...]  # the loss of every step, nats per byte
    held_out: float
    wall_s: float  # training loop only
    threads: int
    samples: tuple[str, ...]
    rows: tuple[Row, ...]
    profile: str | None
    notes: tuple[str, ...] = field(default=())

    @property
    def initial_loss(self) -> float:
        return self.losses[0]

    @property
    def final_loss(self) -> float:
        """Mean over the last 10 steps (or fewer): one batch's loss is noisy."""
        tail = self.losses[-10:]
        return sum(tail) / len(tail)

    def to_dict(self) -> dict[str, Any]:
        return {"config": dataclasses.asdict(self.config), "model": self.model_config, "params": self.params,
                "corpus": {"path": self.corpus, "bytes": self.corpus_bytes, "train_bytes": self.train_bytes},
                "loss": {"initial": self.initial_loss, "final": self.final_loss, "held_out": self.held_out,
                         "ln_vocab": math.log(VOCAB), "per_step": list(self.losses)},
                "wall_s": self.wall_s, "threads": self.threads, "samples": list(self.samples),
                "profile": self.profile, "rows": {r.key: r.to_dict() for r in self.rows}, "notes": list(self.notes)}


class Progress:
    """A progress bar on a stream: redrawn in place on a terminal; elsewhere silent until the final line."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream, self.total = stream, total
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.t0 = time.perf_counter()

    def update(self, done: int, loss: float) -> None:
        if not self.tty:
            return
        spent = time.perf_counter() - self.t0
        eta = spent / done * (self.total - done) if done else 0.0
        filled = round(30 * done / self.total)
        self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} loss {loss:.3f} "
                          f"{spent:.0f} s, ETA {eta:.0f} s ")
        self.stream.flush()

    def close(self, text: str) -> None:
        self.stream.write(("\r" + " " * 79 + "\r" if self.tty else "") + text + "\n")
        self.stream.flush()


def run_tiny(cfg: TinyConfig, *, log: TextIO | None = None) -> TinyResult:
    """Train, sample and measure (module docstring); progress and notes go to `log` (stderr by default).
    cfg.threads sets torch's thread count for the run only (a shared machine runs faster on fewer)."""
    before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, sys.stderr if log is None else log)
    finally:
        torch.set_num_threads(before)


def _run(cfg: TinyConfig, stream: TextIO) -> TinyResult:
    import transformer_math as tm
    from transformer_math.analysis.memory import training_state_bytes
    from transformer_math.reference import GenerationConfig, Model, generate

    def say(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    profile = resolve_profile(cfg.profile, say)  # before training: a calibration must not share the cores with it
    data = load_corpus(cfg.corpus)
    train_ids, held_ids = split(data, cfg.seq)
    spec = tiny_spec(cfg)
    tcfg = TrainConfig(lr=cfg.lr, warmup_steps=cfg.warmup, total_steps=cfg.steps, micro_batch=cfg.batch,
                       seq_len=cfg.seq, seed=cfg.seed, weight_decay=0.1, grad_clip=1.0, beta2=0.99)
    torch.manual_seed(cfg.seed)
    model = Model(spec)  # the decoder-only reference model (build(spec) picks it for this spec)
    batches = CorpusBatches(tokens=train_ids, batch=cfg.batch, seq_len=cfg.seq, seed=cfg.seed)
    trainer = Trainer(model, tcfg, batches)

    # Analyzer: the same B and T the run uses; fp32 everything (the reference profile is fp32 training).
    report = tm.analyze(spec, batch=cfg.batch, context=cfg.seq)
    acts_pending = ""
    try:
        acts_pred: int | None = int(tm.analyze(spec, batch=cfg.batch, context=cfg.seq, conventions=tm.Conventions(
            activations="reference"))["memory.activations_bytes"])
    except TmathError as e:
        acts_pred, acts_pending = None, f"pending: the analyzer has no reference profile yet ({e.allowed})"
    acts = saved_activation_bytes(model, batches(0), tcfg)

    progress = Progress(stream, cfg.steps)
    t0 = time.perf_counter()
    flops = counted_step(trainer)
    times: list[float] = []
    progress.update(1, trainer.history[-1].loss)
    for i in range(1, cfg.steps):
        t = time.perf_counter()
        trainer.train_steps(1)
        times.append(time.perf_counter() - t)
        progress.update(i + 1, trainer.history[-1].loss)
    wall = time.perf_counter() - t0
    losses = tuple(e.loss for e in trainer.history)
    held = held_out_loss(model, held_ids, tcfg, cfg.seed)
    progress.close(f"trained {cfg.steps} steps in {wall:.1f} s: loss {losses[0]:.3f} -> {losses[-1]:.3f} "
                   f"(ln V = {math.log(VOCAB):.3f})")

    # Sampling fills a fresh cache: after n new tokens it holds T_prompt + n − 1 (the last is never fed back).
    prompt_BT = encode(cfg.prompt).expand(cfg.samples, -1).contiguous()
    model.eval()
    cache = model.new_cache()
    gen = GenerationConfig(max_new_tokens=cfg.sample_tokens, do_sample=True, temperature=cfg.temperature,
                           top_k=cfg.top_k)
    out_BT = generate(model, prompt_BT, gen, seed=cfg.seed, cache=cache)
    samples = tuple(decode(row) for row in out_BT)
    L_kv = out_BT.shape[1] - 1
    kv_pred = int(tm.analyze(spec, batch=cfg.samples, context=L_kv, kv_dtype="fp32")["memory.kv_cache_bytes"])

    P = sum(p.numel() for p in model.parameters())
    opt_pred = int(training_state_bytes(P, b_master=0)[1].value)
    timed = times[1:] or times  # step 1 warms up the default SDPA kernel's caches after the counted step
    rows = [
        Row(key="params", label="parameters", unit="count", measured=P, predicted=int(report["params.total"]),
            exact=True, note="sum of numel vs params.total"),
        Row(key="optimizer_bytes", label="optimizer state (AdamW m, v)", unit="bytes",
            measured=optimizer_state_bytes(trainer.optimizer), predicted=opt_pred, exact=True,
            note="fp32 run: no master copy, so P·(0 + 4 + 4); memory.optimizer_bytes assumes mixed precision "
                 f"(P·(4 + 4 + 4) = {int(report['memory.optimizer_bytes']):,})"),
        Row(key="flops_per_step", label="FLOPs per step", unit="FLOPs", measured=flops,
            predicted=int(report["flops.train_step"]), exact=True,
            note="FlopCounterMode over step 0 (SDPA math form) vs flops.train_step (dense attention convention)"),
        Row(key="activation_bytes", label="saved activations per micro-batch", unit="bytes", measured=acts,
            predicted=acts_pred, exact=True,
            note=acts_pending or "saved_tensors_hooks vs memory.activations_bytes, activations=reference"),
        Row(key="kv_cache_bytes", label=f"KV cache ({cfg.samples} × {L_kv} tokens)", unit="bytes",
            measured=cache.nbytes(), predicted=kv_pred, exact=True, note="cache nbytes() vs memory.kv_cache_bytes, "
                                                                         "kv_dtype fp32"),
    ]
    notes = []
    step_s = statistics.median(timed) if timed else wall
    if profile is not None:
        t_pred, how = predicted_step_time(spec, profile, batch=cfg.batch, seq=cfg.seq)
        tokens = cfg.batch * cfg.seq
        mean_s = statistics.fmean(timed) if timed else wall
        rows += [Row(key="step_time_s", label="step time", unit="s", measured=step_s, predicted=t_pred, exact=False,
                     note=f"median of steps 2… (mean {mean_s * 1e3:.1f} ms with the stalls of a busy machine) vs "
                          f"train.step_time; {how}"),
                 Row(key="tokens_per_s", label="tokens/s", unit="tokens/s", measured=tokens / step_s,
                     predicted=tokens / t_pred, exact=False, note="b·T / step time")]
    else:
        notes.append("no device profile (--profile none): step time not predicted")
    return TinyResult(config=cfg, model_config=tiny_config(cfg), params=P, corpus=str(cfg.corpus or CORPUS.name),
                      corpus_bytes=len(data), train_bytes=int(train_ids.numel()), losses=losses, held_out=held,
                      wall_s=wall, threads=torch.get_num_threads(), samples=samples, rows=tuple(rows),
                      profile=profile, notes=tuple(notes))


# ---- output ---------------------------------------------------------------------------------------------------------


def _shown(row: Row, value: int | float | None) -> str:
    if value is None:
        return "pending"
    if row.unit == "bytes":
        from transformer_math.units import fmt_bytes

        return f"{value:,} ({fmt_bytes(value)})" if value >= 1024 else f"{value:,} B"
    if row.unit == "s":
        return f"{value * 1e3:.1f} ms"
    if row.unit == "tokens/s":
        return f"{value:,.0f}"
    return f"{value:,}"


def _verdict(row: Row) -> str:
    if row.predicted is None:
        return "pending"
    if row.exact:
        return "exact" if row.measured == row.predicted else f"DIFFERS by {row.predicted - row.measured:+,}"
    err = row.error
    return f"{err:+.1%}" if err is not None else "-"


def render(r: TinyResult) -> str:
    c = r.config
    lines = [f"model: byte-level Llama, V = {VOCAB}, d = {c.d_model}, {c.layers} layers, {c.heads} heads / "
             f"{c.kv_heads} KV heads, SwiGLU d_ff = {c.d_ff}: {r.params:,} parameters, fp32 on CPU "
             f"({r.threads} threads)",
             f"corpus: {r.corpus}, {r.corpus_bytes:,} bytes ({r.train_bytes:,} trained on, the rest held out)",
             f"training: {c.steps} steps of {c.batch} × {c.seq} bytes, AdamW η = {c.lr:g}, warmup {c.warmup}, "
             f"cosine to {0.1 * c.lr:g}, seed {c.seed}",
             f"loss (nats/byte): initial {r.initial_loss:.3f}, final {r.final_loss:.3f} (mean of the last "
             f"{min(10, len(r.losses))} steps), held-out {r.held_out:.3f}; ln V = {math.log(VOCAB):.3f}; "
             f"{r.wall_s:.1f} s",
             "",
             f"samples (temperature {c.temperature:g}, top-k {c.top_k}):"]
    for i, s in enumerate(r.samples, 1):
        lines += [f"  {i}| {line}" for line in s.splitlines() if line.strip()]
    lines += ["", f"{'measured vs predicted':36s} {'measured':>24s} {'predicted':>24s}  check"]
    for row in r.rows:
        lines.append(f"{row.label:36s} {_shown(row, row.measured):>24s} {_shown(row, row.predicted):>24s}  "
                     f"{_verdict(row)}")
    lines.append("")
    lines += [f"{row.label}: {row.note}" for row in r.rows]
    if r.profile:
        lines.append(f"device profile: {r.profile}")
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


def cli(args: Any) -> int:
    """`tmath train-tiny`: the run, then the table (or --json); exit 1 when an exact row differs."""
    cfg = TinyConfig(steps=args.steps, batch=args.batch, seq=args.seq, seed=args.seed, lr=args.lr,
                     warmup=min(args.warmup, args.steps), d_model=args.d_model, layers=args.layers, heads=args.heads,
                     kv_heads=args.kv_heads, d_ff=args.d_ff, prompt=args.prompt, sample_tokens=args.sample_tokens,
                     samples=args.samples, temperature=args.temperature, top_k=args.top_k or None,
                     profile=args.profile, corpus=args.corpus, threads=args.threads)
    result = run_tiny(cfg)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=1)
        print()
    else:
        print(render(result))
    differs = [row for row in result.rows if row.exact and row.predicted is not None and row.measured != row.predicted]
    return 1 if differs else 0
