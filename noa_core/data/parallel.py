"""Ordered fan-out of per-sample work over processes, with a progress bar.

Each sample is computed whole in one process at the configured fixed thread count, so the result
does not depend on how many workers there are: workers only change the wall time.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")

_STATE: dict[str, Any] = {}


def available_cpus() -> int:
    """CPUs this process may run on (the container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Starting a spawned worker (an interpreter importing torch) costs about 2 s: below this many
# samples one process finishes first.
MIN_SAMPLES_PER_EXTRA_WORKER = 16


def default_workers(num_items: int, requested: int | None = None) -> int:
    """Worker count: ``requested`` if given, else the CPUs when the job is large enough."""
    if requested is not None:
        return max(1, min(requested, num_items))
    return max(1, min(available_cpus(), num_items // MIN_SAMPLES_PER_EXTRA_WORKER))


def _init(setup: Callable[..., Any], args: tuple[Any, ...]) -> None:
    _STATE["ctx"] = setup(*args)


def _call(job: tuple[Callable[[Any, Any], Any], Any]) -> Any:
    fn, item = job
    return fn(_STATE["ctx"], item)


def map_ordered(fn: Callable[[Any, T], R], items: Sequence[T], *, setup: Callable[..., Any],
                setup_args: tuple[Any, ...] = (), workers: int = 1, desc: str = "",
                unit: str = "sample", progress: bool = True) -> Iterator[R]:
    """Yield ``fn(ctx, item)`` for each item, in order; ``ctx = setup(*setup_args)`` per process.

    ``fn`` and ``setup`` must be module-level functions (they are sent to spawned workers).
    With ``workers <= 1`` everything runs in this process.
    """
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1 or len(items) <= 1:
            ctx = setup(*setup_args)
            for item in items:
                yield fn(ctx, item)
                bar.update(1)
            return
        pool_ctx = mp.get_context("spawn")
        with pool_ctx.Pool(min(workers, len(items)), initializer=_init,
                           initargs=(setup, setup_args)) as pool:
            jobs: Iterable[tuple[Callable[[Any, T], R], T]] = ((fn, it) for it in items)
            for result in pool.imap(_call, jobs, chunksize=1):
                yield result
                bar.update(1)
    finally:
        bar.close()
