"""Quantized formats people run: GGUF tensor types and llama-quantize's mixtures, NVFP4, and W4A4 compute.

Block sizes are worked by hand from the structs of ggml/src/ggml-common.h (ggml-org/llama.cpp
@ 01243c587feceaa5d6a6c2305535ef2f549c48b8; ggml_half = 2 bytes, QK_K = 256, K_SCALE_SIZE = 12); the mixtures
follow llama_tensor_get_type in src/llama-quant.cpp (@ 007dbbf3fd17eefe9b47fee45f48f7ba5e62b714).
"""

from __future__ import annotations

from fractions import Fraction

import pytest

import transformer_math as tm
from transformer_math.analysis import gguf
from transformer_math.analysis.params import params_breakdown
from transformer_math.cli import main
from transformer_math.config import load_model
from transformer_math.config.hardware import load_hardware
from transformer_math.errors import TmathError
from transformer_math.units import parse_dtype

# (type, elements per block, bytes per block = sum of the struct's fields)
STRUCTS = {
    "q4_0": (32, 2 + 32 // 2),  # d + qs[16]
    "q4_1": (32, 2 + 2 + 32 // 2),  # d, m + qs[16]
    "q5_0": (32, 2 + 4 + 32 // 2),  # d + qh[4] + qs[16]
    "q5_1": (32, 2 + 2 + 4 + 32 // 2),  # d, m + qh[4] + qs[16]
    "q8_0": (32, 2 + 32),  # d + qs[32]
    "q2_k": (256, 256 // 16 + 256 // 4 + 2 + 2),  # scales[16] + qs[64] + d, dmin
    "q3_k": (256, 256 // 8 + 256 // 4 + 12 + 2),  # hmask[32] + qs[64] + scales[12] + d
    "q4_k": (256, 2 + 2 + 12 + 256 // 2),  # d, dmin + scales[12] + qs[128]
    "q5_k": (256, 2 + 2 + 12 + 256 // 8 + 256 // 2),  # d, dmin + scales[12] + qh[32] + qs[128]
    "q6_k": (256, 256 // 2 + 256 // 4 + 256 // 16 + 2),  # ql[128] + qh[64] + scales[16] + d
}


@pytest.mark.parametrize("name", STRUCTS)
def test_gguf_block_bytes_are_the_ggml_structs(name):
    g, size = STRUCTS[name]
    dt = parse_dtype(name)
    assert (dt.group_size, dt.block_bytes) == (g, size)
    assert dt.bytes_per_element == Fraction(size, g)
    assert dt.tensor_bytes(4 * g) == 4 * size and dt.tensor_bytes(4 * g + 1) == 5 * size  # whole blocks only


def test_bits_per_weight():
    bpw = {n: parse_dtype(n).bytes_per_element * 8 for n in STRUCTS}
    assert bpw["q4_0"] == Fraction(9, 2) and bpw["q8_0"] == Fraction(17, 2)
    assert bpw["q4_k"] == Fraction(9, 2) and bpw["q6_k"] == Fraction(105, 16)  # 4.5 and 6.5625
    assert bpw["q2_k"] == Fraction(21, 8) and bpw["q3_k"] == Fraction(55, 16) and bpw["q5_k"] == Fraction(11, 2)
    nv = parse_dtype("nvfp4")  # E2M1 + an E4M3 scale per 16 = 4.5 bits, + one fp32 per tensor
    assert nv.bytes_per_element * 8 == Fraction(9, 2)
    assert nv.tensor_bytes(64) == 32 + 4 + 4
    assert parse_dtype("mxfp4").bytes_per_element * 8 == Fraction(17, 4)  # block_mxfp4: e + qs[16] per 32


def _types(model, scheme):
    return {t.name: typ for t, typ in gguf.assign(load_model(model), scheme)}


def test_use_more_bits_for_32_layers():
    more = [i for i in range(32) if gguf.use_more_bits(i, 32)]
    assert more == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]


def test_q4_k_m_mixture_llama_3_1_8b():
    types = _types("llama-3.1-8b", "q4_k_m")
    more = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31}
    assert types["output.weight"] == "q6_k" and types["token_embd.weight"] == "q4_k"
    assert types["norms: 1-D tensors (norms, biases, sinks)"] == "fp32"
    for i in range(32):
        want = "q6_k" if i in more else "q4_k"
        assert types[f"blk.{i}.ffn_down.weight"] == want, i
        assert types[f"blk.{i}.attn_v.weight"] == want, i
        for n in ("attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"):
            assert types[f"blk.{i}.{n}.weight"] == "q4_k"


def test_other_mixtures():
    s = _types("llama-3.1-8b", "q4_k_s")
    assert [s[f"blk.{i}.ffn_down.weight"] for i in range(6)] == ["q5_k"] * 4 + ["q4_k"] * 2
    assert [s[f"blk.{i}.attn_v.weight"] for i in range(6)] == ["q5_k"] * 4 + ["q4_k"] * 2
    m3 = _types("llama-3.1-8b", "q3_k_m")
    assert [m3[f"blk.{i}.attn_v.weight"] for i in range(3)] == ["q5_k", "q5_k", "q4_k"]
    assert [m3[f"blk.{i}.ffn_down.weight"] for i in range(3)] == ["q5_k", "q5_k", "q4_k"]  # n/16 = 2
    assert m3["blk.5.attn_output.weight"] == "q4_k" and m3["blk.5.attn_q.weight"] == "q3_k"
    for scheme, body in (("q8_0", "q8_0"), ("q6_k", "q6_k"), ("q4_0", "q4_0"), ("q5_k_s", "q5_k")):
        t = _types("llama-3.1-8b", scheme)
        assert t["output.weight"] == ("q8_0" if scheme == "q8_0" else "q6_k")
        assert {t[f"blk.{i}.ffn_down.weight"] for i in range(32)} == {body}
    tied = _types("qwen3-0.6b", "q4_k_m")  # a tied head: token_embd gets the output tensor's type
    assert "output.weight" not in tied and tied["token_embd.weight"] == "q6_k"
    mixtral = _types("mixtral-8x7b", "q4_k_m")  # n_expert == 8: attn_v, attn_k q8_0, attn_output q5_k
    assert mixtral["blk.7.attn_v.weight"] == mixtral["blk.7.attn_k.weight"] == "q8_0"
    assert mixtral["blk.7.attn_output.weight"] == "q5_k" and mixtral["blk.0.ffn_down_exps.weight"] == "q6_k"
    assert mixtral["blk.0.ffn_gate_inp.weight"] == "fp32"  # the router is never quantized


def test_row_length_fallback():
    """d = 896 (Qwen2.5-0.5B) is not a multiple of 256: q4_k → q5_0, the tied head → q8_0 (tensor_type_fallback)."""
    cfg = dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=896, intermediate_size=4864,
               num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
               tie_word_embeddings=True, max_position_embeddings=32768)
    t = {x.name: typ for x, typ in gguf.assign(load_model(cfg), "q4_k_m")}
    assert t["token_embd.weight"] == "q8_0"
    assert t["blk.4.attn_q.weight"] == "q5_0" and t["blk.4.ffn_down.weight"] == "q4_k"  # ne[0] = 4864 = 19·256
    assert t["blk.0.ffn_down.weight"] == "q6_k" and t["blk.0.attn_v.weight"] == "q8_0"  # q6_k → q8_0 at 896


@pytest.mark.parametrize("name", [n for n in tm.list_presets() if tm.load_model(n).arch == "decoder"])
def test_gguf_tensors_cover_every_parameter(name):
    """The matrices are named from the spec; what they leave of each group is 1-D (norms, biases, sinks): small."""
    s = load_model(name)
    ts = gguf.tensors(s)
    rest = [t for t in ts if t.name.endswith("(norms, biases, sinks)")]
    assert all(t.elements > 0 for t in rest)
    assert sum(t.elements for t in rest) < 0.01 * sum(t.elements for t in ts)
    assert sum(t.elements for t in ts) == params_breakdown(s).value


# Published GGUF file sizes (decimal GB, 2 decimals) from bartowski's tables, llama.cpp b5200 with an imatrix:
#   https://huggingface.co/bartowski/Qwen_Qwen3-4B-GGUF (README table, read via the mirror
#     https://hf.qhduan.com/bartowski/Qwen_Qwen3-4B-GGUF/blob/main/README.md)
#   https://huggingface.co/bartowski/Qwen_Qwen3-8B-GGUF (README table, read via
#     https://model.aibase.cn/models/details/1924737620978700288)
# A .gguf file is the tensors plus its header, metadata and tokenizer (Qwen3's 151,669 tokens, token types and
# 151,387 merges: about 6 MB), each tensor padded to 32 bytes; the table rounds to 0.01 GB (±5 MB). So
# 0 ≤ published − our weight bytes ≤ 12 MB. (Q4_0 is left out: with an imatrix llama-quantize gives the first
# n/8 ffn_down q4_1, a rule this model does not apply.)
QWEN3_4B = dict(architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_size=2560, intermediate_size=9728,
                num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=151936,
                tie_word_embeddings=True, max_position_embeddings=40960, rope_theta=1000000, rms_norm_eps=1e-6)
PUBLISHED = [("qwen3-4b", "q8_0", 4.28), ("qwen3-4b", "q6_k", 3.31), ("qwen3-4b", "q5_k_m", 2.89),
             ("qwen3-4b", "q5_k_s", 2.82), ("qwen3-4b", "q4_k_m", 2.50), ("qwen3-4b", "q4_k_s", 2.38),
             ("qwen3-8b", "q8_0", 8.71), ("qwen3-8b", "q6_k", 6.73)]


@pytest.mark.parametrize(("model", "scheme", "gb"), PUBLISHED)
def test_published_gguf_file_sizes(model, scheme, gb):
    ours = tm.analyze(QWEN3_4B if model == "qwen3-4b" else model, weight_dtype=scheme)["memory.weights_bytes"]
    assert 0 <= gb * 1e9 - ours <= 12e6, (model, scheme, ours)


def test_api_and_explanation():
    r = tm.analyze("llama-3.1-8b", weight_dtype="q4_k_m")
    assert r["memory.weights_bytes"] == 4_912_898_048
    text = r.explain("memory.weights_bytes")
    assert "mlp[q6_k]" in text and "P/g_blk·S_blk" in text and "ggml-common.h" in text
    assert r.to_dict()["inputs"]["weight_dtype"]["lm_head"] == "q4_k_m:q6_k"
    # a GGUF tensor type also works per group, and as a KV-cache type
    r2 = tm.analyze("llama-3.1-8b", weight_dtype="q8_0,mlp=q4_k", kv_dtype="q8_0")
    assert r2["memory.kv_cache_bytes"] == 268_435_456 * 34 // 64


@pytest.mark.parametrize("bad", ["q4_k_xl", "q4km", "gguf", "experts=q4_k_m"])
def test_bad_weight_dtype_is_one_clear_error(bad, capsys):
    with pytest.raises(TmathError) as e:
        tm.analyze("llama-3.1-8b", weight_dtype=bad)
    assert "q4_k_m" in str(e.value) and "nvfp4" in str(e.value)
    assert main(["analyze", "llama-3.1-8b", "--weight-dtype", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tmath: error: weight_dtype")


def _linear_peaks(plan):
    return {c.inputs["F_peak"] for c in plan.prefill_ops if c.kind == "linear"}


def test_w4a4_runs_at_the_fp4_peak_on_b200():
    hw = load_hardware("b200")
    w4a4 = tm.serve("llama-3.1-8b", "b200", weight_dtype="nvfp4", act_dtype="nvfp4", batch=8).plan
    w4a16 = tm.serve("llama-3.1-8b", "b200", weight_dtype="nvfp4", act_dtype="bf16", batch=8).plan
    assert _linear_peaks(w4a4) == {hw.peak("fp4")} == {9e15}
    assert _linear_peaks(w4a16) == {hw.peak("bf16")}
    head = next(c for c in w4a4.prefill_ops if c.kind == "head")
    assert head.inputs["F_peak"] == hw.peak("bf16")  # the bf16 LM head stays 16-bit
    assert all(c.inputs["t_dq"] == 0 for c in w4a4.prefill_ops if c.kind == "linear")
    assert all(c.inputs["t_dq"] > 0 for c in w4a16.prefill_ops if c.kind == "linear")
    assert w4a4["serve.ttft"] < w4a16["serve.ttft"]  # prefill is compute bound: the fp4 peak is 4× bf16
    assert w4a4["memory.weights"] == w4a16["memory.weights"]
    mx = tm.serve("gpt-oss-20b", "b200", act_dtype="mxfp4").plan  # MXFP4 experts, bf16 attention
    peaks = {c.name.split(".")[0]: c.inputs["F_peak"] for c in mx.prefill_ops if c.kind == "linear"}
    assert peaks == {"attention": hw.peak("bf16"), "moe": hw.peak("fp4")}


def test_w4a16_on_h100_and_w4a4_refused():
    h100 = load_hardware("h100-sxm")
    oss = tm.serve("gpt-oss-20b", "h100-sxm").plan  # MXFP4 experts weight-only: the 16-bit peak
    assert _linear_peaks(oss) == {h100.peak("bf16")}
    with pytest.raises(TmathError, match="no fp4 peak"):
        tm.serve("llama-3.1-8b", "h100-sxm", weight_dtype="nvfp4", act_dtype="nvfp4")
    with pytest.raises(TmathError, match="no fp8 peak"):
        tm.serve("llama-3.1-8b", "a100-80gb", weight_dtype="fp8", act_dtype="fp8")
    with pytest.raises(TmathError, match="act_dtype"):
        tm.serve("llama-3.1-8b", "b200", act_dtype="int3")
    fp8 = tm.serve("llama-3.1-8b", "h100-sxm", weight_dtype="nvfp4", act_dtype="fp8").plan  # W4A8 on Hopper
    assert _linear_peaks(fp8) == {h100.peak("fp8")}


def test_cli_act_dtype(capsys):
    assert main(["serve", "llama-3.1-8b", "--gpu", "b200", "--weight-dtype", "nvfp4", "--act-dtype", "nvfp4",
                 "--json"]) == 0
    assert '"act_dtype": "nvfp4"' in capsys.readouterr().out
    assert main(["serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--weight-dtype", "nvfp4", "--act-dtype",
                 "nvfp4"]) == 2
    assert "no fp4 peak" in capsys.readouterr().err
