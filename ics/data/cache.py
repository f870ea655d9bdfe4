"""The decoded-tensor cache: a data set is decoded once into uint8 tensors and stored under
`cache_dir`, keyed on the source files' resolved real paths, sizes and mtimes, so only the first
run pays for decoding, the same files reached through a symlink share one entry, and the data root
itself is never written. Writes are atomic; an unreadable entry only costs a re-decode."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch

log = logging.getLogger(__name__)

# Bump when the cached payload's layout changes, so old cache files are ignored.
CACHE_VERSION = 2


@dataclass
class RawData:
    """Decoded data set as stored in the cache: uint8 (N, C, H, W) pixels, int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: List[str]


def user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ics"


def cache_dir(configured: Optional[str]) -> Path:
    """data.cache_dir, else $ICS_CACHE_DIR, else <user cache>/ics/tensors."""
    d = configured or os.environ.get("ICS_CACHE_DIR") or user_cache() / "tensors"
    return Path(d).expanduser().absolute()


def cache_key(name: str, files: Sequence[Union[str, Path]]) -> str:
    stats = []
    for f in files:
        real = os.path.realpath(f)
        st = os.stat(real)
        stats.append([real, st.st_size, st.st_mtime_ns])
    blob = json.dumps([CACHE_VERSION, name, stats]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_cache(path: Path) -> Optional[RawData]:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        return RawData(**{k: blob[k] for k in ("x_train", "y_train", "x_test", "y_test", "classes")})
    except Exception as err:  # a corrupt or foreign file only costs a re-decode
        log.warning("ignoring unreadable data cache %s (%s)", path, err)
        return None


def write_cache(path: Path, raw: RawData) -> None:
    blob = dict(vars(raw), version=CACHE_VERSION)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(blob, fh)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache is as readable as the data it holds
            os.replace(tmp, path)  # atomic: readers see the old state or the whole new file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:  # no cache is slower, not wrong
        log.warning("could not write data cache %s (%s); the next run decodes again", path, err)
