"""Shipped presets cite public material only, and every hardware file is complete and loadable."""

from __future__ import annotations

import json
import os
import re

import pytest

from transformer_math.config.hardware import list_hardware, load_hardware

PRESETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "transformer_math", "presets")
HARDWARE = os.path.join(PRESETS, "hardware")
DEVICE_CLASSES = {"ampere", "hopper", "blackwell", "ada", "cdna3", "tpu"}
LOCAL = re.compile(r"/work/|/root/|/home/|/tmp/|\.\./shared|shared/data|[A-Za-z]:\\", re.IGNORECASE)


def _json_files(root: str) -> list[str]:
    out = []
    for d, _, names in os.walk(root):
        out += [os.path.relpath(os.path.join(d, n), root) for n in names if n.endswith(".json")]
    return sorted(out)


def _strings(x):
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)


def test_presets_exist():
    assert len(_json_files(PRESETS)) > 10
    assert len(_json_files(HARDWARE)) >= 10


@pytest.mark.parametrize("rel", _json_files(PRESETS))
def test_no_local_paths(rel):
    with open(os.path.join(PRESETS, rel), encoding="utf-8") as f:
        data = json.load(f)
    bad = [s for s in _strings(data) if LOCAL.search(s)]
    assert not bad, f"{rel} cites a local path or the shared folder: {[LOCAL.search(s).group(0) for s in bad]}"


def test_pattern_catches_local_paths():
    for s in ("/work/shared/data/published.json", "../shared/x", "see shared/data/y", "/root/a", "/home/u/b", "/tmp/c",
              "C:\\data\\x"):
        assert LOCAL.search(s), s
    for s in ("GitHub stas00/ml-engineering@7bc7c30 compute/accelerator/README.md", "https://www.amd.com/en/products"):
        assert not LOCAL.search(s), s


@pytest.mark.parametrize("hw_id", list_hardware())
def test_hardware_file(hw_id):
    with open(os.path.join(HARDWARE, f"{hw_id}.json"), encoding="utf-8") as f:
        data = json.load(f)
    src = data.get("source")
    assert src, f"{hw_id}: empty source"
    if isinstance(src, dict):
        assert all(isinstance(v, str) and v.strip() for v in src.values()), f"{hw_id}: empty source entry"
    assert data.get("device_class") in DEVICE_CLASSES, f"{hw_id}: device_class {data.get('device_class')!r}"
    spec = load_hardware(hw_id)
    assert spec.id == hw_id
    assert spec.device_class == data["device_class"]
    assert spec.memory_bytes > 0 and spec.memory_bandwidth_bytes_per_s > 0 and spec.link_bandwidth_bytes_per_s > 0
    assert spec.peak("bf16") > 0


def test_new_devices_listed():
    for hw_id in ("rtx-3090", "rtx-5090", "l40", "h20", "mi325x"):
        assert hw_id in list_hardware()
