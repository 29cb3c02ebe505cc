"""The model spec: one frozen description of an architecture in the symbols of docs/symbols.md.

Per-layer structure is data: every layer has an attention kind (full, sliding window S, chunked S,
with or without RoPE) and an MLP kind (dense with its own d_ff, or MoE). Everything the math needs is
here; nothing downstream reads a Hugging Face key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from functools import lru_cache

from transformer_math.errors import TmathError, check_int, check_number

MAX_SIZE = 10**7  # any width or count above this is a typo, not a model (largest real d is ~2.5·10^4)
MAX_LAYERS = 10**4
MAX_CONTEXT = 10**9


def sym(symbol: str, unit: str, doc: str) -> dict[str, str]:
    return {"symbol": symbol, "unit": unit, "doc": doc}


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerSpec:
    """One decoder layer: how it attends and which MLP it runs."""

    attention: str = field(default="full", metadata=sym(
        "-", "-", "full | sliding | chunked | linear (kernelized, a d_h×d_h state per KV head; no window)"))
    window: int | None = field(default=None, metadata=sym("S", "tokens", "window or chunk span"))
    rope: bool = field(default=True, metadata=sym("-", "-", "False for NoPE layers"))
    mlp: str = field(default="dense", metadata=sym("-", "-", "dense | moe"))
    d_ff: int = field(default=0, metadata=sym("d_ff", "features", "dense MLP width of this layer"))

    @property
    def kind(self) -> str:
        """Short name of the layer kind, e.g. 'sliding(128)+moe'."""
        att = self.attention if self.window is None else f"{self.attention}({self.window})"
        return f"{att}{'' if self.rope else '/nope'}+{self.mlp}"


@dataclass(frozen=True, kw_only=True, slots=True)
class MoESpec:
    n_experts: int = field(metadata=sym("E", "#", "routed experts per MoE layer"))
    experts_per_token: int = field(metadata=sym("e", "#", "routed experts each token uses (top-e)"))
    d_moe: int = field(metadata=sym("d_moe", "features", "expert MLP width"))
    n_shared: int = field(default=0, metadata=sym("1_shared", "#", "shared experts"))
    d_shared: int = field(default=0, metadata=sym("d_shared", "features", "width of one shared expert"))
    router_bias: bool = False
    expert_bias: bool = False
    shared_gate: bool = field(default=False, metadata=sym(
        "1_sgate", "-", "a sigmoid gate Linear(d, 1) scales the shared experts' output (Qwen2-MoE)"))
    scoring: str = field(default="softmax", metadata=sym("-", "-", "router scores: softmax | sigmoid"))
    norm_topk: bool = field(default=True, metadata=sym(
        "-", "-", "top-e weights renormalized to sum to 1 (HF norm_topk_prob; Mixtral always, Qwen2-MoE not)"))
    capacity_factor: float | None = field(default=None, metadata=sym(
        "C_cap", "-", "expert capacity factor: C_exp = ⌈C_cap·N·e/E⌉ slots per expert, each expert runs exactly "
        "C_exp rows (padding counted), overflow dropped (Switch Transformers); None: no capacity limit"))

    @property
    def shared_width(self) -> int:
        return self.n_shared * self.d_shared


@dataclass(frozen=True, kw_only=True, slots=True)
class MLASpec:
    """Multi-head latent attention (DeepSeek-V2/V3): low-rank Q and a compressed KV latent."""

    q_rank: int = field(metadata=sym("d_cq", "features", "query latent rank (0: full-rank W_Q)"))
    kv_rank: int = field(metadata=sym("d_c", "features", "KV latent rank, cached per token"))
    d_nope: int = field(metadata=sym("d_h^nope", "features", "per-head non-rotary q/k width"))
    d_rope: int = field(metadata=sym("d_h^rope", "features", "decoupled RoPE key width, cached per token"))
    d_v: int = field(metadata=sym("d_v", "features", "per-head value width"))


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelSpec:
    name: str = field(metadata=sym("-", "-", "model name"))
    family: str = field(metadata=sym("-", "-", "Hugging Face model_type the spec was read as"))
    n_layers: int = field(metadata=sym("N_L", "#", "decoder layers"))
    d_model: int = field(metadata=sym("d", "features", "hidden size"))
    n_heads: int = field(metadata=sym("h_q", "#", "query heads"))
    n_kv_heads: int = field(metadata=sym("h_kv", "#", "key/value heads"))
    head_dim: int = field(metadata=sym("d_h", "features", "per-head width"))
    vocab_size: int = field(metadata=sym("V", "tokens", "vocabulary size"))
    max_context: int = field(metadata=sym("L_max", "tokens", "maximum context"))
    n_up: int = field(default=2, metadata=sym("g_up", "#", "up-projection branches (2 = gated)"))
    activation: str = "silu"
    tie_embeddings: bool = field(default=False, metadata=sym("1_tie", "-", "LM head shares W_E"))
    learned_positions: bool = field(default=False, metadata=sym("-", "-", "learned absolute positions"))
    norm: str = field(default="rmsnorm", metadata=sym("Norm", "-", "rmsnorm | layernorm"))
    norms_per_layer: int = field(default=2, metadata=sym("n_norm", "#", "norms per layer"))
    norm_placement: str = field(default="pre", metadata=sym(
        "-", "-", "pre (norm before each block) | post (after it, OLMo-2) | sandwich (both, Gemma 2/3) | "
        "post_add (after the residual add: x ← Norm(x + Block(x)), the original Transformer and BERT)"))
    block: str = field(default="sequential", metadata=sym(
        "-", "-", "sequential | parallel (attention and MLP read the same input and add to one residual)"))
    qk_norm: bool = field(default=False, metadata=sym("-", "-", "learned q/k norms"))
    qk_norm_span: str = field(default="head", metadata=sym(
        "-", "-", "head (one d_h-wide scale each for q and k) | all (h_q·d_h and h_kv·d_h wide, OLMo-2)"))
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    sinks: bool = field(default=False, metadata=sym("-", "-", "learned per-head sink logits"))
    n_sink_tokens: int = field(default=0, metadata=sym("k_sinks", "tokens", "pinned sink tokens"))
    rope_theta: float | None = field(default=None, metadata=sym("θ_base", "-", "RoPE base"))
    rope_scaling: float | None = field(default=None, metadata=sym("s_rope", "-", "RoPE scaling factor"))
    rotary_fraction: float = field(default=1.0, metadata=sym("f_rot", "-", "share of d_h that RoPE rotates"))
    attn_softcap: float | None = field(default=None, metadata=sym(
        "c_attn", "-", "attention logits capped as c·tanh(x/c) (Gemma 2); no parameters, no matmul"))
    logit_softcap: float | None = field(default=None, metadata=sym(
        "c_logit", "-", "final logits capped as c·tanh(x/c) (Gemma 2); no parameters, no matmul"))
    moe: MoESpec | None = None
    mla: MLASpec | None = None
    layers: tuple[LayerSpec, ...] = ()
    arch: str = field(default="decoder", metadata=sym(
        "-", "-", "decoder (causal LM) | encoder (bidirectional, masked LM: BERT) | encoder_decoder (T5: `layers` "
        "are the decoder's, each also cross-attending to the output of `encoder_layers`)"))
    encoder_layers: tuple[LayerSpec, ...] = field(default=(), metadata=sym(
        "N_enc", "#", "encoder layers of an encoder_decoder model (bidirectional self-attention and an MLP)"))
    prefix_length: int = field(default=0, metadata=sym(
        "P_pfx", "tokens", "prefix-LM: the first P_pfx tokens attend to each other both ways (0: causal)"))
    token_types: int = field(default=0, metadata=sym("V_tt", "#", "token-type (segment) embeddings, BERT"))
    embedding_norm: bool = field(default=False, metadata=sym(
        "1_embnorm", "-", "a norm right after the embeddings (BERT)"))
    head_transform: bool = field(default=False, metadata=sym(
        "1_htf", "-", "the LM head first maps d → d, applies the activation and a norm (BERT's MLM head)"))
    lm_head_bias: bool = field(default=False, metadata=sym("-", "-", "a bias on the vocabulary projection (BERT)"))
    relative_buckets: int = field(default=0, metadata=sym(
        "n_rel", "#", "relative-position buckets: one learned bias per bucket and head, shared by all layers of a "
        "stack (T5); 0: none"))
    weight_dtype: str = field(default="bf16", metadata=sym("b_w", "bytes/elt", "checkpoint dtype"))
    quantized: tuple[tuple[str, str], ...] = ()  # (tensor group, dtype): kept in fp32, or from quantization_config
    read_keys: tuple[str, ...] = field(default=(), compare=False)
    ignored_keys: tuple[str, ...] = field(default=(), compare=False)
    near_miss_keys: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # (ignored, probably meant)
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __hash__(self) -> int:  # computed once: plans key their caches on the spec (61 layers hash slowly)
        return self._hash

    def __post_init__(self) -> None:
        for f in ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "vocab_size", "max_context",
                  "n_up", "norms_per_layer"):
            check_int(f, getattr(self, f), low=1, high=MAX_SIZE if f != "max_context" else MAX_CONTEXT)
        check_int("n_layers", self.n_layers, low=1, high=MAX_LAYERS)
        if self.n_heads % self.n_kv_heads:
            raise TmathError("n_kv_heads", self.n_kv_heads,
                             f"h_kv must divide h_q = {self.n_heads} (GQA groups of equal size)")
        if self.norm not in ("rmsnorm", "layernorm"):
            raise TmathError("norm", self.norm, "rmsnorm or layernorm")
        _check_choice("norm_placement", self.norm_placement, ("pre", "post", "sandwich", "post_add"))
        _check_arch(self)
        _check_choice("block", self.block, ("sequential", "parallel"))
        _check_choice("qk_norm_span", self.qk_norm_span, ("head", "all"))
        _check_fraction("rotary_fraction", self.rotary_fraction)
        for f in ("attn_softcap", "logit_softcap"):
            value = getattr(self, f)
            if value is not None:
                check_number(f, value, low=0, high=1e15, open_low=True)  # None: no soft-capping
        if len(self.layers) != self.n_layers:
            raise TmathError("layers", len(self.layers), f"one LayerSpec per layer: N_L = {self.n_layers}")
        for i, layer in self._all_layers():
            if layer.attention not in ("full", "sliding", "chunked", "linear"):
                raise TmathError(f"layers[{i}].attention", layer.attention, "full, sliding, chunked or linear")
            if layer.attention == "linear":  # a fixed-size state over every token: no window, no softmax
                _check_linear(self, i, layer)
            elif layer.attention != "full":
                check_int(f"layers[{i}].window", layer.window, low=1, high=10**9)
            if layer.mlp == "dense":
                check_int(f"layers[{i}].d_ff", layer.d_ff, low=1, high=MAX_SIZE)
            elif layer.mlp == "moe":
                if self.moe is None:
                    raise TmathError(f"layers[{i}].mlp", "moe", "an MoE layer needs the model's MoE settings")
            else:
                raise TmathError(f"layers[{i}].mlp", layer.mlp, "dense or moe")
        if self.moe is not None:
            m = self.moe
            check_int("n_experts", m.n_experts, low=1, high=MAX_SIZE)
            check_int("experts_per_token", m.experts_per_token, low=1, high=m.n_experts)
            check_int("d_moe", m.d_moe, low=1, high=MAX_SIZE)
            check_int("n_shared", m.n_shared, low=0, high=MAX_SIZE)
            if m.n_shared:
                check_int("d_shared", m.d_shared, low=1, high=MAX_SIZE)
            if m.shared_gate and not m.n_shared:
                raise TmathError("shared_gate", True, "a shared-expert gate needs a shared expert (n_shared ≥ 1)")
            _check_choice("scoring", m.scoring, ("softmax", "sigmoid"))
            if m.capacity_factor is not None:  # None: every routed assignment runs (no capacity limit)
                check_number("capacity_factor", m.capacity_factor, low=0, high=MAX_SIZE, open_low=True)
        if self.mla is not None:
            for f in ("kv_rank", "d_nope", "d_rope", "d_v"):
                check_int(f, getattr(self.mla, f), low=1, high=MAX_SIZE)
            check_int("q_rank", self.mla.q_rank, low=0, high=MAX_SIZE)
        object.__setattr__(self, "_hash", hash(tuple(getattr(self, f.name) for f in fields(self) if f.compare)))

    def _all_layers(self) -> list[tuple[str, LayerSpec]]:
        return [*((str(i), x) for i, x in enumerate(self.layers)),
                *((f"encoder {i}", x) for i, x in enumerate(self.encoder_layers))]

    # Derived symbols (docs/symbols.md).
    @property
    def causal(self) -> bool:
        """Whether the (decoder) stack predicts left to right; an encoder-only model attends both ways."""
        return self.arch != "encoder"

    @property
    def encoder_kinds(self) -> list[tuple[LayerSpec, int]]:
        """Distinct encoder layer kinds of an encoder_decoder model, with their counts."""
        return list(_kinds(self.encoder_layers))

    @property
    def gqa_group(self) -> int:
        """g_GQA = h_q / h_kv."""
        return self.n_heads // self.n_kv_heads

    @property
    def kv_dim(self) -> int:
        """h_kv·d_h: width of K (and of V) per token per layer."""
        return self.n_kv_heads * self.head_dim

    @property
    def layer_kinds(self) -> list[tuple[LayerSpec, int]]:
        """Distinct layer kinds with how many layers have each, in first-seen order."""
        return list(_kinds(self.layers))

    @property
    def n_moe_layers(self) -> int:
        """N_L,moe."""
        return sum(n for layer, n in _kinds(self.layers) if layer.mlp == "moe")

    def symbols(self) -> dict[str, object]:
        """The spec's values keyed by symbol, for display."""
        out: dict[str, object] = {}
        for obj in (self, self.moe, self.mla):
            if obj is None:
                continue
            for f in fields(obj):
                s = f.metadata.get("symbol")
                if s and s != "-":
                    value = getattr(obj, f.name)
                    out[s] = len(value) if isinstance(value, tuple) else value  # N_enc: a stack of layers
        return out


@lru_cache(maxsize=256)
def _kinds(layers: tuple[LayerSpec, ...]) -> tuple[tuple[LayerSpec, int], ...]:
    """Counted once per stack: plans ask for the kinds thousands of times, and a stack may hold 10^4 layers."""
    return tuple(Counter(layers).items())


def _check_arch(s: ModelSpec) -> None:
    """Encoders attend both ways and keep no cache; cross-attention needs an encoder; a prefix needs a decoder."""
    _check_choice("arch", s.arch, ("decoder", "encoder", "encoder_decoder"))
    if (s.arch == "encoder_decoder") != bool(s.encoder_layers):
        raise TmathError("encoder_layers", len(s.encoder_layers),
                         "at least one encoder layer for arch encoder_decoder, none otherwise")
    check_int("prefix_length", s.prefix_length, low=0, high=s.max_context)
    if s.prefix_length and s.arch != "decoder":
        raise TmathError("prefix_length", s.prefix_length, "0 unless arch is decoder (a prefix-LM is a decoder)")
    if s.prefix_length and any(x.attention != "full" for x in s.layers):
        raise TmathError("prefix_length", s.prefix_length, "0 unless every layer has full attention")
    check_int("token_types", s.token_types, low=0, high=MAX_SIZE)
    check_int("relative_buckets", s.relative_buckets, low=0, high=MAX_SIZE)
    if s.arch != "decoder":
        for i, layer in s._all_layers():
            if layer.attention != "full" or layer.mlp != "dense":
                raise TmathError(f"layers[{i}]", layer.kind, "full attention and a dense MLP in encoder models")
        if s.mla is not None or s.sinks or s.n_sink_tokens:
            raise TmathError("arch", s.arch, "decoder for MLA and attention sinks (encoders are plain attention)")
    if s.norm_placement == "post_add" and s.norms_per_layer != 2:
        raise TmathError("norms_per_layer", s.norms_per_layer, "2 with post_add norms (one after each add)")


def _check_linear(s: ModelSpec, i: str, layer: LayerSpec) -> None:
    """A linear-attention layer (Katharopoulos et al. 2020) attends to every token through its state."""
    if layer.window is not None:
        raise TmathError(f"layers[{i}].window", layer.window, "a linear-attention layer has no window (None)")
    if s.mla is not None:
        raise TmathError(f"layers[{i}].attention", "linear", "linear attention with MLA is not modelled")
    if s.sinks:
        raise TmathError("sinks", True, "learned sink logits need a softmax; linear-attention layers have none")


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise TmathError(name, value, " or ".join(allowed))


def _check_fraction(name: str, value: object) -> None:
    check_number(name, value, low=0, high=1, open_low=True)
