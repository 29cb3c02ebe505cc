"""Fit the device-class and engine profiles on the calibration set; write presets/efficiency/*.json.

Only rows whose source group split.json puts in the calibration set are read. Per device class the training rows
fit the compute-side fractions (GEMM, FP8 GEMM, attention, grouped expert GEMMs, overlap of data- and
tensor-parallel communication) and the serving rows the achieved HBM bandwidth; per engine the serving rows fit
its per-step CPU cost. Coordinate descent on a multiplicative grid around the prior (the shipped default, each
with its source in analysis/efficiency.py), minimizing median |log(predicted/measured)| + 0.3·mean of it (each
row's term capped at log 4 so that one broken row cannot steer a class). The bands are the 10th and 90th
percentiles of measured/predicted on the calibration rows of each figure kind; their coverage of the validation
rows is measured by benchmarks/validate_published.py, never used here. With --logo the percentiles come from
leave-one-group-out predictions of the calibration rows instead (each group predicted by profiles fitted
without it), which is what the bands shipped are: in-sample residuals are narrower than a new run's.

    python scripts/fit_efficiency.py            # fit and write the profiles
    python scripts/fit_efficiency.py --check    # recompute the stored calibration errors, write nothing
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from dataclasses import asdict, replace
from typing import Any

from transformer_math.analysis.efficiency import ENGINE_FIELDS, MID, Efficiency, Engine, engine, list_engines
from transformer_math.checks import published as v
from transformer_math.config.hardware import list_hardware, load_hardware

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILES = os.path.join(HERE, "..", "src", "transformer_math", "presets", "efficiency")
CLASSES = ("ampere", "hopper", "blackwell", "ada", "cdna3", "tpu")
CLASS_PARAMS = {"gemm": (0.2, 0.98), "gemm_fp8": (0.2, 0.98), "attention": (0.1, 0.98), "moe_gemm": (0.05, 1.0),
                "moe_layer_s": (0.0, 0.01), "overlap": (0.0, 1.0), "overlap_tp": (0.0, 0.95), "overlap_ep": (0.0, 0.95),
                "bw": (0.3, 0.98), "attention_bw": (0.2, 1.5), "gemm_rows_half": (4.0, 512.0)}
ENGINE_PARAMS = {"step_overhead_s": (0.0, 0.02), "step_overhead_per_seq_s": (0.0, 5e-4)}
FACTORS = (0.5, 0.65, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2.0)
CAP = math.log(4)
PRIOR_WEIGHT = 0.1  # a factor 2 away from the prior costs as much as 5 % more median error


def loss(rows: list[v.Row]) -> float:
    """Per figure kind median + 0.3·mean of the capped |log error|, averaged over the kinds the rows have."""
    per_kind = []
    for kind in v.KINDS:
        errs = [min(CAP, abs(math.log(r.predicted / r.measured))) for r in rows
                if r.kind == kind and r.scored and r.predicted > 0]
        if errs:
            per_kind.append(statistics.median(errs) + 0.3 * statistics.fmean(errs))
    return statistics.fmean(per_kind) if per_kind else math.inf


def _engine_prior(name: str) -> Engine:
    """An engine profile with its per-step costs at their priors (the 'prior' object of its JSON)."""
    with open(os.path.join(PROFILES, "engines", f"{name}.json"), encoding="utf-8") as f:
        prior = json.load(f)["prior"]
    return replace(engine(name), step_overhead_s=prior["step_overhead_s"],
                   step_overhead_per_seq_s=prior["step_overhead_per_seq_s"])


def priors() -> tuple[dict[str, Efficiency], dict[str, dict[str, tuple[float, float]]]]:
    """Each class's starting point (MID with its MAMF fractions) and the bounds of its fitted fields."""
    with open(os.path.join(PROFILES, "priors.json"), encoding="utf-8") as f:
        doc = json.load(f)
    start, bounds = {}, {}
    for c in CLASSES:
        given = {k: x for k, x in doc["classes"][c].items() if k in ("gemm", "gemm_fp8")}
        start[c] = replace(MID, **given)
        b = dict(CLASS_PARAMS, bw=(doc["bw_min"], doc["bw_max"]))
        for k, x in given.items():  # no framework beats the best-shape matmul
            b[k] = (0.3 * x, x)
        bounds[c] = b
    return start, bounds


class State:
    """The profiles under fit, and the efficiency each calibration row is predicted with."""

    def __init__(self) -> None:
        self.classes, self.bounds = priors()
        self.engines = {e: _engine_prior(e) for e in list_engines()}
        self.cls_of = {h: load_hardware(h).device_class for h in list_hardware()}
        self.cache: dict[str, Any] = {}

    def eff(self, r: Any) -> Efficiency:
        hw = v._hardware(r)
        e = self.classes[hw.device_class]
        if hw.power_cap_w and hw.tdp_w:
            e = e.capped(hw.power_cap_w / hw.tdp_w)
        name = v.ENGINES.get(r.get("engine", ""))
        return e.with_engine(self.engines[name]) if "scenario" in r and name else e

    def rows(self, only: Any) -> list[v.Row]:
        return v.rows(self.eff, only=only, cache=self.cache)


def _prior_penalty(name: str, x: float, prior: Any) -> float:
    """Keeps a fraction near its sourced prior unless the rows pull clearly: PRIOR_WEIGHT·log(x/prior)²."""
    p = getattr(prior, name)
    return PRIOR_WEIGHT * math.log(x / p) ** 2 if p > 0 and x > 0 else 0.0


def _descend(state: State, rows_of: Any, get: Any, put: Any, params: dict[str, tuple[float, float]],
             prior: Any) -> None:
    for name, (lo, hi) in params.items():
        best = get(name)
        best_loss = loss(rows_of()) + _prior_penalty(name, best, prior)
        start = best
        for f in FACTORS:
            x = min(hi, max(lo, start * f)) if start else lo + (hi - lo) * (f - 0.5) / 1.5
            if x == best:
                continue
            put(name, x)
            value = loss(rows_of()) + _prior_penalty(name, x, prior)
            if value < best_loss - 1e-9:
                best, best_loss = x, value
        put(name, best)


def fit(state: State, calib: set[str], rounds: int = 3) -> None:
    def in_class(c: str) -> Any:
        return lambda r: r["source_group"] in calib and state.cls_of.get(r.get("device", "")) == c

    for _ in range(rounds):  # engines first: a per-step cost shared by devices before per-class fractions
        for e in state.engines:
            only = lambda r, e=e: r["source_group"] in calib and v.ENGINES.get(r.get("engine", "")) == e  # noqa: E731
            if not state.rows(only):
                continue
            _descend(state, lambda only=only: state.rows(only), lambda n, e=e: getattr(state.engines[e], n),
                     lambda n, x, e=e: state.engines.__setitem__(e, replace(state.engines[e], **{n: x})),
                     ENGINE_PARAMS, _engine_prior(e))
        for c in CLASSES:  # one set of fractions per class, fitted on its training and serving rows together
            only = in_class(c)
            if not state.rows(only):
                continue
            _descend(state, lambda only=only: state.rows(only), lambda n, c=c: getattr(state.classes[c], n),
                     lambda n, x, c=c: state.classes.__setitem__(c, replace(state.classes[c], **{n: x})),
                     state.bounds[c], priors()[0][c])


def leave_one_group_out(calib: set[str], rounds: int) -> list[v.Row]:
    """Each calibration group predicted by profiles fitted on the other groups: out-of-sample residuals that
    never use a validation row, for the bands."""
    out: list[v.Row] = []
    for g in sorted(calib):
        state = State()
        fit(state, calib - {g}, rounds=rounds)
        out += state.rows(lambda r, g=g: r["source_group"] == g)
        print(f"  held out {g}", file=sys.stderr)
    return out


def bands(rows: list[v.Row]) -> dict[str, dict[str, float]]:
    out = {}
    for kind in v.KINDS:
        ratios = sorted(r.ratio for r in rows if r.scored and r.kind == kind)
        if len(ratios) >= 5:
            q = statistics.quantiles(ratios, n=10)
            out[kind] = {"low": round(q[0], 4), "high": round(q[-1], 4), "calibration_rows": len(ratios)}
    return out


def _summary(rows: list[v.Row]) -> dict[str, Any]:
    s = v.summary(rows)
    return {"rows": s["rows"], "median_abs_error": round(s["median_abs_error"], 4),
            "max_abs_error": round(s["max_abs_error"], 4)}


def write(state: State, calib: set[str], rows: list[v.Row], held_out: list[v.Row]) -> None:
    band = bands(held_out)
    start = priors()[0]
    for c in CLASSES:
        prior = asdict(start[c])
        mine = [r for r in rows if state.cls_of.get(r.device) == c]
        eff = {k: float(f"{x:.6g}") if isinstance(x, float) else x for k, x in asdict(state.classes[c]).items()
               if k != "name" and k not in ENGINE_FIELDS}
        doc = {"class": c, "devices": sorted(h for h, k in state.cls_of.items() if k == c), "efficiency": eff,
               "fitted": {k: {"prior": prior[k], "value": eff[k]} for k in eff if eff[k] != prior[k]},
               "calibration": {"groups": sorted({r.group for r in mine}),
                               **{kind: _summary([r for r in mine if r.kind == kind]) for kind in v.KINDS
                                  if any(r.kind == kind and r.scored for r in mine)}},
               "band": band,
               "about": "written by scripts/fit_efficiency.py from the calibration set (presets/measurements/"
                        "split.json); a field not under 'fitted' keeps its prior (analysis/efficiency.py), "
                        "e.g. a class without calibration rows of that kind"}
        _dump(os.path.join(PROFILES, f"{c}.json"), doc)
    _dump(os.path.join(PROFILES, "default.json"), {
        "class": "default", "efficiency": {k: x for k, x in asdict(MID).items() if k != "name" and k not in
                                           ENGINE_FIELDS},
        "band": band, "about": "the priors of analysis/efficiency.py, for a device without a class or calibration"})
    for name, e in state.engines.items():
        path = os.path.join(PROFILES, "engines", f"{name}.json")
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        doc.update(step_overhead_s=float(f"{e.step_overhead_s:.6g}"),
                   step_overhead_per_seq_s=float(f"{e.step_overhead_per_seq_s:.6g}"))
        mine = [r for r in rows if v.ENGINES.get(r.engine) == name]
        doc["calibration"] = {"groups": sorted({r.group for r in mine}), **_summary(mine)} if mine else {
            "groups": [], "note": "no calibration rows: the per-step cost is the prior"}
        _dump(path, doc)


def _dump(path: str, doc: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="recompute the stored calibration errors; write nothing")
    ap.add_argument("--rounds", type=int, default=3, help="coordinate-descent rounds")
    ap.add_argument("--logo", action="store_true",
                    help="bands from leave-one-group-out predictions of the calibration rows (one refit per group)")
    a = ap.parse_args()
    calib = {g for g, s in v.split().items() if s == "calibration"}
    if a.check:
        rows = v.rows(only=lambda r: r["source_group"] in calib)
        bad = []
        for c in CLASSES:
            with open(os.path.join(PROFILES, f"{c}.json"), encoding="utf-8") as f:
                stored = json.load(f)["calibration"]
            for kind in v.KINDS:
                if kind in stored:
                    now = _summary([r for r in rows if r.kind == kind and load_hardware(r.device).device_class == c])
                    if abs(now["median_abs_error"] - stored[kind]["median_abs_error"]) > 1e-3:
                        bad.append(f"{c} {kind}: stored {stored[kind]}, now {now}")
        print("\n".join(bad) or "profiles reproduce their stored calibration errors")
        return 1 if bad else 0
    state = State()
    fit(state, calib, rounds=a.rounds)
    rows = state.rows(lambda r: r["source_group"] in calib)
    held_out = leave_one_group_out(calib, rounds=a.rounds) if a.logo else rows
    write(state, calib, rows, held_out)
    for kind in v.KINDS:
        print(kind, _summary([r for r in rows if r.kind == kind]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
