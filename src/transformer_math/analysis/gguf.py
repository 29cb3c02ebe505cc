"""GGUF whole-model schemes: which ggml tensor type llama.cpp's quantizer gives every tensor of a model.

`llama-quantize model-f16.gguf out.gguf Q4_K_M` does not store every weight as q4_k. For each tensor it runs
llama_tensor_get_type (src/llama-quant.cpp, ggml-org/llama.cpp @ 007dbbf3fd17eefe9b47fee45f48f7ba5e62b714):

* tensors of fewer than 2 dimensions (norm weights, biases, sinks) and the MoE router (ffn_gate_inp) are
  never quantized: they keep the converter's type, f32 (tensor_allows_quantization);
* output.weight — and token_embd.weight when the head is tied to it — become q6_k, unless the scheme's type
  is q8_0 (kept) or the row length is not a multiple of the block (q8_0);
* attn_v (and attn_kv_b, the MLA equivalent) and ffn_down get more bits in some layers. With
  use_more_bits(i, n) = i < n/8 or i >= 7n/8 or (i - n/8) % 3 == 2 (integer division): Q4_K_M and Q5_K_M
  give q6_k to those layers; Q4_K_S gives q5_k to the first 4 attn_v and to the ffn_down of the first n/8
  layers; Q3_K_M gives attn_v q5_k in the first 2 layers and q4_k after, ffn_down q5_k for the first n/16
  layers and q4_k after, attn_output q4_k; models with exactly 8 experts (Mixtral) get attn_v and attn_k
  at q8_0 and, for Q3_K_M/Q4_K_S/Q4_K_M, attn_output at q5_k; the 70B size class (llama and qwen2 with
  80 layers and grouped KV heads) gets attn_v q5_k where it would be q3_k or q4_k;
* last, a tensor whose row length (ne[0], the input width) is not a multiple of its type's block falls back
  (tensor_type_fallback): q2_k, q3_k → q4_0; q4_k → q5_0; q5_k → q5_1; q6_k → q8_0; f16 when even that fails.

Tensors are visited in layer order (llama-model-loader's weight_name_comparer sorts by the blk.N. number),
so the i-th attn_v is layer i's. Rules that need an importance matrix (Q4_0's ffn_down in the first n/8
layers becomes q4_1 only with --imatrix) are not applied: the numbers are those of a quantization without
one. Q6_K, Q8_0, Q4_0 and Q5_K_S change only the output tensor (and a tied embedding).

Each tensor's bytes are exact: rows × (ncols / g_blk) × S_blk with the ggml block sizes of units.GGUF_BLOCKS.
A .gguf file adds its header, metadata and tokenizer (a few MB) and pads each tensor to 32 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformer_math.config.spec import ModelSpec
from transformer_math.errors import TmathError
from transformer_math.units import GGUF_TYPES as GGUF_TYPES
from transformer_math.units import DType, parse_dtype

# llama_ftype_get_default_type (src/llama-quant.cpp): the type a scheme gives every tensor its rules leave alone.
SCHEMES = {"q3_k_m": "q3_k", "q4_k_s": "q4_k", "q4_k_m": "q4_k", "q5_k_s": "q5_k", "q5_k_m": "q5_k",
           "q6_k": "q6_k", "q8_0": "q8_0", "q4_0": "q4_0"}
FALLBACK = {"q2_k": "q4_0", "q3_k": "q4_0", "q4_k": "q5_0", "q5_k": "q5_1", "q6_k": "q8_0"}
F32 = "fp32"


@dataclass(frozen=True, slots=True)
class Tensor:
    """One weight tensor as a .gguf file stores it: ne[0] = cols (the input width), rows × cols × copies elements
    (copies: the experts of a 3-D expert tensor, or layers for the layer-independent count of 1-D tensors)."""

    group: str  # the memory group (analysis/params.py GROUPS)
    name: str  # the GGUF tensor name, e.g. blk.3.attn_v.weight
    category: str  # token_embd | output | attn_q | attn_k | attn_v | attn_output | ffn_up | ffn_gate | ffn_down | other
    layer: int  # -1 outside the blocks
    rows: int
    cols: int
    copies: int = 1
    quantizable: bool = True  # 2-D or 3-D weights; 1-D tensors and the router stay f32

    @property
    def elements(self) -> int:
        return self.rows * self.cols * self.copies


def tensors(s: ModelSpec) -> list[Tensor]:
    """Every weight matrix of the model with its GGUF name and shape, in the order llama-quantize visits them, then
    per memory group the rest of its parameters — norm scales, biases, sinks: tensors of one dimension, which
    llama-quantize never quantizes — as one f32 entry (the remainder of analysis/params.py by_group, so every
    parameter is counted exactly once whatever 1-D tensors a family adds)."""
    from transformer_math.analysis.params import by_group, params_breakdown

    if s.arch != "decoder":  # llama.cpp names encoder stacks (enc.blk.*, BERT's token types) its own way
        raise TmathError("weight_dtype", "a GGUF type or scheme", f"a decoder-only model ({s.name} is {s.arch}); "
                         "use a plain dtype (bf16, fp8, int8, int4, …)")
    d, h_q, h_kv, d_h = s.d_model, s.n_heads, s.n_kv_heads, s.head_dim
    out = [Tensor("embedding", "token_embd.weight", "token_embd", -1, s.vocab_size, d)]
    if s.learned_positions:
        out.append(Tensor("positions", "position_embd.weight", "other", -1, s.max_context, d, quantizable=False))
    if not s.tie_embeddings:
        out.append(Tensor("lm_head", "output.weight", "output", -1, s.vocab_size, d))
    for i, layer in enumerate(s.layers):
        b = f"blk.{i}."
        if s.mla is None:
            out += [Tensor("attention", b + "attn_q.weight", "attn_q", i, h_q * d_h, d),
                    Tensor("attention", b + "attn_k.weight", "attn_k", i, h_kv * d_h, d),
                    Tensor("attention", b + "attn_v.weight", "attn_v", i, h_kv * d_h, d),
                    Tensor("attention", b + "attn_output.weight", "attn_output", i, d, h_q * d_h)]
        else:
            m = s.mla
            qk = h_q * (m.d_nope + m.d_rope)
            if m.q_rank:
                out += [Tensor("attention", b + "attn_q_a.weight", "other", i, m.q_rank, d),
                        Tensor("attention", b + "attn_q_b.weight", "other", i, qk, m.q_rank)]
            else:
                out.append(Tensor("attention", b + "attn_q.weight", "attn_q", i, qk, d))
            out += [Tensor("attention", b + "attn_kv_a_mqa.weight", "other", i, m.kv_rank + m.d_rope, d),
                    Tensor("attention", b + "attn_kv_b.weight", "attn_v", i, h_q * (m.d_nope + m.d_v), m.kv_rank),
                    Tensor("attention", b + "attn_output.weight", "attn_output", i, d, h_q * m.d_v)]
        if layer.mlp == "dense":
            out += _ffn("mlp", b, "", i, d, layer.d_ff, s.n_up)
        else:
            m2 = s.moe
            assert m2 is not None
            out.append(Tensor("router", b + "ffn_gate_inp.weight", "other", i, m2.n_experts, d, quantizable=False))
            out += _ffn("experts", b, "_exps", i, d, m2.d_moe, s.n_up, copies=m2.n_experts)
            if m2.n_shared:
                out += _ffn("shared_experts", b, "_shexp", i, d, m2.shared_width, s.n_up)
    counted: dict[str, int] = {}
    for t in out:
        counted[t.group] = counted.get(t.group, 0) + t.elements
    for group, n in by_group(params_breakdown(s)).items():
        rest = n - counted.get(group, 0)
        if rest:
            out.append(Tensor(group, f"{group}: 1-D tensors (norms, biases, sinks)", "other", -1, 1, rest,
                              quantizable=False))
    return out


def _ffn(group: str, b: str, suffix: str, i: int, d: int, d_ff: int, n_up: int, copies: int = 1) -> list[Tensor]:
    up = [Tensor(group, f"{b}ffn_gate{suffix}.weight", "ffn_gate", i, d_ff, d, copies)] if n_up == 2 else []
    return up + [Tensor(group, f"{b}ffn_up{suffix}.weight", "ffn_up", i, d_ff, d, copies),
                 Tensor(group, f"{b}ffn_down{suffix}.weight", "ffn_down", i, d, d_ff, copies)]


def use_more_bits(i: int, n: int) -> bool:
    """llama-quant.cpp: the first and last eighth of the layers and every third layer between get more bits."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_type(s: ModelSpec, scheme: str, t: Tensor, i_attn_v: int) -> str:
    """The ggml type llama_tensor_get_type picks for tensor t under `scheme` (i_attn_v: attn_v tensors before it)."""
    if not t.quantizable:
        return F32
    base = SCHEMES[scheme]
    new = base
    n = s.n_layers
    n_expert = s.moe.n_experts if s.moe else 0
    if t.category == "output" or (t.category == "token_embd" and s.tie_embeddings):
        if t.cols % GGUF_TYPES[base].group_size or s.family == "falcon":  # type: ignore[operator]
            new = "q8_0"
        elif base != "q8_0":
            new = "q6_k"
    elif t.category == "attn_v":
        if scheme == "q3_k_m":
            new = "q5_k" if i_attn_v < 2 else "q4_k"
        elif scheme in ("q4_k_m", "q5_k_m") and use_more_bits(i_attn_v, n):
            new = "q6_k"
        elif scheme == "q4_k_s" and i_attn_v < 4:
            new = "q5_k"
        if n == 80 and s.family in ("llama", "qwen2") and s.n_kv_heads < s.n_heads and new in ("q3_k", "q4_k"):
            new = "q5_k"  # LLM_TYPE_70B
        if n_expert == 8:
            new = "q8_0"
    elif t.category == "attn_k":
        if n_expert == 8:
            new = "q8_0"
    elif t.category == "ffn_down":
        i = t.layer
        if scheme == "q3_k_m":
            new = "q5_k" if i < n // 16 else "q4_k"
        elif scheme in ("q4_k_m", "q5_k_m") and use_more_bits(i, n):
            new = "q6_k"
        elif scheme == "q4_k_s" and i < n // 8:
            new = "q5_k"
    elif t.category == "attn_output":
        if n_expert == 8:
            if scheme in ("q3_k_m", "q4_k_s", "q4_k_m"):
                new = "q5_k"
        elif scheme == "q3_k_m":
            new = "q4_k"
    if t.cols % GGUF_TYPES[new].group_size:  # type: ignore[operator]
        new = FALLBACK.get(new, new)
        if t.cols % GGUF_TYPES[new].group_size:  # type: ignore[operator]
            new = "fp16"
    return new


def assign(s: ModelSpec, scheme: str) -> list[tuple[Tensor, str]]:
    """(tensor, ggml type) for every tensor of the model under a GGUF scheme."""
    out = []
    i_attn_v = 0
    for t in tensors(s):
        out.append((t, tensor_type(s, scheme, t, i_attn_v)))
        if t.category == "attn_v":
            i_attn_v += 1
    return out


def scheme_dtypes(s: ModelSpec, scheme: str) -> dict[str, DType]:
    """Per memory group, a DType whose `mix` lists (type, elements, bytes): the group's bytes are exact sums."""
    mixes: dict[str, dict[str, list[int]]] = {}
    for t, typ in assign(s, scheme):
        n = t.elements
        acc = mixes.setdefault(t.group, {}).setdefault(typ, [0, 0])
        acc[0] += n
        acc[1] += parse_dtype(typ).tensor_bytes(t.cols) * t.rows * t.copies
    out: dict[str, DType] = {"*": parse_dtype("fp32")}
    for g, parts in mixes.items():
        mix = tuple((typ, n, b) for typ, (n, b) in parts.items())
        name = "+".join(typ for typ, _, _ in mix)
        out[g] = DType(name=f"{scheme}:{name}", bits=max(parse_dtype(typ).bits for typ, _, _ in mix), mix=mix)
    return out
