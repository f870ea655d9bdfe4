"""torchvision, imported once for every reader that needs it, with a broken install said in one line.

torch and torchvision are compiled for each other: a torchvision from another build than the torch
beside it (a CPU torch with a CUDA torchvision, or versions not made as a pair) installs without
complaint and fails at `import torchvision`, e.g. "operator torchvision::nms does not exist". That
failure becomes a TorchvisionMismatch naming both versions and the repair, not a long traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

# torchvision 0.(N+15) is built for torch 2.N (0.17 for 2.2, ..., 0.29 for 2.14)
_MINOR_OFFSET = 15


class TorchvisionMismatch(RuntimeError):
    """torchvision does not import beside the installed torch. Its message is one line."""


def installed_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "(not installed)"


def pair_for(torch_version: str) -> str:
    """The torchvision release line made for a torch version: '2.14.1+cpu' -> '0.29'; '?' if unknown."""
    try:
        major, minor = (int(p) for p in torch_version.split("+")[0].split(".")[:2])
    except ValueError:
        return "?"
    return f"0.{minor + _MINOR_OFFSET}" if major == 2 else "?"


def mismatch_line(error: BaseException, torch_version: str, vision_version: str) -> str:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    base, pair = torch_version.split("+")[0], pair_for(torch_version)
    vision = f"torchvision=={pair}.*" if pair != "?" else "torchvision (the release made for it)"
    return (
        f"torchvision {vision_version} does not work with torch {torch_version} ({first}); in this "
        f"environment run `pip uninstall -y torch torchvision`, then install the pair from one index: "
        f"`pip install torch=={base} {vision}` (README: On a machine "
        "without a GPU)"
    )


def load(module: str = "torchvision") -> ModuleType:
    """Import torchvision (or one of its modules, e.g. "torchvision.datasets"); TorchvisionMismatch if
    it does not import beside this torch."""
    try:
        return importlib.import_module(module)
    except (ImportError, RuntimeError, OSError) as e:  # a missing operator, an undefined symbol, no package
        raise TorchvisionMismatch(mismatch_line(e, torch.__version__, installed_version("torchvision"))) from None
