"""Reliability probe of the library: mutated configs of every family through analyze, serve, train and search.

Every call must end in a result or the tool's own TmathError — never another exception — within a time and memory
bound, and every number it returns must be finite (JSON-strict) and not negative where negative means nothing.
tests/test_probe.py runs a fast slice in CI; this script runs the full one and prints the figures:

    python benchmarks/probe.py                 # 12,000 configs (≥ 10^4), then 2,500 plan calls on presets
    python benchmarks/probe.py --configs 500   # a quick look
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field

import transformer_math as tm
from transformer_math.errors import ConfigKeyWarning
from transformer_math.units import json_ready

TIME_LIMIT_S = 5.0  # per call
MEMORY_LIMIT = 256 * 2**20  # bytes allocated at the peak of one call (tracemalloc)
PRESET_CONFIGS = {n: tm.load_preset(n)["config"] for n in tm.list_presets()}
_NEGATIVE_OK = ("over", "intensity")  # a negative ΔM means spare memory


def junk(rng: random.Random) -> object:
    """A value a config.json could hold, or a hostile one."""
    return rng.choice([
        None, True, False, 0, -1, 1, 2, 3, 7, 64, 4096, 10**6, 10**9, 10**12, 10**400, -10**12,
        0.5, 1.5, 1e-300, 1e300, float("nan"), float("inf"), -float("inf"), "", "x" * 10_000, "\ud800", "silu",
        "bf16", [], [1, 2, 3], list(range(100_000)), ["full_attention"] * 3, {}, {"factor": float("nan")},
        {"a": {"b": {"c": [1]}}}, rng.randint(-10**6, 10**6), rng.random() * 10**rng.randint(-3, 8),
    ])


def mutate(cfg: dict, rng: random.Random) -> dict:
    """1–3 edits (set, delete, add) at the top level or in text_config / rope_scaling."""
    cfg = copy.deepcopy(cfg)
    for _ in range(rng.randint(1, 3)):
        target = cfg
        for nested in ("text_config", "rope_scaling", "quantization_config"):
            if isinstance(target.get(nested), dict) and rng.random() < 0.3:
                target = target[nested]
        keys = sorted(target)
        action = rng.choice(["set", "set", "delete", "add"])
        if action == "delete" and keys:
            target.pop(rng.choice(keys))
        elif action == "set" and keys:
            target[rng.choice(keys)] = junk(rng)
        else:
            target[rng.choice(["num_key_value_head", "n_layers", "sliding_window", "head_dim", "layer_types",
                               "first_k_dense_replace", "num_experts", "rope_scaling", "zzz"])] = junk(rng)
    return cfg


def check_finite(x: object, path: str = "") -> None:
    """Every float finite; bytes, FLOPs, times and rates not negative."""
    if isinstance(x, float):
        assert math.isfinite(x), f"{path} = {x}"
    if isinstance(x, int | float) and not isinstance(x, bool) and x < 0:
        assert any(s in path for s in _NEGATIVE_OK) or not any(
            s in path for s in ("bytes", "flops", "_s", "tokens", "mfu", "hfu", "params", "memory")), f"{path} = {x}"
    if isinstance(x, dict):
        for k, v in x.items():
            check_finite(v, f"{path}.{k}")
    elif isinstance(x, list | tuple):
        for i, v in enumerate(x):
            check_finite(v, f"{path}[{i}]")


def call(kind: str, cfg: object, rng: random.Random) -> dict:
    """One library call on `cfg` with random, in-range workload options; its output as a dict."""
    gpu = rng.choice(["h100-sxm", "a100-80gb", "l4", "mi300x", "b200"])
    if kind == "analyze":
        return tm.analyze(cfg, batch=rng.choice([1, 3, 64]), context=rng.choice([1, 100, 8192, 10**6]),
                          kv_dtype=rng.choice(["bf16", "fp8", "int4-g64-zp"])).to_dict()
    if kind == "serve":
        return tm.serve(cfg, gpu, tp=rng.choice([1, 2, 4]), batch=rng.choice([1, 16]), prompt=rng.choice([1, 2048]),
                        gen=rng.choice([1, 256]), weight_dtype=rng.choice(["auto", "int4", "fp8"]),
                        suggest=rng.random() < 0.1).to_dict()
    if kind == "train":
        return tm.train(cfg, gpu, gpus=rng.choice([1, 8, 64]), tp=rng.choice([1, 2]), pp=rng.choice([1, 2]),
                        global_batch=rng.choice([8, 64]), seq=rng.choice([512, 4096]),
                        recompute=rng.choice(["none", "full"]), zero=rng.choice([1, 3]),
                        finetune=rng.choice(["full", "full", "lora"]), suggest=rng.random() < 0.05).to_dict()
    return tm.search(cfg, gpu, gpus=rng.choice([8, 64]), global_batch=64, seq=2048, top=3, time_limit_s=4).to_dict()


@dataclass
class Part:
    name: str
    tried: int = 0
    results: int = 0
    errors: int = 0
    failures: list[str] = field(default_factory=list)
    worst_s: float = 0.0
    worst_bytes: int = 0

    def row(self) -> str:
        return (f"  {self.name:28s} {self.tried:>7,} {self.results:>8,} {self.errors:>8,} {len(self.failures):>7,} "
                f"{self.worst_s * 1e3:>9.1f} ms {self.worst_bytes / 2**20:>8.1f} MiB")


def probe_one(part: Part, kind: str, cfg: object, rng: random.Random) -> None:
    """Run one call, keep its figures; a failure is anything but a result or a TmathError within bounds."""
    part.tried += 1
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():  # a near-miss key warns (the tool's answer) even where warnings are errors
            warnings.simplefilter("ignore", ConfigKeyWarning)
            out = call(kind, cfg, rng)
        json.dumps(json_ready(out), allow_nan=False)
        check_finite(out)
        part.results += 1
    except tm.TmathError as e:
        assert str(e)
        part.errors += 1
    except Exception as e:  # noqa: BLE001 — the probe's whole point: report any other exception
        part.failures.append(f"{kind}: {type(e).__name__}: {str(e)[:200]}")
    finally:
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    part.worst_s, part.worst_bytes = max(part.worst_s, dt), max(part.worst_bytes, peak)
    if dt > TIME_LIMIT_S or peak > MEMORY_LIMIT:
        part.failures.append(f"{kind}: {dt:.2f} s, {peak / 2**20:.0f} MiB (limits {TIME_LIMIT_S} s, "
                             f"{MEMORY_LIMIT / 2**20:.0f} MiB)")


def warm() -> None:
    """Import and cache what the first call of each kind would (tracemalloc makes first imports slow)."""
    tm.analyze("llama-3.2-3b")
    tm.serve("llama-3.2-3b", "h100-sxm")
    tm.train("llama-3.2-3b", "h100-sxm", gpus=8, global_batch=8)
    tm.search("llama-3.2-3b", "h100-sxm", gpus=8, global_batch=8, seq=2048)


def run(configs: int, plans: int, seed: int = 0) -> list[Part]:
    warm()
    rng = random.Random(seed)
    names = sorted(PRESET_CONFIGS)
    mutated = [Part("mutated configs → analyze"), Part("mutated configs → serve"), Part("mutated configs → train")]
    for i in range(configs):
        cfg = mutate(PRESET_CONFIGS[names[i % len(names)]], rng)
        probe_one(mutated[i % 3], ("analyze", "serve", "train")[i % 3], cfg, rng)
    presets = Part("presets → search")
    for i in range(plans):
        probe_one(presets, "search" if i % 10 == 0 else rng.choice(["serve", "train"]), names[i % len(names)], rng)
    return [*mutated, presets]


def main() -> None:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--configs", type=int, default=12_000)
    a.add_argument("--plans", type=int, default=2_500)
    a.add_argument("--seed", type=int, default=0)
    args = a.parse_args()
    t0 = time.perf_counter()
    parts = run(args.configs, args.plans, args.seed)
    print(f"probe: {sum(p.tried for p in parts):,} calls in {time.perf_counter() - t0:.0f} s "
          f"(limits per call: {TIME_LIMIT_S} s, {MEMORY_LIMIT / 2**20:.0f} MiB)")
    print(f"  {'part':28s} {'tried':>7s} {'results':>8s} {'errors':>8s} {'failed':>7s} {'worst time':>12s} "
          f"{'worst memory':>12s}")
    for p in parts:
        print(p.row())
    for p in parts:
        for f in p.failures[:10]:
            print(f"  FAILED {p.name}: {f}")
    if any(p.failures for p in parts):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
