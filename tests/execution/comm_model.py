"""The tiny Llama-style model the collective cases train one step of (see comm.py for the recording)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .comm import CommRecord, CommRecorder

# --------------------------------------------------------------------------------------------------
# tiny Llama-style model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinyConfig:
    """Widths divisible by T (heads and kv heads too: TP splits whole heads)."""

    vocab: int = 128
    d: int = 64  # hidden
    n_layers: int = 2
    n_heads: int = 8
    n_kv_heads: int = 4  # GQA
    ffn: int = 96  # intermediate
    b: int = 2  # micro-batch
    s: int = 16  # sequence
    dtype: torch.dtype = torch.float32

    @property
    def head_dim(self) -> int:
        return self.d // self.n_heads


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _rope(x, theta: float = 10000.0):
    """Rotate-half RoPE over positions 0..s-1 of x: (b, heads, s, hd)."""
    s, hd = x.shape[-2], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = torch.outer(torch.arange(s, dtype=torch.float32), inv)
    cos, sin = torch.cat([ang.cos()] * 2, -1).to(x.dtype), torch.cat([ang.sin()] * 2, -1).to(x.dtype)
    x1, x2 = x.chunk(2, -1)
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Attention(nn.Module):
    def __init__(self, c: TinyConfig) -> None:
        super().__init__()
        hd = c.head_dim
        self.hd = hd
        self.q_proj = nn.Linear(c.d, c.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(c.d, c.n_kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(c.d, c.n_kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(c.n_heads * hd, c.d, bias=False)
        self.cp_group: dist.ProcessGroup | None = None  # set by case_cp: ring attention over it

    def forward(self, x):
        b, s, _ = x.shape  # under TP the heads below are this rank's heads (-1)
        q = self.q_proj(x).view(b, s, -1, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, s, -1, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, s, -1, self.hd).transpose(1, 2)
        q, k = _rope(q), _rope(k)
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        if self.cp_group is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            o = RingAttention.apply(q, k, v, self.cp_group)
        return self.o_proj(o.transpose(1, 2).reshape(b, s, -1))


class MLP(nn.Module):
    def __init__(self, c: TinyConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(c.d, c.ffn, bias=False)
        self.up_proj = nn.Linear(c.d, c.ffn, bias=False)
        self.down_proj = nn.Linear(c.ffn, c.d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c: TinyConfig) -> None:
        super().__init__()
        self.input_layernorm, self.self_attn = RMSNorm(c.d), Attention(c)
        self.post_attention_layernorm, self.mlp = RMSNorm(c.d), MLP(c)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class TinyLlama(nn.Module):
    def __init__(self, c: TinyConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab, c.d)
        self.layers = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.d)
        self.lm_head = nn.Linear(c.d, c.vocab, bias=False)

    def forward(self, ids):
        h = self.embed_tokens(ids)
        for layer in self.layers:
            h = layer(h)
        return self.lm_head(self.norm(h))


def _tiny(c: TinyConfig) -> TinyLlama:
    torch.manual_seed(0)
    return TinyLlama(c).to(c.dtype)


def _hf_llama(c: TinyConfig) -> nn.Module:
    """Cross-check model: HF ``LlamaForCausalLM`` (untied) of the same widths, built locally (no hub)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=c.vocab, hidden_size=c.d, num_hidden_layers=c.n_layers,
                      num_attention_heads=c.n_heads, num_key_value_heads=c.n_kv_heads,
                      intermediate_size=c.ffn, tie_word_embeddings=False, attn_implementation="sdpa")
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(c.dtype)


def _batch(c: TinyConfig):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, c.vocab, (c.b, c.s), generator=g)
    return ids, torch.roll(ids, -1, 1)


def _step(model, ids, labels, mesh, loss_ctx=contextlib.nullcontext, opt_step: bool = False) -> list[CommRecord]:
    """Record one micro-batch: forward, token-mean cross-entropy (fp32 upcast), backward.

    ``opt_step``: also record a plain SGD step (phase "opt") -- not part of the counted step, but it
    shows collectives torch defers past backward (e.g. Partial gradients of replicated params).
    """
    with CommRecorder(model, mesh) as rec:
        with loss_ctx():
            logits = model(ids)
            logits = getattr(logits, "logits", logits)  # HF returns a ModelOutput
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(0, 1))
            loss.backward()
        if opt_step:
            rec.phase = "opt"
            torch.optim.SGD(model.parameters(), lr=1e-3, foreach=False).step()
    return rec.records

class RingAttention(torch.autograd.Function):
    """Causal attention over a CP group: torch's OWN ring attention
    (``torch.distributed.tensor.experimental._context_parallel._attention._templated_ring_attention``
    and ``_templated_ring_attention_backward``, what ``context_parallel()`` dispatches SDPA to), driven
    with the CPU flash kernels ``aten._scaled_dot_product_flash_attention_for_cpu[_backward]``.

    Why not ``context_parallel()`` itself: on CPU SDPA lowers to ``..._flash_attention_for_cpu``, which
    has neither a CP handler nor a DTensor sharding rule (NotImplementedError: "does not have a sharding
    strategy registered"); CP only handles the CUDA flash / efficient / cuDNN ops.  The collectives
    (issued by torch's rotaters, chosen by ``set_rotate_method``) do not depend on the kernel:
      forward  KV = cat(K, V) flattened; "allgather": ONE all-gather of KV;
               "alltoall": C-1 ring steps, each ``permute_tensor`` = all_to_all_single sending all of KV
               to rank+1;
      backward KV rotated again the same way, plus C ring steps of dKV (always all-to-all), in fp32
               (``_cp_options.convert_to_f32``).
    """

    @staticmethod
    def forward(ctx, q, k, v, group):
        from torch.distributed.tensor.experimental._context_parallel._attention import _templated_ring_attention

        out, lse = _templated_ring_attention(group, 2, torch.ops.aten._scaled_dot_product_flash_attention_for_cpu,
                                             q, k, v, is_causal=True)[:2]
        out = out.to(q.dtype)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.group = group
        return out

    @staticmethod
    def backward(ctx, dout):
        from torch.distributed.tensor.experimental._context_parallel._attention import (
            _templated_ring_attention_backward,
        )

        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _templated_ring_attention_backward(
            ctx.group, 2, torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward.default,
            grad_out=dout.contiguous(), grad_out_name="grad_out", query=q, key=k, value=v, out=out,
            logsumexp=lse, is_causal=True, dropout_p=0.0)[:3]
        return dq, dk, dv, None
