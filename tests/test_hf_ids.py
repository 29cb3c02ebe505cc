"""A Hugging Face id works offline: a preset's hf_id, or a model in the local HF cache (no network, no hub lib)."""

import json
import os

import pytest

import transformer_math as tm
from transformer_math.cli import main

QWEN = tm.load_preset("qwen3-8b")["config"]
LLAMA = tm.load_preset("llama-3.1-8b")["config"]


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path, monkeypatch):
    """Every test starts with an empty HF cache of its own: a real ~/.cache must not change a result."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.delenv("HF_HOME", raising=False)


def _total(model):
    return tm.analyze(model)["params.total"]


@pytest.mark.parametrize("hf_id", ["Qwen/Qwen3-8B", "qwen/qwen3-8b", "QWEN/QWEN3-8B"])
def test_preset_hf_id_resolves_case_insensitively(hf_id):
    assert _total(hf_id) == _total("qwen3-8b")
    assert tm.load_model(hf_id).name == "qwen3-8b"


def test_every_preset_hf_id_resolves_to_its_preset():
    for name in tm.list_presets():
        assert tm.load_model(tm.load_preset(name)["hf_id"]).name == name


def _cache_repo(hub, hf_id, snapshots, main=None):
    """A fake HF cache entry: models--ORG--NAME/snapshots/<rev>/config.json per {rev: config}, refs/main."""
    repo = hub / ("models--" + hf_id.replace("/", "--"))
    for i, (rev, cfg) in enumerate(snapshots.items()):
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        (snap / "config.json").write_text(json.dumps(cfg))
        os.utime(snap, (1_000_000 + i, 1_000_000 + i))  # later entries are newer
    if main is not None:
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(main)
    return repo


def test_cached_model_uses_refs_main_and_is_named_by_its_hf_id(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    # refs/main names the older snapshot: it wins over the newer one.
    _cache_repo(hub, "acme/Tiny-1B", {"aaaa": LLAMA, "bbbb": QWEN}, main="aaaa\n")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    spec = tm.load_model("acme/Tiny-1B")
    assert spec.name == "acme/Tiny-1B"
    assert _total("acme/Tiny-1B") == _total("llama-3.1-8b")
    assert tm.load_model("ACME/tiny-1b").name == "acme/Tiny-1B"  # the spelling in the cache


def test_cached_model_without_refs_main_takes_newest_snapshot(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    _cache_repo(hub, "acme/Tiny-1B", {"aaaa": LLAMA, "bbbb": QWEN})
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert _total("acme/Tiny-1B") == _total("qwen3-8b")


def test_refs_main_naming_a_missing_snapshot_falls_back_to_newest(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    _cache_repo(hub, "acme/Tiny-1B", {"bbbb": QWEN, "aaaa": LLAMA}, main="cccc")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert _total("acme/Tiny-1B") == _total("llama-3.1-8b")


def test_hf_home_fallback(tmp_path, monkeypatch):
    _cache_repo(tmp_path / "hf-home" / "hub", "acme/Tiny-1B", {"aaaa": QWEN}, main="aaaa")
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    assert tm.load_model("acme/Tiny-1B").name == "acme/Tiny-1B"
    assert _total("acme/Tiny-1B") == _total("qwen3-8b")


def test_default_cache_is_under_home(tmp_path, monkeypatch):
    _cache_repo(tmp_path / ".cache" / "huggingface" / "hub", "acme/Tiny-1B", {"aaaa": QWEN}, main="aaaa")
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert tm.load_model("acme/Tiny-1B").name == "acme/Tiny-1B"


def test_preset_hf_id_wins_over_cache(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    _cache_repo(hub, "Qwen/Qwen3-8B", {"aaaa": LLAMA}, main="aaaa")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert tm.load_model("Qwen/Qwen3-8B").name == "qwen3-8b"


def test_model_directory_path(tmp_path):
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(QWEN))
    assert _total(str(model_dir)) == _total("qwen3-8b")
    assert _total(model_dir) == _total("qwen3-8b")  # a PathLike too


def test_relative_org_name_directory_is_a_path_first(tmp_path, monkeypatch):
    (tmp_path / "Qwen" / "Qwen3-8B").mkdir(parents=True)
    (tmp_path / "Qwen" / "Qwen3-8B" / "config.json").write_text(json.dumps(LLAMA))
    monkeypatch.chdir(tmp_path)
    assert _total("Qwen/Qwen3-8B") == _total("llama-3.1-8b")


def test_unknown_id_is_one_error_naming_cache_and_close_matches(tmp_path):
    cache = os.environ["HF_HUB_CACHE"]
    with pytest.raises(tm.TmathError) as err:
        tm.load_model("Qwen/Qwen3-8C")
    message = str(err.value)
    assert err.value.field == "model" and err.value.value == "Qwen/Qwen3-8C"
    assert cache in message and "did you mean" in message and "Qwen/Qwen3-8B" in message
    assert "\n" not in message
    with pytest.raises(tm.TmathError, match="did you mean qwen3-8b") as err:
        tm.load_model("qwen3-8c")
    assert cache in str(err.value)


def test_missing_json_path_keeps_the_file_error():
    with pytest.raises(tm.TmathError, match="readable file") as err:
        tm.load_model("Qwen/Qwen3-8B.json")
    assert err.value.field == "config.json"
    with pytest.raises(tm.TmathError, match="readable file"):
        tm.load_model("/nonexistent/dir/config.json")


def test_never_imports_huggingface_hub(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # importing it would now raise
    _cache_repo(tmp_path / "hub", "acme/Tiny-1B", {"aaaa": QWEN}, main="aaaa")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert tm.load_model("acme/Tiny-1B").name == "acme/Tiny-1B"
    with pytest.raises(tm.TmathError):
        tm.load_model("acme/Other")


def test_cli_analyze_preset_hf_id(capsys):
    assert main(["analyze", "Qwen/Qwen3-8B", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out  # a report came back


def test_cli_unknown_id_is_one_line_exit_2(capsys):
    assert main(["analyze", "acme/No-Such-Model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tmath: error:")
