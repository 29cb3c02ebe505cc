"""Performance model: hardware database, roofline, serving and training plans, search, sweeps, Chinchilla."""

import json
import math

import pytest

import transformer_math as tm
from transformer_math.analysis.efficiency import BAND, MID
from transformer_math.analysis.inference import step_costs, total_time
from transformer_math.analysis.report import parse_weight_dtypes
from transformer_math.analysis.serving import Speculative, kv_bytes_per_sequence, plan_serving
from transformer_math.analysis.training import Finetune, Layout, lora_params, plan_training, search_layouts
from transformer_math.cli import main
from transformer_math.config.hardware import list_hardware, load_hardware
from transformer_math.formulas import roofline as rf
from transformer_math.units import parse_dtype

IDS = ["a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "b200", "l4", "l40s", "rtx-4090", "mi300x",
       "tpu-v4", "tpu-v5e"]
BF16 = parse_dtype("bf16")


def serve(model="llama-3.1-8b", gpu="h100-sxm", **kw):
    s = tm.load_model(model)
    wd = parse_weight_dtypes(kw.pop("weight_dtype", "auto"), s)
    kv = parse_dtype(kw.pop("kv_dtype", "bf16"))
    args = dict(batch=8, prompt=1024, gen=256) | kw
    return plan_serving(s, load_hardware(gpu), wd=wd, kv=kv, **args)


def test_hardware_database_complete():
    assert set(IDS) <= set(list_hardware())
    h100 = load_hardware("h100-sxm")
    assert h100.peak("bf16") == 989e12 and h100.memory_bandwidth_bytes_per_s == 3.35e12  # NVIDIA H100 datasheet
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
    ops = step_costs(tm.load_model("llama-3.1-8b"), h, MID, B=1, T=1, L=1024, decode=True, tp=1, ep=1,
                     wd={"*": BF16}, kv=BF16)
    assert all(c.bound == "memory" for c in ops if c.flops)  # batch-1 decode is memory bound
    big = step_costs(tm.load_model("llama-3.1-8b"), h, MID, B=1, T=8192, L=0, decode=False, tp=1, ep=1,
                     wd={"*": BF16}, kv=BF16)
    assert next(c for c in big if c.name == "mlp.up_gate").bound == "compute"


def test_decode_band_and_weight_bytes():
    p = serve(batch=1)
    assert p.tpot_s[0] > p.tpot_s[1] > p.tpot_s[2] and p.ttft_s[0] > p.ttft_s[1] > p.ttft_s[2]
    # batch 1 decode on H100 is close to weights / bandwidth: 16.06 GB / 3.35 TB/s = 4.8 ms at η_bw = 1
    assert 16.06e9 / 3.35e12 < p.tpot_s[1] < 2 * 16.06e9 / 3.35e12
    int4 = serve(batch=1, weight_dtype="int4")
    assert int4.tpot_s[1] < 0.5 * p.tpot_s[1] and int4.memory["weights"] < 0.3 * p.memory["weights"]


def test_fit_max_batch_and_context():
    assert not serve("llama-3.1-405b").fits
    p = serve(batch=8, prompt=4096, gen=1024)
    assert p.fits
    assert serve(batch=p.max_batch, prompt=4096, gen=1024).fits
    assert not serve(batch=p.max_batch + 1, prompt=4096, gen=1024).fits
    fp8 = serve(batch=8, prompt=4096, gen=1024, kv_dtype="fp8")
    assert 1.9 < fp8.max_batch / p.max_batch < 2.1
    assert serve(batch=8, prompt=p.max_context - 1024, gen=1024).fits


def test_paged_kv_and_window_pools():
    s, kv = tm.load_model("gemma-3-4b"), BF16
    assert kv_bytes_per_sequence(s, 1000, kv, block=16) > kv_bytes_per_sequence(s, 1000, kv, block=1)
    # 29 of 34 layers are sliding (S = 1024): beyond the window only the 5 full layers grow
    grow = kv_bytes_per_sequence(s, 9000, kv, block=1) - kv_bytes_per_sequence(s, 5000, kv, block=1)
    assert grow == 5 * 4000 * 2 * s.kv_dim * 2


def test_tensor_and_expert_parallel():
    one, four = serve("llama-3.1-70b", tp=1), serve("llama-3.1-70b", tp=4)
    assert four.memory["weights"] < one.memory["weights"] / 3.9
    assert four.tpot_s[1] < one.tpot_s[1] / 2.5
    assert any(c.name.startswith("tp.all_reduce") for c in four.decode_ops)
    moe = serve("qwen3-30b-a3b", ep=4, gpu="h100-sxm")
    assert any(c.name.startswith("ep.all_to_all") for c in moe.decode_ops)


def test_speculative_decoding():
    base = serve("llama-3.1-70b", tp=4, batch=1)
    spec = serve("llama-3.1-70b", tp=4, batch=1, speculative=Speculative(draft=tm.load_model("llama-3.2-3b"), k=4,
                                                                          acceptance=0.8))
    assert spec.tokens_per_s[1] > 1.5 * base.tokens_per_s[1]
    assert Speculative(draft=tm.load_model("gpt2"), k=4, acceptance=0.5).tokens_per_step == pytest.approx(1.9375)


def test_continuous_batching_curve():
    p = serve(batch=8)
    rates = [c[2] for c in p.batch_curve]
    assert rates == sorted(rates) and p.compute_bound_batch >= 64


def test_training_memory_and_zero():
    s, h = tm.load_model("llama-3.1-8b"), load_hardware("h100-sxm")
    mem = [plan_training(s, h, Layout(dp=8, zero=z), global_batch=64, seq=4096).memory for z in (0, 1, 2, 3)]
    assert mem[0]["optimizer"] == 8_030_261_248 * 12  # fp32 master + Adam m, v: 12 bytes per parameter
    assert mem[1]["optimizer"] == mem[0]["optimizer"] // 8
    assert mem[2]["gradients"] == mem[1]["gradients"] // 8 and mem[3]["weights"] == mem[2]["weights"] // 8
    full = plan_training(s, h, Layout(dp=8, recompute="full"), global_batch=64, seq=4096)
    none = plan_training(s, h, Layout(dp=8), global_batch=64, seq=4096)
    assert full.memory["activations"] < none.memory["activations"] / 5 and full.hfu > full.mfu


def test_pipeline_bubble():
    s, h = tm.load_model("llama-3.1-70b"), load_hardware("h100-sxm")
    r = plan_training(s, h, Layout(tp=8, pp=4, dp=4, interleave=2), global_batch=64, seq=4096)
    t_mb = r.time["compute"] / r.micro_batches + r.time["tp_comm"] / r.micro_batches
    assert r.time["pipeline_bubble"] == pytest.approx((4 - 1) / 2 * t_mb)


def test_mfu_is_palm_formula():
    s, h = tm.load_model("llama-3.1-8b"), load_hardware("a100-80gb")
    r = plan_training(s, h, Layout(dp=8), global_batch=64, seq=2048)
    per_token = 6 * 8_030_261_248 + 12 * 32 * 32 * 128 * 2048
    assert r.mfu == pytest.approx(per_token * 64 * 2048 / (r.step_time_s * 8 * 312e12))


def test_qlora_fits_24gb_and_lora_counts():
    s = tm.load_model("llama-3.1-8b")
    ft = Finetune(mode="qlora", rank=16)
    r = plan_training(s, load_hardware("rtx-4090"), Layout(recompute="full"), global_batch=8, seq=4096, finetune=ft)
    assert r.fits and r.trainable_params == lora_params(s, 16, ft.targets)
    # r·(d_in + d_out) per targeted linear, 32 layers: q, k, v, o, gate, up, down
    per_layer = 16 * ((4096 + 4096) + 2 * (4096 + 1024) + (4096 + 4096) + 2 * (4096 + 14336) + (14336 + 4096))
    assert r.trainable_params == 32 * per_layer == 41_943_040
    assert not plan_training(s, load_hardware("rtx-4090"), Layout(), global_batch=8, seq=4096).fits


def test_search_is_vectorized_and_fast():
    s, h = tm.load_model("llama-3.1-405b"), load_hardware("h100-sxm")
    search_layouts(s, h, gpus=16384, global_batch=2048, seq=8192)  # warm the per-shape cache
    best, n, seconds = search_layouts(s, h, gpus=16384, global_batch=2048, seq=8192)
    assert n > 1000 and seconds < 1.0 and best
    steps = [r["step_time_s"] for _, r in best]
    assert steps == sorted(steps)
    lay = best[0][0]
    check = plan_training(s, h, lay, global_batch=2048, seq=8192)
    assert check.fits and check.step_time_s == pytest.approx(steps[0])


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


def test_serve_and_train_json_keys(capsys):
    assert main(["serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--batch", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"fits", "memory_per_gpu_bytes", "ttft_s", "tpot_s", "tokens_per_s", "max_batch"} <= out.keys()
    assert "TTFT" in out["explain"]["ttft_s"]
    assert main(["train", "llama-3.1-8b", "--gpu", "a100-80gb", "--gpus", "8", "--global-batch", "64", "--seq", "2048",
                 "--tokens", "1e11", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"fits", "memory_per_gpu_bytes", "step_time_s", "tflops_per_gpu", "mfu", "days"} <= out.keys()
    assert out["days"] == pytest.approx(1e11 / (64 * 2048 / out["step_time_s"]) / 86400)


def test_perf_cli_errors(capsys):
    for argv in (["serve", "llama-3.1-8b", "--gpu", "h101"], ["serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--tp", "3"],
                 ["train", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "8", "--tp", "3", "--global-batch", "8"],
                 ["chinchilla", "--flops", "5"]):
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith("tmath: error:")


def test_band_assumptions_ordered():
    low, mid, high = BAND
    assert low.gemm < mid.gemm < high.gemm and low.bw < mid.bw < high.bw
