"""The record never lags the checkpoint, wherever a run dies (issue 15, item 7), and a resumed run
cleans the temporary files a killed one left (item 8).

A kill is simulated in-process and deterministically: the run's n-th file write raises instead of
writing, and nothing after it reaches the disk, for every n. What a reader then sees must agree
with the checkpoint: the step `ics report` shows is the step `ics resume` continues from."""

from __future__ import annotations

import os
from pathlib import Path

import datagen
import pytest

from ics.config import Config, MLPConfig, MNISTConfig, ProbeConfig, SGDConfig, TrainerConfig
from ics.data import DataBundle
from ics.record import RunLock, names, read_job
from ics.train import build_trainer
from ics.train.checkpoint import step_of


def tiny_data(n=120, classes=4) -> DataBundle:
    return datagen.tiny_bundle(n, classes)


def cfg() -> Config:
    return Config(
        model=MLPConfig(widths=[8], norm="batch"),
        data=MNISTConfig(),
        optim=SGDConfig(lr=0.5),
        trainer=TrainerConfig(
            steps=30,
            batch_size=10,
            eval_every=10,
            log_every=10,
            device="cpu",
            threads=1,
            progress=False,
            checkpoint_every=10,
        ),
        probe=ProbeConfig(every=10, size=20, units=1, histogram_every=1000),
    )


class Killed(BaseException):
    """The process 'died' here: this write and every later one never reach the disk."""


RECORDED = (names.SUMMARY, names.CHECKPOINT, names.METRICS, "probes.npz")


def run_killed_at(d: Path, n: int, monkeypatch) -> bool:
    """Train in d; die just before the n-th write of a record file. True if the run got that far."""
    import ics.record.files as files
    import ics.train.checkpoint as ckpt

    real = files.atomic_write
    count = {"n": 0, "dead": False}

    def write(path, fn, fsync=False, **kw):
        if count["dead"]:
            raise Killed()
        if Path(path).name in RECORDED:
            count["n"] += 1
            if count["n"] == n:
                count["dead"] = True
                raise Killed()
        return real(path, fn, fsync, **kw)

    monkeypatch.setattr(files, "atomic_write", write)
    monkeypatch.setattr(ckpt, "atomic_write", write)
    trainer = build_trainer(cfg(), d, data=tiny_data())
    try:
        trainer.fit()
    except Killed:
        pass
    finally:
        if trainer.writer is not None:
            trainer.writer.close()
        monkeypatch.undo()
    return count["dead"]


@pytest.mark.slow  # one short training per file write of the run, until a run completes (dozens)
def test_a_reader_never_sees_a_checkpoint_newer_than_the_record(tmp_path, monkeypatch):
    n, seen = 0, set()
    while True:
        n += 1
        d = tmp_path / f"kill{n}"
        died = run_killed_at(d, n, monkeypatch)
        job = read_job(d)
        if (d / names.CHECKPOINT).exists():
            ck = step_of(d / names.CHECKPOINT)
            assert job.summary is not None and job.summary.steps == ck, (
                f"killed before write {n}: the record says step {job.summary.steps}, the checkpoint holds {ck}"
            )
            seen.add(ck)
        if not died:  # every write happened: the run completed
            assert str(job.status) == "completed" and job.summary.steps == 30
            break
        if job.summary is not None:
            assert str(job.status) == "killed"
    assert seen == {10, 20, 30} and n > 10  # every checkpoint, each killed around at every write


def test_resume_removes_the_temporary_files_a_killed_run_left(tmp_path, dead_pid):
    run = tmp_path / "run"
    run.mkdir()
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    left = [
        run / f".checkpoint.pt.{dead_pid}.tmp",
        run / f".summary.json.{dead_pid}.tmp",
        run / f".metrics.npz.{dead_pid}.tmp",
    ]
    for p in left:
        p.write_bytes(b"half a file")
    link = run / f".progress.json.{dead_pid}.tmp"
    link.symlink_to(target)
    kept = [run / "notes.tmp", run / ".notes.tmp", run / f".summary.json.{os.getpid()}.tmp", run / "data.tmp"]
    for p in kept:
        p.write_text("not a leftover of a dead writer")
    sub = run / "sub"
    sub.mkdir()
    (sub / f".summary.json.{dead_pid}.tmp").write_text("only the run folder itself is cleaned")
    with RunLock(run):
        pass
    assert not any(p.exists() or p.is_symlink() for p in left + [link])
    assert all(p.exists() for p in kept) and (sub / f".summary.json.{dead_pid}.tmp").exists()
    assert target.read_text() == "keep me"


def test_a_resumed_run_leaves_no_temporary_file(tmp_path, monkeypatch, dead_pid):
    """End to end in-process: die in the middle of writing the checkpoint (its temporary file is
    on disk), then resume: the leftover is gone and the run completes."""
    import ics.train.checkpoint as ckpt
    from ics.train import train_and_evaluate

    d = tmp_path / "run"
    real = ckpt.torch.save
    calls = {"n": 0}

    def half_save(obj, f, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint: write half of it, then "die"
            real(obj, f, *a, **kw)
            if hasattr(f, "truncate"):  # checkpoint.save hands torch an open file
                f.flush()
                f.truncate(f.tell() // 2)
            else:
                data = Path(f).read_bytes()
                Path(f).write_bytes(data[: len(data) // 2])
            raise Killed()
        return real(obj, f, *a, **kw)

    monkeypatch.setattr(ckpt.torch, "save", half_save)
    # the dying process would not have removed its own temporary file: neither may this one
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)
    trainer = build_trainer(cfg(), d, data=tiny_data())
    with pytest.raises(Killed):
        trainer.fit()
    trainer.writer.close()
    monkeypatch.undo()
    left = list(d.glob(".checkpoint.pt.*.tmp"))
    assert left, "the simulated kill left no temporary file"
    # the leftover carries this (live) process's pid: give it a dead one, as after a real kill
    os.rename(left[0], d / f".checkpoint.pt.{dead_pid}.tmp")
    assert read_job(d).summary.steps == step_of(d / names.CHECKPOINT) == 10
    s = train_and_evaluate(cfg(), d, data=tiny_data(), resume="require")
    assert str(s.status) == "completed" and s.resumed_at == [10]
    assert not list(d.glob(".*.tmp"))
