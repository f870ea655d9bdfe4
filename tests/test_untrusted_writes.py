"""Every write into a run, sweep or report folder goes through ics.record.files.atomic_write (issue
22, item 1): its temporary file has a random name made with O_EXCL (a link planted under the name
a pid would predict is never written through), a destination or folder that is a symbolic link is
refused in one line with the file outside left as it was, and the temporary files a killed writer
left are still recognised (by the pid in their name) and removed without following links."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import ics.record.files as files
from ics.record import RunLock, Status, Summary, write_summary
from ics.record.files import TEMP_NAME, UnsafePath, atomic_write, stale_temp_files, write_json, write_npz


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside every run folder that a planted link points to."""
    f = tmp_path / "outside.txt"
    f.write_text("precious")
    return f


def temp_names(monkeypatch) -> list:
    """The temporary file names atomic_write renames from (recorded, the rename still happens)."""
    seen = []
    real = os.replace

    def spy(src, dst, *a, **kw):
        seen.append(Path(src).name)
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(files.os, "replace", spy)
    return seen


def test_temp_names_are_random_and_carry_the_pid(tmp_path, monkeypatch):
    seen = temp_names(monkeypatch)
    for _ in range(3):
        write_json(tmp_path / "summary.json", {"a": 1})
    assert len(set(seen)) == 3, seen  # a new name each time: nothing to predict from the pid
    for name in seen:
        m = TEMP_NAME.match(name)
        assert m and m.group("name") == "summary.json" and int(m.group("pid")) == os.getpid(), name
        assert name != f".summary.json.{os.getpid()}.tmp"


@pytest.mark.parametrize("write", ["json", "npz", "checkpoint", "text"])
def test_a_link_planted_at_the_predictable_temp_name_is_not_followed(tmp_path, outside, write):
    from ics.train.checkpoint import save

    name = {"json": "summary.json", "npz": "metrics.npz", "checkpoint": "checkpoint.pt", "text": "jobs.json"}[write]
    run = tmp_path / "run"
    run.mkdir()
    planted = run / f".{name}.{os.getpid()}.tmp"  # what ics named it before: `.<name>.<pid>.tmp`
    planted.symlink_to(outside)
    {
        "json": lambda: write_json(run / name, {"a": 1}),
        "npz": lambda: write_npz(run / name, {"x": np.arange(3)}),
        "checkpoint": lambda: save(run / name, {"step": 1}),
        "text": lambda: files.write_text(run / name, "[]"),
    }[write]()
    assert outside.read_text() == "precious"
    assert (run / name).is_file() and not (run / name).is_symlink()
    assert planted.is_symlink()  # left alone: not a file this process made


@pytest.mark.parametrize("write", ["json", "summary", "text", "path callback"])
def test_a_destination_that_is_a_link_is_refused_and_not_followed(tmp_path, outside, write):
    run = tmp_path / "run"
    run.mkdir()
    name = "summary.json" if write == "summary" else "x.json"
    (run / name).symlink_to(outside)
    with pytest.raises(UnsafePath) as e:
        {
            "json": lambda: write_json(run / name, {"a": 1}),
            "summary": lambda: write_summary(run, Summary(status=Status.COMPLETED)),
            "text": lambda: files.write_text(run / name, "x"),
            "path callback": lambda: atomic_write(run / name, lambda p: p.write_text("x")),
        }[write]()
    assert str(run / name) in str(e.value) and "symbolic link" in str(e.value) and "\n" not in str(e.value)
    assert outside.read_text() == "precious" and (run / name).is_symlink()
    assert sorted(p.name for p in run.iterdir()) == [name]  # no temporary file left behind


def test_a_hydra_folder_that_is_a_link_is_not_written_through(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    job = tmp_path / "0_x=1"
    job.mkdir()
    (job / ".hydra").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePath, match="folder that is a symbolic link"):
        files.write_text(job / ".hydra" / "overrides.yaml", "- x=1\n")
    assert list(elsewhere.iterdir()) == []


def test_a_link_put_in_place_while_writing_is_not_replaced(tmp_path, outside):
    """The check is made again just before the rename: a link planted during the write stays a
    link to the untouched file (and the write is refused)."""
    dest = tmp_path / "summary.json"
    with pytest.raises(UnsafePath):
        atomic_write(dest, lambda fh: fh.write(b"{}"), fileobj=True, before_rename=lambda: dest.symlink_to(outside))
    assert dest.is_symlink() and outside.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_files_are_made_with_an_ordinary_files_mode(tmp_path):
    write_json(tmp_path / "summary.json", {})
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600


def test_stale_temp_files_of_both_namings_are_found_and_links_not_followed(tmp_path, outside, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    dead, live = 999_999, os.getpid()
    monkeypatch.setattr(files, "_alive", lambda pid: pid != dead)
    stale = [
        run / f".summary.json.{dead}-k3j_x9a1.tmp",
        run / f".metrics.npz.{dead}.tmp",
        run / f".checkpoint.pt.{dead}-12345678.tmp",
    ]
    for p in stale:
        p.write_bytes(b"half")
    link = run / f".progress.json.{dead}-abcdefgh.tmp"
    link.symlink_to(outside)
    kept = [run / f".summary.json.{live}-abcdefgh.tmp", run / "notes.tmp", run / ".notes.tmp"]
    for p in kept:
        p.write_text("not a leftover of a dead writer")
    (run / f".x.{dead}-folder.tmp").mkdir()  # a folder of that name is not a temporary file
    assert sorted(stale_temp_files(run)) == sorted(stale + [link])
    with RunLock(run):
        pass
    assert not any(os.path.lexists(p) for p in stale + [link])
    assert all(p.exists() for p in kept) and (run / f".x.{dead}-folder.tmp").is_dir()
    assert outside.read_text() == "precious"


def test_a_run_folder_that_is_a_link_is_not_cleaned_through(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    left = real / ".summary.json.999999-abcdefgh.tmp"
    left.write_text("someone else's")
    (tmp_path / "run").symlink_to(real, target_is_directory=True)
    monkeypatch.setattr(files, "_alive", lambda pid: False)
    assert files.remove_stale_temp_files(tmp_path / "run") == [] and left.exists()


@pytest.mark.parametrize("what", ["stop file", "hparams", "sweep record", "planned jobs"])
def test_the_clis_sweep_files_are_written_through_atomic_write(tmp_path, outside, what, monkeypatch):
    """A link planted in a sweep folder, under the file's name or under the temporary name the CLI
    used before (`sweep.json.tmp`), is never written through."""
    from ics_cli import configdirs, sweeps

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    name, write = {
        "stop file": (sweeps.STOP_FILE, lambda: sweeps.write_stop_file(sweep, 15)),
        "hparams": (sweeps.HPARAMS_FILE, lambda: sweeps.write_hparams(sweep, {"optim.lr": [0.1, 0.2]})),
        "sweep record": (configdirs.RECORD, lambda: configdirs.write_sweep_record(sweep, None, [], None)),
        "planned jobs": ("jobs.json", lambda: files.write_text(sweep / "jobs.json", json.dumps([["x=1"]]))),
    }[what]
    (sweep / (name + ".tmp")).symlink_to(outside)
    write()
    assert outside.read_text() == "precious" and (sweep / name).is_file() and not (sweep / name).is_symlink()
    (sweep / name).unlink()
    (sweep / name).symlink_to(outside)
    with pytest.raises(UnsafePath):
        write()
    assert outside.read_text() == "precious"


def test_a_stop_signal_with_a_planted_stop_file_link_is_not_written_through(tmp_path, outside, monkeypatch):
    from ics_cli.main import _forward_stop
    from ics_cli.sweeps import STOP_FILE

    from ics.train import stopping

    monkeypatch.setattr(stopping, "descendants", lambda pid: [])  # nothing of the test's is signalled

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / STOP_FILE).symlink_to(outside)
    stop = _forward_stop(sweep)
    stop._handle(15, None)  # the OSError is swallowed: the sweep still stops
    assert stop.signum == 15 and outside.read_text() == "precious"


@pytest.mark.parametrize("planted", [".study", ".study/experiment", ".study/experiment/mine.yaml"])
def test_a_study_copy_is_never_written_through_a_link_planted_in_the_sweep(tmp_path, outside, planted):
    from ics.record.files import copy_tree

    stage = tmp_path / "stage"
    (stage / "experiment").mkdir(parents=True)
    (stage / "experiment" / "mine.yaml").write_text("# @package _global_\n")
    sweep = tmp_path / "sweep"
    (sweep / ".study").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "experiment").mkdir(parents=True)
    link = sweep / planted
    if link.exists():
        link.rmdir()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside if planted.endswith(".yaml") else elsewhere)
    with pytest.raises(UnsafePath):
        copy_tree(stage, sweep / ".study")
    assert outside.read_text() == "precious" and list((elsewhere / "experiment").iterdir()) == []


def test_a_study_copy_into_a_real_folder_is_whole(tmp_path):
    from ics.record.files import copy_tree

    stage = tmp_path / "stage"
    (stage / "experiment").mkdir(parents=True)
    (stage / "experiment" / "mine.yaml").write_text("# @package _global_\n")
    (stage / "model").mkdir()
    (stage / "model" / "wide.yaml").write_text("widths: [8]\n")
    copy_tree(stage, tmp_path / "sweep" / ".study")
    got = {
        str(p.relative_to(tmp_path / "sweep" / ".study")): p.read_text()
        for p in (tmp_path / "sweep" / ".study").rglob("*.yaml")
    }
    assert got == {"experiment/mine.yaml": "# @package _global_\n", "model/wide.yaml": "widths: [8]\n"}
