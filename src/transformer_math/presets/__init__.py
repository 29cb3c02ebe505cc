"""Shipped presets: real config.json values with their source, one JSON file per model, loaded on demand."""

from __future__ import annotations

import difflib
import json
from importlib import resources
from typing import Any

from transformer_math.errors import TmathError


def list_presets() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in resources.files(__name__).joinpath("models").iterdir()
                  if p.name.endswith(".json"))


def load_preset(name: str) -> dict[str, Any]:
    """The preset record: name, hf_id, source, unconfirmed keys, notes and the config itself."""
    path = resources.files(__name__).joinpath("models", f"{name}.json")
    if not path.is_file():
        names = list_presets()
        close = difflib.get_close_matches(name.lower(), names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise TmathError("model", name, f"{hint}a preset ({', '.join(names)}) or a path to a config.json")
    return json.loads(path.read_text(encoding="utf-8"))
