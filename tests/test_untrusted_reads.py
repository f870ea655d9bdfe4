"""Every file read from a run or sweep folder has a size cap, a nesting-depth cap and no YAML
aliases, and is one line when it does not read (issue 22, item 3): a sparse 1 GB sweep.json,
plan.json or multirun.yaml is refused by its size before a byte is read; a YAML alias bomb in
multirun.yaml or a job's .hydra/ files is refused without being expanded; `[[[[...]]]]` 100k deep is one line, not a
RecursionError; `ics status` and `ics report` go on past a folder that does not read and name the
file. Memory is checked deterministically: the readers must refuse on the size they stat, and a
test makes every whole-file read fail."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ics.record import Status, Summary, names, write_summary
from ics.record.files import UnreadableText, read_bytes, read_json, read_yaml

GB = 1 << 30


def sparse(path: Path, size: int = GB) -> Path:
    """A file of `size` bytes that uses no disk (a hole), as a hostile sweep folder may hold."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def bomb(levels: int = 9) -> str:
    """Billion laughs: each level refers to the one before ten times (10**levels values)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


DEEP_JSON = "[" * 100_000 + "]" * 100_000
DEEP_YAML = "hydra: " + "[" * 100_000 + "]" * 100_000 + "\n"


@pytest.fixture
def no_whole_reads(monkeypatch):
    """Reading a file whole by Path.read_bytes/read_text fails the test (the old readers did that)."""

    def fail(self, *a, **kw):
        raise AssertionError(f"{self} was read whole")

    monkeypatch.setattr(Path, "read_bytes", fail)
    monkeypatch.setattr(Path, "read_text", fail)


@pytest.fixture
def no_reads_beyond(monkeypatch):
    """Every read through ics.record.files is recorded (count of bytes asked for)."""
    import ics.record.files as files

    asked = []
    real = files.os.fdopen

    class Reader:
        def __init__(self, fh):
            self.fh = fh

        def read(self, n=-1):
            asked.append(n)
            return self.fh.read(n)

        def __getattr__(self, k):
            return getattr(self.fh, k)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(files.os, "fdopen", lambda fd, *a, **kw: Reader(real(fd, *a, **kw)))
    return asked


# --- the reader itself ------------------------------------------------------------------------------


@pytest.mark.parametrize("read", [read_bytes, read_json, read_yaml])
def test_a_sparse_gigabyte_is_refused_by_its_size_before_reading(tmp_path, read, no_whole_reads, no_reads_beyond):
    f = sparse(tmp_path / "sweep.json")
    with pytest.raises(UnreadableText) as e:
        read(f, 1 << 20) if read is read_bytes else read(f)
    msg = str(e.value)
    assert "1 GB" in msg and "MB" in msg and "\n" not in msg, msg  # its size and the cap
    assert no_reads_beyond == [], "the file was read before its size refused it"


def test_a_fifo_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "summary.json"
    os.mkfifo(fifo)  # nobody writes to it: a blocking open or read would wait forever
    with pytest.raises(UnreadableText, match="FIFO"):
        read_json(fifo)


@pytest.mark.parametrize(
    "text, reader",
    [
        (DEEP_JSON, read_json),
        ("[" * 70 + "]" * 70, read_json),
        (DEEP_YAML, read_yaml),
        ("x: " + "[" * 70 + "]" * 70, read_yaml),
    ],
)
def test_deep_nesting_is_one_line(tmp_path, text, reader):
    f = tmp_path / "f"
    f.write_text(text)
    with pytest.raises(UnreadableText) as e:
        reader(f)
    assert "nested more than 64 levels deep" in str(e.value) and "\n" not in str(e.value)


def test_yaml_aliases_are_refused_without_expansion(tmp_path):
    f = tmp_path / "multirun.yaml"
    f.write_text(bomb())
    with pytest.raises(UnreadableText, match="aliases"):
        read_yaml(f)


def test_plain_data_still_reads(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"a": [[1, 2], {"b": None}], "loss": float("nan")}))
    (tmp_path / "a.yaml").write_text("hydra:\n  overrides:\n    task: [x=1, 'y=${now:%H}']\n")
    assert read_json(tmp_path / "a.json")["a"] == [[1, 2], {"b": None}]
    assert read_yaml(tmp_path / "a.yaml") == {"hydra": {"overrides": {"task": ["x=1", "y=${now:%H}"]}}}


# --- the readers of sweep files -----------------------------------------------------------------------


def sweep_with(tmp_path: Path, name: str, how: str) -> Path:
    sweep = tmp_path / "sweep"
    sweep.mkdir(exist_ok=True)
    f = sweep / name
    if how == "sparse":
        sparse(f)
    elif how == "deep":
        f.write_text(DEEP_JSON if name.endswith(".json") else DEEP_YAML)
    elif how == "bomb":
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(bomb())
    return sweep


@pytest.mark.parametrize("how", ["sparse", "deep"])
def test_a_hostile_sweep_plan_is_one_line_for_resume(tmp_path, how, no_whole_reads):
    from ics.record.plan import PlanError, read_plan

    sweep = sweep_with(tmp_path, names.JOB_PLAN, how)
    with pytest.raises(PlanError) as e:
        read_plan(sweep)
    msg = str(e.value)
    assert "\n" not in msg and str(sweep / names.JOB_PLAN) in msg, msg
    assert ("1 GB" in msg) if how == "sparse" else ("nested more than" in msg)


@pytest.mark.parametrize("how", ["sparse", "deep", "bomb"])
def test_a_hostile_multirun_yaml_is_one_line(tmp_path, how, no_whole_reads):
    sweep = sweep_with(tmp_path, "multirun.yaml", how)
    with pytest.raises(UnreadableText) as e:
        read_yaml(sweep / "multirun.yaml")
    msg = str(e.value)
    assert "\n" not in msg and {"sparse": "1 GB", "deep": "nested more than", "bomb": "aliases"}[how] in msg, msg


def test_planned_jobs_and_progress_of_a_gigabyte_are_refused_by_size(tmp_path, no_reads_beyond):
    from ics.analysis.load import planned_jobs_problem
    from ics.record.jobs import read_planned, read_progress

    sparse(tmp_path / names.PLANNED_JOBS)
    sparse(tmp_path / "progress.json")
    assert read_planned(tmp_path) is None and read_progress(tmp_path) == {}
    assert "1 GB" in planned_jobs_problem(tmp_path)
    assert no_reads_beyond == []


# --- commands that read many folders ------------------------------------------------------------------


def run(d: Path, acc=0.9) -> Path:
    write_summary(
        d,
        Summary(
            status=Status.COMPLETED, steps=10, steps_requested=10, final_test_acc=acc, config={"trainer": {"steps": 10}}
        ),
    )
    return d


def test_status_goes_on_past_hostile_folders_and_names_each_file(tmp_path):
    from ics_cli.main import app
    from typer.testing import CliRunner

    run(tmp_path / "runs" / "good")
    big = tmp_path / "multiruns" / "big"
    run(big / "0_x=1")
    sparse(big / "multirun.yaml")
    deep = tmp_path / "multiruns" / "deep"
    run(deep / "0_x=1")
    (deep / "multirun.yaml").write_text(bomb())
    (deep / "sweep.json").write_text(DEEP_JSON)
    sparse(big / "sweep.json")
    huge = tmp_path / "runs" / "huge"
    huge.mkdir(parents=True)
    sparse(huge / names.SUMMARY)
    result = CliRunner().invoke(app, ["status", str(tmp_path)], env={"COLUMNS": "300"})  # wide: notes on one line
    out = result.output
    assert result.exit_code == 0 and "Traceback" not in out, out
    assert "runs/good  run  completed" in out
    assert "multirun.yaml does not read (1 GB" in out
    assert "multirun.yaml does not read (not YAML (uses YAML aliases" in out
    assert "sweep.json does not read (nested more than 64 levels deep" in out
    assert "sweep.json does not read (1 GB" in out
    assert "runs/huge  run  unreadable" in out and "summary.json: 1 GB" in out
    assert all(len(line) < 400 for line in out.splitlines())


def test_report_goes_on_past_hostile_files_and_names_each(tmp_path):
    from ics.analysis import make_report

    sweep = tmp_path / "sweep"
    run(sweep / "0_x=1", 0.9)
    run(sweep / "1_x=2", 0.8)
    bad = sweep / "2_x=3"
    bad.mkdir()
    sparse(bad / names.SUMMARY)
    (bad / ".hydra").mkdir()
    (bad / ".hydra" / "config.yaml").write_text(bomb())
    (bad / ".hydra" / "overrides.yaml").write_text(DEEP_YAML)
    sparse(sweep / names.PLANNED_JOBS)
    result = make_report(sweep)
    rows = {r["job"]: r for r in result["runs"]}
    assert rows[0]["status"] == rows[1]["status"] == "completed"
    assert rows[2]["status"] == "unreadable" and rows[2]["status_text"].startswith("unreadable (summary.json: 1 GB")
    md = result["report_md"].read_text()
    assert ".hydra/config.yaml: not YAML (uses YAML aliases" in md
    assert ".hydra/overrides.yaml: not YAML (nested more than 64 levels deep" in md
    assert "jobs.json: 1 GB" in md
