"""Memory [bytes]: weights, KV cache, training state (ZeRO, Rajbhandari et al. 2020 §3.1) and activations
(Korthikanti et al. 2022 §4)."""

from fractions import Fraction

from transformer_math.formulas._registry import formula


@formula(id="memory.weights", symbol="M_param", unit="bytes", expr="P·b_w",
         source="parameters × bytes per element; a block format adds its group constants, b_w = q_w/8 + (scale + "
                "zero-point bits)/(8·g_q): NF4 (Dettmers et al. 2023, QLoRA), MXFP4 (OCP Microscaling Formats (MX) "
                "v1.0 spec), group-wise int4 (GPTQ, AWQ)")
def weight_bytes(*, P: int, b_w: Fraction) -> int:
    return -(-P * b_w.numerator // b_w.denominator)


@formula(id="memory.kv_cache", symbol="M_KV", unit="bytes", expr="B·L_kv·n_layers·2·h_kv·d_h·b_kv",
         source="Pope et al. 2022 (Efficiently Scaling Transformer Inference, arXiv 2211.05102): a K and a V vector "
                "per KV head, layer and cached token; h_kv = 1 for MQA (Shazeer 2019), 1 < h_kv < h_q for GQA "
                "(Ainslie et al. 2023); L_kv = L (full) or min(L, S-1) (window, as HF's cache keeps)")
def kv_cache_bytes(*, B: int, L_kv: int, n_layers: int, h_kv: int, d_h: int, b_kv: Fraction) -> int:
    return -(-B * L_kv * n_layers * 2 * h_kv * d_h * b_kv.numerator // b_kv.denominator)


@formula(id="memory.kv_cache_mla", symbol="M_KV", unit="bytes", expr="B·L_kv·n_layers·(d_c + d_rope)·b_kv",
         source="DeepSeek-V2 §2.1.2 (arXiv 2405.04434): MLA caches the KV latent c_KV and the decoupled RoPE key")
def kv_cache_mla_bytes(*, B: int, L_kv: int, n_layers: int, d_c: int, d_rope: int, b_kv: Fraction) -> int:
    return -(-B * L_kv * n_layers * (d_c + d_rope) * b_kv.numerator // b_kv.denominator)


@formula(id="memory.linear_state", symbol="M_state", unit="bytes", expr="B·n_layers·h_kv·(d_k·d_v + d_k)·b_kv",
         source="Katharopoulos et al. 2020 (Transformers are RNNs, arXiv 2006.16236) §3.4: a linear-attention layer "
                "decodes as an RNN whose hidden state is S = Σ φ(k)ᵀv (d_k×d_v) and z = Σ φ(k) (d_k) per head, "
                "a fixed size whatever the context L")
def linear_state_bytes(*, B: int, n_layers: int, h_kv: int, d_k: int, d_v: int, b_kv: Fraction) -> int:
    return -(-B * n_layers * h_kv * (d_k * d_v + d_k) * b_kv.numerator // b_kv.denominator)


@formula(id="memory.gradients", symbol="M_grad", unit="bytes", expr="P_train·b_g",
         source="Rajbhandari et al. 2020 (ZeRO, arXiv 1910.02054) §3.1: one gradient per trainable parameter, b_g "
                "bytes each")
def gradient_bytes(*, P_train: int, b_g: int) -> int:
    return P_train * b_g


@formula(id="memory.optimizer", symbol="M_opt", unit="bytes", expr="P_train·(b_master + b_m + b_v)",
         source="Rajbhandari et al. 2020 (ZeRO) §3.1: mixed-precision Adam keeps an fp32 master copy (b_master = 4) "
                "and the two moments b_m, b_v per trainable parameter (12 bytes with fp32 moments)")
def optimizer_bytes(*, P_train: int, b_master: int, b_m: int, b_v: int) -> int:
    return P_train * (b_master + b_m + b_v)


# Activations: bytes of the tensors autograd keeps for backward. Each c_* is the bytes per element summed
# over the tensors a component keeps; the profiles in analysis/memory.py give them for each implementation.
_KORTHIKANTI = "Korthikanti et al. 2022 (arXiv 2205.05198) §4.1 (sbh(34 + 5as/h)), re-derived per saved tensor"


@formula(id="memory.activations.norms", symbol="M_act,norm", unit="bytes", expr="B·T·n_norm·(c_n·w + c_r) + "
                                                                                "n_norm·c_w·w",
         source=_KORTHIKANTI + "; c_r: the fp32 rstd (and mean) per row; c_w: an fp32 copy of the weight (Gemma)")
def norm_activation_bytes(*, B: int, T: int, n_norm: int, c_n: int, w: int, c_r: int, c_w: int) -> int:
    return B * T * n_norm * (c_n * w + c_r) + n_norm * c_w * w


@formula(id="memory.activations.attention", symbol="M_act,attn", unit="bytes",
         expr="B·T·(c_q·h_q·d_qk + c_k·h_k·(d_qk + d_v) + c_o·h_q·d_v)",
         source=_KORTHIKANTI + " (Q, K, V and the attention output; h_k = h_kv, or h_q once repeat_kv expands them)")
def attention_activation_bytes(*, B: int, T: int, c_q: int, h_q: int, d_qk: int, c_k: int, h_k: int, d_v: int,
                               c_o: int) -> int:
    return B * T * (c_q * h_q * d_qk + c_k * h_k * (d_qk + d_v) + c_o * h_q * d_v)


@formula(id="memory.activations.scores", symbol="M_act,score", unit="bytes",
         expr="c_s·B·h_q·T·(T + k_sink) + c_lse·B·h_q·T",
         source=_KORTHIKANTI + " (the 5as/h term: softmax output, with a sink column when the model has sink "
                "logits; fused kernels keep a per-row log-sum-exp instead)")
def score_activation_bytes(*, B: int, T: int, h_q: int, c_s: int, k_sink: int, c_lse: int) -> int:
    return c_s * B * h_q * T * (T + k_sink) + c_lse * B * h_q * T


@formula(id="memory.activations.linear_attention", symbol="M_act,lin", unit="bytes",
         expr="b_a·B·T·(n_phi·(h_q + h_kv)·d_k + h_kv·(d_v + d_k·d_v + d_k) + h_q·(2·d_v + 1))",
         source="Katharopoulos et al. 2020 (Transformers are RNNs, arXiv 2006.16236) §3.3: the causal form "
                "computed as a cumulative sum keeps every prefix state S_t (d_k×d_v) and z_t (d_k) per KV head for "
                "the gradient (the paper's own CUDA kernel avoids this; autograd through the parallel form does "
                "not); re-derived per saved tensor of reference/linear_attention.py")
def linear_attention_activation_bytes(*, b_a: int, B: int, T: int, n_phi: int, h_q: int, h_kv: int, d_k: int,
                                      d_v: int) -> int:
    """Bytes one causal linear-attention layer keeps for backward (parallel form under autograd), per B×T tokens.

    Symbol M_act,lin [bytes]. Per token: φ's saved tensors for q and k, n_phi each (2 for elu1: its input and
    φ(x) = elu(x) + 1, which the products read; 1 for relu, whose output is both), v, the prefix states S_t and
    z_t (h_kv·(d_k·d_v + d_k)), the numerator φ(q)·S_t (h_q·d_v), the denominator φ(q)·z_t + ε (h_q) and the
    output W_O reads (h_q·d_v), b_a bytes per element. The layer input the q/k/v projections read is the norm's.
    """
    return b_a * B * T * (n_phi * (h_q + h_kv) * d_k + h_kv * (d_v + d_k * d_v + d_k) + h_q * (2 * d_v + 1))


@formula(id="memory.activations.mlp", symbol="M_act,mlp", unit="bytes", expr="c_ff·B·T·d_ff",
         source=_KORTHIKANTI + " (the MLP's 19sbh without dropout; gated MLPs keep gate, up, act and product)")
def mlp_activation_bytes(*, B: int, T: int, c_ff: int, d_ff: int) -> int:
    return c_ff * B * T * d_ff


@formula(id="memory.activations.routing", symbol="M_act,route", unit="bytes",
         expr="B·T·(c_E·E + c_sum + c_x·d + c_e·e + 4·e·d) + 4·E",
         source="router probabilities (fp32, c_E = 4, when softmax precedes top-e), the fp32 sum that renormalizes "
                "the top-e weights (c_sum = 4 when norm_topk_prob, modeling_mixtral.py MixtralTopKRouter.forward), "
                "the fp32 copy of its input a router kept in fp32 multiplies (c_x = 4, modeling_deepseek_v2.py "
                "DeepseekV2TopkRouter.forward), top-e ids and weights, the sort permutation and each routed copy's "
                "gathered input and output (2·e·d bytes each), as a grouped-GEMM MoE keeps them "
                "(integrations/moe.py grouped_mm_experts_forward)")
def routing_activation_bytes(*, B: int, T: int, c_E: int, E: int, c_sum: int, c_x: int, d: int, c_e: int,
                             e: int) -> int:
    """Bytes the router and the token permutation of one MoE layer keep for backward (grouped-GEMM experts)."""
    return B * T * (c_E * E + c_sum + c_x * d + c_e * e + 4 * e * d) + 4 * E


@formula(id="memory.activations.shared_gate", symbol="M_act,sgate", unit="bytes", expr="c_g·B·T·(d + 1)",
         source="modeling_qwen2_moe.py Qwen2MoeSparseMoeBlock.forward: F.sigmoid(shared_expert_gate(x)) · "
                "shared_expert(x) keeps the sigmoid's output (1 per token) and the shared experts' output (d per "
                "token) for the product's backward, c_g = 2 bytes each in bf16")
def shared_gate_activation_bytes(*, c_g: int, B: int, T: int, d: int) -> int:
    """Bytes the sigmoid gate of the shared experts (Qwen2-MoE) keeps: its output and the gated output."""
    return c_g * B * T * (d + 1)


@formula(id="memory.activations.block_inputs", symbol="M_act,x", unit="bytes", expr="n_in·c_x·B·T·d",
         source="post-norm blocks (OLMo 2, arXiv 2501.00656 §3.3; modeling_olmo2.py Olmo2DecoderLayer.forward): "
                "the q/k/v and gate/up projections read the residual stream itself, not a norm's output, so each "
                "of the n_in = 2 sublayers keeps its bf16 input (c_x = 2)")
def block_input_activation_bytes(*, n_in: int, c_x: int, B: int, T: int, d: int) -> int:
    """Bytes of the residual-stream inputs that the projections of a post-norm block keep."""
    return n_in * c_x * B * T * d


@formula(id="memory.activations.head", symbol="M_act,head", unit="bytes",
         expr="B·T·(c_V·V + c_tok) + c_B1·1_B1 + 4 + T·(c_pos·d_rope + 8·1_pos)",
         source="the logits the loss keeps (fp32: c_V = 4; + 2 for the bf16 tanh output of a final-logit soft-cap, "
                "modeling_gemma2.py Gemma2ForCausalLM.forward), input ids and shifted labels (int64: c_tok = 16; one "
                "padding label survives when B = 1, c_B1 = 8; the reference trainer's loss adds a bool target mask, "
                "c_tok = 17), the loss, and the position tables the batch shares: RoPE cos/sin over the d_rope rotated "
                "features (c_pos = 4 per rope kind in bf16, 8 where the tables stay fp32, "
                "modeling_olmo2.py Olmo2RotaryEmbedding.forward) or position ids")
def head_activation_bytes(*, B: int, T: int, c_V: int, V: int, c_tok: int, c_B1: int, B1: bool, c_pos: int,
                          d_rope: int, pos: bool) -> int:
    return B * T * (c_V * V + c_tok) + c_B1 * B1 + 4 + T * (c_pos * d_rope + 8 * pos)


@formula(id="memory.activations.encoder_head", symbol="M_act,head", unit="bytes",
         expr="B·T·(c_V·V + 16) + 8·T + 8·L_max + c_loss",
         source="a masked-LM loss (Devlin et al. 2019; modeling_bert.py BertForMaskedLM.forward): the log-softmax "
                "output cross-entropy keeps (bf16 in HF's eager code, c_V = 2), input ids and labels (int64), the "
                "token-type ids gathered per position (int64, shared by the batch), the slice of the position-id "
                "buffer the position embedding keeps (a view whose storage spans all L_max ids) and the loss "
                "(c_loss = 2, bf16)")
def encoder_head_activation_bytes(*, B: int, T: int, c_V: int, V: int, L_max: int, c_loss: int) -> int:
    return B * T * (c_V * V + 16) + 8 * T + 8 * L_max + c_loss


@formula(id="memory.activations.cross_attention", symbol="M_act,cross", unit="bytes",
         expr="B·T·(c_q·h_q·d_h + c_o·h_q·d_h) + B·T_enc·c_k·2·h_kv·d_h + c_s·B·h_q·T·T_enc",
         source="Vaswani et al. 2017 §3.2.3 encoder–decoder attention, per saved tensor (modeling_t5.py T5Attention "
                "with key_value_states): the T decoder queries and the attention output, K and V of the T_enc encoder "
                "outputs, and the T×T_enc attention probabilities")
def cross_attention_activation_bytes(*, B: int, T: int, T_enc: int, c_q: int, c_o: int, c_k: int, c_s: int, h_q: int,
                                     h_kv: int, d_h: int) -> int:
    return B * T * (c_q + c_o) * h_q * d_h + B * T_enc * c_k * 2 * h_kv * d_h + c_s * B * h_q * T * T_enc


@formula(id="memory.activations.relative_buckets", symbol="M_act,rel", unit="bytes", expr="8·T·T",
         source="Raffel et al. 2020 (T5) §2.1 relative position buckets: the embedding lookup of the bias keeps its "
                "int64 T×T bucket ids, once per stack (modeling_t5.py T5Attention.compute_bias)")
def relative_bucket_bytes(*, T: int) -> int:
    return 8 * T * T


@formula(id="memory.activations.seq2seq_head", symbol="M_act,head", unit="bytes",
         expr="B·T·(c_V·V + 16) + 8·B·T_enc + c_loss",
         source="the decoder's loss (modeling_t5.py T5ForConditionalGeneration.forward): the log-softmax output the "
                "cross-entropy keeps over V (bf16 in HF's eager code, c_V = 2), decoder ids and labels (int64), the "
                "encoder's input ids (int64) and the loss (c_loss = 2, bf16)")
def seq2seq_head_activation_bytes(*, B: int, T: int, T_enc: int, c_V: int, V: int, c_loss: int) -> int:
    return B * T * (c_V * V + 16) + 8 * B * T_enc + c_loss


@formula(id="memory.activations.layer_tables", symbol="M_act,tab", unit="bytes", expr="c_m·T·T + n_tab·c_t·T·d_rope",
         source="transformer_math.reference.attention (measured with saved-tensor hooks): each layer builds its own "
                "T×T mask, which scaled_dot_product_attention keeps as fp32 (c_m = 4), and its own RoPE cos/sin tables "
                "for q and for k (n_tab = 4 tables of T×d_rope, c_t = 4 bytes)")
def layer_table_bytes(*, c_m: int, T: int, n_tab: int, c_t: int, d_rope: int) -> int:
    return c_m * T * T + n_tab * c_t * T * d_rope


@formula(id="memory.activations.expert_slots", symbol="M_act,slots", unit="bytes", expr="E·C_exp·(c_ff·d_moe + c_x·d)",
         source="Fedus et al. 2022 (Switch Transformers) §2.1 expert capacity: every expert runs its C_exp slots, "
                "empty ones zero-padded, so backward keeps E·C_exp dispatched rows (c_x bytes per feature) and their "
                "MLP intermediates (c_ff per d_moe feature) whatever the routing (transformer_math.reference.moe)")
def expert_slot_activation_bytes(*, E: int, C_exp: int, c_ff: int, d_moe: int, c_x: int, d: int) -> int:
    return E * C_exp * (c_ff * d_moe + c_x * d)
