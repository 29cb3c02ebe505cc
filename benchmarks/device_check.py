"""Predicted vs measured on a real GPU: prefill, decode and a training step of Llama models with random weights.

Runs Hugging Face transformers (bf16, SDPA attention, eager: the `hf` engine profile) on the local CUDA device,
next to the model's predictions for the same setups — with the shipped device-class profile (validation: the
fit never saw this device's runs) and, when --profile names a `tmath calibrate` file of this device, with that.
Writes the measurements as rows of presets/measurements/device_runs.json's format (--out).

    python benchmarks/device_check.py --gpu h200 --out runs.json [--profile calibrated.json]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import statistics
import subprocess
import time
from typing import Any

import torch

import transformer_math as tm
from transformer_math.presets import load_preset

SERVE_MODEL, TRAIN_MODEL = "llama-3.1-8b", "llama-3.2-3b"
DEV = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: only to try the script out


def _sync() -> None:
    if DEV == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Any, reps: int = 3) -> float:
    fn()
    _sync()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        _sync()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def _model(name: str) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(load_preset(name)["config"])
    cfg = AutoConfig.for_model(cfg.pop("model_type"), **{k: v for k, v in cfg.items() if k != "architectures"})
    with torch.device(DEV):
        m = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    return m, cfg.vocab_size


def _gpu_facts() -> str:
    try:
        q = "name,power.limit,clocks.max.sm,memory.total,driver_version"
        return subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return torch.cuda.get_device_name() if DEV == "cuda" else "cpu"


def serve_rows(gpu: str, group: str, facts: str, quick: bool = False) -> list[dict[str, Any]]:
    m, V = _model(SERVE_MODEL)
    m.eval()
    rows = []
    base = dict(source_group=group, device=gpu, gpus=1, tp=1, ep=1, dp=1, engine="hf", model=SERVE_MODEL,
                weight_dtype="bf16", kv_dtype="bf16", not_stated=[],
                source=f"this repository's benchmarks/device_check.py on {facts}; torch {torch.__version__}")
    with torch.inference_mode():
        for B, T in ((1, 64),) if quick else ((1, 512), (1, 2048), (1, 8192), (8, 2048)):
            ids = torch.randint(0, V, (B, T), device=DEV)
            t = _timed(functools.partial(m, ids, use_cache=True))
            rows.append(dict(base, id=f"{group}-prefill-b{B}-t{T}", scenario="prefill", batch=B, input_len=T,
                             output_len=1, metric="ttft_ms", value=round(1e3 * t, 3),
                             notes="one forward of B prompts with use_cache=True, median of 3 after a warm-up"))
        for B in (1,) if quick else (1, 16, 64):
            ids = torch.randint(0, V, (B, 512), device=DEV)
            kw = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
            t1 = _timed(functools.partial(m.generate, ids, max_new_tokens=1, min_new_tokens=1, **kw), reps=2)
            t65 = _timed(functools.partial(m.generate, ids, max_new_tokens=65, min_new_tokens=65, **kw), reps=2)
            rows.append(dict(base, id=f"{group}-decode-b{B}-p512", scenario="decode", batch=B, input_len=512,
                             output_len=64, metric="tpot_ms", value=round(1e3 * (t65 - t1) / 64, 4),
                             notes="generate() greedy, 65 minus 1 new tokens over 64; dynamic cache, eager"))
    del m
    torch.cuda.empty_cache()
    return rows


def train_rows(gpu: str, group: str, facts: str, quick: bool = False) -> list[dict[str, Any]]:
    m, V = _model(TRAIN_MODEL)
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5, fused=DEV == "cuda")
    rows = []
    for B, T in ((1, 64),) if quick else ((1, 2048), (4, 2048), (2, 8192)):
        ids = torch.randint(0, V, (B, T), device=DEV)

        def step(ids: torch.Tensor = ids) -> None:
            loss = m(ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        t = _timed(step)
        rows.append(dict(id=f"{group}-train-b{B}-t{T}", source_group=group, device=gpu, model=TRAIN_MODEL, shape=None,
                         gpus=1, tp=1, pp=1, cp=1, ep=1, vp=1, dp=1, micro_batch=B, global_batch=B, seq=T,
                         precision="bf16", recompute="none", sharding="ddp", framework="hf-transformers",
                         metric="tokens_per_s_per_gpu", value=round(B * T / t, 2), flops_convention=None,
                         not_stated=[], source=f"this repository's benchmarks/device_check.py on {facts}; torch "
                                               f"{torch.__version__}",
                         notes="forward + backward + fused AdamW on bf16 parameters (no fp32 master copy), "
                               "SDPA attention, eager; median of 3 steps after a warm-up"))
    return rows


def predictions(rows: list[dict[str, Any]], gpu: Any) -> list[float]:
    out = []
    for r in rows:
        if r.get("scenario") == "prefill":
            p = tm.serve(r["model"], gpu, batch=r["batch"], prompt=r["input_len"], gen=1, engine="hf").plan
            out.append(1e3 * p["serve.ttft"])
        elif r.get("scenario") == "decode":
            p = tm.serve(r["model"], gpu, batch=r["batch"], prompt=r["input_len"], gen=r["output_len"],
                         engine="hf").plan
            out.append(1e3 * p["serve.tpot"])
        else:
            p = tm.train(r["model"], gpu, global_batch=r["global_batch"], seq=r["seq"], gpus=1,
                         micro_batch=r["micro_batch"]).plan
            out.append(p["train.tokens_per_s"])
    return out


def main() -> None:
    global SERVE_MODEL, TRAIN_MODEL
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpu", help="the shipped device id of this GPU (default: matched from its name and memory)")
    ap.add_argument("--quick", action="store_true", help="one tiny case of each (to try the script out)")
    ap.add_argument("--models", default=f"{SERVE_MODEL},{TRAIN_MODEL}", help="serving and training presets")
    ap.add_argument("--profile", help="a `tmath calibrate` JSON of this device, predicted with too")
    ap.add_argument("--out", help="write the measured rows here (device_runs.json format)")
    a = ap.parse_args()
    SERVE_MODEL, TRAIN_MODEL = a.models.split(",")
    facts = _gpu_facts()
    if a.gpu is None:
        from transformer_math.checks.calibrate import match_preset

        props = torch.cuda.get_device_properties(0)
        a.gpu = match_preset(torch.cuda.get_device_name(0), props.total_memory) or "h100-sxm"
    group = f"device-run-{a.gpu}-{datetime.date.today().isoformat()}"
    rows = serve_rows(a.gpu, group, facts, a.quick) + train_rows(a.gpu, group, facts, a.quick)
    shipped = predictions(rows, a.gpu)
    own = predictions(rows, a.profile) if a.profile else [float("nan")] * len(rows)
    print(f"{facts}\n{'row':44s} {'metric':22s} {'measured':>10s} {'shipped':>10s} {'err':>7s} {'calib.':>10s} "
          f"{'err':>7s}")
    for r, p, c in zip(rows, shipped, own, strict=True):
        print(f"{r['id'][len(group) + 1:]:44s} {r['metric']:22s} {r['value']:10.2f} {p:10.2f} "
              f"{p / r['value'] - 1:+7.1%} {c:10.2f} {c / r['value'] - 1:+7.1%}")
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump({"about": f"measured by benchmarks/device_check.py on {facts}", "rows": rows,
                       "predicted_shipped": shipped, "predicted_calibrated": own}, f, indent=1)


if __name__ == "__main__":
    main()
