"""The weight-scale gauge: with a normaliser after a layer, the network's function does not depend on
the norm of its rows, but the landscape along a step of fixed η and the gradient ICS do. The
instruments measure both at the rows' norm c for each c in *.gauge_scales as well as at the net's own
weights, so a conclusion can be checked across the range."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import ics  # noqa: F401  (fills the registries)
from ics.config import Config, GradICSConfig, LandscapeConfig, MLPConfig
from ics.instruments import Batch, RunContext
from ics.instruments.grad_ics import GradientICS
from ics.instruments.landscape import LossLandscape, bn_fed_weights, normalised_rows
from ics.models import build_model

LR = 0.5


def net(norm):
    torch.manual_seed(0)
    return build_model(MLPConfig(widths=[8, 8], norm=norm, activation="sigmoid"), (6,), 3).double()


def batch():
    gen = torch.Generator().manual_seed(1)
    return Batch(0, torch.randn(32, 6, generator=gen, dtype=torch.float64), torch.randint(0, 3, (32,), generator=gen))


def ctx(model):
    return RunContext(
        Config(), model, torch.optim.SGD(model.parameters(), lr=LR), None, torch.device("cpu"), F.cross_entropy, 100, 0
    )


def test_grad_ics_at_each_row_norm_is_def_2_1_at_that_point():
    model, b = net("batch"), batch()
    inst = GradientICS(GradICSConfig(enabled=True, gauge_scales=[0.5, 2.0]), ctx(model))
    inst.observe_batch(b)
    out = {k: v[-1] for k, v in inst.series.items()}
    fed = bn_fed_weights(model)
    for c in (0.5, 2.0):  # independently: rescale a copy, take the gradients by hand, move h1 by −η G
        twin = net("batch")
        params = normalised_rows({n: p.detach() for n, p in twin.named_parameters()}, fed, c)
        with torch.no_grad():
            for n, p in twin.named_parameters():
                p.copy_(params[n])
        F.cross_entropy(twin(b.x), b.y).backward()
        g = {n: p.grad.clone() for n, p in twin.named_parameters()}
        twin.zero_grad()
        with torch.no_grad():
            for n, p in twin.named_parameters():
                if n.startswith("blocks.h1."):
                    p.sub_(LR * g[n])
        F.cross_entropy(twin(b.x), b.y).backward()
        g2 = twin.blocks.h2.affine.weight.grad
        g1 = g["blocks.h2.affine.weight"]
        cos = float((g1 * g2).sum() / (g1.norm() * g2.norm()))
        assert out[f"grad_ics/gauge/{c:g}/h2/cos"] == pytest.approx(cos, rel=1e-6)
    # the same function, different answers: the gauge matters, which is why it is reported
    assert out["grad_ics/gauge/2/h2/cos"] > out["grad_ics/gauge/0.5/h2/cos"]
    summary = inst.summary()
    assert summary["h2"]["cos_mean_at_norm_2"] == pytest.approx(out["grad_ics/gauge/2/h2/cos"])
    from ics.record.summary import _instruments_problem

    assert _instruments_problem({"grad_ics": summary}) is None  # what summary.json accepts


def test_landscape_at_unit_norm_is_the_si_measure_and_other_norms_differ():
    model, b = net("batch"), batch()
    inst = LossLandscape(LandscapeConfig(enabled=True, scale_invariant=True, gauge_scales=[0.5, 1.0, 4.0]), ctx(model))
    inst.observe_batch(b)
    out = {k: v[-1] for k, v in inst.series.items()}
    assert out["landscape/gauge/1/beta"] == out["landscape/si/beta"]
    assert out["landscape/gauge/0.5/loss_range"] > out["landscape/gauge/4/loss_range"]  # small rows: big steps
    assert inst.meta()["gauge_scales"] == [0.5, 1.0, 4.0]
    summary = inst.summary()
    assert {k for k in summary if k.endswith("_at_norm_4")} == {
        "loss_range_mean_at_norm_4",
        "grad_change_rel_mean_at_norm_4",
        "beta_mean_at_norm_4",
    }
    from ics.record.summary import _instruments_problem

    assert _instruments_problem({"landscape": summary}) is None


def test_a_net_without_normaliser_has_no_gauge():
    model, b = net("none"), batch()
    g = GradientICS(GradICSConfig(enabled=True), ctx(model))
    g.observe_batch(b)
    assert not [k for k in g.series if "/gauge/" in k] and "at_norm" not in str(g.summary())


def test_the_report_shows_the_gauge_range(monkeypatch):
    from types import SimpleNamespace

    from ics.analysis import tables

    def series(j, key):
        if key != "grad_ics":
            return None
        tags = {"grad_ics/h2/cos": [0.6], "grad_ics/out/cos": [0.7]}
        if j.bn:
            tags.update(
                {
                    "grad_ics/h2/cos": [0.9],
                    "grad_ics/out/cos": [0.92],
                    "grad_ics/gauge/0.5/out/cos": [-0.1],
                    "grad_ics/gauge/2/out/cos": [0.99],
                    "grad_ics/gauge/0.5/h2/cos": [0.2],
                    "grad_ics/gauge/2/h2/cos": [0.97],
                }
            )
        # a plain net records no gauge scales, and its group comes first: the report still shows the gauge
        return SimpleNamespace(
            tags=tags, meta={"layers": ["h1", "h2", "out"], "gauge_scales": [0.5, 2.0] if j.bn else []}
        )

    monkeypatch.setattr(tables, "series", series)
    bn = SimpleNamespace(label="model.norm=batch", jobs=[SimpleNamespace(bn=True)], config={"model.norm": "batch"})
    none = SimpleNamespace(label="model.norm=none", jobs=[SimpleNamespace(bn=False)], config={"model.norm": "none"})
    t = next(t for t in tables.instrument_tables([none, bn]) if t.title.startswith("The weight-scale gauge:"))
    assert t.headers == ["group", "measure", "own weights", "‖w‖ = 0.5", "‖w‖ = 2"]
    rows = {(r[0], r[1]): r[2:] for r in t.cells}
    assert rows["model.norm=batch", "out"] == ["0.92", "-0.1", "0.99"]  # BN below none at 0.5, above at 2
    assert rows["model.norm=none", "out"] == ["0.7", "0.7", "0.7"]
    tested = next(
        t for t in tables.instrument_tables([none, bn]) if t.title.startswith("The weight-scale gauge, tested")
    )
    assert [r[3] for r in tested.cells] == ["own weights", "‖w‖ = 0.5", "‖w‖ = 2"] * 2  # h2, out


def test_the_report_tests_each_row_norm_and_holm_adjusts_over_the_table(monkeypatch):
    """BN's landscape smoother than the plain net's at its own weights and at norm 4, rougher at 0.5:
    the table gives Welch's test at each, the plain net's one value standing at every c, Holm over all."""
    from types import SimpleNamespace

    from scipy import stats

    from ics.analysis import tables
    from ics.analysis.stats import holm

    own_bn, at_half, at_four, plain = [0.10, 0.12, 0.11], [1.9, 2.1, 2.0], [0.050, 0.052, 0.048], [0.30, 0.33, 0.31]

    def series(j, key):
        if key != "landscape":
            return None
        if not j.bn:
            return SimpleNamespace(tags={"landscape/loss_range": [plain[j.seed]]}, meta={"gauge_scales": []})
        tags = {
            "landscape/loss_range": [own_bn[j.seed], own_bn[j.seed]],  # the run's mean is the value
            "landscape/gauge/0.5/loss_range": [at_half[j.seed]],
            "landscape/gauge/4/loss_range": [at_four[j.seed]],
        }
        return SimpleNamespace(tags=tags, meta={"gauge_scales": [0.5, 4.0]})

    monkeypatch.setattr(tables, "series", series)
    jobs = lambda bn: [SimpleNamespace(bn=bn, seed=s) for s in range(3)]  # noqa: E731
    bn = SimpleNamespace(label="model.norm=batch", jobs=jobs(True), config={"model.norm": "batch"})
    none = SimpleNamespace(label="model.norm=none", jobs=jobs(False), config={"model.norm": "none"})
    t = tables.gauge_contrast_table([none, bn], "landscape", [0.5, 4.0], ["loss_range"])
    assert t is not None
    rows = {r[3]: r for r in t.cells}
    assert list(rows) == ["own weights", "‖w‖ = 0.5", "‖w‖ = 4"]
    ps = [stats.ttest_ind(x, plain, equal_var=False).pvalue for x in (own_bn, at_half, at_four)]
    for (where, p), q in zip(zip(rows, ps), holm(ps)):
        r = rows[where]
        assert (r[0], r[1], r[5]) == ("model.norm=batch", "model.norm=none", "0.313 ± 0.0379")  # plain: one value
        assert r[8] == tables.fmt_p(p) and r[9] == tables.fmt_p(q)
    assert rows["own weights"][6].startswith("-0.203") and rows["‖w‖ = 0.5"][6].startswith("+1.69")
    assert rows["‖w‖ = 4"][7] == "0.16×"
    assert "adjusted over the 3 tests of this table" in (t.caption or "")
