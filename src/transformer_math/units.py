"""Data types as bytes per element, block-quantized formats (NF4, MXFP4, group-wise int4) and display helpers.

Bytes stay exact: a format's size is a Fraction of a byte per element, rounded up to whole bytes
only once per tensor. Display is the only place numbers are humanized (GiB = 2^30, GB = 10^9).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from transformer_math.errors import TmathError


@dataclass(frozen=True, kw_only=True, slots=True)
class DType:
    """A storage format: q bits per element plus, for block formats, one scale (and zero-point) per g_q elements."""

    name: str
    bits: int  # q_w / q_kv [bits]
    group_size: int | None = None  # g_q [#]; None = no per-group constants
    scale_bits: int = 0  # bits of one group scale
    zero_point_bits: int = 0  # bits of one group zero-point (1_zp = zero_point_bits > 0)
    block_bytes: int = 0  # GGUF: bytes of one ggml block of group_size elements (its struct size); replaces the above
    tensor_scale_bits: int = 0  # one scale per tensor on top of the group scales (NVFP4: an fp32 global scale)
    # A whole-model scheme's share of one tensor group (GGUF mixtures): (tensor type, elements, bytes) per type.
    mix: tuple[tuple[str, int, int], ...] = ()

    @property
    def bytes_per_element(self) -> Fraction:
        """b [bytes/elt] = q/8 + (scale_bits + zero_point_bits) / (8·g_q); a ggml block: S_blk/g_blk; a mixture:
        its bytes over its elements."""
        if self.mix:
            return Fraction(sum(b for _, _, b in self.mix), sum(n for _, n, _ in self.mix) or 1)
        if self.block_bytes:
            return Fraction(self.block_bytes, self.group_size or 1)
        extra = Fraction(self.scale_bits + self.zero_point_bits, 8 * self.group_size) if self.group_size else 0
        return Fraction(self.bits, 8) + extra

    def tensor_bytes(self, n: int) -> int:
        """Bytes of a tensor of n elements: ⌈n·q/8⌉ + ⌈n/g_q⌉·(scale + zero-point bytes) (+ a per-tensor scale);
        a ggml block format: ⌈n/g_blk⌉·S_blk."""
        if self.block_bytes and self.group_size:
            return -(-n // self.group_size) * self.block_bytes
        data = -(-n * self.bits // 8) + self.tensor_scale_bits // 8
        if not self.group_size:
            return data
        return data + -(-n // self.group_size) * (self.scale_bits + self.zero_point_bits) // 8

    @property
    def formula(self) -> str:
        if self.mix or self.block_bytes:
            b = self.bytes_per_element
            return f"{b.numerator}/{b.denominator}"
        if not self.group_size:
            return f"{self.bits}/8"
        zp = f" + {self.zero_point_bits}" if self.zero_point_bits else ""
        return f"{self.bits}/8 + ({self.scale_bits}{zp})/(8·{self.group_size})"


_BASE = {
    "fp32": DType(name="fp32", bits=32),
    "bf16": DType(name="bf16", bits=16),
    "fp16": DType(name="fp16", bits=16),
    "fp8": DType(name="fp8", bits=8),
    "int8": DType(name="int8", bits=8),
    # Block-scaled FP8 as DeepSeek-V3 ships it: an fp32 scale per 128×128 weight block.
    "fp8-block": DType(name="fp8-block", bits=8, group_size=128 * 128, scale_bits=32),
    # OCP microscaling FP4: an 8-bit E8M0 scale per 32 elements = 4.25 bits (gpt-oss model card §2.1).
    "mxfp4": DType(name="mxfp4", bits=4, group_size=32, scale_bits=8),
    # NVIDIA NVFP4: E2M1 values, an FP8 E4M3 scale per 16 elements and an fp32 scale per tensor = 4.5 bits
    # (NVIDIA blog "Introducing NVFP4 for Efficient and Accurate Low-Precision Inference", 2025; TensorRT Model
    # Optimizer NVFP4 checkpoints: weight_scale (float8_e4m3fn, one per 16) and weight_scale_2 (fp32, per tensor)).
    "nvfp4": DType(name="nvfp4", bits=4, group_size=16, scale_bits=8, tensor_scale_bits=32),
    # bitsandbytes NF4 (QLoRA): an fp32 absmax per 64 elements, without double quantization.
    "nf4": DType(name="nf4", bits=4, group_size=64, scale_bits=32),
    # GPTQ/AWQ-style int4: an fp16 scale per group of 128.
    "int4": DType(name="int4", bits=4, group_size=128, scale_bits=16),
}
# GGUF tensor types: bytes of one ggml block (its C struct) per block of elements, exact, from the static_asserts
# of ggml/src/ggml-common.h (ggml-org/llama.cpp @ 01243c587feceaa5d6a6c2305535ef2f549c48b8). ggml_half is 2 bytes,
# QK_K = 256, K_SCALE_SIZE = 12. (name, elements per block, bytes per block, nominal bits, struct layout)
GGUF_BLOCKS = (
    ("q4_0", 32, 18, 4, "block_q4_0: fp16 d + 16 bytes of nibbles"),
    ("q4_1", 32, 20, 4, "block_q4_1: fp16 d, m + 16 bytes of nibbles"),
    ("q5_0", 32, 22, 5, "block_q5_0: fp16 d + qh[4] + 16 bytes of nibbles"),
    ("q5_1", 32, 24, 5, "block_q5_1: fp16 d, m + qh[4] + 16 bytes of nibbles"),
    ("q8_0", 32, 34, 8, "block_q8_0: fp16 d + 32 int8"),
    ("q2_k", 256, 84, 2, "block_q2_K: scales[16] + qs[64] + fp16 d, dmin"),
    ("q3_k", 256, 110, 3, "block_q3_K: hmask[32] + qs[64] + scales[12] + fp16 d"),
    ("q4_k", 256, 144, 4, "block_q4_K: fp16 d, dmin + scales[12] + qs[128]"),
    ("q5_k", 256, 176, 5, "block_q5_K: fp16 d, dmin + scales[12] + qh[32] + qs[128]"),
    ("q6_k", 256, 210, 6, "block_q6_K: ql[128] + qh[64] + scales[16] + fp16 d"),
)
GGUF_TYPES = {name: DType(name=name, bits=bits, group_size=g, block_bytes=size)
              for name, g, size, bits, _ in GGUF_BLOCKS}
_BASE.update(GGUF_TYPES)
_ALIASES = {"f32": "fp32", "f16": "fp16", "float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16",
            "float": "fp32", "float8": "fp8", "fp8_e4m3": "fp8", "e4m3": "fp8", "fp8_e5m2": "fp8"}
_PATTERN = re.compile(r"^(int4|int8|nf4|mxfp4|fp8)(?:-g(\d+))?(-zp)?$")

DTYPE_NAMES = tuple(_BASE)
DTYPE_HELP = (f"one of {', '.join(DTYPE_NAMES)}; int/nf4/mxfp4/fp8 take a group size and zero-points, "
              "e.g. int4-g64 or int4-g128-zp")


def parse_dtype(text: object, *, field: str = "dtype") -> DType:
    """Read a dtype name: 'bf16', 'int4', 'int4-g64', 'int4-g128-zp', 'nf4', 'mxfp4', 'fp8-block'…"""
    if not isinstance(text, str):
        raise TmathError(field, text, DTYPE_HELP)
    name = _ALIASES.get(text.strip().lower(), text.strip().lower())
    if name in _BASE:
        return _BASE[name]
    m = _PATTERN.match(name)
    if not m or not (m.group(2) or m.group(3)):
        raise TmathError(field, text, DTYPE_HELP)
    if m.group(3) and m.group(1) not in ("int4", "int8"):
        raise TmathError(field, text, "zero-points (-zp) only with integer formats: int4-zp, int8-g128-zp")
    base = _BASE[m.group(1)]
    group = int(m.group(2)) if m.group(2) else (base.group_size or 128)
    if not 1 <= group <= 2**20:
        raise TmathError(field, text, "group size g_q must be between 1 and 1048576")
    scale = base.scale_bits or 16
    return DType(name=name, bits=base.bits, group_size=group, scale_bits=scale,
                 zero_point_bits=base.bits if m.group(3) else 0)


_SCALE = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9, "T": 10**12, "P": 10**15,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
COUNT_HELP = "a number as people write it: 4096, 1_024, 128k (= 128,000), 128Ki (= 131,072), 15T, 1.5M, 1e24"


def parse_count(text: object, *, field: str, integer: bool = True) -> int | float:
    """A size or count as people write it: digits with optional _ separators, a decimal suffix (k, M, G or B, T,
    P: powers of 1,000) or a binary one (Ki, Mi, Gi, Ti: powers of 1,024), or scientific notation."""
    import re

    m = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9_]+)?(?:[eE][+-]?[0-9]+)?)\s*([kKMGBTP]i?)?\s*", str(text))
    if not m or (m.group(2) or "") not in _SCALE or "__" in m.group(1) or m.group(1).endswith("_"):
        raise TmathError(field, text, COUNT_HELP)
    value = float(m.group(1).replace("_", "")) * _SCALE[m.group(2) or ""]
    if not value < 1e30:
        raise TmathError(field, text, "at most 1e30")
    if not integer:
        return value
    if value != int(value):
        raise TmathError(field, text, "a whole number (" + COUNT_HELP + ")")
    return int(value)


def fmt_bytes(n: float, system: str = "iec") -> str:
    """'74.5 GiB' (iec, 2^30) or '80.0 GB' (si, 10^9)."""
    base, units = (1024, ("B", "KiB", "MiB", "GiB", "TiB", "PiB")) if system == "iec" else (
        1000, ("B", "kB", "MB", "GB", "TB", "PB"))
    i = 0 if n < base else min(int(math.log(n, base)), len(units) - 1)
    return f"{n / base**i:.1f} {units[i]}" if i else f"{int(n)} B"


def fmt_count(n: float) -> str:
    """'8.03 B' style with SI prefixes for counts (parameters, FLOPs)."""
    for div, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3f} {suffix}"
    return f"{n:g}"


def json_ready(x: object) -> object:
    """x with every non-finite float as None and numpy scalars as plain numbers: strict JSON (RFC 8259)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): json_ready(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_ready(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, str):  # numpy scalars
        return json_ready(x.item())
    return x
