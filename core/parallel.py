"""Work shared out to the cores in threads: the photo path's TensorFlow Lite calls and OpenCV
resizes, which let go of the GIL while they run.

:func:`shared_out` runs ``work(0)``, ``work(1)``, ... side by side: part 0 on the calling
thread, the others on a pool's threads (one per further core, made once for the process).
The caller's core, busy already, does a share, and a call wakes one thread fewer than it has
parts. That matters where the other cores sat idle before the call: bald_guys.jpg's whole
photo path on this 2-core machine, run right after another program's, took 42 ms with a pool
thread for each part and 33 ms with the caller doing part 0, as in a loop of its own.

Parts must not share out work again (a pool thread waiting for the pool could wait forever).

:func:`each` shares out items the same way, each worker taking the next item no one has taken
yet, so that a worker whose core another program slows down takes fewer of them.
"""
from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, TypeVar

T = TypeVar("T")

#: Parts a call is shared into at most: one per core, up to this many.
MAX_WORKERS = 4

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_limit: int | None = None


def workers() -> int:
    """How many parts to share work into: one per core, at most :data:`MAX_WORKERS` (and at
    most the limit set by :func:`limit_workers`)."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1, _limit or MAX_WORKERS))


def limit_workers(count: int) -> None:
    """Share work into at most ``count`` parts from now on: a process among several that
    share the machine (``facekp predict --workers N``) keeps to its share of the cores. Set
    it before the detectors and predictors are made (they read :func:`workers` then)."""
    global _limit
    _limit = max(1, int(count))


def _threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, workers() - 1), thread_name_prefix="facekp-part")
        return _pool


def shared_out(work: Callable[[int], T], parts: int) -> list[T]:
    """``[work(0), work(1), ..., work(parts - 1)]``, run side by side: part 0 on the calling
    thread, the others on the pool's threads. An exception in a part is raised once every
    part has ended (a part's interpreter is never left running)."""
    if parts <= 1:
        return [work(0) for _ in range(parts)]
    others = [_threads().submit(work, j) for j in range(1, parts)]
    try:
        first = work(0)
    except BaseException:
        wait(others)
        raise
    return [first] + [f.result() for f in others]


def each(work: Callable[[int, int], T], count: int, parts: int) -> list[T]:
    """``[work(w, 0), work(w, 1), ..., work(w, count - 1)]``: ``parts`` workers (``w`` = 0 the
    calling thread, 1, 2, ... the pool's threads, as :func:`shared_out`) side by side, each
    taking the next item no worker has taken yet. Items go to whichever worker is free, not
    in fixed turns, so a worker whose core another program holds for a while takes fewer.
    bald_guys.jpg's whole photo path (its tiles, crops and model chunks shared out so),
    median of 100 calls taking turns in one process while a busy loop held one of this
    machine's 2 cores half the time: 50.3 ms in fixed turns, 48.1 so (54.5 / 51.7 in another
    run); on the idle machine the same (36.8 / 37.1)."""
    done: list = [None] * count
    taken = itertools.count()  # next() of a count is atomic: the GIL is held while it runs

    def worker(w: int) -> None:
        i = next(taken)
        while i < count:
            done[i] = work(w, i)
            i = next(taken)

    shared_out(worker, max(1, min(parts, count)))
    return done
