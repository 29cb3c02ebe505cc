"""tmath: the command line, a thin shell over the library. Errors print one line and exit 2; no tracebacks for
bad input. options.py builds the parser; perf.py runs the plans (serve, train, chinchilla, sweep, hardware),
compare.py the side-by-side table, render.py the analysis text and plots.py the figures."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from transformer_math.cli.options import COMMANDS, _BadCount, _parser
from transformer_math.errors import TmathError

__all__ = ["entry", "main", "run"]


def _parse(argv: list[str]) -> argparse.Namespace:
    """Parse argv. A bad count is the one-line error every bad value gets; an unknown option or a bad choice is
    reported with the usage of the subcommand it was given to."""
    command = next((a for a in argv if not a.startswith("-")), None)  # the first word: options come after it
    parser, subs = _parser(command if command in COMMANDS else None)
    command = command if command in subs else None
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
    warnings.showwarning = show


def _analyze(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from transformer_math.analysis.report import Conventions, analyze

    return analyze(args.model, batch=args.batch, context=args.context, weight_dtype=args.weight_dtype,
                   kv_dtype=args.kv_dtype, decoder_tokens=getattr(args, "decoder_tokens", None),
                   conventions=Conventions(attention=args.attention, recompute=args.recompute,
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
    if args.command in ("hardware", "serve", "train", "chinchilla", "sweep"):
        from transformer_math.cli import perf

        return perf.run(args)
    return _COMMANDS[args.command](args)


def _list(args: argparse.Namespace) -> int:
    from transformer_math.presets import list_presets, load_preset

    for name in list_presets():
        print(f"{name:24s} {load_preset(name).get('hf_id', '')}")
    return 0


def _symbols(args: argparse.Namespace) -> int:
    from transformer_math.symbols import render_table

    print(render_table("markdown" if args.markdown else "text"))
    return 0


def _web(args: argparse.Namespace) -> int:
    from transformer_math.web.hosts import check_bind

    check_bind(args.host, args.port)  # a bad address is a one-line error even without the [web] extra
    try:
        from transformer_math.web import server
    except ImportError:
        raise TmathError("web", "fastapi/uvicorn", "installed: pip install 'transformer-math[web]'") from None
    return server.serve(args.host, args.port)


def _compare(args: argparse.Namespace) -> int:
    from transformer_math.cli import compare

    return compare.cli(args)


def _calibrate(args: argparse.Namespace) -> int:
    from transformer_math.checks import calibrate

    return calibrate.cli(args)


def _train_tiny(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401  (the one dependency the run needs beyond the library)
    except ImportError:
        raise TmathError("train-tiny", "torch", "installed: pip install 'transformer-math[torch]'") from None
    from transformer_math.training import tiny

    return tiny.cli(args)


def _explain(args: argparse.Namespace) -> int:
    report = _analyze(args)
    print(report.explain(args.quantity))
    print(f"\nconventions: {report.conventions.describe()}")
    return 0


def _report(args: argparse.Namespace) -> int:
    report = _analyze(args)
    if args.json:
        out = report.to_dict()
        if args.show_ignored:
            out["config_keys"] = {"read": list(report.spec.read_keys), "ignored": list(report.spec.ignored_keys)}
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    from transformer_math.cli.render import render_report

    print(render_report(report, show_ignored=args.show_ignored, ops=args.ops))
    return 0


_COMMANDS = {"list": _list, "symbols": _symbols, "web": _web, "compare": _compare, "calibrate": _calibrate,
             "train-tiny": _train_tiny, "explain": _explain, "analyze": _report}


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


def entry() -> None:
    """The `tmath` console script: main(), then, for the commands that only print, an exit that skips tearing the
    interpreter down — freeing every object an analysis made takes as long as the analysis itself (≈ 5 ms). The
    web server and calibrate (worker processes, atexit handlers) exit the usual way."""
    code = main()
    if next((a for a in sys.argv[1:] if not a.startswith("-")), None) in ("web", "calibrate"):
        sys.exit(code)
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a closed pipe has nothing more to say
            pass
    os._exit(code)
