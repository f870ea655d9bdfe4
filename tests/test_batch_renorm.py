"""Batch Renorm follows Ioffe 2017 (arXiv:1702.03275) Alg. 1: running σ ← σ + α(σ_B − σ), r = σ_B/σ and
d = (μ_B − μ)/σ clipped and without gradient. Checked against an independent NumPy transcription of
the algorithm, and at batch 2, where the old √(EMA of variances) put the mean r near 0.56."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ics.models.norms.batch_renorm import BatchRenorm

EPS, ALPHA = 1e-5, 0.1


def reference(xs, r_max, d_max, gamma, beta):
    """Alg. 1 step by step in float64 NumPy: outputs, r per step, final (μ, σ)."""
    mu, sigma = np.zeros(xs[0].shape[1]), np.full(xs[0].shape[1], np.sqrt(1 + EPS))  # as running_var = 1
    outs, rs = [], []
    for x in xs:
        mu_b = x.mean(0)
        sigma_b = np.sqrt(((x - mu_b) ** 2).mean(0) + EPS)
        r = np.clip(sigma_b / sigma, 1 / r_max, r_max)
        d = np.clip((mu_b - mu) / sigma, -d_max, d_max)
        outs.append(gamma * ((x - mu_b) / sigma_b * r + d) + beta)
        rs.append(r)
        mu = mu + ALPHA * (mu_b - mu)
        sigma = sigma + ALPHA * (sigma_b - sigma)
    return outs, rs, mu, sigma


def module(units, r_max=3.0, d_max=5.0):
    m = BatchRenorm(units, EPS, ALPHA, r_max, d_max, start=0, ramp=0).double()  # fully open from step 0
    with torch.no_grad():
        m.weight.copy_(torch.linspace(0.5, 1.5, units, dtype=torch.float64))
        m.bias.copy_(torch.linspace(-0.2, 0.2, units, dtype=torch.float64))
    return m


def test_matches_alg1_step_by_step():
    rng = np.random.default_rng(0)
    xs = [rng.normal(2.0, 3.0, (8, 4)) for _ in range(30)]
    m = module(4)
    outs, _, mu, sigma = reference(xs, 3.0, 5.0, m.weight.detach().numpy(), m.bias.detach().numpy())
    m.train()
    for x, want in zip(xs, outs):
        assert m(torch.from_numpy(x)).detach().numpy() == pytest.approx(want, rel=1e-10, abs=1e-12)
    assert m.running_mean.numpy() == pytest.approx(mu, rel=1e-10)
    assert torch.sqrt(m.running_var + EPS).numpy() == pytest.approx(sigma, rel=1e-10)
    m.eval()  # inference: y = γ(x − μ)/σ + β with Alg. 1's σ
    x = rng.normal(size=(5, 4))
    want = m.weight.detach().numpy() * (x - mu) / sigma + m.bias.detach().numpy()
    assert m(torch.from_numpy(x)).detach().numpy() == pytest.approx(want, rel=1e-10)


def test_r_and_d_carry_no_gradient():
    """Alg. 1: r, d are stop_gradient, so the gradient is that of γ(x − μ_B)/σ_B·r with r fixed."""
    m = module(3)
    m.train()
    m(torch.randn(6, 3, dtype=torch.float64))  # move the running statistics off their start
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        sd = torch.sqrt(m.running_var + EPS)
        mu = m.running_mean.clone()
    y = m(x)
    (y * torch.arange(18, dtype=torch.float64).view(6, 3)).sum().backward()
    xd = x.detach().clone().requires_grad_(True)
    mb, sb = xd.mean(0), torch.sqrt(xd.var(0, unbiased=False) + EPS)
    r = (sb / sd).clamp(1 / 3, 3).detach()
    d = ((mb - mu) / sd).clamp(-5, 5).detach()
    ref = m.weight.detach() * ((xd - mb) / sb * r + d) + m.bias.detach()
    (ref * torch.arange(18, dtype=torch.float64).view(6, 3)).sum().backward()
    assert x.grad.numpy() == pytest.approx(xd.grad.numpy(), rel=1e-10)


def test_mean_r_is_near_one_at_batch_2():
    rng = np.random.default_rng(1)
    xs = [rng.normal(0.0, 1.0, (2, 16)) for _ in range(2000)]
    m = module(16, r_max=1e6, d_max=1e6)  # unclipped: r is σ_B/σ itself
    _, rs, _, _ = reference(xs, 1e6, 1e6, m.weight.detach().numpy(), m.bias.detach().numpy())
    m.train()
    seen = []
    for x in xs:
        sd = torch.sqrt(m.running_var + EPS)
        t = torch.from_numpy(x)
        seen.append((torch.sqrt(t.var(0, unbiased=False) + EPS) / sd).numpy())
        m(t)
    mean_r = float(np.mean(seen[200:]))  # past the first 200 steps, where σ still remembers its start 1
    assert float(np.mean(rs[200:])) == pytest.approx(mean_r, rel=1e-9)  # the module's r is Alg. 1's
    assert 0.9 < mean_r < 1.1
    # the replaced rule, σ = √(EMA of unbiased variances), centres r near E|x₁ − x₂|/2 / 1 = 1/√π ≈ 0.56
    var = 1.0
    old = []
    for x in xs:
        old.append(np.sqrt(((x - x.mean(0)) ** 2).mean(0) + EPS) / np.sqrt(var + EPS))
        var = var + ALPHA * (x.var(0, ddof=1) - var)
    assert 0.5 < float(np.mean(old[200:])) < 0.65


def test_lp_evaluates_with_the_average_of_its_scales():
    """ℓp in evaluation divides by the moving average of the batches' s_j (what it divides by in
    training), not by √(average of s_j²)."""
    from ics.models.norms.lp import LpNorm

    rng = np.random.default_rng(2)
    m = LpNorm(3, EPS, ALPHA, "1").double()
    m.train()
    s_bar, mu = np.ones(3), np.zeros(3)  # running_var = 1 at the start: s̄ = 1
    for _ in range(50):
        x = rng.normal(1.0, 2.0, (4, 3))
        m(torch.from_numpy(x))
        mu = mu + ALPHA * (x.mean(0) - mu)
        s_bar = s_bar + ALPHA * (np.abs(x).mean(0) - s_bar)
    m.eval()
    x = rng.normal(size=(5, 3))
    assert m(torch.from_numpy(x)).detach().numpy() == pytest.approx((x - mu) / (s_bar + EPS), rel=1e-10)
