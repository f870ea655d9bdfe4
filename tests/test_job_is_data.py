"""A launched job is data: `ics resume` rebuilds every job from what the sweep recorded as plain
values and never composes a config from anything the folder names; Hydra's own sweepers drive ics.

Each hostile case plants something in a sweep folder that someone else resumes: a study copy with a
`# @package _global_` option that sets hydra.callbacks / hydra.job.env_set / launcher setup lines,
remembered config folders, a stored `--config-dir`, `${oc.env:SECRET}` in stored values, links.
Nothing may run, nothing outside the folder may change, nothing of the resumer's may leak in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from clirun import ics
from ics_cli import resume as resume_mod
from ics_cli.errors import UserError
from ics_cli.main import app
from typer.testing import CliRunner

from ics.config import Config, ConfigError, from_dict, to_dict
from ics.record import names
from ics.record.plan import Plan, PlanError, PlannedJob, read_plan, write_plan

FAST = ["trainer.threads=1", "trainer.steps=20", "trainer.eval_every=10", "trainer.eval_log_points=0", "probe.size=100"]
# what a hostile option would do if it were ever composed: write this file (callbacks, setup lines)
PAYLOAD = """# @package _global_
hydra:
  callbacks:
    pwn:
      _target_: pathlib.Path.touch
      self: {pwned}
  job:
    env_set:
      ICS_PWNED: "1"
probe:
  size: 7
"""


def _sweep_folder(root: Path, jobs=2, statuses=("completed", "interrupted")) -> Path:
    """A sweep folder as `ics run -m` leaves it, written by hand (no training): plan.json, and job
    folders with records (no checkpoints)."""
    sweep = root / "sweep"
    sweep.mkdir(parents=True)
    base = to_dict(Config())
    planned = []
    for i in range(jobs):
        cfg = json.loads(json.dumps(base))
        cfg["trainer"]["seed"] = i
        planned.append(PlannedJob(i, [f"trainer.seed={i}"], cfg))
    write_plan(sweep, Plan(launcher="basic", sweeper="basic", jobs=planned))
    (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: [trainer.seed=0,1]\n    hydra: []\n")
    for i, status in zip(range(jobs), statuses):
        d = sweep / f"{i}_trainer.seed={i}"
        d.mkdir()
        record = {
            "status": status,
            "steps": 10,
            "steps_requested": 20,
            "overrides": [f"trainer.seed={i}"],
            "config": planned[i].config,
        }
        (d / names.SUMMARY).write_text(json.dumps(record))
    return sweep


# ----------------------------------------------------------------------------------------------
# in-process: the plan, what resume will run, and the command it gives Hydra


def test_the_plan_round_trips_compactly_and_refuses_what_ics_never_writes(tmp_path):
    sweep = _sweep_folder(tmp_path)
    plan = read_plan(sweep)
    assert [j.config["trainer"]["seed"] for j in plan.jobs] == [0, 1]
    assert from_dict(plan.jobs[1].config) == from_dict({"trainer": {"seed": 1}})
    stored = json.loads((sweep / names.JOB_PLAN).read_text())
    assert stored["jobs"][1]["set"] == {"trainer.seed": 1}  # a job is its difference from the base
    for bad in (
        b"[1]",
        b'{"format": 1, "base": {}, "jobs": [5]}',
        b'{"format": 2, "base": {}, "jobs": []}',
        b'{"format": 1, "base": {}, "jobs": [], "launcher": "../x"}',
        b"\xff",
        b"[" * 100_000,
    ):
        (sweep / names.JOB_PLAN).write_bytes(bad)
        with pytest.raises(PlanError) as e:
            read_plan(sweep)
        assert "\n" not in str(e.value) and "plan.json" in str(e.value)
    (sweep / names.JOB_PLAN).unlink()
    (sweep / names.JOB_PLAN).symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(PlanError, match="not a plain file"):
        read_plan(sweep)


def test_a_stored_interpolation_is_refused_and_never_resolved(tmp_path, monkeypatch):
    monkeypatch.setenv("ICS_TEST_SECRET", "hunter2")
    cfg = to_dict(Config())
    cfg["data"]["cache_dir"] = "${oc.env:ICS_TEST_SECRET}"
    with pytest.raises(ConfigError) as e:
        from_dict(cfg)
    assert "data.cache_dir=${oc.env:ICS_TEST_SECRET} is an interpolation" in str(e.value)
    assert "hunter2" not in str(e.value)
    cfg["data"]["cache_dir"] = None
    cfg["name"] = ["${now:%H}"]  # inside lists too
    with pytest.raises(ConfigError, match="is an interpolation"):
        from_dict(cfg)


def test_resume_plans_from_records_and_the_plan_and_names_what_it_cannot_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("ICS_TEST_SECRET", "hunter2")
    sweep = _sweep_folder(tmp_path, jobs=4, statuses=("completed", "interrupted", "failed"))
    # job 2: a record whose config holds the resumer's secret as an interpolation
    rec = json.loads((sweep / "2_trainer.seed=2" / names.SUMMARY).read_text())
    rec["config"]["data"]["cache_dir"] = "${oc.env:ICS_TEST_SECRET}"
    (sweep / "2_trainer.seed=2" / names.SUMMARY).write_text(json.dumps(rec))
    # job 1: an unreadable checkpoint
    (sweep / "1_trainer.seed=1" / names.CHECKPOINT).write_bytes(b"not a checkpoint")
    # job 3 never started; a planted folder with a link inside; a job folder that is a link
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (sweep / "5_x").mkdir()
    (sweep / "5_x" / names.LOCK).symlink_to(victim)
    (sweep / "6_y").symlink_to(tmp_path)
    what = resume_mod.plan_resume(sweep)
    assert what.finished == ["0_trainer.seed=0"]
    assert [(t.name, t.action) for t in what.todo] == [("3_trainer.seed=3", "start")]
    refused = dict(what.refused)
    assert "not a checkpoint ics wrote" in refused["1_trainer.seed=1"]
    assert "remove" in refused["1_trainer.seed=1"] and "ics resume" not in refused["1_trainer.seed=1"]
    assert "is an interpolation" in refused["2_trainer.seed=2"] and "hunter2" not in refused["2_trainer.seed=2"]
    assert "symbolic link" in refused["5_x"] and "symbolic link" in refused["6_y"]
    assert victim.read_text() == "precious"
    # the command Hydra gets: the shipped config, the recorded launcher's name, the job folders quoted
    argv = resume_mod.resume_argv(sweep, what, ["hydra.launcher.n_jobs=2"])
    assert "--multirun" in argv and "hydra/launcher=basic" in argv and "hydra/sweeper=basic" in argv
    assert f"+{resume_mod.RESUME_KEY}='3_trainer.seed=3'" in argv and "hydra.output_subdir=null" in argv
    assert not any(a.startswith(("--config-dir", "-cd", "--config-name", "-cn", "hydra.searchpath")) for a in argv)


def test_resume_takes_launcher_settings_from_the_command_line_only(tmp_path):
    for bad in (
        "trainer.steps=5",
        "model=cnn",
        "hydra.job.env_set.X=1",
        "hydra.callbacks.x._target_=os.system",
        "--config-dir=/tmp",
        "hydra.searchpath=[file:///tmp]",
    ):
        with pytest.raises(UserError, match="cannot be given to ics resume"):
            resume_mod.check_extra([bad])
    resume_mod.check_extra(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
    # a recorded launcher is a name from ics's table, or nothing
    sweep = _sweep_folder(tmp_path)
    plan = read_plan(sweep)
    plan.launcher = "evil_target"
    write_plan(sweep, plan)
    what = resume_mod.plan_resume(sweep)
    assert what.launcher == "basic" and "not one ics knows" in what.launcher_note


def test_an_interpolation_planted_in_the_plan_is_named_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("ICS_TEST_SECRET", "hunter2")
    sweep = _sweep_folder(tmp_path, jobs=3, statuses=("completed",))
    stored = json.loads((sweep / names.JOB_PLAN).read_text())
    stored["base"]["name"] = "${oc.env:ICS_TEST_SECRET}"
    (sweep / names.JOB_PLAN).write_text(json.dumps(stored))
    what = resume_mod.plan_resume(sweep)
    assert what.todo == []  # never started, and its planned config cannot be used: not launched
    refused = dict(what.refused)
    assert set(refused) == {"1_trainer.seed=1", "2_trainer.seed=2"}
    assert all("plan.json" in why and "is an interpolation" in why and "hunter2" not in why for why in refused.values())
    result = CliRunner().invoke(app, ["resume", str(sweep)])
    assert result.exit_code == 1 and "2 jobs cannot be resumed" in result.output, result.output


def test_a_record_that_does_not_read_is_said_before_it_is_written_anew(tmp_path):
    sweep = _sweep_folder(tmp_path, jobs=1, statuses=("interrupted",))
    job = sweep / "0_trainer.seed=0"
    (job / names.SUMMARY).write_bytes(b"\xff\xfe")
    plan = resume_mod.plan_resume(sweep)
    (todo,) = plan.todo
    assert todo.action == "start"  # no checkpoint, no readable record: from the plan
    said = [line for line in resume_mod.describe(plan) if "0_trainer.seed=0" in line]
    assert len(said) == 1 and "its summary.json does not read" in said[0] and "written anew" in said[0]


def test_a_record_that_is_a_link_is_not_read_through(tmp_path):
    from ics.record import Status, read_job

    outside = tmp_path / "other_run"
    outside.mkdir()
    (outside / names.SUMMARY).write_text(json.dumps({"status": "completed", "steps": 5}))
    sweep = _sweep_folder(tmp_path, jobs=1, statuses=("completed",))
    job = sweep / "0_trainer.seed=0"
    (job / names.SUMMARY).unlink()
    (job / names.SUMMARY).symlink_to(outside / names.SUMMARY)
    rec = read_job(job, sweep)
    assert rec.status == Status.UNREADABLE and "symbolic link" in rec.problem


def test_names_that_could_break_out_of_a_quoted_override_are_refused(tmp_path):
    sweep = _sweep_folder(tmp_path, jobs=1, statuses=("interrupted",))
    for name in ("1_a'b", "2_${oc.env:HOME}", "3_a\\b"):
        d = sweep / name
        d.mkdir()
        (d / names.SUMMARY).write_text((sweep / "0_trainer.seed=0" / names.SUMMARY).read_text())
    refused = dict(resume_mod.plan_resume(sweep).refused)
    assert set(refused) == {"1_a'b", "2_${oc.env:HOME}", "3_a\\b"}
    assert all("characters ics does not pass on" in why for why in refused.values())


def test_an_optimising_sweep_resumes_its_started_trials_and_says_so(tmp_path):
    sweep = _sweep_folder(tmp_path, jobs=2)
    plan = read_plan(sweep)
    plan.sweeper, plan.objective, plan.jobs = "optuna", {"metric": "val_acc", "direction": "maximize"}, []
    write_plan(sweep, plan)
    what = resume_mod.plan_resume(sweep)
    assert [t.name for t in what.todo] == ["1_trainer.seed=1"] and what.sweeper == "optuna"
    assert any(
        "finishes the trials it started and asks it for no new ones" in line for line in resume_mod.describe(what)
    )


def test_a_resume_where_nothing_can_run_says_why_once_and_exits_1(tmp_path):
    sweep = _sweep_folder(tmp_path, jobs=2, statuses=("completed", "interrupted"))
    (sweep / "1_trainer.seed=1" / names.CHECKPOINT).write_bytes(b"\x00" * 10)
    result = CliRunner().invoke(app, ["resume", str(sweep)])
    out = result.output
    assert result.exit_code == 1, out
    assert "cannot resume" in out and "1_trainer.seed=1" in out and "Traceback" not in out
    assert "finish them with ics resume" not in out  # never advises a loop


def test_resume_refuses_to_write_through_a_link_at_the_sweeps_root(tmp_path):
    sweep = _sweep_folder(tmp_path)
    victim = tmp_path / "victim.yaml"
    victim.write_text("precious")
    (sweep / "multirun.yaml").unlink()
    (sweep / "multirun.yaml").symlink_to(victim)
    result = CliRunner().invoke(app, ["resume", str(sweep)])
    assert result.exit_code == 2 and "is a symbolic link" in result.output
    assert victim.read_text() == "precious"


def test_a_launch_into_a_run_folder_with_a_planted_hydra_link_is_refused(tiny_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / names.SUMMARY).write_text("{}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / ".hydra").symlink_to(outside)
    result = CliRunner().invoke(app, ["run", *FAST, f"hydra.run.dir={run}"])
    assert result.exit_code == 2 and ".hydra is a symbolic link" in result.output, result.output
    assert list(outside.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# end to end: a hostile sweep folder resumed by someone else; an Optuna search


@pytest.mark.slow
def test_a_hostile_sweep_folder_resumes_from_data_and_runs_nothing_it_names(tiny_env, tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    conf = tmp_path / "conf"
    (conf / "experiment").mkdir(parents=True)
    (conf / "experiment" / "two.yaml").write_text(
        "# @package _global_\nhydra:\n  mode: MULTIRUN\n  sweeper:\n    params:\n      trainer.seed: 0,1\n"
    )
    sweep = tmp_path / "sweep"
    p = ics(["sweep", str(conf / "experiment" / "two.yaml"), *FAST, f"hydra.sweep.dir={sweep}"], tiny_env, cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir() and d.name[0].isdigit())
    original = json.loads((jobs[1] / names.SUMMARY).read_text())["config"]
    # the attacker: every source of config the old resume composed from carries a payload
    pwned = tmp_path / "PWNED"
    attacker = tmp_path / "attacker"
    (attacker / "probe").mkdir(parents=True)
    (attacker / "probe" / "evil.yaml").write_text(PAYLOAD.format(pwned=pwned))
    (sweep / ".study" / "probe").mkdir(parents=True, exist_ok=True)
    (sweep / ".study" / "probe" / "evil.yaml").write_text(PAYLOAD.format(pwned=pwned))
    (sweep / ".study" / "experiment" / "two.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /probe: evil\nhydra:\n  mode: MULTIRUN\n"
    )
    (sweep / "sweep.json").write_text(json.dumps({"study": "two", "config_dirs": [str(attacker)], "config_name": None}))
    (sweep / "multirun.yaml").write_text(
        json.dumps(
            {
                "hydra": {
                    "overrides": {
                        "hydra": ["hydra/launcher=basic", "hydra.launcher.setup=['touch " + str(pwned) + "']"],
                        "task": [
                            "experiment=two",
                            f"--config-dir={attacker}",
                            "probe=evil",
                            "data.cache_dir=${oc.env:ICS_TEST_SECRET}",
                        ],
                    }
                }
            }
        )
    )
    kept = (sweep / "multirun.yaml").read_bytes()
    shutil.rmtree(jobs[1])  # a job to rebuild from the plan
    env = {**tiny_env, "ICS_TEST_SECRET": "hunter2"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = ics(["resume", str(sweep)], env, elsewhere)
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "Traceback" not in out, out
    assert "never started" in out and "start    1_" in out  # what resume will run, first
    assert not pwned.exists() and "ICS_PWNED" not in out
    rebuilt = json.loads((jobs[1] / names.SUMMARY).read_text())
    assert rebuilt["status"] in ("completed", "not_learning")
    assert rebuilt["config"] == original  # the planned config, not the planted probe.size=7
    assert "hunter2" not in (jobs[1] / names.SUMMARY).read_text()
    assert not (jobs[1] / ".hydra").exists()  # Hydra writes nothing into a resumed job
    assert (sweep / "multirun.yaml").read_bytes() == kept  # the record for people is left as it was


@pytest.mark.slow
def test_optuna_drives_ics_and_the_report_ranks_its_trials(tiny_env, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "search"
    p = ics(
        [
            "run",
            "-m",
            "hydra/sweeper=optuna",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.n_jobs=1",
            "hydra.sweeper.direction=maximize",
            "hydra.sweeper.sampler.seed=0",
            "optim.lr=tag(log,interval(0.01,3))",
            "data.val_size=100",
            *FAST,
            f"hydra.sweep.dir={sweep}",
        ],
        tiny_env,
        tmp_path,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "Traceback" not in out and "Failed experiment" not in out, out
    assert "3/3 done" in out and "4/3" not in out
    trials = sorted(d for d in sweep.iterdir() if d.is_dir() and d.name[0].isdigit())
    assert len(trials) == 3
    vals = [json.loads((d / names.SUMMARY).read_text())["final_val_acc"] for d in trials]
    import yaml

    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(vals))  # what each job returned is what Optuna ranked
    p = ics(["report", str(sweep)], tiny_env, tmp_path)
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "search (optuna, maximize val_acc): best val_acc" in out, out
    assert (sweep / "report" / "search.png").is_file()
    assert "Seed groups" not in out  # trials are not seed groups


@pytest.mark.slow
def test_the_shipped_lr_search_study_runs(tiny_env, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "lr"
    p = ics(
        [
            "sweep",
            "lr_search",
            "model.norm=layer",
            "hydra.sweeper.n_trials=2",
            "data.val_size=100",
            *FAST,
            f"hydra.sweep.dir={sweep}",
        ],
        tiny_env,
        tmp_path,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "Traceback" not in out, out
    assert "search: 2 trials of hydra/sweeper=optuna" in out
    configs = [
        json.loads((d / names.SUMMARY).read_text())["config"]
        for d in sweep.iterdir()
        if d.is_dir() and d.name[0].isdigit()
    ]
    assert len(configs) == 2 and all(c["model"]["norm"] == "layer" and c["data"]["val_size"] == 100 for c in configs)
    assert len({c["optim"]["lr"] for c in configs}) == 2
