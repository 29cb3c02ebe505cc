"""KV caches: what decoding keeps of the keys and values already computed (after RoPE).

Per layer and sequence a cache holds L_kv tokens of K and V, each h_kv·d_h wide, so over the model
    M_KV = Σ_layers 2·B·L_kv·h_kv·d_h·b_kv
    full layers:              L_kv = L
    sliding / chunked (S):    L_kv = min(L, S − 1)  — the new token plus S − 1 cached ones fill the window
    with k_sinks pinned:      L_kv = min(L, k_sinks + S − 1)  (StreamingLLM: the first k_sinks tokens stay)
Each cache stores the absolute position of every slot, so the attention mask (not the slot order) decides
what a query sees: the window cache is a ring buffer that overwrites its oldest slot. After a prefill of L
tokens, the caches' Σ nbytes() equals analyze()'s memory.kv_cache_bytes (pinned sinks included).

The protocol every layer cache follows (MLA's latent cache too):
    update(k_BHTD, v_BHTD, pos_T) -> (k_BHSD, v_BHSD, pos_S)   # what the new queries attend to
    nbytes() -> int                                             # Σ numel × element_size of what it keeps
"""

from __future__ import annotations

import torch


def _cat(a: torch.Tensor | None, b: torch.Tensor, dim: int) -> torch.Tensor:
    return b if a is None else torch.cat((a, b), dim=dim)


class FullCache:
    """Every token: L_kv = L."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.pos: torch.Tensor | None = None

    def update(self, k: torch.Tensor, v: torch.Tensor,
               pos_T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.k, self.v, self.pos = _cat(self.k, k, 2), _cat(self.v, v, 2), _cat(self.pos, pos_T, 0)
        return self.k, self.v, self.pos

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.k, self.v) if t is not None)

    def select(self, idx_B: torch.Tensor) -> None:
        """Keep batch rows idx_B, in that order (beam search: each beam continues the row it came from)."""
        if self.k is not None and self.v is not None:
            self.k, self.v = self.k[idx_B], self.v[idx_B]


class WindowCache:
    """A ring buffer of the last `capacity` = S − 1 tokens, plus the first k_sinks tokens pinned.

    The new tokens are attended to together with what is kept (the mask trims them to the window), then
    written: the first k_sinks positions into the pinned slots, the rest over the oldest ring slots.
    """

    def __init__(self, window: int, n_sinks: int = 0) -> None:
        self.capacity, self.n_sinks = window - 1, n_sinks
        self.ring = FullCache()  # grows to `capacity` slots, then wraps
        self.sinks = FullCache()
        self.next_slot = 0

    def _kept(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        ks, vs, ps = [], [], []
        for part in (self.sinks, self.ring):
            if part.k is not None and part.v is not None and part.pos is not None:
                ks.append(part.k)
                vs.append(part.v)
                ps.append(part.pos)
        return ks, vs, ps

    def update(self, k: torch.Tensor, v: torch.Tensor,
               pos_T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ks, vs, ps = self._kept()
        out = torch.cat([*ks, k], 2), torch.cat([*vs, v], 2), torch.cat([*ps, pos_T], 0)
        pinned = pos_T < self.n_sinks
        if pinned.any():
            self.sinks.update(k[:, :, pinned], v[:, :, pinned], pos_T[pinned])
            k, v, pos_T = k[:, :, ~pinned], v[:, :, ~pinned], pos_T[~pinned]
        self._write(k, v, pos_T)
        return out

    def _write(self, k: torch.Tensor, v: torch.Tensor, pos_T: torch.Tensor) -> None:
        if self.capacity <= 0 or pos_T.numel() == 0:
            return
        held = 0 if self.ring.pos is None else self.ring.pos.numel()
        free = self.capacity - held
        if free > 0:  # still filling: append
            self.ring.update(k[:, :, :free].clone(), v[:, :, :free].clone(), pos_T[:free].clone())
            k, v, pos_T = k[:, :, free:], v[:, :, free:], pos_T[free:]
        n = pos_T.numel()
        if n == 0:
            return
        if n > self.capacity:  # only the last `capacity` of them survive
            self.next_slot = (self.next_slot + n - self.capacity) % self.capacity
            k, v, pos_T, n = k[:, :, -self.capacity:], v[:, :, -self.capacity:], pos_T[-self.capacity:], self.capacity
        slots = (self.next_slot + torch.arange(n, device=pos_T.device)) % self.capacity
        assert self.ring.k is not None and self.ring.v is not None and self.ring.pos is not None
        self.ring.k[:, :, slots] = k
        self.ring.v[:, :, slots] = v
        self.ring.pos[slots] = pos_T
        self.next_slot = (self.next_slot + n) % self.capacity

    def nbytes(self) -> int:
        return self.ring.nbytes() + self.sinks.nbytes()

    def select(self, idx_B: torch.Tensor) -> None:
        """Keep batch rows idx_B, in that order (the slot positions are shared by the batch)."""
        self.ring.select(idx_B)
        self.sinks.select(idx_B)


class ModelCache:
    """One cache per layer (each attention module's new_cache()) and the number of tokens seen."""

    def __init__(self, layers: list[FullCache | WindowCache]) -> None:
        self.layers = layers
        self.seen = 0

    def nbytes(self) -> int:
        return sum(c.nbytes() for c in self.layers)

    def select(self, idx_B: torch.Tensor) -> None:
        """Keep batch rows idx_B, in that order, in every layer's cache (beam search reorders its beams)."""
        for c in self.layers:
            c.select(idx_B)
