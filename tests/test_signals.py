"""GracefulStop's rule for a second signal, in-process and deterministic (no process, no real signal,
no clock): the handler is called directly and time.monotonic is a fake the test advances. The
subprocess tests (test_durable.py, test_signals_phases.py) check the same rule end to end, where the
timing is the operating system's."""

from __future__ import annotations

import signal

import pytest

from ics.record import files
from ics.train import stopping as signals
from ics.train.stopping import ForcedStop, GracefulStop, SignalStop

INT, TERM = signal.SIGINT, signal.SIGTERM


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(signals.time, "monotonic", c)
    return c


@pytest.fixture
def training() -> GracefulStop:
    """A scope in the training state, its handler not installed (the test calls it)."""
    stop = GracefulStop()
    stop.training()
    return stop


def test_the_first_signal_asks_for_a_stop_and_forces_nothing(clock, training):
    training._handle(TERM, None)
    assert training.requested and training.signum == TERM and training.exit_code == 143
    assert training.state == signals.TRAINING  # the loop stops after the current step, itself


def test_the_same_signal_within_the_window_is_the_same_request(clock, training):
    training._handle(INT, None)
    clock.now += signals.REPEAT_WINDOW_SEC * 0.99
    training._handle(INT, None)  # no ForcedStop: one Ctrl-C seen through two paths
    assert training.signum == INT and training.state == signals.TRAINING


def test_the_same_signal_after_the_window_forces_the_stop(clock, training):
    training._handle(INT, None)
    clock.now += signals.REPEAT_WINDOW_SEC
    with pytest.raises(ForcedStop) as e:
        training._handle(INT, None)
    assert (e.value.signum, e.value.first) == (INT, INT) and training.state == signals.STOPPING


def test_another_signal_forces_the_stop_however_soon(clock, training):
    training._handle(INT, None)
    with pytest.raises(ForcedStop) as e:
        training._handle(TERM, None)  # same instant: the window is for repeats only
    assert (e.value.signum, e.value.first) == (TERM, INT)
    assert training.exit_code == 130  # the exit code stays the first signal's


def test_a_forced_stop_waits_for_the_write_in_progress(clock, training, monkeypatch):
    monkeypatch.setattr(training, "_watchdog", lambda: None)  # its thread would exit the process after 5 s
    training._handle(TERM, None)
    wrote = []
    with pytest.raises(ForcedStop):
        with files.whole():
            training._handle(INT, None)  # deferred: raising here would cut the write
            wrote.append(training.state)  # the write goes on to its end
    # the stop came when the write was whole, not before
    assert wrote == [signals.TRAINING] and training.state == signals.STOPPING and not files.writing()


def test_after_the_last_write_a_signal_changes_nothing(clock, training):
    training._handle(TERM, None)
    training.done()
    clock.now += 10
    training._handle(INT, None)
    assert training.state == signals.DONE and training.signum == TERM


def test_before_training_a_signal_stops_at_once(clock):
    stop = GracefulStop()
    with pytest.raises(SignalStop) as e:
        stop._handle(INT, None)
    assert e.value.signum == INT and stop.state == signals.STOPPING
