"""Start-up: `tmath analyze CONFIG --json` as a whole process, next to a bare Python start and a peer CLI.

Prints the median wall time of N runs of each and the ratios. The peer (`vramcalc`, the fastest measured side by
side in the issue that asked for this: 0.111 s against our 0.14 s then) is timed only when it is installed.

    python benchmarks/bench_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def _times(rows: list[tuple[str, list[str]]], runs: int) -> dict[str, float]:
    """Median wall time of each command; the commands take turns in every round, so a busy machine slows all alike."""
    out: dict[str, list[float]] = {name: [] for name, _ in rows}
    # As users run it: bytecode cached (a PYTHONDONTWRITEBYTECODE environment recompiles every module every run)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for _, cmd in rows:  # warm: write the bytecode, fill the page cache
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    for _ in range(runs):
        for name, cmd in rows:
            t = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
            out[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15, help="runs of each command")
    ap.add_argument("--peer", default=shutil.which("vramcalc"),
                    help="the peer CLI to time (default: vramcalc on PATH; e.g. a venv's bin/vramcalc)")
    a = ap.parse_args()
    import json

    from transformer_math.presets import load_preset

    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "config.json")
        with open(cfg, "w") as f:
            json.dump(load_preset("llama-3.1-8b")["config"], f)
        # The installed console script, as users run it (python -m adds runpy's own start-up)
        script = os.path.join(os.path.dirname(sys.executable), "tmath")
        tmath = [script] if os.path.exists(script) else [sys.executable, "-m", "transformer_math.cli"]
        rows = [("bare python", [sys.executable, "-c", "pass"]),
                ("python -c 'import transformer_math'", [sys.executable, "-c", "import transformer_math"]),
                ("tmath analyze CONFIG --json", [*tmath, "analyze", cfg, "--json"])]
        if a.peer:
            rows.append(("vramcalc (peer)", [a.peer, cfg]))
        times = _times(rows, a.runs)
    base = times["bare python"]
    print(f"{'command':40s} {'median':>9s} {'× bare':>7s}")
    for name, t in times.items():
        print(f"{name:40s} {t * 1e3:7.1f} ms {t / base:7.2f}")
    if "vramcalc (peer)" in times:
        print(f"ours / peer: {times['tmath analyze CONFIG --json'] / times['vramcalc (peer)']:.2f}")
    else:
        print("vramcalc is not installed here: the peer ratio is not measured (pip install vramcalc to add it)")


if __name__ == "__main__":
    main()
