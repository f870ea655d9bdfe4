"""The typed run record: Status, summary.json round trips, old records, and job directories in
every state (running, killed, unreadable, never recorded), each read with its own overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ics.record import (
    SCHEMA_VERSION,
    RecordError,
    RunBusy,
    RunLock,
    Status,
    Summary,
    names,
    read_job,
    read_jobs,
    read_summary,
    write_summary,
)


def hydra_snapshot(d: Path, overrides, config=None) -> None:
    import yaml

    (d / ".hydra").mkdir(parents=True, exist_ok=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    if config is not None:
        (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))


def test_status_values_and_kinds():
    assert Status("completed") is Status.COMPLETED and str(Status.NOT_LEARNING) == "not_learning"
    assert {s for s in Status if s.finished} == {Status.COMPLETED, Status.DIVERGED, Status.NOT_LEARNING}
    assert {s for s in Status if s.counts_as_chance} == {Status.DIVERGED, Status.FAILED}


def test_summary_round_trip_is_strict_json(tmp_path):
    s = Summary(
        status=Status.DIVERGED,
        steps=120,
        diverged_at_step=120,
        final_test_acc=float("nan"),
        instruments={"probe": {"h1.pre_act": {"w1_ref": float("inf")}}},
        overrides=["optim.lr=30"],
        config={"optim": {"lr": 30.0}},
    )
    write_summary(tmp_path, s)
    text = (tmp_path / names.SUMMARY).read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON: non-finite numbers become null
    back = read_summary(tmp_path)
    assert back.status is Status.DIVERGED and back.schema_version == SCHEMA_VERSION
    assert back.final_test_acc is None and back.drift == {"h1.pre_act": {"w1_ref": None}}
    assert back.overrides == ["optim.lr=30"] and back.config == {"optim": {"lr": 30.0}}


def test_version_1_records_are_read(tmp_path):
    """A summary.json written by ics 0.1 (drift at the top level, no schema_version)."""
    old = {
        "status": "completed",
        "steps": 50,
        "final_test_acc": 0.9,
        "probe_time_sec": 1.5,
        "drift": {"h3.pre_act": {"w1_ref": 1.25}},
        "overrides": ["model.norm=none"],
        "config": {"a": 1},
        "train_steps_per_sec": 100.0,
    }
    (tmp_path / names.SUMMARY).write_text(json.dumps(old))
    s = read_summary(tmp_path)
    assert s.status is Status.COMPLETED and s.final_test_acc == 0.9
    assert s.drift == {"h3.pre_act": {"w1_ref": 1.25}} and s.instrument_time_sec == {"probe": 1.5}


@pytest.mark.parametrize(
    "text, needle",
    [
        ("{not json", "summary.json"),
        (json.dumps({"steps": 3}), "no status"),
        (json.dumps({"status": "exploded"}), "unknown status 'exploded'"),
        (json.dumps({"status": "completed", "schema_version": 99}), "newer ics"),
    ],
)
def test_unreadable_records_raise_record_error(tmp_path, text, needle):
    (tmp_path / names.SUMMARY).write_text(text)
    with pytest.raises(RecordError, match=needle.replace("(", r"\(")):
        read_summary(tmp_path)


def test_job_states_each_with_its_own_overrides(tmp_path):
    sweep = tmp_path / "sweep"
    done, killed, broken, silent, live = (sweep / f"{i}_x={i}" for i in range(5))
    for i, d in enumerate((done, killed, broken, silent, live)):
        hydra_snapshot(d, [f"optim.lr={i}"], {"optim": {"lr": float(i)}})
    write_summary(done, Summary(status=Status.COMPLETED, overrides=["optim.lr=0"], config={"optim": {"lr": 0.0}}))
    write_summary(killed, Summary(status=Status.RUNNING, steps=40, overrides=["optim.lr=1"]))  # nobody holds its lock
    (broken / names.SUMMARY).write_text('{"status": "comp')  # cut off mid-write by hand
    with RunLock(live):
        write_summary(live, Summary(status=Status.RUNNING, overrides=["optim.lr=4"]))
        jobs = read_jobs(sweep)
        with pytest.raises(RunBusy, match="in use by pid"):
            RunLock(live).acquire()  # a second trainer may not enter a live run's directory
    assert [j.num for j in jobs] == [0, 1, 2, 3, 4]
    assert [j.status for j in jobs] == [
        Status.COMPLETED,
        Status.KILLED,
        Status.UNREADABLE,
        Status.KILLED,
        Status.RUNNING,
    ]
    # each job keeps its own overrides and config: from its record, else from its .hydra snapshot
    assert [j.overrides for j in jobs] == [[f"optim.lr={i}"] for i in range(5)]
    assert jobs[2].config == {"optim": {"lr": 2.0}} and "summary.json" in jobs[2].problem
    assert jobs[3].summary is None and "died before writing" in jobs[3].problem
    assert jobs[4].owner and jobs[4].owner.startswith("pid ")
    # once the live run lets go of its lock, the same record reads as killed
    assert read_job(live).status == Status.KILLED


def test_report_folder_and_nested_copies_are_not_jobs(tmp_path):
    write_summary(tmp_path / "0_a=1", Summary(status=Status.COMPLETED))
    write_summary(tmp_path / "report" / "x", Summary(status=Status.COMPLETED))
    write_summary(tmp_path / "0_a=1" / "backup", Summary(status=Status.COMPLETED))
    assert [j.dir.name for j in read_jobs(tmp_path)] == ["0_a=1"]
