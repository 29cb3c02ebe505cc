"""Plots (matplotlib, optional extra [plot]): roofline with each op placed on it; memory and latency curves."""

from __future__ import annotations

from collections.abc import Sequence

from transformer_math.analysis.costs import OpCost
from transformer_math.config.hardware import HardwareSpec
from transformer_math.errors import TmathError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _save(fig: Any, path: str) -> None:
    import os

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TmathError("plot", "matplotlib", "installed: pip install 'transformer-math[plot]'") from None
    return plt


def roofline(ops: Sequence[OpCost], hw: HardwareSpec, path: str, *, title: str) -> None:
    """Log-log roofline of attainable FLOP/s vs intensity with every op that does arithmetic placed on it."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    peak, bw = hw.peak("bf16"), hw.memory_bandwidth_bytes_per_s
    xs = [10 ** (i / 10) for i in range(-20, 51)]
    ax.plot(xs, [min(peak, x * bw) for x in xs], color="black", lw=2, label=f"{hw.name} roof (bf16)")
    ax.axvline(peak / bw, color="gray", ls=":", lw=1)
    for c in ops:
        if c.flops <= 0 or c.time_s <= 0 or c.bytes <= 0:
            continue
        perf = c.flops / (c.time_s)
        ax.scatter(c.intensity, perf, s=30, color="tab:red" if c.bound == "memory" else "tab:blue", alpha=0.8)
        ax.annotate(c.name.replace("attention.", "attn.").split(" ")[0], (c.intensity, perf), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity I [FLOPs/byte]",
           ylabel="achieved FLOP/s (model)", title=title)
    ax.scatter([], [], color="tab:red", label="memory bound")
    ax.scatter([], [], color="tab:blue", label="compute bound")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def curves(x: Sequence[float], series: dict[str, Sequence[float]], path: str, *, xlabel: str, ylabel: str,
           title: str, logx: bool = True) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, ys in series.items():
        ax.plot(x, ys, marker="o", ms=3, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xscale="log" if logx else "linear")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
