"""Writing run files: atomically (a killed run never leaves half a file) and in strict formats."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np


TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")  # what atomic_write names its temporary files


def temp_path(path: Path) -> Path:
    """The temporary file atomic_write writes `path` through: `.<name>.<pid>.tmp`, same folder."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: Path, write: Callable[[Path], Any], fsync: bool = False) -> None:
    """Write through a temporary file in the same folder, then rename over the target: readers see
    the old file or the whole new one. fsync: also survive a machine crash (checkpoints)."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        write(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _finite(obj: Any) -> Any:
    """NaN/inf -> None: strict JSON (jq, JavaScript, CSV tools) has no non-finite numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(_finite(obj), indent=2, allow_nan=False, default=float)
    atomic_write(path, lambda p: p.write_text(text))


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
