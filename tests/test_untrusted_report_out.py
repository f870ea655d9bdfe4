"""`ics report` writes only its own output folder (issue 15, item 2; issue 22): an `--out` that is a
run or sweep folder or inside one, the folder reported on, or one holding TensorBoard events it did
not write, and a `report` that is a symbolic link, are refused in one line before anything is
written; a re-run replaces or removes only files the previous report's manifest lists with the
digest they still have; a user's file, a changed file, a link planted under an output name, or a
manifest naming anything outside the folder is one line, and nothing is written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import datagen
import pytest
from clirun import invoke

from ics.analysis import make_report
from ics.config import Config, ConfigError, MLPConfig, MNISTConfig, SGDConfig, TrainerConfig
from ics.data import DataBundle
from ics.train import build_trainer

EVENTS = "events.out.tfevents.*"


def tiny_data(n=120, classes=4) -> DataBundle:
    return datagen.tiny_bundle(n, classes)


@pytest.fixture(scope="module")
def clean_sweep(tmp_path_factory) -> Path:
    """Two tiny jobs (probe off: only the accuracy figures) with their TensorBoard history, and the
    sweep's multirun.yaml."""
    root = tmp_path_factory.mktemp("sweep")
    for num, lr in enumerate((0.1, 0.5)):
        c = Config(
            model=MLPConfig(widths=[8]),
            data=MNISTConfig(),
            optim=SGDConfig(lr=lr),
            trainer=TrainerConfig(
                steps=20,
                batch_size=10,
                eval_every=10,
                log_every=10,
                device="cpu",
                threads=1,
                progress=False,
                checkpoint_every=10,
            ),
        )
        c.probe.enabled = False
        build_trainer(c, root / f"{num}_optim.lr={lr}", data=tiny_data(), overrides=[f"optim.lr={lr}"]).fit()
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


@pytest.fixture
def sweep(clean_sweep, tmp_path) -> Path:
    d = tmp_path / "sweep"
    shutil.copytree(clean_sweep, d, symlinks=True)
    return d


def snapshot(d: Path) -> dict:
    """Every path under d (hidden ones and links too) with the bytes of each plain file."""
    return {
        p: (p.read_bytes() if p.is_file() and not p.is_symlink() else os.readlink(p) if p.is_symlink() else None)
        for p in sorted(Path(d).rglob("*"))
    }


def refused(make, where: Path, *names) -> str:
    """make() is refused in one line naming each of names; nothing under where changed."""
    before = snapshot(where)
    with pytest.raises(ConfigError) as e:
        make()
    msg = str(e.value)
    assert "\n" not in msg and all(str(n) in msg for n in names), msg
    assert snapshot(where) == before, "a refused report changed files"
    return msg


def group_events(out: Path) -> list:
    """The report's TensorBoard event files (one run per group), relative to out."""
    return sorted(str(p.relative_to(out)) for p in out.glob(f"groups/*/{EVENTS}"))


def job(sweep: Path, num: int) -> Path:
    return next(sweep.glob(f"{num}_*"))


@pytest.mark.parametrize(
    "where",
    [
        "the run itself",
        "another run",
        "the sweep",
        "a sweep without multirun.yaml",
        "a folder with jobs.json",
        "a folder with TensorBoard history",
    ],
)
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
    assert set(manifest) == {
        "report.md",
        "report.html",
        "runs.csv",
        "groups.csv",
        "accuracy.png",
        "lr_tolerance.png",
        *old_events,
    }
    import hashlib

    assert all(d == [hashlib.sha256((out / n).read_bytes()).hexdigest()] for n, d in manifest.items())
    (out / "notes.txt").write_text("mine")
    (out / "accuracy_old.png").write_bytes(b"mine too")
    make_report(sweep)
    events = group_events(out)
    assert len(events) == 2 and not set(events) & set(old_events)  # the previous ones replaced, not doubled
    assert (out / "notes.txt").read_text() == "mine" and (out / "accuracy_old.png").read_bytes() == b"mine too"
    assert all(list(job(sweep, n).glob(EVENTS)) for n in (0, 1))


@pytest.mark.parametrize("name", ["report.md", "runs.csv", "accuracy.png", "report.html"])
def test_a_users_file_under_an_output_name_is_refused_and_untouched(sweep, tmp_path, name):
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_bytes(b"the user's own " + name.encode())
    (out / "other.txt").write_text("also the user's")
    msg = refused(lambda: make_report(sweep, out), tmp_path, out / name)
    assert "was not written by ics report" in msg and "--out" in msg


@pytest.mark.parametrize("name", ["report.md", "runs.csv", "accuracy.png"])
def test_a_file_changed_since_the_report_wrote_it_is_refused(sweep, tmp_path, name):
    out = tmp_path / "rep"
    make_report(sweep, out)
    (out / name).write_bytes(b"edited by hand")
    refused(lambda: make_report(sweep, out), tmp_path, out / name)


def test_a_file_changed_since_is_not_removed_either(sweep, tmp_path):
    """A file the previous report wrote and this one would remove (an event file of a group run) is
    removed only while it has the digest the manifest recorded."""
    out = tmp_path / "rep"
    make_report(sweep, out)
    old = out / group_events(out)[0]
    old.write_bytes(b"appended to by someone")
    refused(lambda: make_report(sweep, out), tmp_path, old)


@pytest.mark.parametrize(
    "entry",
    [
        "../0_optim.lr=0.1/summary.json",
        "/etc/passwd",
        "notes.txt",
        "groups/../../victim.txt",
        "groups/x/../../../victim.txt",
        "..",
        "",
        5,
    ],
)
def test_a_forged_manifest_is_refused_and_nothing_it_names_is_touched(sweep, tmp_path, entry):
    out = tmp_path / "rep"
    make_report(sweep, out)
    (tmp_path / "victim.txt").write_text("precious")
    (out / "notes.txt").write_text("mine")
    listed = json.loads((out / ".ics-report.json").read_text())["files"]
    forged = {**listed, entry: listed["runs.csv"]} if isinstance(entry, str) else {**listed, "x": entry}
    (out / ".ics-report.json").write_text(json.dumps({"files": forged}))
    refused(lambda: make_report(sweep, out), tmp_path, out / ".ics-report.json")


@pytest.mark.parametrize(
    "how",
    [
        "a link as the manifest",
        "a folder linked in as groups",
        "not JSON",
        "nested too deep",
        "names only (no digests)",
    ],
)
def test_a_manifest_that_vouches_for_nothing_is_refused(sweep, tmp_path, how):
    out = tmp_path / "rep"
    make_report(sweep, out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    manifest = out / ".ics-report.json"
    listed = json.loads(manifest.read_text())["files"]
    if how == "a link as the manifest":
        (elsewhere / "m.json").write_text(manifest.read_text())
        manifest.unlink()
        manifest.symlink_to(elsewhere / "m.json")
    elif how == "a folder linked in as groups":
        for f in (out / "groups").rglob("*"):
            rel = f.relative_to(out / "groups")
            (elsewhere / rel).parent.mkdir(parents=True, exist_ok=True)
            if f.is_file():
                shutil.copy(f, elsewhere / rel)
        shutil.rmtree(out / "groups")
        (out / "groups").symlink_to(elsewhere, target_is_directory=True)
    elif how == "not JSON":
        manifest.write_bytes(b"\xff\x00")
    elif how == "nested too deep":
        manifest.write_text("[" * 100_000 + "]" * 100_000)
    else:
        manifest.write_text(json.dumps({"files": sorted(listed)}))
    refused(lambda: make_report(sweep, out), tmp_path, out)


def test_a_link_planted_under_an_output_name_is_refused_not_followed(sweep, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = sweep / "report"
    out.mkdir()
    (out / "runs.csv").symlink_to(victim)
    refused(lambda: make_report(sweep), tmp_path, out / "runs.csv")
    assert victim.read_text() == "precious"


def test_a_report_written_before_manifests_is_not_taken_for_ours(sweep):
    """Without a manifest nothing says which files ics wrote: a report.md there is refused, whoever
    wrote it (the user moves it, or chooses another --out)."""
    out = sweep / "report"
    out.mkdir()
    for name in ("report.md", "runs.csv"):
        (out / name).write_text("an older ics report")
    refused(lambda: make_report(sweep), sweep, out / "report.md")


@pytest.mark.parametrize(
    "where", ["<sweep>/x", "<job>/rep", "<job>/.hydra", "<job>/.hydra/x", "<job>/a/b", "<sweep>/report/../x"]
)
def test_an_out_inside_a_run_or_sweep_folder_is_refused(sweep, tmp_path, where):
    run = job(sweep, 1)
    out = Path(where.replace("<sweep>", str(sweep)).replace("<job>", str(run)))
    other = tmp_path / "other_sweep"
    shutil.copytree(sweep, other, symlinks=True)
    msg = refused(lambda: make_report(other, out), tmp_path, "--out")
    assert "run or sweep folder" in msg


def test_an_out_inside_the_reported_folder_is_refused_but_its_own_report_is_not(sweep, tmp_path):
    (sweep / "multirun.yaml").unlink()  # a sweep known by its job folders only
    refused(lambda: make_report(sweep, sweep / "elsewhere"), tmp_path, "folder being reported")
    assert make_report(sweep, sweep / "report")["report_md"].is_file()


def test_report_out_run_on_the_command_line(sweep, tiny_env, tmp_path):
    run = job(sweep, 1)
    before = snapshot(run)
    p = invoke(["report", str(run), "--out", str(run)], tmp_path)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1 and err[0].startswith("error: ") and "run or sweep folder" in err[0], (
        p.stdout + p.stderr
    )
    assert snapshot(run) == before


def test_a_report_killed_half_way_does_not_block_the_next(sweep, monkeypatch):
    import ics.record.files as files

    class Killed(BaseException):
        pass

    make_report(sweep)
    out = sweep / "report"
    real = files.write_bytes
    seen = {"n": 0}

    def write_some(path, data, fsync=False):  # the new event files go in, then the report "dies"
        if Path(path).name.startswith("events.out") and seen["n"] == 1:
            raise Killed()
        seen["n"] += Path(path).name.startswith("events.out")
        return real(path, data, fsync)

    monkeypatch.setattr(files, "write_bytes", write_some)
    with pytest.raises(Killed):
        make_report(sweep)  # killed after one new event file is in place, before the old ones are removed
    monkeypatch.undo()
    assert len(group_events(out)) == 3
    # what a kill in the middle of a write leaves: a temporary file of a writer that is gone
    monkeypatch.setattr(files, "_alive", lambda pid: pid != 999_999)
    (out / ".runs.csv.999999-abc12345.tmp").write_text("half")
    make_report(sweep)  # every event file was listed before it was put in place: not refused
    assert len(group_events(out)) == 2
    manifest = json.loads((out / ".ics-report.json").read_text())["files"]
    assert set(group_events(out)) <= set(manifest) and all(len(d) == 1 for d in manifest.values())
    assert not (out / ".runs.csv.999999-abc12345.tmp").exists()


def test_a_link_planted_as_a_group_run_is_refused_not_followed(sweep, tmp_path):
    make_report(sweep)
    out = sweep / "report"
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    first = sorted((out / "groups").iterdir())[0]
    shutil.rmtree(first)
    first.symlink_to(victim)  # the previous report's event file now "lies" behind a link
    refused(lambda: make_report(sweep), tmp_path, first)
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]


def test_an_out_below_a_file_is_refused_before_the_report_is_printed(sweep, tmp_path):
    (tmp_path / "notadir").write_text("a file")
    r = invoke(["report", str(sweep), "--out", str(tmp_path / "notadir" / "rep")], tmp_path)
    assert r.returncode == 2 and r.stdout == "", r.stdout  # refused before any table is printed
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "notadir" in lines[0] and "is a file" in lines[0], r.stderr


def test_a_sweep_whose_plan_lists_jobs_without_a_folder_says_so(sweep, tmp_path):
    from ics.record.plan import Plan, PlannedJob, write_plan

    write_plan(sweep, Plan(launcher="basic", sweeper="basic", jobs=[PlannedJob(i, [], {}) for i in range(4)]))
    text = Path(make_report(sweep)["report_md"]).read_text()
    assert f"2 planned jobs of {sweep.resolve()} never started (2 of 4 have a folder)" in text, text
    assert f"ics resume {sweep.resolve()}" in text
    write_plan(sweep, Plan(launcher="basic", sweeper="basic", jobs=[PlannedJob(i, [], {}) for i in range(2)]))
    assert "never started" not in Path(make_report(sweep)["report_md"]).read_text()
