"""Predictions of the performance model next to published training and decode measurements.

One set of efficiency assumptions (analysis/efficiency.py) for every row; each row's setup (model shape,
GPUs, parallel layout, batch, precision, engine facts such as FlashAttention or a replicated LM head) is
taken from the publication. Training rows compare what the paper reports (Megatron: TFLOP/s per GPU by its
own formula 96·B·s·l·h²·(1 + s/6h + V/16lh); MosaicML: tokens/s per GPU); decode rows compare tokens/s.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass

from transformer_math.analysis.efficiency import MID, Efficiency
from transformer_math.config.spec import LayerSpec, ModelSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_DATA = os.path.join(os.path.dirname(__file__), "presets", "published_runs.json")
# MPT shapes (llm-foundry scripts/train/yamls/pretrain/mpt-*.yaml): d_model, n_layers, n_heads; vocab 50368
MPT = {"MPT-125m": (768, 12, 12), "MPT-350m": (1024, 24, 16), "MPT-760m": (1536, 24, 12), "MPT-1b": (2048, 24, 16),
       "MPT-3b": (2560, 32, 20), "MPT-7b": (4096, 32, 32), "MPT-13b": (5120, 40, 40), "MPT-30b": (7168, 48, 64),
       "MPT-70b": (8192, 80, 64)}
DECODE_PRESETS = {"Llama-2-7B": "llama-2-7b", "Llama-2-70B": "llama-2-70b", "Llama-3.1-8B": "llama-3.1-8b",
                  "Llama-3.1-70B": "llama-3.1-70b", "Llama-3.1-405B": "llama-3.1-405b"}


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    metric: str
    measured: float
    predicted: float
    scored: bool = True
    note: str = ""
    formula: str = ""

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1


def runs() -> dict[str, Any]:
    with open(_DATA, encoding="utf-8") as f:
        return json.load(f)


def gpt_spec(name: str, d: int, layers: int, heads: int, vocab: int, seq: int, *, bias: bool) -> ModelSpec:
    """GPT-3-style decoder (Megatron GPT, MPT): LayerNorm, 4d GELU MLP, tied embeddings."""
    return ModelSpec(name=name, family="gpt", n_layers=layers, d_model=d, n_heads=heads, n_kv_heads=heads,
                     head_dim=d // heads, vocab_size=vocab, max_context=seq, n_up=1, activation="gelu",
                     tie_embeddings=True, learned_positions=bias, norm="layernorm", qkv_bias=bias, o_bias=bias,
                     mlp_bias=bias, layers=tuple(LayerSpec(d_ff=4 * d) for _ in range(layers)))


def training_rows(eff: Efficiency = MID) -> list[Row]:
    from transformer_math.analysis.training import Layout, Workload, plan_training
    from transformer_math.config.hardware import load_hardware

    hw = load_hardware("a100-80gb")
    out = []
    for r in runs()["training_runs"]:
        if r["id"].startswith("megatron"):
            h, l, V, sq, B = r["hidden_size"], r["num_layers"], r["vocab_size"], r["seq_length"], r["global_batch_size"]
            s = gpt_spec(r["model"], h, l, r["attention_heads"], V, sq, bias=True)
            per_stage = l // r["pipeline_parallel"]
            v = per_stage // r.get("interleaved_layers_per_virtual_stage", per_stage)
            lay = Layout(tp=r["tensor_parallel"], pp=r["pipeline_parallel"], dp=r["data_parallel_derived"],
                         micro_batch=r["micro_batch_size"], recompute="full", zero=0, sequence_parallel=False,
                         interleave=max(v, 1))
            # Megatron-LM 2021 predates FlashAttention: scores are materialized and streamed through memory
            res = plan_training(s, hw, lay, Workload(global_batch=B, seq=sq, flash_attention=False), eff=eff)
            t = res["train.step_time"]
            flops = 96 * B * sq * l * h * h * (1 + sq / (6 * h) + V / (16 * l * h))
            out.append(Row(r["id"], "TFLOP/s per GPU (Megatron formula)", r["achieved_teraflops_per_gpu"],
                           flops / (t * r["gpus"]) / 1e12,
                           formula=f"96·B·s·l·h²·(1 + s/6h + V/16lh) / (t_step·n) = 96·{B}·{sq}·{l}·{h}²·(1 + {sq}/"
                                   f"(6·{h}) + {V}/(16·{l}·{h})) / ({t:.3f}·{r['gpus']}) = "
                                   f"{flops / (t * r['gpus']) / 1e12:.1f} TFLOP/s"))
        else:
            key = r["model"].split(" ")[0]
            d, l, heads = MPT[key]
            s = gpt_spec(key, d, l, heads, 50368, r["seq_length"], bias=False)
            lay = Layout(dp=r["gpus"], micro_batch=r["micro_batch"], zero=3, sequence_parallel=False,
                         recompute="full" if r["activation_checkpointing"] else "none")
            res = plan_training(s, hw, lay, Workload(global_batch=r["global_batch_sequences"], seq=r["seq_length"]),
                                eff=eff)
            out.append(Row(r["id"], "tokens/s per GPU", r["throughput_tokens_per_s_per_gpu"],
                           res["train.tokens_per_s"] / r["gpus"]))
    return out


def decode_rows(eff: Efficiency = MID) -> list[Row]:
    from transformer_math.analysis.report import parse_weight_dtypes
    from transformer_math.analysis.serving import ServeLayout, ServeWorkload, _step
    from transformer_math.analysis.costs import total_time
    from transformer_math.config import load_model
    from transformer_math.config.hardware import load_hardware
    from transformer_math.units import parse_dtype

    a100 = load_hardware("a100-80gb")
    out = []
    for r in runs()["inference_measurements"]:
        if r["id"].startswith("gptfast") and r["model"] in DECODE_PRESETS:
            s = load_model(DECODE_PRESETS[r["model"]])
            p = r["precision"]
            w = "bf16" if "bf16" in p else ("int8" if "8-bit" in p else "int4-g32-zp")
            # gpt-fast quantizes every nn.Linear, the LM head included (not the embedding); batch 1, 5-token prompt,
            # CUDA graphs; its TP shards attention and MLP, not the LM head
            work = ServeWorkload(batch=1, prompt=64, gen=1, weights=parse_weight_dtypes(f"{w},lm_head={w}", s),
                                 kv=parse_dtype("bf16"), shard_lm_head=False)
            t = total_time(_step(s, a100, eff, ServeLayout(tp=r["tensor_parallel"]), work, B=1, T=1, ctx=64,
                                 decode=True))
            out.append(Row(r["id"], "decode tokens/s", r["decode_tokens_per_s"], 1 / t))
        elif "decode_tokens_per_s" in r or "output_throughput_tokens_per_s" in r:
            val = r.get("decode_tokens_per_s") or r.get("output_throughput_tokens_per_s")
            out.append(Row(r["id"], "tokens/s", val, float("nan"), scored=False,
                           note="setup incomplete: GPU variant, KV dtype or model family not stated/supported"))
    return out


def summary(rows: list[Row]) -> dict[str, float]:
    errs = [abs(r.error) for r in rows if r.scored]
    return {"rows": len(errs), "median_abs_error": statistics.median(errs), "max_abs_error": max(errs),
            "within_20pct": sum(e <= 0.2 for e in errs)}
