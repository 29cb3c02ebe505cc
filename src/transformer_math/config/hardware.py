"""Accelerators: the symbols F_peak (per dtype), BW_HBM, BW_NVLink, BW_NIC (docs/symbols.md), from sourced JSON files.

A user device is a JSON file with at least name, memory_bytes, memory_bandwidth_bytes_per_s, peak_flops_per_s
(an object keyed by dtype) and link_bandwidth_bytes_per_s; anything missing or mistyped is a TmathError.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from transformer_math.errors import TmathError, check_int

_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "presets", "hardware")
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class HardwareSpec:
    id: str
    name: str
    memory_bytes: int = field(metadata={"symbol": "M_HBM", "unit": "bytes"})
    memory_bandwidth_bytes_per_s: float = field(metadata={"symbol": "BW_HBM", "unit": "bytes/s"})
    peak_flops_per_s: tuple[tuple[str, float], ...] = field(metadata={"symbol": "F_peak", "unit": "FLOP/s"})
    link_bandwidth_bytes_per_s: float = field(metadata={"symbol": "BW_NVLink", "unit": "bytes/s"})
    nic_bandwidth_bytes_per_s: float = field(metadata={"symbol": "BW_NIC", "unit": "bytes/s"})
    gpus_per_node: int = 8
    device_class: str = ""  # the efficiency profile it shares (presets/efficiency/<class>.json)
    tdp_w: float = 0.0
    power_cap_w: float = 0.0  # 0: runs at its rated power
    efficiency: tuple[tuple[str, float], ...] = ()  # a calibrated device's own profile (tmath calibrate)
    source: str = ""

    def peak(self, dtype: str) -> float:
        """F_peak for a GEMM dtype; a dtype without tensor-core support runs at the bf16/fp16 rate."""
        table = dict(self.peak_flops_per_s)
        dtype = {"int4": "int8", "nf4": "bf16", "mxfp4": "fp4", "fp8-block": "fp8"}.get(dtype, dtype)
        for d in (dtype, "bf16", "fp16"):
            if d in table:
                return table[d]
        return max(table.values())

    @property
    def ridge_point(self) -> float:
        """I* = F_peak(bf16) / BW_HBM [FLOPs/byte]: above it an op is compute bound."""
        return self.peak("bf16") / self.memory_bandwidth_bytes_per_s


def _number(d: Mapping[str, Any], key: str, where: str, *, required: bool = True, default: float = 0.0) -> float:
    v = d.get(key)
    if v is None and not required:
        return default
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1e20:
        raise TmathError(f"{where}.{key}", v, "a positive number in base units (bytes, bytes/s, FLOP/s)")
    return float(v)


def hardware_from_dict(d: Mapping[str, Any], *, where: str = "gpu") -> HardwareSpec:
    if not isinstance(d, Mapping):
        raise TmathError(where, type(d).__name__, "a JSON object")
    name = d.get("name")
    if not isinstance(name, str) or not name or len(name) > 200:
        raise TmathError(f"{where}.name", name, "a non-empty string of at most 200 characters")
    name = name.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate would break every output
    peaks = d.get("peak_flops_per_s")
    if not isinstance(peaks, Mapping) or not peaks:
        raise TmathError(f"{where}.peak_flops_per_s", peaks, f"an object keyed by dtype ({', '.join(DTYPES)})")
    for k in peaks:
        if k not in DTYPES:
            raise TmathError(f"{where}.peak_flops_per_s", k, f"dtype keys among {', '.join(DTYPES)}")
        _number(peaks, k, f"{where}.peak_flops_per_s")
    link = _number(d, "link_bandwidth_bytes_per_s", where)
    gpn = d.get("gpus_per_node", 8)
    check_int(f"{where}.gpus_per_node", gpn, low=1, high=4096)
    src = d.get("source", "")
    cls = d.get("device_class", "")
    if not isinstance(cls, str) or len(cls) > 40:
        raise TmathError(f"{where}.device_class", cls, "a profile name such as ampere, hopper, blackwell, ada, cdna3")
    eff = d.get("efficiency", {})
    if not isinstance(eff, Mapping):
        raise TmathError(f"{where}.efficiency", eff, "an object of achieved fractions (tmath calibrate writes one)")
    from transformer_math.analysis.efficiency import efficiency_from_dict

    efficiency_from_dict(eff, name=name, where=f"{where}.efficiency")  # validated here, once
    return HardwareSpec(id=str(d.get("id") or name), name=name, memory_bytes=int(_number(d, "memory_bytes", where)),
                        memory_bandwidth_bytes_per_s=_number(d, "memory_bandwidth_bytes_per_s", where),
                        peak_flops_per_s=tuple((k, float(v)) for k, v in peaks.items()),
                        link_bandwidth_bytes_per_s=link,
                        nic_bandwidth_bytes_per_s=_number(d, "nic_bandwidth_bytes_per_s", where, required=False,
                                                          default=min(link, 25e9)),
                        gpus_per_node=gpn, device_class=cls,
                        tdp_w=_number(d, "tdp_w", where, required=False), power_cap_w=_number(d, "power_cap_w", where,
                                                                                             required=False),
                        efficiency=tuple((k, float(v)) for k, v in eff.items()),
                        source=json.dumps(src) if not isinstance(src, str) else src)


def list_hardware() -> list[str]:
    return sorted(n.removesuffix(".json") for n in os.listdir(_DIR) if n.endswith(".json"))


def load_hardware(gpu: str | os.PathLike[str] | Mapping[str, Any] | HardwareSpec) -> HardwareSpec:
    """A device by id (tmath hardware), by path to a JSON file, or from a dict."""
    if isinstance(gpu, HardwareSpec):
        return gpu
    if isinstance(gpu, Mapping):
        return hardware_from_dict(gpu)
    text = os.fspath(gpu)
    path = text if (text.endswith(".json") or os.sep in text) else os.path.join(_DIR, f"{text}.json")
    if not os.path.isfile(path):
        import difflib

        close = difflib.get_close_matches(text, list_hardware(), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise TmathError("gpu", text, f"{hint}one of {', '.join(list_hardware())} or a path to a device JSON file")
    from transformer_math.config.jsonfile import read_json_file

    return hardware_from_dict(read_json_file(path, field="gpu"), where=os.path.basename(path))
