"""Layout search: the training step's composition (analysis/training.py) evaluated at once on numpy arrays of
layouts, and every (T_p, P_p, D_p, C_p, E_p, micro-batch, recompute, ZeRO, SP, v) of a GPU count that fits."""

from __future__ import annotations

import time
from dataclasses import dataclass

from transformer_math.analysis.costs import OpCost, Sharding
from transformer_math.analysis.efficiency import Efficiency, efficiency_for
from transformer_math.analysis.quantity import Book
from transformer_math.analysis.train_setup import RECOMPUTE, Layout, Workload
from transformer_math.analysis.train_stage import _kind_ops, build_stage
from transformer_math.analysis.training import (
    ROLES,
    _layout_values,
    _lora_on_stage,
    _memory_terms,
    _model_flops,
    _params,
    _stage_values,
    _step_terms,
    _time_terms,
    role_stage,
)
from transformer_math.config.hardware import HardwareSpec
from transformer_math.config.spec import LayerSpec, ModelSpec
from transformer_math.errors import TmathError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def evaluate(s: ModelSpec, hw: HardwareSpec, w: Workload, *, tp: Any, pp: Any, dp: Any, cp: Any, ep: Any, mb: Any,
             rec: Any, zero: Any, sp: Any, v: Any, gpipe: Any, eff: Efficiency | None = None,
             deadline: float | None = None) -> dict[str, Any]:
    """The same composition on numpy arrays of layouts (broadcast together): every value of plan_training for each.

    Terms that need per-op tables are computed once per distinct (T_p, C_p, SP, E_p, b, P_p, stage, recompute) and
    spread over the arrays; the rest is the registered formulas on arrays. Returns the Book's values by key.
    """
    import numpy as np

    eff = eff or efficiency_for(hw)
    arrs = np.broadcast_arrays(*(np.asarray(a) for a in (tp, pp, dp, cp, ep, mb, rec, zero, sp, v, gpipe)))
    tp, pp, dp, cp, ep, mb, rec, zero, sp, v, gpipe = arrs
    x = _layout_values(s, w, tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, mb=mb, rec=rec, zero=zero, sp=sp, v=v, gpipe=gpipe)
    book = Book(explain=False)
    model = _model_flops(s, w)
    per_role: dict[str, dict[str, Any]] = {}
    mem, tmb = [], []
    stage_of = _StageTable(s, hw, eff, w, (tp, cp, sp, ep, mb, pp, rec), deadline)
    for role in ROLES:
        c = stage_of.columns(role)
        c.update(_sharded_columns(s, w, x, pp, role))
        if c["P_opt"] is None:  # fine-tuning: the optimizer holds the adapters' states only
            c["P_opt"] = c["P_lora_gpu"]
        c.update({key: float(val) for key, val in model.items()})  # FLOPs beyond int64
        per_role[role] = c
        mem.append(_memory_terms(book, s, hw, w, x, c, f"{role}."))
        tmb.append(_time_terms(book, s, hw, eff, w, x, c, f"{role}."))
    M, t = np.stack(mem), np.stack(tmb)
    pick = np.argmax(t, axis=0)
    chosen = {key: np.choose(pick, [per_role[r][key] for r in ROLES]) for key in (
        "P_layers", "P_experts", "P_root", "P_opt", "P_lora_gpu", "n_layers", "n_moe")}
    _step_terms(book, s, hw, eff, w, x, {**per_role[ROLES[0]], **chosen}, t_mb=t.max(axis=0), M_GPU=M.max(axis=0),
                tokens=0.0, price=0.0)
    out = {key: np.broadcast_to(v, tp.shape) for key, v in book.values.items()}
    out["memory.per_gpu"], out["time.microbatch"] = M.max(axis=0), t.max(axis=0)
    return out


class _StageTable:
    """Per-stage values for each distinct (T_p, C_p, SP, E_p, b, P_p, recompute), spread back over the arrays; op
    tables are memoized per layer kind and cut, keyed on small values rather than on the spec."""

    def __init__(self, s: ModelSpec, hw: HardwareSpec, eff: Efficiency, w: Workload, cols: tuple[Any, ...],
                 deadline: float | None) -> None:
        import numpy as np

        self.s, self.hw, self.eff, self.w, self.deadline, self.shape = s, hw, eff, w, deadline, cols[0].shape
        self.keys, inverse = np.unique(np.stack(cols).reshape(7, -1).T, axis=0, return_inverse=True)
        self.inverse = inverse.reshape(self.shape)
        self.memo: dict[Any, tuple[OpCost, ...]] = {}

    def _kind_ops(self, b_: int) -> Callable[..., tuple[OpCost, ...]]:
        def get(layer: LayerSpec, T: int, shard: Sharding) -> tuple[OpCost, ...]:
            key = (layer, b_, T, shard)
            if key not in self.memo:
                self.memo[key] = _kind_ops(self.s, self.hw, self.eff, self.w, layer, b_, T, shard)
            return self.memo[key]
        return get

    def columns(self, role: str) -> dict[str, Any]:
        import numpy as np

        stages = []
        for tp_, cp_, sp_, ep_, mb_, pp_, rec_ in self.keys.tolist():
            if self.deadline is not None and time.perf_counter() > self.deadline:
                raise TmathError("search", f"{len(self.keys):,} layout shapes", "a search that ends within its time "
                                 "limit: fix some choices (--tp, --pp) or search fewer GPUs")
            i = role_stage(role, pp_)
            st = build_stage(self.s, self.hw, self.eff, self.w, tp=tp_, cp=cp_, sp=bool(sp_), ep=ep_, b=mb_, pp=pp_,
                             i=i, recompute=RECOMPUTE[rec_], kind_ops=self._kind_ops(mb_))
            stages.append({**_stage_values(st), "i": i, "lora": _lora_on_stage(self.s, self.w, pp_, i) / tp_})
        c: dict[str, Any] = {name: np.array([u[name] for u in stages])[self.inverse] for name in stages[0]}
        c["P_lora_gpu"] = c.pop("lora")
        return c


def _sharded_columns(s: ModelSpec, w: Workload, x: dict[str, Any], pp: Any, role: str) -> dict[str, Any]:
    """Sharded parameter counts of the role's stage: arrays of degrees, one pass per distinct P_p."""
    import numpy as np

    groups: dict[str, dict[str, Any]] = {"P_w": {}, "P_g": {}, "P_o": {}}
    c: dict[str, Any] = {name: np.zeros(pp.shape) for name in ("P_layers", "P_experts", "P_root")}
    for pp_ in np.unique(pp).tolist():
        where = pp == pp_
        sub = {name: a[where] for name, a in x.items() if hasattr(a, "shape") and a.shape == pp.shape}
        params = _params(s, sub, pp_, role_stage(role, pp_))
        for name in ("P_w", "P_g", "P_o"):
            for g, val in params[name].items():
                groups[name].setdefault(g, np.zeros(pp.shape))[where] = val
        for name in ("P_layers", "P_experts", "P_root"):
            c[name][where] = params[name]
    c["P_opt"] = sum(groups["P_o"].values()) if w.finetune.mode == "full" else None
    c.update(groups)
    return c


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchRow:
    layout: Layout
    values: dict[str, float]


MAX_LAYOUTS = 300_000  # a search's grid; more is a typo in --gpus or a model no layout search needs


def search_layouts(s: ModelSpec, hw: HardwareSpec, w: Workload, *, gpus: int, eff: Efficiency | None = None,
                   top: int = 10, time_limit_s: float = 60.0) -> tuple[list[SearchRow], int, float]:
    """Every TP × PP × DP (ZeRO 1–3) × CP × EP × micro-batch × recompute × interleave × SP layout of `gpus` GPUs,
    evaluated at once on arrays; the `top` fastest that fit, without equivalent rows (a layout whose step time
    equals another's that differs only by a ZeRO stage keeps the lower-memory one). Returns (rows, layouts
    evaluated, seconds)."""
    import itertools

    import numpy as np

    t0 = time.perf_counter()
    pows = [2**i for i in range(0, 21) if 2**i <= gpus]
    tps = [t for t in pows if s.n_heads % t == 0 and t <= hw.gpus_per_node]
    pps = [p for p in pows if p <= min(s.n_layers, 128)]
    cps = [c for c in pows if w.seq % c == 0 and w.seq // c >= 1024 and c <= 16]
    eps = [e for e in pows if s.moe.n_experts % e == 0 and e <= 64] if s.moe else [1]
    recs = [0, 2] if w.flash_attention else [0, 1, 2]
    rows = []
    for tp_, pp_, cp_, ep_, mb_, rec_, z_, sp_, v_ in itertools.product(
            tps, pps, cps, eps, (1, 2, 4, 8), recs, (1, 2, 3), (False, True), (1, 2, 4)):
        dp_, left = divmod(gpus, tp_ * pp_ * cp_)
        if left or dp_ < 1 or (dp_ * cp_) % ep_ or w.global_batch % (dp_ * mb_):
            continue
        if (tp_ == 1 and sp_) or (dp_ * cp_ == 1 and z_ != 1) or (v_ > 1 and (
                pp_ == 1 or s.n_layers < pp_ * v_ or (w.global_batch // (dp_ * mb_)) % pp_)):
            continue
        rows.append((tp_, pp_, dp_, cp_, ep_, mb_, rec_, z_, sp_, v_))
    if not rows:
        return [], 0, time.perf_counter() - t0
    if len(rows) > MAX_LAYOUTS:
        raise TmathError("search", f"{len(rows):,} layouts", f"at most {MAX_LAYOUTS:,}: search fewer GPUs")
    tp, pp, dp, cp, ep, mb, rec, zero, sp, v = np.array(rows, dtype=np.int64).T
    r = evaluate(s, hw, w, tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, mb=mb, rec=rec, zero=zero, sp=sp.astype(bool), v=v,
                 gpipe=np.zeros(tp.shape, dtype=bool), eff=eff, deadline=t0 + time_limit_s)
    fits = r["memory.per_gpu"] <= hw.memory_bytes
    step = np.where(fits, r["train.step_time"], np.inf)
    order = np.lexsort((r["memory.per_gpu"], step))
    out: list[SearchRow] = []
    seen: set[tuple[Any, ...]] = set()
    for i in order:
        if not np.isfinite(step[i]) or len(out) >= top:
            break
        same = (round(float(step[i]), 12), tp[i], pp[i], dp[i], cp[i], ep[i], mb[i], rec[i], sp[i], v[i])
        if same in seen:
            continue
        seen.add(same)
        lay = Layout(tp=int(tp[i]), pp=int(pp[i]), dp=int(dp[i]), cp=int(cp[i]), ep=int(ep[i]), micro_batch=int(mb[i]),
                     recompute=RECOMPUTE[int(rec[i])], zero=int(zero[i]), sequence_parallel=bool(sp[i]),
                     interleave=int(v[i]))
        out.append(SearchRow(layout=lay, values={key: float(r[key][i]) for key in (
            "train.step_time", "train.mfu", "train.hfu", "memory.per_gpu", "train.tokens_per_s")}))
    return out, int(tp.size), time.perf_counter() - t0
