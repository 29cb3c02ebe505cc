"""Encoder-only (BERT) and encoder–decoder (T5) models and the prefix-LM mask: our modules equal Hugging Face's, and
the analyzer equals both (parameters, FLOPs, cross-attention cache bytes, saved activation bytes)."""

from dataclasses import replace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import transformer_math as tm
from reference_support import saved_bytes
from transformer_math import reference as ref
from transformer_math.errors import TmathError

pytestmark = pytest.mark.torch

BERT = {"model_type": "bert", "vocab_size": 101, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 3}
T5 = {"model_type": "t5", "vocab_size": 100, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2,
      "num_decoder_layers": 3, "num_heads": 4, "relative_attention_num_buckets": 16,
      "relative_attention_max_distance": 20}
T5_GATED = {**T5, "num_decoder_layers": 2, "d_kv": 12, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}
EAGER = tm.Conventions(activations="eager")


def _hf(config: dict):
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForSeq2SeqLM

    cfg = dict(config)
    hf_cfg = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    auto = AutoModelForMaskedLM if config["model_type"] == "bert" else AutoModelForSeq2SeqLM
    torch.manual_seed(0)
    model = auto.from_config(hf_cfg, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():  # every weight random: a swapped tensor cannot hide behind its initial value
        for t in model.parameters():
            t.add_(0.1 * torch.randn_like(t)) if t.ndim == 1 else t.normal_(0, 0.08)
    ours = ref.build(tm.load_model(config), ref.details_from_hf(hf_cfg.to_dict())).eval()
    ref.load_hf_state_dict(ours, model.state_dict())
    return model, ours


def _ids(V: int, B: int, T: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("config", [BERT, {**BERT, "tie_word_embeddings": False, "hidden_act": "relu"}],
                         ids=["tied", "untied-relu"])
def test_bert_equals_hugging_face(config):
    hf, ours = _hf(config)
    ids, types = _ids(101, 2, 30), _ids(config.get("type_vocab_size", 2), 2, 30, seed=2)
    with torch.no_grad():
        diff = (hf(input_ids=ids, token_type_ids=types).logits - ours(ids, types)).abs().max().item()
    assert diff <= 1e-5
    # transformers 5 registers a second, unused decoder bias on an untied head: the only parameter we do not count
    unused = 0 if config.get("tie_word_embeddings", True) else config["vocab_size"]
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == tm.analyze(config)["params.total"] == sum(p.numel() for p in hf.parameters()) - unused


@pytest.mark.parametrize("config", [T5, T5_GATED], ids=["relu-tied", "gated-untied"])
def test_t5_equals_hugging_face_and_caches(config):
    """Logits equal HF's; decoding token by token through the self- and cross-attention caches equals the whole
    forward, and the caches hold exactly the analyzer's bytes (fp32: 4 bytes per element)."""
    hf, ours = _hf(config)
    ids, dec = _ids(100, 2, 30), _ids(100, 2, 7, seed=3)
    with torch.no_grad():
        full = ours(ids, dec)
        assert (hf(input_ids=ids, decoder_input_ids=dec).logits - full).abs().max().item() <= 1e-5
        cache = ours.new_cache()
        steps = [ours(ids, dec[:, :3], cache)] + [ours(None, dec[:, t:t + 1], cache) for t in range(3, 7)]
    assert (torch.cat(steps, 1) - full).abs().max().item() <= 1e-5
    r = tm.analyze(config, batch=2, context=30, decoder_tokens=7, kv_dtype="fp32")
    assert cache.nbytes() == r["memory.kv_cache_bytes"]
    assert sum(p.numel() for p in ours.parameters()) == r["params.total"]


def test_t5_untied_head_in_transformers_5():
    """transformers 5 ties T5's LM head whatever the config says (configuration_t5.py forces tie_word_embeddings);
    a T5 v1.1 / Flan-T5 checkpoint stores its own lm_head, which we count: exactly V·d more than HF builds."""
    hf, ours = _hf(T5_GATED)
    hf_params = sum(p.numel() for p in hf.parameters())
    assert tm.analyze(T5_GATED)["params.total"] - hf_params == T5_GATED["vocab_size"] * T5_GATED["d_model"]


def _flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return int(counter.get_total_flops())


@pytest.mark.parametrize("config", [BERT, T5, T5_GATED], ids=["bert", "t5", "t5-gated"])
def test_analyzer_flops_equal_our_modules(config):
    """FlopCounterMode over our forward (SDPA in its math form) equals flops.prefill; for T5 the encoder reads 30
    tokens and the decoder 7, and a decode step after them equals flops.decode_token."""
    model = ref.build(tm.load_model(config)).eval()
    for module in model.modules():
        if isinstance(module, ref.Attention):
            module.use_sdpa = False
    ids = _ids(100, 2, 30)
    if config["model_type"] == "bert":
        assert _flops(lambda: model(ids)) == tm.analyze(config, batch=2, context=30)["flops.prefill"]
        return
    dec = _ids(100, 2, 7, seed=3)
    r = tm.analyze(config, batch=2, context=30, decoder_tokens=7)
    assert _flops(lambda: model(ids, dec)) == r["flops.prefill"]
    cache = model.new_cache()
    with torch.no_grad():
        model(ids, dec, cache)
    assert _flops(lambda: model(None, dec[:, :1], cache)) == r["flops.decode_token"]


@pytest.mark.parametrize("name", ["bert-base-uncased", "t5-small"])
def test_presets_equal_hugging_face_on_meta(name):
    """The full-size presets built by transformers on the meta device: parameters, prefill FLOPs, the T5 caches and
    the FLOPs of one decode step, exactly."""
    from transformers import AutoModelForMaskedLM, AutoModelForSeq2SeqLM

    from transformer_math.checks.execution import count_params, hf_text_config

    config = tm.load_preset(name)["config"]
    auto = AutoModelForMaskedLM if config["model_type"] == "bert" else AutoModelForSeq2SeqLM
    with torch.device("meta"):
        model = auto.from_config(hf_text_config(config), dtype=torch.bfloat16, attn_implementation="eager")
    B, T, T_dec = 2, 40, 9
    ids = torch.zeros((B, T), dtype=torch.long, device="meta")
    assert count_params(model)[0] == tm.analyze(name)["params.total"]
    if config["model_type"] == "bert":
        assert _flops(lambda: model(input_ids=ids)) == tm.analyze(name, batch=B, context=T)["flops.prefill"]
        return
    r = tm.analyze(name, batch=B, context=T, decoder_tokens=T_dec)
    dec = torch.zeros((B, T_dec), dtype=torch.long, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(input_ids=ids, decoder_input_ids=dec, use_cache=True)
    assert counter.get_total_flops() == r["flops.prefill"]
    cache = out.past_key_values
    kv = sum(t.numel() * t.element_size() for c in (cache.self_attention_cache, cache.cross_attention_cache)
             for layer in c.layers for t in (layer.keys, layer.values))
    assert kv == r["memory.kv_cache_bytes"]
    step = _flops(lambda: model(encoder_outputs=(out.encoder_last_hidden_state,), decoder_input_ids=dec[:, :1],
                                cache=cache, use_cache=True))
    assert step == r["flops.decode_token"]


@pytest.mark.parametrize("config,B,T,T_dec", [
    (BERT, 2, 24, None), ({**BERT, "num_hidden_layers": 3, "vocab_size": 201}, 3, 30, None),
    (T5, 2, 24, 10), (T5_GATED, 3, 30, 13), ({**T5, "d_ff": 128, "num_layers": 3}, 2, 24, 13)])
def test_eager_activation_bytes_equal_hugging_face(config, B, T, T_dec):
    """Saved tensors of one bf16 training forward (loss included) of the HF eager model on the meta device equal
    memory.activations_bytes with the eager profile: post-add LayerNorms, bf16 softmax, the MLM head (BERT); T5's
    RMS norms, cross-attention, relative-position bucket ids and the seq2seq loss."""
    from transformers import AutoModelForMaskedLM, AutoModelForSeq2SeqLM

    from transformer_math.checks.execution import hf_text_config

    bert = config["model_type"] == "bert"
    with torch.device("meta"):
        model = (AutoModelForMaskedLM if bert else AutoModelForSeq2SeqLM).from_config(
            hf_text_config(config), dtype=torch.bfloat16, attn_implementation="eager")
    model.eval()  # no dropout masks: the formulas count none (modern LLMs train without dropout)

    def zeros(n: int) -> torch.Tensor:
        return torch.zeros((B, n), dtype=torch.long, device="meta")

    if bert:
        measured = saved_bytes(model, lambda: model(input_ids=zeros(T), labels=zeros(T)))
        ours = tm.analyze(config, batch=B, context=T, conventions=EAGER)["memory.activations_bytes"]
    else:
        measured = saved_bytes(model, lambda: model(input_ids=zeros(T), decoder_input_ids=zeros(T_dec),
                                                     labels=zeros(T_dec), use_cache=False))
        ours = tm.analyze(config, batch=B, context=T, decoder_tokens=T_dec,
                          conventions=EAGER)["memory.activations_bytes"]
    assert measured == ours


def test_prefix_lm_mask():
    """A prefix-LM with an empty prefix is the causal LM; with a prefix P the prefix tokens also see later prefix
    tokens (so only their logits change), and the unmasked pairs the mask lets through are flops.pairs.prefix's
    P² + (T(T+1) − P(P+1))/2 under the causal convention."""
    config = {"model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
    spec = tm.load_model(config)
    model = ref.build(spec).eval()
    ids = _ids(64, 2, 12)
    with torch.no_grad():
        causal, empty, pre = model(ids), model(ids, prefix=0), model(ids, prefix=5)
    assert torch.equal(causal, empty)
    assert (pre[:, :4] - causal[:, :4]).abs().max() > 1e-4  # prefix tokens now also read later prefix tokens
    pos = torch.arange(12)
    pairs = int(ref.attention_mask(pos, pos, prefix=5).sum())
    prefix_spec = replace(spec, prefix_length=5)
    r = tm.analyze(prefix_spec, batch=1, context=12, conventions=tm.Conventions(attention="causal"))
    h, d_h = spec.n_heads, spec.head_dim
    scores = sum(op["flops"] for op in r.per_op_table()["prefill full+dense ×2"] if op["op"].startswith("attention.s"))
    assert pairs == 5 * 5 + (12 * 13 - 5 * 6) // 2 == scores // (2 * h * d_h)
    prefix_model = ref.build(prefix_spec).eval()
    prefix_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(prefix_model(ids), pre)  # the spec's prefix is the default


@pytest.mark.parametrize("change,field", [
    (dict(prefix_length=4, arch="encoder"), "prefix_length"),
    (dict(arch="encoder_decoder"), "encoder_layers"),
    (dict(arch="sideways"), "arch"),
    (dict(norm_placement="post_add", norms_per_layer=3), "norms_per_layer"),
])
def test_spec_rejects_inconsistent_stacks(change, field):
    spec = tm.load_model(BERT)
    with pytest.raises(TmathError) as e:
        replace(spec, **change)
    assert e.value.field == field


def test_decoder_tokens_only_for_encoder_decoder():
    with pytest.raises(TmathError) as e:
        tm.analyze(BERT, decoder_tokens=8)
    assert e.value.field == "decoder_tokens"
    assert "flops.decode_token" not in tm.analyze(BERT) and "memory.kv_cache_bytes" not in tm.analyze(BERT)


def test_t5_greedy_decoding_equals_hugging_face():
    """Encode once, then one decoder token per step through the self- and cross-attention caches: the tokens
    Hugging Face's generate picks (decoder start 0, no stop token reached in 6 steps)."""
    # equal stacks: transformers 5.24 sizes the generation cache by num_layers, not num_decoder_layers
    hf, ours = _hf({**T5, "num_decoder_layers": 2, "decoder_start_token_id": 0, "eos_token_id": 99, "pad_token_id": 0})
    ids = _ids(100, 2, 30)
    want = hf.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
    out = torch.zeros((2, 1), dtype=torch.long)
    cache = ours.new_cache()
    with torch.no_grad():
        logits = ours(ids, out, cache)
        for _ in range(6):
            out = torch.cat((out, logits[:, -1].argmax(-1, keepdim=True)), dim=1)
            logits = ours(None, out[:, -1:], cache)
    assert want.shape == (2, 7) and torch.equal(out, want)
