"""Analytic checks of the distribution statistics and drift metrics in ics.instruments.stats.

Large samples (200k draws, fixed seed) against closed-form answers; small hand-built inputs where the
answer is exact.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ics.instruments.stats import (
    as_units,
    quantiles_sorted,
    safe_std,
    saturation,
    sigmoid_flat_threshold,
    tanh_flat_threshold,
    w1_sorted,
)

N = 200_000


def normal(shape, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def srt(x: torch.Tensor) -> torch.Tensor:
    return x.sort(dim=-1).values


# --- 1-Wasserstein ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mu", [0.3, 1.0, -2.5])
def test_w1_of_a_mean_shift_is_the_shift(mu):
    a = normal((1, N), seed=1)
    b = normal((1, N), seed=2) + mu
    w1 = w1_sorted(srt(a), srt(b))
    assert w1.shape == (1,)
    assert float(w1) == pytest.approx(abs(mu), rel=0.03)


@pytest.mark.parametrize("sigma", [0.5, 2.0, 3.0])
def test_w1_of_a_scale_change(sigma):
    # quantile functions Φ⁻¹ and σΦ⁻¹: ∫|σ−1||Φ⁻¹(q)| dq = |σ−1|·E|Z| = |σ−1|·√(2/π)
    a = normal((1, N), seed=3)
    b = normal((1, N), seed=4) * sigma
    expected = abs(sigma - 1) * math.sqrt(2 / math.pi)
    assert float(w1_sorted(srt(a), srt(b))) == pytest.approx(expected, rel=0.03)


def test_w1_is_symmetric_and_per_row():
    a = srt(normal((3, N), seed=5))
    b = srt(normal((3, N), seed=6) + torch.tensor([[0.0], [1.0], [-2.0]], dtype=torch.float64))
    w_ab, w_ba = w1_sorted(a, b), w1_sorted(b, a)
    assert torch.equal(w_ab, w_ba)
    assert w_ab.shape == (3,)
    assert w_ab[1].item() == pytest.approx(1.0, rel=0.03)
    assert w_ab[2].item() == pytest.approx(2.0, rel=0.03)
    assert w_ab[0].item() < 0.02  # two samples of one distribution: only sampling noise


def test_w1_of_identical_inputs_is_exactly_zero():
    a = srt(normal((4, 1000), seed=7, dtype=torch.float32))
    assert torch.equal(w1_sorted(a, a.clone()), torch.zeros(4))


def test_w1_exact_on_small_sorted_samples():
    a = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    b = torch.tensor([[1.0, 1.0, 1.0, 7.0]])
    assert w1_sorted(a, b).tolist() == [pytest.approx((1 + 0 + 1 + 4) / 4)]


def test_w1_rejects_unequal_shapes():
    with pytest.raises(ValueError, match="equal shapes"):
        w1_sorted(torch.zeros(2, 5), torch.zeros(2, 6))


# --- quantiles -----------------------------------------------------------------------------------

QS = [0.0, 0.01, 0.15, 0.25, 0.5, 0.85, 0.99, 1.0]


@pytest.mark.parametrize("m", [2, 7, 1000, 4096])
def test_quantiles_match_numpy_percentile_float64(m):
    x = normal((5, m), seed=m)
    got = quantiles_sorted(srt(x), QS)
    expected = np.percentile(x.numpy(), [100 * q for q in QS], axis=1).T  # numpy's default: linear
    assert got.shape == (5, len(QS))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_quantiles_match_numpy_percentile_float32():
    # the probes run in float32: the interpolation position is then float32 too, good to ~1e-6
    x = normal((6, 999), seed=11, dtype=torch.float32)
    got = quantiles_sorted(srt(x), QS)
    expected = np.percentile(x.double().numpy(), [100 * q for q in QS], axis=1).T
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=0, atol=2e-5)


def test_quantiles_extremes_are_min_and_max_exactly():
    x = normal((3, 101), seed=12, dtype=torch.float32)
    q = quantiles_sorted(srt(x), [0.0, 1.0])
    assert torch.equal(q[:, 0], x.min(dim=1).values)
    assert torch.equal(q[:, 1], x.max(dim=1).values)


def test_quantiles_single_sample_row():
    s = torch.tensor([[3.0], [-1.0]])
    assert quantiles_sorted(s, [0.0, 0.5, 1.0]).tolist() == [[3.0, 3.0, 3.0], [-1.0, -1.0, -1.0]]


# --- (units, samples) layout ---------------------------------------------------------------------


def test_as_units_linear():
    a = torch.arange(12.0).reshape(4, 3)  # (N=4, C=3)
    u = as_units(a)
    assert u.shape == (3, 4)
    for c in range(3):
        assert torch.equal(u[c], a[:, c])


def test_as_units_conv_channel_holds_its_batch_x_h_x_w_values():
    a = normal((5, 3, 4, 6), seed=13, dtype=torch.float32)  # (N, C, H, W)
    u = as_units(a)
    assert u.shape == (3, 5 * 4 * 6)
    for c in range(3):
        assert torch.equal(u[c], a[:, c].reshape(-1))
        assert torch.equal(u[c].sort().values, a[:, c].flatten().sort().values)


def test_as_units_conv_non_contiguous_input():
    a = normal((2, 4, 3, 3), seed=14).permute(0, 1, 3, 2)  # non-contiguous view
    u = as_units(a)
    assert u.shape == (4, 18)
    for c in range(4):
        assert torch.equal(u[c], a[:, c].reshape(-1))


# --- saturation ----------------------------------------------------------------------------------


def test_sigmoid_threshold_is_where_the_slope_is_5_percent_of_the_peak():
    t = sigmoid_flat_threshold()

    def d(x: float) -> torch.Tensor:  # σ'(x) = σ(x)(1 − σ(x))
        s = torch.sigmoid(torch.tensor(x, dtype=torch.float64))
        return s * (1 - s)

    assert float(d(t)) == pytest.approx(0.05 * float(d(0.0)), abs=1e-6)
    assert float(d(-t)) == pytest.approx(0.05 * float(d(0.0)), abs=1e-6)
    assert t == pytest.approx(4.3567, abs=1e-3)  # σ' = 0.0125 at |x| ≈ 4.36
    # σ(x) = (1 + tanh(x/2))/2, so σ'(x) = tanh'(x/2)/4: the sigmoid threshold is twice tanh's
    assert t == pytest.approx(2 * tanh_flat_threshold(), rel=1e-12)
    assert sigmoid_flat_threshold(0.5) < t  # a looser criterion is met closer to 0


def test_tanh_threshold_is_where_the_slope_is_5_percent_of_the_peak():
    t = tanh_flat_threshold()
    d = lambda x: 1 - torch.tanh(torch.tensor(x, dtype=torch.float64)) ** 2  # noqa: E731
    assert float(d(t)) == pytest.approx(0.05 * float(d(0.0)), abs=1e-6)
    assert t == pytest.approx(2.1783, abs=1e-3)


@pytest.mark.parametrize("act, thr", [("sigmoid", sigmoid_flat_threshold), ("tanh", tanh_flat_threshold)])
def test_saturation_fraction_beyond_threshold(act, thr):
    t = thr()
    # per unit: 2 of 4 beyond ±t, the others inside (one just inside)
    units = torch.tensor([[t + 0.1, -(t + 0.1), t - 1e-3, 0.0], [-(t + 5), t + 5, 0.5, -0.5]])
    out = saturation(units, act)
    assert set(out) == {"saturation"}
    assert float(out["saturation"]) == pytest.approx(0.5)
    assert float(saturation(torch.zeros(3, 10), act)["saturation"]) == 0.0
    assert float(saturation(torch.full((3, 10), -100.0), act)["saturation"]) == 1.0


def test_relu_saturation_and_dead_units():
    units = torch.tensor(
        [
            [-1.0, 0.0, -2.0, -0.5],  # dead (0 counts as off)
            [1.0, -1.0, 2.0, 0.0],  # half off
            [0.1, 0.2, 0.3, 0.4],
        ]
    )  # always on
    out = saturation(units, "relu")
    assert set(out) == {"saturation", "dead"}
    assert float(out["saturation"]) == pytest.approx((4 + 2 + 0) / 12)
    assert float(out["dead"]) == pytest.approx(1 / 3)


@pytest.mark.parametrize("act", ["linear", "gelu", "elu", "leaky_relu"])
def test_saturation_undefined_for_other_activations(act):
    assert saturation(torch.randn(2, 5), act) == {}


# --- safe_std ------------------------------------------------------------------------------------


def test_safe_std_floors_zero_std():
    std = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    out = safe_std(std)
    floor = 1e-3 * 1.5 + 1e-12
    assert out[0].item() == pytest.approx(floor, rel=1e-12)
    assert torch.equal(out[1:], std[1:])  # healthy stds untouched
    assert (out > 0).all()


def test_safe_std_all_constant_layer_stays_positive():
    out = safe_std(torch.zeros(5))
    assert (out > 0).all() and torch.isfinite(1.0 / out).all()


def test_safe_std_leaves_healthy_std_untouched():
    std = torch.tensor([0.5, 0.7, 1.3])
    assert torch.equal(safe_std(std), std)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_saturation_of_non_finite_inputs_is_nan_not_zero(activation):
    u = torch.tensor([[0.1, float("nan"), 9.0]])
    assert all(math.isnan(float(v)) for v in saturation(u, activation).values())
