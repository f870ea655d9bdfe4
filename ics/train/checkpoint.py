"""Checkpoints: everything needed to continue a run exactly, written atomically, read as data only
(the reader, load and step_of, is ics.record.checkpoint: the run record's readers use it too).

A checkpoint holds the model, the optimiser, the step, every RNG state (torch CPU and CUDA; the
sampler's private generator and its position in the epoch), each instrument's state, the meter's
pending window, the history, and the thread count the run used. It is loaded with
`torch.load(weights_only=True)`: tensors, numbers, strings, lists and dicts only, never code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from ics.config import ConfigError, to_dict
from ics.config.schema import MACHINE_KEYS, Config
from ics.record import atomic_write, names
from ics.record.checkpoint import FORMAT, REQUIRED, load, step_of  # the reader, below training

__all__ = ["FORMAT", "REQUIRED", "load", "step_of", "save", "config_difference", "check_matches", "path_of"]

# keys that say where or how fast a run goes, not what it computes: they may differ on resume
NEUTRAL_KEYS = MACHINE_KEYS
NEUTRAL_PREFIXES = ("report.", "tolerance.", "sweep.")


def save(path: Path, state: Dict[str, Any], before_rename=None) -> None:
    """Write atomically (temporary file, fsync, rename). Through a Python file object, so that a full
    disk surfaces as an OSError (ENOSPC) and not as torch's bare "iostream error": a FullDiskError naming
    the file; the previous checkpoint stays. before_rename: see atomic_write."""
    atomic_write(
        Path(path),
        lambda fh: torch.save({"format": FORMAT, **state}, fh),
        fsync=True,
        before_rename=before_rename,
        fileobj=True,
    )


def flat(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_difference(cfg: Config, saved: Dict[str, Any]) -> Optional[Tuple[str, Any, Any]]:
    """The first key (not neutral) whose value differs: (key, saved value, new value), or None. A key
    the saved config predates (added to the schema since) counts as its default."""
    from ics.config import from_dict

    now = flat(to_dict(cfg))
    try:
        then = flat(to_dict(from_dict(saved)))
    except (ConfigError, TypeError, ValueError):
        then = flat(saved)
    for key in sorted(set(now) | set(then)):
        if key in NEUTRAL_KEYS or key.startswith(NEUTRAL_PREFIXES):
            continue
        if now.get(key, "<absent>") != then.get(key, "<absent>"):
            return key, then.get(key, "<absent>"), now.get(key, "<absent>")
    return None


def check_matches(cfg: Config, run_dir: Path, saved: Dict[str, Any]) -> None:
    diff = config_difference(cfg, saved)
    if diff is not None:
        key, old, new = diff
        raise ConfigError(
            f"cannot resume {run_dir}: its checkpoint was written with {key}={old}, the config now "
            f"says {key}={new}; resume with the run's own config (`ics resume {run_dir}`) or start "
            "a new run directory"
        )


def path_of(run_dir: Path) -> Path:
    return Path(run_dir) / names.CHECKPOINT
