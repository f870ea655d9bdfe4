"""One registry per swappable part. Modules register their parts at import time (ics/__init__).

To add a part, register it where its kind lives (a model in ics/models, a data set in ics/data, an
instrument in ics/instruments) and, if it has settings, add its dataclass to ics/config/schema.py
with @option; a test checks that every option has a registered builder and vice versa.
"""
from __future__ import annotations

from typing import Callable, Dict, TypeVar

T = TypeVar("T")


class Registry(Dict[str, Callable]):
    """A name -> factory dict with a decorator and a one-line error for unknown names."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        def deco(fn: T) -> T:
            if name in self:
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
