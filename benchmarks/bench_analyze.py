"""Speed of analyze() in-process and of the tmath CLI as a whole process, next to a bare `python -c pass`.

Prints a table; targets: < 1 ms per analyze() call, CLI cold start ≤ 3× bare Python.
"""

from __future__ import annotations

import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import transformer_math as tm


def per_call(name: str, n: int = 300) -> float:
    tm.analyze(name)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        tm.analyze(name)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cold_start(rounds: int = 15) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "config.json"
        cfg.write_text(json.dumps(tm.load_preset("llama-3.1-8b")["config"]))
        script = os.path.join(os.path.dirname(sys.executable), "tmath")
        cli = [script if os.path.exists(script) else sys.executable, *([] if os.path.exists(script) else
               ["-m", "transformer_math"]), "analyze", str(cfg), "--json"]
        bare = [sys.executable, "-c", "pass"]
        t_cli, t_bare = [], []
        for _ in range(rounds):  # alternate, so machine noise hits both alike
            for cmd, acc in ((bare, t_bare), (cli, t_cli)):
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                acc.append(time.perf_counter() - t0)
    return statistics.median(t_cli), statistics.median(t_bare)


def main() -> None:
    # A wheel install byte-compiles the package; an editable one under PYTHONDONTWRITEBYTECODE does not.
    compileall.compile_dir(os.path.dirname(tm.__file__), quiet=1)
    print(f"{'analyze() per call (median)':40s} {'ms':>8s}")
    for name in ("llama-3.1-8b", "gemma-3-12b", "deepseek-v3", "llama-3.1-405b"):
        print(f"  {name:38s} {per_call(name) * 1e3:8.3f}")
    cli, bare = cold_start()
    print(f"\n{'cold start (median of 15, alternated)':40s} {'s':>8s}")
    print(f"  {'python -c pass':38s} {bare:8.3f}")
    print(f"  {'tmath analyze config.json --json':38s} {cli:8.3f}   ({cli / bare:.2f}× bare Python; target ≤ 3×)")


if __name__ == "__main__":
    main()
