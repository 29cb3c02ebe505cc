"""Decoding with the reference models (transformer_math.reference.generate) against Hugging Face and itself.

1. Each logits processor equals transformers' on random logits; presence/frequency penalties on a hand-worked case.
2. Greedy (with ρ, n_min and a stop token) and beam search (b_beam = 3, λ_len, early stop, padding) give HF's tokens.
3. Sampling: same seed → same tokens, top-k = 1 is greedy, draws follow the warped distribution.
4. Cached decoding (full, ring-buffer window, MLA latent, linear-attention state) gives the tokens of recomputing,
   for greedy, sampling and beams; the cache then holds analyze()'s memory.kv_cache_bytes.
5. Stop tokens stop a row and pad it; n_min suppresses them; bad settings are TmathErrors naming the field.
"""

import dataclasses

import pytest

import transformer_math as tm
from transformer_math.errors import TmathError

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from reference_support import hf_model, ours
from transformer_math import reference as ref
from transformer_math.reference.generate import (
    GenerationConfig,
    generate,
    min_p,
    penalize,
    presence_frequency_penalty,
    repetition_penalty,
    suppress_eos,
    temperature,
    top_k,
    top_p,
)

V, B, T = 96, 2, 6
_LLAMA = dict(vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256)
_MLA = dict(vocab_size=V, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=256,
            kv_lora_rank=16, q_lora_rank=24, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8,
            num_key_value_heads=4, intermediate_size=64, moe_intermediate_size=16, first_k_dense_replace=1)
CONFIGS = {
    "llama": dict(model_type="llama", **_LLAMA, rope_theta=500000.0),
    "qwen3": dict(model_type="qwen3", **_LLAMA, head_dim=16, tie_word_embeddings=True),
    "gemma3_text": dict(model_type="gemma3_text", **_LLAMA, head_dim=16, query_pre_attn_scalar=24, sliding_window=4,
                        hidden_activation="gelu_pytorch_tanh", layer_types=["sliding_attention", "full_attention"]),
    "deepseek_v3": dict(model_type="deepseek_v3", **_MLA, n_routed_experts=8, num_experts_per_tok=3,
                        n_shared_experts=2, n_group=4, topk_group=2, routed_scaling_factor=2.5, norm_topk_prob=True),
}
_HF = {}


def _hf(family: str):
    """(HF model, our model with its weights), built once per family."""
    if family not in _HF:
        hf, hf_cfg = hf_model(CONFIGS[family], buffers=family == "deepseek_v3")  # its routing bias is a buffer
        _HF[family] = hf, ours(CONFIGS[family], hf, hf_cfg)[1]
    return _HF[family]


def _prompt(batch: int = B, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, V, (batch, T), generator=torch.Generator().manual_seed(seed))


# ---- 1. processors ---------------------------------------------------------------------------------------------------


def test_processors_equal_hugging_face():
    from transformers.generation import (
        MinNewTokensLengthLogitsProcessor,
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4, 50, generator=g)
    ids = torch.randint(0, 50, (4, 9), generator=g)  # 6 prompt + 3 generated tokens, repeats included
    pairs = [(temperature(logits, 0.7), TemperatureLogitsWarper(0.7)),
             *[(top_k(logits, k), TopKLogitsWarper(k)) for k in (1, 5, 60)],
             *[(top_p(logits, p), TopPLogitsWarper(p)) for p in (0.05, 0.5, 0.9)],
             *[(min_p(logits, p), MinPLogitsWarper(p)) for p in (0.05, 0.3)],
             *[(repetition_penalty(logits, ids, r), RepetitionPenaltyLogitsProcessor(r)) for r in (1.3, 0.8)],
             (suppress_eos(logits, (4, 7), 3, 4), MinNewTokensLengthLogitsProcessor(6, 4, [4, 7])),
             (suppress_eos(logits, (4, 7), 3, 3), MinNewTokensLengthLogitsProcessor(6, 3, [4, 7]))]
    for ours_, theirs in pairs:
        want = theirs(ids, logits.clone())
        assert torch.equal(ours_.isinf(), want.isinf()), type(theirs).__name__
        assert torch.allclose(ours_, want, rtol=1e-6, atol=0), type(theirs).__name__
    kept = [int(top_p(logits, p).isfinite().sum()) for p in (0.05, 0.5, 0.9)]
    assert kept[0] == 4 and kept[0] < kept[1] < kept[2] < 4 * 50  # the test cases do cut, and differently


def test_presence_and_frequency_penalties_by_hand():
    """ℓ = [1, −0.5, 2, 0], generated [2, 0, 2] → c = [1, 0, 2, 0]; α_pres = 0.5, α_freq = 0.25:
    ℓ0 = 1 − 0.5 − 0.25·1 = 0.25;  ℓ1 = −0.5 (not generated);  ℓ2 = 2 − 0.5 − 0.25·2 = 1.0;  ℓ3 = 0.
    The prompt [1, 1] does not count (OpenAI's penalties see the output only), so ℓ1 stays −0.5 through penalize."""
    logits = torch.tensor([[1.0, -0.5, 2.0, 0.0]])
    assert presence_frequency_penalty(logits, torch.tensor([[2, 0, 2]]), 0.5, 0.25).tolist() == [[0.25, -0.5, 1.0, 0]]
    cfg = GenerationConfig(presence_penalty=0.5, frequency_penalty=0.25)
    assert penalize(logits, torch.tensor([[1, 1, 2, 0, 2]]), 2, cfg).tolist() == [[0.25, -0.5, 1.0, 0]]
    # ρ = 2 on the same ids also sees the prompt: ℓ0 = 1/2, ℓ1 = −0.5·2 = −1, ℓ2 = 2/2 = 1, ℓ3 untouched
    assert repetition_penalty(logits, torch.tensor([[1, 1, 2, 0, 2]]), 2.0).tolist() == [[0.5, -1.0, 1.0, 0.0]]


# ---- 2. against Hugging Face ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(CONFIGS))
def test_greedy_equals_hugging_face(family):
    hf, model = _hf(family)
    ids = _prompt()
    ones = torch.ones_like(ids)
    got = generate(model, ids, GenerationConfig(max_new_tokens=8, eos_ids=(2,)))
    assert got.shape == (B, T + 8)
    assert torch.equal(got, hf.generate(ids, attention_mask=ones, max_new_tokens=8, do_sample=False))
    # with ρ, n_min and a stop token the model emits early (ours without n_min, picked so both rows differ)
    stop = int(got[0, T + 1])
    cfg = GenerationConfig(max_new_tokens=8, min_new_tokens=3, repetition_penalty=1.3, eos_ids=(stop,), pad_id=5)
    want = hf.generate(ids, attention_mask=ones, max_new_tokens=8, min_new_tokens=3, repetition_penalty=1.3,
                       eos_token_id=stop, pad_token_id=5, do_sample=False)
    assert torch.equal(generate(model, ids, cfg), want)


@pytest.mark.parametrize("eos, lam, length, padded", [((2,), 0.7, T + 10, False), ((81, 5), 0.7, T + 1, False),
                                                      ((81,), 2.0, T + 10, True), ((13, 38), 0.7, T + 3, True)])
def test_beam_search_equals_hugging_face(eos, lam, length, padded):
    """b_beam = 3, early_stopping=False. Stop token 2 is never picked (all run to n_max); 81 or 5 ends both prompts'
    best hypothesis at once and the early-stop heuristic ends the search; with λ_len = 2, prompt 0 ends after 2 tokens
    (padded) and prompt 1 runs to n_max; 13 or 38 ends both early, at different lengths (two stop ids: 3·b_beam
    candidates a step)."""
    hf, model = _hf("llama")
    ids = _prompt()
    cfg = GenerationConfig(max_new_tokens=10, num_beams=3, length_penalty=lam, eos_ids=eos, pad_id=7)
    got = generate(model, ids, cfg)
    want = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, num_beams=3, length_penalty=lam,
                       early_stopping=False, eos_token_id=list(eos), pad_token_id=7, do_sample=False)
    assert torch.equal(got, want)
    assert (got.shape[1], bool((got == 7).any())) == (length, padded)
    assert not torch.equal(got, generate(model, ids, GenerationConfig(max_new_tokens=10, eos_ids=eos, pad_id=7)))


# ---- 3. sampling -----------------------------------------------------------------------------------------------------


def test_sampling_is_seeded_and_top_k_1_is_greedy():
    _, model = _hf("llama")
    ids = _prompt()
    cfg = GenerationConfig(max_new_tokens=12, do_sample=True, temperature=1.5)
    first = generate(model, ids, cfg, seed=3)
    assert torch.equal(first, generate(model, ids, cfg, seed=3))
    assert not torch.equal(first, generate(model, ids, cfg, seed=4))
    greedy = generate(model, ids, GenerationConfig(max_new_tokens=12))
    one = dataclasses.replace(cfg, top_k=1, top_p=0.5, min_p=0.2)
    assert torch.equal(generate(model, ids, one, seed=5), greedy) and not torch.equal(first, greedy)


def test_sampling_follows_the_warped_distribution():
    """800 one-token draws with T = 2 and top-k = 3: only the 3 most likely tokens, each at softmax(ℓ/T) over them."""
    _, model = _hf("llama")
    ids = _prompt(1).expand(800, T)
    out = generate(model, ids, GenerationConfig(max_new_tokens=1, do_sample=True, temperature=2.0, top_k=3), seed=0)
    with torch.no_grad():
        logits = model(ids[:1])[0, -1]
    best = logits.topk(3)
    freq = torch.stack([(out[:, -1] == v).float().mean() for v in best.indices])
    assert freq.sum() == 1
    assert (freq - (best.values / 2).softmax(-1)).abs().max() < 0.06  # ~4 standard errors at n = 800


# ---- 4. cached = recomputed, and the cache's bytes ------------------------------------------------------------------


def _linear_spec() -> tm.ModelSpec:
    return tm.ModelSpec(name="tiny-linear", family="llama", n_layers=2, d_model=32, n_heads=4, n_kv_heads=2,
                        head_dim=8, vocab_size=V, max_context=64,
                        layers=(tm.LayerSpec(attention="linear", d_ff=48), tm.LayerSpec(attention="full", d_ff=48)))


CACHE_SPECS = {
    "full": lambda: tm.load_model(CONFIGS["llama"]),
    "window": lambda: tm.load_model(dict(model_type="mistral", **_LLAMA, sliding_window=4)),
    "mla": lambda: tm.load_model(dict(CONFIGS["deepseek_v3"], first_k_dense_replace=2)),  # MLA, dense MLPs (fast)
    "linear": _linear_spec,
}


@pytest.mark.parametrize("kind", list(CACHE_SPECS))
def test_cached_generation_equals_recompute_and_holds_the_analyzed_bytes(kind):
    """Prompt T = 6, 10 new tokens (the window of 4 wraps its ring): greedy with penalties, sampling and beams give
    the same tokens with and without the cache; afterwards the cache holds L = T + n − 1 tokens (B rows, B·b_beam
    with beams), exactly analyze()'s memory.kv_cache_bytes for an fp32 cache."""
    spec = CACHE_SPECS[kind]()
    torch.manual_seed(0)
    model = ref.build(spec).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p)) if p.ndim == 1 else p.normal_(0, 0.08)
    ids = _prompt(seed=2)
    configs = [GenerationConfig(max_new_tokens=10, repetition_penalty=1.2, presence_penalty=0.3),
               GenerationConfig(max_new_tokens=10, do_sample=True, temperature=1.3, top_p=0.9, frequency_penalty=0.2),
               GenerationConfig(max_new_tokens=10, num_beams=3, length_penalty=0.7)]
    for cfg in configs:
        cache = model.new_cache()
        cached = generate(model, ids, cfg, seed=7, cache=cache)
        assert torch.equal(cached, generate(model, ids, cfg, seed=7, use_cache=False)), cfg
        assert cached.shape == (B, T + 10) and cache.seen == T + 10 - 1
        rows = B * cfg.num_beams
        kv = tm.analyze(spec, batch=rows, context=cache.seen, kv_dtype="fp32")["memory.kv_cache_bytes"]
        assert cache.nbytes() == kv > 0


def test_cache_select_reorders_every_kind_of_layer_cache():
    """select(idx) keeps rows idx, in order: rows of a 3-row prefill, picked [2, 0, 0], decode as those prompts do."""
    for kind in ("window", "mla", "linear"):
        model = ref.build(CACHE_SPECS[kind]()).eval()
        ids = _prompt(3, seed=4)
        with torch.no_grad():
            cache = model.new_cache()
            model(ids, cache)
            cache.select(torch.tensor([2, 0, 0]))
            step = model(torch.full((3, 1), 9), cache)[:, -1]
            want = model(torch.cat((ids[[2, 0, 0]], torch.full((3, 1), 9)), dim=1))[:, -1]
        assert (step - want).abs().max() <= 1e-5, kind


# ---- 5. stop tokens, n_min, validation ----------------------------------------------------------------------------


def test_stop_tokens_stop_and_pad_and_min_new_tokens_suppresses_them():
    _, model = _hf("qwen3")
    ids = _prompt()
    free = generate(model, ids, GenerationConfig(max_new_tokens=8))
    new0, new1 = free[0, T:].tolist(), free[1, T:].tolist()
    stop = next(t for t in new0[1:] if t not in new1 and t != new0[0])  # row 0 emits it after step 1, row 1 never
    at = new0.index(stop)
    out = generate(model, ids, GenerationConfig(max_new_tokens=8, eos_ids=(stop,), pad_id=0))
    assert out[0, T:].tolist() == new0[:at + 1] + [0] * (7 - at) and torch.equal(out[1], free[1])
    # both rows stop: the output ends at the later stop, before n_max
    both = (new0[at], new1[2])
    out = generate(model, ids, GenerationConfig(max_new_tokens=8, eos_ids=both, pad_id=0))
    assert out.shape[1] < T + 8 and set(out[:, -1].tolist()) <= {*both, 0}
    # n_min = at + 2: no stop token among the first at + 2 new tokens of either row
    late = generate(model, ids, GenerationConfig(max_new_tokens=8, min_new_tokens=at + 2, eos_ids=both, pad_id=0))
    assert not any(t in both for t in late[:, T:T + at + 2].flatten().tolist())


@pytest.mark.parametrize("field, value, allowed", [
    ("max_new_tokens", 0, "integer from 1"), ("min_new_tokens", 9, "integer from 0 to 8"),
    ("temperature", 0.0, "above 0"), ("top_k", 0, "integer from 1"), ("top_p", 0.0, "above 0"),
    ("top_p", 1.5, "at most 1"), ("min_p", -0.1, "from 0"), ("repetition_penalty", 0, "above 0"),
    ("presence_penalty", 3.0, "from -2 to 2"), ("num_beams", 0, "integer from 1"), ("eos_ids", (1, -2), "token ids"),
    ("do_sample", "yes", "true or false"), ("pad_id", -1, "integer from 0")])
def test_bad_settings_name_field_value_and_what_is_allowed(field, value, allowed):
    with pytest.raises(TmathError, match=allowed) as e:
        GenerationConfig(**{"max_new_tokens": 8, field: value})
    assert e.value.field == field and e.value.value == value


def test_bad_combinations():
    with pytest.raises(TmathError, match="beam sampling") as e:
        GenerationConfig(num_beams=2, do_sample=True)
    assert e.value.field == "num_beams"
    with pytest.raises(dataclasses.FrozenInstanceError):
        GenerationConfig().top_k = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        GenerationConfig(8)  # keyword-only
    _, model = _hf("llama")
    with pytest.raises(TmathError, match="below V = 96") as e:
        generate(model, _prompt(), GenerationConfig(eos_ids=(96,)))
    assert e.value.field == "eos_ids"


@pytest.mark.parametrize("family", ["mistral", "phi3", "olmo2", "gemma2", "gpt2", "gpt_neox", "mixtral", "qwen3_moe",
                                    "qwen2_moe", "gpt_oss", "deepseek_v2"])
def test_greedy_equals_hugging_face_for_every_other_family(family):
    """The families of the reference models' equality tests that the test above leaves out: the same greedy tokens
    as Hugging Face's generate on the same weights (windows, soft-caps, parallel blocks, MoE routers, MLA)."""
    from test_reference_dense import CONFIGS as DENSE
    from test_reference_models_moe import CONFIGS as MOE

    config = DENSE.get(family) or MOE[family]
    hf, hf_cfg = hf_model(config, buffers=family.startswith("deepseek"))
    model = ours(config, hf, hf_cfg)[1]
    ids = _prompt()
    want = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    assert torch.equal(generate(model, ids, GenerationConfig(max_new_tokens=8, eos_ids=(2,))), want)
