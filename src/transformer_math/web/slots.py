"""At most n plan computations at once; a request that cannot start one soon is told so (503), not queued forever.

Sync endpoints run in Starlette's thread pool (40 threads, unbounded queue): a burst of searches would take every
thread, starve the light endpoints, and leave late requests waiting without limit. Plans run here instead, in a pool
of their own sized to the CPUs; a request waits without holding any thread, and if its computation has not started
within wait_s it is withdrawn from the queue (never computed) and answered 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def cpu_count() -> int:
    """CPUs this process may run on (a container's share, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Busy(Exception):
    """Every slot stayed taken for the whole wait: the client should retry after `retry_after_s`."""

    def __init__(self, slots: int, wait_s: float) -> None:
        super().__init__(f"busy: all {slots} computation slots stayed taken for {wait_s:g} s; retry shortly")
        self.retry_after_s = max(1, round(wait_s / 2))


class Slots:
    """A thread pool of `n` workers that gives up on work still queued after `wait_s` seconds."""

    def __init__(self, n: int, wait_s: float) -> None:
        self.n, self.wait_s = n, wait_s
        self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="tmath-plan")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        job = self._pool.submit(fn, *args)
        fut = asyncio.wrap_future(job)
        try:
            done, _ = await asyncio.wait({fut}, timeout=self.wait_s)
        except asyncio.CancelledError:
            if not job.cancel():  # nobody will read it: do not compute it, or let its outcome go unread quietly
                fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise
        if not done and job.cancel():  # still queued: it never started, and now never will
            raise Busy(self.n, self.wait_s)
        return await fut  # started in time: it finishes (its work is bounded by the request's caps)
