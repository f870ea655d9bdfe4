"""`ics report` writes only its own output folder (issue 15, item 2): an `--out` that is a run or
sweep folder, the folder reported on, or one holding TensorBoard events it did not write, and a
`report` that is a symbolic link, are refused in one line before anything is written; a re-run
removes only the files the previous report listed as its own; a link planted under an output
name is replaced, never followed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ics.analysis import make_report
from ics.config import Config, ConfigError, MLPConfig, MNISTConfig, SGDConfig, TrainerConfig
import datagen
from ics.data import DataBundle
from ics.train import Trainer

from clirun import invoke

EVENTS = "events.out.tfevents.*"


def tiny_data(n=120, classes=4) -> DataBundle:
    return datagen.tiny_bundle(n, classes)


@pytest.fixture(scope="module")
def clean_sweep(tmp_path_factory) -> Path:
    """Two tiny jobs (probe off: only the accuracy figures) with their TensorBoard history, and the
    sweep's multirun.yaml."""
    root = tmp_path_factory.mktemp("sweep")
    for num, lr in enumerate((0.1, 0.5)):
        c = Config(model=MLPConfig(widths=[8]), data=MNISTConfig(), optim=SGDConfig(lr=lr),
                   trainer=TrainerConfig(steps=20, batch_size=10, eval_every=10, log_every=10, device="cpu",
                                         threads=1, progress=False, checkpoint_every=10))
        c.probe.enabled = False
        Trainer(c, root / f"{num}_optim.lr={lr}", data=tiny_data(), overrides=[f"optim.lr={lr}"]).fit()
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


@pytest.fixture
def sweep(clean_sweep, tmp_path) -> Path:
    d = tmp_path / "sweep"
    shutil.copytree(clean_sweep, d, symlinks=True)
    return d


def snapshot(d: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(Path(d).rglob("*")) if p.is_file() and not p.is_symlink()}


def group_events(out: Path) -> list:
    """The report's TensorBoard event files (one run per group), relative to out."""
    return sorted(str(p.relative_to(out)) for p in out.glob(f"groups/*/{EVENTS}"))


def job(sweep: Path, num: int) -> Path:
    return next(sweep.glob(f"{num}_*"))


@pytest.mark.parametrize("where", ["the run itself", "another run", "the sweep", "a sweep without multirun.yaml",
                                   "a folder with jobs.json", "a folder with TensorBoard history"])
def test_an_out_that_is_not_the_reports_own_is_refused_and_untouched(sweep, tmp_path, where):
    run = job(sweep, 1)
    path, out = {
        "the run itself": (run, run),
        "another run": (run, job(sweep, 0)),
        "the sweep": (sweep, sweep),
        "a sweep without multirun.yaml": (run, sweep),
        "a folder with jobs.json": (run, tmp_path / "plan"),
        "a folder with TensorBoard history": (run, tmp_path / "tb"),
    }[where]
    if where == "a sweep without multirun.yaml":
        (sweep / "multirun.yaml").unlink()
    if where == "a folder with jobs.json":
        out.mkdir()
        (out / "jobs.json").write_text("[]")
    if where == "a folder with TensorBoard history":
        out.mkdir()
        shutil.copy(next(run.glob(EVENTS)), out)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError) as e:
        make_report(path, out)
    assert "\n" not in str(e.value) and str(out) in str(e.value)
    assert snapshot(tmp_path) == before, "a refused report changed files"
    assert not list(tmp_path.rglob("report.md"))


@pytest.mark.parametrize("leads_to", ["a run", "an empty folder elsewhere"])
def test_a_report_link_planted_in_a_sweep_is_refused(sweep, tmp_path, leads_to):
    target = job(sweep, 0) if leads_to == "a run" else tmp_path / "elsewhere"
    target.mkdir(exist_ok=True)
    (sweep / "report").symlink_to(target, target_is_directory=True)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match="symbolic link"):
        make_report(sweep)
    assert snapshot(tmp_path) == before and not list(target.glob("report.md"))


def test_a_rerun_removes_only_what_the_report_wrote(sweep):
    first = make_report(sweep)
    out = first["out"]
    manifest = json.loads((out / ".ics-report.json").read_text())["files"]
    old_events = group_events(out)
    assert len(old_events) == 2  # a TensorBoard run per group (optim.lr=0.1, optim.lr=0.5)
    assert set(manifest) == {"report.md", "report.html", "runs.csv", "groups.csv", "accuracy.png", "lr_tolerance.png",
                             *old_events}
    (out / "notes.txt").write_text("mine")
    (out / "accuracy_old.png").write_bytes(b"mine too")
    # a forged manifest cannot make the report delete anything but a report's own file names
    forged = [*manifest, "notes.txt", "../0_optim.lr=0.1/summary.json"]
    (out / ".ics-report.json").write_text(json.dumps({"files": forged}))
    make_report(sweep)
    events = group_events(out)
    assert len(events) == 2 and not set(events) & set(old_events)  # the previous ones replaced, not doubled
    assert (out / "notes.txt").read_text() == "mine" and (out / "accuracy_old.png").exists()
    assert (job(sweep, 0) / "summary.json").exists()
    assert all(list(job(sweep, n).glob(EVENTS)) for n in (0, 1))


def test_a_link_planted_under_an_output_name_is_replaced_not_followed(sweep, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = sweep / "report"
    out.mkdir()
    (out / "runs.csv").symlink_to(victim)
    (out / "accuracy.png").symlink_to(victim)
    make_report(sweep)
    assert victim.read_text() == "precious"
    assert not (out / "runs.csv").is_symlink() and (out / "runs.csv").read_text().startswith("job,")


def test_a_report_written_before_manifests_is_replaced(sweep):
    out = sweep / "report"
    out.mkdir()
    for name in ("report.md", "runs.csv", "events.out.tfevents.1.host.1.0"):
        (out / name).write_text("an older ics report")
    make_report(sweep)
    assert not list(out.glob(EVENTS)) and len(group_events(out)) == 2


def test_report_out_run_on_the_command_line(sweep, tiny_env, tmp_path):
    run = job(sweep, 1)
    before = snapshot(run)
    p = invoke(["report", str(run), "--out", str(run)], tmp_path)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1 and err[0].startswith("error: ") and "run or sweep folder" in err[0], \
        p.stdout + p.stderr
    assert snapshot(run) == before


def test_a_report_killed_half_way_does_not_block_the_next(sweep, monkeypatch):
    from ics.analysis import report as rep

    class Killed(BaseException):
        pass

    def die(self):
        raise Killed()

    make_report(sweep)
    monkeypatch.setattr(rep.ReportFolder, "finish", die)
    out = sweep / "report"
    with pytest.raises(Killed):
        make_report(sweep)  # killed after its new event file is in place, before the old one is removed
    monkeypatch.undo()
    assert len(group_events(out)) == 4
    (out / ".runs.csv.abc12345.part").write_text("half")  # what a kill mid-write leaves
    (out / ".tensorboard.xyz12345").mkdir()
    (out / ".tensorboard.xyz12345" / "events.out.tfevents.1.h.1.0").write_text("half")
    make_report(sweep)  # every event file was listed before it was put in place: not refused
    assert len(group_events(out)) == 2
    assert not list(out.glob(".*.part")) and not list(out.glob(".tensorboard.*"))


def test_a_link_planted_as_a_group_run_is_replaced_not_followed(sweep, tmp_path):
    make_report(sweep)
    out = sweep / "report"
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    first = sorted((out / "groups").iterdir())[0]
    shutil.rmtree(first)
    first.symlink_to(victim)  # the previous report's event file now "lies" behind a link
    forged = json.loads((out / ".ics-report.json").read_text())["files"] + ["groups/../../0_optim.lr=0.1/x",
                                                                             "groups/../" + "events.out.tfevents.1"]
    (out / ".ics-report.json").write_text(json.dumps({"files": forged}))
    make_report(sweep)
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
    assert not first.is_symlink() and len(group_events(out)) == 2
