"""Writing run files: atomically (a killed run never leaves half a file) and in strict formats."""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np


TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")  # what atomic_write names its temporary files


def temp_path(path: Path) -> Path:
    """The temporary file atomic_write writes `path` through: `.<name>.<pid>.tmp`, same folder."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


# --- writes that a signal never cuts ----------------------------------------------------------------
# A signal handler runs on the main thread between two bytecodes: an exit it forces must wait until a
# write in progress is whole. Writes on the main thread mark themselves here; ics.train.signals
# defers what a signal asks for until the outermost marked write ends.
_depth = 0
_pending: Optional[Callable[[], None]] = None


def _main() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def whole() -> Iterator[None]:
    """The body runs to its end before anything a signal asks for happens (see `defer`)."""
    global _depth, _pending
    if not _main():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            fn, _pending = _pending, None
            fn()  # may raise (a stop asked for during the write); it then replaces any error in flight


def writing() -> bool:
    """A write marked by `whole` is in progress on the main thread."""
    return _depth > 0


def defer(fn: Optional[Callable[[], None]]) -> None:
    """Run fn when the write in progress ends (the last call wins; None cancels)."""
    global _pending
    _pending = fn


# --- a full disk --------------------------------------------------------------------------------------
NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


class NoSpace(OSError):
    """A write that failed because the file system is full, over quota or read-only; filename: the
    file being written."""


def no_space(e: Optional[BaseException]) -> Optional[OSError]:
    """The OSError for lack of space (ENOSPC, EDQUOT, EROFS) in e or what caused it, else None.
    (torch.save wraps it in a RuntimeError; its cause or context is the OSError.)"""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS:
            return e
        e = e.__cause__ or e.__context__
    return None


def atomic_write(path: Path, write: Callable[[Path], Any], fsync: bool = False,
                 before_rename: Optional[Callable[[], None]] = None) -> None:
    """Write through a temporary file in the same folder, then rename over the target: readers see
    the old file or the whole new one. fsync: also survive a machine crash (checkpoints). A signal
    never cuts it (see `whole`); the temporary file is removed whatever happens. A failure for lack
    of space is a NoSpace naming `path`. before_rename: a test hook (ics.train.signals.pause_point)."""
    path = Path(path)
    tmp = temp_path(path)
    with whole():
        try:
            write(tmp)
            if fsync:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if before_rename is not None:
                before_rename()
            os.replace(tmp, path)
        except Exception as e:
            full = no_space(e)
            if full is None:
                raise
            raise NoSpace(full.errno, full.strerror or os.strerror(full.errno), str(path)) from None
        finally:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass


def _finite(obj: Any) -> Any:
    """NaN/inf -> None: strict JSON (jq, JavaScript, CSV tools) has no non-finite numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any, before_rename: Optional[Callable[[], None]] = None) -> None:
    text = json.dumps(_finite(obj), indent=2, allow_nan=False, default=float)
    atomic_write(path, lambda p: p.write_text(text), before_rename=before_rename)


def write_npz(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    # through a file object: np.savez would append ".npz" to a bare temporary path
    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def stale_temp_files(folder: Path) -> List[Path]:
    """Temporary files atomic_write left in folder (not below it) when its process was killed:
    named `.<name>.<pid>.tmp` by a process that is no longer alive. Call it holding the run lock."""
    out = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for e in entries:
        m = TEMP_NAME.match(e.name)
        if m is None or not (e.is_file(follow_symlinks=False) or e.is_symlink()):
            continue
        if _alive(int(m.group("pid"))):
            continue
        out.append(Path(folder) / e.name)
    return out


def remove_stale_temp_files(folder: Path) -> List[Path]:
    """Remove stale_temp_files(folder) (a link is removed, never what it points to); returns them."""
    removed = []
    for p in stale_temp_files(folder):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's live process (or not a pid at all: leave it alone)
    return True


class UnreadableText(ValueError):
    """A file that is not text ics can read: empty, not UTF-8, or far too large."""


def read_text(path: Path, max_bytes: int) -> str:
    """The UTF-8 text of a file from a run or sweep folder, read as untrusted data: an empty,
    binary (not UTF-8) or oversized file is an UnreadableText with one line saying which."""
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if not data:
        raise UnreadableText("empty file")
    if len(data) > max_bytes:
        raise UnreadableText(f"larger than {max_bytes >> 20} MB: not a file ics wrote")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnreadableText(f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}): binary or "
                             "damaged") from None


def one_line(e: BaseException) -> str:
    """An exception as one short line (its first non-empty line, else its type)."""
    if isinstance(e, RecursionError):
        return "nested too deeply"
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."
