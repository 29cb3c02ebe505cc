"""Parameter breakdowns: by component, by layer kind, total and MoE-active."""

from __future__ import annotations

from collections import defaultdict

from transformer_math.analysis.quantity import Quantity, q, total
from transformer_math.config.spec import LayerSpec, ModelSpec
from transformer_math.formulas import params as f

# Memory groups a parameter component belongs to (a quantization_config or --weight-dtype names these).
GROUPS = ("embedding", "positions", "lm_head", "attention", "norms", "mlp", "router", "experts", "shared_experts")
_GROUP_OF_HEAD = {"cross_attention": "attention", "token_types": "embedding"}


def group_of(component: str) -> str:
    """'attention.q_proj' → 'attention'; 'moe.experts' → 'experts'; 'attention.qk_norm' → 'norms'."""
    if component.endswith("norm") or component == "norms":
        return "norms"
    if component == "moe.shared_gate":  # a d→1 routing gate: kept 16-bit like the router
        return "router"
    head, _, tail = component.partition(".")
    return tail if head == "moe" else _GROUP_OF_HEAD.get(head, head)


def _projections(s: ModelSpec, n: int, block: str) -> list[Quantity]:
    d, h_q, h_kv, d_h = s.d_model, s.n_heads, s.n_kv_heads, s.head_dim
    return [q(f"{block}.q_proj", f.linear_params, symbol="P_WQ", count=n, d_in=d, d_out=h_q * d_h, bias=s.qkv_bias),
            q(f"{block}.k_proj", f.linear_params, symbol="P_WK", count=n, d_in=d, d_out=h_kv * d_h, bias=s.qkv_bias),
            q(f"{block}.v_proj", f.linear_params, symbol="P_WV", count=n, d_in=d, d_out=h_kv * d_h, bias=s.qkv_bias),
            q(f"{block}.o_proj", f.linear_params, symbol="P_WO", count=n, d_in=h_q * d_h, d_out=d, bias=s.o_bias)]


def layer_params(s: ModelSpec, layer: LayerSpec, n: int, *, cross: bool = False) -> list[Quantity]:
    """The parameters of `n` identical layers, one quantity per component; `cross`: a decoder layer of an
    encoder–decoder model, which also cross-attends (its own projections and one more norm)."""
    d, h_q, h_kv, d_h = s.d_model, s.n_heads, s.n_kv_heads, s.head_dim
    out: list[Quantity] = []
    if s.mla is None:
        out += _projections(s, n, "attention")
        if s.qk_norm and s.qk_norm_span == "all":  # OLMo-2: one scale per feature of all heads' q and k
            out += [q("attention.q_norm", f.norm_params, count=n, n_norm=1, k_norm=1, w=h_q * d_h),
                    q("attention.k_norm", f.norm_params, count=n, n_norm=1, k_norm=1, w=h_kv * d_h)]
        elif s.qk_norm:
            out.append(q("attention.qk_norm", f.norm_params, count=n, n_norm=2, k_norm=1, w=d_h))
    else:
        m = s.mla
        qk = h_q * (m.d_nope + m.d_rope)
        if m.q_rank:
            out += [q("attention.q_a_proj", f.linear_params, symbol="P_WDQ", count=n, d_in=d, d_out=m.q_rank,
                      bias=s.qkv_bias),
                    q("attention.q_a_norm", f.norm_params, count=n, n_norm=1, k_norm=1, w=m.q_rank),
                    q("attention.q_b_proj", f.linear_params, symbol="P_WUQ", count=n, d_in=m.q_rank, d_out=qk,
                      bias=False)]
        else:
            out.append(q("attention.q_proj", f.linear_params, symbol="P_WQ", count=n, d_in=d, d_out=qk, bias=False))
        out += [q("attention.kv_a_proj", f.linear_params, symbol="P_WDKV", count=n, d_in=d, d_out=m.kv_rank + m.d_rope,
                  bias=s.qkv_bias),
                q("attention.kv_a_norm", f.norm_params, count=n, n_norm=1, k_norm=1, w=m.kv_rank),
                q("attention.kv_b_proj", f.linear_params, symbol="P_WUKV", count=n, d_in=m.kv_rank,
                  d_out=h_q * (m.d_nope + m.d_v), bias=False),
                q("attention.o_proj", f.linear_params, symbol="P_WO", count=n, d_in=h_q * m.d_v, d_out=d,
                  bias=s.o_bias)]
    if s.sinks:
        out.append(q("attention.sinks", f.sink_params, count=n, h_q=h_q))
    if cross:
        out += _projections(s, n, "cross_attention")
    n_norm = s.norms_per_layer + (s.norms_per_layer // 2 if cross else 0)
    out.append(q("norms", f.norm_params, count=n, n_norm=n_norm, k_norm=1 + (s.norm == "layernorm"), w=d))
    if layer.mlp == "dense":
        out.append(q("mlp", f.mlp_params, count=n, d=d, d_ff=layer.d_ff, g_up=s.n_up, bias=s.mlp_bias))
    else:
        moe = s.moe
        assert moe is not None
        out += [q("moe.router", f.router_params, count=n, d=d, E=moe.n_experts, bias=moe.router_bias),
                q("moe.experts", f.experts_params, count=n, E=moe.n_experts, d=d, d_moe=moe.d_moe, g_up=s.n_up,
                  bias=moe.expert_bias)]
        if moe.n_shared:
            out.append(q("moe.shared_experts", f.mlp_params, symbol="P_shared", count=n, d=d, d_ff=moe.shared_width,
                         g_up=s.n_up, bias=False))
        if moe.shared_gate:
            out.append(q("moe.shared_gate", f.shared_gate_params, count=n, d=d))
    return out


def params_breakdown(s: ModelSpec) -> Quantity:
    """params.total: embeddings + positions + (encoder layers + encoder norm) + every layer kind + final norm +
    LM head (BERT: with its d → d transform, norm and bias)."""
    d, k_norm = s.d_model, 1 + (s.norm == "layernorm")
    parts = [q("embedding", f.embedding_params, symbol="P_emb", V=s.vocab_size, d=d)]
    if s.learned_positions:
        parts.append(q("positions", f.position_params, L_max=s.max_context, d=d))
    if s.token_types:
        parts.append(q("token_types", f.token_type_params, V_tt=s.token_types, d=d))
    if s.embedding_norm:
        parts.append(q("embedding_norm", f.norm_params, n_norm=1, k_norm=k_norm, w=d))
    if s.relative_buckets:
        parts.append(q("positions.relative_bias", f.relative_bias_params, n_stack=1 + bool(s.encoder_layers),
                       n_rel=s.relative_buckets, h_q=s.n_heads))
    for layer, n in s.encoder_kinds:
        parts.append(total(f"encoder.layers[{layer.kind}]×{n}", layer_params(s, layer, n), unit="parameters",
                           symbol="P_layers"))
    if s.encoder_layers:
        parts.append(q("encoder.final_norm", f.norm_params, n_norm=1, k_norm=k_norm, w=d))
    for layer, n in s.layer_kinds:
        parts.append(total(f"layers[{layer.kind}]×{n}", layer_params(s, layer, n, cross=bool(s.encoder_layers)),
                           unit="parameters", symbol="P_layers"))
    if s.norm_placement != "post_add":  # post-add layers end normalized: no final norm (BERT)
        parts.append(q("final_norm", f.norm_params, n_norm=1, k_norm=k_norm, w=d))
    if s.head_transform:
        parts += [q("lm_head.transform", f.linear_params, d_in=d, d_out=d, bias=True),
                  q("lm_head.transform_norm", f.norm_params, n_norm=1, k_norm=k_norm, w=d)]
    parts.append(q("lm_head", f.lm_head_params, d=d, V=s.vocab_size, tie=s.tie_embeddings))
    if s.lm_head_bias:
        parts.append(q("lm_head.bias", f.lm_head_bias_params, V=s.vocab_size))
    return total("params.total", parts, unit="parameters", symbol="P")


def by_component(breakdown: Quantity) -> dict[str, int]:
    """Totals per component across all layers (attention.q_proj, mlp, moe.experts, …)."""
    out: dict[str, int] = defaultdict(int)
    for part in breakdown.children:
        for leaf in part.children or (part,):  # a layer stack's components, or a top-level component
            out[leaf.key] += int(leaf.value)
    return dict(out)


def by_group(breakdown: Quantity) -> dict[str, int]:
    """Totals per memory group (embedding, lm_head, attention, norms, mlp, router, experts, shared_experts)."""
    out: dict[str, int] = defaultdict(int)
    for key, v in by_component(breakdown).items():
        out[group_of("norms" if key == "final_norm" else key)] += v
    return dict(out)


def routed_expert_params(breakdown: Quantity) -> int:
    return by_component(breakdown).get("moe.experts", 0)


def active_params(s: ModelSpec, breakdown: Quantity, *, convention: str = "all") -> Quantity:
    """params.active — what one token touches: all but routed experts, plus e/E of those.

    convention 'all' (docs/conventions.md; the DeepSeek-V3 report's): embedding and head counted; 'no_embedding'
    (gpt-oss card): the embedding table is not counted (a lookup, not a matmul), the LM head is.
    """
    P, routed = int(breakdown.value), routed_expert_params(breakdown)
    e, E = (s.moe.experts_per_token, s.moe.n_experts) if s.moe else (1, 1)
    value = q("params.active", f.active_params, P=P, P_routed=routed, e=e, E=E)
    if convention == "all":
        return value
    emb = by_component(breakdown)["embedding"]
    return total(f"params.active_{convention}", [value, Quantity(key="minus_embedding", value=-emb,
                 unit="parameters", symbol="P_emb", note="embedding lookup not counted")],
                 unit="parameters", symbol="P_active", note="gpt-oss model card convention")
