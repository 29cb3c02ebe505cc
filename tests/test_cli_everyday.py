"""Everyday CLI habits: --version, help and defaults on every option, counts written as people write them, the
subcommand's own usage for a bad option, near-miss config keys."""

from __future__ import annotations

import argparse
import contextlib
import io
import json

import pytest

import transformer_math as tm
from transformer_math.cli import _parser, main
from transformer_math.errors import TmathError
from transformer_math.units import parse_count


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("tmath 0.")


def test_every_option_has_help():
    parser, subs = _parser()
    for name, sub in subs.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help.strip(), f"tmath {name} {action.option_strings or action.dest}"
        assert issubclass(sub.formatter_class, argparse.ArgumentDefaultsHelpFormatter), name  # defaults shown


@pytest.mark.parametrize("text, value", [("4096", 4096), ("1_024", 1024), ("128k", 128_000), ("128Ki", 131_072),
                                         ("15T", 15 * 10**12), ("1.5M", 1_500_000), ("2Gi", 2**31)])
def test_counts_as_people_write_them(text, value):
    assert parse_count(text, field="--x") == value


def test_amounts_and_bad_counts():
    assert parse_count("1e24", field="--flops", integer=False) == 1e24
    for bad in ("12x", "1__0", "-3", "", "k", "1.5"):
        with pytest.raises(TmathError, match="--context"):
            parse_count(bad, field="--context")


def test_cli_reads_counts(capsys):
    assert main(["analyze", "llama-3.1-8b", "--context", "128Ki", "--batch", "1_0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    kv = tm.analyze("llama-3.1-8b", batch=10, context=131072)["memory.kv_cache_bytes"]
    assert out["memory.kv_cache_bytes"] == kv == 10 * 131072 * 32 * 2 * 8 * 128 * 2
    assert main(["train", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "64", "--global-batch", "1Ki", "--seq", "8Ki",
                 "--zero", "3", "--tokens", "15T", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["global_batch"] == 1024 and out["seq"] == 8192 and out["tokens"] == 15e12


def test_bad_count_is_one_line_naming_the_option(capsys):
    assert main(["analyze", "llama-3.1-8b", "--context", "12x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tmath: error: --context: got '12x'") and "128k" in err[0]


def test_bad_option_prints_the_subcommands_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--bogus"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage: tmath serve") and "--bogus" in err


@pytest.fixture
def typo(tmp_path):
    cfg = dict(tm.load_preset("llama-3.1-8b")["config"])
    cfg["num_key_value_head"] = cfg.pop("num_key_value_heads")  # silently MHA: a 4× larger KV cache
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    return str(p)


def test_near_miss_key_warns_and_strict_refuses(typo, capsys):
    assert main(["analyze", typo]) == 0
    err = capsys.readouterr().err
    assert "'num_key_value_head' is not read: did you mean 'num_key_value_heads'?" in err
    assert main(["analyze", typo, "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tmath: error: num_key_value_head:") and "num_key_value_heads" in err
    assert main(["serve", typo, "--gpu", "h100-sxm", "--strict"]) == 2


def test_presets_have_no_near_misses():
    for name in tm.list_presets():
        assert tm.load_model(tm.load_preset(name)["config"]).near_miss_keys == (), name


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("argv", [["analyze", "gpt2"], ["serve", "gpt2", "--gpu", "h100-sxm"]])
def test_colour_only_on_a_terminal_without_no_color(argv, monkeypatch):
    """ANSI colour on a terminal; none in a pipe, none with NO_COLOR (no-color.org), none on TERM=dumb."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")

    def output(stream):
        with contextlib.redirect_stdout(stream):
            main(argv)
        return stream.getvalue()

    assert "\033[" in output(_Tty())
    assert "\033[" not in output(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\033[" not in output(_Tty())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert "\033[" not in output(_Tty())


def test_plot_without_matplotlib_names_the_extra(monkeypatch, tmp_path, capsys):
    """--plot where matplotlib is missing: one line saying which extra to install, exit 2, no traceback."""
    import builtins

    real = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    code = main(["serve", "gpt2", "--gpu", "h100-sxm", "--plot", str(tmp_path / "new" / "p")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'transformer-math[plot]'" in err and "Traceback" not in err


def test_help_shows_defaults_and_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "(default: 1024)" in out and "(default: vllm)" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in ("analyze", "compare", "serve", "train", "chinchilla", "calibrate"))


def test_console_script_keeps_exit_status_and_all_output():
    """The console entry skips interpreter teardown: the status and every byte of output must survive it."""
    import subprocess
    import sys

    def tmath(*argv):
        return subprocess.run([sys.executable, "-m", "transformer_math.cli", *argv], capture_output=True, text=True)

    ok = tmath("analyze", "deepseek-v3", "--json", "--ops")
    assert ok.returncode == 0 and json.loads(ok.stdout)["params.total"] == tm.analyze("deepseek-v3")["params.total"]
    bad = tmath("serve", "gpt2", "--gpu", "h101")
    assert bad.returncode == 2 and bad.stderr.startswith("tmath: error: gpu: got 'h101'")
    too_big = tmath("serve", "llama-3.1-405b", "--gpu", "l4")
    assert too_big.returncode == 3 and "fits: NO" in too_big.stdout
