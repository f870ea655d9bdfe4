"""Noisy BN (Santurkar et al. 2018, §2.1): distributional shift injected on purpose.

After each normalisation layer (or, with model.norm=none, at the same place: the affine output),
in training mode only, every step draws for each unit j a mean μ_j ~ U(−a, a) and a scale
σ_j ~ U(1, b); then every element gets its own m ~ U(μ_j − c, μ_j + c) and s ~ N(σ_j, d), and
y ← s·y + m. Defaults a = 0.5, b = 1.25, c = 0.1, d = 0.1 (model.noise_*). For a conv layer, height
and width count as batch dimensions (a unit is a channel).

The draws come from the module's own generator (seeded from the run seed), whose state is part of
the model's state_dict (so checkpoints resume the same noise). Evaluation and every instrument
pass are noise-free (`noise_off(model)`), except gradient ICS, whose passes replay the draw of the
step about to be taken (`noise_replay(model)`), so that its twin update is the real one.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn


class Stochastic(nn.Module):
    """A training-time random layer with its own generator (CPU: the same stream on CPU and GPU),
    seeded from the run seed, its state part of the model's state_dict (a resumed run draws the same
    numbers), and an `active` switch that measurement passes turn off (noise_off) or replay
    (noise_replay). It never touches the global RNG."""

    def __init__(self):
        super().__init__()
        self.gen = torch.Generator()
        self.active = True

    def seed(self, seed: int) -> None:
        self.gen.manual_seed(seed)

    def get_extra_state(self) -> torch.Tensor:
        return self.gen.get_state()

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.gen.set_state(state)


class Dropout(Stochastic):
    """Inverted dropout (Srivastava et al. 2014): in training, each element is kept with probability
    1 − p and scaled by 1/(1 − p); the identity in evaluation and in every measurement pass."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.active) or self.p == 0:
            return x
        keep = (torch.rand(x.shape, generator=self.gen) >= self.p).to(x.device, x.dtype)
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ScaleShiftNoise(Stochastic):
    def __init__(self, mean_range: float, scale_max: float, mean_jitter: float, scale_jitter: float):
        super().__init__()
        self.mean_range, self.scale_max = mean_range, scale_max
        self.mean_jitter, self.scale_jitter = mean_jitter, scale_jitter

    def draw(self, shape, channels: int):
        """(s, m) for an input of `shape` with `channels` units along dim 1 (CPU tensors)."""
        g = self.gen
        mu = (torch.rand(channels, generator=g) * 2 - 1) * self.mean_range
        sigma = 1 + torch.rand(channels, generator=g) * (self.scale_max - 1)
        view = (1, channels) + (1,) * (len(shape) - 2)
        m = mu.view(view) + (torch.rand(shape, generator=g) * 2 - 1) * self.mean_jitter
        s = sigma.view(view) + torch.randn(shape, generator=g) * self.scale_jitter
        return s, m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.active):
            return x
        s, m = self.draw(x.shape, x.shape[1])
        return x * s.to(x.device, x.dtype) + m.to(x.device, x.dtype)

    def extra_repr(self) -> str:
        return (
            f"mu~U(-{self.mean_range},{self.mean_range}), sigma~U(1,{self.scale_max}), "
            f"jitter {self.mean_jitter}/{self.scale_jitter}"
        )


@contextmanager
def noise_off(model: nn.Module) -> Iterator[None]:
    """Measurement passes draw no noise (nor dropout) and leave every generator where it was."""
    mods = [m for m in model.modules() if isinstance(m, Stochastic)]
    was = [m.active for m in mods]
    try:
        for m in mods:
            m.active = False
        yield
    finally:
        for m, a in zip(mods, was):
            m.active = a


@contextmanager
def noise_replay(model: nn.Module) -> Iterator[Callable[[], None]]:
    """Measurement passes that see the noise the next training step will draw. Call the yielded
    `rewind()` before each pass: it puts every noise generator back where it was on entry (and
    switches the noise on), so each pass draws exactly what the real step's forward will draw, in
    the same order and shapes. On exit the generators are where they were: the real step still
    draws that noise, and training is unchanged."""
    mods = [m for m in model.modules() if isinstance(m, Stochastic)]
    states = [m.gen.get_state() for m in mods]
    was = [m.active for m in mods]

    def rewind() -> None:
        for m, state in zip(mods, states):
            m.gen.set_state(state)
            m.active = True

    try:
        yield rewind
    finally:
        for m, state, a in zip(mods, states, was):
            m.gen.set_state(state)
            m.active = a
