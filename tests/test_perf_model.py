"""Performance model: hardware database, roofline, serving and training plans, search, sweeps, Chinchilla."""

import json
import math

import pytest

import transformer_math as tm
from transformer_math.analysis.costs import Sharding, layer_costs, total_time
from transformer_math.analysis.efficiency import MID
from transformer_math.analysis.plans import serve, train
from transformer_math.analysis.report import parse_weight_dtypes
from transformer_math.analysis.serving import ServeLayout, ServeWorkload, _step, kv_bytes_per_sequence
from transformer_math.analysis.training import lora_params
from transformer_math.cli import main
from transformer_math.config.hardware import list_hardware, load_hardware
from transformer_math.formulas import roofline as rf
from transformer_math.units import parse_dtype

IDS = ["a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "b200", "l4", "l40s", "rtx-4090", "mi300x",
       "tpu-v4", "tpu-v5e"]
BF16 = parse_dtype("bf16")


def step(model, gpu="h100-sxm", *, B, T, L=0, decode, tp=1, wd="auto"):
    s = tm.load_model(model)
    w = ServeWorkload(batch=B, prompt=max(T, 1), gen=1, weights=parse_weight_dtypes(wd, s), kv=BF16)
    return _step(s, load_hardware(gpu), MID, ServeLayout(tp=tp), w, B=B, T=T, ctx=L, decode=decode)


def test_hardware_database_complete():
    assert set(IDS) <= set(list_hardware())
    h100 = load_hardware("h100-sxm")
    assert h100.peak("bf16") == 989e12 and h100.memory_bandwidth_bytes_per_s == 3.35e12  # NVIDIA H100 datasheet
    assert h100.memory_bytes == 81559 * 2**20  # what nvidia-smi reports for "80GB"
    assert load_hardware("a100-80gb").peak("fp8") == 312e12  # no FP8 tensor cores: runs at the bf16 rate
    for i in IDS:
        h = load_hardware(i)
        assert h.memory_bytes > 1e10 and h.ridge_point > 10


def test_custom_device_file(tmp_path):
    path = tmp_path / "my.json"
    dev = {"name": "mine", "memory_bytes": 48e9, "memory_bandwidth_bytes_per_s": 1e12,
           "peak_flops_per_s": {"bf16": 2e14}, "link_bandwidth_bytes_per_s": 5e10}
    path.write_text(json.dumps(dev))
    assert load_hardware(str(path)).peak("bf16") == 2e14
    for broken, field in ((dict(dev, memory_bytes=-1), "memory_bytes"), ({k: v for k, v in dev.items() if k != "name"},
                          "name"), (dict(dev, peak_flops_per_s={"bf17": 1e14}), "peak_flops_per_s")):
        path.write_text(json.dumps(broken))
        with pytest.raises(tm.TmathError, match=field):
            load_hardware(str(path))


def test_roofline_time_and_bound():
    h = load_hardware("h100-sxm")
    ridge = h.peak("bf16") / h.memory_bandwidth_bytes_per_s
    t = rf.op_time(F=1e12, η_compute=1, F_peak=h.peak("bf16"), M_moved=1e12 / ridge, η_bw=1,
                   BW_HBM=h.memory_bandwidth_bytes_per_s, t_launch=0)
    assert math.isclose(t, 1e12 / h.peak("bf16"))  # exactly at the ridge both roofs agree
    ops = step("llama-3.1-8b", B=1, T=1, L=1024, decode=True)
    assert all(c.bound == "memory" for c in ops if c.flops)  # batch-1 decode is memory bound
    big = step("llama-3.1-8b", B=1, T=8192, decode=False)
    assert next(c for c in big if c.name == "mlp.up_gate").bound == "compute"


def test_decode_band_and_weight_bytes():
    p = serve("llama-3.1-8b", "h100-sxm", batch=1).plan
    (t_lo, t_mid, t_hi), (f_lo, f_mid, f_hi) = p.band["tpot_s"], p.band["ttft_s"]
    assert t_lo > t_mid > t_hi and f_lo > f_mid > f_hi and t_mid == p["serve.tpot"]
    # batch 1 decode on H100 is close to weights / bandwidth: 16.06 GB / 3.35 TB/s = 4.8 ms at η_bw = 1
    assert 16.06e9 / 3.35e12 < p["serve.tpot"] < 2 * 16.06e9 / 3.35e12
    # int4 linear layers; the 2·V·d embedding and LM head stay bf16 (2.1 of 16.1 GB); gpt-fast: no engine overhead
    bf16, int4 = (serve("llama-3.1-8b", "h100-sxm", batch=1, weight_dtype=w, engine="gptfast").plan
                  for w in ("bf16", "int4"))
    assert int4["serve.tpot"] < 0.55 * bf16["serve.tpot"] and int4["memory.weights"] < 0.36 * p["memory.weights"]


def test_fit_max_batch_and_context():
    assert not serve("llama-3.1-405b", "h100-sxm", batch=8).fits
    kw = dict(prompt=4096, gen=1024)
    p = serve("llama-3.1-8b", "h100-sxm", batch=8, **kw).plan
    assert p.fits
    B = p["serve.max_batch"]
    assert serve("llama-3.1-8b", "h100-sxm", batch=B, **kw).fits
    assert not serve("llama-3.1-8b", "h100-sxm", batch=B + 1, **kw, suggest=False).fits
    fp8 = serve("llama-3.1-8b", "h100-sxm", batch=8, kv_dtype="fp8", **kw).plan
    assert 1.9 < fp8["serve.max_batch"] / B < 2.1
    assert serve("llama-3.1-8b", "h100-sxm", batch=8, prompt=p["serve.max_context"] - 1024, gen=1024).fits


def test_paged_kv_and_window_pools():
    s = tm.load_model("gemma-3-4b")
    assert kv_bytes_per_sequence(s, 1000, BF16, block=16) > kv_bytes_per_sequence(s, 1000, BF16, block=1)
    # 29 of 34 layers are sliding (S = 1024): beyond the window only the 5 full layers grow
    grow = kv_bytes_per_sequence(s, 9000, BF16, block=1) - kv_bytes_per_sequence(s, 5000, BF16, block=1)
    assert grow == 5 * 4000 * 2 * s.kv_dim * 2


def test_tensor_and_expert_parallel():
    one, four = serve("llama-3.1-70b", "h100-sxm", tp=1, batch=8).plan, serve("llama-3.1-70b", "h100-sxm", tp=4).plan
    assert four["memory.weights"] < one["memory.weights"] / 3.9
    assert four["serve.tpot"] < one["serve.tpot"] / 2.5
    assert any(c.name.startswith("tp.all_reduce") for c in four.decode_ops)
    moe = serve("qwen3-30b-a3b", "h100-sxm", dp=4, ep=4).plan
    assert any(c.name.startswith("ep.all_to_all") for c in moe.decode_ops)


def test_speculative_decoding():
    base = serve("llama-3.1-70b", "h100-sxm", tp=4, batch=1).plan
    spec = serve("llama-3.1-70b", "h100-sxm", tp=4, batch=1, draft="llama-3.2-3b", draft_k=4, acceptance=0.8).plan
    assert spec["serve.tokens_per_s"] > 1.5 * base["serve.tokens_per_s"]
    assert spec["memory.draft_weights"] > 0 and spec.quantities["serve.tpot"].inputs["E_tokens"] == pytest.approx(
        (1 - 0.8**5) / 0.2)


def test_continuous_batching_curve():
    p = serve("llama-3.1-8b", "h100-sxm", batch=8).plan
    rates = [c[2] for c in p.batch_curve]
    assert rates == sorted(rates) and p.compute_bound_batch >= 64


def test_training_memory_and_zero():
    kw = dict(gpus=8, global_batch=64, seq=4096)
    mem = [train("llama-3.1-8b", "h100-sxm", zero=z, **kw).plan for z in (0, 1, 2, 3)]
    P = 8_030_261_248
    assert mem[0]["memory.optimizer"] == P * 12  # fp32 master + Adam m, v: 12 bytes per parameter
    assert mem[1]["memory.optimizer"] < mem[0]["memory.optimizer"] / 7.99
    assert mem[2]["memory.gradients"] < mem[1]["memory.gradients"] / 7.99
    assert mem[3]["memory.weights"] < mem[2]["memory.weights"] / 7.99
    full = train("llama-3.1-8b", "h100-sxm", recompute="full", **kw).plan
    none = train("llama-3.1-8b", "h100-sxm", **kw).plan
    assert full["memory.activations"] < none["memory.activations"] / 5 and full["train.hfu"] > full["train.mfu"]


def test_pipeline_bubble():
    p = train("llama-3.1-70b", "h100-sxm", gpus=128, tp=8, pp=4, interleave=2, global_batch=64, seq=4096).plan
    assert p["train.bubble"] == pytest.approx((4 - 1) / 2 * p["time.microbatch"])


def test_qlora_fits_24gb_and_lora_counts():
    s = tm.load_model("llama-3.1-8b")
    r = train("llama-3.1-8b", "rtx-4090", gpus=1, global_batch=8, seq=4096, finetune="qlora", recompute="full")
    assert r.fits and r.plan.trainable_params == lora_params(s, 16, r.plan.workload.finetune.targets)
    # r·(d_in + d_out) per targeted linear, 32 layers: q, k, v, o, gate, up, down
    per_layer = 16 * ((4096 + 4096) + 2 * (4096 + 1024) + (4096 + 4096) + 2 * (4096 + 14336) + (14336 + 4096))
    assert r.plan.trainable_params == 32 * per_layer == 41_943_040
    assert not train("llama-3.1-8b", "rtx-4090", gpus=1, global_batch=8, seq=4096, suggest=False).fits


def test_search_is_vectorized():
    """Thousands of layouts in one evaluation (its speed is measured by benchmarks/bench_perf.py, not here)."""
    from transformer_math.analysis.plans import search

    r = search("llama-3.1-405b", "h100-sxm", gpus=16384, global_batch=2048, seq=8192)
    assert r.evaluated > 1000 and r.rows
    steps = [row["step_time_s"] for row in r.rows]
    assert steps == sorted(steps)


def test_sweep_grid_equals_analyze():
    from transformer_math.analysis.sweep import grid

    g = grid(tm.load_model("gemma-3-4b"), batch=[1, 3], context=[100, 5000], kv=[BF16, parse_dtype("fp8")])
    for i, b in enumerate([1, 3]):
        for j, L in enumerate([100, 5000]):
            r = tm.analyze("gemma-3-4b", batch=b, context=L)
            assert g["kv_cache_bytes"][i, j, 0, 0] == r["memory.kv_cache_bytes"]
            assert g["prefill_flops"][i, j, 1, 0] == r["flops.prefill"]


def test_chinchilla_rule_of_thumb(capsys):
    """Hoffmann et al. 2022 Table 3: 5.76e23 FLOPs ↔ 67B parameters, 1.5T tokens (20 tokens per parameter)."""
    assert main(["chinchilla", "--flops", "5.76e23", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rule_of_thumb"]["n"] == pytest.approx(67e9, rel=0.05)
    assert out["rule_of_thumb"]["d"] == pytest.approx(1.5e12, rel=0.1)
    assert out["n_opt"] * out["d_opt"] * 6 == pytest.approx(5.76e23)
    assert out["quantities"]["chinchilla.cost"]["formula"] == "GPU_h·price"


def test_serve_and_train_json_keys(capsys):
    assert main(["serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--batch", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"fits", "memory_per_gpu_bytes", "ttft_s", "tpot_s", "tokens_per_s", "max_batch"} <= out.keys()
    assert out["quantities"]["serve.ttft"]["unit"] == "s"
    assert main(["train", "llama-3.1-8b", "--gpu", "a100-80gb", "--gpus", "8", "--global-batch", "64", "--seq", "2048",
                 "--tokens", "1e11", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"fits", "memory_per_gpu_bytes", "step_time_s", "tflops_per_gpu", "mfu", "days"} <= out.keys()
    assert out["days"] == pytest.approx(1e11 / (64 * 2048 / out["step_time_s"]) / 86400)


def test_perf_cli_errors(capsys):
    for argv in (["serve", "llama-3.1-8b", "--gpu", "h101"],
                 ["serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--tp", "3"],
                 ["train", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "8", "--tp", "3", "--global-batch", "8"],
                 ["serve", "qwen3-30b-a3b", "--gpu", "h100-sxm", "--ep", "4"],
                 ["serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--ep", "2"],
                 ["chinchilla", "--flops", "5"]):
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith("tmath: error:")


def test_layer_costs_shard_over_tensor_parallel():
    s, hw = tm.load_model("llama-3.1-70b"), load_hardware("h100-sxm")
    layer = s.layers[0]
    one = layer_costs(s, layer, 1, hw, MID, B=1, T=4096, wd={"*": BF16}, kv=BF16)
    eight = layer_costs(s, layer, 1, hw, MID, B=1, T=4096, shard=Sharding(tp=8), wd={"*": BF16}, kv=BF16)
    assert sum(c.flops for c in eight) == pytest.approx(sum(c.flops for c in one) / 8)
    assert total_time(eight) < total_time(one) / 5
