"""Every corrupt or hostile file of a run or sweep folder is one line, never a crash (issue 15,
item 4): for each (file, corruption) pair, `ics report` of the sweep lists the damaged job (as
`unreadable (<reason>)` when its record is the damaged file, else with the file named in a note)
and goes on with the other job; a damaged checkpoint is a one-line ConfigError naming the file,
never a suggestion to unpickle it, and a damaged record does not stop a resume from the intact
checkpoint. The sweep is two tiny jobs trained in-process on generated data."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import datagen
import numpy as np
import pytest
import torch

from ics.analysis import make_report
from ics.config import Config, ConfigError, MLPConfig, MNISTConfig, ProbeConfig, SGDConfig, TrainerConfig
from ics.data import DataBundle
from ics.record import names, read_job
from ics.train import build_trainer

STEPS = 20


def tiny_data(n=120, classes=4) -> DataBundle:
    return datagen.tiny_bundle(n, classes)


def cfg(lr: float) -> Config:
    return Config(
        model=MLPConfig(widths=[8], norm="batch"),
        data=MNISTConfig(),
        optim=SGDConfig(lr=lr),
        trainer=TrainerConfig(
            steps=STEPS,
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


@pytest.fixture(scope="module")
def clean_sweep(tmp_path_factory) -> Path:
    """<sweep>/{0,1}_optim.lr=.../ with .hydra/, summary.json, progress.json, npz series, a
    checkpoint, and the sweep's jobs.json, as `ics run -m` leaves them."""
    import yaml

    from ics.config import to_dict

    root = tmp_path_factory.mktemp("sweep")
    plan = []
    for num, lr in enumerate((0.1, 0.5)):
        overrides = [f"optim.lr={lr}"]
        d = root / f"{num}_optim.lr={lr}"
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg(lr))))
        (d / "progress.json").write_text(json.dumps({"step": STEPS, "steps": STEPS, "phase": "finishing"}))
        build_trainer(cfg(lr), d, data=tiny_data(), overrides=overrides).fit()
        plan.append(overrides)
    (root / names.PLANNED_JOBS).write_text(json.dumps(plan))
    return root


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


BINARY = bytes(range(256)) * 4  # not UTF-8, not JSON, not YAML, not a zip
SUMMARY_JUNK = {  # a record that parses as JSON but whose fields have the wrong types
    "schema_version": "x",
    "overrides": 5,
    "config": "x",
    "final_test_acc": "high",
    "steps": "many",
    "status": ["completed"],
    "instruments": {"probe": {"h1.pre_act": {"w1_ref": "far"}}},
    "steps_to_target": {"0.9": "soon"},
    "config_nested": {"model": {"widths": [{"a": 1}]}},
    "instruments_name": {"../../etc/passwd": {}},
}


def corrupt(f: Path, how: str, tmp: Path) -> None:
    """Damage file f in place (how: empty | binary | truncated | a wrong-typed variant)."""
    data = f.read_bytes() if f.exists() else b""
    if how == "empty":
        f.write_bytes(b"")
    elif how == "binary":
        f.write_bytes(BINARY)
    elif how == "truncated":
        f.write_bytes(data[: len(data) // 2])
    elif how == "latin1":
        f.write_bytes(data.replace(b"optim", "optim\xe9".encode("latin-1"), 1))
    elif how.startswith("junk:"):  # summary.json with one field of the wrong type
        key = how.split(":", 1)[1]
        rec = json.loads(data)
        if key == "config_nested":
            rec["config"] = SUMMARY_JUNK[key]
        elif key == "instruments_name":
            rec["instruments"] = SUMMARY_JUNK[key]
        else:
            rec[key] = SUMMARY_JUNK[key]
        f.write_text(json.dumps(rec))
    elif how == "list":
        f.write_text("[1, 2, 3]\n" if f.suffix != ".yaml" else "- a\n- b: [1]\n")
    elif how == "mapping":
        f.write_text("model: {norm: batch}\n")
    elif how == "aliases":  # a few nested aliases: billions of values in whatever walks them
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
        f.write_text("\n".join(lines) + "\n")
    elif how == "numbers":  # jobs.json: a list, but not of override lists
        f.write_text("[5, 6]")
    elif how == "strings":  # npz of the right names but text, not numbers
        names_ = ["eval_step", "test_loss", "test_acc"] if f.name == names.METRICS else ["steps", "meta"]
        f.write_bytes(npz_bytes(**{k: np.array(["a", "b"]) for k in names_}))
    elif how == "lengths":  # npz of numbers whose lengths disagree
        f.write_bytes(npz_bytes(eval_step=np.arange(5), test_loss=np.zeros(2), test_acc=np.zeros(3)))
    elif how == "typed":  # checkpoint.pt: an ics checkpoint whose step is not a number
        state = torch.load(f, weights_only=True)
        state["step"] = "x"
        torch.save(state, f)
    elif how == "pickle":  # checkpoint.pt carrying a callable (harmless: it would create a file)
        torch.save({"format": 1, "payload": Evil(str(tmp / "pwned"))}, f)
    else:
        raise ValueError(how)


JOB = "1_optim.lr=0.5"
SUMMARY_CASES = ["empty", "binary", "truncated", "latin1"] + [f"junk:{k}" for k in SUMMARY_JUNK]
CASES = (
    [(names.SUMMARY, c) for c in SUMMARY_CASES]
    + [
        (f".hydra/{n}", c)
        for n in ("config.yaml", "overrides.yaml")
        for c in ("empty", "binary", "truncated", "latin1", "aliases", "list" if n == "config.yaml" else "mapping")
    ]
    + [("progress.json", c) for c in ("empty", "binary", "truncated", "list")]
    + [(names.METRICS, c) for c in ("empty", "binary", "truncated", "strings", "lengths")]
    + [("probes.npz", c) for c in ("empty", "binary", "truncated", "strings")]
    + [(names.CHECKPOINT, c) for c in ("empty", "binary", "truncated", "typed", "pickle")]
    + [(names.PLANNED_JOBS, c) for c in ("empty", "binary", "truncated", "numbers", "latin1")]
)


# the files whose damage takes the most distinct paths: the record (the job becomes unreadable, a resume
# still works) and the checkpoint (every loader must refuse it, nothing unpickled)
FAST_FILES = {names.SUMMARY, names.CHECKPOINT}


def _tiered(cases):
    """Each case is a whole report (figures included: seconds each): the first damage of each file of
    FAST_FILES is in the fast tier; every other case is slow."""
    seen = set()
    for name, how in cases:
        marks = [pytest.mark.slow] if name in seen or name not in FAST_FILES else []
        seen.add(name)
        yield pytest.param(name, how, marks=marks, id=f"{name}-{how}")


# files no figure reads (the report does not need them, or reads only job names from them): their cases
# leave the figures out, which are most of a report's time; the other files' cases draw every figure
NOT_IN_FIGURES = {"progress.json", names.CHECKPOINT, names.PLANNED_JOBS}


@pytest.mark.parametrize("name, how", list(_tiered(CASES)))
def test_a_damaged_file_is_one_line_and_the_report_goes_on(clean_sweep, tmp_path, monkeypatch, name, how):
    if name in NOT_IN_FIGURES:
        import importlib

        monkeypatch.setattr(importlib.import_module("ics.analysis.report"), "make_figures", lambda *a, **k: {})
    sweep = tmp_path / "sweep"
    shutil.copytree(clean_sweep, sweep)
    job = sweep / JOB
    target = sweep / name if name == names.PLANNED_JOBS else job / name
    corrupt(target, how, tmp_path)

    result = make_report(sweep)  # never raises: the damaged job is listed, the other is reported
    rows = {r["job"]: r for r in result["runs"]}
    assert rows[0]["status"] == "completed" and rows[0]["final_test_acc"] is not None
    md = result["report_md"].read_text()
    shown = name.split("/")[-1]
    if name == names.SUMMARY:
        assert rows[1]["status"] == "unreadable"
        text = rows[1]["status_text"]
        assert text.startswith(f"unreadable ({names.SUMMARY}: ") and "\n" not in text, text
        assert rows[1]["overrides"] == "optim.lr=0.5"  # its own overrides, from its .hydra/ snapshot
    elif name in (names.CHECKPOINT, "progress.json"):
        assert rows[1]["status"] == "completed"  # the report does not need them
    else:
        assert rows[1]["status"] == "completed"
        if not (how == "truncated" and name.endswith(".yaml")):  # half a YAML file may still be valid YAML
            assert shown in md, f"the report does not name the damaged {name}"
    if name == "progress.json":
        from ics.record.jobs import read_progress

        p = read_progress(job)
        assert isinstance(p, dict) and all(not isinstance(v, (list, dict)) for v in p.values())
    if name == names.CHECKPOINT:
        from ics.train import checkpoint as ckpt
        from ics.train.run import run_config

        for load in (ckpt.load, ckpt.step_of, lambda p: run_config(p.parent)):
            with pytest.raises(ConfigError) as e:
                load(target)
            msg = str(e.value)
            assert "\n" not in msg and str(target) in msg and "cannot read checkpoint" in msg, msg
            assert "weights_only=False" not in msg and "can still be loaded" not in msg, msg
        assert not (tmp_path / "pwned").exists()  # nothing was unpickled as code
        assert read_job(job).summary.steps == STEPS  # the record still reads
    if name == names.SUMMARY:
        # a resume is not stopped by the damaged record: the intact checkpoint decides
        from ics.train import train_and_evaluate

        s = train_and_evaluate(cfg(0.5), job, data=tiny_data(), resume="require")
        assert str(s.status) == "completed" and s.steps == STEPS


def test_the_report_lists_an_unreadable_job_in_one_line_on_the_command_line(clean_sweep, tmp_path, tiny_env):
    from clirun import invoke

    sweep = tmp_path / "sweep"
    shutil.copytree(clean_sweep, sweep)
    (sweep / JOB / names.SUMMARY).write_bytes(BINARY)
    (sweep / "0_optim.lr=0.1" / ".hydra" / "config.yaml").write_bytes(BINARY)
    p = invoke(["report", str(sweep)], tmp_path, extra_env={"COLUMNS": "250"})
    assert p.returncode == 0 and "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    assert "unreadable (summary.json: not UTF-8 text" in p.stdout, p.stdout
    assert ".hydra/config.yaml: not UTF-8 text" in p.stdout, p.stdout

    (sweep / JOB / names.CHECKPOINT).write_bytes(b"")
    p = invoke(["resume", str(sweep / JOB)], tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stdout + p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot read checkpoint") and "empty" in err[0], p.stderr
