"""The tmath argument parser: one builder per subcommand; every option has a help line and shows its default."""

from __future__ import annotations

import argparse

from transformer_math.errors import TmathError
from transformer_math.units import COUNT_HELP, parse_count

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


class _BadCount(argparse.ArgumentTypeError):
    def __init__(self, error: TmathError) -> None:
        self.error = error
        super().__init__(str(error))


MODEL_HELP = "preset (tmath list), its Hugging Face id, a model in the local HF cache, or a config.json / model folder"


def _count(field: str, *, integer: bool = True) -> Callable[[str], int | float]:
    """An argparse type for sizes and counts written as people write them (128k, 15T, 1_024, 1e24)."""

    def parse(text: str) -> int | float:
        try:
            return parse_count(text, field=field, integer=integer)
        except TmathError as e:
            raise _BadCount(e) from None

    parse.__name__ = "count"
    return parse


def _columns() -> int:
    """The terminal's width for help text, found without shutil (argparse imports it, and its compression modules,
    for every option it adds when no width is given)."""
    import os

    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 80


class FMT(argparse.ArgumentDefaultsHelpFormatter):
    """Help with each option's default, wrapped to the terminal's width."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, width or _columns() - 2)


def _parser(command: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and its subparsers. Given the command about to run, only that subparser is built: building all
    twelve costs more start-up time than the whole analysis."""
    p = argparse.ArgumentParser(prog="tmath", description="Parameters, memory and FLOPs of LLMs, explained.",
                                epilog=f"sizes and counts: {COUNT_HELP}", exit_on_error=False, formatter_class=FMT)
    p.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True)
    subs = {}
    for name, (text, add_options) in COMMANDS.items():
        if command in (None, name):
            subs[name] = sub.add_parser(name, formatter_class=FMT, help=text, description=text, exit_on_error=False)
            add_options(subs[name])
    return p, subs


def _strict(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--strict", action="store_true",
                    help="a config key that looks like a misspelt one the model reads is an error, not a warning")


def _workload(sp: argparse.ArgumentParser, *, several: bool = False) -> None:
    if several:
        sp.add_argument("models", nargs="+", metavar="model", help=f"2 to 16 of: {MODEL_HELP}")
    else:
        sp.add_argument("model", help=MODEL_HELP)
    sp.add_argument("--batch", "-B", type=_count("--batch"), default=1, help="B: sequences")
    sp.add_argument("--context", "-L", type=_count("--context"), default=2048, help="L: tokens per sequence")
    sp.add_argument("--weight-dtype", default="auto",
                    help="auto (checkpoint: bf16 + its quantization_config), a dtype (bf16, fp8, int8, int4, "
                         "int4-g64-zp, nf4, mxfp4, nvfp4, GGUF q4_k, q6_k, q8_0, …), a GGUF scheme for the whole "
                         "model as llama-quantize mixes it (q4_k_m, q4_k_s, q5_k_m, q5_k_s, q3_k_m, q6_k, q8_0, "
                         "q4_0), or per group: experts=int4,*=bf16")
    sp.add_argument("--kv-dtype", default="bf16", help="KV-cache dtype")
    sp.add_argument("--attention", choices=("dense", "causal"), default="dense",
                    help="dense: full T×T scores (as eager attention and MFU count); causal: unmasked only")
    sp.add_argument("--recompute", choices=("none", "selective", "full"), default="none",
                    help="activation recomputation for training memory and FLOPs")
    _strict(sp)
    sp.add_argument("--activations", choices=("fused", "eager", "reference"), default="fused",
                    help="kernels whose saved tensors are counted: fused (flash attention), eager (HF) or reference "
                         "(transformer_math.reference in fp32, as the CPU trainer runs it)")


def _analyze(a: argparse.ArgumentParser) -> None:
    _workload(a)
    a.add_argument("--decoder-tokens", type=_count("--decoder-tokens"), default=None,
                   help="T_dec: decoder tokens of an encoder–decoder model (T5), whose encoder reads L (default: L)")
    a.add_argument("--json", action="store_true", help="machine-readable output (stable keys of conventions.md)")
    a.add_argument("--show-ignored", action="store_true", help="list the config keys read and ignored")
    a.add_argument("--ops", action="store_true", help="per-operation FLOPs table per layer kind: operation, output "
                                                      "shape, FLOPs")


def _compare(cmp: argparse.ArgumentParser) -> None:
    _workload(cmp, several=True)
    cmp.add_argument("--json", action="store_true",
                     help="machine-readable output: a list of one object per model, raw integers, stable keys")
    cmp.add_argument("--csv", metavar="FILE", help="also write one row per model to this CSV file (folders made)")


def _explain(e: argparse.ArgumentParser) -> None:
    _workload(e)
    e.add_argument("quantity", help="e.g. params.total, memory.kv_cache_bytes, flops.prefill; a plan's number with "
                                    "the serve/train options: serve.tpot --gpu h100-sxm, train.mfu --gpu … --gpus …")


def _serve(sv: argparse.ArgumentParser) -> None:
    from transformer_math.analysis.efficiency import list_engines

    sv.add_argument("model", help=MODEL_HELP)
    sv.add_argument("--gpu", required=True, help="device id (tmath hardware) or path to a device JSON file")
    _strict(sv)
    sv.add_argument("--tp", type=_count("--tp"), default=1, help="T_p: GPUs per replica (tensor parallel)")
    sv.add_argument("--dp", type=_count("--dp"), default=1, help="D_p: replicas (data parallel); throughput adds up")
    sv.add_argument("--ep", type=_count("--ep"), default=1,
                    help="E_p: ranks the routed experts spread over (divides T_p·D_p)")
    sv.add_argument("--batch", type=_count("--batch"), default=1, help="B: concurrent sequences per replica")
    sv.add_argument("--prompt", type=_count("--prompt"), default=1024, help="prompt tokens per sequence")
    sv.add_argument("--gen", type=_count("--gen"), default=256, help="generated tokens per sequence")
    sv.add_argument("--weight-dtype", default="auto",
                    help="auto (checkpoint + quantization_config); a dtype for the linear layers of the blocks "
                         "(embeddings, LM head, norms, routers stay 16-bit: bf16, fp8, int4, nvfp4, mxfp4, q4_k, …); "
                         "a GGUF scheme for the whole model (q4_k_m, q5_k_m, q6_k, q8_0, …); or per group: "
                         "experts=int4,*=bf16")
    sv.add_argument("--act-dtype", default="auto", choices=("auto", "bf16", "fp16", "fp8", "nvfp4", "mxfp4"),
                    help="activations the linear layers take: nvfp4/mxfp4 with FP4 weights is W4A4 at the device's "
                         "fp4 peak (Blackwell); bf16 keeps 4-bit weights weight-only (W4A16: bandwidth only); auto: "
                         "fp8 weights run W8A8, the rest at 16 bits. A dtype the device has no peak for is an error")
    sv.add_argument("--kv-dtype", default="bf16", help="KV-cache dtype")
    sv.add_argument("--engine", default="vllm", choices=list_engines(),
                    help="serving engine: its per-step CPU cost, kernel fusion and KV block size")
    sv.add_argument("--block", type=_count("--block"), default=None,
                    help="paged-KV block size in tokens (1: no paging; None: the engine's)")
    sv.add_argument("--gpu-memory-utilization", type=float, default=0.9,
                    help="share of HBM the engine may use (vLLM's setting)")
    sv.add_argument("--draft", help="draft model for speculative decoding (preset or config.json)")
    sv.add_argument("--draft-k", type=_count("--draft-k"), default=4, help="k: tokens the draft proposes per step")
    sv.add_argument("--acceptance", type=float, default=0.7, help="α: chance each drafted token is accepted")
    sv.add_argument("--json", action="store_true", help="machine-readable output (null times when it does not fit)")
    sv.add_argument("--explain", metavar="QUANTITY", help="the derivation of one number, e.g. serve.tpot, "
                                                          "memory.kv_cache")
    sv.add_argument("--plot", help="write roofline + latency/memory plots to this file prefix (PNG and SVG)")


def _train(tr: argparse.ArgumentParser) -> None:
    tr.add_argument("model", help=MODEL_HELP)
    tr.add_argument("--gpu", required=True, help="device id (tmath hardware) or path to a device JSON file")
    _strict(tr)
    tr.add_argument("--gpus", type=_count("--gpus"),
                    help="n_GPU = T_p·P_p·D_p·C_p (D_p follows from it unless --dp is given)")
    tr.add_argument("--tp", type=_count("--tp"), default=1, help="T_p: tensor parallel")
    tr.add_argument("--pp", type=_count("--pp"), default=1, help="P_p: pipeline stages")
    tr.add_argument("--dp", type=_count("--dp"), default=None, help="D_p: data parallel (None: gpus / (T_p·P_p·C_p))")
    tr.add_argument("--cp", type=_count("--cp"), default=1, help="C_p: context parallel (ring attention)")
    tr.add_argument("--ep", type=_count("--ep"), default=1, help="E_p: expert parallel, from the data × context ranks")
    tr.add_argument("--global-batch", type=_count("--global-batch"), required=True,
                    help="B: sequences per optimizer step")
    tr.add_argument("--seq", type=_count("--seq"), default=4096, help="s: tokens per sequence")
    tr.add_argument("--micro-batch", type=_count("--micro-batch"), default=1, help="b: sequences per micro-batch")
    tr.add_argument("--recompute", choices=("none", "selective", "full"), default="none",
                    help="activation recomputation")
    tr.add_argument("--zero", type=int, choices=(0, 1, 2, 3), default=1,
                    help="ZeRO stage: 1 optimizer states, 2 + gradients, 3 + parameters (FSDP) sharded")
    tr.add_argument("--sequence-parallel", action=argparse.BooleanOptionalAction, default=None,
                    help="split norms and residuals over T_p too (default: on when T_p > 1)")
    tr.add_argument("--interleave", type=_count("--interleave"), default=1,
                    help="v: model chunks per pipeline stage (interleaved 1F1B)")
    tr.add_argument("--schedule", choices=("1f1b", "gpipe"), default="1f1b", help="pipeline schedule")
    tr.add_argument("--precision", choices=("bf16", "fp8", "fp4"), default="bf16",
                    help="linear layers' precision (attention and norms stay 16-bit)")
    tr.add_argument("--optimizer", choices=("adamw", "adam8bit", "sgd", "adafactor"), default="adamw",
                    help="optimizer (state bytes per parameter)")
    tr.add_argument("--finetune", choices=("full", "lora", "qlora"), default="full", help="what is trained")
    tr.add_argument("--lora-rank", type=_count("--lora-rank"), default=16, help="r: LoRA rank")
    tr.add_argument("--lora-targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                    help="modules LoRA wraps")
    tr.add_argument("--flash-attention", action=argparse.BooleanOptionalAction, default=True,
                    help="fused attention kernels (off: scores materialized, as Megatron-LM 2021)")
    tr.add_argument("--tokens", type=_count("--tokens", integer=False), default=0,
                    help="T_train: tokens to train on (for days and cost), e.g. 15T")
    tr.add_argument("--price", type=float, default=2.0, help="$ per GPU-hour")
    tr.add_argument("--search", action="store_true", help="rank every parallel layout of --gpus GPUs that fits")
    tr.add_argument("--top", type=_count("--top"), default=10, help="rows --search prints")
    tr.add_argument("--json", action="store_true", help="machine-readable output (null times when it does not fit)")
    tr.add_argument("--explain", metavar="QUANTITY", help="the derivation of one number, e.g. train.mfu, "
                                                           "memory.activations, train.step_time")


def _chinchilla(ch: argparse.ArgumentParser) -> None:
    ch.add_argument("--flops", type=_count("--flops", integer=False), required=True,
                    help="C: training FLOPs, e.g. 1e24")
    ch.add_argument("--gpu", default="h100-sxm", help="device for the cost estimate")
    ch.add_argument("--mfu", type=float, default=0.40, help="assumed MFU for the cost estimate")
    ch.add_argument("--price", type=float, default=2.0, help="$ per GPU-hour")
    ch.add_argument("--json", action="store_true", help="machine-readable output")


def _hardware(hw: argparse.ArgumentParser) -> None:
    hw.add_argument("--json", action="store_true", help="machine-readable output")


def _web(wb: argparse.ArgumentParser) -> None:
    wb.add_argument("--host", default="127.0.0.1",
                    help="bind address (default 127.0.0.1: this machine only; others are warned about)")
    wb.add_argument("--port", type=int, default=8000, help="TCP port, 1 to 65535")


def _sweep(sw: argparse.ArgumentParser) -> None:
    sw.add_argument("model", help=MODEL_HELP)
    sw.add_argument("--batch", default="1,2,4,8,16,32,64", help="batch sizes B, comma-separated")
    sw.add_argument("--context", default="512,1024,2048,4096,8192,16384,32768",
                    help="context lengths L, comma-separated")
    sw.add_argument("--kv-dtype", default="bf16,fp8", help="KV-cache dtypes, comma-separated")
    sw.add_argument("--tp", default="1", help="tensor-parallel degrees, e.g. 1,2,4,8 (per-GPU memory)")
    sw.add_argument("--csv", required=True, help="output CSV path")
    sw.add_argument("--plot", help="output plot path (PNG or SVG)")


def _symbols(sy: argparse.ArgumentParser) -> None:
    sy.add_argument("--markdown", action="store_true", help="a Markdown table instead of text")


def _calibrate(cal: argparse.ArgumentParser) -> None:
    cal.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="what to measure: auto (the first CUDA GPU if torch sees one, else the CPU), cpu or cuda")
    cal.add_argument("--budget", type=float, default=60.0, metavar="SECONDS",
                     help="wall-clock seconds the measurements may take (1 to 86400); the largest shapes go first")
    cal.add_argument("-o", "--output", metavar="FILE", default=argparse.SUPPRESS,
                     help="device JSON to write (default: calibrated-<device name>.json in the current directory)")


def _train_tiny(tt: argparse.ArgumentParser) -> None:
    # The defaults are training/tiny.py TinyConfig's (≈ 1 minute on 2 CPU cores); they are repeated here rather than
    # read from it, so that `tmath train-tiny --help` needs no torch.
    tt.add_argument("--steps", type=_count("--steps"), default=600, help="S: optimizer steps")
    tt.add_argument("--batch", type=_count("--batch"), default=16, help="b: sequences per step")
    tt.add_argument("--seq", type=_count("--seq"), default=128, help="T: bytes (tokens) per sequence")
    tt.add_argument("--seed", type=int, default=0, help="seeds the model, the batches and the sampler")
    tt.add_argument("--lr", type=float, default=3e-3, help="η: peak AdamW learning rate (cosine decay to η/10)")
    tt.add_argument("--warmup", type=_count("--warmup"), default=20, help="W: linear warmup steps")
    tt.add_argument("--d-model", type=_count("--d-model"), default=128, help="d: model width")
    tt.add_argument("--layers", type=_count("--layers"), default=4, help="N_L: layers")
    tt.add_argument("--heads", type=_count("--heads"), default=4, help="h_q: query heads")
    tt.add_argument("--kv-heads", type=_count("--kv-heads"), default=2, help="h_kv: key/value heads (GQA)")
    tt.add_argument("--d-ff", type=_count("--d-ff"), default=384, help="SwiGLU hidden width")
    tt.add_argument("--prompt", default="Once upon a time", help="text the samples continue")
    tt.add_argument("--sample-tokens", type=_count("--sample-tokens"), default=112,
                    help="bytes sampled after the prompt (with the prompt's 16, the 128 positions trained on)")
    tt.add_argument("--samples", type=_count("--samples"), default=3, help="samples drawn (one batch)")
    tt.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
    tt.add_argument("--top-k", type=int, default=20, help="sample from the k most likely bytes (0: all)")
    tt.add_argument("--profile", default="auto",
                    help="device JSON for the step-time prediction; auto: a 10 s `tmath calibrate` of this CPU, run "
                         "once and cached; none: no time rows")
    tt.add_argument("--corpus", default=None, help="a text file to train on (default: the shipped stories)")
    tt.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    tt.add_argument("--json", action="store_true", help="machine-readable output: losses, samples, measured vs "
                                                        "predicted rows")


def _nothing(sp: argparse.ArgumentParser) -> None:
    """`tmath list` takes no options."""


# Each subcommand: its one-line help and the function that adds its arguments.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "analyze": ("parameters, memory and FLOPs of a model", _analyze),
    "compare": ("2 to 16 models side by side: shape, parameters, memory and FLOPs under one workload", _compare),
    "explain": ("the derivation of one quantity, e.g. memory.kv_cache_bytes", _explain),
    "list": ("shipped presets", _nothing),
    "hardware": ("shipped accelerators (or pass --gpu a JSON file of your own)", _hardware),
    "serve": ("serving plan: fits, max batch/context, TTFT, TPOT, tokens/s (exit 3 if it does not fit)", _serve),
    "train": ("training plan: memory per GPU, step time, MFU, days, cost; --search (exit 3 if no fit)", _train),
    "chinchilla": ("compute-optimal N and D for a budget C (Hoffmann et al. 2022)", _chinchilla),
    "web": ("start the local web app (needs the [web] extra)", _web),
    "sweep": ("grid of memory/FLOPs over batch × context (× dtype), CSV and plot", _sweep),
    "symbols": ("the symbol dictionary", _symbols),
    "calibrate": ("measure this machine (GEMM, bandwidth, attention, launch) with torch; write a device JSON",
                  _calibrate),
    "train-tiny": ("train a byte-level Llama on the shipped stories on the CPU (≈ 1 min), sample it, and compare "
                   "what it measured with the analyzer (needs the [torch] extra)", _train_tiny),
}


class _Version(argparse.Action):
    """--version: the installed version is looked up only when asked (importlib.metadata costs start-up time)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        print(f"tmath {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformer-math")
    except PackageNotFoundError:
        return "unknown (not installed)"
