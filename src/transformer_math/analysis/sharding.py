"""Which parameter tensors a GPU holds under a parallel layout, exactly (rank 0: the largest shard).

The tensor inventory mirrors what implementations register (the parameter count of every preset is checked
against Hugging Face on the meta device, and this inventory sums to the same count). Each tensor has a
tensor-parallel style, as torchtitan, Megatron and vLLM split a decoder:

- colwise: dim 0 (output features) over T_p — q/k/v, gate/up, MLA's q_b/kv_b, the LM head; vocab: the
  embedding's vocabulary rows over T_p;
- rowwise: the input-feature dim over T_p — o_proj, down_proj (a rowwise bias is replicated);
- experts: the expert dim over E_p and the expert width over the expert tensor-parallel degree;
- replicate: norms, routers, MLA's down-projections (q_a, kv_a).

FSDP (ZeRO-3) then splits dim 0 of each local tensor over its data × context ranks (experts over the ranks
left after E_p, on dim 1 when fewer local experts than ranks, as torchtitan does). Checked against torch's
own fully_shard / parallelize_module / distribute_tensor over a fake process group in
tests/test_execution_sharding.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from transformer_math.analysis.quantity import Quantity, q, total
from transformer_math.config.spec import LayerSpec, ModelSpec
from transformer_math.formulas import parallel as f

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True, slots=True)
class Tensor:
    """One parameter tensor of a layer kind (or of the model), `shape` as registered, `style` as split."""

    name: str  # component path: attention.q_proj.weight, mlp.down_proj.weight, moe.experts.gate_up, …
    shape: tuple[int, ...]
    style: str  # colwise | rowwise | vocab | replicate | experts | experts_down | experts_bias | experts_down_bias
    group: str  # memory group (the names --weight-dtype takes): attention, norms, mlp, experts, …

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def _linear(name: str, d_out: int, d_in: int, style: str, group: str, bias: bool) -> list[Tensor]:
    out = [Tensor(f"{name}.weight", (d_out, d_in), style, group)]
    if bias:
        out.append(Tensor(f"{name}.bias", (d_out,), "colwise" if style == "colwise" else "replicate", group))
    return out


def layer_tensors(s: ModelSpec, layer: LayerSpec) -> list[Tensor]:
    """The parameter tensors of one layer of this kind."""
    d, h_q, h_kv, d_h = s.d_model, s.n_heads, s.n_kv_heads, s.head_dim
    out: list[Tensor] = []
    if s.mla is None:
        out += _linear("attention.q_proj", h_q * d_h, d, "colwise", "attention", s.qkv_bias)
        out += _linear("attention.k_proj", h_kv * d_h, d, "colwise", "attention", s.qkv_bias)
        out += _linear("attention.v_proj", h_kv * d_h, d, "colwise", "attention", s.qkv_bias)
        out += _linear("attention.o_proj", d, h_q * d_h, "rowwise", "attention", s.o_bias)
        if s.qk_norm:
            span_q, span_k = (h_q * d_h, h_kv * d_h) if s.qk_norm_span == "all" else (d_h, d_h)
            out += [Tensor("attention.q_norm", (span_q,), "replicate", "norms"),
                    Tensor("attention.k_norm", (span_k,), "replicate", "norms")]
    else:
        m = s.mla
        qk = h_q * (m.d_nope + m.d_rope)
        if m.q_rank:
            out += _linear("attention.q_a_proj", m.q_rank, d, "replicate", "attention", s.qkv_bias)
            out += [Tensor("attention.q_a_norm", (m.q_rank,), "replicate", "norms")]
            out += _linear("attention.q_b_proj", qk, m.q_rank, "colwise", "attention", False)
        else:
            out += _linear("attention.q_proj", qk, d, "colwise", "attention", False)
        out += _linear("attention.kv_a_proj", m.kv_rank + m.d_rope, d, "replicate", "attention", s.qkv_bias)
        out += [Tensor("attention.kv_a_norm", (m.kv_rank,), "replicate", "norms")]
        out += _linear("attention.kv_b_proj", h_q * (m.d_nope + m.d_v), m.kv_rank, "colwise", "attention", False)
        out += _linear("attention.o_proj", d, h_q * m.d_v, "rowwise", "attention", s.o_bias)
    if s.sinks:
        out.append(Tensor("attention.sinks", (h_q,), "colwise", "attention"))
    k_norm = 2 if s.norm == "layernorm" else 1
    out += [Tensor(f"norms.{i}", (k_norm * d,), "replicate", "norms") for i in range(s.norms_per_layer)]
    if layer.mlp == "dense":
        out += _mlp("mlp", s, layer.d_ff, s.mlp_bias, "mlp")
    else:
        m2 = s.moe
        assert m2 is not None
        E, w = m2.n_experts, m2.d_moe
        out += _linear("moe.router", E, d, "replicate", "router", m2.router_bias)
        out += [Tensor("moe.experts.gate_up", (E, s.n_up * w, d), "experts", "experts"),
                Tensor("moe.experts.down", (E, d, w), "experts_down", "experts")]
        if m2.expert_bias:
            out += [Tensor("moe.experts.gate_up_bias", (E, s.n_up * w), "experts_bias", "experts"),
                    Tensor("moe.experts.down_bias", (E, d), "experts_down_bias", "experts")]
        if m2.n_shared:
            out += _mlp("moe.shared_experts", s, m2.shared_width, False, "shared_experts")
        if m2.shared_gate:
            out += _linear("moe.shared_gate", 1, d, "replicate", "router", False)
    return out


def _mlp(name: str, s: ModelSpec, width: int, bias: bool, group: str) -> list[Tensor]:
    up = [_linear(f"{name}.gate_proj", width, s.d_model, "colwise", group, bias)] if s.n_up == 2 else []
    return [t for ts in up + [_linear(f"{name}.up_proj", width, s.d_model, "colwise", group, bias),
                              _linear(f"{name}.down_proj", s.d_model, width, "rowwise", group, bias)] for t in ts]


def edge_tensors(s: ModelSpec, *, first: bool, last: bool, pp: int) -> list[Tensor]:
    """Embedding (and learned positions) on the first stage; final norm and LM head on the last.

    A tied head is the embedding itself on one stage; across stages the last one keeps its own copy (Megatron
    ties them by all-reducing their gradients), so it holds V·d again.
    """
    d, V = s.d_model, s.vocab_size
    out = []
    if first:
        out.append(Tensor("embedding", (V, d), "vocab", "embedding"))
        if s.learned_positions:
            out.append(Tensor("positions", (s.max_context, d), "replicate", "positions"))
    if last:
        out.append(Tensor("final_norm", ((2 if s.norm == "layernorm" else 1) * d,), "replicate", "norms"))
        if not s.tie_embeddings or (pp > 1 and not first):
            out.append(Tensor("lm_head", (V, d), "vocab", "lm_head"))
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Mesh:
    """Degrees that split parameters on one GPU: T_p (and the experts' T_e), E_p, FSDP over data × context."""

    tp: Any = 1
    ep: Any = 1
    expert_tp: Any = None  # default: T_p
    fsdp: Any = 1  # ranks a ZeRO-3 parameter is split over (D_p·C_p); 1 when parameters are not sharded
    expert_fsdp: Any = 1  # the same for routed experts: the data × context ranks left after E_p
    vocab_tp: Any = None  # ranks the embedding and LM head rows split over (default T_p; 1: kept whole)

    def splits(self, t: Tensor) -> list[tuple[int, Any, str]]:
        """(dim, degree, mesh axis) in the order they cut `t`: tensor / expert parallelism, then FSDP."""
        T, Te = self.tp, self.tp if self.expert_tp is None else self.expert_tp
        if t.style == "vocab":
            return [(0, T if self.vocab_tp is None else self.vocab_tp, "tp"), (0, self.fsdp, "fsdp")]
        if t.style == "colwise":
            return [(0, T, "tp"), (0, self.fsdp, "fsdp")]
        if t.style == "rowwise":
            return [(1, T, "tp"), (0, self.fsdp, "fsdp")]
        if t.style == "replicate":
            return [(0, self.fsdp, "fsdp")]
        # routed experts: E over E_p; width over the expert TP degree; FSDP over the ranks left after E_p, on
        # dim 1 when there are fewer local experts than those ranks (torchtitan/distributed/fsdp.py)
        local = -(-t.shape[0] // self.ep)
        fsdp_dim = _pick(self.expert_fsdp > local, 1, 0)
        width = {"experts": [(1, Te, "tp")], "experts_down": [(2, Te, "tp")], "experts_bias": [(1, Te, "tp")],
                 "experts_down_bias": []}[t.style]
        return [(0, self.ep, "ep"), *width, (fsdp_dim, self.expert_fsdp, "efsdp")]

    def degrees(self, t: Tensor) -> tuple[Any, Any, Any]:
        """(k_0, k_1, k_2): the product of degrees splitting each dimension of `t` (rank 0's shard is
        ⌈n_i/k_i⌉ per dimension, as nested splits of one dimension compose that way on rank 0)."""
        k: list[Any] = [1, 1, 1]
        for dim, degree, _ in self.splits(t):
            for i in range(3):
                k[i] = k[i] * _pick(dim == i, degree, 1)
        return k[0], k[1], k[2]


def _pick(cond: Any, yes: Any, no: Any) -> Any:
    """cond ? yes : no, elementwise when cond is an array (the layout search)."""
    return yes * cond + no * (1 - cond) if hasattr(cond, "shape") else (yes if cond else no)


def tensor_local(t: Tensor, mesh: Mesh, count: Any = 1) -> Any:
    """Elements of `count` copies of `t` on rank 0 (a number, or an array for arrays of degrees)."""
    n = (t.shape + (1, 1))[:3]
    k = mesh.degrees(t)
    return f.tensor_elements(c=count, n_0=n[0], k_0=k[0], n_1=n[1], k_1=k[1], n_2=n[2], k_2=k[2])


def tensor_at(t: Tensor, mesh: Mesh, coords: dict[str, int]) -> int:
    """Elements of `t` on the rank at mesh coordinates {tp, ep, fsdp, efsdp} (any rank, not only rank 0):
    each split takes that rank's rows of what the previous splits left (torch.chunk semantics)."""
    dims = list(t.shape)
    for dim, degree, axis in mesh.splits(t):
        dims[dim] = f.shard_rows(n=dims[dim], k=degree, r=coords[axis] if degree > 1 else 0)
    n = 1
    for x in dims:
        n *= x
    return n


def tensor_quantity(t: Tensor, mesh: Mesh, count: int = 1) -> Quantity:
    n = (t.shape + (1, 1))[:3]
    k = mesh.degrees(t)
    return q(t.name, f.tensor_elements, c=count, n_0=n[0], k_0=int(k[0]), n_1=n[1], k_1=int(k[1]), n_2=n[2],
             k_2=int(k[2]), note=t.style)


@lru_cache(maxsize=4096)
def stage_kinds(s: ModelSpec, pp: int, stage: int) -> list[tuple[LayerSpec, int]]:
    """Layer kinds and counts on pipeline stage `stage` (contiguous layers; formulas.parallel.stage_layers)."""
    start = sum(f.stage_layers(N_L=s.n_layers, P_p=pp, i=i) for i in range(stage))
    n = f.stage_layers(N_L=s.n_layers, P_p=pp, i=stage)
    counts: dict[LayerSpec, int] = {}
    for layer in s.layers[start:start + n]:
        counts[layer] = counts.get(layer, 0) + 1
    return list(counts.items())


def training_mesh(*, tp: Any, ep: Any, dp: Any, cp: Any, sharded: Any) -> Mesh:
    """Degrees for training: TP, EP (experts borrow E_p from the data × context ranks, split T_p-wide in width as
    Megatron's expert tensor parallelism does), and FSDP over D_p·C_p when `sharded` (the ZeRO stage covers it)."""
    F = dp * cp
    return Mesh(tp=tp, ep=ep, fsdp=F ** sharded, expert_fsdp=(F // ep) ** sharded)


@lru_cache(maxsize=4096)
def stage_tensors(s: ModelSpec, pp: int, stage: int) -> list[tuple[Tensor, int]]:
    """(tensor, copies) held by a pipeline stage."""
    out = [(t, n) for layer, n in stage_kinds(s, pp, stage) for t in layer_tensors(s, layer)]
    return out + [(t, 1) for t in edge_tensors(s, first=stage == 0, last=stage == pp - 1, pp=pp)]


def local_params(s: ModelSpec, mesh: Mesh, *, pp: int = 1, stage: int = 0) -> dict[str, Any]:
    """Elements per memory group on rank 0 of `stage` (numbers, or arrays over layouts)."""
    out: dict[str, Any] = {}
    for t, n in stage_tensors(s, pp, stage):
        out[t.group] = out.get(t.group, 0) + tensor_local(t, mesh, n)
    return out


def local_params_quantity(s: ModelSpec, mesh: Mesh, *, pp: int = 1, stage: int = 0, key: str) -> Quantity:
    """The same as a checked sum per group and tensor, for explain."""
    groups: dict[str, list[Quantity]] = {}
    for t, n in stage_tensors(s, pp, stage):
        groups.setdefault(t.group, []).append(tensor_quantity(t, mesh, n))
    parts = [total(g, qs, unit="parameters", symbol="P_GPU") for g, qs in groups.items()]
    return total(key, parts, unit="parameters", symbol="P_GPU",
                 note=f"rank 0 of stage {stage}: T_p={mesh.tp}, E_p={mesh.ep}, FSDP over {mesh.fsdp}")


def fsdp_units(s: ModelSpec, mesh: Mesh, *, pp: int = 1, stage: int = 0) -> dict[str, Any]:
    """Rank 0's elements per FSDP unit kind on a stage: decoder layers (without routed experts), routed experts,
    and the root (embedding, positions, final norm, LM head): what the data-parallel collectives move."""
    out: dict[str, Any] = {"layers": 0, "experts": 0, "root": 0}
    for t, n in stage_tensors(s, pp, stage):
        unit = "root" if t.group in ("embedding", "positions", "lm_head") or t.name == "final_norm" else (
            "experts" if t.group == "experts" else "layers")
        out[unit] = out[unit] + tensor_local(t, mesh, n)
    return out
