"""What each normaliser (model.norm) declares about itself, readable without torch.

Every module of ics/models/norms/ holds one `DECLARED = Norm(...)` next to its factory: its name, the
config keys it owns, whether it normalises by the training batch, what evaluation mode does, which
scalings of the affine weight it is invariant to, and a one-line doc. The schema (the keys of
ModelConfig and the allowed values of model.norm), the cross-key checks (trainer.batch_size >= 2),
the pre-run notes, the instruments and the tests read these declarations instead of lists of names.

The modules import torch, and `ics list`, shell completion and the schema must not, so `declared()`
reads the declarations from the modules' sources (`ast.literal_eval` of the arguments: literals only,
nothing is executed); once a module is imported its `DECLARED` is the same object, which a test checks.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

EVAL_MODES = ("running", "same")  # running statistics in evaluation / training and evaluation the same function
INVARIANCES = ("row", "layer", "group", None)


@dataclass(frozen=True)
class Norm:
    """One normaliser's rules. Arguments must be literals (they are read from the source).

    batch_statistics  it normalises by the training batch: trainer.batch_size must be >= 2, bn_stats
                      and bn_noise apply, and its module subclasses torch's _BatchNorm (running_mean,
                      running_var, eps, momentum: what precise BN, bn_noise and the probes' batch mode read)
    eval_mode         "running": evaluation uses running statistics (one example at a time gives the
                      same output as in a batch); "same": training and evaluation are one function
    invariance        which scalings of the affine weight W leave the output unchanged: "row" (each row
                      w_k alone), "layer" (all of W at once), "group" (the rows of one group at once),
                      None (none)
    exact             False where the invariance holds for the gradient only, not the forward
    keys              the config keys it owns: model.<key> -> (default, doc, allowed), allowed one of
                      ("gt", x), ("ge", x), ("between", lo, hi), ("choices", v1, v2, ...) or None
    """

    name: str
    doc: str
    batch_statistics: bool
    eval_mode: str
    invariance: Optional[str]
    exact: bool = True
    keys: Mapping[str, Tuple[Any, ...]] = field(default_factory=dict)

    def __post_init__(self):
        if self.eval_mode not in EVAL_MODES or self.invariance not in INVARIANCES:
            raise ValueError(
                f"normaliser {self.name!r}: eval_mode must be one of {EVAL_MODES} and invariance one of {INVARIANCES}"
            )


FOLDER = Path(__file__).resolve().parent.parent / "models" / "norms"  # found without importing ics.models (torch)
_declared: Dict[str, Norm] = {}


def read(path: Path) -> Optional[Norm]:
    """The `DECLARED = Norm(...)` of one source file, or None where it has none."""
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["DECLARED"]:
            call = node.value
            if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Norm" and not call.args):
                raise TypeError(f"{path}: DECLARED must be Norm(name=..., ...) with keyword arguments")
            try:
                return Norm(**{kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg})
            except ValueError as e:
                raise TypeError(f"{path}: every argument of DECLARED = Norm(...) must be a literal ({e})") from None
    return None


def declared() -> Dict[str, Norm]:
    """name -> declaration of every normaliser, in file-name order. The same dict on every call (tests
    add a throwaway normaliser to it for their duration)."""
    if not _declared:
        for path in sorted(FOLDER.glob("*.py")):
            norm = read(path)
            if norm is not None:
                if norm.name in _declared:
                    raise KeyError(f"normaliser {norm.name!r} is declared twice")
                _declared[norm.name] = norm
    return _declared


def owned_keys() -> Dict[str, str]:
    """model.<key> -> the normaliser that owns it (its only reader)."""
    return {key: norm.name for norm in declared().values() for key in norm.keys}


def batch_statistics() -> Tuple[str, ...]:
    """The normalisers that normalise by the training batch."""
    return tuple(n for n, norm in declared().items() if norm.batch_statistics)
