"""Published parameter counts, each with its source."""

import pytest

import transformer_math as tm


def test_llama_3_1_8b_exact():
    """8,030,261,248: the count Meta's Llama 3 8B checkpoints report (GGUF general.parameter_count; also
    reproduced by meta-device counting in test_crosscheck)."""
    assert tm.analyze("llama-3.1-8b")["params.total"] == 8_030_261_248


def test_llama_2_7b_exact():
    """6,738,415,616 (Llama-2-7b-hf, as counted by nanoGPT-style tools and HF)."""
    assert tm.analyze("llama-2-7b")["params.total"] == 6_738_415_616


def test_gpt2_small():
    """124M (openai/gpt-2 README); 124,439,808 with the 1024 learned positions, tied head."""
    assert tm.analyze("gpt2")["params.total"] == 124_439_808


def test_gpt_oss_20b_model_card():
    """gpt-oss model card (arXiv 2508.10925) Table 1: 20.91B total, 3.61B active; the card counts the
    unembedding but not the embedding towards active."""
    total = tm.analyze("gpt-oss-20b")["params.total"]
    active = tm.analyze("gpt-oss-20b", conventions=tm.Conventions(active="no_embedding"))["params.active"]
    assert round(total / 1e9, 2) == 20.91
    assert round(active / 1e9, 2) == 3.61


def test_gpt_oss_120b_weights_mxfp4():
    """Experts in MXFP4 (4.25 bits, model card §2.1), the rest bf16: about 65 GB, not 234 GB."""
    r = tm.analyze("gpt-oss-120b")
    assert round(r["params.total"] / 1e9, 2) == 116.83
    assert 60e9 < r["memory.weights_bytes"] < 66e9
    assert tm.analyze("gpt-oss-120b", weight_dtype="bf16")["memory.weights_bytes"] == 2 * r["params.total"]


def test_qwen3_30b_a3b_model_card():
    """Qwen3-30B-A3B card: 30.5B total, 3.3B activated (the card truncates: 3.353B)."""
    r = tm.analyze("qwen3-30b-a3b")
    assert round(r["params.total"] / 1e9, 1) == 30.5
    assert int(r["params.active"] / 1e8) == 33


def test_mixtral_paper():
    """Mixtral of Experts (arXiv 2401.04088): 47B total ('46.7B' in the blog), 13B active ('12.9B')."""
    r = tm.analyze("mixtral-8x7b")
    assert round(r["params.total"] / 1e9, 1) == 46.7
    assert round(r["params.active"] / 1e9, 1) == 12.9


def test_deepseek_v3():
    """DeepSeek-V3 report: 671B total, 37B activated (the 14B MTP module is not in the HF model)."""
    r = tm.analyze("deepseek-v3")
    assert round(r["params.total"] / 1e9) == 671
    assert int(r["params.active"] / 1e9) == 37  # 37.55B; the report truncates


@pytest.mark.parametrize("name, billions", [("qwen3-8b", 8.2), ("qwen3-32b", 32.8), ("llama-3.2-3b", 3.2)])
def test_model_cards_rounded(name, billions):
    """Qwen3-8B '8.2B', Qwen3-32B '32.8B' (Qwen model cards); Llama-3.2-3B '3.21B' (llama-models MODEL_CARD)."""
    assert round(tm.analyze(name)["params.total"] / 1e9, 1) == billions


def test_gemma3_4b_report_table1():
    """Gemma 3 report Table 1: 3,209M non-embedding parameters (text decoder)."""
    r = tm.analyze("gemma-3-4b")
    emb = r.to_dict()["params.by_component"]["embedding"]
    assert round((r["params.total"] - emb) / 1e6) == 3209
