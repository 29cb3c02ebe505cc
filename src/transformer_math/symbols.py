"""The symbol dictionary as data: one record per symbol that transformer-math prints.

Each record ties a symbol to its code name (the spelling used in specs, formulas and the CLI), its plain
ASCII spelling, its LaTeX, its unit and the topic it belongs to. Every symbol a registered formula, a model
spec, `analyze`, `serve`, `train` or `chinchilla` reports is here (tests/test_symbols.py collects them).
`docs/symbols.md` is generated from this module by `scripts/gen_symbols_doc.py`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["Symbol", "SYMBOLS", "SECTIONS", "UNITS", "lookup", "render_table"]

# Units: "-" dimensionless, "#" a count, "features" a channel width, "pairs" query-key pairs; the rest as named.
# A symbol that a registered formula computes carries that formula's unit.
UNITS = frozenset({"-", "#", "features", "tokens", "bytes", "bytes/elt", "bits", "parameters", "FLOPs",
                   "FLOP/s", "bytes/s", "s", "tokens/s", "FLOPs/byte", "pairs", "fraction", "elements",
                   "layers", "sequences", "micro-batches", "days", "GPU-hours", "USD", "nats/token"})


@dataclass(frozen=True, kw_only=True, slots=True)
class Symbol:
    """One entry of the dictionary."""

    code: str  # snake_case name used in code (conventions.md where it gives one)
    ascii: str  # plain-ASCII spelling of the symbol, e.g. "h_kv", "theta_base"
    latex: str  # LaTeX body without dollar signs
    unit: str  # one of UNITS
    meaning: str  # one-line description
    section: str  # the topic, one of SECTIONS


_S1, _S2, _S3, _S5, _S6 = "topology", "positions", "MLP", "embeddings", "MoE"
_S7, _S8, _S9, _S10 = "precision", "training", "hardware & parallelism", "parameters"
_S11, _S12, _S13 = "memory", "FLOPs", "throughput"
_ATT, _KV, _MLA, _NORM = "attention", "KV cache", "MLA", "norms"
_SERVE, _PLAN, _COMM, _SCALE = "serving plan", "training plan", "communication", "scaling laws"
SECTIONS = (_S1, _S2, _S3, _S5, _S6, _ATT, _MLA, _NORM, _S7, _S8, _S9, _S10, _S11, _KV, _S12, _S13, _SERVE, _PLAN,
            _COMM, _SCALE)

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
    ("n_shared_experts", "1_shared", r"\mathbb{1}_{\text{shared}}", "#", _S6,
     "shared experts every token passes through (0 when absent)"),
    ("capacity_factor", "C_cap", r"C_{\text{cap}}", "-", _S6,
     "expert capacity factor: slots per expert as a multiple of the balanced share N·e/E (unset: no limit)"),
    ("expert_capacity", "C_exp", r"C_{\text{exp}}", "tokens", _S6,
     "slots of one expert in one MoE layer: ⌈C_cap·N·e/E⌉; each expert runs exactly C_exp rows, overflow dropped"),
    ("expert_rows", "N_rows", r"N_{\text{rows}}", "tokens", _S6,
     "rows each routed-expert matmul executes: N·e, or E·C_exp with a capacity (padding included)"),
    ("dropped_min", "n_drop,min", r"n_{\text{drop,min}}", "tokens", _S6,
     "routed assignments a capacity must drop even under perfectly balanced routing: max(0, N·e − E·C_exp)"),
    ("bytes_per_elt", "b_elt", r"b_{\text{elt}}", "bytes/elt", _S7,
     "storage size of one element of a given dtype (bf16: 2); b_w, b_a, b_kv, b_g name it per tensor"),
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
    ("micro_batch", "b", r"b", "#", _S8,
     "sequences in one micro-batch on one data-parallel rank (Megatron's b; `--micro-batch`)"),
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
    ("prefill_flops", "F_prefill", r"F_{\text{prefill}}", "FLOPs", _S12,
     "one forward pass over B prompts of P tokens each (B·P positions, LM head on every one); analyze: P = L"),
    ("decode_flops", "F_decode", r"F_{\text{decode}}", "FLOPs", _S12,
     "one decode step: B new tokens, one per sequence, each attending over the L tokens already cached"),
    ("prefill_flops_per_token", "F_prefill,tok", r"F_{\text{prefill,tok}}", "FLOPs", _S12,
     "prefill cost per prompt token: F_prefill / (B·P)"),
    ("decode_flops_per_token", "F_decode,tok", r"F_{\text{decode,tok}}", "FLOPs", _S12,
     "cost of generating one token at context L: F_decode / B (about 2·P_active plus attention)"),
    ("intensity", "I", r"I", "FLOPs/byte", _S12, "work done per byte moved; places a kernel on the roofline"),
    ("tokens_per_s", "tok/s", r"\text{tok/s}", "tokens/s", _S13,
     "throughput: tokens generated per second (serving, all replicas) or trained on per second (training)"),
    ("comm_fraction", "rho_comm", r"\rho_{\text{comm}}", "-", _S13, "part of a step spent communicating"),
    ("cache_fraction", "phi_cache", r"\phi_{\text{cache}}", "fraction", _S13,
     "part of device memory taken by the KV cache"),
    ("attn_mlp_ratio", "chi", r"\chi", "-", _S13, "attention FLOPs over MLP FLOPs for one token"),
    ("n_pairs", "n_pairs", r"n_{\text{pairs}}", "pairs", _ATT,
     "query-key pairs scored in one head of one layer (T·T dense; fewer when masked entries are skipped)"),
    ("kv_len", "L_kv", r"L_{kv}", "tokens", _KV,
     "tokens one layer's cache holds: L for full layers, the window for local ones"),
    ("key_dim", "d_k", r"d_k", "features", _ATT,
     "width of the feature-mapped query and key φ(q), φ(k) of a linear-attention head (d_h here)"),
    ("n_encoder_layers", "N_enc", r"N_{\text{enc}}", "#", _S1,
     "encoder layers of an encoder–decoder model (T5); the decoder has N_L"),
    ("encoder_tokens", "T_enc", r"T_{\text{enc}}", "tokens", _ATT,
     "tokens the encoder of an encoder–decoder model reads (= L); every decoder token cross-attends to all of them"),
    ("decoder_tokens", "T_dec", r"T_{\text{dec}}", "tokens", _ATT,
     "tokens the decoder of an encoder–decoder model runs"),
    ("prefix_length", "P_pfx", r"P_{\text{pfx}}", "tokens", _ATT,
     "prefix-LM: leading tokens that attend to each other both ways (0: causal LM)"),
    ("relative_buckets", "n_rel", r"n_{\text{rel}}", "#", _S2,
     "relative-position buckets of T5: one learned score bias per bucket and head, per stack"),
    ("token_types", "V_tt", r"V_{\text{tt}}", "#", _S5, "token-type (segment) embeddings of BERT"),
    ("embedding_norm", "1_embnorm", r"1_{\text{embnorm}}", "-", _NORM, "1 if a norm follows the embeddings (BERT)"),
    ("head_transform", "1_htf", r"1_{\text{htf}}", "-", _S5,
     "1 if the LM head first maps d → d with the activation and a norm (BERT's MLM head)"),
    ("n_latents", "N_lat", r"N_{\text{lat}}", "tokens", _ATT,
     "latent vectors of a Perceiver-style block: the queries that cross-attend to the T inputs"),
    ("linear_state_bytes", "M_state", r"M_{\text{state}}", "bytes", _KV,
     "linear-attention state of all sequences and linear layers: S (h_kv·d_k·d_v) and z (h_kv·d_k) per layer, "
     "independent of L"),
    ("kv_rank", "d_c", r"d_c", "features", _MLA, "rank of the compressed KV latent cached per token"),
    ("mla_rope_dim", "d_h^rope", r"d_h^{\text{rope}}", "features", _MLA,
     "width of the RoPE key kept apart from the latent and cached with it"),
    ("norms_per_layer", "n_norm", r"n_{\text{norm}}", "#", _NORM, "normalization layers inside one block"),
    ("norm_vectors", "k_norm", r"k_{\text{norm}}", "#", _NORM,
     "learned vectors per norm: 1 for RMSNorm (scale), 2 for LayerNorm (scale and bias)"),
    # Model spec fields beyond the core (config/spec.py metadata).
    ("q_rank", "d_cq", r"d_{cq}", "features", _MLA, "rank of the query latent (0: queries projected at full rank)"),
    ("nope_dim", "d_h^nope", r"d_h^{\text{nope}}", "features", _MLA, "per-head query/key width that RoPE leaves alone"),
    ("norm_kind", "Norm", r"\text{Norm}", "-", _NORM, "normalization of the blocks: rmsnorm or layernorm"),
    ("d_shared", "d_shared", r"d_{\text{shared}}", "features", _S6, "hidden width of one shared expert"),
    ("shared_gate", "1_sgate", r"\mathbb{1}_{\text{sgate}}", "-", _S6,
     "1 when a sigmoid gate scales the shared experts' output (Qwen2-MoE), else 0"),
    ("rotary_fraction", "f_rot", r"f_{\text{rot}}", "-", _S2, "share of d_h that RoPE rotates (1: all of it)"),
    ("attn_softcap", "c_attn", r"c_{\text{attn}}", "-", _ATT,
     "cap c of the attention logits, c·tanh(x/c) (Gemma 2); none when absent"),
    ("logit_softcap", "c_logit", r"c_{\text{logit}}", "-", _S5,
     "cap c of the output logits, c·tanh(x/c) (Gemma 2); none when absent"),
    ("context_parallel", "C_p", r"C_p", "#", _S9,
     "devices splitting each sequence, attention exchanged around a ring (context parallel)"),
    ("hbm_bytes", "M_HBM", r"M_{\text{HBM}}", "bytes", _S9, "memory of one device, as its driver reports it"),
    # Parameters per tensor group (analyze's params breakdown).
    ("params_linear", "P_lin", r"P_{\text{lin}}", "parameters", _S10, "weight and bias of one linear layer"),
    ("params_wq", "P_WQ", r"P_{W_Q}", "parameters", _S10, "query projections W_Q of the layers of one kind"),
    ("params_wk", "P_WK", r"P_{W_K}", "parameters", _S10, "key projections W_K of the layers of one kind"),
    ("params_wv", "P_WV", r"P_{W_V}", "parameters", _S10, "value projections W_V of the layers of one kind"),
    ("params_wo", "P_WO", r"P_{W_O}", "parameters", _S10, "attention output projections W_O of the layers of one kind"),
    ("params_wdq", "P_WDQ", r"P_{W^{DQ}}", "parameters", _MLA, "MLA query down-projections W^DQ (d → d_cq)"),
    ("params_wuq", "P_WUQ", r"P_{W^{UQ}}", "parameters", _MLA,
     "MLA query up-projections W^UQ (d_cq → h_q·(d_h^nope + d_h^rope))"),
    ("params_wdkv", "P_WDKV", r"P_{W^{DKV}}", "parameters", _MLA,
     "MLA KV down-projections W^DKV with the RoPE key (d → d_c + d_h^rope)"),
    ("params_wukv", "P_WUKV", r"P_{W^{UKV}}", "parameters", _MLA,
     "MLA KV up-projections W^UKV (d_c → h_q·(d_h^nope + d_v))"),
    ("params_token_types", "P_tt", r"P_{\text{tt}}", "parameters", _S10, "token-type embedding table (V_tt×d)"),
    ("params_relative_bias", "P_rel", r"P_{\text{rel}}", "parameters", _S10,
     "relative-position bias tables: n_rel×h_q per stack"),
    ("params_lm_head_bias", "P_LMb", r"P_{\text{LMb}}", "parameters", _S10, "bias of the vocabulary projection (V)"),
    ("params_embedding", "P_emb", r"P_{\text{emb}}", "parameters", _S10, "input embedding table W_E (V×d)"),
    ("params_positions", "P_pos", r"P_{\text{pos}}", "parameters", _S10,
     "learned absolute position table (L_max×d, GPT-2)"),
    ("params_lm_head", "P_LM", r"P_{\text{LM}}", "parameters", _S10, "output head W_LM (d×V); 0 when tied to W_E"),
    ("params_norm", "P_norm", r"P_{\text{norm}}", "parameters", _NORM,
     "gains (and biases) of the normalization layers"),
    ("params_sinks", "P_sink", r"P_{\text{sink}}", "parameters", _ATT,
     "learned attention-sink logits, one per query head (gpt-oss)"),
    ("params_latents", "P_lat", r"P_{\text{lat}}", "parameters", _S10,
     "learned latent array of a Perceiver-style block: N_lat×d"),
    ("params_mlp", "P_mlp", r"P_{\text{mlp}}", "parameters", _S10, "dense MLP weights (and biases) of one layer"),
    ("params_router", "P_router", r"P_{\text{router}}", "parameters", _S6, "router of one MoE layer (d×E, plus bias)"),
    ("params_experts", "P_moe", r"P_{\text{moe}}", "parameters", _S6, "routed experts of one MoE layer: E·P_expert"),
    ("params_shared", "P_shared", r"P_{\text{shared}}", "parameters", _S6, "shared experts of one MoE layer"),
    ("params_shared_gate", "P_sgate", r"P_{\text{sgate}}", "parameters", _S6,
     "gate of the shared experts: one d-wide vector per MoE layer (Qwen2-MoE)"),
    ("params_layers", "P_layers", r"P_{\text{layers}}", "parameters", _S10,
     "parameters of all layers of one kind (count × one layer)"),
    ("params_gpu", "P_GPU", r"P_{\text{GPU}}", "parameters", _PLAN,
     "parameters one GPU holds after tensor, expert and FSDP sharding (rank 0, the largest share)"),
    ("tensor_elements", "n_local", r"n_{\text{local}}", "parameters", _PLAN,
     "elements of one tensor on rank 0 after sharding"),
    ("shard_rows", "n_r", r"n_r", "elements", _PLAN, "rows of a split dimension that rank r holds (torch.chunk)"),
    ("stage_layers", "n_stage", r"n_{\text{stage}}", "layers", _PLAN, "decoder layers on one pipeline stage"),
    # FLOPs of operations, passes and steps.
    ("linear_flops", "F_lin", r"F_{\text{lin}}", "FLOPs", _S12,
     "one linear layer over N_tok tokens: 2·N_tok·d_in·d_out"),
    ("score_flops", "F_QK", r"F_{QK^T}", "FLOPs", _S12, "attention scores QK^T over n_pairs query-key pairs"),
    ("value_flops", "F_AV", r"F_{AV}", "FLOPs", _S12, "attention output, the weights times V, over n_pairs pairs"),
    ("linear_state_flops", "F_state", r"F_{\text{state}}", "FLOPs", _S12,
     "linear attention: the outer products φ(k)ᵀv summed into the state, one per token and KV head"),
    ("linear_readout_flops", "F_read", r"F_{\text{read}}", "FLOPs", _S12,
     "linear attention: φ(q)·S and the normalizer φ(q)·z, one of each per token and query head"),
    ("latent_block_flops", "F_lat", r"F_{\text{lat}}", "FLOPs", _S12,
     "forward pass of one latent cross-attention block over B sequences of T inputs: linear in T for fixed N_lat"),
    ("latent_input_flops", "F_lat,T", r"F_{\text{lat},T}", "FLOPs", _S12,
     "FLOPs each further input token adds to a latent block (∂F_lat/∂T): K, V and N_lat scores and values"),
    ("layer_flops", "F_layers", r"F_{\text{layers}}", "FLOPs", _S12,
     "all layers of one kind in one pass (count × one layer)"),
    ("forward_flops", "F_fwd", r"F_{\text{fwd}}", "FLOPs", _S12,
     "forward pass over a training batch: B sequences of s tokens, LM head on every position"),
    ("train_step_flops", "F_train", r"F_{\text{train}}", "FLOPs", _S12,
     "one training step: forward, backward (2× the forward for matmuls) and recomputation"),
    ("recompute_flops", "F_recompute", r"F_{\text{recompute}}", "FLOPs", _S12,
     "forward work done again in the backward pass (activation recomputation)"),
    ("model_flops", "F_model", r"F_{\text{model}}", "FLOPs", _PLAN,
     "model FLOPs of a step: the work it requires, without recomputation (MFU's numerator)"),
    ("hardware_flops", "F_hw", r"F_{\text{hw}}", "FLOPs", _PLAN,
     "hardware FLOPs of a step: model FLOPs plus what is recomputed (HFU's numerator)"),
    ("palm_flops", "F_PaLM", r"F_{\text{PaLM}}", "FLOPs", _PLAN,
     "PaLM's estimate of a step: (6·P_active + attention term) per token, times B·s tokens"),
    ("train_compute", "C", r"C", "FLOPs", _SCALE, "total training compute of a run: C ≈ 6·N·D"),
    # Memory terms.
    ("weights_gpu_bytes", "M_w", r"M_w", "bytes", _S11,
     "weight bytes on one GPU: each tensor group's M_param, sharded"),
    ("gpu_bytes", "M_GPU", r"M_{\text{GPU}}", "bytes", _S11,
     "memory of the fullest GPU: weights, gradients, optimizer states, activations or KV cache, and reserve"),
    ("reserve_bytes", "M_reserve", r"M_{\text{reserve}}", "bytes", _S11,
     "memory no model tensor holds: CUDA context, kernels, communication buffers, headroom"),
    ("over_bytes", "Delta_M", r"\Delta M", "bytes", _S11, "memory over capacity: M_GPU − M_HBM (fits when ≤ 0)"),
    ("act_norm_bytes", "M_act,norm", r"M_{\text{act,norm}}", "bytes", _S11, "activations the norms keep for backward"),
    ("act_attn_bytes", "M_act,attn", r"M_{\text{act,attn}}", "bytes", _S11,
     "activations of attention: Q, K, V and its output"),
    ("act_score_bytes", "M_act,score", r"M_{\text{act,score}}", "bytes", _S11,
     "attention probabilities (eager) or per-row log-sum-exp (fused kernels) kept for backward"),
    ("act_linear_bytes", "M_act,lin", r"M_{\text{act,lin}}", "bytes", _S11,
     "activations of a causal linear-attention layer: φ's inputs and outputs, v, every prefix state S_t and z_t, "
     "the numerator, denominator and output"),
    ("act_cross_attn_bytes", "M_act,cross", r"M_{\text{act,cross}}", "bytes", _S11,
     "activations of encoder–decoder cross-attention: queries and output at T rows, K and V at T_enc rows, "
     "the T×T_enc probabilities"),
    ("act_relative_bucket_bytes", "M_act,rel", r"M_{\text{act,rel}}", "bytes", _S11,
     "int64 relative-position bucket ids a T5 stack's bias lookup keeps (T×T)"),
    ("act_layer_table_bytes", "M_act,tab", r"M_{\text{act,tab}}", "bytes", _S11,
     "per-layer tables the reference modules keep: the fp32 attention mask and the RoPE cos/sin tables"),
    ("act_expert_slot_bytes", "M_act,slots", r"M_{\text{act,slots}}", "bytes", _S11,
     "activations of the E·C_exp expert slots under a capacity factor: dispatched rows and MLP intermediates"),
    ("act_latent_attn_bytes", "M_act,xattn", r"M_{\text{act,xattn}}", "bytes", _S11,
     "activations of latent cross-attention: Q and output at N_lat rows, K and V at T rows, a log-sum-exp per row"),
    ("feature_map_saves", "n_phi", r"n_{\phi}", "#", _S11,
     "tensors the feature map φ keeps per query/key element: 2 for elu(x) + 1 (input and output), 1 for relu"),
    ("act_mlp_bytes", "M_act,mlp", r"M_{\text{act,mlp}}", "bytes", _S11, "activations of the MLP kept for backward"),
    ("act_route_bytes", "M_act,route", r"M_{\text{act,route}}", "bytes", _S11,
     "routing state of an MoE layer: router probabilities, top-e choices, gathered token copies"),
    ("act_sgate_bytes", "M_act,sgate", r"M_{\text{act,sgate}}", "bytes", _S11,
     "what the sigmoid gate of the shared experts keeps: its output and the gated experts' output"),
    ("act_input_bytes", "M_act,x", r"M_{\text{act,x}}", "bytes", _S11,
     "residual-stream inputs the projections of a post-norm block keep"),
    ("act_head_bytes", "M_act,head", r"M_{\text{act,head}}", "bytes", _S11,
     "logits the loss keeps, token ids, labels and the shared position tables"),
    ("act_layer_bytes", "M_act,layer", r"M_{\text{act,layer}}", "bytes", _S11, "activations of all layers of one kind"),
    ("act_gpu_bytes", "M_act,GPU", r"M_{\text{act,GPU}}", "bytes", _S11,
     "activations one GPU keeps: the micro-batches in flight, split by T_p (and SP), plus working buffers"),
    ("tensor_scale_bytes", "M_scale", r"M_{\text{scale}}", "bytes", _S7,
     "per-tensor scales of a two-level quantized format (NVFP4's fp32 global scale)"),
    ("kv_seq_bytes", "M_KV,seq", r"M_{\text{KV,seq}}", "bytes", _KV, "paged KV cache of one sequence, in whole blocks"),
    # Serving plan.
    ("max_batch", "B_max", r"B_{\max}", "sequences", _SERVE, "most sequences whose KV cache fits beside the weights"),
    ("max_fit_context", "L_fit", r"L_{\text{fit}}", "tokens", _SERVE,
     "longest context whose KV cache fits at batch B, capped at L_max"),
    ("ttft", "TTFT", r"\text{TTFT}", "s", _SERVE, "time to first token: the prefill of all B prompts"),
    ("tpot", "TPOT", r"\text{TPOT}", "s", _SERVE,
     "time per output token: one decode step over all B sequences (speculative: per accepted token)"),
    ("step_time", "t_step", r"t_{\text{step}}", "s", _S13,
     "one step: a decode step of all B sequences (serving) or an optimizer step (training)"),
    ("draft_step_time", "t_draft", r"t_{\text{draft}}", "s", _SERVE,
     "one decode step of the draft model (speculative)"),
    ("verify_step_time", "t_verify", r"t_{\text{verify}}", "s", _SERVE,
     "one target-model step that checks the k_draft drafted tokens"),
    ("engine_overhead", "t_cpu", r"t_{\text{cpu}}", "s", _SERVE, "CPU time per step that the engine does not hide"),
    ("op_time", "t_op", r"t_{\text{op}}", "s", _S13,
     "roofline time of one operation: the slower of compute and memory, plus dequantization and launch"),
    ("ops_time", "t_ops", r"t_{\text{ops}}", "s", _S13, "time of a group of operations: the sum of their t_op"),
    # Training plan.
    ("micro_batches", "m", r"m", "micro-batches", _PLAN,
     "micro-batches per optimizer step on each pipeline: B/(D_p·b)"),
    ("in_flight", "m_live", r"m_{\text{live}}", "micro-batches", _PLAN,
     "micro-batches whose activations a pipeline stage holds at its peak"),
    ("compute_time", "t_comp", r"t_{\text{comp}}", "s", _PLAN,
     "compute of one micro-batch: forward, backward, recomputation and extra kernels"),
    ("recompute_time", "t_rec", r"t_{\text{rec}}", "s", _PLAN, "forward work recomputed in the backward pass"),
    ("microbatch_time", "t_mb", r"t_{\text{mb}}", "s", _PLAN,
     "one micro-batch on one stage: compute plus the TP, CP, EP and PP communication left exposed"),
    ("bubble_time", "t_bubble", r"t_{\text{bubble}}", "s", _PLAN,
     "pipeline fill and drain: (P_p − 1)/v micro-batch times"),
    ("tp_time", "t_TP", r"t_{\text{TP}}", "s", _PLAN, "tensor-parallel collectives of one micro-batch"),
    ("cp_time", "t_CP", r"t_{\text{CP}}", "s", _PLAN, "context-parallel K/V exchange not hidden behind attention"),
    ("ep_time", "t_EP", r"t_{\text{EP}}", "s", _PLAN, "expert-parallel all-to-alls of one micro-batch"),
    ("pp_time", "t_PP", r"t_{\text{PP}}", "s", _PLAN, "pipeline sends and receives of one micro-batch"),
    ("dp_time", "t_DP", r"t_{\text{DP}}", "s", _PLAN,
     "data-parallel communication of a step that overlap leaves exposed"),
    ("dp_total_time", "t_DP_all", r"t_{\text{DP,all}}", "s", _PLAN,
     "all data-parallel communication of a step: gradient reduction and FSDP gathers"),
    ("optimizer_time", "t_opt", r"t_{\text{opt}}", "s", _PLAN,
     "the optimizer update, streaming weights, gradients and states through HBM"),
    ("train_days", "t_train", r"t_{\text{train}}", "days", _PLAN, "wall-clock days to train on T_train tokens"),
    ("cost_usd", "cost", r"\text{cost}", "USD", _PLAN, "price of a run (or a compute budget) at a price per GPU-hour"),
    ("mfu", "MFU", r"\text{MFU}", "fraction", _PLAN, "model FLOPs utilization: F_model / (t_step·n_GPU·F_peak)"),
    ("hfu", "HFU", r"\text{HFU}", "fraction", _PLAN, "hardware FLOPs utilization: F_hw / (t_step·n_GPU·F_peak)"),
    ("mfu_palm", "MFU_PaLM", r"\text{MFU}_{\text{PaLM}}", "fraction", _PLAN,
     "MFU with F_PaLM as its numerator, the convention of most published MFUs"),
    # Communication.
    ("collectives_time", "t_coll", r"t_{\text{coll}}", "s", _COMM, "n_coll collectives of one kind and size"),
    ("collective_time", "t_1", r"t_1", "s", _COMM, "one collective call (ring or tree cost model)"),
    ("all_reduce_time", "t_AR", r"t_{\text{AR}}", "s", _COMM, "one all-reduce of S bytes over n ranks"),
    ("all_gather_time", "t_AG", r"t_{\text{AG}}", "s", _COMM,
     "one all-gather (or reduce-scatter) of S bytes over n ranks"),
    ("all_to_all_time", "t_A2A", r"t_{\text{A2A}}", "s", _COMM,
     "one all-to-all of S bytes over n ranks (MoE dispatch and combine)"),
    ("p2p_time", "t_p2p", r"t_{\text{p2p}}", "s", _COMM, "one point-to-point send (pipeline boundary, ring step)"),
    # Compute-optimal scaling (chinchilla).
    ("n_opt", "N_opt", r"N_{\text{opt}}", "parameters", _SCALE, "compute-optimal parameter count for a budget C"),
    ("d_opt", "D_opt", r"D_{\text{opt}}", "tokens", _SCALE, "compute-optimal training tokens for C: C / (6·N_opt)"),
    ("n_20", "N_20", r"N_{20}", "parameters", _SCALE, "parameters by the rule of thumb D ≈ 20·N"),
    ("loss", "L(N,D)", r"\hat{L}(N, D)", "nats/token", _SCALE,
     "fitted pre-training loss of N parameters trained on D tokens"),
    ("gpu_hours", "GPU_h", r"\text{GPU}_h", "GPU-hours", _SCALE, "GPU-hours to spend C at MFU·F_peak"),
)

SYMBOLS: tuple[Symbol, ...] = tuple(
    Symbol(code=c, ascii=a, latex=x, unit=u, section=s, meaning=m) for c, a, x, u, s, m in _ROWS
)

_GREEK = str.maketrans({"θ": "theta_", "η": "eta_", "ρ": "rho_", "φ": "phi_", "χ": "chi_", "Δ": "Delta_"})
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
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]
    out = [line(_COLUMNS), line(tuple("-" * w for w in widths) + ("-" * len(_COLUMNS[-1]),))]
    return "\n".join(out + [line(r) for r in rows]) + "\n"
