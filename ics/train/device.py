"""The training device."""

from __future__ import annotations

import torch

from ics.config import ConfigError
from ics.words import count


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.device={name!r} is invalid: CUDA is not available here; allowed: auto, cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"trainer.device={name!r} is invalid: this machine has "
                f"{count(torch.cuda.device_count(), 'CUDA device')}; allowed: cuda:0 .. cuda:{torch.cuda.device_count() - 1}"
            )
    return torch.device(name)


def environment(device: torch.device, threads: int) -> dict:
    """What a run's float rounding depends on beyond its config: the versions, the CPU kernels torch
    dispatches to (AVX2 and AVX-512 sum in different orders), the thread count, the device and
    whether deterministic algorithms were asked for. Recorded in summary.json; `ics report` says when
    runs pooled together differ in it."""
    import platform

    import numpy

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "machine": platform.machine(),
        "cpu_capability": _cpu_capability(),
        "threads": int(threads),
        "device": device_name(device),
        "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
    }
    if device.type == "cuda":
        env["cuda"] = str(torch.version.cuda)
        env["cudnn"] = str(torch.backends.cudnn.version())
    return env


def _cpu_capability() -> str:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # an older torch
        return "unknown"


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
