"""Predicted vs measured on the machine at hand: calibrate it (or load --profile), build a small Llama with random
weights in Hugging Face transformers, time prefill, decode (batch 1 and 8) and one AdamW training step, and compare
with what transformer_math predicts from the calibrated profile (engine "hf").

    python benchmarks/selfcheck.py                      # CPU: ~2-3 minutes
    python benchmarks/selfcheck.py --device cuda        # a ~1B Llama on the first GPU
    python benchmarks/selfcheck.py --profile calibrated-x.json --out rows.json --model-config '{"num_hidden_layers": 4}'

error = predicted / measured - 1; the target is a median |error| within 25 %.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from typing import Any

CPU_MODEL = {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 8, "num_attention_heads": 16,
             "num_key_value_heads": 4, "vocab_size": 8192, "max_position_embeddings": 4096}
CUDA_MODEL = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
              "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192}
SETTINGS = {  # prompt tokens, training (batch, seq), decode batches, repeats
    "cpu": {"T": 512, "train": (2, 256), "decode": (1, 8), "repeats": 3},
    "cuda": {"T": 2048, "train": (4, 2048), "decode": (1, 8), "repeats": 5},
}
NEW_TOKENS = 32


def _median_time(fn: Any, sync: Any, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
        sync()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def measure(device: str, overrides: dict[str, Any], log: Any) -> tuple[dict[str, Any], dict[str, float], dict]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg_values = dict(CUDA_MODEL if device == "cuda" else CPU_MODEL, **overrides)
    config = LlamaConfig(**cfg_values)
    st = SETTINGS[device]
    T, repeats = st["T"], st["repeats"]
    dev = torch.device("cuda", 0) if device == "cuda" else torch.device("cpu")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    torch.manual_seed(0)
    with torch.device(dev):
        model = LlamaForCausalLM._from_config(config, attn_implementation="sdpa", dtype=torch.bfloat16)
    model.eval()
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = None
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.1f} M parameters, {config.num_hidden_layers} layers, d={config.hidden_size}, "
        f"bf16, sdpa, on {device}")
    vocab = config.vocab_size

    def ids(b: int, t: int) -> Any:
        return torch.randint(1, vocab, (b, t), device=dev)

    out: dict[str, float] = {}
    with torch.no_grad():
        prefill: dict[int, float] = {}
        for b in sorted({1, *st["decode"]}):
            x = ids(b, T)
            prefill[b] = _median_time(lambda x=x: model(x, use_cache=True), sync, repeats)
            log(f"prefill B={b} T={T}: {prefill[b] * 1e3:.1f} ms")
        out["prefill B=1"] = prefill[1]
        for b in st["decode"]:
            x = ids(b, T)
            attn = torch.ones_like(x)
            gen = _median_time(lambda x=x, attn=attn: model.generate(
                x, attention_mask=attn, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False),
                sync, repeats)
            per_token = (gen - prefill[b]) / (NEW_TOKENS - 1)
            out[f"decode B={b}"] = per_token if per_token > 0 else math.nan  # a busy machine's noise, not a time
            log(f"decode B={b}: generate {gen:.3f} s -> {out[f'decode B={b}'] * 1e3:.2f} ms/token")
    b, t = st["train"]
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    x = ids(b, t)

    def step() -> None:
        loss = model(x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    out[f"train step B={b} T={t}"] = _median_time(step, sync, repeats)
    log(f"train step B={b} T={t}: {out[f'train step B={b} T={t}']:.3f} s")
    hf = {k: v for k, v in config.to_dict().items() if _jsonable(v)}
    hf.update(model_type="llama", architectures=["LlamaForCausalLM"])
    return hf, out, {"T": T, "train": (b, t), "decode": st["decode"], "params": n_params}


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


def _top_ops(ops: Any, n: int = 3) -> str:
    total = sum(o.time_s * o.count for o in ops) or 1.0
    top = sorted(ops, key=lambda o: -o.time_s * o.count)[:n]
    return ", ".join(f"{o.name} {o.time_s * o.count / total:.0%} ({o.bound})" for o in top)


def predict(model_path: str, profile: str, setup: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    import transformer_math as tm

    T = setup["T"]
    pred: dict[str, float] = {}
    why: dict[str, str] = {}
    r = tm.serve(model_path, profile, batch=1, prompt=T, gen=1, engine="hf")
    pred["prefill B=1"] = float(r.plan["serve.ttft"])
    why["prefill B=1"] = _top_ops(r.plan.prefill_ops)
    for b in setup["decode"]:
        r = tm.serve(model_path, profile, batch=b, prompt=T, gen=NEW_TOKENS, engine="hf")
        pred[f"decode B={b}"] = float(r.plan["serve.tpot"])
        why[f"decode B={b}"] = _top_ops(r.plan.decode_ops)
    b, t = setup["train"]
    tr = tm.train(model_path, profile, global_batch=b, seq=t, gpus=1, micro_batch=b)
    pred[f"train step B={b} T={t}"] = float(tr.plan["train.step_time"])
    return pred, why


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs")
    p.add_argument("--profile", help="device JSON to predict with (default: run tmath calibrate first)")
    p.add_argument("--budget", type=float, default=30.0, help="calibration budget in seconds")
    p.add_argument("--model-config", default="{}", help="JSON object of LlamaConfig values over the defaults")
    p.add_argument("--out", help="write the rows as JSON to this file")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads for calibration and model alike (0: torch's default); 1 keeps a busy "
                        "machine's other processes from stalling every multi-threaded op")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    overrides = json.loads(args.model_config)
    if not isinstance(overrides, dict):
        p.error("--model-config must be a JSON object")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5 * (os.cpu_count() or 1):
        log(f"warning: load average {load:.1f} on {os.cpu_count()} CPUs: other processes will stall multi-threaded "
            "ops and skew both calibration and timings (try --threads 1)")
    t0 = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="tmath-selfcheck-")
    if args.profile:
        profile = args.profile
    else:
        from transformer_math.checks import calibrate

        log(f"calibrating {args.device} ({args.budget:g} s) ...")
        prof = calibrate.run(args.device, args.budget)
        profile = os.path.join(tmp, "profile.json")
        with open(profile, "w", encoding="utf-8") as f:
            json.dump(prof, f, indent=1)
        e = prof["efficiency"]
        log(f"calibrated in {time.perf_counter() - t0:.1f} s: bf16 {prof['peak_flops_per_s']['bf16'] / 1e12:.2f} "
            f"TFLOP/s, {prof['memory_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s, "
            + ", ".join(f"{k}={e[k]:.3g}" for k in ("gemm", "gemm_dim_half", "gemm_rows_half", "attention",
                                                     "attention_keys_half", "bw", "launch_s")))
    hf, measured, setup = measure(args.device, overrides, log)
    model_path = os.path.join(tmp, "config.json")
    with open(model_path, "w", encoding="utf-8") as f:
        json.dump(hf, f, indent=1)
    predicted, why = predict(model_path, profile, setup)
    rows = []
    print(f"\n{'figure':24s} {'measured':>12s} {'predicted':>12s} {'error':>8s}")
    for key, m in measured.items():
        pr = predicted[key]
        err = pr / m - 1
        rows.append({"figure": key, "measured_s": m, "predicted_s": pr, "error": err, "dominant_ops": why.get(key)})
        print(f"{key:24s} {_fmt(m):>12s} {_fmt(pr):>12s} {err:+8.1%}")
    valid = [abs(r["error"]) for r in rows if math.isfinite(r["error"])]
    med = statistics.median(valid) if valid else math.nan
    print(f"\nmedian |error| = {med:.1%} (target ≤ 25 %) over {len(valid)} figures; "
          f"{time.perf_counter() - t0:.0f} s in all")
    for r in rows:
        if r["dominant_ops"]:
            print(f"  {r['figure']}: predicted time mostly {r['dominant_ops']}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"device": args.device, "profile": profile, "setup": setup, "rows": rows,
                       "median_abs_error": med}, f, indent=1)
    return 0 if math.isfinite(med) else 1


def _fmt(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.3f} s"


if __name__ == "__main__":
    sys.exit(main())
