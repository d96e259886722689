"""Work shared out to the cores (core.parallel): every part's result in order, part 0 on the
calling thread, and an error raised only once every part has ended."""
from __future__ import annotations

import threading
import time

import pytest

from facekp.core import parallel


def test_parts_run_side_by_side_and_come_back_in_order():
    caller = threading.get_ident()
    ran_on = {}

    def work(j):
        ran_on[j] = threading.get_ident()
        return j * j

    assert parallel.shared_out(work, 5) == [0, 1, 4, 9, 16]
    assert ran_on[0] == caller                       # the caller's core does a share
    assert all(ran_on[j] != caller for j in range(1, 5))
    assert parallel.shared_out(work, 1) == [0] and parallel.shared_out(work, 0) == []
    assert 1 <= parallel.workers() <= parallel.MAX_WORKERS


def test_an_error_in_a_part_is_raised_after_every_part_has_ended():
    ended = []

    def work(j):
        if j == 0:
            raise ValueError("part 0")
        time.sleep(0.05)
        ended.append(j)

    with pytest.raises(ValueError, match="part 0"):
        parallel.shared_out(work, 3)
    assert sorted(ended) == [1, 2]


def test_a_process_among_several_keeps_to_its_share(monkeypatch):
    """``facekp predict --workers N`` limits each process to its share of the cores."""
    monkeypatch.setattr(parallel, "_limit", None)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 8)
    assert parallel.workers() == parallel.MAX_WORKERS
    parallel.limit_workers(1)
    assert parallel.workers() == 1
    parallel.limit_workers(3)
    assert parallel.workers() == 3


def test_each_item_goes_to_whichever_worker_is_free():
    """parallel.each: every item's result in order; a worker held up (its core busy with
    another program, here a sleep) takes fewer items, the others take the rest."""
    caller = threading.get_ident()
    taken: dict[int, list[int]] = {}

    def work(w, i):
        taken.setdefault(w, []).append(i)
        if w == 1:
            time.sleep(0.2)  # worker 1 is slow
        return (w, i * i)

    got = parallel.each(work, 12, 2)
    assert [r[1] for r in got] == [i * i for i in range(12)]
    assert sorted(taken[0] + taken.get(1, [])) == list(range(12))
    assert len(taken.get(1, [])) <= 2 and len(taken[0]) >= 10
    assert parallel.each(lambda w, i: threading.get_ident(), 3, 1) == [caller] * 3
    assert parallel.each(work, 0, 2) == []


def test_an_error_in_an_item_is_raised_after_every_worker_has_ended():
    ended = []

    def work(w, i):
        if i == 0:
            raise ValueError("item 0")
        time.sleep(0.02)
        ended.append(i)

    with pytest.raises(ValueError, match="item 0"):
        parallel.each(work, 4, 2)
    assert len(ended) >= 1 and all(i in (1, 2, 3) for i in ended)
