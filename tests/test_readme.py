"""The README's examples are executed and their shown outputs and comments checked.

Every `$ tmath …` line of a ```console / ```bash / ```text block runs in-process through
`transformer_math.cli.main`; a ```text block that shows output after its command must show lines of the real
output (lines with `…` are elisions); the ```python block runs with exec() and every trailing `# <number>` or
`# <expr> = <number>` comment on an expression line must equal that expression's value.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from transformer_math.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
SHELL_LANGS = {"console", "bash", "text"}

# files the README names that are not in the repository: a shipped preset stands in (in the test only)
CLI_SUBSTITUTES = {"Qwen3-32B/config.json": "qwen3-32b"}
PYTHON_SUBSTITUTES = {'"path/to/config.json"': '"gemma-3-4b"', '"my-gpu.json"': '"h100-sxm"'}


@dataclass
class Example:
    lang: str
    line: int  # 1-based line of the `$` in README.md
    command: str  # continuations joined, trailing comment removed
    output: list[str] = field(default_factory=list)  # lines shown after it (text blocks)

    @property
    def id(self) -> str:
        return f"L{self.line}:{self.command[6:60]}"


def _blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """(language, line of the first content line, lines) of every fenced block."""
    blocks, lang, start, body = [], None, 0, []
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if lang is None:
                lang, start, body = line[3:].strip(), i + 1, []
            else:
                blocks.append((lang, start, body))
                lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, "unclosed ``` block in README.md"
    return blocks


def _strip_comment(cmd: str) -> str:
    """The command without a trailing `# comment` (a `#` outside quotes that starts a word)."""
    quote = None
    for i, ch in enumerate(cmd):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or cmd[i - 1].isspace()):
            return cmd[:i].rstrip()
    return cmd.rstrip()


def _examples() -> list[Example]:
    out: list[Example] = []
    for lang, start, body in _blocks(README.read_text(encoding="utf-8")):
        if lang not in SHELL_LANGS:
            continue
        current: Example | None = None
        i = 0
        while i < len(body):
            line, lineno = body[i], start + i
            if line.startswith("$ "):
                current = None
                cmd = line
                while cmd.rstrip().endswith("\\") and i + 1 < len(body):
                    i += 1
                    cmd = cmd.rstrip()[:-1].rstrip() + " " + body[i].strip()
                cmd = _strip_comment(cmd)
                if cmd.startswith("$ tmath "):
                    current = Example(lang, lineno, cmd[2:])
                    out.append(current)
            elif current is not None and lang == "text":
                current.output.append(line)
            i += 1
    return out


EXAMPLES = _examples()


def _skip_reason(cmd: str) -> str | None:
    words = cmd.split()
    if words[1] == "web":
        return "`tmath web` starts a server"
    if words[1] == "calibrate":
        return "`tmath calibrate` needs torch and measures the machine for a while"
    if "&&" in words or "|" in words:
        return "a shell pipeline"
    return None


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


_TIMING = re.compile(r"evaluated in [\d.,]+ m?s\b")


def _norm(line: str) -> str:
    return _TIMING.sub("evaluated in <time>", line.rstrip())


def _shows_no_fit(output: list[str]) -> bool:
    return any("fits: NO" in line or "does NOT fit" in line for line in output)


def test_readme_has_examples():
    cmds = [e.command.split()[1] for e in EXAMPLES]
    for sub in ("analyze", "explain", "serve", "train", "hardware", "chinchilla"):
        assert sub in cmds, f"README has no `tmath {sub}` example"
    assert any(e.output for e in EXAMPLES), "README shows no command output"


def test_text_blocks_name_their_command():
    """A ```text block that shows output starts with the `$ tmath …` that prints it, so it can be checked."""
    for lang, start, body in _blocks(README.read_text(encoding="utf-8")):
        lines = [line for line in body if line.strip()]
        if lang == "text" and lines:
            assert lines[0].startswith("$ "), f"README.md:{start}: ```text block shows output without its command"


@pytest.mark.parametrize("ex", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_cli_example(ex: Example, tmp_path):
    reason = _skip_reason(ex.command)
    if reason:
        pytest.skip(reason)
    argv = shlex.split(ex.command)[1:]
    argv = [CLI_SUBSTITUTES.get(a, a) for a in argv]
    if "--plot" in argv:
        pytest.importorskip("matplotlib")
        k = argv.index("--plot")
        argv[k + 1] = str(tmp_path / Path(argv[k + 1]).name)  # write the plots into tmp_path, not the repo
    rc, stdout, stderr = _run(argv)
    expected = 3 if _shows_no_fit(ex.output) else 0
    assert rc == expected, f"README.md:{ex.line}: `{ex.command}` exited {rc} (expected {expected}): {stderr.strip()}"
    assert stdout.strip(), f"README.md:{ex.line}: `{ex.command}` printed nothing"

    shown = [_norm(line) for line in ex.output if "…" not in line and line.strip()]
    if not shown:
        return
    real = [_norm(line) for line in stdout.splitlines() if line.strip()]
    assert len(shown) >= 3 or len(shown) == len(real), f"README.md:{ex.line}: shows too little output to check"
    # the first shown lines are the first lines printed, exactly
    n = min(3, len(shown))
    assert shown[:n] == real[:n], f"README.md:{ex.line}: shown output differs from `{ex.command}`:\n" + "\n".join(
        real[:n]
    )
    # every shown line is printed, in this order
    pos = 0
    for line in shown:
        try:
            pos = real.index(line, pos) + 1
        except ValueError:
            pytest.fail(f"README.md:{ex.line}: `{ex.command}` does not print this shown line:\n{line}\n"
                        f"--- it prints:\n{stdout}")


# --- the Python API block ------------------------------------------------------------------------------------

_NUMBER = r"[-+]?\d[\d_,]*(?:\.\d+)?(?:[eE][-+]?\d+)?"
_NUM_COMMENT = re.compile(rf"^#\s*(?:(?P<expr>[^=#]+?)\s*=\s*)?(?P<num>{_NUMBER})\s*$")
_ELLIPSIS_COMMENT = re.compile(r"^#\s*(?P<pattern>.*\.\.\..*)$")


def _python_blocks() -> list[tuple[int, str]]:
    return [(start, "\n".join(body)) for lang, start, body in _blocks(README.read_text(encoding="utf-8"))
            if lang == "python"]


def _comments(src: str) -> dict[int, str]:
    return {
        tok.start[0]: tok.string
        for tok in tokenize.generate_tokens(io.StringIO(src).readline)
        if tok.type == tokenize.COMMENT
    }


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("_", ""))


def _arith(expr: str) -> float:
    """Value of a comment's arithmetic such as `4·8192·32·2·8·128·1` (·, ×, * multiply)."""
    py = expr.replace("·", "*").replace("×", "*").replace("^", "**").replace(",", "")
    tree = ast.parse(py, mode="eval")
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow,
               ast.USub)
    assert all(isinstance(n, allowed) for n in ast.walk(tree)), f"not plain arithmetic: {expr}"
    return eval(compile(tree, "<comment>", "eval"), {"__builtins__": {}})


def _close(a: float, b: float) -> bool:
    if float(a).is_integer() and float(b).is_integer():
        return int(a) == int(b)
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)


@pytest.mark.parametrize("start,src", _python_blocks(), ids=lambda v: f"L{v}" if isinstance(v, int) else None)
def test_python_example(start: int, src: str):
    for old, new in PYTHON_SUBSTITUTES.items():
        src = src.replace(old, new)
    comments = _comments(src)
    ns: dict = {"__name__": "__readme__"}
    checked = 0
    sink = io.StringIO()
    for node in ast.parse(src).body:
        where = f"README.md:{start + node.lineno - 1}"
        comment = comments.get(node.end_lineno, "")
        if not isinstance(node, ast.Expr):
            with contextlib.redirect_stdout(sink):
                exec(compile(ast.Module([node], []), where, "exec"), ns)  # noqa: S102  (the README example, by design)
            continue
        with contextlib.redirect_stdout(sink):
            value = eval(compile(ast.Expression(node.value), where, "eval"), ns)
        m = _NUM_COMMENT.match(comment)
        if m:
            num = _number(m["num"])
            assert isinstance(value, (int, float)) and _close(value, num), (
                f"{where}: {ast.unparse(node)} is {value!r}, the comment says {m['num']}"
            )
            if m["expr"]:
                assert _close(_arith(m["expr"]), num), f"{where}: {m['expr']} is {_arith(m['expr'])}, not {m['num']}"
            checked += 1
            continue
        m = _ELLIPSIS_COMMENT.match(comment)
        if m:  # `# [(LayerSpec(attention='sliding', window=1024, ...), 29), ...]`: the shown parts, in order
            text, pos = repr(value), 0
            for part in (p.strip(", ") for p in m["pattern"].split("...")):
                if part:
                    found = text.find(part, pos)
                    assert found >= 0, f"{where}: {ast.unparse(node)} is {text[:200]}, the comment shows {part!r}"
                    pos = found + len(part)
            checked += 1
    assert checked, f"README.md:{start}: no checked comment in the python block"
