"""Shipped presets: real config.json values with their source, one JSON file per model, loaded on demand."""

from __future__ import annotations

import json
import os
TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

from transformer_math.errors import TmathError

# Package data read with plain os calls: importlib.resources costs more start-up time than a CLI call does.
_DIR = os.path.join(os.path.dirname(__file__), "models")


def list_presets() -> list[str]:
    return sorted(n.removesuffix(".json") for n in os.listdir(_DIR) if n.endswith(".json"))


def load_preset(name: str) -> dict[str, Any]:
    """The preset record: name, hf_id, source, unconfirmed keys, notes and the config itself."""
    path = os.path.join(_DIR, f"{name}.json")
    if not isinstance(name, str) or os.sep in name or not os.path.isfile(path):
        import difflib

        names = list_presets()
        close = difflib.get_close_matches(name.lower(), names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise TmathError("model", name, f"{hint}a preset ({', '.join(names)}) or a path to a config.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)
