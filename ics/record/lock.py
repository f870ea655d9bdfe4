"""The run lock: the process training in a directory holds an exclusive flock on `run.lock`; the
`ics` process running or resuming a sweep holds one on the sweep's `sweep.lock` the same way.

The kernel releases it when the process dies, however it dies (kill -9 included), so a reader can
tell a live run from a dead one without trusting timestamps or pids: a record that says `running`
whose lock is free belongs to a killed run. Whoever takes the lock is the folder's only writer, so
it removes the temporary files (`.<name>.<pid>.tmp`) that a killed writer left behind.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Optional

from ics.record import names
from ics.record.files import remove_stale_temp_files

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: no liveness information
    fcntl = None


class RunBusy(RuntimeError):
    """Another live process is training in this directory."""


class RunLock:
    def __init__(self, run_dir: Path, name: str = names.LOCK, what: str = ""):
        self.path = Path(run_dir) / name
        self.what = what  # written after "pid N on host, ", e.g. "resuming it": what the holder does
        self.fh = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a run folder is data: a planted link must not make the lock's write land elsewhere, nor a
        # FIFO make the open wait forever
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK, 0o644)
        except OSError as e:
            raise RunBusy(
                f"{self.path} cannot be used as a lock ({_what(self.path) or e.strerror}); remove it"
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RunBusy(f"{self.path} cannot be used as a lock ({_what(self.path)}); remove it")
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "a+")
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                owner = fh.read().strip() or "another process"
                fh.close()
                raise RunBusy(f"{self.path.parent} is in use by {owner}") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}{', ' + self.what if self.what else ''}\n")
        fh.flush()
        self.fh = fh
        # the one writer now: temporary files a killed writer left here (`.<name>.<pid>.tmp`) go
        remove_stale_temp_files(self.path.parent)
        return self

    def release(self) -> None:
        if self.fh is not None:
            if fcntl is not None:
                fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _what(path: Path) -> Optional[str]:
    """What a path that should be a plain file is instead, or None if it is one (or absent)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    return {
        stat.S_IFLNK: "a symbolic link",
        stat.S_IFIFO: "a FIFO",
        stat.S_IFDIR: "a folder",
        stat.S_IFSOCK: "a socket",
    }.get(stat.S_IFMT(mode), "not a plain file")


def holder(run_dir: Path, name: str = names.LOCK) -> Optional[str]:
    """Who holds the lock `name` ("pid N on host"), or None when no live process does. A lock that is
    not a plain file (a link, a FIFO) is never opened: nobody holds it."""
    path = Path(run_dir) / name
    if fcntl is None or not path.exists() or _what(path) is not None:
        return None
    try:
        fh = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK), "r")
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return fh.read().strip() or "another process"
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return None


def holder_pid(run_dir: Path) -> Optional[int]:
    """The pid of the process on this host that holds the run lock, or None (no live holder, or
    one on another host)."""
    who = (holder(run_dir) or "").split()  # "pid N on host", as acquire() writes it
    if len(who) == 4 and who[0] == "pid" and who[2] == "on" and who[3] == socket.gethostname():
        try:
            return int(who[1])
        except ValueError:
            return None
    return None
