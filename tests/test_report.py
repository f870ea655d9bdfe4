"""`make_report` on a tiny real sweep: the trainer runs (as a library) on synthetic data, then the
report must write every artefact and show the diverged run as diverged."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from ics.analysis import make_report
from ics.analysis.figures import FIGURES
from ics.config import Config, ConfigError, MLPConfig, MNISTConfig, ProbeConfig, SGDConfig, TrainerConfig, to_dict
from ics.data import DataBundle
from ics.train import build_trainer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HUGE_LR = 1e4  # far past what a sigmoid MLP without BN survives: the train loss blows past 1e3


def tiny_data(n_train=300, n_test=120, classes=4, seed=0) -> DataBundle:
    """Learnable (1, 6, 6) images: each class lights its own row, plus Gaussian noise."""
    gen = torch.Generator().manual_seed(seed)

    def split(n):
        y = torch.arange(n) % classes
        x = 0.5 * torch.randn(n, 1, 6, 6, generator=gen)
        x[torch.arange(n), 0, y] += 2.0
        return x, y

    (x, y), (xt, yt) = split(n_train), split(n_test)
    return DataBundle("synthetic", x, y, xt, yt, [str(c) for c in range(classes)], (0.0,), (1.0,), "memory")


def cfg(norm: str, lr: float) -> Config:
    return Config(
        model=MLPConfig(widths=[16, 16], norm=norm),
        data=MNISTConfig(),
        optim=SGDConfig(lr=lr),
        trainer=TrainerConfig(
            steps=60,
            batch_size=20,
            eval_every=20,
            log_every=10,
            device="cpu",
            threads=1,
            progress=False,
            checkpoint_every=0,
        ),
        probe=ProbeConfig(every=10, size=60, units=2, histogram_every=1000),
    )


GOOD_LR = 2.0  # both nets reach > 0.9 test accuracy in 60 steps
PROBE_FIGURES = {"percentiles", "density", "drift"}  # drawn from probes.npz
SUMMARY_FIGURES = {"drift_layers"}  # drawn from the final drift in summary.json
JOBS = [("none", GOOD_LR), ("none", HUGE_LR), ("batch", GOOD_LR), ("batch", HUGE_LR)]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """<tmp>/<num>_<overrides>/ like a Hydra multirun, plus one failed job (its summary.json holds only
    the error and its overrides, as ics 0.1 wrote it; its config is in its own .hydra/ snapshot)."""
    root = tmp_path_factory.mktemp("sweep")
    data = tiny_data()
    for num, (norm, lr) in enumerate(JOBS):
        overrides = [f"model.norm={norm}", f"optim.lr={lr:g}", "trainer.steps=60"]
        build_trainer(cfg(norm, lr), root / f"{num}_{','.join(overrides)}", data=data, overrides=overrides).fit()
    failed = root / "4_model.norm=batch,optim.lr=1"
    (failed / ".hydra").mkdir(parents=True)
    overrides = ["model.norm=batch", "optim.lr=1", "trainer.steps=60"]
    (failed / ".hydra" / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg("batch", 1.0))))
    (failed / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (failed / "summary.json").write_text(
        json.dumps({"status": "failed", "error": "RuntimeError: boom", "traceback": "...", "overrides": overrides})
    )
    return root


@pytest.fixture(scope="module")
def report(sweep):
    return make_report(sweep)


def assert_png(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4) and img.shape[0] > 200 and img.shape[1] > 200


def test_artifacts_written(sweep, report):
    out = sweep / "report"
    assert report["out"] == out
    assert report["report_md"] == out / "report.md" and report["report_md"].is_file()
    assert set(report["figures"]) == {"accuracy", "lr_tolerance"} | PROBE_FIGURES | SUMMARY_FIGURES
    # every other figure belongs to an instrument these runs did not switch on, and says so
    assert set(report["skipped"]) == set(FIGURES) - set(report["figures"])
    assert all(
        "=on" in reason for name, reason in report["skipped"].items() if name not in ("init_tolerance", "normalizers")
    ), report["skipped"]
    assert report["skipped"]["init_tolerance"] == "no group of runs was trained at two or more init scales"
    assert "model.norm" in report["skipped"]["normalizers"]  # the per-normaliser figure: only for a norm study
    for png in report["figures"].values():
        assert_png(png)
    assert list(out.glob("groups/*/events.out.tfevents.*")), "no TensorBoard group run in the report dir"


@pytest.mark.slow  # two more whole reports of the sweep (the fast tier makes one, in the `report` fixture)
def test_rerun_replaces_the_tensorboard_report(sweep, tmp_path):
    out = tmp_path / "rep"
    make_report(sweep, out)
    make_report(sweep, out)  # a second report must not add a second copy of every image
    assert len(list(out.glob("groups/*/events.out.tfevents.*"))) == len(list(out.glob("groups/*")))


def test_runs_csv_one_row_per_job(report):
    with open(report["runs_csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["job"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert rows[4]["status"] == "failed" and rows[4]["error"] == "RuntimeError: boom"
    assert rows[0]["config.model.norm"] == "none" and rows[2]["config.model.norm"] == "batch"
    assert float(rows[0]["final_test_acc"]) > 0.5  # the data is learnable in 60 steps
    assert float(rows[0]["max_drift_w1_ref"]) > 0


def test_diverged_run_shown_as_diverged(report):
    row = report["runs"][1]
    assert row["status"] == "diverged"
    assert row["status_text"] == f"diverged @ {row['diverged_at_step']}"
    t = report["runs_table"]
    assert t.cells[1][t.headers.index("status")].startswith("diverged @ ")
    md = report["report_md"].read_text()
    assert "diverged @ " in md
    (none_group,) = [g for g in report["tolerance"] if g.label == "model.norm=none"]
    assert none_group.points[-1].lr == HUGE_LR and none_group.points[-1].n_diverged == 1
    assert none_group.max_nondiverging_lr == GOOD_LR  # the diverged LR can never be "non-diverging"


def test_tolerance_groups_and_table(report):
    groups = {g.label: g for g in report["tolerance"]}
    assert set(groups) == {"model.norm=none", "model.norm=batch"}
    # the failed job joins the BN group through its own config (.hydra/) and counts as chance there
    assert groups["model.norm=batch"].lrs == [1.0, GOOD_LR, HUGE_LR]
    assert groups["model.norm=batch"].points[0].n_failed == 1
    t = report["tolerance_table"]
    assert t.headers[0] == "group" and "max non-diverging LR" in t.headers and len(t.cells) == 2
    assert len(report["lr_table"].cells) == 5  # (group, LR) pairs: none x 2, batch x 3
    md = report["report_md"].read_text()
    for name in ("accuracy.png", "percentiles.png", "density.png", "lr_tolerance.png", "drift.png", "## Definitions"):
        assert name in md


@pytest.mark.slow  # another whole report
def test_single_run_skips_lr_figure(sweep, tmp_path):
    run = next(sweep.glob("0_*"))
    res = make_report(run, tmp_path / "rep")
    assert res["tolerance_table"] is None
    assert "lr_tolerance" in res["skipped"] and "lr_tolerance" not in res["figures"]
    md = res["report_md"].read_text()
    assert "lr_tolerance" not in md and "skipped" not in md  # a figure with nothing to show is left out
    for png in res["figures"].values():
        assert_png(png)


def test_run_without_probes(tmp_path):
    c = cfg("batch", GOOD_LR)
    c.probe.enabled = False
    build_trainer(c, tmp_path / "run", data=tiny_data()).fit()
    res = make_report(tmp_path / "run")
    assert set(res["figures"]) == {"accuracy"}
    assert PROBE_FIGURES | SUMMARY_FIGURES | {"lr_tolerance"} <= set(res["skipped"])
    assert set(res["skipped"]) == set(FIGURES) - {"accuracy"}
    assert_png(res["figures"]["accuracy"])


def test_bad_input(tmp_path):
    with pytest.raises(ConfigError, match=r"no job directory under it \(none holds summary.json"):
        make_report(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        make_report(tmp_path / "missing")


def test_drift_table_reads_every_unit_from_the_runs(sweep, report):
    """Raw, shape, σ_ref and the medians come from summary.json, the p50 movement from probes.npz:
    a one-seed group shows exactly its run's numbers."""
    import numpy as np

    table = report["by_title"]["Final drift from step 0: raw units first, then shape, then σ_ref units"]
    assert table.headers[-2:] == ["median unit: raw / shape", "p50 move"]
    job = sweep / "0_model.norm=none,optim.lr=2,trainer.steps=60"
    drift = json.loads((job / "summary.json").read_text())["instruments"]["probe"]
    series = np.load(job / "probes.npz")
    rows = [r for r in table.cells if r[0] == "model.norm=none optim.lr=2"]
    assert {r[1] for r in rows} == set(drift)
    for row in rows:
        d = drift[row[1]]
        assert row[2:5] == [f"{d['w1_raw']:.3f}", f"{d['w1_shape']:.3f}", f"{d['w1_ref']:.3f}"]
        assert row[5] == f"{d['w1_raw_median']:.3f} / {d['w1_shape_median']:.3f}"
        assert row[6] == f"{float(series[f'drift/{row[1]}/pmove_p50'][-1]):.3f}"


def test_tensorboard_has_one_run_per_group_with_the_ics_result(sweep, report):
    """groups/<label>/ event files: the group's accuracy curve and Fig. 1 b/c percentiles under the
    jobs' own tags, its image, and an HParams session whose metrics carry drift, steps to target and
    max good LR; no event file at the report's top (no extra `report` run)."""
    import numpy as np
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    out = report["out"]
    assert not list(out.glob("events.out.tfevents.*"))
    runs = sorted(p.name for p in (out / "groups").iterdir())
    assert runs == sorted(g.label.replace(" ", ",") for g in report["groups"])
    acc = EventAccumulator(
        str(out / "groups" / "model.norm=none,optim.lr=2"), size_guidance={"scalars": 0, "tensors": 0}
    )
    acc.Reload()
    job = json.loads((sweep / "0_model.norm=none,optim.lr=2,trainer.steps=60" / "summary.json").read_text())
    with np.load(sweep / "0_model.norm=none,optim.lr=2,trainer.steps=60" / "metrics.npz") as m:
        steps, test_acc = m["eval_step"], m["test_acc"]
    series = dict(np.load(sweep / "0_model.norm=none,optim.lr=2,trainer.steps=60" / "probes.npz"))
    curve = acc.Scalars("acc/test")  # one seed: the group's mean is the run's own curve
    assert [e.step for e in curve] == steps.tolist()
    assert [e.value for e in curve] == pytest.approx(test_acc.tolist(), rel=1e-6)
    assert "acc/test_lo" not in acc.Tags()["scalars"]  # no band from one seed
    p50 = acc.Scalars("groups/probe/h2.pre_act/p50")
    assert [e.value for e in p50] == pytest.approx(series["probe/h2.pre_act/p50"].tolist(), rel=1e-6)
    assert {"groups/probe/h2.pre_act/p15", "groups/probe/h2.pre_act/p85"} <= set(acc.Tags()["scalars"])
    assert "fig1/percentiles" in acc.Tags()["images"]
    plugins = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(plugins["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model.norm"].string_value == "none" and start.hparams["optim.lr"].number_value == 2.0
    last = job["instruments"]["probe"]["h2.pre_act"]
    metric = lambda tag: acc.Scalars(tag)[0].value  # noqa: E731
    assert metric("hparams/drift_w1_raw_last") == pytest.approx(last["w1_raw"], rel=1e-6)
    assert metric("hparams/drift_w1_shape_last") == pytest.approx(last["w1_shape"], rel=1e-6)
    assert metric("hparams/steps_to_target") == job["steps_to_target"]["0.9"]
    assert metric("hparams/max_good_lr") == GOOD_LR  # the none group's, over its learning rates
    assert metric("hparams/final_test_acc") == pytest.approx(job["final_test_acc"], rel=1e-6)
    # the run itself writes the same ICS metrics at its end (all but max good LR, a group's)
    own = EventAccumulator(str(sweep / "0_model.norm=none,optim.lr=2,trainer.steps=60"), size_guidance={"scalars": 0})
    own.Reload()
    assert own.Scalars("hparams/drift_w1_raw_last")[-1].value == pytest.approx(last["w1_raw"], rel=1e-6)
    assert own.Scalars("hparams/drift_w1_shape_last")[-1].value == pytest.approx(last["w1_shape"], rel=1e-6)
    assert own.Scalars("hparams/steps_to_target")[-1].value == job["steps_to_target"]["0.9"]
    assert "hparams/max_good_lr" not in own.Tags()["scalars"]


def test_group_images_share_their_y_limits(report):
    from ics.analysis.tboard import percentile_figures

    figs = percentile_figures(report["groups"])
    assert len(figs) == len(report["groups"]) - 1  # the failed job's group has no probes
    limits = {tuple(round(v, 9) for v in f.axes[0].get_ylim()) for f in figs.values()}
    assert len(limits) == 1, limits


def test_figures_share_their_axes(report):
    """Fig. 1 b/c as a norm × LR grid on one y-scale (a sigmoid net: ±1.5 × 4.36, so the diverged
    lr=1e4 runs cannot stretch it); the density at four matched steps, each column on one x-axis."""
    from ics.analysis.figures import fig_density, fig_percentiles

    fig, _ = fig_percentiles(report["groups"])
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    grid = {(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in shown}
    assert {r for r, _ in grid} == {0, 1} and {c for _, c in grid} <= {0, 1, 2}  # rows: norms; columns: LRs
    assert {ax.get_ylim() for ax in shown} == {(-1.5 * 4.36, 1.5 * 4.36)}
    fig, _ = fig_density(report["groups"])  # histograms every 1000 steps: only steps 0 and 60 were kept
    assert {ax.get_title() for ax in fig.axes if ax.patches} == {"step 0", "step 60"}


def test_density_at_four_steps_each_column_on_one_x_axis(tmp_path):
    import numpy as np

    from ics.analysis.figures import fig_density, robust_limits
    from ics.analysis.groups import seed_groups
    from ics.analysis.load import load_jobs

    for num, norm in enumerate(("none", "batch")):
        c = cfg(norm, GOOD_LR)
        c.probe.histogram_every = 10  # the tracked unit's values kept every 10 steps: 7 to choose from
        build_trainer(
            c, tmp_path / f"{num}_model.norm={norm}", data=tiny_data(), overrides=[f"model.norm={norm}"]
        ).fit()
    fig, _ = fig_density(seed_groups(load_jobs(tmp_path)))
    axes = [ax for ax in fig.axes if ax.patches]
    columns = {}
    for ax in axes:
        columns.setdefault(ax.get_subplotspec().colspan.start, set()).add(ax.get_xlim())
    assert len(axes) == 8 and len(columns) == 4 and all(len(lims) == 1 for lims in columns.values())
    assert [ax.get_title() for ax in axes[:4]] == ["step 0", "step 10", "step 20", "step 60"]  # ~0, 2%, 10%, end
    assert all(ax.get_ylabel().endswith("density") for ax in axes if ax.get_subplotspec().colspan.start == 0)
    # robust limits: one blown-up curve is clipped instead of flattening the rest

    lo, hi = robust_limits([np.linspace(-1, 1, 1000), np.array([-36.0])])
    assert -1.3 < lo < -1 and 1 < hi < 1.3


def test_a_blown_up_panel_is_clipped_not_allowed_to_flatten_the_others():
    """ReLU (no saturation range): the shared y-range is the union of the ordinary panels' ranges; a
    panel 1000 × wider (an LR that blew up) is clipped and named."""
    from types import SimpleNamespace

    import numpy as np

    from ics.analysis.figures import percentile_limits

    relu = [SimpleNamespace(config={"model.activation": "relu"})] * 5
    calm = [[np.linspace(-1, 1 + k / 10, 200)] for k in range(4)]
    limits, clipped = percentile_limits(relu, calm + [[np.linspace(-8000, 5, 200)]])
    assert clipped == [4] and -1.5 < limits[0] < -1 and 1.3 < limits[1] < 2
    sigmoid = [SimpleNamespace(config={"model.activation": "sigmoid"})] * 5
    limits, clipped = percentile_limits(sigmoid, calm + [[np.linspace(-8000, 5, 200)]])
    assert limits == (-1.5 * 4.36, 1.5 * 4.36) and clipped == [4]


@pytest.mark.slow  # twelve trainings with every instrument, then a report
def test_normalizer_table_and_figure(tmp_path):
    """A sweep over normalisers beyond none/batch gets the per-normaliser table (accuracy, drift,
    grad-ICS cos, scale-invariant β, effective LR, each mean ± CI over seeds) and figure; the
    effective LR is '-' where the normaliser makes no weight scale-invariant (norm=none)."""
    import dataclasses

    from ics.config import GradICSConfig, LandscapeConfig, WeightsConfig

    data = tiny_data()
    for num, (norm, seed) in enumerate([(n, s) for n in ("none", "batch", "layer", "lp") for s in (0, 1, 2)]):
        c = dataclasses.replace(
            cfg(norm, GOOD_LR),
            grad_ics=GradICSConfig(enabled=True, every=20),
            landscape=LandscapeConfig(enabled=True, every=20, scale_invariant=True),
            weights=WeightsConfig(enabled=True, every=20),
        )
        c = dataclasses.replace(c, trainer=dataclasses.replace(c.trainer, seed=seed))
        overrides = [f"model.norm={norm}", f"trainer.seed={seed}"]
        build_trainer(c, tmp_path / "sweep" / f"{num}_{','.join(overrides)}", data=data, overrides=overrides).fit()
    rep = make_report(tmp_path / "sweep")
    table = next(t for t in rep["tables"] if t.title.startswith("Normalisers side by side"))
    assert "last hidden layer h2" in table.title
    assert (
        "acc @ 10" in table.headers
    )  # 60 steps: the first evaluation at or after step 7.5 (the early ones: 10, 13, ...)
    rows = {r[0]: dict(zip(table.headers, r)) for r in table.cells}
    assert set(rows) == {"model.norm=none", "model.norm=batch", "model.norm=layer", "model.norm=lp"}
    for label, row in rows.items():
        assert "±" in row["final test acc"] and "±" in row["grad-ICS cos"] and "±" in row["drift raw"], row
        # per row where the normaliser makes rows scale-invariant; LayerNorm's is the whole layer's
        assert (row["eff LR"] == "-") == (label in ("model.norm=none", "model.norm=layer")), row
        assert (row["eff LR, layer"] == "-") == (label != "model.norm=layer"), row
        assert (row["si β"] == "-") == (label == "model.norm=none"), row
    assert_png(rep["figures"]["normalizers"])
