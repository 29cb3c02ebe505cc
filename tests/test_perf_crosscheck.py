"""LoRA trainable parameters exactly as PEFT creates them; plots written; validation against published runs."""

import pytest

import transformer_math as tm
from transformer_math.analysis.training import lora_params


@pytest.mark.torch
@pytest.mark.parametrize("name, targets", [("llama-3.1-8b", ("q_proj", "v_proj")),
                                           ("qwen3-8b", ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                         "up_proj", "down_proj")),
                                           ("llama-4-scout-17b-16e", ("q_proj", "o_proj", "gate_proj", "down_proj"))])
def test_lora_params_equal_peft(name, targets):
    peft = pytest.importorskip("peft")
    from transformer_math.checks import execution as cc

    model = cc.build_meta(tm.load_preset(name)["config"])
    lora = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules=list(targets)))
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert trainable == lora_params(tm.load_model(name), 8, targets)


def test_plots_written(tmp_path):
    pytest.importorskip("matplotlib")
    from transformer_math.cli import main

    prefix = str(tmp_path / "p")
    assert main(["serve", "qwen3-8b", "--gpu", "a100-80gb", "--batch", "4", "--plot", prefix, "--json"]) == 0
    for suffix in ("_roofline_decode.png", "_roofline_decode.svg", "_roofline_prefill.png", "_context.png",
                   "_batch.png"):
        data = (tmp_path / f"p{suffix}").read_bytes()
        assert data.startswith(b"\x89PNG") or b"<svg" in data[:500]
    assert main(["sweep", "llama-3.1-8b", "--csv", str(tmp_path / "g.csv"), "--plot", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.csv").read_text().count("\n") == 1 + 7 * 7 * 2


