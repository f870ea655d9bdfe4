"""The training device."""
from __future__ import annotations

import torch

from ics.config import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.device={name!r} is invalid: CUDA is not available here; allowed: auto, cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"trainer.device={name!r} is invalid: this machine has {torch.cuda.device_count()} "
                              f"CUDA device(s); allowed: cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
