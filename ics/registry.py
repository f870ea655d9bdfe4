"""One registry per swappable part. Modules register their parts at import time (ics/__init__).

To add a part, register it where its kind lives (a model in ics/models, a data set in ics/data, an
instrument as a new module in ics/instruments, found without an import list); if it has settings,
add its dataclass to ics/config/schema.py (@kind for a model, data set or optimiser) and its option
file to configs/<group>/. Tests check that every kind has a registered builder and vice versa, and
that every option file composes and validates.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, TypeVar

T = TypeVar("T")

# the modules whose import fills the registries; imported on the first look-up, so that `import
# ics.config` (the CLI's start, shell completion) does not pay for torch
PARTS = ("ics.data", "ics.models", "ics.train.optim", "ics.instruments")
_loaded = False


def load_parts() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in PARTS:
            importlib.import_module(module)


class Registry(Dict[str, Callable]):
    """A name -> factory dict with a decorator and a one-line error for unknown names."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    # every read fills the registries first
    def __getitem__(self, key):
        load_parts()
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        load_parts()
        return super().__contains__(key)

    def __iter__(self):
        load_parts()
        return super().__iter__()

    def __len__(self) -> int:
        load_parts()
        return super().__len__()

    def keys(self):
        load_parts()
        return super().keys()

    def items(self):
        load_parts()
        return super().items()

    def values(self):
        load_parts()
        return super().values()

    def get(self, key, default=None):
        load_parts()
        return super().get(key, default)

    def register(self, name: str) -> Callable[[T], T]:
        def deco(fn: T) -> T:
            if dict.__contains__(self, name):
                raise KeyError(f"{self.kind} {name!r} is registered twice")
            self[name] = fn
            return fn

        return deco

    def get_or_raise(self, name: str) -> Callable:
        if name not in self:
            from ics.config.fields import ConfigError

            raise ConfigError(f"unknown {self.kind} {name!r}; allowed: {', '.join(self)}")
        return self[name]


MODELS = Registry("model")
ACTIVATIONS = Registry("activation")
NORMS = Registry("norm")
INITS = Registry("init")
DATASETS = Registry("dataset")
OPTIMIZERS = Registry("optimizer")
INSTRUMENTS = Registry("instrument")
