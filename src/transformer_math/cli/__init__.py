"""tmath: a thin shell over analyze(). Errors print one line and exit 2; no tracebacks for bad input."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Sequence

from transformer_math.errors import TmathError
from transformer_math.units import COUNT_HELP, parse_count


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


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    from transformer_math.analysis.efficiency import list_engines

    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = argparse.ArgumentParser(prog="tmath", description="Parameters, memory and FLOPs of LLMs, explained.",
                                epilog=f"sizes and counts: {COUNT_HELP}", exit_on_error=False)
    p.add_argument("--version", action="version", version=f"tmath {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser = functools.partial(sub.add_parser, exit_on_error=False)  # type: ignore[method-assign]

    def strict(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--strict", action="store_true",
                        help="a config key that looks like a misspelt one the model reads is an error, not a warning")

    def workload(sp: argparse.ArgumentParser, *, several: bool = False) -> None:
        if several:
            sp.add_argument("models", nargs="+", metavar="model", help=f"2 to 16 of: {MODEL_HELP}")
        else:
            sp.add_argument("model", help=MODEL_HELP)
        sp.add_argument("--batch", "-B", type=_count("--batch"), default=1, help="B: sequences")
        sp.add_argument("--context", "-L", type=_count("--context"), default=2048, help="L: tokens per sequence")
        sp.add_argument("--weight-dtype", default="auto",
                        help="auto (checkpoint: bf16 + its quantization_config), a dtype (bf16, fp8, int8, int4, "
                             "int4-g64-zp, nf4, mxfp4), or per group: experts=int4,*=bf16")
        sp.add_argument("--kv-dtype", default="bf16", help="KV-cache dtype")
        sp.add_argument("--attention", choices=("dense", "causal"), default="dense",
                        help="dense: full T×T scores (as eager attention and MFU count); causal: unmasked only")
        sp.add_argument("--recompute", choices=("none", "selective", "full"), default="none",
                        help="activation recomputation for training memory and FLOPs")
        strict(sp)
        sp.add_argument("--activations", choices=("fused", "eager"), default="fused",
                        help="kernels whose saved tensors are counted: fused (flash attention) or eager (HF)")

    a = sub.add_parser("analyze", formatter_class=fmt, help="parameters, memory and FLOPs of a model")
    workload(a)
    a.add_argument("--json", action="store_true", help="machine-readable output (stable keys of conventions.md)")
    a.add_argument("--show-ignored", action="store_true", help="list the config keys read and ignored")
    a.add_argument("--ops", action="store_true", help="per-operation FLOPs table per layer kind (seed 001 layout)")
    cmp = sub.add_parser("compare", formatter_class=fmt,
                         help="2 to 16 models side by side: shape, parameters, memory and FLOPs under one workload")
    workload(cmp, several=True)
    cmp.add_argument("--json", action="store_true",
                     help="machine-readable output: a list of one object per model, raw integers, stable keys")
    cmp.add_argument("--csv", metavar="FILE", help="also write one row per model to this CSV file (folders made)")
    e = sub.add_parser("explain", formatter_class=fmt,
                       help="the derivation of one quantity, e.g. memory.kv_cache_bytes")
    workload(e)
    e.add_argument("quantity", help="e.g. params.total, memory.kv_cache_bytes, flops.prefill; a plan's number with "
                                    "the serve/train options: serve.tpot --gpu h100-sxm, train.mfu --gpu … --gpus …")
    sub.add_parser("list", formatter_class=fmt, help="shipped presets")
    hw = sub.add_parser("hardware", formatter_class=fmt,
                        help="shipped accelerators (or pass --gpu a JSON file of your own)")
    hw.add_argument("--json", action="store_true", help="machine-readable output")
    sv = sub.add_parser("serve", formatter_class=fmt,
                        help="serving plan: fits, max batch/context, TTFT, TPOT, tokens/s (exit 3 if it does not fit)")
    sv.add_argument("model", help=MODEL_HELP)
    sv.add_argument("--gpu", required=True, help="device id (tmath hardware) or path to a device JSON file")
    strict(sv)
    sv.add_argument("--tp", type=_count("--tp"), default=1, help="T_p: GPUs per replica (tensor parallel)")
    sv.add_argument("--dp", type=_count("--dp"), default=1, help="D_p: replicas (data parallel); throughput adds up")
    sv.add_argument("--ep", type=_count("--ep"), default=1,
                    help="E_p: ranks the routed experts spread over (divides T_p·D_p)")
    sv.add_argument("--batch", type=_count("--batch"), default=1, help="B: concurrent sequences per replica")
    sv.add_argument("--prompt", type=_count("--prompt"), default=1024, help="prompt tokens per sequence")
    sv.add_argument("--gen", type=_count("--gen"), default=256, help="generated tokens per sequence")
    sv.add_argument("--weight-dtype", default="auto",
                    help="auto (checkpoint + quantization_config); a dtype for the linear layers of the blocks "
                         "(embeddings, LM head, norms, routers stay 16-bit); or per group: experts=int4,*=bf16")
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
    sv.add_argument("--explain", metavar="QUANTITY", help="the derivation of one number, e.g. serve.tpot, memory.kv_cache")
    sv.add_argument("--plot", help="write roofline + latency/memory plots to this file prefix (PNG and SVG)")
    tr = sub.add_parser("train", formatter_class=fmt,
                        help="training plan: memory per GPU, step time, MFU, days, cost; --search (exit 3 if no fit)")
    tr.add_argument("model", help=MODEL_HELP)
    tr.add_argument("--gpu", required=True, help="device id (tmath hardware) or path to a device JSON file")
    strict(tr)
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
    ch = sub.add_parser("chinchilla", formatter_class=fmt,
                        help="compute-optimal N and D for a budget C (Hoffmann et al. 2022)")
    ch.add_argument("--flops", type=_count("--flops", integer=False), required=True,
                    help="C: training FLOPs, e.g. 1e24")
    ch.add_argument("--gpu", default="h100-sxm", help="device for the cost estimate")
    ch.add_argument("--mfu", type=float, default=0.40, help="assumed MFU for the cost estimate")
    ch.add_argument("--price", type=float, default=2.0, help="$ per GPU-hour")
    ch.add_argument("--json", action="store_true", help="machine-readable output")
    wb = sub.add_parser("web", formatter_class=fmt, help="start the local web app (needs the [web] extra)")
    wb.add_argument("--host", default="127.0.0.1",
                    help="bind address (default 127.0.0.1: this machine only; others are warned about)")
    wb.add_argument("--port", type=int, default=8000, help="TCP port, 1 to 65535")
    sw = sub.add_parser("sweep", formatter_class=fmt,
                        help="grid of memory/FLOPs over batch × context (× dtype), CSV and plot")
    sw.add_argument("model", help=MODEL_HELP)
    sw.add_argument("--batch", default="1,2,4,8,16,32,64", help="batch sizes B, comma-separated")
    sw.add_argument("--context", default="512,1024,2048,4096,8192,16384,32768",
                    help="context lengths L, comma-separated")
    sw.add_argument("--kv-dtype", default="bf16,fp8", help="KV-cache dtypes, comma-separated")
    sw.add_argument("--tp", default="1", help="tensor-parallel degrees, e.g. 1,2,4,8 (per-GPU memory)")
    sw.add_argument("--csv", required=True, help="output CSV path")
    sw.add_argument("--plot", help="output plot path (PNG or SVG)")
    s = sub.add_parser("symbols", formatter_class=fmt, help="the symbol dictionary")
    s.add_argument("--markdown", action="store_true", help="a Markdown table instead of text")
    cal = sub.add_parser("calibrate", formatter_class=fmt,
                         help="measure this machine (GEMM, bandwidth, attention, launch) with torch; write a device JSON")
    cal.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="what to measure: auto (the first CUDA GPU if torch sees one, else the CPU), cpu or cuda")
    cal.add_argument("--budget", type=float, default=60.0, metavar="SECONDS",
                     help="wall-clock seconds the measurements may take (1 to 86400); the largest shapes go first")
    cal.add_argument("-o", "--output", metavar="FILE", default=argparse.SUPPRESS,
                     help="device JSON to write (default: calibrated-<device name>.json in the current directory)")
    return p, dict(sub.choices)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformer-math")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _parse(argv: list[str]) -> argparse.Namespace:
    """Parse argv. A bad count is the one-line error every bad value gets; an unknown option or a bad choice is
    reported with the usage of the subcommand it was given to."""
    parser, subs = _parser()
    command = next((a for a in argv if a in subs), None)
    try:
        args, extra = parser.parse_known_args(argv)
    except argparse.ArgumentError as e:
        if isinstance(e.__context__, _BadCount):
            raise e.__context__.error from None
        (subs[command] if command else parser).error(str(e))
    if extra:
        subs[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _config_warnings(*, strict: bool) -> None:
    """Near-miss config keys: one line on stderr each, or (--strict) the error that ends the command."""
    import warnings

    from transformer_math.errors import ConfigKeyWarning

    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        if strict and isinstance(message, ConfigKeyWarning):
            raise TmathError(message.key, "a key the model does not read", f"did you mean {message.meant!r}?")
        print(f"tmath: warning: {message}", file=sys.stderr)

    warnings.simplefilter("always", ConfigKeyWarning)
    warnings.showwarning = show  # type: ignore[assignment]


def _analyze(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from transformer_math.analysis.report import Conventions, analyze

    return analyze(args.model, batch=args.batch, context=args.context, weight_dtype=args.weight_dtype,
                   kv_dtype=args.kv_dtype, conventions=Conventions(attention=args.attention, recompute=args.recompute,
                                           activations=args.activations))


PLAN_PREFIXES = ("serve.", "train.")


def _plan_explain(argv: Sequence[str]) -> list[str] | None:
    """`tmath explain MODEL serve.tpot --gpu …` is `tmath serve MODEL --gpu … --explain serve.tpot` (train alike)."""
    if len(argv) < 3 or argv[0] != "explain":
        return None
    positional = [i for i, x in enumerate(argv[1:3], 1) if x.startswith(PLAN_PREFIXES)]
    if not positional:
        return None
    i = positional[0]
    key = argv[i]
    rest = [x for j, x in enumerate(argv[1:], 1) if j != i]
    return [key.split(".", 1)[0], *rest, "--explain", key]


def run(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(_plan_explain(argv) or argv)
    _config_warnings(strict=getattr(args, "strict", False))
    if args.command == "list":
        from transformer_math.presets import list_presets, load_preset

        for name in list_presets():
            p = load_preset(name)
            print(f"{name:24s} {p.get('hf_id', '')}")
        return 0
    if args.command == "symbols":
        from transformer_math.symbols import render_table

        print(render_table("markdown" if args.markdown else "text"))
        return 0
    if args.command == "web":
        from transformer_math.web.hosts import check_bind

        check_bind(args.host, args.port)  # a bad address is a one-line error even without the [web] extra
        try:
            from transformer_math.web import server
        except ImportError:
            raise TmathError("web", "fastapi/uvicorn", "installed: pip install 'transformer-math[web]'") from None
        return server.serve(args.host, args.port)
    if args.command == "compare":
        from transformer_math import compare

        return compare.cli(args)
    if args.command == "calibrate":
        from transformer_math import calibrate

        return calibrate.cli(args)
    if args.command in ("hardware", "serve", "train", "chinchilla", "sweep"):
        from transformer_math import perf_cli

        return perf_cli.run(args)
    report = _analyze(args)
    if args.command == "explain":
        print(report.explain(args.quantity))
        print(f"\nconventions: {report.conventions.describe()}")
        return 0
    if args.json:
        out = report.to_dict()
        if args.show_ignored:
            out["config_keys"] = {"read": list(report.spec.read_keys), "ignored": list(report.spec.ignored_keys)}
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    from transformer_math.render import render_report

    print(render_report(report, show_ignored=args.show_ignored, ops=args.ops))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # an ASCII terminal shows '\u00b7' for '·' rather than failing
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        return run(argv)
    except TmathError as e:
        print(f"tmath: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `tmath … | head` closed the pipe: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit must not fail again
        return 0
    except OSError as e:  # an output path (--csv, --plot) that cannot be written
        print(f"tmath: error: {e.filename or 'file'}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
