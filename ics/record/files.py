"""Writing run files: atomically (a killed run never leaves half a file) and in strict formats."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np


def atomic_write(path: Path, write: Callable[[Path], Any], fsync: bool = False) -> None:
    """Write through a temporary file in the same folder, then rename over the target: readers see
    the old file or the whole new one. fsync: also survive a machine crash (checkpoints)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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
