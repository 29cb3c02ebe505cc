"""The plans' answers that practitioners know: each was wrong before (numbers in the comments), each is checked here."""

import json
import math

import pytest

import transformer_math as tm
from transformer_math.analysis.flops import forward_flops
from transformer_math.analysis.params import by_group, params_breakdown
from transformer_math.checks.measurements import gpt_spec
from transformer_math.cli import main
from transformer_math.config.hardware import load_hardware


# 1. MoE MFU counts the parameters a token touches (was 315 % for this Mixtral layout, 600–900 % for DeepSeek-V3)
def test_moe_mfu_uses_active_parameters():
    r = tm.train("mixtral-8x7b", "h100-sxm", gpus=64, tp=2, ep=8, global_batch=256, seq=4096).plan
    s = tm.load_model("mixtral-8x7b")
    required = 3 * forward_flops(s, B=256, T=4096, attention="causal", key="f").value  # routed experts only
    assert r["train.model_flops"] == required
    assert 0.2 < r["train.mfu"] < 0.8
    assert r["train.mfu"] == pytest.approx(required / (r["train.step_time"] * 64 * 989e12))
    for gpus, tp, pp, ep in ((2048, 8, 8, 32), (1024, 1, 16, 64), (256, 4, 8, 8)):
        p = tm.train("deepseek-v3", "h100-sxm", gpus=gpus, tp=tp, pp=pp, ep=ep, global_batch=4096, seq=4096,
                     zero=3, suggest=False).plan
        assert p["train.mfu"] < 0.8 and p["train.mfu_palm"] < 0.8


# 2. serve --tp splits each expert's width; --ep spreads experts over replicas (Mixtral TP2 was 85.5 GiB per GPU,
#    "does not fit"; DeepSeek-V3 on 8×H200 611 GiB per GPU; `--ep 4` printed "on 1×")
def test_serving_splits_experts():
    mixtral = tm.serve("mixtral-8x7b", "h100-sxm", tp=2).plan
    P = params_breakdown(tm.load_model("mixtral-8x7b"))
    assert mixtral.fits and mixtral["memory.weights"] == pytest.approx(2 * P.value / 2, rel=1e-4)  # ≈ 43.5 GiB
    dsv3 = tm.serve("deepseek-v3", "h200", tp=8).plan  # block-FP8 checkpoint
    total = tm.analyze("deepseek-v3")["memory.weights_bytes"]
    assert dsv3.fits and total / 8 < dsv3["memory.weights"] < total / 8 * 1.02
    one_replica = tm.serve("qwen3-30b-a3b", "h100-sxm", tp=2).plan
    two = tm.serve("qwen3-30b-a3b", "h100-sxm", tp=2, dp=2).plan
    assert two["serve.tokens_per_s"] == pytest.approx(2 * one_replica["serve.tokens_per_s"])  # replicas add up
    ep = tm.serve("qwen3-30b-a3b", "h100-sxm", tp=2, dp=2, ep=4)
    out = ep.to_dict()
    assert out["gpus"] == 4 and out["layout"]["expert_tp"] == 1
    groups = by_group(params_breakdown(tm.load_model("qwen3-30b-a3b")))
    assert ep.plan["weights.experts"] == 2 * groups["experts"] / 4  # E/E_p experts per GPU, bf16
    with pytest.raises(tm.TmathError, match="ep"):
        tm.serve("qwen3-30b-a3b", "h100-sxm", ep=4)  # 4 expert ranks need 4 GPUs


# 3. A single weight dtype quantizes the linear layers only (Qwen3-32B int4 was 15.7 GiB and fit a 24 GB GPU at 8K)
def test_quantization_scope():
    r = tm.serve("qwen3-32b", "rtx-4090", weight_dtype="int4", prompt=8192, gen=1)
    s = tm.load_model("qwen3-32b")
    g = by_group(params_breakdown(s))
    linear = g["attention"] + g["mlp"]
    assert r.plan["memory.weights"] == (math.ceil(linear * 33 / 64) + 2 * (g["embedding"] + g["lm_head"])
                                        + 2 * g["norms"])
    assert 17.5 * 2**30 < r.plan["memory.weights"] < 18.5 * 2**30
    assert not r.fits and r.to_dict()["weight_dtype_meaning"].startswith("attention, mlp")
    everything = tm.serve("qwen3-32b", "rtx-4090", weight_dtype="*=int4", prompt=8192, gen=1, suggest=False)
    assert everything.plan["memory.weights"] < 16 * 2**30
    override = tm.analyze("qwen3-32b", weight_dtype="int4,embedding=int4")
    assert override["memory.weights_bytes"] < tm.analyze("qwen3-32b", weight_dtype="int4")["memory.weights_bytes"]


# 4. Plain 1F1B keeps P_p micro-batches; only interleaving adds (P_p − 1)/(P_p·v) (published layouts did not fit)
def test_pipeline_memory_of_layouts_that_ran():
    llama3 = tm.train("llama-3.1-405b", "h100-sxm", gpus=8192, tp=8, pp=16, global_batch=2048, seq=8192)
    assert llama3.fits  # Llama 3 §3.3.2: TP 8, PP 16, DP 64 at 8K, no activation checkpointing (was 138 GiB)
    assert llama3.plan["pipeline.in_flight"] == 15  # the peak stage is stage 1: P_p − 1 micro-batches
    one_t = gpt_spec("GPT-1T", 25600, 128, 160, 51200, 2048, bias=True)  # Korthikanti et al. 2022 Table 3
    for v in (1, 2):
        r = tm.train(one_t, "a100-80gb", gpus=512, tp=8, pp=64, global_batch=512, seq=2048, recompute="selective",
                     interleave=v, zero=0, flash_attention=False)
        assert r.fits and r.plan.memory_stage == 0
        assert r.plan["pipeline.in_flight"] == 64 * (1 + (v > 1) * 63 / (64 * v))


# 5. Context parallelism: (s/C_p)·s query–key pairs per rank, the ring's K/V traffic, FSDP over data × context
def test_context_parallel_costs():
    s = tm.load_model("llama-3.1-8b")
    kw = dict(gpus=8, global_batch=8)
    short = tm.train(s, "h100-sxm", seq=8192, **kw).plan
    long = tm.train(s, "h100-sxm", seq=131072, cp=8, global_batch=1, gpus=8).plan
    slow = (1 / long["train.tokens_per_s"]) / (1 / short["train.tokens_per_s"])
    assert slow > 2.5  # was 1.3×: the rank attended only (s/C_p)² pairs
    attention = [c for c in long.quantities["time.attention"].walk() if c.key.endswith("attention.core")][0]
    causal = forward_flops(s, B=1, T=131072, attention="causal", key="f")
    pairs = sum(c.value for layer in causal.children for c in layer.children if "attention." in c.key
                and ("scores" in c.key or "values" in c.key))
    assert attention.inputs["F"] * attention.count == pytest.approx(pairs / 8)  # (s/C_p)·s, causal half
    assert long["time.cp"] >= 0 and "time.cp.cp.fwd.all_gather.0" in long.quantities
    fsdp = tm.train(s, "h100-sxm", gpus=16, cp=4, global_batch=4, seq=32768, zero=3).plan
    assert fsdp["memory.weights"] < 2 * params_breakdown(s).value / 16 * 1.001  # sharded over D_p·C_p = 16


# 6. FP8 training: linear layers at the FP8 peak, attention at bf16, casts explicit (attention ran at the FP8 peak)
def test_fp8_keeps_attention_16_bit():
    kw = dict(gpus=8, global_batch=8, seq=8192)
    bf16 = tm.train("llama-3.1-8b", "h100-sxm", **kw).plan
    fp8 = tm.train("llama-3.1-8b", "h100-sxm", precision="fp8", **kw).plan
    assert fp8["time.attention"] == bf16["time.attention"]
    assert fp8["time.linear"] < 0.7 * bf16["time.linear"]
    assert fp8["time.aux"] > 0 and "fp8 casts" in json.dumps(fp8.quantities["time.aux"].to_dict())


# 7. Prefill is timed as flash kernels run it: the causal half (a 128K prompt's TTFT was 19.6 s, ≈ 1.7× too long)
def test_prefill_times_causal_attention():
    r = tm.serve("llama-3.1-8b", "h100-sxm", prompt=131072, gen=1).plan
    s = tm.load_model("llama-3.1-8b")
    causal = forward_flops(s, B=1, T=131072, attention="causal", key="f")
    dense = forward_flops(s, B=1, T=131072, attention="dense", key="f")
    executed = sum(c.flops * c.count for c in r.prefill_ops)
    assert executed == pytest.approx(causal.value) and executed < 0.6 * dense.value
    assert r["serve.ttft"] < 19.6 / 1.5


# 8. LoRA / QLoRA: frozen weights have no weight-gradient GEMM; the convention is stated (was 50 % MFU, 74 % HFU)
def test_lora_efficiency_and_convention():
    r = tm.train("llama-3.1-8b", "rtx-4090", gpus=1, global_batch=8, seq=4096, finetune="qlora", recompute="full")
    p, out = r.plan, r.to_dict()
    s = tm.load_model("llama-3.1-8b")
    fwd = forward_flops(s, B=8, T=4096, attention="causal", key="f")
    att = sum(c.value for layer in fwd.children for c in layer.children if "scores" in c.key or "values" in c.key)
    adapters = 2 * 8 * 4096 * p.trainable_params
    assert p["train.model_flops"] == 2 * (fwd.value - att) + 3 * att + 3 * adapters  # ≈ 4·N, not 6·N
    assert "≈ 4·N" in out["mfu_convention"] and out["mfu_palm"] is None
    assert p["train.hfu"] < 0.6 and p["time.aux"] > 0  # NF4 dequantization and adapter kernels cost time


@pytest.mark.torch
def test_lora_step_flops_equal_execution():
    """FlopCounterMode over a PEFT LoRA model's forward + backward: frozen base linears run forward and dL/dX,
    attention 3 forwards, adapters 3 — the formula with the attention convention eager kernels execute (dense)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.flop_counter import FlopCounterMode

    from transformer_math.checks import execution as cc
    from transformer_math.formulas.plan import model_flops

    config = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128, "max_position_embeddings": 64,
              "tie_word_embeddings": False}
    s = tm.load_model(config)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(cc.hf_text_config(config), attn_implementation="eager")
    targets = ["q_proj", "v_proj", "down_proj"]
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets))
    lora.enable_input_require_grads()  # as trainers with gradient checkpointing do: dL/dX flows from the embedding
    B, T = 2, 16
    ids = torch.randint(0, 128, (B, T))
    with FlopCounterMode(display=False) as counter:
        lora(input_ids=ids, labels=ids).loss.backward()
    fwd = forward_flops(s, B=B, T=T, attention="dense", key="f")
    att = sum(c.value for layer in fwd.children for c in layer.children if "scores" in c.key or "values" in c.key)
    P_lora = tm.train(config, "h100-sxm", gpus=1, global_batch=B, seq=T, finetune="lora", lora_rank=4,
                      lora_targets=",".join(targets)).plan.trainable_params
    assert counter.get_total_flops() == model_flops(k_bwd=1, F_lin=fwd.value - att, F_att=att,
                                                    F_adapt=2 * B * T * P_lora)


# 9. A plan that does not fit reports what is over, by how much, and the nearest changes that fit (exit status 3)
def test_plan_that_does_not_fit(capsys):
    assert main(["train", "llama-3.1-70b", "--gpu", "h100-sxm", "--gpus", "8", "--global-batch", "8", "--seq", "8192",
                 "--json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert not out["fits"] and out["over_bytes"] > 0
    assert out["step_time_s"] is None and out["mfu"] is None and out["tokens_per_s"] is None and out["days"] is None
    assert out["suggestions"]
    for s in out["suggestions"][:3]:
        argv = s["command"].split()[1:] + ["--json"]
        assert main(argv) == 0
        again = json.loads(capsys.readouterr().out)
        assert again["fits"] and again["step_time_s"] == pytest.approx(s["step_time_s"])
    assert main(["serve", "llama-3.1-405b", "--gpu", "h100-sxm"]) == 3
    text = capsys.readouterr().out
    assert "does NOT fit" in text and "over by" in text and "TPOT" not in text
    assert "--tp 16 (16 GPUs)" in text and "--tp 8 --weight-dtype fp8" in text  # 756 GiB of bf16 weights


# 10. --search rows re-run: each carries its full command; no duplicates; days and cost when asked
def test_search_rows_rerun(capsys):
    argv = ["train", "llama-3.1-70b", "--gpu", "h100-sxm", "--gpus", "64", "--global-batch", "128", "--seq", "8192",
            "--tokens", "1e12", "--price", "2.5"]
    assert main(argv + ["--search", "--json", "--top", "6"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["best"]
    assert len(rows) == 6 and len({json.dumps(r["layout"], sort_keys=True) for r in rows}) == 6
    for r in rows:
        assert r["days"] == pytest.approx(1e12 / r["tokens_per_s"] / 86400)
        assert main(r["command"].split()[1:] + ["--json"]) == 0
        again = json.loads(capsys.readouterr().out)
        assert again["step_time_s"] == pytest.approx(r["step_time_s"], rel=1e-12)
        assert again["memory_per_gpu_bytes"] == r["memory_per_gpu_bytes"]
    assert main(argv + ["--search"]) == 0
    table = capsys.readouterr().out
    assert "days" in table and "cost" in table and "tmath train llama-3.1-70b" in table


def test_search_spans_every_choice():
    from transformer_math.analysis.train_search import Workload, search_layouts

    s, hw = tm.load_model("mixtral-8x7b"), load_hardware("h100-sxm")
    rows, n, _ = search_layouts(s, hw, Workload(global_batch=256, seq=8192), gpus=64, top=10_000)
    seen = {k: {getattr(r.layout, k) for r in rows} for k in ("tp", "pp", "dp", "cp", "ep", "micro_batch", "recompute",
                                                               "zero", "sequence_parallel", "interleave")}
    assert all(len(v) > 1 for v in seen.values()), seen
