"""Run and sweep directories that no two launches ever share.

Hydra names a directory after the current second; two `ics run` started in the same second would
write into one. The CLI resolves Hydra's template itself and claims the directory with an atomic
mkdir, adding -2, -3, ... when the name is taken, then hands the claimed path to Hydra.
"""
from __future__ import annotations

import itertools
import os
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
