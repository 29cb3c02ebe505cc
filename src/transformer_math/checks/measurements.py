"""Published training and serving measurements as rows, each with the model, GPUs, layout and precision its
source states, and the calibration/validation split of their source groups.

Rows come from presets/measurements/ (training.json, serving.json, device_runs.json, each row with its source)
and the A100 runs of presets/published_runs.json. presets/measurements/split.json assigns every source group to
the calibration set (scripts/fit_efficiency.py fits the device-class and engine profiles on it) or to the
validation set (never seen by the fit; its errors are the ones we report).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from transformer_math.config.spec import LayerSpec, ModelSpec
from transformer_math.errors import TmathError

_PRESETS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "presets")
_DIR = os.path.join(_PRESETS, "measurements")
# MPT shapes (llm-foundry scripts/train/yamls/pretrain/mpt-*.yaml): d_model, n_layers, n_heads; vocab 50368
MPT = {"MPT-125m": (768, 12, 12), "MPT-350m": (1024, 24, 16), "MPT-760m": (1536, 24, 12), "MPT-1b": (2048, 24, 16),
       "MPT-3b": (2560, 32, 20), "MPT-7b": (4096, 32, 32), "MPT-13b": (5120, 40, 40), "MPT-30b": (7168, 48, 64),
       "MPT-70b": (8192, 80, 64)}
DECODE_PRESETS = {"Llama-2-7B": "llama-2-7b", "Llama-2-70B": "llama-2-70b", "Llama-3.1-8B": "llama-3.1-8b",
                  "Llama-3.1-70B": "llama-3.1-70b", "Llama-3.1-405B": "llama-3.1-405b"}
# Models the sources name that we ship no preset for: their config.json values (Hugging Face model cards)
EXTRA_MODELS: dict[str, dict[str, Any]] = {
    "mistralai/Mistral-7B-Instruct-v0.3": dict(  # huggingface.co/mistralai/Mistral-7B-Instruct-v0.3 config.json
        # without a sliding window Mistral's architecture is Llama's; read as llama until mistral has an adapter
        model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=4096, intermediate_size=14336,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, vocab_size=32768,
        max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=1e6, hidden_act="silu",
        tie_word_embeddings=False, torch_dtype="bfloat16", head_dim=128),
}
ENGINES = {"vllm": "vllm", "sglang": "sglang", "trtllm": "trtllm", "gptfast": "gptfast", "gpt-fast-style": "gptfast",
           "hf": "hf", "deepspeed-fastgen": "deepspeed-fastgen", "llama.cpp": "llamacpp"}
KINDS = ("training", "decode", "prefill", "throughput")
DEFAULT_PROMPTS = 1000  # vLLM's benchmark_throughput --num-prompts default, where a source gives no count


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    group: str
    split: str  # calibration | validation
    device: str
    engine: str
    kind: str  # training | decode | prefill | throughput
    metric: str
    measured: float
    predicted: float
    scored: bool = True
    note: str = ""
    setup: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1

    @property
    def ratio(self) -> float:
        """measured / predicted, as a throughput (a latency's ratio is inverted): above 1, the model is slow."""
        r = self.measured / self.predicted
        return 1 / r if LATENCY.get(self.metric) else r


LATENCY = {"tpot_ms": True, "itl_ms": True, "ttft_ms": True, "e2e_latency_s": True, "step_time_s": True,
           "prefill_s": True, "decode_s_per_token": True}


def _load(name: str) -> list[dict[str, Any]]:
    path = os.path.join(_DIR, name)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return list(json.load(f)["rows"])


def split() -> dict[str, str]:
    """source group → calibration | validation (presets/measurements/split.json, decided before any fit)."""
    with open(os.path.join(_DIR, "split.json"), encoding="utf-8") as f:
        d = json.load(f)
    return {g: s for s in ("calibration", "validation") for g in d[s]}


def device_class(device: str) -> str:
    from transformer_math.config.hardware import load_hardware

    return load_hardware(device).device_class


def _legacy() -> list[dict[str, Any]]:
    """The A100 rows of presets/published_runs.json in the row format of presets/measurements/."""
    with open(os.path.join(_PRESETS, "published_runs.json"), encoding="utf-8") as f:
        d = json.load(f)
    out = []
    for r in d["training_runs"]:
        if r["id"].startswith("megatron"):
            per_stage = r["num_layers"] // r["pipeline_parallel"]
            v = per_stage // r.get("interleaved_layers_per_virtual_stage", per_stage)
            out.append(dict(id=r["id"], source_group="megatron-2021-table1", device="a100-80gb",
                            shape=dict(d_model=r["hidden_size"], n_layers=r["num_layers"],
                                       n_heads=r["attention_heads"], vocab=r["vocab_size"], bias=True),
                            tp=r["tensor_parallel"], pp=r["pipeline_parallel"], cp=1, ep=1, vp=max(v, 1),
                            dp=r["data_parallel_derived"], gpus=r["gpus"], micro_batch=r["micro_batch_size"],
                            global_batch=r["global_batch_size"], seq=r["seq_length"], precision="bf16",
                            recompute="full", sharding="ddp", flash_attention=False,
                            metric="megatron_tflops_per_gpu", value=r["achieved_teraflops_per_gpu"]))
        else:
            d_, l_, h_ = MPT[r["model"].split(" ")[0]]
            out.append(dict(id=r["id"], source_group="mosaicml-a100", device="a100-80gb",
                            shape=dict(d_model=d_, n_layers=l_, n_heads=h_, vocab=50368, bias=False), tp=1, pp=1,
                            cp=1, ep=1, vp=1, dp=r["gpus"], gpus=r["gpus"], micro_batch=r["micro_batch"],
                            global_batch=r["global_batch_sequences"], seq=r["seq_length"], precision="bf16",
                            recompute="full" if r["activation_checkpointing"] else "none", sharding="fsdp",
                            metric="tokens_per_s_per_gpu", value=r["throughput_tokens_per_s_per_gpu"]))
    for r in d["inference_measurements"]:
        if r["id"].startswith("gptfast") and r["model"] in DECODE_PRESETS:
            p = r["precision"]
            w = "bf16" if "bf16" in p else ("int8" if "8-bit" in p else "int4-g32-zp")
            out.append(dict(id=r["id"], source_group="gptfast-readme-a100", device="a100-80gb", gpus=r["gpus"],
                            tp=r["tensor_parallel"], ep=1, dp=1, engine="gptfast", model=DECODE_PRESETS[r["model"]],
                            weight_dtype=w, kv_dtype="bf16", scenario="decode", batch=1, input_len=5, output_len=200,
                            metric="decode_tokens_per_s_per_user", value=r["decode_tokens_per_s"], power_cap_w=330,
                            lm_head=w))
    return out


def measurements() -> list[dict[str, Any]]:
    return _legacy() + _load("training.json") + _load("serving.json") + _load("device_runs.json")


def gpt_spec(name: str, d: int, layers: int, heads: int, vocab: int, seq: int, *, bias: bool) -> ModelSpec:
    """GPT-3-style decoder (Megatron GPT, MPT): LayerNorm, 4d GELU MLP, tied embeddings."""
    return ModelSpec(name=name, family="gpt", n_layers=layers, d_model=d, n_heads=heads, n_kv_heads=heads,
                     head_dim=d // heads, vocab_size=vocab, max_context=seq, n_up=1, activation="gelu",
                     tie_embeddings=True, learned_positions=bias, norm="layernorm", qkv_bias=bias, o_bias=bias,
                     mlp_bias=bias, layers=tuple(LayerSpec(d_ff=4 * d) for _ in range(layers)))


def spec_of(r: Mapping[str, Any]) -> ModelSpec:
    from transformer_math.config import load_model

    if r.get("model"):
        name = r["model"]
        return load_model(EXTRA_MODELS[name]) if name in EXTRA_MODELS else load_model(name)
    sh = r["shape"]
    if sh.get("experts"):
        raise TmathError("shape", r["id"], "a preset for MoE rows")
    d, n_l, h = sh["d_model"], sh["n_layers"], sh["n_heads"]
    if not sh.get("gated_mlp"):
        s = gpt_spec(r["id"], d, n_l, h, sh.get("vocab") or 50257, r.get("seq", 2048), bias=sh.get("bias", False))
        d_ff = sh.get("d_ff") or 4 * d
        return s if d_ff == 4 * d else _with_ff(s, d_ff)
    return load_model(dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=d,
                           intermediate_size=sh["d_ff"], num_hidden_layers=n_l, num_attention_heads=h,
                           num_key_value_heads=sh.get("n_kv_heads") or h, vocab_size=sh.get("vocab") or 32000,
                           max_position_embeddings=max(4096, r.get("seq", 4096)), tie_word_embeddings=False))


def _with_ff(s: ModelSpec, d_ff: int) -> ModelSpec:
    from dataclasses import replace

    return replace(s, layers=tuple(LayerSpec(d_ff=d_ff) for _ in range(s.n_layers)))


def weight_dtype(text: str) -> str:
    """The dtype name of a source's free-text precision ('fp8 (OCP e4m3 W8A8, …)' → fp8)."""
    t = text.lower()
    for key, name in (("nvfp4", "fp4"), ("mxfp4", "mxfp4"), ("gguf-q4_k_m", "int4-g32-zp"), ("gguf-q4_0", "int4-g32"),
                      ("int4", "int4-g64"), ("fp8", "fp8"), ("int8", "int8"), ("fp16", "bf16"), ("bf16", "bf16")):
        if t.startswith(key):
            return name
    raise TmathError("weight_dtype", text, "a precision the model knows")


def _hardware(r: Mapping[str, Any]) -> Any:
    from dataclasses import replace

    from transformer_math.config.hardware import load_hardware

    hw = load_hardware(r["device"])
    return replace(hw, power_cap_w=float(r["power_cap_w"])) if r.get("power_cap_w") else hw
