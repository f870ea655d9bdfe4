"""Run and sweep directories that no two launches ever share.

Hydra names a directory after the current second; two `ics run` started in the same second would
write into one. The CLI resolves Hydra's template itself and claims the directory with an atomic
mkdir, adding -2, -3, ... when the name is taken, then hands the claimed path to Hydra.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path


def claim(path: Path) -> Path:
    """Create and return `path`, or the first free `path-2`, `path-3`, ... (atomic: os.mkdir)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for k in itertools.count(1):
        candidate = path if k == 1 else path.with_name(f"{path.name}-{k}")
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def quote(path: Path) -> str:
    """A path as a Hydra override value (quoted: it may hold '=' or ',')."""
    text = str(path).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def remove_untrained(out_dir: Path, stop: Path) -> None:
    """Delete a job dir that holds only Hydra's bookkeeping (.hydra/, the job log, the run lock),
    and the parents made for it (runs/<date>/) once empty, up to the working directory."""
    keep_ok = (".hydra", "ics.log", "run.lock")
    if not (out_dir.is_dir() and all(p.name in keep_ok for p in out_dir.iterdir())):
        return
    shutil.rmtree(out_dir)
    parent, stop = out_dir.resolve().parent, stop.resolve()
    while parent != stop and stop in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def planted_link(folder: Path, depth: int = 3):
    """The first symbolic link at or below `folder`, `depth` levels down (a job folder, its .hydra/ and
    what is in it), never following one; None when there is none. Hydra writes .hydra/*.yaml and the
    job log with plain open(), which would follow a link planted there."""
    folder = Path(folder)
    if folder.is_symlink():
        return folder
    todo = [(folder, 0)]
    while todo:
        d, level = todo.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            if e.is_symlink():
                return Path(e.path)
            if level + 1 < depth and e.is_dir(follow_symlinks=False):
                todo.append((Path(e.path), level + 1))
    return None
