"""Lanczos for the landscape's λ_max / λ_min with a convergence check: the residual ‖Hv − λv‖ of each
extreme Ritz pair, more steps until both converge or a cap, and a record that says when they did not.
Checked against a dense eigensolve (torch.autograd.functional.hessian) on a BN MLP of a few hundred
parameters, trained a little so that |λ_min| ≪ λ_max (the hard case: 20 steps under-report |λ_min|)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

import ics  # noqa: F401  (fills the registries)
from ics.config import Config, LandscapeConfig, MLPConfig
from ics.instruments import Batch, RunContext
from ics.instruments.functional import live_params
from ics.instruments.landscape import LossLandscape, lanczos_extremes
from ics.models import build_model


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = build_model(MLPConfig(widths=[8, 8], norm="batch", activation="sigmoid"), (6,), 4)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 6, generator=gen), torch.randint(0, 4, (64,), generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(300):  # into a valley: a large top eigenvalue, small negative ones
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.double()  # the dense eigensolve and Lanczos in float64: the comparison is then to ~1e-10
    x = x.double()
    params = {n: p.detach() for n, p in model.named_parameters()}
    names, buffers = list(params), {n: b.clone() for n, b in model.named_buffers()}

    def loss(flat):
        parts = torch.split(flat, [params[n].numel() for n in names])
        ps = {n: t.reshape(params[n].shape) for n, t in zip(names, parts)}
        return F.cross_entropy(functional_call(model, {**ps, **buffers}, (x,)), y)

    flat = torch.cat([params[n].reshape(-1) for n in names])
    dense = np.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat, vectorize=True).numpy())
    return model, x, y, dense


def test_the_net_is_the_hard_case(trained):
    model, _, _, dense = trained
    assert 150 < sum(p.numel() for p in model.parameters()) < 600
    assert dense[0] < 0 and abs(dense[0]) < 0.2 * dense[-1]  # |λ_min| ≪ λ_max


def test_converged_extremes_match_the_dense_eigensolve(trained):
    model, x, y, dense = trained
    e = lanczos_extremes(
        model, live_params(model), x, y, F.cross_entropy, 20, torch.Generator().manual_seed(0), max_iters=400, tol=1e-6
    )
    assert e.converged and e.top_resid <= 1e-6 and e.bottom_resid <= 1e-6
    scale = max(abs(dense[0]), dense[-1])
    assert e.top == pytest.approx(dense[-1], abs=1e-5 * scale)
    assert e.bottom == pytest.approx(dense[0], abs=1e-5 * scale)
    assert e.steps > 20  # it needed more than the first 20 steps


def test_a_capped_run_says_it_did_not_converge(trained):
    model, x, y, dense = trained
    e = lanczos_extremes(
        model, live_params(model), x, y, F.cross_entropy, 5, torch.Generator().manual_seed(0), max_iters=5, tol=1e-6
    )
    assert e.steps == 5 and not e.converged
    assert max(e.top_resid, e.bottom_resid) > 1e-6
    # Ritz values lie inside the spectrum: a truncated λ_min is never below the true one (it under-reports |λ_min|)
    assert e.bottom >= dense[0] - 1e-9 and e.top <= dense[-1] + 1e-9
    # the residual bounds the error: some eigenvalue lies within ‖Hv − θv‖ of θ (Bauer–Fike for symmetric H)
    scale = max(abs(e.top), abs(e.bottom))
    assert np.min(np.abs(dense - e.bottom)) <= e.bottom_resid * scale + 1e-9


def test_the_instrument_records_residuals_and_the_flag(trained):
    model, x, y, _ = trained
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ctx = RunContext(Config(), model, opt, None, torch.device("cpu"), F.cross_entropy, 100, 0)
    for cap, flag in ((5, 0.0), (400, 1.0)):
        inst = LossLandscape(
            LandscapeConfig(
                enabled=True, multipliers=[1.0], hessian=True, power_iters=5, lanczos_max_iters=cap, lanczos_tol=1e-6
            ),
            ctx,
        )
        inst.observe_batch(Batch(0, x, y))
        out = {k: v[-1] for k, v in inst.series.items()}
        assert out["landscape/eig_converged"] == flag
        assert out["landscape/lanczos_steps"] == (5 if cap == 5 else out["landscape/lanczos_steps"]) > 0
        assert (out["landscape/min_eig_resid"] <= 1e-6) == bool(flag)
        assert inst.summary()["eig_converged"] == flag


def test_the_report_flags_unconverged_eigenvalues(monkeypatch):
    from types import SimpleNamespace

    from ics.analysis import tables

    flags = {0: [1.0, 1.0], 1: [1.0, 0.0]}
    job = lambda seed: SimpleNamespace(seed=seed)  # noqa: E731
    monkeypatch.setattr(
        tables,
        "series",
        lambda j, key: (
            SimpleNamespace(
                meta={"hessian": True},
                tags={
                    "landscape/top_eig": [10.0, 12.0],
                    "landscape/min_eig": [-0.5, -0.4],
                    "landscape/eig_converged": flags[j.seed],
                },
            )
            if key == "landscape"
            else None
        ),
    )
    ok = SimpleNamespace(label="converged", jobs=[job(0)])
    bad = SimpleNamespace(label="capped", jobs=[job(0), job(1)])
    (t,) = tables.instrument_tables([ok, bad])
    row = {r[0]: dict(zip(t.headers, r)) for r in t.cells}
    assert row["converged"]["top_eig"] == "11" and "unconverged" not in row["converged"]["min_eig"]
    assert row["capped"]["top_eig"].endswith("(unconverged)") and row["capped"]["min_eig"].endswith("(unconverged)")
