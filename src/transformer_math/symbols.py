"""The symbol dictionary of seed 000 as data: one record per symbol the project uses.

Each record ties a symbol to its code name (the spelling used in specs, formulas and the CLI), its plain
ASCII spelling, its LaTeX, its unit (from the seed's unit key) and the seed section it belongs to.
Symbols the project adds on top of the seed carry a section starting with "project".
`docs/symbols.md` is generated from this module by `scripts/gen_symbols_doc.py`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["Symbol", "SYMBOLS", "UNITS", "lookup", "render_table"]

# The seed's unit key, plus "pairs" for the project's attention pair count.
UNITS = frozenset({"-", "#", "features", "tokens", "bytes", "bytes/elt", "bits", "parameters", "FLOPs",
                   "FLOP/s", "bytes/s", "s", "tokens/s", "FLOPs/byte", "pairs"})


@dataclass(frozen=True, kw_only=True, slots=True)
class Symbol:
    """One entry of the dictionary."""

    code: str  # snake_case name used in code (conventions.md where it gives one)
    ascii: str  # plain-ASCII spelling of the symbol, e.g. "h_kv", "theta_base"
    latex: str  # LaTeX body without dollar signs
    unit: str  # one of UNITS
    meaning: str  # one-line description
    section: str  # e.g. "§1 topology" or "project (MLA)"


_S1, _S2, _S3, _S5, _S6 = "§1 topology", "§2 position & span", "§3 MLP", "§5 embeddings", "§6 MoE"
_S7, _S8, _S9, _S10 = "§7 precision", "§8 training", "§9 parallelism", "§10 parameters"
_S11, _S12, _S13 = "§11 memory", "§12 FLOPs", "§13 throughput"

# (code, ascii, latex, unit, section, meaning)
_ROWS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("n_layers", "N_L", r"N_L", "#", _S1, "number of decoder blocks stacked in the model"),
    ("d_model", "d", r"d", "features", _S1, "width of the residual stream (hidden size)"),
    ("n_heads", "h_q", r"h_q", "#", _S1, "attention heads that produce queries"),
    ("n_kv_heads", "h_kv", r"h_{kv}", "#", _S1, "heads that produce keys and values (h_q for MHA, 1 for MQA)"),
    ("gqa_group", "g_GQA", r"g_{\text{GQA}}", "-", _S1, "query heads sharing one KV head: h_q / h_kv"),
    ("head_dim", "d_h", r"d_h", "features", _S1, "width of one attention head; often d / h_q but not always"),
    ("v_head_dim", "d_v", r"d_v", "features", _S1, "width of one value head when it differs from d_h (MLA)"),
    ("max_context", "L_max", r"L_{\max}", "tokens", _S2, "longest context the model is configured for"),
    ("context", "L", r"L", "tokens", _S2, "tokens already in the cache at the current decode step"),
    ("window", "S", r"S", "tokens", _S2, "span of a sliding-window or chunked local attention layer"),
    ("n_sink_tokens", "k_sinks", r"k_{\text{sinks}}", "tokens", _S2,
     "leading tokens always kept visible (StreamingLLM-style attention sinks)"),
    ("rope_dim", "d_rope", r"d_{\text{rope}}", "features", _S2, "channels of a head that RoPE rotates"),
    ("rope_theta", "theta_base", r"\theta_{\text{base}}", "-", _S2, "base of the RoPE frequency ladder"),
    ("rope_scaling", "s_rope", r"s_{\text{rope}}", "-", _S2, "factor stretching RoPE positions for longer contexts"),
    ("d_ff", "d_ff", r"d_{\text{ff}}", "features", _S3, "hidden width of a dense MLP"),
    ("ff_ratio", "r_ff", r"r_{\text{ff}}", "-", _S3, "MLP widening factor: d_ff / d"),
    ("n_up", "g_up", r"g_{\text{up}}", "#", _S3,
     "parallel input projections of the MLP: 1 plain, 2 gated (SwiGLU/GeGLU)"),
    ("vocab_size", "V", r"V", "tokens", _S5, "number of distinct tokens the tokenizer can emit"),
    ("tie_embeddings", "1_tie", r"\mathbb{1}_{\text{tie}}", "-", _S5,
     "1 when the output head reuses the input embedding matrix, else 0"),
    ("n_experts", "E", r"E", "#", _S6, "routed experts in one MoE layer (1 for dense models)"),
    ("experts_per_token", "e", r"e", "#", _S6, "routed experts each token is sent to (top-e)"),
    ("n_moe_layers", "N_L,moe", r"N_{L,\text{moe}}", "#", _S6, "layers whose MLP is a mixture of experts"),
    ("d_moe", "d_moe", r"d_{\text{moe}}", "features", _S6, "hidden width of one expert's MLP"),
    ("n_shared_experts", "1_shared", r"\mathbb{1}_{\text{shared}}", "-", _S6,
     "shared experts every token passes through (0 when absent)"),
    ("bytes_per_elt", "b", r"b", "bytes/elt", _S7, "storage size of one element of a given dtype (bf16: 2)"),
    ("weight_dtype", "b_w", r"b_w", "bytes/elt", _S7, "bytes per stored weight, set by the weight dtype"),
    ("act_dtype", "b_a", r"b_a", "bytes/elt", _S7, "bytes per activation element, set by the compute dtype"),
    ("kv_dtype", "b_kv", r"b_{kv}", "bytes/elt", _S7, "bytes per cached key/value element, set by the cache dtype"),
    ("adam_m_bytes", "b_m", r"b_m", "bytes/elt", _S7, "bytes per element of Adam's running mean of gradients"),
    ("adam_v_bytes", "b_v", r"b_v", "bytes/elt", _S7, "bytes per element of Adam's running mean of squared gradients"),
    ("weight_bits", "q_w", r"q_w", "bits", _S7, "bits per quantized weight, before group constants"),
    ("kv_bits", "q_kv", r"q_{kv}", "bits", _S7, "bits per quantized cache element, before group constants"),
    ("quant_group_size", "g_q", r"g_q", "#", _S7, "elements that share one quantization scale"),
    ("zero_points", "1_zp", r"\mathbb{1}_{\text{zp}}", "-", _S7,
     "1 when each group stores an offset besides its scale"),
    ("micro_batch", "B_seq", r"B_{\text{seq}}", "#", _S8, "sequences in one microbatch on one device"),
    ("train_seq_len", "L_train", r"L_{\text{train}}", "tokens", _S8, "length of each training sequence"),
    ("grad_accum", "A", r"A", "#", _S8, "microbatches summed before each optimizer update"),
    ("n_gpus", "n_GPU", r"n_{\text{GPU}}", "#", _S8, "accelerators taking part in training"),
    ("train_tokens", "T_train", r"T_{\text{train}}", "tokens", _S8, "tokens consumed over the whole training run"),
    ("data_parallel", "D_p", r"D_p", "#", _S9, "model replicas each fed a different slice of the batch"),
    ("tensor_parallel", "T_p", r"T_p", "#", _S9, "devices splitting each weight matrix"),
    ("pipeline_parallel", "P_p", r"P_p", "#", _S9, "devices each holding a contiguous run of layers"),
    ("sequence_parallel", "S_p", r"S_p", "#", _S9, "devices splitting the sequence dimension"),
    ("expert_parallel", "E_p", r"E_p", "#", _S9, "devices sharing out the experts of an MoE layer"),
    ("peak_flops", "F_peak", r"F_{\text{peak}}", "FLOP/s", _S9,
     "datasheet matrix throughput of one device (bf16/fp16)"),
    ("hbm_bw", "BW_HBM", r"\text{BW}_{\text{HBM}}", "bytes/s", _S9, "memory bandwidth between a device and its HBM"),
    ("nvlink_bw", "BW_NVLink", r"\text{BW}_{\text{NVLink}}", "bytes/s", _S9, "bandwidth between devices inside a node"),
    ("nic_bw", "BW_NIC", r"\text{BW}_{\text{NIC}}", "bytes/s", _S9, "network bandwidth between nodes"),
    ("compute_util", "eta_compute", r"\eta_{\text{compute}}", "-", _S9, "share of F_peak actually reached"),
    ("bw_util", "eta_bw", r"\eta_{\text{bw}}", "-", _S9, "share of BW_HBM actually reached"),
    ("params_total", "P", r"P", "parameters", _S10, "every registered parameter, tied matrices once"),
    ("params_active", "P_active", r"P_{\text{active}}", "parameters", _S10,
     "parameters one token touches: all non-routed ones plus e/E of the routed experts"),
    ("params_token", "P_tok", r"P_{\text{tok}}", "parameters", _S10,
     "input embedding plus output head, one matrix when tied"),
    ("params_expert", "P_expert", r"P_{\text{expert}}", "parameters", _S10, "weights of a single expert MLP"),
    ("weights_bytes", "M_param", r"M_{\text{param}}", "bytes", _S11, "memory for one copy of the model weights"),
    ("optimizer_bytes", "M_opt", r"M_{\text{opt}}", "bytes", _S11, "memory for Adam's state (moments, master copy)"),
    ("grad_bytes", "M_grad", r"M_{\text{grad}}", "bytes", _S11, "memory for one full set of gradients, unsharded"),
    ("activation_bytes", "M_act", r"M_{\text{act}}", "bytes", _S11,
     "activations saved in training for the backward pass"),
    ("batch", "B", r"B", "#", _S11, "sequences served together at inference"),
    ("kv_cache_bytes", "M_KV", r"M_{\text{KV}}", "bytes", _S11, "keys and values held for all sequences and layers"),
    ("proj_flops", "F_proj", r"F_{\text{proj}}", "FLOPs", _S12,
     "Q, K, V and output projections for one token in one layer"),
    ("attn_flops", "F_attn", r"F_{\text{attn}}", "FLOPs", _S12,
     "score (QK^T) and mixing (AV) products for one token at context L"),
    ("mlp_flops", "F_mlp", r"F_{\text{mlp}}", "FLOPs", _S12, "matrix products of the MLP for one token in one layer"),
    ("router_flops", "F_router", r"F_{\text{router}}", "FLOPs", _S12, "expert scoring for one token in one MoE layer"),
    ("decode_flops", "F_decode", r"F_{\text{decode}}", "FLOPs", _S12,
     "whole-model cost of generating one token at context L"),
    ("prefill_flops", "F_prefill", r"F_{\text{prefill}}", "FLOPs", _S12,
     "whole-model cost of processing a prompt in one pass"),
    ("intensity", "I", r"I", "FLOPs/byte", _S12, "work done per byte moved; places a kernel on the roofline"),
    ("tokens_per_s", "T_tok/s", r"\mathcal{T}_{\text{tok/s}}", "tokens/s", _S13, "tokens generated per second"),
    ("comm_fraction", "rho_comm", r"\rho_{\text{comm}}", "-", _S13, "part of a step spent communicating"),
    ("cache_fraction", "phi_cache", r"\phi_{\text{cache}}", "-", _S13, "part of device memory taken by the KV cache"),
    ("attn_mlp_ratio", "chi", r"\chi", "-", _S13, "attention FLOPs over MLP FLOPs for one token"),
    ("n_pairs", "n_pairs", r"n_{\text{pairs}}", "pairs", "project (attention)",
     "query-key pairs scored in one head of one layer (T·T dense; fewer when masked entries are skipped)"),
    ("kv_len", "L_kv", r"L_{kv}", "tokens", "project (cache)",
     "tokens one layer's cache holds: L for full layers, the window for local ones"),
    ("kv_rank", "d_c", r"d_c", "features", "project (MLA)", "rank of the compressed KV latent cached per token"),
    ("mla_rope_dim", "d_h^rope", r"d_h^{\text{rope}}", "features", "project (MLA)",
     "width of the RoPE key kept apart from the latent and cached with it"),
    ("norms_per_layer", "n_norm", r"n_{\text{norm}}", "#", "project (norms)", "normalization layers inside one block"),
    ("norm_vectors", "k_norm", r"k_{\text{norm}}", "#", "project (norms)",
     "learned vectors per norm: 1 for RMSNorm (scale), 2 for LayerNorm (scale and bias)"),
)

SYMBOLS: tuple[Symbol, ...] = tuple(
    Symbol(code=c, ascii=a, latex=x, unit=u, section=s, meaning=m) for c, a, x, u, s, m in _ROWS
)

_GREEK = str.maketrans({"θ": "theta_", "η": "eta_", "ρ": "rho_", "φ": "phi_", "χ": "chi_", "𝒯": "T_"})
_INDEX: dict[str, Symbol] = {n: s for s in SYMBOLS for n in (s.code, s.ascii)}


def lookup(name: str) -> Symbol:
    """Find a symbol by code name ("n_kv_heads") or ASCII symbol ("h_kv"); Greek letters are accepted ("θ_base").

    Matching is case-sensitive ("E" and "e" differ). Raises KeyError naming the closest known names.
    """
    key = name.strip()
    if key in _INDEX:
        return _INDEX[key]
    alt = key.translate(_GREEK).replace("__", "_").rstrip("_")
    if alt in _INDEX:
        return _INDEX[alt]
    close = difflib.get_close_matches(alt, list(_INDEX), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise KeyError(f"unknown symbol {name!r}{hint}")


_COLUMNS = ("symbol", "code", "unit", "section", "meaning")


def _cells(s: Symbol, markdown: bool) -> tuple[str, ...]:
    if markdown:
        def esc(t: str) -> str:
            return t.replace("|", r"\|")
        return (f"${esc(s.latex)}$ (`{esc(s.ascii)}`)", f"`{s.code}`", esc(s.unit), esc(s.section), esc(s.meaning))
    return (s.ascii, s.code, s.unit, s.section, s.meaning)


def render_table(fmt: str = "text") -> str:
    """All symbols as a table: fmt="text" (aligned columns) or "markdown" (one row per symbol)."""
    if fmt not in ("text", "markdown"):
        raise ValueError(f"fmt must be 'text' or 'markdown', not {fmt!r}")
    rows = [_cells(s, fmt == "markdown") for s in SYMBOLS]
    if fmt == "markdown":
        lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(len(_COLUMNS) - 1)]
    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]
    out = [line(_COLUMNS), line(tuple("-" * w for w in widths) + ("-" * len(_COLUMNS[-1]),))]
    return "\n".join(out + [line(r) for r in rows]) + "\n"
