"""Distribution statistics and drift metrics for one probe point, all on the device.

A probe point's activations are arranged as `(units, samples)`: for a Linear layer a unit is a
feature and the samples are the probe examples; for a conv layer a unit is a channel and the samples
are batch x height x width. Drift compares a snapshot with a reference snapshot (step 0) or with the
previous snapshot, unit by unit:

  W1(P, Q)    = ∫ |F_P⁻¹(q) − F_Q⁻¹(q)| dq         (1-Wasserstein; for two equal-size samples,
                                                     the mean absolute difference of sorted values)
Shift and log-std are taken in absolute value so that summaries over units (mean, max) measure
magnitude; signed per-unit values would cancel in the mean.
  w1          = W1(P_t, P_ref) / σ_ref              (in reference-std units)
  shift       = |μ_t − μ_ref| / σ_ref
  log_std     = |log(σ_t / σ_ref)|
  path        = Σ_k W1(P_{t_k}, P_{t_{k−1}}) / σ_ref (cumulative drift: the distribution's path length)

Units matter (a small σ_ref manufactures large drift), so the same movement is also given
  w1_raw      = W1(P_t, P_ref)                       (in the probed quantity's own units)
  w1_shape    = W1(Z_t, Z_ref), Z = (x − μ)/σ each   (the change of shape alone: 0 for a shift or a rescaling)
  pmove_q     = |p_q(t) − p_q(ref)|                   (percentile movement in raw units; per unit, so
                                                      opposite-sign moves do not cancel)
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch


def as_units(a: torch.Tensor) -> torch.Tensor:
    """(N, C) -> (C, N); (N, C, H, W) -> (C, N*H*W): one row of samples per unit."""
    if a.dim() == 2:
        return a.t()
    return a.transpose(0, 1).reshape(a.shape[1], -1)


def sort_rows(u: torch.Tensor) -> torch.Tensor:
    """Sort each row. On the CPU numpy's vectorised sort is ~20x faster than torch.sort for
    (100, 1000) float32 rows (0.1 ms vs 2 ms here); on a GPU torch.sort stays on the device."""
    if u.device.type == "cpu" and u.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(np.sort(u.detach().contiguous().numpy(), axis=1))
    return u.sort(dim=1).values


def quantiles_sorted(s: torch.Tensor, qs: Sequence[float]) -> torch.Tensor:
    """Quantiles (qs in [0, 1]) of each row of an already sorted (C, M) tensor, linear interpolation
    between order statistics (the same rule as numpy's default). Returns (C, len(qs))."""
    m = s.shape[1]
    pos = torch.tensor([q * (m - 1) for q in qs], device=s.device, dtype=s.dtype)
    lo = pos.floor().long()
    hi = torch.clamp(lo + 1, max=m - 1)
    frac = pos - lo.to(s.dtype)
    return s[:, lo] * (1 - frac) + s[:, hi] * frac


def w1_sorted(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row 1-Wasserstein distance between two equal-size samples given sorted: mean |a_(i) − b_(i)|."""
    if a.shape != b.shape:
        raise ValueError(f"w1_sorted needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    return (a - b).abs().mean(dim=1)


def w1_shape_sorted(
    a: torch.Tensor, mu_a: torch.Tensor, sd_a: torch.Tensor, b: torch.Tensor, mu_b: torch.Tensor, sd_b: torch.Tensor
) -> torch.Tensor:
    """Per-row W1 between the two samples each standardised by its own mean and std: the change of
    shape alone (a shift or a rescaling gives 0). Sorted order survives standardising."""
    za = (a - mu_a[:, None]) / sd_a.clamp_min(1e-12)[:, None]
    zb = (b - mu_b[:, None]) / sd_b.clamp_min(1e-12)[:, None]
    return w1_sorted(za, zb)


def safe_std(std: torch.Tensor) -> torch.Tensor:
    """Reference std used as a unit of measure; a constant (e.g. dead) unit would divide by zero, so
    std is floored at 1e-3 of the layer's mean std (and 1e-12)."""
    floor = 1e-3 * std.mean() + 1e-12
    return torch.maximum(std, floor)


def sigmoid_flat_threshold(fraction: float = 0.05) -> float:
    """|x| beyond which σ'(x) < fraction·σ'(0): solve s(1−s) = fraction/4 for s = σ(x)."""
    s = (1 - math.sqrt(1 - fraction)) / 2
    return math.log((1 - s) / s)


def tanh_flat_threshold(fraction: float = 0.05) -> float:
    """|x| beyond which tanh'(x) = 1 − tanh²(x) < fraction·tanh'(0)."""
    return math.atanh(math.sqrt(1 - fraction))


def saturation(units: torch.Tensor, activation: str) -> dict:
    """Fraction of inputs in the flat part of the nonlinearity (σ', tanh' < 5% of their peak; ReLU:
    x <= 0), plus for ReLU the fraction of units dead on the whole probe set. Empty if undefined;
    NaN when the inputs are not all finite (a diverged model is not "unsaturated")."""
    if activation in ("sigmoid", "tanh", "relu") and not bool(torch.isfinite(units).all()):
        nan = torch.tensor(float("nan"), device=units.device)
        return {"saturation": nan, "dead": nan} if activation == "relu" else {"saturation": nan}
    if activation == "sigmoid":
        return {"saturation": (units.abs() > sigmoid_flat_threshold()).float().mean()}
    if activation == "tanh":
        return {"saturation": (units.abs() > tanh_flat_threshold()).float().mean()}
    if activation == "relu":
        off = units <= 0
        return {"saturation": off.float().mean(), "dead": off.all(dim=1).float().mean()}
    return {}
