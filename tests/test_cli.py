"""The `ics` CLI end to end on tiny generated MNIST (tiny_env): in-process (clirun.invoke, the fast
tier) where the logic is the point, in subprocesses (slow) where the process is: the console script,
a real run and sweep, the exit and the one stderr line of a real interpreter."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import ICS, ics, invoke

FAST = ["trainer.threads=1", "trainer.eval_every=10", "probe.every=10", "probe.size=100"]


@pytest.fixture
def cwd(tmp_path) -> Path:
    d = tmp_path / "cwd"
    d.mkdir()
    return d


def assert_one_line_error(p: subprocess.CompletedProcess, *needles: str) -> str:
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "Traceback" not in out, out
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one error line on stderr, got:\n{p.stderr}"
    line = lines[0]
    assert line.startswith("error: "), line
    for n in needles:
        assert n in line, f"{n!r} not in {line!r}"
    return line


def assert_nothing_created(tmp_path: Path, cwd: Path) -> None:
    for d in ("run", "sweep"):
        left = (
            sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / d).rglob("*")) if (tmp_path / d).exists() else None
        )
        assert left is None, f"a half-written {d} directory was left behind: {left}"
    assert list(cwd.iterdir()) == [], f"files were created in the working directory: {list(cwd.iterdir())}"


# ----------------------------------------------------------------------------------------------
# happy paths


@pytest.mark.slow
def test_run_writes_a_run_directory(tiny_env, tmp_path, cwd):
    run = tmp_path / "run"
    # probe.size: the probe set is drawn from the tiny test split (200 examples)
    p = ics(
        [
            "run",
            "trainer.steps=20",
            "trainer.eval_every=10",
            "probe.every=10",
            "probe.size=100",
            "trainer.threads=1",
            f"hydra.run.dir={run}",
        ],
        tiny_env,
        cwd,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] in ("completed", "not_learning")
    assert summary["steps"] == 20
    assert summary["dataset"]["train"] == 600  # the tiny data from ICS_DATA_ROOT
    assert "trainer.steps=20" in summary["overrides"]
    assert list(run.glob("events.out.tfevents.*"))
    cfg_yaml = (run / ".hydra" / "config.yaml").read_text()
    assert "steps: 20" in cfg_yaml and "name: mlp" in cfg_yaml
    assert (run / ".hydra" / "overrides.yaml").is_file()
    assert list(cwd.iterdir()) == []  # hydra.run.dir was honoured, nothing in the cwd


@pytest.mark.slow
def test_version(tiny_env, cwd):
    """Through the installed console script (`ics = ics_cli.main:app`) when the venv has one."""
    from ics import __version__

    script = Path(sys.executable).parent / "ics"
    cmd = [str(script)] if script.exists() else ICS
    p = subprocess.run([*cmd, "--version"], env=tiny_env, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"ics {__version__}"
    # `ics run --version` is Hydra's: it checks no config, so it does not say it does
    p = ics(["run", "--version"], tiny_env, cwd)
    assert p.returncode == 0 and p.stdout.startswith("Hydra ") and "checking the config" not in p.stdout, p.stdout


def test_list_shows_groups_options_and_experiments(tiny_env, cwd):
    p = invoke(["list"], cwd)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    # the trainer is a plain config section (trainer.steps=...), not a group with options
    from ics.registry import DATASETS

    for word in (
        "model",
        "data",
        "optim",
        "probe",
        "experiment",
        "mlp",
        "cnn",
        *DATASETS,
        "sgd",
        "momentum",
        "adam",
        "default",
        "off",
        "fig1",
    ):
        assert word in out, word


def test_config_prints_the_composed_yaml(tiny_env, cwd):
    p = invoke(["config", "model=cnn"], cwd)
    assert p.returncode == 0, p.stderr
    assert "name: cnn" in p.stdout
    assert "kernel_size: 3" in p.stdout
    assert list(cwd.iterdir()) == []


def test_run_cfg_job_prints_and_trains_nothing(tiny_env, tmp_path, cwd):
    p = invoke(["run", "--cfg", "job", "trainer.steps=5", f"hydra.run.dir={tmp_path / 'run'}"], cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "steps: 5" in p.stdout and "name: mlp" in p.stdout
    assert not (tmp_path / "run").exists()
    assert not list(tmp_path.rglob("summary.json"))
    assert list(cwd.iterdir()) == []


@pytest.mark.slow
def test_multirun(tiny_env, tmp_path, cwd):
    sweep = tmp_path / "sweep"
    p = ics(
        ["run", "-m", "model.norm=none,batch", "trainer.steps=20", *FAST, f"hydra.sweep.dir={sweep}"],
        tiny_env,
        cwd,
        timeout=180,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 2, list(sweep.iterdir())
    norms = set()
    for s in summaries:
        data = json.loads(s.read_text())
        assert data["status"] in ("completed", "not_learning"), data.get("error")
        assert data["steps"] == 20
        norms.add(data["config"]["model"]["norm"])
        assert list(s.parent.glob("events.out.tfevents.*"))
    assert norms == {"none", "batch"}
    # the status table after the sweep: a title with the job count, a status column, one row per job
    assert re.search(r"2\s+jobs", p.stdout), p.stdout
    assert "status" in p.stdout and "final test acc" in p.stdout
    assert p.stdout.count("completed") + p.stdout.count("not_learning") >= 2, p.stdout


# ----------------------------------------------------------------------------------------------
# bad input: exit != 0, one `error:` line naming the value and what is allowed, nothing created.
# In-process (each `ics` process start costs seconds of torch + Hydra imports); one real process for
# a check before and one after the data is loaded.

BAD = {
    "unknown-group-option": (["model=foo"], ("model=foo", "allowed", "mlp", "cnn")),
    "typo-key": (["trainer.stepz=5"], ("trainer.stepz", "steps")),
    "lr-zero": (["optim.lr=0"], ("optim.lr", "0", "> 0")),
    "lr-negative": (["optim.lr=-1"], ("optim.lr", "-1", "> 0")),
    "steps-zero": (["trainer.steps=0"], ("trainer.steps", "0", "> 0")),
    "batch-one-with-bn": (["trainer.batch_size=1"], ("trainer.batch_size", "1", ">= 2")),
    # only known once the data is loaded (600 training examples in the tiny set)
    "batch-over-train-size": (["trainer.batch_size=100000"], ("trainer.batch_size", "100000", "600")),
    "bad-activation": (["model.activation=swish"], ("model.activation", "swish", "allowed", "sigmoid", "relu")),
    "sweep-with-one-bad-value": (["-m", "optim.lr=0.1,-1"], ("optim.lr", "-1", "> 0")),
    # only known once the model is built: must not leave a run dir with an event file behind
    "probe-points-match-nothing": (["probe.points=[nomatch]"], ("probe.points", "nomatch", "h1.pre_act")),
    # null where a value is needed: the allowed values, not OmegaConf's "is not Optional"
    "norm-null": (["model.norm=null"], ("model.norm=null is invalid: allowed: batch, batch_renorm, group, layer, lp",)),
    "steps-null": (["trainer.steps=null"], ("trainer.steps=null is invalid: must be set (null is not allowed)",)),
    # report.baseline is checked at launch: Hydra's quoting, a key that is not one, a value no job has
    "baseline-unquoted": (
        ["report.baseline=[model.norm=batch]"],
        ("must be quoted", "'report.baseline=[\"model.norm=batch\"]'"),
    ),
    "baseline-no-key": (
        ['report.baseline=["model.nrm=batch"]'],
        ("report.baseline item model.nrm=batch", "model.nrm is not one"),
    ),
    "baseline-no-job": (
        ["-m", "model.norm=none,layer", 'report.baseline=["model.norm=batch"]'],
        ("matches no job of this sweep: model.norm takes none, layer",),
    ),
}


def bad_run(name: str, tmp_path: Path, root: Path = None, monkeypatch=None):
    """`ics run` with the failing overrides of BAD[name] (in-process), in its own cwd and with its own
    run and sweep dirs; returns (result, base, cwd)."""
    args = BAD[name][0]
    # probe.size: the tiny test split has 200 examples (a bigger probe set is an error of its own)
    given = {a.split("=", 1)[0] for a in args}
    defaults = [d for d in ("trainer.steps=5", "trainer.threads=1", "probe.size=100") if d.split("=")[0] not in given]
    work = tmp_path / "cwd"
    work.mkdir()
    full = ["run", *defaults, *args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    return invoke(full, work), tmp_path, work


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_creates_nothing(tiny_env, tmp_path, case):
    p, base, work = bad_run(case, tmp_path)
    assert_one_line_error(p, *BAD[case][1])
    assert_nothing_created(base, work)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["typo-key", "batch-over-train-size"])
def test_bad_input_in_a_real_process_is_one_line_and_creates_nothing(tiny_env, tmp_path, case):
    """The same, from a fresh interpreter: nothing printed at import or by Hydra's own logging adds a
    line, and the exit code is the process's (one case before and one after the data is loaded)."""
    args = BAD[case][0]
    work = tmp_path / "cwd"
    work.mkdir()
    p = ics(
        ["run", "trainer.steps=5", "trainer.threads=1", "probe.size=100", *args, f"hydra.run.dir={tmp_path / 'run'}"],
        tiny_env,
        work,
    )
    assert p.returncode == 2, p.stdout + p.stderr
    assert_one_line_error(p, *BAD[case][1])
    assert_nothing_created(tmp_path, work)


def test_missing_data_names_the_expected_path(tiny_env, tmp_path, monkeypatch):
    empty = tmp_path / "empty-root"
    empty.mkdir()
    monkeypatch.setenv("ICS_DATA_ROOT", str(empty))
    work = tmp_path / "cwd"
    work.mkdir()
    p = invoke(["run", "trainer.steps=5", "trainer.threads=1", f"hydra.run.dir={tmp_path / 'run'}"], work)
    line = assert_one_line_error(p, str(empty), "MNIST")
    assert "not found" in line or "expected" in line
    assert_nothing_created(tmp_path, work)


def test_failed_run_leaves_nothing_under_the_default_run_dir(tiny_env, tmp_path, monkeypatch):
    # Hydra's default run dir (runs/<date>/<time> under the cwd): nothing may be left in the cwd
    empty = tmp_path / "empty-root"
    empty.mkdir()
    monkeypatch.setenv("ICS_DATA_ROOT", str(empty))
    work = tmp_path / "cwd"
    work.mkdir()
    assert_one_line_error(invoke(["run", "trainer.steps=5", "trainer.threads=1"], work), str(empty))
    left = sorted(str(x.relative_to(work)) for x in work.rglob("*"))
    assert left == [], f"left behind in the working directory: {left}"


def test_unknown_experiment_lists_experiments(tiny_env, cwd):
    assert_one_line_error(invoke(["sweep", "nope"], cwd), "nope", "fig1")
    assert list(cwd.iterdir()) == []


def test_missing_data_in_a_sweep_fails_before_any_job(tiny_env, tmp_path, monkeypatch):
    # every job of a sweep would fail on it: it is caught up front, in one line, with no sweep dir
    monkeypatch.setenv("ICS_DATA_ROOT", str(tmp_path / "empty"))
    sweep = tmp_path / "sweep"
    r = invoke(["run", "-m", "model.norm=none,batch", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: mnist data not found: expected "), r.stderr
    assert str(tmp_path / "empty" / "MNIST" / "raw") in lines[0]
    assert not sweep.exists()


def test_unknown_flag_is_one_line(tiny_env, tmp_path, cwd):
    assert_one_line_error(invoke(["run", "--foo"], cwd), "--foo", "--multirun")
    assert_nothing_created(tmp_path, cwd)


def test_every_combination_of_a_sweep_is_checked_before_launch(tiny_env, tmp_path, cwd):
    # each value is fine on its own; only the combination (BN, batch 1) is invalid
    p = invoke(
        [
            "run",
            "-m",
            "model.norm=none,batch",
            "trainer.batch_size=60,1",
            "probe.size=100",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd,
    )
    assert_one_line_error(p, "trainer.batch_size=1", "model.norm=batch")
    assert_nothing_created(tmp_path, cwd)


def test_probe_points_are_checked_against_the_model_before_a_sweep(tiny_env, tmp_path, cwd):
    p = invoke(
        ["run", "-m", "probe.points=[nomatch]", "optim.lr=0.1,0.2", f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd
    )
    assert_one_line_error(p, "nomatch", "h1.pre_act")
    assert_nothing_created(tmp_path, cwd)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["config", "--cfg", "job"], "takes overrides (key=value)"),
        (["config", "model.norm=none,batch"], "ics run -m"),
        (["config", "foo.bar=1"], "top-level keys"),
    ],
)
def test_config_command_errors(tiny_env, cwd, args, needle):
    assert_one_line_error(invoke(args, cwd), needle)


@pytest.mark.slow  # in-process, but it trains four timed loops (tens of seconds on a busy machine)
def test_bench_prints_every_loop_with_its_ratio(tiny_env, cwd):
    """`ics bench` runs end to end (random MNIST-shaped tensors, short loops): every loop is timed
    and compared with its baseline, and the checkpoint cost is stated. Speed itself is judged in
    the bench's output, never here."""
    p = invoke(["bench", "--synthetic", "--steps", "100", "--repeats", "1", "--cnn-steps", "0"], cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = {
        m.group(1): (float(m.group(2).replace(",", "")), float(m.group(3)))
        for m in re.finditer(r"│ (hand|ics|ics\+probes|ics\+probes\+ckpt) +│ ([\d.,]+) +│ ([\d.]+) +│", p.stdout)
    }
    assert set(rows) == {"hand", "ics", "ics+probes", "ics+probes+ckpt"}, p.stdout
    assert rows["hand"][1] == 1.0 and all(sps > 0 and ratio > 0 for sps, ratio in rows.values()), rows
    assert re.search(r"checkpoint: [\d.]+ ms each", p.stdout), p.stdout
    assert not list(cwd.iterdir()), "the bench writes nothing where it runs"
