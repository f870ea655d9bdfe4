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


class FakeStat:
    """/proc/stat read twice: the `cpu` lines given, one per read."""

    def __init__(self, *cpu_lines: str):
        self.reads = iter(cpu_lines)

    def __call__(self, path, *a, **kw):
        assert path == "/proc/stat"
        import io

        return io.StringIO(next(self.reads) + "\ncpu0 0 0 0 0\n")


@pytest.mark.parametrize("idle_share, cores, expected", [(0.75, 4, 3), (0.2, 2, 0), (0.3, 2, 1), (1.0, 8, 8)])
def test_idle_cores_is_the_idle_share_of_the_cores_over_the_window(monkeypatch, idle_share, cores, expected):
    # user nice system idle iowait ...: over the window 1000 jiffies pass, idle + iowait of them idle
    idle = round(1000 * idle_share)
    before = "cpu  100 0 100 800 20 0 0 0 0 0"
    after = f"cpu  {100 + (1000 - idle)} 0 100 {800 + idle - 40} {20 + 40} 0 0 0 0 0"
    monkeypatch.setattr(threads, "open", FakeStat(before, after), raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: cores)
    slept = []
    monkeypatch.setattr(threads.time, "sleep", slept.append)
    assert threads.idle_cores(0.25) == expected
    assert slept == [0.25]  # the two samples are `window` apart


def test_idle_cores_is_unknown_when_the_counters_do_not_move_or_cannot_be_read(monkeypatch):
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    same = "cpu  100 0 100 800 20 0 0 0 0 0"
    monkeypatch.setattr(threads, "open", FakeStat(same, same), raising=False)
    assert threads.idle_cores() is None

    def unreadable(path, *a, **kw):
        raise OSError("no /proc here")

    monkeypatch.setattr(threads, "open", unreadable, raising=False)
    assert threads.idle_cores() is None
    monkeypatch.setattr(threads, "open", FakeStat("cpu", "cpu"), raising=False)  # no counters at all
    assert threads.idle_cores() is None


@pytest.mark.skipif(not __import__("os").path.exists("/proc/stat"), reason="reads /proc/stat (Linux)")
def test_idle_cores_reads_this_machine():
    """On Linux the real file parses: a count, never None (which would silently disable the cap)."""
    import os

    n = threads.idle_cores(0.05)
    assert isinstance(n, int) and 0 <= n <= (os.cpu_count() or 1), n
