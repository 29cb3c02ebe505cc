"""NCCL all-reduce bus bandwidth across the local CUDA GPUs, measured in worker processes (torch inside functions)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformer_math.checks.calibrate.measure import Clock

def _allreduce_worker(rank: int, world: int, port: int, nbytes: int, queue: Any) -> None:
    import torch
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        x = torch.ones(nbytes // 2, dtype=torch.bfloat16, device="cuda")
        for _ in range(3):
            dist.all_reduce(x)
        torch.cuda.synchronize()
        dist.barrier()
        reps = 10
        t = time.perf_counter()
        for _ in range(reps):
            dist.all_reduce(x)
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - t) / reps
        if rank == 0:
            queue.put(seconds)
    finally:
        dist.destroy_process_group()


def measure_collectives(torch: Any, clock: Clock, notes: list[str]) -> dict[str, Any] | None:
    world = torch.cuda.device_count()
    if world < 2:
        notes.append("collectives: not measured (one GPU); the preset's link efficiency is kept")
        return None
    if not torch.distributed.is_available() or not torch.distributed.is_nccl_available():
        notes.append("collectives: not measured (torch without NCCL)")
        return None
    if clock.left() < 5:
        notes.append("collectives: not measured (budget short: needs ≥ 5 s to start the processes)")
        return None
    import queue as queue_mod
    import socket

    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException, start_processes

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nbytes = 256 * 2**20
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = start_processes(_allreduce_worker, args=(world, port, nbytes, queue), nprocs=world, join=False,
                               start_method="spawn")
    try:
        while not procs.join(timeout=max(0.1, min(1.0, clock.left()))):
            if clock.left() <= 0:
                raise TimeoutError
        seconds = float(queue.get(timeout=5))
    except (TimeoutError, RuntimeError, OSError, EOFError, queue_mod.Empty, ProcessException) as e:
        # a hung or failed NCCL start must not sink the calibration
        for p in procs.processes:
            if p.is_alive():
                p.terminate()
        notes.append(f"collectives: not measured ({type(e).__name__}: "
                     f"{str(e).splitlines()[0][:120] if str(e) else 'timed out'})")
        return None
    bus = nbytes * 2 * (world - 1) / world / seconds
    clock.step(f"all-reduce {world} GPUs {bus / 1e9:.0f} GB/s")
    return {"gpus": world, "bytes": nbytes, "seconds": seconds, "bus_bytes_per_s": bus}
