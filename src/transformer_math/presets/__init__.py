"""Shipped presets: real config.json values with their source, one JSON file per model, loaded on demand."""

from __future__ import annotations

import json
import os

from transformer_math.errors import TmathError

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

# Package data read with plain os calls: importlib.resources costs more start-up time than a CLI call does.
_DIR = os.path.join(os.path.dirname(__file__), "models")


def list_presets() -> list[str]:
    """The shipped model presets by name (tmath list)."""
    return sorted(n.removesuffix(".json") for n in os.listdir(_DIR) if n.endswith(".json"))


_HF_IDS: dict[str, str] = {}  # hf_id as the preset spells it -> preset name, filled on first use


def preset_hf_ids() -> dict[str, str]:
    """Each preset's Hugging Face id (as its JSON spells it) -> the preset name."""
    if not _HF_IDS:
        for name in list_presets():
            hf_id = load_preset(name).get("hf_id")
            if isinstance(hf_id, str) and hf_id:
                _HF_IDS[hf_id] = name
    return dict(_HF_IDS)


def preset_for_hf_id(hf_id: object) -> str | None:
    """The preset whose hf_id is `hf_id` (compared case-insensitively, as the Hub does), or None."""
    if not isinstance(hf_id, str):
        return None
    wanted = hf_id.lower()
    return next((name for known, name in preset_hf_ids().items() if known.lower() == wanted), None)


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
        record: dict[str, Any] = json.load(f)
    return record
