"""The report's figures keep to what the data can be: an accuracy band inside [0, 1], a log axis only
over a decade or more, the layers of one unit on one y-scale. Groups and jobs stand in as plain
objects with the fields the figures read (in-process, no training)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from matplotlib.figure import Figure

from ics.analysis.figures import decades, draw_groups, fig_drift
from ics.record import Status, names

STEPS = np.array([0, 10, 20, 40])
POINTS = ["h1.pre_act", "h2.pre_act"]


def group(norm: str, curves) -> SimpleNamespace:
    return SimpleNamespace(
        norm=norm,
        label=f"model.norm={norm}",
        config={},
        jobs=[
            SimpleNamespace(
                status=Status.COMPLETED, probes=SimpleNamespace(steps=STEPS, meta={"points": POINTS}, tags=tags)
            )
            for tags in curves
        ],
    )


def test_an_accuracy_band_from_three_seeds_stays_inside_0_1():
    seeds = [np.array([0.02, 0.5, 0.9, 0.99]), np.array([0.6, 0.7, 0.95, 1.0]), np.array([0.1, 0.9, 0.97, 1.0])]
    g = SimpleNamespace(norm="batch", label="model.norm=batch", jobs=[SimpleNamespace(acc=a) for a in seeds])
    for clip, inside in ((None, False), ((0.0, 1.0), True)):
        ax = Figure().subplots()
        draw_groups(ax, [g], lambda j: (STEPS, j.acc), ["tab:blue"], clip=clip)
        (band,) = ax.collections
        y = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
        assert (y.min() >= 0 and y.max() <= 1) == inside  # unclipped, the t-interval of 3 seeds leaves [0, 1]


def test_drift_axes_are_linear_below_a_decade_and_each_unit_shares_y_across_layers():
    def curves(scale: float):
        return [
            {
                names.drift_tag(p, m): scale
                * (1 + k / 10)
                * np.array([0.5, 0.6, 0.7, 0.8])
                * (1.2 if p == "h2.pre_act" else 1)
                for p in POINTS
                for m in ("w1_raw", "w1_shape", "w1_ref")
            }
            for k in range(3)
        ]

    narrow = [group("batch", curves(1.0)), group("none", curves(1.5))]  # 0.5 .. 1.7: under one decade
    wide = [group("batch", curves(1.0)), group("none", curves(100.0))]  # two decades and more
    assert decades([lambda j: (STEPS, j.probes.tags[names.drift_tag("h1.pre_act", "w1_raw")])], narrow) < 1
    for groups, scale in ((narrow, "linear"), (wide, "log")):
        fig, _ = fig_drift(groups)
        axes = np.array([ax for ax in fig.axes if ax.lines]).reshape(2, 3)
        assert {ax.get_yscale() for ax in axes.ravel()} == {scale}
        for c in range(3):  # the first and the last layer of one unit on one y-scale
            assert axes[0, c].get_shared_y_axes().joined(axes[0, c], axes[1, c])
            assert axes[0, c].get_ylim() == axes[1, c].get_ylim()
        assert not axes[0, 0].get_shared_y_axes().joined(axes[0, 0], axes[0, 1])  # other units, other scales


def test_a_healthy_wide_histogram_stays_inside_its_panel():
    """BN's unit input at step 0 is ~N(0, 1) while the no-BN ones are 20 × narrower: the column's
    x-range takes in both (only a diverged run's row may be clipped)."""
    from ics.analysis.figures import fig_density

    rng = np.random.default_rng(0)
    steps = np.array([0, 10, 50, 100])

    def one(norm: str, sd: float, status=Status.COMPLETED) -> SimpleNamespace:
        samples = np.stack([rng.normal(0, sd, 500) for _ in steps])
        meta = {"points": ["h2.pre_act"], "tracked_units": {"h2.pre_act": [3]}}
        job = SimpleNamespace(
            status=status,
            seed=0,
            probes=SimpleNamespace(meta=meta, tags={"sample_steps": steps, "samples/h2.pre_act/unit3": samples}),
        )
        return SimpleNamespace(norm=norm, label=f"model.norm={norm}", config={}, jobs=[job])

    for status, inside in ((Status.COMPLETED, True), (Status.DIVERGED, False)):
        fig, _ = fig_density([one("none", 0.05), one("none", 0.05), one("none", 0.05), one("batch", 1.0, status)])
        bn = [ax for ax in fig.axes if ax.get_subplotspec().rowspan.start == 3 and ax.patches]
        lo, hi = bn[0].get_xlim()  # step 0
        assert (lo < -2 and hi > 2) == inside, (status, lo, hi)  # ±2 sd of N(0, 1) within the axis
