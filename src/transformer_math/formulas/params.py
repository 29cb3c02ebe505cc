"""Parameter counts [parameters] per tensor group, as implementations register them
(docs/conventions.md: Parameters)."""

from transformer_math.formulas._registry import formula


@formula(id="params.linear", symbol="P_lin", unit="parameters", expr="d_in·d_out + 1_bias·d_out",
         source="torch.nn.Linear(d_in, d_out): a d_out×d_in weight, plus one bias value per output feature when "
                "bias=True")
def linear_params(*, d_in: int, d_out: int, bias: bool) -> int:
    return d_in * d_out + bias * d_out


@formula(id="params.embedding", symbol="P_emb", unit="parameters", expr="V·d",
         source="Vaswani et al. 2017 §3.4; torch.nn.Embedding(V, d): one learned d-vector per vocabulary entry")
def embedding_params(*, V: int, d: int) -> int:
    return V * d


@formula(id="params.positions", symbol="P_pos", unit="parameters", expr="L_max·d",
         source="GPT-2 learned absolute positions: one d-vector per position up to L_max")
def position_params(*, L_max: int, d: int) -> int:
    return L_max * d


@formula(id="params.lm_head", symbol="P_LM", unit="parameters", expr="(1 - 1_tie)·d·V",
         source="Vaswani et al. 2017 §3.4 and Press & Wolf 2017 (weight tying): the output projection is d×V; with "
                "tie_word_embeddings (HF PreTrainedModel.tie_weights) it is W_E itself and counted once")
def lm_head_params(*, d: int, V: int, tie: bool) -> int:
    return (1 - tie) * d * V


@formula(id="params.norm", symbol="P_norm", unit="parameters", expr="n_norm·k_norm·w",
         source="LayerNorm (Ba et al. 2016; torch.nn.LayerNorm) learns a gain and a bias of width w (k_norm = 2); "
                "RMSNorm (Zhang & Sennrich 2019; LlamaRMSNorm in HF modeling_llama.py) only the gain (k_norm = 1)")
def norm_params(*, n_norm: int, k_norm: int, w: int) -> int:
    return n_norm * k_norm * w


@formula(id="params.sinks", symbol="P_sink", unit="parameters", expr="h_q",
         source="gpt-oss model card §2.2: one learned attention-sink logit per query head")
def sink_params(*, h_q: int) -> int:
    return h_q


@formula(id="params.mlp", symbol="P_mlp", unit="parameters", expr="g_up·d·d_ff + d_ff·d + 1_bias·(g_up·d_ff + d)",
         source="Vaswani et al. 2017 §3.3 (two linear maps d → d_ff → d); gated MLPs (Shazeer 2020, GLU Variants "
                "Improve Transformer) add a second input projection, g_up = 2, as LlamaMLP's "
                "gate_proj/up_proj/down_proj in HF modeling_llama.py; biases when the config has them")
def mlp_params(*, d: int, d_ff: int, g_up: int, bias: bool) -> int:
    return g_up * d * d_ff + d_ff * d + bias * (g_up * d_ff + d)


@formula(id="params.router", symbol="P_router", unit="parameters", expr="d·E + 1_bias·E",
         source="Shazeer et al. 2017 (sparsely-gated MoE): a linear gate scores the E experts from the d-wide token "
                "(HF modeling_mixtral.py: gate = Linear(d, E, bias=False))")
def router_params(*, d: int, E: int, bias: bool) -> int:
    return d * E + bias * E


@formula(id="params.shared_gate", symbol="P_sgate", unit="parameters", expr="d",
         source="Qwen2-MoE, transformers modeling_qwen2_moe.py: shared_expert_gate = Linear(d, 1, bias=False), "
                "whose sigmoid scales the shared expert's output")
def shared_gate_params(*, d: int) -> int:
    """P_sgate [parameters] = d: the shared-expert gate maps each d-wide token to one logit, without bias."""
    return d


@formula(id="params.experts", symbol="P_moe", unit="parameters",
         expr="E·(g_up·d·d_moe + d_moe·d + 1_bias·(g_up·d_moe + d))",
         source="Jiang et al. 2024 (Mixtral of Experts) §2.1: each of the E experts of a layer is a full (gated) MLP, "
                "here of width d_moe")
def experts_params(*, E: int, d: int, d_moe: int, g_up: int, bias: bool) -> int:
    return E * (g_up * d * d_moe + d_moe * d + bias * (g_up * d_moe + d))


@formula(id="params.active", symbol="P_active", unit="parameters", expr="P - P_routed + e/E·P_routed",
         source="docs/conventions.md (Parameters): all but the routed experts, plus e/E of them — how the DeepSeek-V3 "
                "report (671B total, 37B activated per token) and Mixtral (Jiang et al. 2024) count active parameters")
def active_params(*, P: int, P_routed: int, e: int, E: int) -> int:
    return P - P_routed + P_routed * e // E


@formula(id="params.token_types", symbol="P_tt", unit="parameters", expr="V_tt·d",
         source="Devlin et al. 2019 (BERT) §3: a learned segment embedding, one d-vector per token type, added to the "
                "token and position embeddings (BertEmbeddings.token_type_embeddings)")
def token_type_params(*, V_tt: int, d: int) -> int:
    return V_tt * d


@formula(id="params.relative_bias", symbol="P_rel", unit="parameters", expr="n_stack·n_rel·h_q",
         source="Raffel et al. 2020 (T5) §2.1: a learned scalar per relative-position bucket and head, added to the "
                "attention logits; one table per stack, shared by its layers (HF modeling_t5.py "
                "relative_attention_bias = Embedding(n_rel, h) in each stack's first layer)")
def relative_bias_params(*, n_stack: int, n_rel: int, h_q: int) -> int:
    return n_stack * n_rel * h_q


@formula(id="params.lm_head_bias", symbol="P_LMb", unit="parameters", expr="V",
         source="Devlin et al. 2019 (BERT): the MLM head adds a learned bias per vocabulary entry "
                "(BertLMPredictionHead.bias)")
def lm_head_bias_params(*, V: int) -> int:
    """P_LMb [parameters] = V. Untied, transformers 5 registers a second, unused copy (decoder.bias beside bias):
    not counted, as no checkpoint stores it and no output reads it."""
    return V
