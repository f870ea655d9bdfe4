"""SIGINT and SIGTERM end a run cleanly: the first one asks the loop to stop after the current
step (it then writes a checkpoint and an `interrupted` record); a second one exits at once. Every
file is written through a rename, so an exit at any moment leaves each file whole (old or new).

SIGTERM is what SLURM time limits, submitit, `timeout` and `docker stop` send.

A scheduler may also warn a job before its time limit or pre-emption with a signal of its own
(submitit on SLURM: SIGUSR2). `also_stop_on(sig)` makes that signal stop the run the same way; the
process then ends with 128 + sig and whoever asked (e.g. ics_cli.slurm) requeues the job, which
continues from the checkpoint. Such a signal arriving after a stop was asked for replaces the request
(SIGTERM then SIGUSR2: stop and requeue) instead of forcing an exit.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Optional

# A signal can reach a job twice within milliseconds: from the terminal (the whole process group)
# and from the CLI, which passes a sweep's signal on to its workers. A repeat this soon is the same
# request; a second signal after it forces the exit.
REPEAT_WINDOW_SEC = 0.5

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_ALSO: set = set()  # signals added by also_stop_on (none unless a launcher asks)


def also_stop_on(*signums: int) -> None:
    """Make GracefulStop treat these signals like SIGTERM: stop after the current step, checkpoint,
    `interrupted` record, RunInterrupted(signum). For a launcher whose scheduler warns a job before
    its time limit or pre-emption; process-wide, for the runs that start after the call."""
    _ALSO.update(int(s) for s in signums)


def stop_signals() -> tuple:
    return STOP_SIGNALS + tuple(sorted(_ALSO - set(STOP_SIGNALS)))


class GracefulStop:
    def __init__(self):
        self.signum: Optional[int] = None
        self._at = 0.0
        self._old = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if self.signum is None or (signum in _ALSO and signum != self.signum):
            self.signum, self._at = signum, now  # (a scheduler's warning after a stop request: stop, then requeue)
            return
        if signum == self.signum and now - self._at < REPEAT_WINDOW_SEC:
            return  # the same request delivered twice
        os._exit(128 + signum)  # the second signal: no questions asked

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():  # handlers only work there
            for s in stop_signals():
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()


class RunInterrupted(Exception):
    """Raised after an interrupted run has written its checkpoint and record."""

    def __init__(self, signum: int, run_dir, step: int):
        self.signum, self.run_dir, self.step = signum, run_dir, step
        name = signal.Signals(signum).name
        super().__init__(f"{name} at step {step}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM: the shell convention
