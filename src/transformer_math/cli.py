"""tmath: a thin shell over analyze(). Errors print one line and exit 2; no tracebacks for bad input."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from transformer_math.errors import TmathError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tmath", description="Parameters, memory and FLOPs of LLMs, explained.")
    sub = p.add_subparsers(dest="command", required=True)

    def workload(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("model", help="preset name (tmath list) or path to a config.json")
        sp.add_argument("--batch", "-B", type=int, default=1, help="B: sequences (default 1)")
        sp.add_argument("--context", "-L", type=int, default=2048, help="L: tokens per sequence (default 2048)")
        sp.add_argument("--weight-dtype", default="auto",
                        help="auto (checkpoint: bf16 + its quantization_config), a dtype (bf16, fp8, int8, int4, "
                             "int4-g64-zp, nf4, mxfp4), or per group: experts=int4,*=bf16")
        sp.add_argument("--kv-dtype", default="bf16", help="KV-cache dtype (default bf16)")
        sp.add_argument("--attention", choices=("dense", "causal"), default="dense",
                        help="dense: full T×T scores (default, as eager attention and MFU count); causal: unmasked only")
        sp.add_argument("--recompute", choices=("none", "selective", "full"), default="none",
                        help="activation recomputation for training memory and FLOPs (default none)")
        sp.add_argument("--activations", choices=("fused", "eager"), default="fused",
                        help="kernels whose saved tensors are counted: fused (flash attention, default) or eager (HF)")

    a = sub.add_parser("analyze", help="parameters, memory and FLOPs of a model")
    workload(a)
    a.add_argument("--json", action="store_true", help="machine-readable output (stable keys of conventions.md)")
    a.add_argument("--show-ignored", action="store_true", help="list the config keys read and ignored")
    a.add_argument("--ops", action="store_true", help="per-operation FLOPs table per layer kind (seed 001 layout)")
    e = sub.add_parser("explain", help="the derivation of one quantity, e.g. memory.kv_cache_bytes")
    workload(e)
    e.add_argument("quantity", help="e.g. params.total, memory.kv_cache_bytes, flops.prefill")
    sub.add_parser("list", help="shipped presets")
    hw = sub.add_parser("hardware", help="shipped accelerators (or pass --gpu a JSON file of your own)")
    hw.add_argument("--json", action="store_true")
    sv = sub.add_parser("serve", help="serving plan: fits, max batch/context, TTFT, TPOT, tokens/s")
    sv.add_argument("model")
    sv.add_argument("--gpu", required=True, help="device id (tmath hardware) or path to a device JSON file")
    sv.add_argument("--tp", type=int, default=1)
    sv.add_argument("--ep", type=int, default=1, help="expert parallelism (MoE)")
    sv.add_argument("--batch", type=int, default=1)
    sv.add_argument("--prompt", type=int, default=1024)
    sv.add_argument("--gen", type=int, default=256)
    sv.add_argument("--weight-dtype", default="auto")
    sv.add_argument("--kv-dtype", default="bf16")
    sv.add_argument("--block", type=int, default=16, help="paged-KV block size in tokens (1: no paging)")
    sv.add_argument("--draft", help="draft model for speculative decoding (preset or config.json)")
    sv.add_argument("--draft-k", type=int, default=4)
    sv.add_argument("--acceptance", type=float, default=0.7)
    sv.add_argument("--json", action="store_true")
    sv.add_argument("--plot", help="write roofline + latency/memory plots to this file prefix (PNG and SVG)")
    tr = sub.add_parser("train", help="training plan: memory per GPU, step time, MFU, days, cost; --search")
    tr.add_argument("model")
    tr.add_argument("--gpu", required=True)
    tr.add_argument("--gpus", type=int, required=True)
    for k in ("tp", "pp", "dp", "cp", "ep"):
        tr.add_argument(f"--{k}", type=int, default=None if k == "dp" else 1)
    tr.add_argument("--global-batch", type=int, required=True, help="sequences per optimizer step")
    tr.add_argument("--seq", type=int, default=4096)
    tr.add_argument("--micro-batch", type=int, default=1)
    tr.add_argument("--recompute", choices=("none", "selective", "full"), default="none")
    tr.add_argument("--zero", type=int, choices=(0, 1, 2, 3), default=1)
    tr.add_argument("--sequence-parallel", action="store_true")
    tr.add_argument("--interleave", type=int, default=1)
    tr.add_argument("--precision", choices=("bf16", "fp8"), default="bf16")
    tr.add_argument("--optimizer", choices=("adamw", "adam8bit", "sgd", "adafactor"), default="adamw")
    tr.add_argument("--finetune", choices=("full", "lora", "qlora"), default="full")
    tr.add_argument("--lora-rank", type=int, default=16)
    tr.add_argument("--lora-targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    tr.add_argument("--tokens", type=float, default=0, help="T_train: tokens to train on (for days and cost)")
    tr.add_argument("--price", type=float, default=2.0, help="$ per GPU-hour (default 2.0)")
    tr.add_argument("--search", action="store_true", help="rank every parallel layout that fits")
    tr.add_argument("--json", action="store_true")
    ch = sub.add_parser("chinchilla", help="compute-optimal N and D for a budget C (Hoffmann et al. 2022)")
    ch.add_argument("--flops", type=float, required=True, help="C: training FLOPs")
    ch.add_argument("--gpu", default="h100-sxm", help="device for the cost estimate (default h100-sxm)")
    ch.add_argument("--mfu", type=float, default=0.40, help="assumed MFU for the cost estimate (default 0.40)")
    ch.add_argument("--price", type=float, default=2.0, help="$ per GPU-hour (default 2.0)")
    ch.add_argument("--json", action="store_true")
    wb = sub.add_parser("web", help="start the local web app (needs the [web] extra)")
    wb.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    wb.add_argument("--port", type=int, default=8000)
    sw = sub.add_parser("sweep", help="grid of memory/FLOPs over batch × context (× dtype), CSV and plot")
    sw.add_argument("model")
    sw.add_argument("--batch", default="1,2,4,8,16,32,64")
    sw.add_argument("--context", default="512,1024,2048,4096,8192,16384,32768")
    sw.add_argument("--kv-dtype", default="bf16,fp8")
    sw.add_argument("--tp", default="1", help="tensor-parallel degrees, e.g. 1,2,4,8 (per-GPU memory)")
    sw.add_argument("--csv", required=True, help="output CSV path")
    sw.add_argument("--plot", help="output plot path (PNG or SVG)")
    s = sub.add_parser("symbols", help="the symbol dictionary")
    s.add_argument("--markdown", action="store_true")
    return p


def _analyze(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from transformer_math.analysis.report import Conventions, analyze

    return analyze(args.model, batch=args.batch, context=args.context, weight_dtype=args.weight_dtype,
                   kv_dtype=args.kv_dtype, conventions=Conventions(attention=args.attention, recompute=args.recompute,
                                           activations=args.activations))


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
        try:
            import uvicorn

            from transformer_math.web.app import app
        except ImportError:
            raise TmathError("web", "fastapi/uvicorn", "installed: pip install 'transformer-math[web]'") from None
        print(f"transformer-math web app: http://{args.host}:{args.port}/", flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return 0
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
    try:
        return run(argv)
    except TmathError as e:
        print(f"tmath: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an output path (--csv, --plot) that cannot be written
        if isinstance(e, BrokenPipeError):
            raise
        print(f"tmath: error: {e.filename or 'file'}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tmath … | head` closed the pipe: not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
