"""JSON input read defensively: one place for files (configs, device files) and text given by users.

Only regular files of at most MAX_FILE bytes are opened (a FIFO would block, /dev/zero never ends); NaN and
Infinity literals, nesting deeper than Python's parser allows and integers beyond its digit limit are input
errors, as is text that is not UTF-8.
"""

from __future__ import annotations

import json
import os
import stat

from transformer_math.errors import TmathError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_FILE = 4 * 2**20  # a config.json is a few kB; the largest shipped one is 8 kB


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(raw: bytes | str, *, field: str, source: str) -> Any:
    """Parse JSON text; every way it can be bad is a TmathError naming `field` and `source`."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise TmathError(field, source, "JSON nested less deeply (it is not a config)") from None
    except UnicodeDecodeError as e:
        raise TmathError(field, source, f"UTF-8 JSON text ({e.reason})") from None
    except ValueError as e:  # JSONDecodeError, NaN/Infinity, integers beyond the digit limit
        raise TmathError(field, source, f"valid JSON ({e})") from None


def read_json_file(path: str | os.PathLike[str], *, field: str) -> Any:
    """A JSON document from a regular file of at most MAX_FILE bytes."""
    shown = os.fspath(path)
    try:
        info = os.stat(path)
    except (OSError, ValueError) as e:
        raise TmathError(field, shown, f"a readable file ({getattr(e, 'strerror', None) or e})") from None
    if not stat.S_ISREG(info.st_mode):
        raise TmathError(field, shown, "a regular file (not a directory, device or FIFO)")
    if info.st_size > MAX_FILE:
        raise TmathError(field, shown, f"a file of at most {MAX_FILE // 2**20} MiB ({info.st_size:,} bytes)")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE + 1)
    except OSError as e:
        raise TmathError(field, shown, f"a readable file ({e.strerror})") from None
    if len(raw) > MAX_FILE:
        raise TmathError(field, shown, f"a file of at most {MAX_FILE // 2**20} MiB")
    return parse_json(raw, field=field, source=shown)
