"""`ics report` on a sweep whose jobs are in every state: a job with a broken or missing
summary.json is listed with its own overrides and state, counted, and never attributed to another
job's config (so it cannot change another group's LR-tolerance verdict)."""

from __future__ import annotations

import json

import yaml

from ics.analysis import make_report
from ics.record import Status, Summary, write_summary

CHANCE = 0.1


def job(sweep, num, norm, lr, acc=None, status=Status.COMPLETED, write=True):
    d = sweep / f"{num}_model.norm={norm},optim.lr={lr}"
    overrides = [f"model.norm={norm}", f"optim.lr={lr}"]
    config = {
        "model": {"name": "mlp", "norm": norm},
        "optim": {"name": "sgd", "lr": lr},
        "trainer": {"seed": 0},
        "tolerance": {"fraction": 0.9},
    }
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if write:
        write_summary(
            d,
            Summary(
                status=status, final_test_acc=acc, chance_acc=CHANCE, overrides=overrides, config=config, steps=100
            ),
        )
    return d


def test_report_lists_every_state_with_its_own_config(tmp_path):
    sweep = tmp_path / "sweep"
    job(sweep, 0, "batch", 0.1, 0.90)
    job(sweep, 1, "batch", 1.0, 0.95)
    job(sweep, 2, "none", 0.1, 0.92)
    broken = job(sweep, 3, "none", 1.0, 0.50)
    (broken / "summary.json").write_text('{"status": "completed", "final_test_ac')  # cut mid-write
    job(sweep, 4, "none", 10.0, write=False)  # died before writing its record
    job(sweep, 5, "batch", 10.0, 0.30, status=Status.RUNNING)  # record says running, nobody holds the lock

    result = make_report(sweep)
    rows = {r["job"]: r for r in result["runs"]}
    assert [rows[i]["status"] for i in range(6)] == [
        "completed",
        "completed",
        "completed",
        "unreadable",
        "killed",
        "killed",
    ]
    # their own overrides and config, from their .hydra/ snapshot
    assert rows[3]["overrides"] == "model.norm=none optim.lr=1.0" and rows[3]["config.model.norm"] == "none"
    assert rows[4]["overrides"] == "model.norm=none optim.lr=10.0" and rows[4]["config.optim.lr"] == "10"
    assert "summary.json" in rows[3]["error"]
    # tolerance uses only finished runs: the broken one does not lend anyone its accuracy
    groups = {g.label: g for g in result["tolerance"]}
    assert groups["model.norm=none"].lrs == [0.1] and groups["model.norm=batch"].lrs == [0.1, 1.0]
    md = (sweep / "report" / "report.md").read_text()
    assert "6 jobs: 3 completed, 2 killed, 1 unreadable" in md
    assert "left out of the group statistics" in md and "#3 (unreadable)" in md and "#5 (killed)" in md
    csv_rows = (sweep / "report" / "runs.csv").read_text().splitlines()
    assert len(csv_rows) == 7


def test_a_job_without_any_record_is_still_listed(tmp_path):
    sweep = tmp_path / "sweep"
    job(sweep, 0, "batch", 0.1, 0.9)
    (sweep / "1_model.norm=none,optim.lr=0.1").mkdir()  # Hydra made the dir; the job never got further
    (sweep / "1_model.norm=none,optim.lr=0.1" / "run.lock").write_text("")
    rows = make_report(sweep)["runs"]
    assert [r["status"] for r in rows] == ["completed", "killed"]
    assert json.loads(json.dumps(rows[1]["overrides"])) == "(defaults)"


def test_damaged_series_files_are_named_not_fatal(tmp_path):
    """A truncated metrics.npz or an instrument's npz: the report is still written and says which
    file of which job it could not read; jobs of the sweep that never started are counted."""
    import numpy as np

    from ics.record import names

    sweep = tmp_path / "sweep"
    good = job(sweep, 0, "batch", 0.1, 0.9)
    bad = job(sweep, 1, "none", 0.1, 0.8)
    for d in (good, bad):
        with open(d / names.METRICS, "wb") as fh:
            np.savez(fh, eval_step=np.array([0, 10]), test_acc=np.array([0.1, 0.9]))
    data = (bad / names.METRICS).read_bytes()
    (bad / names.METRICS).write_bytes(data[: len(data) // 2])  # cut mid-write
    # the plan holds each job's whole command line (launcher, sweep dir and constants included),
    # while a job's record holds its own overrides: jobs are matched by number
    argv = ["hydra/launcher=joblib", f"hydra.sweep.dir={sweep}", "trainer.threads=1"]
    (sweep / names.PLANNED_JOBS).write_text(
        json.dumps(
            [
                [*argv, "model.norm=batch", "optim.lr=0.1"],
                [*argv, "model.norm=none", "optim.lr=0.1"],
                [*argv, "model.norm=none", "optim.lr=1.0"],
            ]
        )
    )
    for d in (good, bad):  # their records say they ran 100 steps
        rec = json.loads((d / "summary.json").read_text())
        rec["steps"] = 100
        (d / "summary.json").write_text(json.dumps(rec))
    result = make_report(sweep)
    md = result["report_md"].read_text()
    assert "#1: metrics.npz" in md
    assert "1 of the sweep's 3 jobs has not started: #2 (model.norm=none, optim.lr=1.0) (once" in md
    assert (sweep / "report" / "runs.csv").is_file()
