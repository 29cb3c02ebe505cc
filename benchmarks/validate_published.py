"""Validation table: the model against published measurements, calibration and validation sets apart.

The profiles (presets/efficiency/) were fitted by scripts/fit_efficiency.py on the calibration groups of
presets/measurements/split.json only; the validation rows below never touched the fit. Prints, per set and
figure kind: rows, median and worst |error| by device class and by engine, the share of validation rows inside
the band (the calibration set's 10th–90th percentile of measured/predicted), trends (does the prediction move
the way the measurement does when only the GPU count, sequence length, context or batch changes), and with
--rows every row.

    python benchmarks/validate_published.py [--rows] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from transformer_math.analysis.efficiency import band_for
from transformer_math.checks import published as v
from transformer_math.config.hardware import load_hardware


def _cls(r: v.Row) -> str:
    from transformer_math.config.hardware import list_hardware

    return load_hardware(r.device).device_class if r.device in list_hardware() else r.device


def _line(label: str, rows: list[v.Row], md: bool) -> str:
    s = v.summary(rows)
    if not s["rows"]:
        return ""
    cells = [label, str(s["rows"]), f"{s['median_abs_error']:.1%}", f"{s['max_abs_error']:.1%}",
             f"{s['within_25pct'] / s['rows']:.0%}"]
    return "| " + " | ".join(cells) + " |" if md else (f"  {cells[0]:34s} {cells[1]:>5s} {cells[2]:>9s} "
                                                      f"{cells[3]:>9s} {cells[4]:>8s}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", action="store_true", help="print every validation row")
    ap.add_argument("--markdown", action="store_true", help="tables as Markdown (for the README)")
    a = ap.parse_args()
    md = a.markdown
    rows = v.rows()
    head = ("| set · kind · by | rows | median \\|err\\| | worst \\|err\\| | within ±25 % |\n|---|---:|---:|---:|---:|"
            if md else f"  {'':34s} {'rows':>5s} {'median':>9s} {'worst':>9s} {'≤25%':>8s}")
    for split in ("calibration", "validation"):
        print(f"\n## {split} set" if md else f"\n{split.upper()} SET")
        print(head)
        for kind in v.KINDS:
            mine = [r for r in rows if r.split == split and r.kind == kind]
            if not any(r.scored for r in mine):
                continue
            print(_line(f"**{kind}**" if md else kind, mine, md))
            by: dict[str, list[v.Row]] = defaultdict(list)
            for r in mine:
                by[f"{_cls(r)}" + (f" · {r.engine}" if r.engine else "")].append(r)
            for key in sorted(by):
                line = _line(f"  {key}", by[key], md)
                if line:
                    print(line)
    val = [r for r in rows if r.split == "validation"]
    print("\n## band coverage (validation)" if md else "\nBAND COVERAGE (validation rows inside the calibration "
                                                       "10th–90th percentile band)")
    for kind in v.KINDS:
        mine = [r for r in val if r.kind == kind and r.scored]
        if mine:
            cov = v.coverage(mine, lambda r: band_for(load_hardware(r.device), r.kind))
            b = band_for(load_hardware(mine[0].device), kind)
            print(f"{'- ' if md else '  '}{kind}: {cov:.0%} of {len(mine)} rows inside ×{b.low:.2f}–×{b.high:.2f}")
    allv = [r for r in val if r.scored]
    print(f"{'- ' if md else '  '}all: {v.coverage(allv, lambda r: band_for(load_hardware(r.device), r.kind)):.0%} "
          f"of {len(allv)} rows")
    print("\n## trends (validation)" if md else "\nTRENDS (validation pairs that differ in one thing: same direction "
                                                "measured and predicted)")
    for what in v.TREND_KEYS:
        same, total, wrong = v.trends(val, what)
        if total:
            print(f"{'- ' if md else '  '}{what}: {same}/{total} pairs agree" +
                  (f" (off: {'; '.join(wrong[:3])})" if wrong else ""))
    unscored = [r for r in rows if not r.scored]
    print(f"\n{len(unscored)} rows not scored (setup the model cannot express, or marked in the data):")
    for r in unscored:
        print(f"  {r.id}: {r.note[:110]}")
    if a.rows:
        print("\nVALIDATION ROWS")
        for r in sorted(allv, key=lambda r: (r.kind, _cls(r), r.id)):
            print(f"  {r.kind:10s} {r.device:10s} {r.engine:9s} {r.metric:30s} {r.measured:11.4g} {r.predicted:11.4g} "
                  f"{r.error:+7.1%}  {r.id}")
    errs = [abs(r.error) for r in allv]
    print(f"\nvalidation, all kinds: {len(errs)} rows, median |error| {statistics.median(errs):.1%}")


if __name__ == "__main__":
    main()
