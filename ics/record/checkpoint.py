"""Reading a checkpoint back, as data only: `torch.load(weights_only=True)` (tensors, numbers, strings,
lists and dicts, never code), the type of every part a resume uses checked, every refusal one line.

The reader lives with the run record, below training: the record's readers (`ics status`, `ics
report`, a sweep's resume) ask a job's checkpoint for its step without importing the trainer, and
ics.train.checkpoint, which writes checkpoints, imports this module (one way only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch

from ics.config.fields import ConfigError

FORMAT = 1  # written by ics.train.checkpoint.save into every checkpoint; a reader refuses any other

# what a checkpoint must hold for a resume, and of which type (checked before any of it is used)
REQUIRED = {
    "step": int,
    "model": dict,
    "optimizer": dict,
    "sampler": dict,
    "rng": dict,
    "instruments": dict,
    "meter": dict,
    "history": dict,
    "config": dict,
}


def _reason(path: Path, e: BaseException) -> str:
    """Why torch.load refused a file, in one line, and never "load it with weights_only=False":
    nothing in a run folder is ever unpickled as code."""
    import pickle

    from ics.record.files import one_line

    text = str(e)
    try:
        empty = Path(path).stat().st_size == 0
    except OSError:
        empty = False
    if empty:
        return "the file is empty (0 bytes)"
    if isinstance(e, pickle.UnpicklingError) and ("Unsupported global" in text or "GLOBAL" in text):
        return (
            "it holds Python objects other than tensors, numbers, strings, lists and dicts; ics loads "
            "checkpoints as data only and refuses it"
        )
    if isinstance(e, pickle.UnpicklingError) or "Weights only load failed" in text:
        return "not a checkpoint ics wrote (its content is not plain tensors and data)"
    if isinstance(e, EOFError) or "central directory" in text or "failed reading zip archive" in text:
        return "truncated or not a torch file (cut off mid-write, or foreign content)"
    if isinstance(e, IsADirectoryError):
        return "a folder, not a file"
    if isinstance(e, OSError):
        return f"cannot be read ({e.strerror or type(e).__name__})"
    first = one_line(e).split(". ")[0]
    return first if "weights_only" not in first else "it does not load as plain tensors and data"


def _torch_load(path: Path, **kw) -> Any:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error below says it all
            return torch.load(Path(path), weights_only=True, map_location="cpu", **kw)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated, foreign or unsafe content: never executed
        raise ConfigError(f"cannot read checkpoint {path}: {_reason(path, e)}") from None


def load(path: Path) -> Dict[str, Any]:
    """A checkpoint, as data only (weights_only=True), with the type of every part a resume uses
    checked: FileNotFoundError if absent, else a one-line ConfigError naming the file."""
    state = _torch_load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        what = state.get("format") if isinstance(state, dict) else "?"
        raise ConfigError(f"cannot read checkpoint {path}: not an ics checkpoint (format {str(what)[:20]})")
    for key, kind in REQUIRED.items():
        v = state.get(key)
        if not isinstance(v, kind) or isinstance(v, bool):
            raise ConfigError(
                f"cannot read checkpoint {path}: its {key!r} is "
                f"{'missing' if key not in state else type(v).__name__ + ', not ' + kind.__name__}"
            )
    if state["step"] < 0:
        raise ConfigError(f"cannot read checkpoint {path}: its step is {state['step']}")
    threads = state.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ConfigError(f"cannot read checkpoint {path}: its thread count is {str(threads)[:20]}")
    return state


def step_of(path: Path) -> int:
    """The step a checkpoint holds (memory-mapped: the tensors are not read). ConfigError if it
    does not read, FileNotFoundError if absent."""
    try:
        state = _torch_load(path, mmap=True)
    except ConfigError:
        state = _torch_load(path)  # an old-style (not zip) file cannot be memory-mapped
    step = state.get("step") if isinstance(state, dict) else None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ConfigError(f"cannot read checkpoint {path}: no step in it")
    return step
