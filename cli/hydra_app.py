"""The Hydra edge: the config folder, ics's dataclasses as its schema, and the task.

Nothing here decides what a run does; it turns Hydra's composed config into an `ics.config.Config`
and calls `ics.train.train_and_evaluate` in Hydra's job directory. Hydra composes from the top-level
configs/ folder (installed as the package ics.configs: pkg://ics.configs), one YAML per option; the
dataclasses of ics/config/schema.py are the schema it composes onto (`ics_schema`, and
`schema/<group>/<kind>` for the kinds of model, data and optim, which their option files extend), and the studies
of experiments/ are the `experiment` group (in the ConfigStore, so that a user's study of the same
name, found on the search path first, takes precedence).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path
from typing import List, Optional, Tuple

from ics_cli import ensemble, hydra_compat, slurm
from ics_cli.rundirs import remove_untrained
from omegaconf import DictConfig, OmegaConf

from ics.config import KINDS, Config, ConfigError, from_dict, to_dict

RESUME_KEY = "ics_resume"  # set by `ics resume` (cli/resume.py): the job folder to continue
CONFIG_PATH = "pkg://ics.configs"  # the top-level configs/ folder, installed with the package
CONFIG_NAME = "config"

# paths and machine settings make poor run names
NAME_EXCLUDE_KEYS = [
    "data.root",
    "data.image_folder",
    "data.cache_dir",
    "trainer.device",
    "trainer.threads",
    "trainer.progress",
    "experiment",
    "hydra.launcher.n_jobs",
]

HYDRA_HELP = """ics run / ics sweep pass Hydra's flags through:
  -m, --multirun        one job per combination of comma-separated values (model.norm=none,batch)
  --cfg job|hydra|all   print the composed config and exit (ics config prints the job config)
  --resolve, --package  with --cfg: resolve interpolations / print one package
  --info                Hydra's view of the config search path and defaults
Config groups (group=option):
$APP_CONFIG_GROUPS
Hydra's groups (hydra/launcher=joblib | submitit_local | submitit_slurm ...):
$HYDRA_CONFIG_GROUPS
Shell completion for ics (commands and overrides): ics --install-completion
"""

HYDRA_SETTINGS = {
    # Hydra's own INFO lines ("Launching jobs", the joblib launcher's repr) would fight the live view
    "hydra_logging": {"root": {"level": "WARNING"}},
    "hydra_help": {"template": HYDRA_HELP},
    "job": {
        "name": "ics",
        "chdir": False,
        "config": {"override_dirname": {"kv_sep": "=", "item_sep": ",", "exclude_keys": NAME_EXCLUDE_KEYS}},
    },
    # the CLI replaces these by a unique directory of the same shape (see cli/rundirs.py)
    "run": {"dir": "runs/${now:%Y-%m-%d}/${now:%H-%M-%S}"},
    "sweep": {
        "dir": "multiruns/${now:%Y-%m-%d}/${now:%H-%M-%S}",
        "subdir": "${hydra.job.num}_${hydra.job.override_dirname}",
    },
}


def schema_node() -> DictConfig:
    """`ics_schema`: Config's sections as Hydra's schema. The single-schema sections (trainer, probe,
    the instruments, ...) are typed by their dataclass, so an option file or override with an unknown
    key or a wrong type fails while composing; model, data and optim stay open (their dataclass depends
    on the kind an option names) and are checked by `from_dict` right after."""
    typed = OmegaConf.structured(Config)
    return OmegaConf.create({k: ("???" if k in KINDS else typed[k]) for k in typed.keys()})


def plain_option_base(config_path: str, cfg) -> Optional[str]:
    """The schema a model/data/optim option file with no defaults list extends: the kind its `name`
    says, else its group's default kind (a plain `model/my_mlp.yaml` is an MLP)."""
    group, _, _ = config_path.rpartition("/")
    if group not in KINDS:
        return None
    name = cfg.get("name") if isinstance(cfg, DictConfig) else None
    if not (isinstance(name, str) and name in KINDS[group]):
        default = type(getattr(Config(), group))
        name = next(k for k, cls in KINDS[group].items() if cls is default)
    return f"/schema/{group}/{name}"


# here, not in register(): a joblib worker unpickles the task (by value) and imports this module,
# but never calls register(), and it composes its job's config with these readings
hydra_compat.read_defaults_lists(plain_option_base)
_registered = False


def register() -> None:
    """Fill Hydra's ConfigStore (idempotent)."""
    global _registered
    if _registered:
        return
    from hydra.core.config_store import ConfigStore
    from ics_cli.configdirs import shipped_studies

    cs = ConfigStore.instance()
    cs.store(name="ics_schema", node=schema_node())
    for group, kinds in KINDS.items():  # what configs/model/mlp.yaml extends: `/schema/model/mlp@_here_`
        for name, cls in kinds.items():
            cs.store(group=f"schema/{group}", name=name, node=cls)
    cs.store(name="ics_hydra", node={"hydra": HYDRA_SETTINGS})
    for name, path in shipped_studies().items():
        cs.store(group="experiment", name=name, node=OmegaConf.load(path), package="_global_")
    slurm.register(cs)  # hydra/launcher=slurm (cli/slurm.py)
    ensemble.register(cs)  # hydra/launcher=ensemble (cli/ensemble.py)
    _registered = True


# ----------------------------------------------------------------------------------------------
# the task: one job = one run in Hydra's job directory


def objective_value(summary, config) -> Optional[float]:
    """What a job returns to Hydra's sweeper: its sweep.objective (ics.record.summary.objective_value)."""
    from ics.record.summary import objective_value as value_of

    return value_of(summary, config.sweep.objective, config.trainer.divergence_loss)


def task(cfg: DictConfig) -> Optional[float]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from ics_cli.console import print_run_summary
    from ics_cli.launchers import launcher_of
    from ics_cli.sweeps import STOP_FILE, hparam_keys_of, logs_to_file_only, write_stop_file

    from ics.record import RunBusy, Status, Summary, write_summary
    from ics.record.files import whole
    from ics.train import AlreadyFinished, RunInterrupted, train_and_evaluate
    from ics.train.progress import LIVE_ENV
    from ics.train.stopping import GracefulStop, RunDiskFull, SignalStop, signal_name
    from ics.train.threads import available_cores

    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    overrides = list(hc.overrides.task)
    sweep = hc.mode == RunMode.MULTIRUN
    job = f"job {hc.job.num}" if sweep else "run"
    quiet = os.environ.get(LIVE_ENV) == "1"  # the CLI draws a live view of the sweep itself
    say = (lambda text: None) if quiet else (lambda text: print(f"{job}: {text}", flush=True))
    if quiet:
        logs_to_file_only(out_dir)
    # what `ics resume` takes, absolute: the hint is copied into another shell, often elsewhere
    target = (Path(hc.sweep.dir) if sweep else out_dir).absolute()

    def stopped(signum: int, how: str) -> None:
        """How an interrupted job ends: "stop" (the next jobs run in this process: the sweep's stop
        file keeps them from starting), "return" (a joblib worker) or "exit" (128 + signal)."""
        if how == "stop":
            write_stop_file(Path(hc.sweep.dir), signum)
            return
        if how == "return":
            return
        raise SystemExit(128 + signum)

    def before_training(signum: int) -> None:
        """A signal before training started (or resumed): an untrained job folder is removed, a run
        that has a checkpoint or record is left as it was; the line says which."""
        with whole():  # a second signal waits for the folder to be removed and the line printed
            remove_untrained(out_dir, Path(hc.runtime.cwd))
            name = signal_name(signum)
            if not out_dir.exists():
                msg = f"{job} interrupted by {name} before training started; nothing was kept"
            elif (out_dir / "checkpoint.pt").is_file():
                msg = (
                    f"{job} interrupted by {name} before training resumed; {out_dir} is as it was. "
                    f"Resume with: ics resume {target}"
                )
            else:
                msg = f"{job} interrupted by {name} before training started; {out_dir} is as it was"
            print(msg, file=sys.stderr, flush=True)
        stopped(signum, launcher_of(hc.launcher).on_interrupt if sweep else "exit")

    # one signal scope from the first line of the job to its last byte (ics.train.stopping)
    with GracefulStop() as scope:
        code = 0
        try:
            try:
                if sweep and (Path(hc.sweep.dir) / STOP_FILE).exists():  # the sweep was stopped before this job began
                    remove_untrained(out_dir, Path(hc.runtime.cwd))
                    return None
                config = None
                try:
                    if RESUME_KEY in cfg:  # `ics resume`: the job's config is data in its folder or the plan
                        config, overrides = resumed_job(out_dir, Path(hc.sweep.dir))
                    else:
                        config = from_dict(cfg)
                    if not sweep:
                        print_start(config, out_dir)
                    spec = hparam_keys_of(Path(hc.sweep.dir)) if sweep else None
                    summary = train_and_evaluate(
                        config,
                        out_dir,
                        overrides,
                        console=None,
                        say=say,
                        label=f"{job} {out_dir.name if RESUME_KEY in cfg else hc.job.override_dirname}"
                        if sweep
                        else "",
                        hparam_keys=spec[0] if spec else None,
                        hparam_domains=spec[1] if spec else None,
                        max_threads=max(1, available_cores() // launcher_of(hc.launcher).local_jobs(hc.launcher)),
                    )
                except AlreadyFinished as e:
                    line = f"{job}: {out_dir} already {e.summary.status} at step {e.summary.steps}; left as it is"
                    if not quiet:
                        print(line)
                    elif not sys.stdout.isatty():  # the sweep's log (no live view to disturb): say it, stamped
                        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)
                    return None
                except RunBusy as e:
                    _say(f"{job}: {e}; not started")
                    if not sweep:
                        raise SystemExit(2) from None
                    return None
                except RunInterrupted as e:
                    if not e.started:
                        before_training(e.signum)
                        return None
                    if (out_dir / "checkpoint.pt").is_file():
                        print(
                            f"{job} interrupted by {e}: checkpoint and record written. Resume with: ics resume "
                            f"{target}",
                            file=sys.stderr,
                            flush=True,
                        )
                    else:  # checkpoints off, or stopped at once before the first one
                        print(
                            f"{job} interrupted by {e}: record written; there is no checkpoint to resume from",
                            file=sys.stderr,
                            flush=True,
                        )
                    # "stop": jobs run one after another in this process, the next ones must not start,
                    # and the CLI ends the sweep with its table and 128 + signal; "return": a joblib
                    # worker (an exception would make joblib kill the other workers mid-checkpoint)
                    stopped(e.signum, launcher_of(hc.launcher).on_interrupt if sweep else "exit")
                    return None
                except KeyboardInterrupt:  # (no handlers outside the main thread) before training started
                    remove_untrained(out_dir, Path(hc.runtime.cwd))
                    print(f"{job} interrupted before training started; nothing was kept", file=sys.stderr)
                    raise SystemExit(130) from None
                except Exception as e:  # noqa: BLE001 - a failure is recorded; in a sweep the other jobs go on
                    if not sweep and os.environ.get("HYDRA_FULL_ERROR") == "1":
                        raise
                    line = str(e) if isinstance(e, RunDiskFull) else one_line(e)  # (RunDiskFull: one line already)
                    started = (out_dir / "summary.json").is_file()
                    if not started and not sweep:
                        remove_untrained(out_dir, Path(hc.runtime.cwd))
                    elif not started and not (RESUME_KEY in cfg and config is None):
                        conf = to_dict(config) if config is not None else OmegaConf.to_container(cfg, resolve=False)
                        conf = {k: v for k, v in conf.items() if k != "hydra"}
                        try:
                            write_summary(
                                out_dir,
                                Summary(
                                    status=Status.FAILED,
                                    error=line,
                                    traceback=traceback.format_exc(),
                                    overrides=overrides,
                                    config=conf,
                                ),
                            )
                        except OSError:
                            pass  # best effort (a full disk): the job then reads as killed
                    if not sweep:
                        _say(f"error: {line}")
                        raise SystemExit(2 if isinstance(e, ConfigError) else 1) from None
                    if not quiet:
                        print(f"{job} failed: {line}")
                    return None
                if not sweep:
                    print_run_summary(summary, out_dir)
                return objective_value(summary, config)
            except SignalStop as e:  # a signal before train_and_evaluate took over (or while reporting)
                before_training(e.signum)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
            raise
        finally:
            if not sweep:
                scope.linger(code)  # a signal while the process ends keeps this exit code
            elif scope.requested and not (Path(hc.sweep.dir) / STOP_FILE).exists():
                # asked to stop while the job was finishing (its files were complete, so it completed):
                # the jobs after it must not start
                print(
                    f"{job}: {signal_name(scope.signum)} while it was finishing: it completed; the sweep stops "
                    "after it",
                    file=sys.stderr,
                    flush=True,
                )
                stopped(scope.signum, launcher_of(hc.launcher).on_interrupt)
    return None  # reached only when a signal ended the job before its result


# ----------------------------------------------------------------------------------------------
# the members of a group (hydra/launcher=ensemble, cli/ensemble.py): the task's two halves


def member_setup(cfg: DictConfig) -> dict:
    """The task of a group member's run_job: where the job lives and what it is called (its folder
    and .hydra/ files are made by run_job itself); train: False when the sweep was stopped before it,
    or (alone: True) when its job must run alone for the task to say what is wrong."""
    from hydra.core.hydra_config import HydraConfig
    from ics_cli.sweeps import STOP_FILE, logs_to_file_only

    from ics.train.progress import LIVE_ENV

    hc = HydraConfig.get()
    out_dir, sweep_dir, cwd = Path(hc.runtime.output_dir), Path(hc.sweep.dir), Path(hc.runtime.cwd)
    if (sweep_dir / STOP_FILE).exists():
        remove_untrained(out_dir, cwd)
        return {"train": False}
    quiet = os.environ.get(LIVE_ENV) == "1"
    if quiet:
        logs_to_file_only(out_dir)
    resumed = RESUME_KEY in cfg
    try:
        overrides = resumed_job(out_dir, sweep_dir)[1] if resumed else list(hc.overrides.task)
    except ConfigError:  # (changed since the launcher read it) the task, run alone, says what is wrong
        return {"train": False, "alone": True}
    return {
        "train": True,
        "out_dir": out_dir,
        "sweep_dir": sweep_dir,
        "cwd": cwd,
        "num": int(hc.job.num),
        "overrides": overrides,
        "label": f"job {hc.job.num} {out_dir.name if resumed else hc.job.override_dirname}",
        "quiet": quiet,
    }


def train_members(configs: List[Config], wheres: List[dict]) -> Tuple[List[Optional[float]], List[int]]:
    """Train a group's members (ics.train.group) in the folders member_setup noted. Returns each
    member's objective (what the task returns to Hydra; None for a job that did not complete) and
    the members that could not join the group (the launcher runs each alone: the task says why)."""
    from ics_cli.ensemble import members_line
    from ics_cli.sweeps import STOP_FILE, hparam_keys_of, write_stop_file

    from ics.record import Summary
    from ics.train.group import GroupInterrupted, train_group
    from ics.train.stopping import GracefulStop, SignalStop, signal_name
    from ics.train.threads import available_cores

    sweep_dir, quiet = wheres[0]["sweep_dir"], wheres[0]["quiet"]
    jobs = members_line([w["num"] for w in wheres])
    values: List[Optional[float]] = [None] * len(configs)
    target = sweep_dir.absolute()

    def untrained(signum: int) -> None:
        for w in wheres:
            remove_untrained(w["out_dir"], w["cwd"])
        print(f"{jobs} interrupted by {signal_name(signum)} before training started", file=sys.stderr, flush=True)
        write_stop_file(sweep_dir, signum)

    if (sweep_dir / STOP_FILE).exists():  # stopped while the members' folders were being set up
        for w in wheres:
            remove_untrained(w["out_dir"], w["cwd"])
        return values, []
    spec = hparam_keys_of(sweep_dir)
    with GracefulStop() as scope:
        try:
            outcomes = train_group(
                configs,
                [w["out_dir"] for w in wheres],
                [w["overrides"] for w in wheres],
                [w["label"] for w in wheres],
                max_threads=available_cores(),  # one process trains the group: all cores
                say=(lambda text: None) if quiet else (lambda text: print(f"{jobs}: {text}", flush=True)),
                hparam_keys=spec[0] if spec else None,
                hparam_domains=spec[1] if spec else None,
            )
        except GroupInterrupted as e:
            kept = [
                w for w, r in zip(wheres, e.records) if r is not None and (w["out_dir"] / "checkpoint.pt").is_file()
            ]
            what = (
                "checkpoints and records written" if kept else "records written; there is no checkpoint to resume from"
            )
            resume = f". Resume with: ics resume {target}" if kept else ""
            print(f"{jobs} interrupted by {e}: {what}{resume}", file=sys.stderr, flush=True)
            write_stop_file(sweep_dir, e.signum)
            return values, []
        except SignalStop as e:  # before the members' training started (or resumed)
            untrained(e.signum)
            return values, []
        except Exception as e:  # noqa: BLE001 - the group failed: its members run one by one, each saying why
            print(f"{jobs}: the group stopped ({one_line(e)}); they run one by one", file=sys.stderr, flush=True)
            return values, list(range(len(configs)))
        left_out = []
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, Summary):
                values[i] = objective_value(outcome, configs[i])
            else:
                left_out.append(i)
        if scope.requested and not (sweep_dir / STOP_FILE).exists():
            print(
                f"{jobs}: {signal_name(scope.signum)} while they were finishing: they completed; the sweep stops "
                "after them",
                file=sys.stderr,
                flush=True,
            )
            write_stop_file(sweep_dir, scope.signum)
    return values, left_out


def resumed_job(out_dir: Path, sweep_dir: Path):
    """(Config, overrides) of a job `ics resume` launched, read from data only (cli/resume.py); the
    folder must be a plain folder directly in the sweep."""
    from ics_cli.resume import job_source

    from ics.record.jobs import job_number
    from ics.record.plan import PlanError, read_plan

    if out_dir.parent.resolve() != sweep_dir.resolve() or out_dir.is_symlink():
        raise ConfigError(f"{out_dir} is not a plain job folder of {sweep_dir}; not resumed")
    try:
        plan = read_plan(sweep_dir)
    except PlanError as e:
        raise ConfigError(str(e)) from None
    num = job_number(out_dir, sweep_dir)
    planned = plan.job(num) if plan is not None and num is not None else None
    config, overrides, _, _ = job_source(out_dir, planned)
    return config, overrides


def print_start(cfg: Config, out_dir: Path) -> None:
    """The key lines of the resolved config, before anything slow happens."""
    from ics.instruments import instrument_configs

    m, d, o, t = cfg.model, cfg.data, cfg.optim, cfg.trainer
    shape = getattr(m, "widths", None)
    arch = (
        f"{m.name} "
        + (f"channels {list(m.channels)} + " if hasattr(m, "channels") else "")
        + (
            f"widths {list(shape)}"
            if shape is not None
            else f"depth {getattr(m, 'depth', '?')} x {getattr(m, 'width', '?')}"
        )
    )
    extras = [f"noise={m.noise}"] if getattr(m, "noise", "none") != "none" else []
    lines = [
        f"run -> {out_dir}",
        f"  model   {arch}, {m.activation}, norm={m.norm}, init={m.init}"
        + (", " + ", ".join(extras) if extras else ""),
        f"  data    {d.name}"
        + (" (binarised)" if getattr(d, "binarize", False) else "")
        + (f", {d.val_size} held out for validation" if d.val_size else ""),
        f"  optim   {o.name} lr={o.lr:g}" + (f" momentum={o.momentum:g}" if getattr(o, "momentum", 0) else ""),
        f"  train   {t.steps:,} steps x batch {t.batch_size}, seed {t.seed}, eval every {t.eval_every:,}, "
        f"checkpoint every {t.checkpoint_every:,}"
        if t.checkpoint_every
        else f"  train   {t.steps:,} steps x batch {t.batch_size}, seed {t.seed}, eval every {t.eval_every:,}, no checkpoints",
        f"  measure {', '.join(instrument_configs(cfg)) or 'nothing'}",
    ]
    from ics_cli.console import say

    for line in lines:
        say(line)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def one_line(e: BaseException) -> str:
    text = str(e).strip()
    msg = text.splitlines()[0] if text else type(e).__name__
    return msg if isinstance(e, ConfigError) else f"{type(e).__name__}: {msg}"
