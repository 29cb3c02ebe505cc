"""Save and resume a training run with safetensors, bit for bit: a resumed run repeats the uninterrupted one's losses.

A checkpoint is a directory of two files:
    model.safetensors   the model's state dict (a tied matrix stored once; safetensors.torch.save_model)
    state.safetensors   tensors: AdamW's moments and step counts (optim.<param index>.<name>) and torch's CPU
                        generator state (rng.torch_cpu); metadata (JSON strings): step, data_position, the
                        optimizer's param_groups, the scheduler's state, Python's random state, the TrainConfig
Everything a step reads that is not recomputed from the config is in them: weights, moments, η of each group,
the schedule's position, the next batch's index, and the generator that dropout draws from.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_file, save_model
from torch import nn

FORMAT = "transformer_math.training/1"
MODEL_FILE, STATE_FILE = "model.safetensors", "state.safetensors"


def save_checkpoint(directory: str | os.PathLike[str], *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, data_position: int,
                    config: object = None) -> None:
    """Write model.safetensors and state.safetensors into `directory` (created); each file is written beside its
    final name and renamed into place, so an interrupted save never leaves a half-written file under that name."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    opt = optimizer.state_dict()
    tensors = {f"optim.{i}.{name}": t.detach().contiguous()
               for i, state in opt["state"].items() for name, t in state.items() if torch.is_tensor(t)}
    plain = {str(i): {name: v for name, v in state.items() if not torch.is_tensor(v)}
             for i, state in opt["state"].items()}
    tensors["rng.torch_cpu"] = torch.get_rng_state()
    meta: dict[str, Any] = {
        "format": FORMAT, "step": step, "data_position": data_position,
        "param_groups": opt["param_groups"], "optim_plain": plain, "scheduler": scheduler.state_dict(),
        "python_random": random.getstate(),
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) and not isinstance(config, type)
        else None,
    }
    _atomic(out / MODEL_FILE, lambda p: save_model(model, p))
    _atomic(out / STATE_FILE, lambda p: save_file(tensors, p, metadata={k: json.dumps(v) for k, v in meta.items()}))


def load_checkpoint(directory: str | os.PathLike[str], *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler) -> tuple[int, int]:
    """Restore what save_checkpoint wrote into freshly built objects of the same shapes (strict: every model
    tensor must match); sets torch's CPU generator and Python's random state. Returns (step, data_position)."""
    src = Path(directory)
    load_model(model, str(src / MODEL_FILE), strict=True)  # raises on a missing or unexpected tensor
    with safe_open(str(src / STATE_FILE), framework="pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{src / STATE_FILE}: format {meta.get('format')!r}, expected {FORMAT!r}")
    state: dict[int, dict[str, Any]] = {int(i): dict(plain) for i, plain in meta["optim_plain"].items()}
    for key, t in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = t
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch_cpu"])
    version, internal, gauss = meta["python_random"]
    random.setstate((version, tuple(internal), gauss))
    return int(meta["step"]), int(meta["data_position"])


def _atomic(path: Path, write: Callable[[str], object]) -> None:
    tmp = path.with_name(path.name + ".partial")
    write(str(tmp))
    os.replace(tmp, path)
