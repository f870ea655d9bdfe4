"""`python tests/pausing.py PHASE MARKER ARGS...` runs `ics ARGS` and stops it at a named phase of the run
(ics.train.stopping.PHASES), the first time the run reaches it: the process writes "<pid> <phase>" to
MARKER, then waits (PAUSE_MAX_SEC at most) for a stop signal, whose handler acts right there, or for
MARKER to be removed (the test changed something, e.g. filled the disk, and lets the run go on).

This is how tests (and a person debugging) reach a phase exactly: the library only names its phases
(`stopping.reached`), and this entry point replaces that function before the command starts. Use
`pausing_ics(phase, marker)` for the command line."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import List

PAUSE_MAX_SEC = 60.0


def pausing_ics(phase: str, marker: Path) -> List[str]:
    """The command that starts `ics` paused at `phase` (append the ics arguments)."""
    return [sys.executable, str(Path(__file__).resolve()), phase, str(marker)]


def install(phase: str, marker: str) -> None:
    from ics.train import stopping

    if phase not in stopping.PHASES:
        raise SystemExit(f"pausing.py: unknown phase {phase!r}; allowed: {', '.join(stopping.PHASES)}")
    paused: set = set()

    def pause(at: str) -> None:
        if at != phase or at in paused:
            return
        paused.add(at)
        scope = stopping.current()
        seen = scope.received if scope is not None else 0
        tmp = Path(marker + ".tmp")
        tmp.write_text(f"{os.getpid()} {at}\n")
        os.replace(tmp, marker)
        deadline = time.monotonic() + PAUSE_MAX_SEC
        while (scope is None or scope.received == seen) and os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.002)  # a signal interrupts the sleep; its handler runs (and may raise) here

    stopping.reached = pause


if __name__ == "__main__":
    phase, marker, *args = sys.argv[1:]
    install(phase, marker)
    from ics_cli.main import app

    sys.argv = ["ics", *args]
    app(prog_name="ics")
