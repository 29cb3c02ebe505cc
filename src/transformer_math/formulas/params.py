"""Parameter counts [parameters] (seed 000 §10, seed 001 §10), per tensor group, as implementations register them."""

from transformer_math.formulas._registry import formula


@formula(id="params.linear", symbol="P_lin", unit="parameters", expr="d_in·d_out + 1_bias·d_out",
         source="seed 000 §1 projection shapes; a bias adds one value per output feature")
def linear_params(*, d_in: int, d_out: int, bias: bool) -> int:
    return d_in * d_out + bias * d_out


@formula(id="params.embedding", symbol="P_emb", unit="parameters", expr="V·d",
         source="seed 000 §5: W_E ∈ R^(V×d_emb)")
def embedding_params(*, V: int, d: int) -> int:
    return V * d


@formula(id="params.positions", symbol="P_pos", unit="parameters", expr="L_max·d",
         source="GPT-2 learned absolute positions: one d-vector per position up to L_max")
def position_params(*, L_max: int, d: int) -> int:
    return L_max * d


@formula(id="params.lm_head", symbol="P_LM", unit="parameters", expr="(1 - 1_tie)·d·V",
         source="seed 000 §5: W_LM ∈ R^(d×V); tied heads reuse W_E and are counted once")
def lm_head_params(*, d: int, V: int, tie: bool) -> int:
    return (1 - tie) * d * V


@formula(id="params.norm", symbol="P_norm", unit="parameters", expr="n_norm·k_norm·w",
         source="seed 001 §10.3: a norm has a scale γ of width w; LayerNorm adds a bias β (k_norm = 2)")
def norm_params(*, n_norm: int, k_norm: int, w: int) -> int:
    return n_norm * k_norm * w


@formula(id="params.sinks", symbol="P_sink", unit="parameters", expr="h_q",
         source="gpt-oss model card §2.2: one learned attention-sink logit per query head")
def sink_params(*, h_q: int) -> int:
    return h_q


@formula(id="params.mlp", symbol="P_mlp", unit="parameters", expr="g_up·d·d_ff + d_ff·d + 1_bias·(g_up·d_ff + d)",
         source="seed 000 §10: P_mlp,per_layer = g_up·d·d_ff + d_ff·d (biases added when present)")
def mlp_params(*, d: int, d_ff: int, g_up: int, bias: bool) -> int:
    return g_up * d * d_ff + d_ff * d + bias * (g_up * d_ff + d)


@formula(id="params.router", symbol="P_router", unit="parameters", expr="d·E + 1_bias·E",
         source="seed 000 §6: a linear router scores E experts from the d-wide token")
def router_params(*, d: int, E: int, bias: bool) -> int:
    return d * E + bias * E


@formula(id="params.experts", symbol="P_moe", unit="parameters",
         expr="E·(g_up·d·d_moe + d_moe·d + 1_bias·(g_up·d_moe + d))",
         source="seed 000 §10: P_expert = g_up·d·d_moe + d_moe·d, times E experts per MoE layer")
def experts_params(*, E: int, d: int, d_moe: int, g_up: int, bias: bool) -> int:
    return E * (g_up * d * d_moe + d_moe * d + bias * (g_up * d_moe + d))


@formula(id="params.active", symbol="P_active", unit="parameters", expr="P - P_routed + e/E·P_routed",
         source="seed 000 §10/§15: P_active ≈ P_dense + N_L,moe·e·P_expert (conventions.md: all but routed experts)")
def active_params(*, P: int, P_routed: int, e: int, E: int) -> int:
    return P - P_routed + P_routed * e // E
