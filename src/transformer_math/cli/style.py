"""Terminal colour, only where it helps and only on a terminal: never in a pipe or a file, never with NO_COLOR set
(https://no-color.org), never on TERM=dumb."""

from __future__ import annotations

import os
import sys

_CODES = {"bold": "1", "red": "31", "green": "32", "dim": "2"}


def enabled(stream: object = None) -> bool:
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return (bool(isatty and isatty()) and "NO_COLOR" not in os.environ
            and os.environ.get("TERM", "") != "dumb")


def paint(text: str, style: str) -> str:
    """`text` in the ANSI style (bold, red, green, dim) when stdout is a colour terminal; else `text` unchanged."""
    return f"\033[{_CODES[style]}m{text}\033[0m" if enabled() else text


def fits(ok: bool) -> str:
    return paint("yes", "green") if ok else paint("NO", "red")
