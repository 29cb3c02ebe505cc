"""Shared by the reference-module tests: a tiny random Hugging Face model, the same weights in ours, and the
comparison of their logits and loss."""

import torch

import transformer_math as tm
from transformer_math import reference as ref


def hf_model(config: dict, *, buffers: bool = False):
    """A tiny fp32, eager HF model with every weight random, norms near 1, so that a swapped or missing tensor cannot
    hide behind its initial value; with `buffers`, the floating buffers too (DeepSeek's routing correction bias),
    never the RoPE table. Returns (model, its config)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(config, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    hf_cfg = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(hf_cfg, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *(model.named_buffers() if buffers else ())]:
            if not t.is_floating_point() or "inv_freq" in name:
                continue
            t.add_(0.1 * torch.randn_like(t)) if t.ndim == 1 else t.normal_(0, 0.08)
    return model, hf_cfg


def ours(config: dict, hf, hf_cfg, state=None):
    """(spec, our model) with the HF model's weights (or `state`, a state dict in HF names)."""
    spec = tm.load_model(config)
    model = ref.build(spec, ref.details_from_hf(hf_cfg.to_dict())).eval()
    ref.load_hf_state_dict(model, hf.state_dict() if state is None else state)
    return spec, model


def logits_and_loss_match(hf, model, *, V: int, B: int, T: int, family: str) -> torch.Tensor:
    """Max |Δlogits| ≤ 1e-4 and the same next-token loss on random ids; returns the ids."""
    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = hf(input_ids=ids, labels=ids)
        logits = model(ids)
    diff = (logits - out.logits).abs().max().item()
    assert diff <= 1e-4, f"{family}: max |Δlogits| = {diff:.2e}"
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    assert abs(loss.item() - out.loss.item()) <= 1e-5
    return ids


def saved_bytes(module, forward) -> int:
    """Bytes of the distinct storages autograd saves while `forward()` runs, parameters excluded: what
    checks/execution.py saved_activation_bytes counts (a storage saved twice, or viewed, counts once)."""
    params = {p.untyped_storage()._cdata for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage._cdata not in params:
            seen[storage._cdata] = max(seen.get(storage._cdata, 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(seen.values())
