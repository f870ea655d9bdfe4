"""SIGINT and SIGTERM end a run cleanly: the first one asks the loop to stop after the current
step (it then writes a checkpoint and an `interrupted` record); a second one exits at once. Every
file is written through a rename, so an exit at any moment leaves each file whole (old or new).

SIGTERM is what SLURM time limits, submitit, `timeout` and `docker stop` send.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulStop:
    def __init__(self):
        self.signum: Optional[int] = None
        self._old = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            os._exit(128 + signum)  # the second signal: no questions asked
        self.signum = signum

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():  # handlers only work there
            for s in STOP_SIGNALS:
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
