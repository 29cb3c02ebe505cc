import json
import subprocess
import sys

import pytest

import transformer_math as tm
from transformer_math.cli import main

STABLE = ("params.total", "params.active", "memory.weights_bytes", "memory.kv_cache_bytes", "flops.prefill",
          "flops.decode_token")


def test_json_equals_python_api(capsys):
    assert main(["analyze", "qwen3-8b", "--batch", "4", "--context", "8192", "--kv-dtype", "fp8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    r = tm.analyze("qwen3-8b", batch=4, context=8192, kv_dtype="fp8")
    for key in STABLE:
        assert out[key] == r[key]
    # Qwen3-8B: 36 layers, 8 KV heads of d_h = 128 (not d/h_q = 4096/32 = 128 by accident: check 32B below)
    assert out["memory.kv_cache_bytes"] == 4 * 8192 * 36 * 2 * 8 * 128 * 1


def test_config_path_equals_preset(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tm.load_preset("qwen3-32b")["config"]))
    assert main(["analyze", str(path), "--json", "--show-ignored"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params.total"] == tm.analyze("qwen3-32b")["params.total"]
    # head_dim 128 from the config, not d/h_q = 5120/64 = 80
    assert out["memory.kv_cache_bytes"] == 2048 * 64 * 2 * 8 * 128 * 2
    assert "max_window_layers" in out["config_keys"]["read"]


def test_explain_shows_substituted_formula(capsys):
    assert main(["explain", "llama-3.1-8b", "memory.kv_cache_bytes", "--context", "4096"]) == 0
    text = capsys.readouterr().out
    assert "B·L_kv·n_layers·2·h_kv·d_h·b_kv" in text and "1·4096·32·2·8·128·2" in text
    assert f"{4096 * 32 * 2 * 8 * 128 * 2:,}" in text


def test_table_and_list(capsys):
    assert main(["analyze", "gpt-oss-20b"]) == 0
    text = capsys.readouterr().out
    assert "20,914,757,184" in text and "GiB" in text and "conventions:" in text
    assert main(["list"]) == 0
    assert "llama-3.1-405b" in capsys.readouterr().out


def test_import_does_not_load_torch():
    code = ("import sys, transformer_math as t; t.analyze('llama-3.1-8b'); "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_public_api_sorted():
    assert tm.__all__ == sorted(tm.__all__)
    assert all(hasattr(tm, n) for n in tm.__all__)


def test_context_beyond_l_max_warns(capsys):
    assert main(["analyze", "gpt2", "--context", "2048"]) == 0
    assert "exceeds the model's L_max = 1024" in capsys.readouterr().out
    assert tm.analyze("gpt2", context=1024).warnings == ()


def test_explain_plan_numbers(capsys):
    """`tmath explain MODEL train.mfu …` is the training plan's derivation; it points to what MFU is made of."""
    argv = ["llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "8", "--global-batch", "64"]
    assert main(["explain", argv[0], "train.mfu", *argv[1:]]) == 0
    text = capsys.readouterr().out
    assert "MFU = F / (t_step·n_GPU·F_peak)" in text and "where t_step = train.step_time" in text
    assert main(["train", *argv, "--explain", "train.step_time"]) == 0
    assert "t_step = m·t_mb + t_bubble + t_DP + t_opt" in capsys.readouterr().out
    assert main(["explain", "llama-3.1-8b", "serve.memory.kv_cache", "--gpu", "h100-sxm", "--batch", "8"]) == 0
    assert "M_KV = ⌈B·M_KV_seq·r_kv / k_kv⌉" in capsys.readouterr().out
    assert main(["explain", "llama-3.1-8b", "serve.nothing", "--gpu", "h100-sxm"]) == 2
    assert "serve.tpot" in capsys.readouterr().err


def test_plan_json_is_strict_and_pipe_closed_is_quiet():
    for argv in (["serve", "gemma-3-4b", "--gpu", "l4", "--tp", "2", "--json"],
                 ["train", "qwen3-30b-a3b", "--gpu", "h100-sxm", "--gpus", "16", "--ep", "8", "--global-batch", "32",
                  "--json"]):
        out = subprocess.run([sys.executable, "-m", "transformer_math.cli", *argv], capture_output=True, text=True)
        json.loads(out.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    p = subprocess.run(f"{sys.executable} -m transformer_math.cli serve llama-3.1-8b --gpu h100-sxm | head -1",
                       shell=True, capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == "" and p.stdout.startswith("llama-3.1-8b")


def test_web_app_calls_the_api_not_the_cli():
    code = "import sys, transformer_math.web.app; print('transformer_math.cli.perf' in sys.modules, 'argparse' in " \
           "vars(transformer_math.web.app))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"
