"""`tmath train --search` against the layouts published runs chose.

For each distinct published setup (model, device, GPU count, sequence length, global batch, precision) among
the training measurements, runs the layout search and prints its best layout next to the published one, the
predicted step time of each, and how much slower the model thinks the published layout is. A published layout
within a few percent of the best is a match in all but name (several layouts tie); a large gap says either the
model misses a cost the practitioners avoided, or the search allows something they did not (the search's grid:
T_p within a node, C_p ≤ 16, E_p ≤ 64, micro-batch ≤ 8, interleave ≤ 4).

    python benchmarks/search_vs_published.py [--limit N]
"""

from __future__ import annotations

import argparse

from transformer_math.analysis.train_search import search_layouts
from transformer_math.analysis.training import Layout, Workload, plan_training
from transformer_math.checks import published as v
from transformer_math.errors import TmathError


def _short(L: Layout) -> str:
    parts = [f"TP{L.tp}", f"PP{L.pp}" + (f"×{L.interleave}" if L.interleave > 1 else ""), f"DP{L.dp}"]
    parts += [f"CP{L.cp}"] if L.cp > 1 else []
    parts += [f"EP{L.ep}"] if L.ep > 1 else []
    return " ".join(parts + [f"mb{L.micro_batch}", f"Z{L.zero}"] + ([L.recompute] if L.recompute != "none" else []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=40, help="setups to search at most")
    a = ap.parse_args()
    seen = set()
    print(f"{'setup':52s} {'published':30s} {'search best':30s} {'pub/best':>8s}")
    gaps = []
    for r in v.measurements():
        if "scenario" in r or not r.get("model") or r.get("unscored_reason"):
            continue
        prec = str(r.get("precision", "bf16")).lower()
        prec = "fp8" if prec.startswith(("fp8", "mxfp8")) else "fp4" if "fp4" in prec else "bf16"
        key = (r["model"], r["device"], r["gpus"], r["seq"], r["global_batch"], prec)
        if key in seen or len(seen) >= a.limit:
            continue
        seen.add(key)
        s, hw = v.spec_of(r), v._hardware(r)
        w = Workload(global_batch=r["global_batch"], seq=r["seq"], precision=prec)
        vp = min(r.get("vp") or 1, s.n_layers // r["pp"])
        pub = Layout(tp=r["tp"], pp=r["pp"], dp=r["dp"], cp=r.get("cp", 1), ep=r.get("ep", 1),
                     micro_batch=r.get("micro_batch") or 1, zero=1, sequence_parallel=r["tp"] > 1, interleave=vp)
        try:
            t_pub = plan_training(s, hw, pub, w)["train.step_time"]
            rows, _, _ = search_layouts(s, hw, w, gpus=r["gpus"], top=1, time_limit_s=30)
        except TmathError as e:
            print(f"{r['id'][:52]:52s} not evaluated: {str(e)[:80]}")
            continue
        if not rows:
            print(f"{r['id'][:52]:52s} {_short(pub):30s} {'(no layout fits)':30s}")
            continue
        best = rows[0]
        gap = t_pub / best.values["train.step_time"] - 1
        gaps.append(gap)
        label = f"{r['model']} {r['device']} ×{r['gpus']} s{r['seq']} B{r['global_batch']} {prec}"
        print(f"{label[:52]:52s} {_short(pub):30s} {_short(best.layout):30s} {gap:+8.1%}")
    if gaps:
        gaps.sort()
        print(f"\n{len(gaps)} setups: published layout predicted {gaps[len(gaps) // 2]:+.1%} slower than the search's "
              f"best at the median; within 5 % in {sum(g <= 0.05 for g in gaps)}, within 15 % in "
              f"{sum(g <= 0.15 for g in gaps)}")


if __name__ == "__main__":
    main()
