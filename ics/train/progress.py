"""A rich progress bar for one run: step, train loss, latest test accuracy. Off when not a TTY."""
from __future__ import annotations

from typing import Callable, Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RunProgress:
    def __init__(self, total: int, enabled: bool, console=None, start: int = 0,
                 test_acc: Callable[[], Optional[float]] = lambda: None):
        self.total, self.enabled, self.start, self.test_acc = total, enabled, start, test_acc
        self._progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("test acc {task.fields[acc]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not enabled, transient=False,
        ) if enabled else None

    def __enter__(self) -> "RunProgress":
        if self._progress is not None:
            self._progress.__enter__()
            self._task = self._progress.add_task("train", total=self.total, completed=self.start, loss="-", acc="-")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, step: int, loss: Optional[float]) -> None:
        # called at logging intervals only: redrawing every step would cost more than the step
        if self._progress is not None:
            acc = self.test_acc()
            self._progress.update(self._task, completed=step, loss="-" if loss is None else f"{loss:.4f}",
                                  acc="-" if acc is None else f"{acc:.4f}")
