"""`tmath calibrate` on the CPU: one short calibration through the CLI, then what it wrote (loads, plausible,
within budget, usable by serve); the fits on synthetic tables; the one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
import time

import pytest

from transformer_math.checks.calibrate import (
    fit_attention,
    fit_gemm,
    gemm_factor,
    match_preset,
)
from transformer_math.cli import main

BUDGET = 6.0
FRACTIONS = ("gemm", "attention", "bw", "link", "nic", "gemm_fp8")


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("calibrate") / "cpu.json"
    out, err = io.StringIO(), io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["calibrate", "--device", "cpu", "--budget", str(BUDGET), "-o", str(path)])
    return {"rc": rc, "path": path, "elapsed": time.perf_counter() - t, "stdout": out.getvalue(),
            "stderr": err.getvalue()}


def test_cli_writes_a_loadable_profile(calibrated):
    from transformer_math.config.hardware import load_hardware

    assert calibrated["rc"] == 0, calibrated["stderr"]
    assert calibrated["path"].is_file()
    hw = load_hardware(str(calibrated["path"]))
    assert hw.id.startswith("calibrated-") and hw.gpus_per_node == 1
    # A loaded 2-core CI runner may reach only ~10^8 bf16 FLOP/s; a unit slip (FLOP/ms, TFLOP/s) would be 10^3 off.
    assert 1e7 < hw.peak("bf16") < 1e14 and hw.efficiency
    assert "use it with: tmath serve MODEL --gpu" in calibrated["stdout"]
    assert "GEMM peak achieved" in calibrated["stdout"]
    assert "%" in calibrated["stderr"] and "done" in calibrated["stderr"]  # the progress bar, one line per step


def test_budget_held(calibrated):
    # The budget covers the measurements; importing torch and a loaded 2-core runner add a few seconds on top.
    assert calibrated["elapsed"] < 3 * BUDGET


def test_measurements_plausible(calibrated):
    d = json.loads(calibrated["path"].read_text())
    m = d["measurements"]
    assert 1e9 < m["bandwidth"]["bytes_per_s"] < 1e13
    assert 1e9 < d["memory_bandwidth_bytes_per_s"] < 1e13
    assert m["best_flop_per_s"]["bf16"] > 1e7 and d["peak_flops_per_s"]["bf16"] > 1e7  # a loaded CI core: ~10^8
    assert 0 < m["launch_s"] < 1e-3
    assert m["collectives"] is None
    for row in m["gemm"] + m["attention"]:
        assert row["seconds"] > 0 and row["flop_per_s"] > 0 and math.isfinite(row["flop_per_s"])
    assert any(r["dtype"] == "bf16" for r in m["gemm"]) and m["attention"]
    e = d["efficiency"]
    for key in FRACTIONS:
        assert 0 < e[key] <= 1, key
    assert e["launch_s"] == pytest.approx(m["launch_s"], rel=1e-5)
    assert 0 <= e["attention_head_exponent"] <= 2
    assert e["gemm_dim_half"] >= 0 and e["gemm_rows_half"] >= 0 and e["attention_keys_half"] >= 0
    assert d["source"].startswith("tmath calibrate on ") and isinstance(d["notes"], list)
    assert d["memory_bytes"] > 2**28


def test_serve_with_the_profile(calibrated):
    import transformer_math as tm

    r = tm.serve("qwen3-0.6b", str(calibrated["path"]), batch=1, prompt=128, gen=16, engine="hf")
    tpot = r.plan["serve.tpot"]
    assert math.isfinite(tpot) and tpot > 0


def test_bad_device_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["calibrate", "--device", "tpu"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_bad_budget_one_line_error(capsys, tmp_path):
    assert main(["calibrate", "--device", "cpu", "--budget", "0", "-o", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tmath: error: budget") and "Traceback" not in err
    assert not (tmp_path / "x.json").exists()


def test_missing_torch_one_line_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert main(["calibrate", "--device", "cpu", "--budget", "5", "-o", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "torch" in err and "pip install" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_fit_gemm_recovers_the_model():
    peak, bw, launch, (top, h, r) = 1e15, 3e12, 4e-6, (0.8, 256.0, 64.0)
    rows = []
    for m in (1, 16, 128, 1024, 4096):
        for n in (512, 2048, 8192):
            for k in (512, 2048, 8192):
                flops, nbytes = 2.0 * m * n * k, 2.0 * (m * k + k * n + m * n)
                t = max(flops / (top * gemm_factor(n, k, m, h, r) * peak), nbytes / bw) + launch
                rows.append({"m": m, "n": n, "k": k, "flops": flops, "bytes": nbytes, "seconds": t,
                             "flop_per_s": flops / t})
    g, fh, fr = fit_gemm(rows, peak, bw, launch)
    assert g == pytest.approx(top, rel=0.05) and fh == pytest.approx(h, rel=0.2) and fr == pytest.approx(r, rel=0.2)


def test_fit_attention_recovers_the_model():
    peak, top, half, exp = 1e15, 0.6, 700.0, 0.4
    rows = [{"head_dim": d, "seq": s, "flop_per_s": peak * top * (d / 128) ** exp * (s / 2) / (s / 2 + half)}
            for d in (64, 128) for s in (512, 2048, 8192)]
    a, fh, fe = fit_attention(rows, peak)
    assert a == pytest.approx(top, rel=0.05) and fh == pytest.approx(half, rel=0.1)
    assert fe == pytest.approx(exp, abs=1e-6)


@pytest.mark.parametrize(("name", "gib", "preset"), [
    ("NVIDIA H100 80GB HBM3", 79.6, "h100-sxm"), ("NVIDIA H100 PCIe", 79.6, "h100-pcie"),
    ("NVIDIA H100 NVL", 93.0, None), ("NVIDIA H200", 140.0, "h200"), ("NVIDIA A100-SXM4-80GB", 79.2, "a100-80gb"),
    ("NVIDIA A100-SXM4-40GB", 39.4, "a100-40gb"), ("NVIDIA L4", 22.5, "l4"), ("NVIDIA L40S", 44.5, "l40s"),
    ("NVIDIA GeForce RTX 4090", 23.6, "rtx-4090"), ("NVIDIA B200", 178.0, "b200"), ("AMD Instinct MI300X", 192.0,
                                                                                     "mi300x"),
    ("NVIDIA GeForce RTX 3090", 24.0, None),
])
def test_match_preset(name, gib, preset):
    assert match_preset(name, gib * 2**30) == preset
