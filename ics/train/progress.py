"""What a run shows while it trains.

  a terminal, one run         a rich progress bar: step, train loss, last test accuracy, steps/s
  no terminal (logs, SLURM)   a plain line every trainer.progress_every_sec seconds
  inside a sweep the CLI      nothing on the terminal: the CLI draws one live line per running job
  draws (ICS_LIVE=1)          from each job's progress.json

Whatever is shown, a run with a directory keeps `progress.json` there up to date (at most once a
second, written atomically): step, loss, accuracy, steps/s and the phase it is in.

steps/s is the average since this run (or this resume of it) started training: steps done over wall
time, evaluations and instruments included, as the end-of-run table's "steps/s (all in)". That is
the rate that says when the run will end; the last log window's rate swings with whether it held an
evaluation, and is in TensorBoard (perf/steps_per_sec).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional

LIVE_ENV = "ICS_LIVE"  # set by the CLI when it draws a sweep's live lines itself
PROGRESS_FILE = "progress.json"


class Progress:
    """Composite of a display (bar, lines or none) and the progress.json feed."""

    def __init__(
        self,
        total: int,
        start: int = 0,
        mode: str = "none",
        out_dir: Optional[Path] = None,
        label: str = "",
        every_sec: float = 30.0,
        console=None,
        metric: str = "accuracy",
        t0: Optional[float] = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        """t0: the clock's time when training (this segment) began, `start` its first step; default:
        when the display opens. clock: seconds (time.perf_counter; a test gives its own)."""
        self.total, self.start, self.mode, self.label = total, start, mode, label
        self.t0, self.clock = t0, clock
        self.score = "test R²" if metric == "r2" else "test acc"  # what the last evaluation's number is
        self.out_dir, self.every_sec, self.console = out_dir, every_sec, console
        self._bar = None
        self._last_line = self._last_file = 0.0
        self._last_line_step = None
        self.state = {
            "step": start,
            "steps": total,
            "loss": None,
            "acc": None,
            "steps_per_sec": None,
            "phase": "starting",
            "pid": os.getpid(),
            "label": label,
            "metric": metric,
        }

    # --- context -------------------------------------------------------------------------------------
    def __enter__(self) -> "Progress":
        if self.t0 is None:
            self.t0 = self.clock()
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            # the text columns take ~70 characters at 50,000 steps: the bar gets what is left (at 80
            # columns, 6), so that no number is cut
            width = (self.console or Console()).width
            self._bar = RichProgress(
                TextColumn("[bold]train"),
                BarColumn(bar_width=max(4, min(40, width - 74))),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn(self.score + " {task.fields[acc]}"),
                TextColumn("{task.fields[sps]} steps/s avg"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("train", total=self.total, completed=self.start, loss="-", acc="-", sps="-")
        self.phase("training")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
        self.state["phase"] = "finishing"
        self._write(force=True)

    # --- updates -------------------------------------------------------------------------------------
    def phase(self, text: str) -> None:
        self.state["phase"] = text
        self._write(force=True)

    def update(self, step: int, loss: Optional[float], acc: Optional[float], force: bool = False) -> None:
        """Called at logging steps and after evaluations only (never per step)."""
        self.state.update(step=step, loss=loss, acc=acc)
        elapsed = self.clock() - self.t0 if self.t0 is not None else 0.0
        if step > self.start and elapsed > 0:
            self.state["steps_per_sec"] = (step - self.start) / elapsed  # the segment's average
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=step,
                loss=fmt(loss, ".4f"),
                acc=fmt(acc, ".4f"),
                sps=fmt(self.state["steps_per_sec"], ",.0f"),
            )
        now = time.monotonic()
        # the last step's line is the forced one after the final evaluation, printed once
        due = force or (now - self._last_line >= self.every_sec and step < self.total)
        if self.mode == "lines" and step != self._last_line_step and due:
            self._last_line, self._last_line_step = now, step
            who = f"[{self.label}] " if self.label else ""
            print(
                f"{stamp()} {who}step {step:,}/{self.total:,}  loss {fmt(loss, '.4f')}  {self.score} {fmt(acc, '.4f')}  "
                f"{fmt(self.state['steps_per_sec'], ',.0f')} steps/s avg",
                flush=True,
            )
        self._write(force)

    def _write(self, force: bool = False) -> None:
        if self.out_dir is None:
            return
        now = time.monotonic()
        if not force and now - self._last_file < 1.0:
            return
        self._last_file = now
        from ics.record.files import atomic_write

        text = json.dumps({**self.state, "updated": time.time()})
        try:
            atomic_write(Path(self.out_dir) / PROGRESS_FILE, lambda fh: fh.write(text.encode("utf-8")), fileobj=True)
        except OSError:
            pass  # progress is a courtesy; never fail a run for it


def stamp() -> str:
    """The local time a log line starts with (HH:MM:SS)."""
    return time.strftime("%H:%M:%S")


def display_mode(setting) -> str:
    """bar | lines | none, from trainer.progress, the terminal and the CLI's live sweep display."""
    if setting is False or os.environ.get(LIVE_ENV) == "1":
        return "none"
    if setting is True or sys.stdout.isatty():
        return "bar" if sys.stdout.isatty() else "lines"
    return "lines"
