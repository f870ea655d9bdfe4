"""How a run stops and fails. SIGINT and SIGTERM end a run cleanly, whenever they come, from the
first line of a job to its last byte written.

One scope (`GracefulStop`, re-entrant: the CLI's task, train_and_evaluate and Trainer.fit share it)
holds the handlers, and what a signal does depends on where the run is:

  before training (loading data, choosing threads, taking the lock): the job stops at once
      (SignalStop); the CLI removes the untrained job folder and exits 128 + signal.
  training: the first signal asks the loop to stop after the current step; it then writes a
      checkpoint and an `interrupted` record (RunInterrupted). A second signal (another one, or the
      same one after REPEAT_WINDOW_SEC) stops at once (ForcedStop): the record then says
      `interrupted` at the step of the last checkpoint.
  after the last write: a signal changes nothing (the process is ending).

Whatever the moment, a signal never cuts a write: ics.record.files.whole marks every write (and the
final checkpoint-and-record sequence as a whole), and what a signal asks for happens when the write
ends, or after FORCE_WAIT_SEC at most (a stuck file system: exit anyway).

Before the scope, from the first line of a command that starts a run (pre-run checks, claiming the
folder), StopBeforeRun makes a signal stop at once (LaunchStopped); a sweep's command passes its
signals on to the jobs it started (ForwardStop).

SIGTERM is what SLURM time limits, submitit, `timeout` and `docker stop` send.

A scheduler may also warn a job before its time limit or pre-emption with a signal of its own
(submitit on SLURM: SIGUSR2). `also_stop_on(sig)` makes that signal stop the run the same way; the
process then ends with 128 + sig and whoever asked (e.g. ics_cli.slurm) requeues the job, which
continues from the checkpoint. Such a signal arriving after a stop was asked for replaces the request
(SIGTERM then SIGUSR2: stop and requeue) instead of forcing an exit.

A write that fails for lack of space (ics.record.files.FullDiskError, found in an error's chain by
full_disk_cause) ends the run as `failed` at the step of its checkpoint, with one line (RunDiskFull).

The named phases (PHASES, `reached`) mark where these rules differ; tests stop a run exactly there by
replacing `reached` (tests/pausing.py), never through the environment.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

from ics.record import files

# A signal can reach a job twice within milliseconds: from the terminal (the whole process group)
# and from the CLI, which passes a sweep's signal on to its workers. A repeat this soon is the same
# request; a second signal after it forces the exit.
REPEAT_WINDOW_SEC = 0.5
# how long a forced exit waits for a write in progress to become whole
FORCE_WAIT_SEC = 5.0

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_ALSO: set = set()  # signals added by also_stop_on (none unless a launcher asks)

SETUP, TRAINING, STOPPING, DONE = "setup", "training", "stopping", "done"


def also_stop_on(*signums: int) -> None:
    """Make GracefulStop treat these signals like SIGTERM: stop after the current step, checkpoint,
    `interrupted` record, RunInterrupted(signum). For a launcher whose scheduler warns a job before
    its time limit or pre-emption; process-wide, for the runs that start after the call."""
    _ALSO.update(int(s) for s in signums)


def stop_signals() -> tuple:
    return STOP_SIGNALS + tuple(sorted(_ALSO - set(STOP_SIGNALS)))


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class SignalStop(BaseException):
    """A signal before training started: stop at once (nothing of the run exists yet). A
    BaseException, like KeyboardInterrupt, so that no `except Exception` on the way swallows it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal_name(signum))


class ForcedStop(BaseException):
    """A second signal while training: stop without finishing the step or writing a checkpoint."""

    def __init__(self, signum: int, first: int):
        self.signum, self.first = signum, first
        super().__init__(signal_name(signum))


_active: Optional["GracefulStop"] = None


def current() -> Optional["GracefulStop"]:
    """The scope whose handlers are installed, if any."""
    return _active


class GracefulStop:
    """The signal scope of a job. Entering it when one is active returns that one (the task,
    train_and_evaluate and fit share it); the outermost exit restores the old handlers."""

    def __init__(self):
        self.signum: Optional[int] = None  # the stop request's signal
        self.state = SETUP
        self.received = 0  # signals seen (a pause at a named phase waits on it)
        self._at = 0.0
        self._old = {}
        self._depth = 0
        self._outer: Optional[GracefulStop] = None
        self._linger: Optional[int] = None
        self._forced: Optional[int] = None

    # --- the scope -------------------------------------------------------------------------------------
    def __enter__(self) -> "GracefulStop":
        global _active
        if _active is not None and _active is not self:
            self._outer = _active
            _active._depth += 1
            return _active
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():  # handlers only work there
            _active = self
            for s in stop_signals():
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        global _active
        if self._outer is not None:
            outer, self._outer = self._outer, None
            outer._depth -= 1
            return
        self._depth -= 1
        if self._depth > 0:
            return
        if _active is self:
            _active = None
        code = self._linger
        for s, old in self._old.items():
            signal.signal(s, old if code is None else _exit_with(code))
        if code is not None and self._old:
            import atexit

            # Python's finalization puts back the default handlers (a late SIGTERM would kill with
            # -15): from the exit handlers on, stop signals are ignored instead
            atexit.register(_ignore, tuple(self._old))
        self._old.clear()

    def linger(self, code: int) -> None:
        """After the scope, until the process ends, any stop signal exits at once with `code`: every
        file is written, and the exit code and the line printed stay those of the run (a signal
        during interpreter shutdown must not turn them into a silent -15)."""
        self._linger = code

    # --- where the run is -------------------------------------------------------------------------------
    @property
    def requested(self) -> bool:
        return self.signum is not None

    def training(self) -> None:
        """From here a signal asks the loop to stop after the current step."""
        if self.state == SETUP:
            self.state = TRAINING

    def done(self) -> None:
        """Every file of the run is written: a signal changes nothing now."""
        self.state = DONE
        files.defer(None)

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGTERM)

    # --- the handler --------------------------------------------------------------------------------------
    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        self.received += 1
        if self.state == DONE:
            return  # everything is written; the process ends on its own in a moment
        if self.signum is None or (signum in _ALSO and signum != self.signum and self.state == TRAINING):
            self.signum, self._at = signum, now  # (a scheduler's warning after a stop request: stop, then requeue)
            if self.state == SETUP:  # nothing of the run exists yet: stop at once, after any write in progress
                self._when_whole(self._stop_before_training)
            return
        if signum == self.signum and now - self._at < REPEAT_WINDOW_SEC:
            return  # the same request delivered twice
        # a second signal: stop at once, but never in the middle of a write
        self._forced = signum
        if files.writing():
            files.defer(self._force)
            self._watchdog()
            return
        self._force()

    def _when_whole(self, fn) -> None:
        if files.writing():
            files.defer(fn)
        else:
            fn()

    def _stop_before_training(self) -> None:
        if self.state == SETUP:
            self.state = STOPPING
            raise SignalStop(self.signum)

    def _force(self) -> None:
        if self.state == DONE or self._forced is None:
            return
        if self.state == SETUP:  # the first signal waited for a write: it stops the job now
            self._stop_before_training()
            return
        if self.state == TRAINING:
            self.state = STOPPING
            raise ForcedStop(self._forced, self.signum)
        _flush_and_exit(self.exit_code)  # stopping already (the untrained folder is being removed)

    def _watchdog(self) -> None:
        code = self.exit_code

        def wait() -> None:
            time.sleep(FORCE_WAIT_SEC)
            if files.writing() and self.state != DONE and self._forced is not None:
                print(
                    f"a write was still in progress {FORCE_WAIT_SEC:g} s after the second signal; exiting "
                    "anyway (its temporary file is removed when the run is next resumed)",
                    file=sys.stderr,
                )
                _flush_and_exit(code)

        threading.Thread(target=wait, name="ics-force-exit", daemon=True).start()


def _flush_and_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a stream mid-write or closed: exit anyway
            pass
    os._exit(code)


def _ignore(signums) -> None:
    for s in signums:
        signal.signal(s, signal.SIG_IGN)


def _exit_with(code: int):
    def handler(signum, frame) -> None:
        _flush_and_exit(code)

    return handler


class RunInterrupted(Exception):
    """Raised after an interrupted run has written its checkpoint and record; `started` False: the
    signal came before training started (or resumed), and nothing of the run was written."""

    def __init__(self, signum: int, run_dir, step: Optional[int], started: bool = True):
        self.signum, self.run_dir, self.step, self.started = signum, run_dir, step, started
        name = signal_name(signum)
        if started:
            text = f"{name} at step {step}"
        elif step is not None:
            text = f"{name} before training resumed from step {step}"
        else:
            text = f"{name} before training started"
        super().__init__(text)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM: the shell convention


# --- before the run's scope: the command that starts it ----------------------------------------------------
class LaunchStopped(BaseException):
    """A stop signal while a command prepares a run, before the run's own scope took over (pre-run
    checks, claiming the folder, Hydra writing .hydra/): a BaseException, so that Hydra's error
    reporting lets it through."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopBeforeRun:
    """SIGINT/SIGTERM from a command's first line until the run's own scope (GracefulStop) takes
    over: the signal raises LaunchStopped at once, wherever the command is. Once `target` holds a
    record, a late signal (Hydra shutting down) changes nothing. The caller says what was kept."""

    def __init__(self):
        self.target: Optional[Path] = None
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.target is not None and (self.target / "summary.json").exists():
            return  # the run wrote its record and is ending: nothing to stop
        raise LaunchStopped(signum)

    def __enter__(self) -> "StopBeforeRun":
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, kind, value, tb) -> Optional[bool]:
        for s, old in self._old.items():
            if signal.getsignal(s) == self._handle:  # the run's own scope may have left a handler that keeps
                signal.signal(s, old)  # its exit code through shutdown: leave that one
        self._old.clear()
        return None


# --- a sweep's signal reaches its jobs ----------------------------------------------------------------------
class ForwardStop:
    """A sweep's SIGINT/SIGTERM reaches its jobs: the signal is passed on to every process the command
    started (joblib and submitit workers), each job checkpoints and ends `interrupted`, and the sweep
    stops. on_first(signum): what the first signal also does (the sweep's stop file, which keeps jobs
    not yet started from starting; an OSError there is ignored). A terminal's Ctrl-C reaches the jobs
    anyway; a second signal stops waiting for them (KeyboardInterrupt, handled by the scope)."""

    def __init__(self, sweep_dir: Path, on_first: Optional[Callable[[int], None]] = None):
        self.signum: Optional[int] = None
        self.sweep_dir = sweep_dir
        self.on_first = on_first
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = signum
        if first and self.on_first is not None:
            try:
                self.on_first(signum)
            except OSError:
                pass
        below = descendants(os.getpid())
        # the first signal goes to the processes training a job (they hold its run lock): an idle
        # joblib worker has no handler and would die, and joblib would then kill the others
        # mid-checkpoint; a job still loading its data is not signalled and finishes. A second
        # signal goes to every process below: the jobs exit at once.
        for pid in training_processes(self.sweep_dir, below) if first else below:
            try:
                os.kill(pid, signum)
            except OSError:
                pass
        if not first:  # a second signal: stop waiting for the jobs
            raise KeyboardInterrupt

    def __enter__(self) -> "ForwardStop":
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> bool:
        for s, old in self._old.items():
            signal.signal(s, old)
        return exc[0] is KeyboardInterrupt and self.signum is not None  # handled: the caller's table follows


def training_processes(sweep_dir: Path, candidates: List[int]) -> List[int]:
    """The processes among `candidates` that hold a job's run lock in this sweep, on this host."""
    from ics.record.lock import holder_pid

    jobs = [d for d in sweep_dir.iterdir() if d.is_dir()] if sweep_dir.is_dir() else []
    return [pid for pid in map(holder_pid, jobs) if pid is not None and pid in candidates]


def descendants(pid: int) -> List[int]:
    """Every process below `pid` (Linux /proc; elsewhere none)."""
    children: dict = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


# --- a full disk -----------------------------------------------------------------------------------------
class RunDiskFull(Exception):
    """A run stopped because one of its writes failed for lack of space (ENOSPC, EDQUOT, EROFS). Its
    message is the one line to print: the reason, the file, the step, what was kept and how to go on."""


def full_disk_reason(e: OSError) -> str:
    """Why a write failed for lack of space, in the words a person reads."""
    import errno

    return {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "read-only file system",
    }.get(e.errno or 0, (e.strerror or "cannot write").lower())


def run_disk_full(
    e: OSError, workdir: Path, step: Optional[int], file: Optional[str], kept: Optional[int]
) -> RunDiskFull:
    """The one-line error of a run in `workdir` whose write failed on a full disk; kept: the step of
    the checkpoint on disk (None: none)."""
    at = f" at step {step:,}" if step is not None else ""
    if kept is not None:
        then = f"its checkpoint (step {kept:,}) is kept; free some space, then: ics resume {workdir}"
    else:
        then = "no checkpoint was written yet; free some space and start the run again"
    return RunDiskFull(f"{full_disk_reason(e)} writing {file or e.filename or workdir}{at}: {then}")


# --- named phases --------------------------------------------------------------------------------------
# Points of a run where a signal or a full disk has its own consequences. A debugger, or a test that
# must act exactly there (tests/pausing.py), replaces `reached`; by default it does nothing.
PHASES = ("launch", "loading-data", "first-step", "mid-checkpoint", "final-evaluation", "finish")


def reached(phase: str) -> None:
    """The run is at `phase` (one of PHASES). Called as `stopping.reached(...)`, so that a replacement
    set on this module takes effect."""
