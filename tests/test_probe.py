"""The reliability probe's fast slice (benchmarks/probe.py runs the full one): only the tool's own error escapes,
outputs are finite, each call is bounded in time and memory; bad CLI input exits 2 with one line."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import transformer_math as tm
from transformer_math.cli import main

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("probe", ROOT / "benchmarks" / "probe.py")
probe = importlib.util.module_from_spec(_spec)
sys.modules["probe"] = probe  # its dataclasses look their module up there
_spec.loader.exec_module(probe)
probe.warm()


@settings(max_examples=int(os.environ.get("TMATH_PROBE_EXAMPLES", 120)), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(probe.PRESET_CONFIGS)), kind=st.sampled_from(["analyze", "serve", "train"]),
       rng=st.randoms(use_true_random=False))
def test_mutated_configs_fail_only_with_tmath_errors(name, kind, rng):
    part = probe.Part(kind)
    probe.probe_one(part, kind, probe.mutate(probe.PRESET_CONFIGS[name], rng), rng)
    assert not part.failures, part.failures


@pytest.mark.parametrize("change, field", [
    ({"num_hidden_layers": 3_000_000}, "num_hidden_layers"),  # refused before a layer list is built
    ({"num_hidden_layers": 10**9}, "num_hidden_layers"),
    ({"hidden_size": 10**5000}, "hidden_size"),  # too long to print: still one error
    ({"rope_theta": 10**400}, "rope_theta"),  # was OverflowError
    ({"rope_theta": float("nan")}, "rope_theta"),  # was accepted, then NaN in the JSON
    ({"rope_scaling": {"rope_type": "llama3", "factor": float("inf")}}, "rope_scaling.factor"),
    ({"mlp_only_layers": list(range(10**6))}, "mlp_only_layers"),
    ({"sliding_window": 10**12}, "sliding_window"),
])
def test_hostile_config_values(change, field):
    base = tm.load_preset("qwen3-30b-a3b" if "mlp_only_layers" in change else "llama-3.1-8b")["config"]
    with pytest.raises(tm.TmathError) as e:
        tm.analyze({**base, **change})
    assert field in str(e.value)


def test_lone_surrogate_name_is_printable(capsys):
    r = tm.analyze({**tm.load_preset("llama-3.1-8b")["config"], "_name_or_path": "a\ud800b"})
    assert r.spec.name == "a?b"


@pytest.mark.parametrize("content, expected", [
    ("[" * 100_000 + "]" * 100_000, "nested"),
    ('{"model_type": "llama", "hidden_size": ' + "9" * 5000 + "}", "valid JSON"),
    ('{"model_type": "llama", "rope_theta": NaN}', "NaN"),
    (b'{"model_type": "\xc3\x28"}', "UTF-8"),
])
def test_hostile_config_files(tmp_path, capsys, content, expected):
    path = tmp_path / "config.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["analyze", str(path)]) == 2
    assert expected in capsys.readouterr().err


def test_special_files_are_refused_without_reading(tmp_path, capsys):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it would block forever
    for path in (str(fifo), "/dev/zero", "/dev/null"):
        assert main(["analyze", path]) == 2
        assert "regular file" in capsys.readouterr().err
    assert main(["serve", "llama-3.1-8b", "--gpu", "h100-sxm", "--draft", str(fifo)]) == 2
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (5 * 2**20))
    assert main(["analyze", str(big)]) == 2 and "at most 4 MiB" in capsys.readouterr().err


BAD = [  # each was accepted, crashed or ignored before; all must exit 2 with one line naming the field
    "analyze llama-3.1-8b --weight-dtype =int4", "analyze llama-3.1-8b --kv-dtype fp8-zp",
    "serve llama-3.1-8b --gpu h100-sxm --dp 0", "serve llama-3.1-8b --gpu h100-sxm --ep 3",
    "serve llama-3.1-8b --gpu h100-sxm --acceptance 1", "serve llama-3.1-8b --gpu h100-sxm --draft-k 0",
    "serve llama-3.1-8b --gpu h100-sxm --gpu-memory-utilization nan", "serve llama-3.1-8b --gpu /dev/zero",
    "train llama-3.1-8b --gpu h100-sxm --gpus 8 --global-batch 8 --tokens -1",
    "train llama-3.1-8b --gpu h100-sxm --gpus 8 --global-batch 8 --price nan",
    "train llama-3.1-8b --gpu h100-sxm --gpus 8 --global-batch 8 --dp 0",
    "train llama-3.1-8b --gpu h100-sxm --gpus 8 --global-batch 8 --ep 3",
    "train mixtral-8x7b --gpu h100-sxm --gpus 1 --global-batch 8 --ep 256",
    "train llama-3.1-8b --gpu h100-sxm --gpus 8 --global-batch 8 --finetune lora --lora-targets ,",
    "train llama-3.1-8b --gpu h100-sxm --gpus 8 --global-batch 8 --lora-rank 0",
    "train llama-3.1-8b --gpu h100-sxm --global-batch 8 --search",
    "train llama-3.1-8b --gpu h100-sxm --gpus 100000000 --global-batch 8 --search",
    "chinchilla --flops 1e24 --price -1", "chinchilla --flops nan", "chinchilla --flops 1e24 --mfu 2",
    "sweep gpt2 --csv /tmp/tmath-x.csv --batch ,", "sweep gpt2 --csv /tmp/tmath-x.csv --tp 0",
]


@pytest.mark.parametrize("argv", BAD)
def test_bad_invocations_exit_2(argv, capsys):
    assert main(argv.split()) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tmath: error:")


def test_pipes_and_ascii_terminals():
    run = lambda cmd, **env: subprocess.run(cmd, shell=True, capture_output=True, text=True,  # noqa: E731
                                            env={**os.environ, **env})
    tmath = f"{sys.executable} -m transformer_math.cli"
    for cmd in (f"{tmath} list | true", f"{tmath} analyze llama-3.1-8b --json | head -1"):
        p = subprocess.run(["bash", "-c", f"{cmd}; exit ${{PIPESTATUS[0]}}"], capture_output=True, text=True)
        assert p.returncode == 0 and "Traceback" not in p.stderr, (cmd, p.stderr)
    p = run(f"{tmath} explain llama-3.1-8b memory.kv_cache_bytes", PYTHONIOENCODING="ascii")
    assert p.returncode == 0 and "\\u03a3" in p.stdout  # Σ shown escaped, not a UnicodeEncodeError


def test_search_work_is_bounded():
    """A search stops at its time limit with an error that says so (the web app gives searches 10 s)."""
    with pytest.raises(tm.TmathError, match="search.*time limit"):
        tm.search("deepseek-v3", "h100-sxm", gpus=65536, global_batch=65536, seq=4096, time_limit_s=0.05)
    with pytest.raises(tm.TmathError, match="num_hidden_layers"):  # refused before anything is built
        tm.analyze({**tm.load_preset("llama-3.1-8b")["config"], "num_hidden_layers": 10**9})
