"""hydra/launcher=ensemble: the jobs of a sweep that differ only in trainer.seed train as one
vectorised model (ics.train.group), the other jobs one after another as the basic launcher runs them.

A Hydra launcher receives the sweep's job overrides and returns one JobReturn per job, in order
(Hydra's Launcher plugin interface). This one composes each job's config (load_sweep_config), groups
the jobs whose ics configs are equal but for the seed (at most `members_max` to a group), and:

- runs a job alone through Hydra's run_job with the sweep's task (ics's task: cli/hydra_app.task),
  exactly as the basic launcher would: a group of one, a config that cannot join a group
  (ics.train.group.group_refusal), a job whose config does not compose, a task that is not ics's;
- for a group, lets run_job set up each member's job (its folder, .hydra/ files, Hydra's job
  config) with a task that only notes where the job lives, then trains the members together, and
  gives each JobReturn its member's objective (what the task would have returned). A member that
  could not join when the group started (already finished, trained by another process, a checkpoint
  that does not fit) is then run alone by the task, which says why in its usual words.

A signal stops the group after the same step for every member (checkpoints and records written) and
writes the sweep's stop file, so the jobs after it do not start; `ics resume` regroups the stopped
members (by config and checkpoint step) and continues them bit-identically.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from omegaconf import DictConfig, OmegaConf, open_dict

from ics.config import Config, ConfigError, from_dict

TARGET = "hydra_plugins.ics.ensemble_launcher.EnsembleLauncher"  # cli/plugins/ensemble_launcher.py
OPTION = "ensemble"
RESUME_CANDIDATE = "resumed"  # the candidate key of every job `ics resume` launches
MEMBERS_MAX = 16  # the default: past ~16 members a CPU step gains little more (docs/benchmark.md)


@dataclass
class EnsembleLauncherConf:
    _target_: str = TARGET
    members_max: int = MEMBERS_MAX  # at most this many seeds train as one model; more make more groups
    # group the configs without a hand-batched step (CNNs, normalisers other than BN) on a CPU too:
    # their vmap step measured slower there than one job at a time (on a GPU they group anyway)
    vmap: bool = False


def register(cs) -> None:
    """Store hydra/launcher=ensemble and make its class known to Hydra (idempotent)."""
    from ics_cli.hydra_compat import register_launcher

    cs.store(group="hydra/launcher", name=OPTION, node=EnsembleLauncherConf, provider="ics")
    from hydra_plugins.ics.ensemble_launcher import EnsembleLauncher

    register_launcher(TARGET, EnsembleLauncher)


def check_members_max(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"hydra.launcher.members_max={value} is invalid: allowed: an integer >= 1")
    return value


# --- which jobs train together -------------------------------------------------------------------------
@dataclass
class Member:
    """What grouping needs of one job: its config (None: it does not compose, the task will say
    why), the group key (None: it trains alone) and the reason it trains alone."""

    index: int
    config: Optional[Config]
    key: Optional[str]
    alone: Optional[str] = None
    seed: Optional[int] = None  # a group holds each seed once (a repeated seed starts another group)


def member_of(index: int, config: Optional[Config], step: int = 0, vmap: bool = False) -> Member:
    from ics.train.group import group_key, group_refusal

    if config is None:
        return Member(index, None, None)
    why = group_refusal(config, vmap)
    if why is not None:
        return Member(index, config, None, why)
    key = json.dumps([group_key(config), step], sort_keys=True, default=str)
    return Member(index, config, key, seed=config.trainer.seed)


def groups_of(members: Sequence[Member], members_max: int) -> List[List[int]]:
    """The jobs' indices in launch order: each group (members of one key, in job order, each seed
    once, at most members_max) starts where its first job is; a job that trains alone is a group of
    one. Indices are positions in `members`."""
    by_key: Dict[str, List[int]] = {}
    for m in members:
        if m.key is not None:
            by_key.setdefault(m.key, []).append(m.index)
    out, placed = [], set()
    for m in members:
        if m.index in placed:
            continue
        if m.key is None:
            out.append([m.index])
            placed.add(m.index)
            continue
        same: List[int] = []
        seeds = set()
        for i in by_key[m.key]:
            seed = members[i].seed
            if i in placed or len(same) == members_max or (seed is not None and seed in seeds):
                continue
            same.append(i)
            seeds.add(seed)
        out.append(same)
        placed.update(same)
    return out


def note(configs: Sequence[dict], members_max: int, vmap: bool = False) -> str:
    """The pre-run line: how the sweep's jobs will be grouped, and why any train alone."""
    members = []
    for i, c in enumerate(configs):
        try:
            members.append(member_of(i, from_dict(c), vmap=vmap))
        except ConfigError:
            members.append(Member(i, None, None))
    groups = groups_of(members, members_max)
    together = [g for g in groups if len(g) > 1]
    alone = [m for g in groups if len(g) == 1 for m in (members[g[0]],)]
    sizes = sorted(Counter(len(g) for g in together).items(), key=lambda kv: -kv[0])
    shapes = ", ".join(f"{n} {'group' if n == 1 else 'groups'} of {size} seeds" for size, n in sizes) or "no group"
    line = f"ensemble: {sum(map(len, together))} of {len(configs)} jobs train as {shapes} (at most {members_max} each)"
    keyed = Counter(m.key for m in members if m.key is not None)

    def why(m: Member) -> str:
        if m.alone:
            return m.alone
        if m.key is not None and keyed[m.key] > 1:
            return f"left over by hydra.launcher.members_max={members_max} or a repeated seed"
        return "no other job differs from it only in trainer.seed"

    if alone:
        reasons = sorted({why(m) for m in alone})
        line += f"; {len(alone)} one by one: {'; '.join(reasons)}"
    return line


# --- the launcher ----------------------------------------------------------------------------------------
@dataclass
class Job:
    index: int  # Hydra's job number
    overrides: List[str]
    config: Optional[DictConfig]  # the job's composed config, hydra node included (when its turn comes)
    member: Member = field(default_factory=lambda: Member(0, None, None))
    where: Dict[str, Any] = field(default_factory=dict)  # noted in its run_job: out_dir, label, ...


class EnsembleLauncherBase:
    """The launcher's logic; cli/plugins/ensemble_launcher.py makes it a Hydra Launcher."""

    def __init__(self, members_max: int = MEMBERS_MAX, vmap: bool = False) -> None:
        self.members_max = check_members_max(members_max)
        self.vmap = bool(vmap)
        self.config: Optional[DictConfig] = None
        self.hydra_context: Any = None
        self.task_function: Any = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
        from hydra.core.utils import configure_log, setup_globals

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = [Job(initial_job_idx + n, list(o), None) for n, o in enumerate(job_overrides)]  # type: ignore[arg-type]
        ours = _is_ics_task(self.task_function)
        # candidates first, from the overrides alone (no composing: the first group starts at once);
        # each candidate is composed when its turn comes, and splits where the configs differ
        quick = [Member(n, None, _quick_key(j.overrides) if ours else None) for n, j in enumerate(jobs)]
        returns: Dict[int, Any] = {}
        resumed = any(m.key == RESUME_CANDIDATE for m in quick)  # composed all at once, then split
        for candidate in groups_of(quick, len(jobs) if resumed else self.members_max):
            batch = [jobs[i] for i in candidate]
            for job in batch:  # as the basic launcher composes a job
                job.config = self.hydra_context.config_loader.load_sweep_config(self.config, job.overrides)
                with open_dict(job.config):
                    job.config.hydra.job.id = job.index
                    job.config.hydra.job.num = job.index
                job.member = _member(job, len(batch) > 1, self.vmap)
            for group in groups_of(
                [dataclasses.replace(j.member, index=n) for n, j in enumerate(batch)], self.members_max
            ):
                if len(group) == 1:
                    returns[batch[group[0]].index] = self._alone(batch[group[0]])
                else:
                    returns.update(self._together([batch[i] for i in group]))
                configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [returns[j.index] for j in jobs]

    # --- one job, as the basic launcher runs it --------------------------------------------------------
    def _run_job(self, job: Job, task):
        from hydra.core.utils import run_job

        assert job.config is not None  # (composed when its candidate group's turn came)
        return run_job(
            hydra_context=self.hydra_context,
            task_function=task,
            config=job.config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )

    def _alone(self, job: Job):
        return self._run_job(job, self.task_function)

    # --- a group -----------------------------------------------------------------------------------------
    def _together(self, batch: List[Job]) -> Dict[int, Any]:
        from ics_cli.hydra_app import member_setup

        rets = {}
        for job in batch:  # each member's job folder and Hydra job config, as run_job makes them
            rets[job.index] = self._run_job(job, lambda cfg, job=job: job.where.update(member_setup(cfg)))
        from hydra.core.utils import JobStatus

        for job in batch:  # a setup that failed, or a job that must say what is wrong: the task, alone
            if job.where.get("alone") or rets[job.index].status == JobStatus.FAILED:
                job.where["train"] = False
                rets[job.index] = self._alone(job)
        ready = [j for j in batch if j.where.get("train")]
        if len(ready) == 1:  # the others left: no group to train with
            rets[ready[0].index] = self._alone(ready[0])
        elif ready:
            from ics_cli.hydra_app import train_members

            values, left_out = train_members([j.member.config for j in ready], [j.where for j in ready])
            for job, value in zip(ready, values):
                rets[job.index].return_value = value
            for i in left_out:  # could not join: the task runs it alone and says why
                rets[ready[i].index] = self._alone(ready[i])
        return rets


# ics's task: the CLI's @hydra.main function (cli/hydra_entry.py), or the task it calls
ICS_TASKS = ("ics_cli.hydra_entry.hydra_main", "ics_cli.hydra_app.task")


def _is_ics_task(task) -> bool:
    return f"{getattr(task, '__module__', '')}.{getattr(task, '__name__', '')}" in ICS_TASKS


def _quick_key(overrides: Sequence[str]) -> Optional[str]:
    """What candidate members share before composing: the job's overrides but its seed. A job that
    `ics resume` continues is named by its folder alone (+ics_resume=<name>): every such job is one
    candidate (RESUME_CANDIDATE), and their folders' configs and checkpoint steps split it."""
    from ics_cli.hydra_app import RESUME_KEY

    rest = sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "trainer.seed")
    if any(o.split("=", 1)[0].lstrip("+") == RESUME_KEY for o in overrides):
        return RESUME_CANDIDATE  # every resumed job is a candidate of one group; the folders' configs split it
    return json.dumps(rest)


def _member(job: Job, grouping: bool, vmap: bool = False) -> Member:
    """A job's grouping: its ics config and, for a job `ics resume` continues, its checkpoint step
    (members stopped together are at one step). A config that does not compose trains alone (the
    task reports it)."""
    from ics_cli.hydra_app import RESUME_KEY, resumed_job

    from ics.train import checkpoint as ckpt

    cfg = job.config
    if not grouping or cfg is None:
        return Member(0, None, None)
    try:
        if RESUME_KEY in cfg:
            sweep_dir = Path(str(cfg.hydra.sweep.dir))
            out_dir = sweep_dir / str(OmegaConf.to_container(cfg)[RESUME_KEY])  # type: ignore[index]
            config, _ = resumed_job(out_dir, sweep_dir)
            path = ckpt.path_of(out_dir)
            return member_of(0, config, ckpt.step_of(path) if path.is_file() else 0, vmap)
        return member_of(0, from_dict(cfg), vmap=vmap)  # type: ignore[arg-type]  # (a DictConfig; its hydra node is left out)
    except (ConfigError, OSError, ValueError, KeyError):  # the task says what is wrong when it runs the job
        return Member(0, None, None)


def members_line(nums: Sequence[int]) -> str:
    """'jobs 0-4' or 'jobs 0, 2, 5': the members of a group in one line."""
    nums = sorted(nums)
    if len(nums) > 2 and nums == list(range(nums[0], nums[-1] + 1)):
        return f"jobs {nums[0]}-{nums[-1]}"
    return "jobs " + ", ".join(map(str, nums)) if len(nums) != 1 else f"job {nums[0]}"


__all__: Tuple[str, ...] = ("EnsembleLauncherBase", "EnsembleLauncherConf", "register", "note", "groups_of")
