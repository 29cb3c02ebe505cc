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


def _time(cmd: list[str], runs: int) -> float:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15, help="runs of each command")
    a = ap.parse_args()
    import json

    from transformer_math.presets import load_preset

    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "config.json")
        with open(cfg, "w") as f:
            json.dump(load_preset("llama-3.1-8b")["config"], f)
        rows = [("bare python", [sys.executable, "-c", "pass"]),
                ("python -c 'import transformer_math'", [sys.executable, "-c", "import transformer_math"]),
                ("tmath analyze CONFIG --json", [sys.executable, "-m", "transformer_math.cli", "analyze", cfg, "--json"])]
        if shutil.which("vramcalc"):
            rows.append(("vramcalc (peer)", ["vramcalc", cfg]))
        times = {name: _time(cmd, a.runs) for name, cmd in rows}
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
