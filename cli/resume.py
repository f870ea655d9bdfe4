"""`ics resume` of a sweep: every job rebuilt from data, none composed again.

A sweep folder may come from someone else (a shared file system), so nothing in it is trusted: no
config is composed from it (not its study copy, not a config folder or `--config-dir` it names), no
interpolation in it is resolved, no launcher setting in it is applied. What resume takes from the
folder is, per job, a config as plain data — from the job's checkpoint, else its summary.json, else
the sweep's plan.json (jobs that never started) — and at most the *name* of a known launcher, so a
SLURM sweep resumes on SLURM. Launcher settings come from the shipped preset and from the resumer's
own command line.

The jobs are then launched by Hydra as a plain sweep over their folder names (`+ics_resume=<name>,...`):
the task (cli/hydra_app.py) finds each job's config again with `job_source`, in its own process, so
joblib workers and SLURM nodes read the same data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

from ics_cli.errors import UserError

RESUME_KEY = "ics_resume"  # the key the resume sweep varies: a job folder's name
# a folder name that can be passed through Hydra's override grammar quoted, and names one folder:
# no quotes, backslash, `$` (interpolation), path separators or control characters
SAFE_NAME = re.compile(r"^[^./'\"\\$\x00-\x1f][^/'\"\\$\x00-\x1f]{0,254}$")


@dataclass
class Todo:
    name: str  # the job folder, directly under the sweep
    num: Optional[int]
    action: str  # "continue" (from its checkpoint), "restart" (record, no checkpoint: from step 0), "start"
    step: Optional[int] = None  # the checkpoint's step, for "continue"
    note: str = ""  # what else resume says of it (a record that does not read and is written anew)


@dataclass
class ResumePlan:
    finished: List[str] = field(default_factory=list)
    todo: List[Todo] = field(default_factory=list)
    refused: List[Tuple[str, str]] = field(default_factory=list)  # (job folder, why it cannot be resumed)
    launcher: str = "basic"
    launcher_note: Optional[str] = None
    sweeper: Optional[str] = None  # an optimising sweeper's option name (optuna, ...), None for the basic one


def _name_of(num: int, overrides: List[str], varying: List[str]) -> str:
    """The folder of a planned job that never started: its number and what varies, as a sweep names them."""
    from ics_cli.hydra_compat import override_dirname

    keys = {o.lstrip("+~").split("=", 1)[0] for o in overrides}
    text = override_dirname(overrides, keys - set(varying))  # as Hydra names a sweep's job folders
    return f"{num}_{text}" if text and len(text) < 200 else str(num)


def plan_resume(sweep: Path) -> ResumePlan:
    """What resuming `sweep` would do, read from the folder as data. Raises UserError (one line) only
    for the sweep as a whole; a job that cannot be resumed is listed in `refused` with its reason."""
    from ics_cli.launchers import OPTIONS
    from ics_cli.rundirs import planted_link
    from ics_cli.sweeps import sweep_keys

    from ics.config import ConfigError
    from ics.record import Status, read_jobs
    from ics.record.plan import PlanError, read_plan

    try:
        plan = read_plan(sweep)
    except PlanError as e:
        raise UserError(str(e)) from None
    out = ResumePlan()
    if plan is not None and plan.launcher:
        if plan.launcher in OPTIONS:
            out.launcher = plan.launcher
        else:
            out.launcher_note = f"the recorded launcher {plan.launcher} is not one ics knows; basic used"
    if plan is not None and plan.sweeper not in (None, "basic"):
        out.sweeper = plan.sweeper
    seen = set()
    for rec in read_jobs(sweep):
        if rec.dir == sweep:
            continue
        name = rec.dir.name
        if rec.dir.parent != sweep or rec.num is None:
            out.refused.append((str(rec.dir.relative_to(sweep)), "not a job folder of this sweep (<num>_<values>)"))
            continue
        seen.add(rec.num)
        if rec.dir.is_symlink():
            out.refused.append((name, "the job folder is a symbolic link (not followed)"))
            continue
        if not SAFE_NAME.match(name):
            out.refused.append((name, "its name holds characters ics does not pass on (quotes, $, \\)"))
            continue
        if rec.status.finished:
            out.finished.append(name)
            continue
        link = planted_link(rec.dir, depth=2)
        if link is not None:
            out.refused.append(
                (
                    name,
                    f"{link.relative_to(rec.dir)} in it is a symbolic link; ics does not write "
                    "through links: remove it",
                )
            )
            continue
        if rec.status == Status.RUNNING:
            out.refused.append((name, f"it is being trained ({rec.owner}); resume it when that ends"))
            continue
        planned = plan.job(rec.num) if plan is not None else None
        try:
            _, _, action, step = job_source(rec.dir, planned)
        except ConfigError as e:
            out.refused.append((name, str(e)))
            continue
        note = (
            f" (its summary.json does not read: {rec.problem}; written anew)"
            if rec.summary is None and rec.problem and (rec.dir / "summary.json").exists()
            else ""
        )
        out.todo.append(Todo(name, rec.num, action, step, note))
    if plan is not None:
        varying = list(sweep_keys([j.overrides for j in plan.jobs])[0])
        names_now = {t.name for t in out.todo} | set(out.finished) | {n for n, _ in out.refused}
        for job in plan.jobs:
            if job.num in seen:
                continue
            name = _name_of(job.num, job.overrides, varying)
            if name in names_now or not SAFE_NAME.match(name):
                name = str(job.num)
            try:  # checked here, not first in the job (where a refusal would only be a failed job)
                from ics.config import from_dict

                from_dict(job.config)
            except ConfigError as e:
                out.refused.append((name, f"its entry in plan.json: {e}"))
                continue
            out.todo.append(Todo(name, job.num, "start"))
    out.todo.sort(key=lambda t: (t.num if t.num is not None else 1 << 30, t.name))
    return out


def job_source(job_dir: Path, planned=None):
    """(Config, overrides, action, checkpoint step) of a job to resume, from data only: its checkpoint,
    else its summary.json, else its planned entry. ConfigError (one line) when none can be used."""
    from ics.config import ConfigError, from_dict
    from ics.record import RecordError, read_summary
    from ics.train import checkpoint as ckpt

    path = ckpt.path_of(job_dir)
    if path.is_symlink():
        raise ConfigError(f"{path.name} is a symbolic link (not followed); remove {job_dir} to run the job again")
    try:
        record = read_summary(job_dir)
    except FileNotFoundError:
        record = None
    except (RecordError, OSError, ValueError):
        record = None  # an unreadable record: the checkpoint or the plan decides
    overrides = list(record.overrides) if record is not None else (list(planned.overrides) if planned else [])
    if path.exists():
        try:
            state = ckpt.load(path)
        except ConfigError as e:
            raise ConfigError(f"{e}; remove {job_dir} to run the job again from step 0") from None
        config = from_dict(state["config"])
        if planned is not None:  # the checkpoint must be this job's: a file copied from another job is not
            diff = ckpt.config_difference(from_dict(planned.config), state["config"])
            if diff is not None:
                raise ConfigError(
                    f"its checkpoint was written with {diff[0]}={diff[1]}, but the sweep's plan.json gives this "
                    f"job {diff[0]}={diff[2]}; remove {job_dir} to run the job again from step 0"
                )
        return config, overrides, "continue", int(state["step"])
    if record is not None and isinstance(record.config, dict) and record.config:
        return from_dict(record.config), overrides, "restart", None
    if planned is not None:
        return from_dict(planned.config), list(planned.overrides), "start", None
    raise ConfigError(
        "it has no checkpoint, no readable summary.json and no entry in the sweep's plan.json: "
        f"nothing says what it trains; remove {job_dir} (the sweep can be run again for it)"
    )


def quoted(name: str) -> str:
    """A SAFE_NAME as one quoted item of Hydra's override grammar."""
    assert SAFE_NAME.match(name), name
    return "'" + name + "'"


def resume_argv(sweep: Path, plan: ResumePlan, extra: List[str]) -> List[str]:
    """Hydra's command line for the resume: the shipped primary config (never the sweep's), the
    recorded launcher's name unless the command line chooses one, its settings from the command line,
    the basic sweeper over the job folders, and no Hydra output in them (ics writes its own record)."""
    from ics_cli.rundirs import quote

    given = {o.split("=", 1)[0] for o in extra}
    launcher = [] if "hydra/launcher" in given else [f"hydra/launcher={plan.launcher}"]
    names = ",".join(quoted(t.name) for t in plan.todo)
    return [
        "--multirun",
        *launcher,
        *extra,
        "hydra/sweeper=basic",
        "hydra/job_logging=none",
        f"hydra.sweep.dir={quote(sweep)}",
        "hydra.sweep.subdir=${" + RESUME_KEY + "}",
        "hydra.output_subdir=null",
        f"+{RESUME_KEY}={names}",
    ]


def check_extra(extra: List[str]) -> None:
    """On resume, the command line may choose and configure the launcher, nothing else: the jobs'
    configs are what they were."""
    for o in extra:
        key = o.split("=", 1)[0]
        if "=" not in o or not (key == "hydra/launcher" or key.startswith("hydra.launcher.")):
            raise UserError(
                f"{o} cannot be given to ics resume: a sweep resumes with each job's own config; "
                "allowed: hydra/launcher=<name> and hydra.launcher.<setting>=<value>"
            )


def describe(plan: ResumePlan) -> List[str]:
    """What the resume will run, first, in a few lines."""
    lines = []
    cont = [t for t in plan.todo if t.action == "continue"]
    restart = [t for t in plan.todo if t.action == "restart"]
    start = [t for t in plan.todo if t.action == "start"]
    lines.append(
        f"resume: {len(plan.finished)} finished (left as they are), {len(cont)} to continue from their "
        f"checkpoints, {len(restart)} to run again from step 0 (no checkpoint), {len(start)} never started; "
        f"launcher {plan.launcher}"
    )
    for t in cont:
        lines.append(f"  continue {t.name} from step {t.step:,}{t.note}")
    for t in restart:
        lines.append(f"  restart  {t.name} (no checkpoint yet: from step 0){t.note}")
    for t in start:
        lines.append(f"  start    {t.name}{t.note}")
    if plan.sweeper:
        lines.append(
            f"resume: this sweep was driven by the {plan.sweeper} sweeper: resume finishes the trials it "
            "started and asks it for no new ones; to search further, start the search again. The "
            "sweeper's own result file is from when it stopped: ics report ranks every finished trial"
        )
    return lines


# what Hydra or ics writes at a sweep's root on resume: none of it may be a link planted there
WRITTEN = ("multirun.yaml", "plan.json", "jobs.json", "hparams.json", "sweep.json", ".stopped", ".submitit")


def check(path: Path, extra: List[str]) -> None:
    """`ics resume <sweep> [launcher settings]`: every check that refuses the resume before anything
    is written (a path Hydra would read as an interpolation, settings other than the launcher's, a
    link where the resume writes). The sweep's lock (sweep.lock) is checked as it is taken."""
    if "${" in str(path.resolve()):
        raise UserError(
            f"{path} holds '${{' in its path, which Hydra would read as an interpolation; rename the folder"
        )
    check_extra(extra)
    links = [name for name in WRITTEN if (path / name).is_symlink()]
    if links:
        raise UserError(
            f"{path / links[0]} is a symbolic link; ics resume does not write through links (a sweep "
            "folder is data): put the file itself there, or remove it"
        )


def prepare(path: Path, extra: List[str]) -> ResumePlan:
    """The checks, then the plan (read while this process holds the sweep's lock, by the caller)."""
    check(path, extra)
    return plan_resume(path.resolve())


def parallelism(extra: List[str]) -> int:
    """How many jobs the resumed sweep runs at once, for the live view: hydra.launcher.n_jobs, else 1."""
    n_jobs = [o.split("=", 1)[1] for o in extra if o.startswith("hydra.launcher.n_jobs=")]
    return int(n_jobs[-1]) if n_jobs and n_jobs[-1].isdigit() else 1
