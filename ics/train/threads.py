"""CPU thread policy.

Whether threads help depends on the model and on the machine's load: on a 2-core CPU the Fig. 1
MLP is about 1.2x faster on two threads while the other core is idle, and 2-40x slower once it gets
busy (another job of a sweep, a test suite), while a small CIFAR CNN gains more from two. No size rule
separates those reliably across machines, so `threads=auto` times a few training steps of the actual
model at each candidate thread count (on a copy, with synthetic data from a private generator: the
run's RNG streams are untouched), and chooses conservatively, because the choice holds for the whole
run (it decides float rounding, so it cannot change mid-run without breaking bit-identical resumes):

- never more threads than cores idle right now (sampled from /proc/stat), nor than a sweep's share
  of the cores (`max_threads`: cores // jobs running at once);
- more than one thread only when it is at least MIN_GAIN times faster than one: a small gain is not
  worth the collapse when a neighbour wakes up (`ics bench --threads` measures both cases).
"""

from __future__ import annotations

import copy
import os
import time
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

MIN_GAIN = 1.5  # threads > 1 must beat one thread by this factor to be chosen


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def idle_cores(window: float = 0.1) -> Optional[int]:
    """Cores idle over the next `window` seconds (from /proc/stat), rounded; None where unknown."""

    def sample():
        with open("/proc/stat") as f:
            parts = [float(v) for v in f.readline().split()[1:]]
        return sum(parts), parts[3] + (parts[4] if len(parts) > 4 else 0.0)  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(window)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return int(round((idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)))


def _time_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    best = float("inf")
    for _ in range(3):  # best of 3 short bursts: robust to a noisy neighbour
        t0 = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            out = model(x)
            (F.mse_loss(out, y) if y.dtype.is_floating_point else F.cross_entropy(out, y)).backward()
            opt.step()
        best = min(best, time.perf_counter() - t0)
    return best


def choose_threads(
    model: torch.nn.Module,
    in_shape: Sequence[int],
    num_classes: int,
    batch_size: int,
    max_threads: Optional[int] = None,
    regression: bool = False,
) -> int:
    """Fastest thread count for this model and batch on the CPU (1 .. max_threads)."""
    cap = max(1, min(max_threads or available_cores(), available_cores()))
    idle = idle_cores() if cap > 1 else None
    if idle is not None:
        cap = max(1, min(cap, idle))
    if cap == 1:
        return 1
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((batch_size, *in_shape), generator=gen)
    y = (
        torch.randn(batch_size, num_classes, generator=gen)
        if regression
        else torch.randint(0, num_classes, (batch_size,), generator=gen)
    )
    probe_model = copy.deepcopy(model).train()
    before = torch.get_num_threads()
    try:
        _time_steps(probe_model, x, y, 1, 3)  # warm-up: allocator, kernels
        # scale the burst so each timing lasts ~20 ms at one thread
        t1 = _time_steps(probe_model, x, y, 1, 2) / 2
        steps = max(2, min(50, int(0.02 / max(t1, 1e-6))))
        candidates = sorted({1, cap} | ({cap // 2} if cap >= 4 else set()))
        times = {n: _time_steps(probe_model, x, y, n, steps) for n in candidates}
    finally:
        torch.set_num_threads(before)
    good = [n for n in candidates if n == 1 or times[1] / times[n] >= MIN_GAIN]
    return min(good, key=times.get)


def resolve_threads(
    setting,
    model,
    in_shape,
    num_classes,
    batch_size,
    device: torch.device,
    max_threads: Optional[int] = None,
    regression: bool = False,
) -> int:
    """Apply trainer.threads and return the thread count in force."""
    if setting == "auto" and device.type == "cpu":
        n = choose_threads(model, in_shape, num_classes, batch_size, max_threads, regression)
    elif setting == "auto":  # the GPU does the work; host threads only launch kernels
        n = max(1, min(available_cores(), max_threads or available_cores()))
    else:
        n = int(setting)
    torch.set_num_threads(n)
    return n
