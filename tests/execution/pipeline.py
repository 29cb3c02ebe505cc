"""Measure, by executing torch's own pipeline schedules, how many micro-batches are in flight.

``peak_in_flight(schedule, P_p, m, v)`` starts ``P_p`` CPU processes over gloo (a ``FileStore`` in a private
temporary directory), builds a tiny model whose every chunk is ``Linear(16,16) -> Tanh -> Linear(16,16)``, runs one
training ``step`` of the named ``torch.distributed.pipelining`` schedule over ``m`` micro-batches and returns, per
rank, the peak number of micro-batches whose saved activations were alive.

Alive: every chunk forward runs under ``saved_tensors_hooks``; the pack hook wraps each saved tensor in a
``_Packed`` object owned by autograd, whose ``__del__`` fires when autograd drops it (in that micro-batch's
backward, or for zero-bubble schedules when the weight pass runs). A (chunk, micro-batch) pair is alive from its
first saved tensor until its last is released; a rank's count is the alive pairs over its chunks, and the result is
the maximum over the step: measured on what autograd keeps, not read off the schedule. Received input buffers,
outputs kept for ``return_outputs`` and the loss's own saved tensors are not saved-for-backward tensors of the
hooked modules and are not counted. Single-chunk schedules (GPipe, 1F1B) count whole-stage micro-batches;
multi-chunk ones (interleaved 1F1B, LoopedBFS, interleaved zero bubble, ZBV, DualPipeV) count chunk-micro-batches
(``to_stage_units`` divides by ``v``). As a cross-check each worker replays the action list torch executes
(+1 at F, -1 at a full B, -1 at W; I frees nothing) and reports that peak as ``predicted``.

Call it from a module safe to import twice (pytest is; a script needs the ``__main__`` guard): the children start
from multiprocessing's forkserver (spawn as a fallback), which re-imports the caller's ``__main__``. The
forkserver, started on the first call with torch preloaded, lives until the caller exits; each call's ranks are
joined (or killed after ``timeout``) and its temporary directory removed. About 2 s for the first call, 0.2-1 s
afterwards.
"""

from __future__ import annotations

import json
import os
import runpy
import tempfile
import time
import traceback
from typing import Any

FEATURES = 16  # width of every Linear
ROWS_PER_MICROBATCH = 2

# canonical name -> (torch class name, stage layout, fixed chunks per rank or None)
_SCHEDULES: dict[str, tuple[str, str, int | None]] = {
    "gpipe": ("ScheduleGPipe", "single", 1),
    "1f1b": ("Schedule1F1B", "single", 1),
    "interleaved1f1b": ("ScheduleInterleaved1F1B", "loop", None),
    "loopedbfs": ("ScheduleLoopedBFS", "loop", None),
    "interleavedzerobubble": ("ScheduleInterleavedZeroBubble", "loop", None),
    "zbvzerobubble": ("ScheduleZBVZeroBubble", "v", 2),
    "dualpipev": ("ScheduleDualPipeV", "v", 2),
}


def _canonical(schedule: str) -> str:
    key = "".join(ch for ch in schedule.lower() if ch.isalnum())
    if key.startswith("schedule"):
        key = key[len("schedule"):]
    if key not in _SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; known: {sorted(_SCHEDULES)}")
    return key


def stage_indices(schedule: str, rank: int, P_p: int, v: int = 1) -> list[int]:
    """Global stage (chunk) indices held by ``rank``, in the order they are passed to torch."""
    _, layout, _ = _SCHEDULES[_canonical(schedule)]
    if layout == "single":
        return [rank]
    if layout == "loop":  # Megatron / torch interleaving: rank r holds r, r+P, r+2P, ...
        return [rank + k * P_p for k in range(v)]
    return [rank, 2 * P_p - 1 - rank]  # "v" layout


def to_stage_units(peaks: list[int], v: int) -> list[float]:
    """Convert chunk-micro-batch counts to units of the rank's whole stage (each chunk is 1/v of it)."""
    return [p / v for p in peaks]


def torch_rounds(P_p: int, m: int) -> tuple[int, int]:
    """(number_of_rounds, microbatches_per_round) as ScheduleInterleaved1F1B /
    ScheduleInterleavedZeroBubble compute them; torch raises ValueError unless m % rounds == 0."""
    rounds = max(1, m // P_p)
    return rounds, m // rounds


def torch_schedule_peak(schedule: str, P_p: int, m: int, v: int = 1) -> list[int]:
    """Closed forms that reproduce every measurement of this harness (torch 2.13), per rank r.

    Units as ``peak_in_flight``: chunk-micro-batches (= micro-batches when v == 1).
    Raises ValueError for the configurations torch itself rejects.
      GPipe                  m
      1F1B                   min(P_p - r, m)             (torch requires m >= P_p)
      Interleaved1F1B        min((v-1)*mpr + 2*(P_p-1-r) + 1, m*v)
      LoopedBFS              m*v
      InterleavedZeroBubble  min((v-1)*mpr + P_p, m*v)    (same on every rank)
      ZBVZeroBubble          min(m + r + 1, 2*P_p, 2*m)   (v == 2)
      DualPipeV              2*P_p + 1                    (v == 2, torch requires m >= 2*P_p)
    with (rounds, mpr) = torch_rounds(P_p, m); for m % P_p == 0, mpr == P_p.
    """
    key = _canonical(schedule)
    fixed_v = _SCHEDULES[key][2]
    if fixed_v is not None and v != fixed_v:
        raise ValueError(f"{schedule} runs exactly {fixed_v} chunk(s) per rank, got v={v}")
    ranks = range(P_p)
    if key == "gpipe":
        return [m for _ in ranks]
    if key == "1f1b":
        if m < P_p:
            raise ValueError("Schedule1F1B requires n_microbatches >= number of stages")
        return [min(P_p - r, m) for r in ranks]
    if key == "loopedbfs":
        return [m * v for _ in ranks]
    if key in ("interleaved1f1b", "interleavedzerobubble"):
        rounds, mpr = torch_rounds(P_p, m)
        if m % rounds:
            raise ValueError(f"m={m} is not a multiple of the number of rounds ({rounds})")
        if key == "interleaved1f1b":
            return [min((v - 1) * mpr + 2 * (P_p - 1 - r) + 1, m * v) for r in ranks]
        return [min((v - 1) * mpr + P_p, m * v) for _ in ranks]
    if key == "zbvzerobubble":
        return [min(m + r + 1, 2 * P_p, 2 * m) for r in ranks]
    if m < 2 * P_p:  # dualpipev
        raise ValueError("ScheduleDualPipeV requires n_microbatches >= number of stages (2*P_p)")
    return [2 * P_p + 1 for _ in ranks]


# ----------------------------------------------------------------------------------------------
# worker side (runs in the child processes)


class _Tracker:
    def __init__(self, chunks: list[int]):
        self.alive = {c: 0 for c in chunks}
        self.peak_chunk = {c: 0 for c in chunks}
        self.forwards = {c: 0 for c in chunks}
        self.total = 0
        self.peak = 0
        self.trace: list[str] = []  # "+c:mb" / "-c:mb", in order

    def born(self, chunk: int, mb: int) -> None:
        self.alive[chunk] += 1
        self.total += 1
        self.peak_chunk[chunk] = max(self.peak_chunk[chunk], self.alive[chunk])
        self.peak = max(self.peak, self.total)
        self.trace.append(f"+{chunk}:{mb}")

    def died(self, chunk: int, mb: int) -> None:
        self.alive[chunk] -= 1
        self.total -= 1
        self.trace.append(f"-{chunk}:{mb}")


class _Token:
    """One forward call of one chunk (= one micro-batch on that chunk)."""

    __slots__ = ("tracker", "chunk", "mb", "n")

    def __init__(self, tracker: _Tracker, chunk: int, mb: int):
        self.tracker, self.chunk, self.mb, self.n = tracker, chunk, mb, 0

    def pack(self, t):
        return _Packed(self, t)


class _Packed:
    __slots__ = ("token", "t")

    def __init__(self, token: _Token, t):
        # Keep a *detached* alias (same storage, no grad_fn).  Keeping ``t`` itself would make a
        # reference cycle through C++ whenever a node saves its own output (Tanh does): node ->
        # SavedVariable -> _Packed -> t -> t.grad_fn == node.  A full backward breaks that cycle
        # by releasing the saved variables, but the zero-bubble input pass (retain_graph=True)
        # never releases some of them and the cycle would keep them alive forever -- an
        # artefact of the hook, not of torch.  Without the hook, autograd stores outputs
        # without their grad_fn, which is what the detached alias reproduces.
        self.token, self.t = token, t.detach()
        token.n += 1
        if token.n == 1:
            token.tracker.born(token.chunk, token.mb)

    def __del__(self):
        tok = self.token
        tok.n -= 1
        if tok.n == 0:
            tok.tracker.died(tok.chunk, tok.mb)


def _unpack(p: _Packed):
    return p.t


def _build_chunk(chunk: int, tracker: _Tracker):
    import torch
    from torch import nn

    class CountedChunk(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Sequential(nn.Linear(FEATURES, FEATURES), nn.Tanh(),
                                       nn.Linear(FEATURES, FEATURES))

        def forward(self, x):
            if not torch.is_grad_enabled() or x.device.type == "meta":
                return self.inner(x)  # metadata inference: not a real micro-batch
            tok = _Token(tracker, chunk, tracker.forwards[chunk])
            tracker.forwards[chunk] += 1
            with torch.autograd.graph.saved_tensors_hooks(tok.pack, _unpack):
                return self.inner(x)

    torch.manual_seed(1234 + chunk)
    return CountedChunk()


def _replay_peak(actions) -> int | None:
    """Peak of alive chunk-micro-batches implied by an executed action list (see module doc)."""
    from torch.distributed.pipelining.schedules import _ComputationType as C

    alive = peak = 0
    for a in actions:
        if a is None:
            continue
        subs = a.sub_actions if a.computation_type == C.OVERLAP_F_B else (a,)
        for s in subs:
            if s.computation_type == C.FORWARD:
                alive += 1
                peak = max(peak, alive)
            elif s.computation_type in (C.FULL_BACKWARD, C.BACKWARD_WEIGHT):
                alive -= 1
    return peak


def _worker(rank: int, world: int, schedule: str, m: int, v: int, tmpdir: str, rows: int) -> None:
    result: dict[str, Any] = {"rank": rank}
    t0 = time.perf_counter()
    try:
        import torch
        import torch.distributed as dist
        from torch.distributed import pipelining as pp

        torch.set_num_threads(1)
        store = dist.FileStore(os.path.join(tmpdir, "store"), world)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
        try:
            cls_name, layout, _ = _SCHEDULES[schedule]
            cls = getattr(pp, cls_name, None) or getattr(pp.schedules, cls_name)
            chunks = stage_indices(schedule, rank, world, v)
            num_stages = world * len(chunks)
            tracker = _Tracker(chunks)
            dev = torch.device("cpu")
            stages = []
            for c in chunks:
                stages.append(pp.PipelineStage(
                    _build_chunk(c, tracker), c, num_stages, dev,
                    input_args=torch.zeros(rows, FEATURES, requires_grad=c > 0),
                    output_args=torch.zeros(rows, FEATURES, requires_grad=True),
                ))

            def loss_fn(out, target):
                return torch.nn.functional.mse_loss(out, target)

            if layout == "single":
                sched = cls(stages[0], n_microbatches=m, loss_fn=loss_fn)
            else:
                sched = cls(stages, n_microbatches=m, loss_fn=loss_fn)

            g = torch.Generator().manual_seed(0)
            x = torch.randn(m * rows, FEATURES, generator=g)
            y = torch.randn(m * rows, FEATURES, generator=g)
            args = (x,) if any(s.is_first for s in stages) else ()
            kwargs: dict[str, Any] = {}
            if any(s.is_last for s in stages):
                kwargs = {"target": y, "losses": []}
            t1 = time.perf_counter()
            sched.step(*args, **kwargs)
            result["step_s"] = time.perf_counter() - t1
            import gc

            gc.collect()
            order = getattr(sched, "pipeline_order_with_comms", None)
            result.update(
                peak=tracker.peak,
                peak_per_chunk={str(c): tracker.peak_chunk[c] for c in chunks},
                forwards={str(c): tracker.forwards[c] for c in chunks},
                alive_after_step=tracker.total,
                trace=tracker.trace,
                predicted=_replay_peak(order[rank]) if order else None,
                chunks=chunks,
            )
            if "losses" in kwargs:
                result["losses"] = [float(l.detach()) for l in kwargs["losses"]]
        finally:
            dist.destroy_process_group()
    except BaseException as e:  # reported to the parent
        result["error"] = f"{type(e).__name__}: {e}"
        result["error_type"] = type(e).__name__
        result["traceback"] = traceback.format_exc()
    result["wall_s"] = time.perf_counter() - t0
    tmp = os.path.join(tmpdir, f"rank{rank}.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, os.path.join(tmpdir, f"rank{rank}.json"))


if __name__ == "__tm_pipeline_worker__":  # executed in a child through runpy.run_path
    _worker(**_TM_WORKER_ARGS)  # type: ignore[name-defined]  # noqa: F821


# ----------------------------------------------------------------------------------------------
# parent side


_CTX = None


def _context():
    """forkserver with torch preloaded: children fork from a process that already imported torch
    (each spawn would re-import torch, ~2 s of CPU per rank).  Falls back to spawn."""
    global _CTX
    if _CTX is None:
        import multiprocessing as mp

        try:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["torch", "torch.distributed.pipelining"])
        except ValueError:
            ctx = mp.get_context("spawn")
        _CTX = ctx
    return _CTX


class PipelineRunError(RuntimeError):
    pass


def measure(schedule: str, P_p: int, m: int, v: int = 1, *, rows: int = ROWS_PER_MICROBATCH,
            timeout: float = 120.0) -> dict[str, Any]:
    """Run one step of ``schedule`` on ``P_p`` processes; return everything the ranks reported.

    Keys: ``peaks`` (per rank, chunk-micro-batches), ``stage_units`` (peaks / v),
    ``peak_per_chunk``, ``predicted`` (replay of the executed action list, multi-chunk schedules),
    ``forwards``, ``alive_after_step``, ``wall_s`` (whole call), ``ranks`` (raw reports).
    Raises ``ValueError`` with torch's message when torch rejects the configuration.
    """
    key = _canonical(schedule)
    fixed_v = _SCHEDULES[key][2]
    if fixed_v is not None and v != fixed_v:
        raise ValueError(f"{schedule} runs exactly {fixed_v} chunk(s) per rank, got v={v}")
    if P_p < 1 or m < 1 or v < 1:
        raise ValueError("P_p, m and v must be >= 1")
    t0 = time.perf_counter()
    ctx = _context()
    with tempfile.TemporaryDirectory(prefix="tm_pipeline_") as tmpdir:
        procs = []
        for r in range(P_p):
            init = {"_TM_WORKER_ARGS": dict(rank=r, world=P_p, schedule=key, m=m, v=v,
                                            tmpdir=tmpdir, rows=rows)}
            p = ctx.Process(target=runpy.run_path, args=(os.path.abspath(__file__),),
                            kwargs={"init_globals": init, "run_name": "__tm_pipeline_worker__"},
                            daemon=True)
            p.start()
            procs.append(p)
        deadline = time.monotonic() + timeout
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        hung = [p for p in procs if p.is_alive()]
        for p in hung:
            p.kill()
        for p in procs:
            p.join(5)
        reports: list[dict[str, Any] | None] = []
        for r in range(P_p):
            path = os.path.join(tmpdir, f"rank{r}.json")
            if os.path.exists(path):
                with open(path) as f:
                    reports.append(json.load(f))
            else:
                reports.append(None)
    errors = [rep for rep in reports if rep and "error" in rep]
    if errors:  # torch's rejection on one rank makes its peers fail to connect: report the rejection
        e = next((x for x in errors if x.get("error_type") == "ValueError"), errors[0])
        if e.get("error_type") == "ValueError":
            raise ValueError(f"torch rejected {schedule} P_p={P_p} m={m} v={v}: {e['error']}")
        raise PipelineRunError(f"rank {e['rank']} failed: {e['error']}\n{e['traceback']}")
    if hung or any(rep is None for rep in reports):
        raise PipelineRunError(f"{schedule} P_p={P_p} m={m} v={v}: "
                               f"{len(hung)} rank(s) hung past {timeout}s; exit codes "
                               f"{[p.exitcode for p in procs]}")
    peaks = [rep["peak"] for rep in reports]  # type: ignore[index]
    per_rank = {k: [rep[k] for rep in reports]  # type: ignore[index]
                for k in ("peak_per_chunk", "predicted", "forwards", "alive_after_step")}
    return {"schedule": key, "P_p": P_p, "m": m, "v": v, "peaks": peaks, "stage_units": to_stage_units(peaks, v),
            **per_rank, "wall_s": time.perf_counter() - t0, "ranks": reports}


def peak_in_flight(schedule: str, P_p: int, m: int, v: int = 1) -> list[int]:
    """Per rank, the peak number of micro-batches whose saved activations are alive at once.

    For multi-chunk schedules the unit is chunk-micro-batches (see ``to_stage_units``).
    ``schedule``: "GPipe", "1F1B", "Interleaved1F1B", "LoopedBFS", "InterleavedZeroBubble",
    "ZBVZeroBubble", "DualPipeV" (case/punctuation-insensitive, "Schedule" prefix optional).
    """
    return measure(schedule, P_p, m, v)["peaks"]
