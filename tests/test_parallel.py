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
