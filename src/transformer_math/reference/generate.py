"""Decoding with the reference models: greedy, sampling (T, k, p, p_min), penalties, and beam search.

Every step turns the last position's logits ℓ ∈ R^V into the next token. The model runs once over the prompt
(the prefill, which fills `model.new_cache()`: full K/V, the window ring buffer, MLA's latents or the linear-attention
state) and then on one new token per step; `use_cache=False` recomputes the whole sequence each step instead, and
gives the same tokens. Per step, in this order (ids: prompt + generated so far; c_v: how often v was generated):
    repetition penalty ρ (CTRL, Keskar et al. 2019; HF's rule) on every v in prompt + output:
        ℓ_v ← ℓ_v / ρ if ℓ_v > 0, else ℓ_v·ρ                     (ρ > 1 discourages repeats, whatever the sign)
    presence / frequency penalties (OpenAI's API), over the generated tokens only, not the prompt:
        ℓ_v ← ℓ_v − α_pres·1[c_v > 0] − α_freq·c_v
    min_new_tokens n_min: ℓ_eos ← −∞ while fewer than n_min tokens are generated
Greedy (do_sample false) then takes argmax ℓ. Sampling first reshapes ℓ, then draws from softmax(ℓ):
    temperature T:   ℓ ← ℓ / T                                  (T < 1 sharpens, T > 1 flattens)
    top-k:           keep the k largest ℓ (ties with the k-th kept), the rest → −∞
    top-p (nucleus): with π = softmax(ℓ), drop v when the mass of the tokens no more probable than v,
                     v included, is ≤ 1 − p: what is kept is the smallest most-probable set of mass ≥ p
    min-p:           drop v when π_v < p_min·max π
The draw uses one torch.Generator seeded from `seed`: the same seed gives the same tokens.
Stop tokens: a row that emits one of eos_ids is finished and gets pad_id from then on; decoding ends when every row
is finished or after n_max = max_new_tokens tokens, so the output is B × (T_prompt + n), n ≤ n_max.

Beam search (b_beam > 1; Hugging Face's algorithm, early_stopping=False): each prompt keeps b_beam running
hypotheses scored by their summed log-probability Σ log π (the penalties above act on log π, as in HF). A step
extends every beam by every token and keeps the 2·b_beam best extensions (max(2, 1 + n_eos)·b_beam); those among
the first b_beam that end in an eos token (or reach n_max) are finished with
    score = Σ log π / n^λ_len         (n generated tokens, eos included; λ_len > 0 favours longer outputs)
and the b_beam best unfinished continue (the cache rows follow their beams: `cache.select`). A prompt stops adding
finished hypotheses once b_beam are finished and the best running beam, scored at its current length, cannot beat
the worst of them: HF's default heuristic, not an exact bound when λ_len > 0. The output is, per prompt, the best
finished hypothesis, padded with pad_id to the longest returned one.

KV bytes: after n new tokens the cache holds L = T_prompt + n − 1 tokens (the last token is never fed back), for
B rows (B·b_beam with beams), and its nbytes() is analyze(spec, batch, context=L)["memory.kv_cache_bytes"].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from transformer_math.errors import TmathError, check_int, check_number
from transformer_math.reference.cache import ModelCache
from transformer_math.reference.model import Model

_MAX_TOKENS = 1_000_000
_NEG = -1.0e9  # HF's "excluded" score offset in beam search (finite, so the excluded still sort among themselves)


@dataclass(frozen=True, kw_only=True)
class GenerationConfig:
    """How `generate` picks tokens; every field is checked once, here (TmathError names field, value, allowed).

    The warpers (temperature … min_p) act only when do_sample is true; the penalties and n_min always act.
    """

    max_new_tokens: int = 16          # n_max: at most this many new tokens
    min_new_tokens: int = 0           # n_min: eos suppressed before this many
    do_sample: bool = False           # false: argmax (or beam search); true: draw from softmax of the warped logits
    temperature: float = 1.0          # T > 0
    top_k: int | None = None          # k ≥ 1, None: off
    top_p: float = 1.0                # p ∈ (0, 1], 1: off
    min_p: float = 0.0                # p_min ∈ [0, 1], 0: off
    repetition_penalty: float = 1.0   # ρ > 0, 1: off
    presence_penalty: float = 0.0     # α_pres ∈ [−2, 2] (OpenAI's range)
    frequency_penalty: float = 0.0    # α_freq ∈ [−2, 2]
    num_beams: int = 1                # b_beam; > 1 runs beam search (with do_sample false)
    length_penalty: float = 1.0       # λ_len: beam score = Σ log π / n^λ_len
    eos_ids: tuple[int, ...] = ()     # stop tokens
    pad_id: int = 0                   # what a finished row gets

    def __post_init__(self) -> None:
        check_int("max_new_tokens", self.max_new_tokens, low=1, high=_MAX_TOKENS)
        check_int("min_new_tokens", self.min_new_tokens, low=0, high=self.max_new_tokens)
        if not isinstance(self.do_sample, bool):
            raise TmathError("do_sample", self.do_sample, "true or false")
        check_number("temperature", self.temperature, low=0.0, high=1e6, open_low=True)
        if self.top_k is not None:
            check_int("top_k", self.top_k, low=1, high=_MAX_TOKENS)
        check_number("top_p", self.top_p, low=0.0, high=1.0, open_low=True)
        check_number("min_p", self.min_p, low=0.0, high=1.0)
        check_number("repetition_penalty", self.repetition_penalty, low=0.0, high=1e6, open_low=True)
        check_number("presence_penalty", self.presence_penalty, low=-2.0, high=2.0)
        check_number("frequency_penalty", self.frequency_penalty, low=-2.0, high=2.0)
        check_int("num_beams", self.num_beams, low=1, high=1024)
        if self.num_beams > 1 and self.do_sample:
            raise TmathError("num_beams", self.num_beams, "1 when do_sample is true (beam sampling is not implemented)")
        check_number("length_penalty", self.length_penalty, low=-100.0, high=100.0)
        eos = self.eos_ids
        if (not isinstance(eos, tuple | list) or any(isinstance(e, bool) or not isinstance(e, int) or e < 0
                                                     for e in eos)):
            raise TmathError("eos_ids", eos, "a tuple of token ids (integers ≥ 0)")
        object.__setattr__(self, "eos_ids", tuple(eos))
        check_int("pad_id", self.pad_id, low=0, high=2**62)


# ---- logits processors: pure functions of the logits (B × V) and what was generated --------------------------------


def repetition_penalty(logits_BV: torch.Tensor, ids_BT: torch.Tensor, rho: float) -> torch.Tensor:
    """ℓ_v ← ℓ_v/ρ if ℓ_v > 0 else ℓ_v·ρ, for every v in ids_BT (prompt + output; once per distinct token)."""
    seen_BT = logits_BV.gather(1, ids_BT)
    return logits_BV.scatter(1, ids_BT, torch.where(seen_BT > 0, seen_BT / rho, seen_BT * rho))


def presence_frequency_penalty(logits_BV: torch.Tensor, new_BN: torch.Tensor, alpha_pres: float,
                               alpha_freq: float) -> torch.Tensor:
    """ℓ_v ← ℓ_v − α_pres·1[c_v > 0] − α_freq·c_v, c_v = how often v occurs in new_BN (the generated tokens only)."""
    count_BV = torch.zeros_like(logits_BV).scatter_add(1, new_BN, torch.ones_like(new_BN, dtype=logits_BV.dtype))
    return logits_BV - alpha_pres * (count_BV > 0).to(logits_BV.dtype) - alpha_freq * count_BV


def suppress_eos(logits_BV: torch.Tensor, eos_ids: tuple[int, ...], n_new: int, min_new: int) -> torch.Tensor:
    """ℓ_eos ← −∞ for every stop token while n_new < n_min (n_new: tokens generated so far)."""
    if n_new >= min_new or not eos_ids:
        return logits_BV
    out_BV = logits_BV.clone()
    out_BV[:, list(eos_ids)] = -math.inf
    return out_BV


def temperature(logits_BV: torch.Tensor, T: float) -> torch.Tensor:
    """ℓ / T."""
    return logits_BV / T


def top_k(logits_BV: torch.Tensor, k: int) -> torch.Tensor:
    """ℓ_v if ℓ_v ≥ the k-th largest ℓ (ties kept), else −∞."""
    kth_B1 = logits_BV.topk(min(k, logits_BV.shape[-1]), dim=-1).values[:, -1:]
    return logits_BV.masked_fill(logits_BV < kth_B1, -math.inf)


def top_p(logits_BV: torch.Tensor, p: float) -> torch.Tensor:
    """−∞ for v whose mass of tokens no more probable than v (v included), Σ_{u ≼ v} π_u, is ≤ 1 − p; the most
    probable token is always kept. What remains is the smallest most-probable set of mass ≥ p."""
    sorted_BV, order_BV = logits_BV.sort(dim=-1)  # least probable first
    below_BV = sorted_BV.softmax(-1).cumsum(-1)
    drop_BV = below_BV <= 1 - p
    drop_BV[:, -1] = False
    return logits_BV.masked_fill(drop_BV.scatter(1, order_BV, drop_BV), -math.inf)


def min_p(logits_BV: torch.Tensor, p_min: float) -> torch.Tensor:
    """−∞ for v with π_v < p_min·max_u π_u (π = softmax ℓ); the most probable token is always kept."""
    pi_BV = logits_BV.softmax(-1)
    drop_BV = pi_BV < p_min * pi_BV.amax(-1, keepdim=True)
    drop_BV.scatter_(1, pi_BV.argmax(-1, keepdim=True), False)
    return logits_BV.masked_fill(drop_BV, -math.inf)


def penalize(scores_BV: torch.Tensor, ids_BT: torch.Tensor, prompt_len: int, config: GenerationConfig) -> torch.Tensor:
    """The processors every decoding mode applies: ρ, α_pres / α_freq and n_min (module docstring, in that order)."""
    if config.repetition_penalty != 1.0:
        scores_BV = repetition_penalty(scores_BV, ids_BT, config.repetition_penalty)
    new_BN = ids_BT[:, prompt_len:]
    if (config.presence_penalty or config.frequency_penalty) and new_BN.shape[1]:
        scores_BV = presence_frequency_penalty(scores_BV, new_BN, config.presence_penalty, config.frequency_penalty)
    return suppress_eos(scores_BV, config.eos_ids, new_BN.shape[1], config.min_new_tokens)


def warp(logits_BV: torch.Tensor, config: GenerationConfig) -> torch.Tensor:
    """The sampling warpers: T, then top-k, top-p, min-p (each skipped at its neutral value)."""
    if config.temperature != 1.0:
        logits_BV = temperature(logits_BV, config.temperature)
    if config.top_k is not None:
        logits_BV = top_k(logits_BV, config.top_k)
    if config.top_p < 1.0:
        logits_BV = top_p(logits_BV, config.top_p)
    if config.min_p > 0.0:
        logits_BV = min_p(logits_BV, config.min_p)
    return logits_BV


# ---- decoding --------------------------------------------------------------------------------------------------------


def _check(model: Model, ids_BT: torch.Tensor, config: GenerationConfig, cache: ModelCache | None) -> None:
    if not isinstance(config, GenerationConfig):
        raise TmathError("config", config, "a GenerationConfig")
    if ids_BT.ndim != 2 or ids_BT.shape[1] == 0 or ids_BT.dtype != torch.long:
        raise TmathError("ids_BT", tuple(ids_BT.shape), "a non-empty B × T LongTensor of token ids")
    V = model.spec.vocab_size
    for field, ids in (("eos_ids", config.eos_ids), ("pad_id", (config.pad_id,))):
        if any(i >= V for i in ids):
            raise TmathError(field, ids if field == "eos_ids" else config.pad_id, f"token ids below V = {V}")
    if cache is not None and cache.seen:
        raise TmathError("cache", f"{cache.seen} tokens seen", "a fresh model.new_cache()")


def _logits(model: Model, new_BT: torch.Tensor, all_BT: torch.Tensor, cache: ModelCache | None) -> torch.Tensor:
    """The next-token logits B × V: the new tokens through the cache, or the whole sequence recomputed."""
    out_BTV = model(new_BT, cache) if cache is not None else model(all_BT)
    return out_BTV[:, -1].float()


@torch.no_grad()
def generate(model: Model, ids_BT: torch.Tensor, config: GenerationConfig, *, seed: int | None = None,
             use_cache: bool = True, cache: ModelCache | None = None) -> torch.Tensor:
    """Prompt + up to n_max new tokens, B × (T + n) (module docstring). `seed` seeds the sampler's torch.Generator
    (None: a fresh random seed); `use_cache=False` recomputes every step; `cache`, a fresh model.new_cache(), is
    the one used (to inspect it afterwards). Beam search when config.num_beams > 1."""
    _check(model, ids_BT, config, cache)
    cache = (cache if cache is not None else model.new_cache()) if use_cache else None
    if config.num_beams > 1:
        return _beam_search(model, ids_BT, config, cache)
    gen = torch.Generator(device=ids_BT.device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    B, T = ids_BT.shape
    eos_E = torch.tensor(config.eos_ids, dtype=torch.long, device=ids_BT.device)
    out_BT, new_BT = ids_BT, ids_BT
    done_B = torch.zeros(B, dtype=torch.bool, device=ids_BT.device)
    for _ in range(config.max_new_tokens):
        logits_BV = penalize(_logits(model, new_BT, out_BT, cache), out_BT, T, config)
        if config.do_sample:
            pi_BV = warp(logits_BV, config).softmax(-1)
            next_B = torch.multinomial(pi_BV, 1, generator=gen).squeeze(1)
        else:
            next_B = logits_BV.argmax(-1)
        next_B = next_B.masked_fill(done_B, config.pad_id)
        out_BT = torch.cat((out_BT, next_B[:, None]), dim=1)
        done_B |= torch.isin(next_B, eos_E)
        if done_B.all():
            break
        new_BT = next_B[:, None]
    return out_BT


def _beam_search(model: Model, ids_BT: torch.Tensor, config: GenerationConfig,
                 cache: ModelCache | None) -> torch.Tensor:
    """HF's beam search with early_stopping=False (module docstring). K = b_beam; C = candidates kept per step."""
    B, T = ids_BT.shape
    K, n_max, lam, dev = config.num_beams, config.max_new_tokens, config.length_penalty, ids_BT.device
    C = max(2, 1 + len(config.eos_ids)) * K
    eos_E = torch.tensor(config.eos_ids, dtype=torch.long, device=dev)
    rows_BK = torch.arange(B, device=dev)[:, None] * K  # first flat row of each prompt's beams
    run_BKL = ids_BT[:, None].expand(B, K, T)  # running hypotheses
    run_score_BK = torch.full((B, K), _NEG, device=dev)
    run_score_BK[:, 0] = 0.0  # the beams start equal: only the first one may extend at step 1
    fin_BKL = torch.full((B, K, T + n_max), config.pad_id, dtype=torch.long, device=dev)  # finished hypotheses
    fin_score_BK = torch.full((B, K), _NEG, device=dev)
    fin_len_BK = torch.zeros((B, K), dtype=torch.long, device=dev)  # generated tokens, for the final crop
    is_fin_BK = torch.zeros((B, K), dtype=torch.bool, device=dev)
    open_B = torch.ones(B, dtype=torch.bool, device=dev)  # may still add finished hypotheses
    if cache is not None:
        logits_BV = _logits(model, ids_BT, ids_BT, cache)
        cache.select(torch.arange(B, device=dev).repeat_interleave(K))
        logits_XV = logits_BV.repeat_interleave(K, dim=0)  # X = B·K flat beam rows
    for n in range(1, n_max + 1):  # n: generated tokens after this step
        flat_XL = run_BKL.reshape(B * K, -1)
        if n > 1 or cache is None:
            logits_XV = _logits(model, flat_XL[:, -1:], flat_XL, cache)
        logp_XV = penalize(F.log_softmax(logits_XV, dim=-1), flat_XL, T, config)
        V = logp_XV.shape[-1]
        total_BKV = logp_XV.view(B, K, V) + run_score_BK[:, :, None]
        cand_score_BC, idx_BC = total_BKV.view(B, K * V).topk(C, dim=-1)
        beam_BC, tok_BC = idx_BC // V, idx_BC % V
        cand_BCL = torch.cat((run_BKL.gather(1, beam_BC[:, :, None].expand(B, C, run_BKL.shape[2])),
                              tok_BC[:, :, None]), dim=2)
        ends_BC = torch.isin(tok_BC, eos_E) | (n == n_max)
        # the K best candidates that go on
        keep_BK = (cand_score_BC + _NEG * ends_BC).topk(K, dim=-1).indices
        new_run_BKL = cand_BCL.gather(1, keep_BK[:, :, None].expand(B, K, cand_BCL.shape[2]))
        new_run_score_BK = (cand_score_BC + _NEG * ends_BC).gather(1, keep_BK)
        # finished: among the first K candidates, those that end, scored Σ log π / n^λ; merged, the K best kept
        now_fin_BC = ends_BC.clone()
        now_fin_BC[:, K:] = False
        now_fin_BC &= open_B[:, None]
        fin_cand_BC = cand_score_BC / n ** lam + _NEG * ~now_fin_BC
        pad_BCL = torch.full((B, C, T + n_max - cand_BCL.shape[2]), config.pad_id, dtype=torch.long, device=dev)
        merged_score = torch.cat((fin_score_BK, fin_cand_BC), dim=1)
        best_BK = merged_score.topk(K, dim=-1).indices
        fin_BKL = torch.cat((fin_BKL, torch.cat((cand_BCL, pad_BCL), dim=2)), dim=1).gather(
            1, best_BK[:, :, None].expand(B, K, T + n_max))
        fin_score_BK = merged_score.gather(1, best_BK)
        fin_len_BK = torch.cat((fin_len_BK, torch.full_like(tok_BC, n)), dim=1).gather(1, best_BK)
        is_fin_BK = torch.cat((is_fin_BK, now_fin_BC), dim=1).gather(1, best_BK)
        # the cache rows follow the beams that go on
        src_BK = beam_BC.gather(1, keep_BK)
        run_BKL, run_score_BK = new_run_BKL, new_run_score_BK
        # HF's early_stopping=False heuristic: the best running beam, scored at its current length n, against the
        # worst finished one, once K are finished
        best_running_B1 = run_score_BK[:, :1] / n ** lam
        worst_BK = torch.where(is_fin_BK, fin_score_BK.min(dim=1, keepdim=True).values, _NEG)
        open_B &= (best_running_B1 > worst_BK).any(dim=1)
        if not open_B.any() or ends_BC.all():
            break
        if cache is not None:
            cache.select((rows_BK + src_BK).reshape(-1))
    n_out = int(fin_len_BK[:, 0].max())
    return fin_BKL[:, 0, :T + n_out]
