"""threads=auto chooses conservatively (issue 15, item 9): more threads only for a large gain, never
more than the cores idle now nor than a sweep's share. The timings are stubbed: a rule, not a clock."""
from __future__ import annotations

import pytest
import torch

from ics.train import threads


@pytest.fixture
def model():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))


def stub(monkeypatch, per_thread: dict, idle=None, cores=4):
    monkeypatch.setattr(threads, "available_cores", lambda: cores)
    monkeypatch.setattr(threads, "idle_cores", lambda window=0.1: idle)
    monkeypatch.setattr(threads, "_time_steps", lambda m, x, y, n, steps: per_thread[n])


@pytest.mark.parametrize("gain,expected", [(1.2, 1), (1.49, 1), (1.5, 4), (3.0, 4)])
def test_more_threads_only_for_a_large_gain(monkeypatch, model, gain, expected):
    stub(monkeypatch, {1: 1.0, 2: 1.0 / 1.1, 4: 1.0 / gain})
    assert threads.choose_threads(model, (4,), 3, 8) == expected


def test_never_more_threads_than_idle_cores_or_the_sweeps_share(monkeypatch, model):
    stub(monkeypatch, {1: 1.0, 2: 0.4, 4: 0.3}, idle=1)
    assert threads.choose_threads(model, (4,), 3, 8) == 1  # a busy machine: one thread, whatever the timing
    stub(monkeypatch, {1: 1.0, 2: 0.4, 4: 0.3}, idle=4)
    assert threads.choose_threads(model, (4,), 3, 8, max_threads=2) == 2  # two jobs at once on 4 cores


def test_idle_cores_reads_the_machine():
    n = threads.idle_cores(0.05)
    assert n is None or 0 <= n <= (__import__("os").cpu_count() or 1)
