"""Model input: the spec, HF adapters and the one loader that turns a preset, path or dict into a spec."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from transformer_math.config.hf import load_config_file, spec_from_hf
from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any


def load_model(model: str | os.PathLike[str] | Mapping[str, Any] | ModelSpec) -> ModelSpec:
    """A ModelSpec from a preset name, a config.json path or model directory, a Hugging Face id (of a preset,
    or of a model in the local Hugging Face cache — read offline), a config dict, or a spec (returned as is).

    A string is tried in this order: an existing path (a file, or a directory holding config.json), a preset
    name, a preset's hf_id (case-insensitive), the local Hugging Face cache; the network is never used."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, Mapping):
        return _warn_near_misses(spec_from_hf(model))
    if not isinstance(model, str | os.PathLike):
        raise TmathError("model", model, "a preset name, a config.json path, a Hugging Face id or a config dict")
    text = os.fspath(model)
    if not isinstance(text, str):  # a bytes path
        raise TmathError("model", model, "a preset name, a config.json path, a Hugging Face id or a config dict")
    if os.path.isfile(text):
        return _from_file(text)
    if os.path.isdir(text) and os.path.isfile(os.path.join(text, "config.json")):
        return _from_file(os.path.join(text, "config.json"))
    looks_like_id = _HF_ID.fullmatch(text) is not None and ".." not in text and "--" not in text
    if text.endswith(".json") or not looks_like_id and (
            os.sep in text or (os.altsep and os.altsep in text) or os.path.isdir(text)):
        # A path that is not there (or a directory without config.json): the file error says which and why.
        return _from_file(os.path.join(text, "config.json") if os.path.isdir(text) else text)
    from transformer_math.presets import list_presets, load_preset, preset_for_hf_id

    names = list_presets()
    if text in names:
        return spec_from_hf(load_preset(text)["config"], name=text)
    preset = preset_for_hf_id(text)
    if preset is not None:
        return spec_from_hf(load_preset(preset)["config"], name=preset)
    cache = _hf_cache_dir()
    if looks_like_id:
        found = _cached_config(cache, text)
        if found is not None:
            hf_id, path = found
            return _warn_near_misses(spec_from_hf(load_config_file(path), name=hf_id))
    raise TmathError("model", text, _unknown_model_hint(text, names, cache))


# A Hugging Face repo id: NAME or ORG/NAME, each part letters, digits, '_', '-' and '.' (the Hub's own rule).
_HF_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}", re.ASCII)


def _from_file(path: str) -> ModelSpec:
    """The spec of a config.json file, named by its _name_or_path or else its directory."""
    cfg = load_config_file(path)
    return _warn_near_misses(spec_from_hf(cfg, name=str(cfg.get("_name_or_path") or os.path.basename(
        os.path.dirname(os.path.abspath(path))) or path)))


def _hf_cache_dir() -> str:
    """Where the Hugging Face hub caches models: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
    (the rule huggingface_hub itself follows — done here so that it need not be installed)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")


def _cached_config(cache: str, hf_id: str) -> tuple[str, str] | None:
    """(the HF id as cached, its config.json) for a model in the local HF cache, or None.

    The cache holds models--ORG--NAME/snapshots/<revision>/config.json; the revision is the one refs/main names
    when that snapshot has a config.json, else the newest snapshot (by mtime) that has one."""
    folder = "models--" + hf_id.replace("/", "--")
    repo = os.path.join(cache, folder)
    if not os.path.isdir(repo):  # ids are case-insensitive on the Hub; the cache keeps the spelling downloaded
        try:
            entries = os.listdir(cache)
        except (OSError, ValueError):
            return None
        matches = sorted(e for e in entries if e.lower() == folder.lower())
        if not matches:
            return None
        folder, repo = matches[0], os.path.join(cache, matches[0])
    cached_id = folder.removeprefix("models--").replace("--", "/")
    snapshots = os.path.join(repo, "snapshots")
    try:
        with open(os.path.join(repo, "refs", "main"), encoding="utf-8") as f:
            revision = f.read(256).strip()
    except (OSError, ValueError):
        revision = ""
    if revision and re.fullmatch(r"[\w.-]+", revision, re.ASCII) and revision not in (".", ".."):
        path = os.path.join(snapshots, revision, "config.json")
        if os.path.isfile(path):
            return cached_id, path
    try:
        revisions = os.listdir(snapshots)
    except (OSError, ValueError):
        return None
    found = []
    for rev in revisions:
        path = os.path.join(snapshots, rev, "config.json")
        try:
            mtime = os.stat(os.path.join(snapshots, rev)).st_mtime
        except (OSError, ValueError):
            continue
        if os.path.isfile(path):
            found.append((mtime, rev, path))
    return (cached_id, max(found)[2]) if found else None


def _unknown_model_hint(text: str, names: list[str], cache: str) -> str:
    """What `model` may be, led by the preset names and HF ids that are close to `text`."""
    import difflib

    from transformer_math.presets import preset_hf_ids

    candidates = {n.lower(): n for n in names}
    candidates.update((hf_id.lower(), hf_id) for hf_id in preset_hf_ids())
    close = [candidates[c] for c in difflib.get_close_matches(text.lower(), list(candidates), n=3)]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return (f"{hint}a preset ({', '.join(names)}), a path to a config.json or a model directory, or a Hugging "
            f"Face id of a preset or of a model in the local Hugging Face cache at {cache}")


def _warn_near_misses(spec: ModelSpec) -> ModelSpec:
    """A ConfigKeyWarning per config key that is ignored but nearly matches one the adapter looked for."""
    import warnings

    from transformer_math.errors import ConfigKeyWarning

    for key, meant in spec.near_miss_keys:
        warnings.warn(ConfigKeyWarning(key, meant), stacklevel=3)
    return spec
