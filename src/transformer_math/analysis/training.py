"""Training plan: memory per GPU and time of one optimizer step under a parallel layout; MFU, HFU, days, cost.

One GPU runs its pipeline stage's layers (torchtitan's split), its tensor-parallel shard of every matmul
(1/T_p), its context-parallel share of each sequence (s/C_p tokens; (s/C_p)·s query–key pairs, the causal half
executed by flash kernels) and, for MoE, its experts (E/E_p of them, split over T_p in width). Parameters,
gradients and optimizer states shard over the data × context ranks by ZeRO stage (FSDP = ZeRO-3), exactly as
analysis/sharding.py counts them. Per micro-batch the forward of every op is a roofline cost (costs.py); the
backward and recompute multiply those by their passes; collectives, the pipeline bubble and exposed
data-parallel traffic come on top.

The composition is written once (`_compose`) over a `Book`: the explained plan evaluates it on numbers and
keeps every term as a registered, explainable Quantity; the layout search evaluates it on numpy arrays of
layouts. Terms that need per-op tables (op costs, activations of the core, sharded tensors) are computed per
distinct (micro-batch, tokens, T_p, …) and spread over the arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from transformer_math.analysis import collectives
from transformer_math.analysis import efficiency as k
from transformer_math.analysis.collectives import Collective
from transformer_math.analysis.costs import OpCost
from transformer_math.analysis.efficiency import Efficiency, efficiency_for
from transformer_math.analysis.flops import forward_flops
from transformer_math.analysis.params import active_params, params_breakdown
from transformer_math.analysis.quantity import Book, Quantity, total
from transformer_math.analysis.sharding import (
    fsdp_units,
    local_params,
    local_params_quantity,
    stage_kinds,
    training_mesh,
)
from transformer_math.analysis.train_setup import (
    BF16,
    FINETUNES,
    NF4,
    OPTIMIZERS,
    PRECISIONS,
    RECOMPUTE,
    SCHEDULES,
    Finetune,
    Layout,
    Workload,
    lora_linears,
    lora_params,
    validate,
)
from transformer_math.analysis.train_stage import Stage, stage
from transformer_math.config.hardware import HardwareSpec
from transformer_math.config.spec import ModelSpec
from transformer_math.formulas import comm
from transformer_math.formulas import memory as fm
from transformer_math.formulas import parallel as fp
from transformer_math.formulas import plan as fl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FINETUNES", "OPTIMIZERS", "PRECISIONS", "RECOMPUTE", "SCHEDULES", "Finetune", "Layout", "TrainPlan",
           "Workload", "lora_params", "plan_training", "validate"]


# ---------------------------------------------------------------------------------------------------------------
# The composition, once, over numbers (explained) or arrays (search)

ROLES = ("first", "second", "last")  # stage 0, stage 1, stage P_p − 1: the peaks of memory and time lie among them


def role_stage(role: str, pp: int) -> int:
    return {"first": 0, "second": min(1, pp - 1), "last": pp - 1}[role]


def _bus(hw: HardwareSpec, eff: Efficiency, span: Any) -> tuple[Any, Any]:
    """(BW, α) of a collective whose ranks span `span` consecutive GPUs: the link inside a node, else the NICs."""
    inside = span <= hw.gpus_per_node
    link = hw.link_bandwidth_bytes_per_s * eff.link
    net = min(link, hw.gpus_per_node * hw.nic_bandwidth_bytes_per_s * eff.nic)
    return inside * link + (1 - inside) * net, inside * eff.alpha_link_s + (1 - inside) * eff.alpha_nic_s


def _memory_terms(book: Book, s: ModelSpec, hw: HardwareSpec, w: Workload, x: dict[str, Any], c: dict[str, Any],
                  p: str) -> Any:
    """Memory per GPU of one stage role (prefix p): weights, gradients, optimizer states, activations, reserve."""
    ft = w.finetune
    b_m, b_v = OPTIMIZERS[w.optimizer]
    b_w = (NF4 if ft.mode == "qlora" else BF16).bytes_per_element
    keys = []
    for g, P in c["P_w"].items():
        keys.append(f"{p}weights.{g}")
        book.f(keys[-1], fm.weight_bytes, symbol="M_param", P=P, b_w=b_w)
    if ft.mode != "full":  # the adapters themselves, trained in fp32
        keys.append(f"{p}weights.lora")
        book.f(keys[-1], fm.gradient_bytes, symbol="M_param", P_train=c["P_lora_gpu"], b_g=4)
    book.sum(f"{p}memory.weights", keys, unit="bytes", symbol="M_w")
    if ft.mode == "full":
        states: tuple[tuple[str, Any, Callable[..., int], dict[str, Any]], ...] = (
            ("gradients", c["P_g"], fm.gradient_bytes, {"b_g": 2}),
            ("optimizer", c["P_o"], fm.optimizer_bytes, {"b_master": 4, "b_m": b_m, "b_v": b_v}))
        for name, P_by, fn, kw in states:
            for g, P in P_by.items():
                book.f(f"{p}{name}.{g}", fn, P_train=P, **kw)
            book.sum(f"{p}memory.{name}", [f"{p}{name}.{g}" for g in P_by], unit="bytes",
                     symbol="M_grad" if name == "gradients" else "M_opt")
    else:  # adapters train in fp32 directly: no master copy
        book.f(f"{p}memory.gradients", fm.gradient_bytes, P_train=c["P_lora_gpu"], b_g=4)
        book.f(f"{p}memory.optimizer", fm.optimizer_bytes, P_train=c["P_lora_gpu"], b_master=0, b_m=b_m, b_v=b_v)
    book.f(f"{p}pipeline.in_flight", fp.in_flight, g=x["gpipe"], v=x["v"], P_p=x["pp"], m=x["m"], i=c["i"])
    book.f(f"{p}memory.activations", fp.activations_per_gpu, m_live=book.ref(f"{p}pipeline.in_flight"),
           M_rep=c["act_rep"],
           M_split=c["act_split"], T_p=x["tp"], M_work=c["act_work"])
    book.f(f"{p}memory.reserve", fp.reserve_bytes, M_fixed=k.RESERVE_FIXED, f_reserve=k.RESERVE_FRACTION_TRAIN,
           M_HBM=hw.memory_bytes)
    return book.sum(f"{p}memory.per_gpu", [f"{p}memory.{n}" for n in ("weights", "gradients", "optimizer",
                                                                      "activations", "reserve")],
                    unit="bytes", symbol="M_GPU")


def _collective_terms(book: Book, hw: HardwareSpec, eff: Efficiency, key: str, entries: list[Collective],
                      ranks: dict[str, Any], spans: dict[str, Any]) -> list[str]:
    """Each collective: count × the time of one call (ring models of formulas/comm.py); returns the keys."""
    keys = []
    for j, e in enumerate(entries):
        bw, alpha = _bus(hw, eff, spans[e.group])
        one = f"{key}.{e.group}.{e.phase}.{e.kind}.{j}"
        if e.kind == "send" or (e.group == "cp" and e.kind == "all_to_all"):  # a ring pass: the buffer to rank + 1
            book.f(f"{one}.t1", comm.p2p, symbol="t_p2p", α=alpha, S=e.bytes, BW=bw)
        else:
            fn = {"all_reduce": comm.all_reduce_ring, "all_to_all": comm.all_to_all}.get(e.kind, comm.all_gather)
            book.f(f"{one}.t1", fn, symbol="t_1", n=ranks[e.group], α=alpha, S=e.bytes, BW=bw)
        book.f(one, fl.collectives_time, symbol="t_coll", note=e.note, n_coll=e.count, t_1=book.ref(f"{one}.t1"))
        keys.append(one)
    return keys


def _spans(x: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ranks of each group and the consecutive GPUs it spans (mesh order: TP innermost, then CP, DP, PP)."""
    tp, cp, dp, ep = x["tp"], x["cp"], x["dp"], x["ep"]
    F = dp * cp
    ranks = dict(tp=tp, cp=cp, ep=ep, pp=2, dp=F, dp_e=F // ep)
    spans = dict(tp=tp, cp=tp * cp, ep=tp * ep, pp=tp * F * x["pp"], dp=tp * F, dp_e=tp * F)
    return ranks, spans


def _time_terms(book: Book, s: ModelSpec, hw: HardwareSpec, eff: Efficiency, w: Workload, x: dict[str, Any],
                c: dict[str, Any], p: str) -> Any:
    """Time of one micro-batch on one stage role: compute passes, TP/CP/EP collectives, pipeline sends."""
    full, k_att = x["full"], (k.ATTENTION_BACKWARD if w.flash_attention else 2.0)
    sel = x["sel"] * (not w.flash_attention)
    book.given(f"{p}time.linear", c["t_lin"], c.get("q_lin"))
    book.given(f"{p}time.attention", c["t_att"], c.get("q_att"))
    book.given(f"{p}time.elementwise", c["t_elem"], c.get("q_elem"))
    book.given(f"{p}time.aux", c["t_aux"], c.get("q_aux"))
    t_lin, t_att, t_elem = (book.ref(f"{p}time.{k_}") for k_ in ("linear", "attention", "elementwise"))
    book.f(f"{p}time.recompute", fl.recompute_time, full=full, sel=sel, t_lin=t_lin, t_att=t_att, t_elem=t_elem)
    book.f(f"{p}time.compute", fl.compute_time, k_bwd=x["k_bwd"], t_lin=t_lin, k_att=k_att, t_att=t_att,
           k_el=k.ELEMENTWISE_BACKWARD, t_elem=t_elem, t_rec=book.ref(f"{p}time.recompute"),
           t_aux=book.ref(f"{p}time.aux"))
    ranks, spans = _spans(x)
    tok = x["mb"] * x["T"]
    S = tok * s.d_model * 2
    first, last = c["i"] == 0, c["i"] == x["pp"] - 1
    tp_on = x["tp"] > 1
    tp = collectives.tensor_parallel(n_L=c["n_layers"] * tp_on, first=first * tp_on, last=last * tp_on,
                                     sp=x["sp"], full=full, S=S, S_loss=tok * 4 * tp_on,
                                     n_norms=c["n_norms"] * tp_on, b_norm=s.d_model * 4)
    book.sum(f"{p}time.tp", _collective_terms(book, hw, eff, f"{p}time.tp", tp, ranks, spans), unit="s",
             symbol="t_TP")
    heads = s.n_heads / x["tp"]  # torchtitan expands GQA's K/V to h_q heads before the attention kernel
    width = (s.mla.d_nope + s.mla.d_rope + s.mla.d_v) if s.mla else 2 * s.head_dim
    KV = tok * heads * width * 2
    cp = collectives.context_parallel(n_L=c["n_layers"], C_p=x["cp"], full=full, KV=KV, dKV=2 * KV)
    cp_keys = _collective_terms(book, hw, eff, f"{p}time.cp", cp, ranks, spans)
    n_att = c["n_layers"] * (x["cp"] > 1)

    def per_layer(phase: str) -> Any:
        return sum(book.values[k_] for k_, e in zip(cp_keys, cp, strict=True) if e.phase == phase) / (
            n_att + (n_att == 0))

    book.f(f"{p}time.cp", fl.cp_exposed, n_att=n_att, t_f=per_layer("fwd"), t_b=per_layer("bwd"),
           t_att_l=c["t_att"] / (c["n_layers"] + (c["n_layers"] == 0)), k_att=k_att)
    e = s.moe.experts_per_token if s.moe else 0
    ep = collectives.expert_parallel(n_moe=c["n_moe"], E_p=x["ep"], full=full, S_tok=S * e / x["sp_div"])
    book.sum(f"{p}time.ep", _collective_terms(book, hw, eff, f"{p}time.ep", ep, ranks, spans), unit="s",
             symbol="t_EP")
    pp = collectives.pipeline(P_p=x["pp"], S=S / x["sp_div"])
    book.sum(f"{p}time.pp", _collective_terms(book, hw, eff, f"{p}time.pp", pp, ranks, spans), unit="s",
             symbol="t_PP")
    return book.f(f"{p}time.microbatch", fl.microbatch_time, t_comp=book.ref(f"{p}time.compute"),
                  t_TP=book.ref(f"{p}time.tp"), t_CP=book.ref(f"{p}time.cp"), t_EP=book.ref(f"{p}time.ep"),
                  t_PP=book.ref(f"{p}time.pp"), η_TP=eff.overlap_tp, η_EP=eff.overlap_ep)


def _step_terms(book: Book, s: ModelSpec, hw: HardwareSpec, eff: Efficiency, w: Workload, x: dict[str, Any],
                c: dict[str, Any], *, t_mb: Any, M_GPU: Any, tokens: float, price: float) -> None:
    """Step time from the bottleneck micro-batch time, then MFU, HFU, throughput, days and cost."""
    book.f("train.micro_batches", fl.micro_batches, B=w.global_batch, D_p=x["dp"], b=x["mb"])
    m = book.ref("train.micro_batches")
    book.f("train.bubble", fp.bubble_time, P_p=x["pp"], v=x["v"], t_mb=t_mb)
    ranks, spans = _spans(x)
    full_ft = w.finetune.mode == "full"
    if full_ft:
        dp = collectives.data_parallel(zero=x["zero"], m=m, F=ranks["dp"], F_e=ranks["dp_e"], P_layers=c["P_layers"],
                                       P_experts=c["P_experts"], P_root=c["P_root"], n_L=c["n_layers"],
                                       n_moe=c["n_moe"], b_w=2, b_g=2)
    else:  # only the adapters' gradients are reduced
        dp = [collectives.Collective("dp", "bwd", "all_reduce", 1, c["P_lora_gpu"] * 4, "adapter gradients")]
    book.sum("train.dp.total", _collective_terms(book, hw, eff, "train.dp", dp, ranks, spans), unit="s",
             symbol="t_DP_all")
    book.f("train.dp", fl.dp_exposed, t_DP_all=book.ref("train.dp.total"), η_ov=eff.overlap, m=m, t_mb=t_mb)
    b_m, b_v = OPTIMIZERS[w.optimizer]
    master = 4 if w.finetune.mode == "full" else 0
    b_w = 2 if w.finetune.mode == "full" else 4
    book.f("train.optimizer", fl.optimizer_time, P_opt=c["P_opt"], b_rw=2 * b_w + 2 * (master + b_m + b_v),
           η_bw=eff.bw * eff.elementwise_bw, BW_HBM=hw.memory_bandwidth_bytes_per_s)
    book.f("train.step_time", fl.step_time, m=m, t_mb=t_mb, t_bubble=book.ref("train.bubble"),
           t_DP=book.ref("train.dp"), t_opt=book.ref("train.optimizer"))
    t_step = book.ref("train.step_time")
    book.f("train.model_flops", fl.model_flops, k_bwd=x["k_bwd"], F_lin=c["F_lin"], F_att=c["F_att"],
           F_adapt=c["F_adapt"])
    F_model = book.ref("train.model_flops")
    k_att = k.ATTENTION_BACKWARD if w.flash_attention else 2.0
    book.f("train.hardware_flops", fl.hardware_flops, F_model=F_model, full=x["full"],
                  sel=x["sel"] * (not w.flash_attention), F_lin=c["F_lin"], F_att=c["F_att"], F_adapt=c["F_adapt"],
                  k_att=k_att)
    n = x["tp"] * x["pp"] * x["dp"] * x["cp"]
    peak = hw.peak("bf16")
    book.f("train.mfu", fl.utilization, symbol="MFU", F=F_model, t_step=t_step, n_GPU=n, F_peak=peak)
    book.f("train.hfu", fl.utilization, symbol="HFU", F=book.ref("train.hardware_flops"), t_step=t_step, n_GPU=n,
           F_peak=peak)
    if w.finetune.mode == "full":
        book.f("train.palm_flops", fl.palm_flops, P_active=c["P_active"], N_L=s.n_layers, h_q=s.n_heads,
               d_qk=c["d_qk"], d_v=c["d_v"], s=w.seq, B=w.global_batch)
        book.f("train.mfu_palm", fl.utilization, symbol="MFU_PaLM", F=book.ref("train.palm_flops"),
               t_step=t_step, n_GPU=n, F_peak=peak)
    book.f("train.tokens_per_s", fl.tokens_per_s, B=w.global_batch, s=w.seq, t_step=t_step)
    if tokens:
        book.f("train.days", fl.days, T_train=tokens, tok_s=book.ref("train.tokens_per_s"))
        book.f("train.cost", fl.cost, t_train=book.ref("train.days"), n_GPU=n, price=price)
    book.f("train.over", fl.over_bytes, M_GPU=M_GPU, M_HBM=hw.memory_bytes)


def _layout_values(s: ModelSpec, w: Workload, *, tp: Any, pp: Any, dp: Any, cp: Any, ep: Any, mb: Any, rec: Any,
                   zero: Any, sp: Any, v: Any, gpipe: Any) -> dict[str, Any]:
    """The layout as the formulas' inputs (numbers, or numpy arrays of layouts); rec: 0/1/2 = none/selective/full."""
    return dict(tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, mb=mb, zero=zero, v=v, gpipe=gpipe, full=rec == 2, sel=rec == 1,
                k_bwd=2 if w.finetune.mode == "full" else 1, m=w.global_batch / (dp * mb), T=w.seq // cp,
                sp=sp, sp_div=tp ** sp)


@lru_cache(maxsize=64)
def _model_flops(s: ModelSpec, w: Workload) -> dict[str, Any]:
    """Model-level inputs of MFU: forward FLOPs of the global batch (causal: what the model requires) split into
    matmuls and the attention core, adapters, and PaLM's P_active."""
    fwd = forward_flops(s, B=w.global_batch, T=w.seq, attention="causal", key="flops.forward")
    att = sum(c.value for layer in fwd.children for c in layer.children if c.key.startswith("attention.scores")
              or c.key.startswith("attention.values"))
    P_lora = lora_params(s, w.finetune.rank, w.finetune.targets) if w.finetune.mode != "full" else 0
    params = params_breakdown(s)
    m = s.mla
    return dict(F_lin=fwd.value - att, F_att=att, F_adapt=2 * w.global_batch * w.seq * P_lora, P_lora=P_lora,
                P_active=int(active_params(s, params).value), d_qk=m.d_nope + m.d_rope if m else s.head_dim,
                d_v=m.d_v if m else s.head_dim)


def _lora_on_stage(s: ModelSpec, w: Workload, pp: int, i: int) -> int:
    ft = w.finetune
    if ft.mode == "full":
        return 0
    return sum(n * ft.rank * (a + b) for layer, n in stage_kinds(s, pp, i)
               for a, b in lora_linears(s, layer, ft.targets))


def _params(s: ModelSpec, x: dict[str, Any], pp: int, i: int) -> dict[str, Any]:
    """Local parameter elements per group on rank 0 of stage i: as held (ZeRO-3), as gradients (ZeRO ≥ 2), as
    optimizer states (ZeRO ≥ 1); and per FSDP unit as ZeRO-3 shards them (what data-parallel collectives move)."""

    def mesh(z: int) -> Any:
        return training_mesh(tp=x["tp"], ep=x["ep"], dp=x["dp"], cp=x["cp"], sharded=x["zero"] >= z)

    out = {name: local_params(s, mesh(z), pp=pp, stage=i) for name, z in (("P_w", 3), ("P_g", 2), ("P_o", 1))}
    units = fsdp_units(s, mesh(0), pp=pp, stage=i)
    out.update(P_layers=units["layers"], P_experts=units["experts"], P_root=units["root"])
    return out


def _role(s: ModelSpec, hw: HardwareSpec, eff: Efficiency, w: Workload, L: Layout, x: dict[str, Any], role: str, *,
          explain: bool) -> dict[str, Any]:
    """Component values of one stage role for a single layout (and, explained, their per-op quantities)."""
    i = role_stage(role, L.pp)
    st = stage(s, hw, eff, w, tp=L.tp, cp=L.cp, sp=L.sequence_parallel, ep=L.ep, b=L.micro_batch, pp=L.pp, i=i,
               recompute=L.recompute)
    c = _stage_values(st)
    c.update(_params(s, x, L.pp, i), i=i, **_model_flops(s, w))
    lora = _lora_on_stage(s, w, L.pp, i)
    c.update(P_lora_gpu=lora / L.tp, P_opt=sum(c["P_o"].values()) if w.finetune.mode == "full" else lora / L.tp)
    if explain:
        for key, kind in (("q_lin", ("linear", "head")), ("q_att", ("attention",)), ("q_elem", ("elementwise",))):
            name = {"q_lin": "time.linear", "q_att": "time.attention", "q_elem": "time.elementwise"}[key]
            c[key] = _ops_total(name, [o for o in st.ops if o.kind in kind])
        c["q_aux"] = _ops_total("time.aux", list(st.aux))
    return c


def _stage_values(st: Stage) -> dict[str, Any]:
    return dict(t_lin=st.time("linear") + st.time("head"), t_att=st.time("attention"), t_elem=st.time("elementwise"),
                t_aux=sum(a.count * a.time_s for a in st.aux), n_layers=st.n_layers, n_moe=st.n_moe,
                n_norms=st.n_norms, act_rep=st.act_rep, act_split=st.act_split, act_work=st.act_work)


def _ops_total(key: str, ops: list[OpCost]) -> Callable[[], Quantity]:
    return lambda: total(key, [o.quantity() for o in ops], unit="s", symbol="t_ops")


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainPlan:
    """One layout's plan: every number a registered, explained quantity (`quantities`), plus the layout."""

    model: str
    gpu: str
    layout: Layout
    workload: Workload
    quantities: dict[str, Quantity]
    memory_stage: int
    time_stage: int
    trainable_params: int
    tokens: float = 0.0
    price: float = 0.0

    def __getitem__(self, key: str) -> Any:
        return self.quantities[key].value

    @property
    def fits(self) -> bool:
        return bool(self["train.over"] <= 0)


def plan_training(s: ModelSpec, hw: HardwareSpec, layout: Layout, w: Workload, *, eff: Efficiency | None = None,
                  tokens: float = 0.0, price: float = 0.0) -> TrainPlan:
    """Memory per GPU and step time of one optimizer step, every number explained."""
    validate(s, layout, w)
    eff = eff or efficiency_for(hw)
    L = layout
    x = _layout_values(s, w, tp=L.tp, pp=L.pp, dp=L.dp, cp=L.cp, ep=L.ep, mb=L.micro_batch,
                       rec=RECOMPUTE.index(L.recompute), zero=L.zero, sp=L.sequence_parallel, v=L.interleave,
                       gpipe=L.schedule == "gpipe")
    scratch = Book(explain=False)
    mem, tmb = {}, {}
    for role in ROLES:
        c = _role(s, hw, eff, w, L, x, role, explain=False)
        mem[role] = _memory_terms(scratch, s, hw, w, x, c, f"{role}.")
        tmb[role] = _time_terms(scratch, s, hw, eff, w, x, c, f"{role}.")
    mem_role = max(ROLES, key=lambda r: mem[r])
    time_role = max(ROLES, key=lambda r: tmb[r])
    book = Book(explain=True)
    _memory_terms(book, s, hw, w, x, _role(s, hw, eff, w, L, x, mem_role, explain=True), "")
    c_time = _role(s, hw, eff, w, L, x, time_role, explain=True)
    _time_terms(book, s, hw, eff, w, x, c_time, "")
    _step_terms(book, s, hw, eff, w, x, c_time, t_mb=book.ref("time.microbatch"), M_GPU=book.ref("memory.per_gpu"),
                tokens=tokens, price=price)
    book.put(local_params_quantity(s, training_mesh(tp=L.tp, ep=L.ep, dp=L.dp, cp=L.cp, sharded=L.zero >= 3),
                                   pp=L.pp, stage=role_stage(mem_role, L.pp), key="params.per_gpu"))
    trainable = int(params_breakdown(s).value) if w.finetune.mode == "full" else _model_flops(s, w)["P_lora"]
    return TrainPlan(model=s.name, gpu=hw.id, layout=L, workload=w, quantities=book.quantities,
                     memory_stage=role_stage(mem_role, L.pp), time_stage=role_stage(time_role, L.pp),
                     trainable_params=trainable, tokens=tokens, price=price)
