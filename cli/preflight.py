"""Check a command line before Hydra creates any directory.

Every job a sweep will launch is expanded exactly as Hydra's sweeper does (cli.hydra_compat), its
config composed (once per combination of group choices; plain values are set on a copy, ~100x
cheaper than a compose) and handed to the library's `check_runnable`: values, device, threads,
data files, probe points. Hydra's multi-line errors become one line.
"""

from __future__ import annotations

import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, cast

from hydra import compose as hydra_compose
from hydra.core.global_hydra import GlobalHydra
from ics_cli import configdirs
from ics_cli import hydra_compat as compat
from ics_cli.errors import UserError
from ics_cli.hydra_app import CONFIG_NAME, CONFIG_PATH, register
from ics_cli.sweepers import sweeper_of
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from ics.config import GROUPS, ConfigError, from_dict, validate

CHOICE_GROUPS = GROUPS + ("experiment",)
MAX_FULL_CHECK = 5_000  # beyond this many jobs, check a subset in which every swept value occurs

_session: Optional[Tuple[Tuple[Path, ...], str]] = None  # (user folders, primary config) of the compose session


def use(dirs: Sequence[Path] = (), config_name: Optional[str] = None) -> None:
    """Compose from configs/ plus these user folders (in order), with this primary config."""
    global _session
    key = (tuple(dirs), config_name or CONFIG_NAME)
    if _session != key or not GlobalHydra.instance().is_initialized():
        register()
        compat.init_compose(CONFIG_PATH, list(dirs))
        _session = key


def _init() -> None:
    if _session is None or not GlobalHydra.instance().is_initialized():
        use()


def group_options(group: Optional[str] = None):
    """{group: [options]} for ics's groups, or the options of one group (Hydra's own included)."""
    _init()
    loader = GlobalHydra.instance().config_loader()
    if group is not None:
        return sorted(loader.get_group_options(group))
    return {g: sorted(loader.get_group_options(g)) for g in CHOICE_GROUPS}


def compose(overrides: List[str], hydra_cfg: bool = False) -> DictConfig:
    _init()
    try:
        cfg = hydra_compose(config_name=_session[1], overrides=overrides, return_hydra_config=hydra_cfg)
        if hydra_cfg:
            _resolve_dirs(cfg, overrides)
        return cfg
    except RecursionError:
        raise UserError(
            f"composing {' '.join(overrides) or 'the defaults'} never ends: an option's defaults list "
            "refers back to itself (e.g. model/x.yaml with defaults: [x])"
        ) from None
    except compat.COMPOSE_ERRORS + (OmegaConfBaseException, ValueError) as e:
        choices = [o for o in overrides if _is_choice(o.split("=", 1)[0]) and "," not in o]
        raise UserError(compat.explain(e, overrides, group_options, lambda k: allowed_keys(k, choices))) from None


def _resolve_dirs(cfg: DictConfig, overrides: List[str]) -> None:
    """hydra.run.dir / hydra.sweep.dir given on the command line resolve now, when a bad
    interpolation in them is one line, not a traceback where the CLI first reads them."""
    from omegaconf.errors import InterpolationResolutionError, UnsupportedInterpolationType

    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        if any(o.split("=", 1)[0] == key for o in overrides):
            try:
                OmegaConf.select(cfg, key)
            except (InterpolationResolutionError, UnsupportedInterpolationType) as e:
                raise UserError(unresolvable(e, [overrides])) from None


_listing = False  # allowed_keys composes; a failure there must not ask allowed_keys again


def allowed_keys(key: str, choices: List[str] = ()) -> str:
    """The keys of the section `key` is in, with the options chosen on the command line."""
    global _listing
    parent = key.rpartition(".")[0]
    if _listing:
        return f"see `ics list {parent or 'model'}` for the keys"
    _listing = True
    try:
        base = compose(list(choices))
        node = OmegaConf.select(base, parent) if parent else base
        if not isinstance(node, DictConfig):  # an unknown parent: list the top level
            node, parent = base, ""
        where = f"keys in {parent}" if parent else "top-level keys"
        return f"{where}: {', '.join(str(k) for k in node.keys() if k != 'hydra')}"
    except UserError:
        return "see `ics config` for the keys"
    finally:
        _listing = False


@dataclass
class Plan:
    argv: List[str]  # for Hydra: flags first, then overrides
    mode: str  # run | multirun | show (--cfg, --info, --help, shell completion: nothing is trained)
    hydra: Optional[DictConfig] = None  # the composed hydra node of the first job
    jobs: List[List[str]] = field(default_factory=list)  # every job's overrides, in Hydra's order
    user_dir: bool = False  # hydra.run.dir / hydra.sweep.dir given on the command line
    dirs: List[Path] = field(default_factory=list)  # user config folders, in search order
    config_name: Optional[str] = None  # -cn: a primary config other than configs/config.yaml
    launcher: Optional[object] = None  # its row in cli/launchers.py
    sweeper: Optional[object] = None  # its row in cli/sweepers.py
    configs: List[Dict] = field(default_factory=list)  # every job's config as plain data (a search: none)
    total: Optional[int] = None  # how many jobs the sweep will run (a search: its trial count, if known)
    objective: Optional[Dict[str, str]] = None  # a search's objective: {"metric", "direction"}
    searched: List[str] = field(default_factory=list)  # a search's keys


def preflight(
    args: List[str], data: bool = True, force_multirun: bool = False, extra_dirs: Sequence[Path] = ()
) -> Plan:
    from ics_cli.launchers import launcher_of

    where = configdirs.split(args)
    dirs = list(extra_dirs) + [d for d in where.dirs if d not in extra_dirs]
    args = where.args
    ns = compat.parse_args(args)
    if ns.config_path:
        raise UserError(
            f"-cp/--config-path={ns.config_path} is not used by ics; add a config folder with "
            "--config-dir DIR (or hydra.searchpath, or ICS_CONFIG_PATH)"
        )
    overrides = list(ns.overrides or [])
    flags = [a for a in args if a not in overrides]
    if ns.shell_completion:
        raise UserError(
            "Hydra's -sc/--shell-completion does not apply to ics; install completion for commands "
            "and overrides with `ics --install-completion` (bash, zsh, fish)"
        )
    config_name = ns.config_name
    if config_name and where.config_dir is not None and where.config_dir not in dirs:
        dirs.insert(0, where.config_dir)
    # Hydra itself gets the folders as one hydra.searchpath override (recorded in a sweep), and the -cd
    # folder again as --config-dir, where Hydra looks up a -cn primary config
    hydra_args = ([f"--config-dir={where.config_dir}"] if where.config_dir is not None else []) + flags
    searchpath = configdirs.ConfigDirs(dirs=dirs).searchpath_override()
    if ns.help or ns.hydra_help or ns.info:
        return Plan(hydra_args + searchpath + overrides, "show", dirs=dirs, config_name=config_name)
    use(dirs, config_name)
    for note in configdirs.shadowed(dirs, CHOICE_GROUPS[:-1]):
        print(f"note: {note}", file=sys.stderr)
    modes = [f for f, on in (("--multirun", ns.multirun), ("--run", ns.run), ("--cfg", ns.cfg)) if on]
    if len(modes) > 1:
        raise UserError(
            f"{' and '.join(modes)} cannot be combined; to see a study's config: `ics config experiment=<name>`"
        )
    bare = [o for o in overrides if "=" not in o and not o.startswith("~")]
    if bare:
        raise UserError(
            f"{bare[0]!r} is not an override; overrides are key=value or group=option "
            "(e.g. trainer.steps=5000, model=cnn); see `ics list`"
        )
    refuse_deletions(overrides)
    seen: Dict[str, str] = {}
    for o in overrides:
        key = o.lstrip("+~").split("=", 1)[0]
        if key in seen:
            raise UserError(f"{key} is given twice ({seen[key]} and {o}); give it once")
        seen[key] = o
    study = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == "experiment"), None)
    path = configdirs.studies(list(dirs)).get(study) if study else None
    if path is not None and path.parent != configdirs.experiments_dir():
        configdirs.check_study_file(path)  # a user's study, before Hydra reads it: what it may set under hydra
    parsed = compat.parse_overrides(overrides)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    # the sweeper decides how the sweep overrides are read: compose without them first to learn which
    base = compose(fixed, hydra_cfg=True)
    sweeper = sweeper_of(base.hydra.sweeper)
    if sweeper.option == "basic":
        base = compose(compat.expand_sweep(overrides)[0], hydra_cfg=True)
    multirun = bool(ns.multirun) or force_multirun or OmegaConf.select(base, "hydra.mode") == "MULTIRUN"
    argv = hydra_args + searchpath + overrides
    if ns.cfg:
        return Plan(argv, "show", base.hydra, dirs=dirs, config_name=config_name)
    if sweeper.option != "basic":
        if not multirun:
            raise UserError(f"hydra/sweeper={sweeper.option} runs sweeps; add -m (--multirun)")
        return _search_plan(argv, base, sweeper, overrides, fixed, data, dirs, config_name)
    launcher_choice = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] == "hydra/launcher"]
    if not multirun and launcher_choice and not launcher_choice[-1].endswith("=basic"):
        raise UserError(
            f"{launcher_choice[-1]} launches sweeps; add -m (--multirun) to run through it "
            "(a single `ics run` trains here)"
        )
    if not multirun and len(compat.expand_sweep(overrides)) > 1:
        raise UserError(
            f"{' '.join(o for o in overrides if ',' in o)} is a sweep; add -m (--multirun) to run one job per value"
        )
    launcher = launcher_of(base.hydra.launcher)
    _check_launcher(base.hydra, launcher)
    _check_study_model(overrides, dirs)
    params = OmegaConf.to_container(base.hydra.sweeper.params) if multirun and base.hydra.sweeper.get("params") else {}
    jobs = compat.expand_sweep(overrides, {k: str(v) for k, v in (params or {}).items()}) if multirun else [fixed]
    configs = check_jobs(jobs, data)
    if multirun and launcher.option == "ensemble":
        from ics_cli import ensemble

        node = base.hydra.launcher
        print(ensemble.note(configs, int(node.members_max), bool(node.get("vmap", False))), file=sys.stderr)
    mode = "multirun" if multirun else "run"
    return _plan(argv, mode, base, jobs, overrides, dirs, config_name, launcher, sweeper, configs, len(jobs))


def _plan(argv, mode, base, jobs, overrides, dirs, config_name, launcher, sweeper, configs, total, **search) -> "Plan":
    """The plan of a checked launch, a sweep's or a search's (`search`: its objective and keys); it
    writes into a folder of the user's when the overrides name one."""
    user_dir = any(o.split("=", 1)[0] in ("hydra.run.dir", "hydra.sweep.dir") for o in overrides)
    return Plan(
        argv,
        mode,
        base.hydra,
        jobs,
        user_dir,
        dirs,
        config_name,
        launcher,
        sweeper=sweeper,
        configs=configs,
        total=total,
        **search,
    )


def _search_plan(argv, base, sweeper, overrides, fixed, data, dirs, config_name) -> "Plan":
    """An optimising sweeper (Optuna, Nevergrad, Ax, ...) makes its jobs as it goes: check the base
    config, every value at the edges of the search space (each searched key at each end of its
    interval, or each of its choices, the others at their first), and the objective it will get;
    each job the sweeper makes is checked again when it starts (a bad one is a failed job)."""
    from ics_cli.launchers import launcher_of

    from ics.config.schema import objective_direction

    launcher = launcher_of(base.hydra.launcher)
    _check_launcher(base.hydra, launcher)
    params = OmegaConf.to_container(base.hydra.sweeper.params) if base.hydra.sweeper.get("params") else {}
    space = compat.search_space(overrides, {str(k): str(v) for k, v in (params or {}).items()})
    if not space:
        raise UserError(
            f"hydra/sweeper={sweeper.option} has nothing to search: give a key a range, e.g. "
            "'optim.lr=tag(log,interval(0.001,3))', or hydra.sweeper.params in a study"
        )
    firsts = {key: values[0] for key, values in space.items()}
    jobs = [fixed + [f"{k}={v}" for k, v in firsts.items()]]
    for key, values in space.items():
        for value in values[1:]:
            jobs.append(fixed + [f"{k}={value if k == key else v}" for k, v in firsts.items()])
    configs = check_jobs(jobs, data)
    cfg = from_dict(configs[0])
    objective = cfg.sweep.objective
    if objective.startswith("val") and not cfg.data.val_size:
        raise UserError(
            f"sweep.objective={objective} needs a validation split: set data.val_size (e.g. "
            "data.val_size=10000), or choose sweep.objective=test_acc knowing that it tunes on the "
            "test split"
        )
    want = objective_direction(objective)
    have = sweeper.direction(base.hydra.sweeper)
    if have is not None and have != want:
        key = f"hydra.sweeper.{sweeper.direction_key}"
        raise UserError(
            f"sweep.objective={objective} is to be {want}d but {key}={have}: add {key}={sweeper.direction_value(want)}"
        )
    total = sweeper.trials(base.hydra.sweeper)
    objective_of = {"metric": objective, "direction": want}
    return _plan(
        argv,
        "multirun",
        base,
        jobs,
        overrides,
        dirs,
        config_name,
        launcher,
        sweeper,
        [],
        total,
        objective=objective_of,
        searched=list(space),
    )


def _check_study_model(overrides: List[str], dirs: Sequence[Path]) -> None:
    """A study's architecture keys belong to its model option: a study that sets keys of one model kind
    beside `override /model` cannot take another model from the command line (that would be a hybrid,
    e.g. a CNN with an MLP's widths). Keys every kind has (activation, norm, ...) are fine."""
    import dataclasses

    from ics.config import DataConfig, ModelConfig, OptimConfig

    chosen = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if "=" in o}
    study = chosen.get("experiment")
    if study is None:
        return
    path = configdirs.studies(list(dirs)).get(study)
    if path is None:
        return
    node = configdirs.load_yaml(path)
    for item in node.get("defaults") or []:
        if isinstance(item, DictConfig):
            for key, value in item.items():
                group = str(key).split()[-1].lstrip("/")
                if group in chosen and group in ("model", "data", "optim") and str(value) != chosen[group]:
                    print(
                        f"note: {group}={chosen[group]} replaces experiment={study}'s {group}={value}", file=sys.stderr
                    )
    for group, base in (("model", ModelConfig), ("data", DataConfig), ("optim", OptimConfig)):
        if group not in chosen or not isinstance(node.get(group), DictConfig):
            continue
        common = {f.name for f in dataclasses.fields(base)}
        own = [k for k in node[group].keys() if k not in common]
        if own:
            raise UserError(
                f"{group}={chosen[group]} conflicts with experiment={study}, which sets "
                f"{group}.{own[0]} for its own {group}; put those keys in a {group} option "
                f"({group}/<name>.yaml) that the study chooses, or drop {group}={chosen[group]}"
            )


def _is_choice(key: str) -> bool:
    key = key.lstrip("+~")
    return key in CHOICE_GROUPS or "/" in key


def _check_launcher(hydra: DictConfig, row) -> None:
    """What a parallel launcher is told to do must make sense on this machine."""
    import os

    launcher = hydra.launcher
    if row.option == "ensemble":
        from ics_cli.ensemble import check_members_max

        try:
            check_members_max(launcher.get("members_max"))
        except ConfigError as e:
            raise UserError(str(e)) from None
    if row.option == "joblib":
        n = launcher.get("n_jobs")
        cores = os.cpu_count() or 1
        if isinstance(n, int) and (n == 0 or n < -1):
            raise UserError(f"hydra.launcher.n_jobs={n} is invalid: allowed: -1 (all {cores} cores) or 1..{cores}")
        if isinstance(n, int) and n > cores:
            print(
                f"note: hydra.launcher.n_jobs={n} on {cores} cores: jobs share the cores (1 thread each)",
                file=sys.stderr,
            )


def _is_hydra(key: str) -> bool:
    return key.lstrip("+~").startswith("hydra")


def _subset(jobs: List[List[str]]) -> List[List[str]]:
    """All jobs, or for huge sweeps the jobs that first use each value of each key."""
    if len(jobs) <= MAX_FULL_CHECK:
        return jobs
    seen, keep = set(), []
    for job in jobs:
        new = set(job) - seen
        if new:
            keep.append(job)
            seen |= new
    return keep


def check_jobs(jobs: List[List[str]], data: bool = True) -> List[Dict]:
    """Compose and check every job's config (_check_jobs); the first problem is a UserError, an
    interpolation that cannot be resolved (`name=${oc.env:UNSET}`) included. Returns each job's
    config as plain data (what the sweep's plan.json keeps for `ics resume`)."""
    from omegaconf.errors import InterpolationResolutionError, UnsupportedInterpolationType

    try:
        return _check_jobs(jobs, data)
    except (InterpolationResolutionError, UnsupportedInterpolationType) as e:
        raise UserError(unresolvable(e, jobs)) from None


def unresolvable(e: Exception, jobs: List[List[str]]) -> str:
    """One line naming the key, the interpolation given for it and why it does not resolve."""
    key = (getattr(e, "full_key", None) or "?").split("[", 1)[0]  # model.widths[0] -> model.widths
    given = next((o for job in jobs for o in job if o.lstrip("+~").split("=", 1)[0] == key), None)
    why = compat.first_line(e).split("raised while resolving interpolation:")[-1].strip().strip('"')
    why = why or "its value does not resolve"
    # as typed: Hydra's job overrides escape the interpolation's characters (hydra.run.dir=$\{oc.env\:X\})
    where = re.sub(r"\\(.)", r"\1", given) if given is not None else f"{key} (in the composed config)"
    return f"{where} cannot be resolved: {why}; give a plain value, or an interpolation that resolves here"


def _check_jobs(jobs: List[List[str]], data: bool = True) -> List[Dict]:
    """Compose and check every job's config; the first problem is a UserError.

    Fast for big sweeps (a 2,000-seed sweep: see `ics bench --preflight`): Hydra composes once per
    combination of group choices; a job's plain values are applied to a copy of only the sections
    they touch, each distinct section is built once, and the checks that read data headers and build
    the model (on the meta device) run once per distinct data/model/instrument settings."""
    import dataclasses

    from ics.analysis.configs import flatten
    from ics.config.convert import section_from_dict, to_dict
    from ics.data.vision import TorchvisionMismatch
    from ics.train import check_runnable

    check_job_list_size(jobs)
    refuse_deletions(jobs[0] if jobs else [])  # a deletion cannot be swept: the first job has them all
    composed: Dict[Tuple[str, ...], Tuple[DictConfig, object]] = {}
    sections: Dict[tuple, object] = {}
    checked: Dict[str, None] = {}
    norms: set = set()  # the model.norm of the jobs: keys of another normaliser get a note
    si_norms: set = set()  # ... and those of jobs that ask for the scale-invariant landscape
    cfgs: List = []  # each checked job's config: report.baseline must name one of them
    configs: List[Dict] = []
    subset = {id(job) for job in _subset(jobs)}
    as_data: Dict[tuple, Dict] = {}  # jobs share sections: convert each combination once
    for job in jobs:
        parsed = compat.parse_overrides(job)
        choices = tuple(o.input_line for o in parsed if _is_choice(o.get_key_element()) or o.is_delete())
        if choices not in composed:
            raw = compose([o.input_line for o in parsed if o.input_line in choices or _is_hydra(o.get_key_element())])
            try:
                composed[choices] = (raw, from_dict(raw))
            except ConfigError as e:
                raise UserError(str(e)) from None
        raw, base = composed[choices]
        touched: Dict[str, List] = {}
        for o in parsed:
            key = o.get_key_element()
            if o.input_line in choices or _is_hydra(key):
                continue
            touched.setdefault(key.lstrip("+~").split(".", 1)[0], []).append(o)
        try:
            new = {}
            for name, overrides in touched.items():
                memo = (choices, name, tuple(o.input_line for o in overrides))
                if memo not in sections:
                    sections[memo] = _plain_values(getattr(base, name, None), overrides)
                if sections[memo] is None:
                    # an interpolation may refer to another section: resolved in the whole config
                    whole = any("${" in o.input_line for o in overrides)
                    node = copy.deepcopy(raw[name]) if isinstance(raw.get(name), DictConfig) and not whole else None
                    if node is None:  # a top-level key (name=...) or one the schema lacks
                        cfg = copy.deepcopy(raw)
                        _set_all(cfg, overrides, choices)
                        sections[memo] = getattr(from_dict(cfg), name)
                    else:
                        wrapper = OmegaConf.create({name: node})
                        OmegaConf.set_struct(wrapper, OmegaConf.is_struct(raw))
                        _set_all(wrapper, overrides, choices)
                        sections[memo] = section_from_dict(name, OmegaConf.to_container(wrapper[name], resolve=True))
                new[name] = sections[memo]
            cfg = dataclasses.replace(base, **new) if new else base
            # the sections live on in the memos above, so their ids name this combination
            key = (id(base), tuple(sorted((k, id(v)) for k, v in new.items())))
            if id(job) in subset:
                validate(cfg)
            if key not in as_data:
                as_data[key] = dataclasses.asdict(cast(Any, cfg))  # a Config (the name also holds DictConfigs above)
            configs.append(as_data[key])
            if id(job) not in subset:
                continue
            norms.add(cfg.model.norm)
            cfgs.append(cfg)
            if cfg.landscape.enabled and cfg.landscape.scale_invariant:
                si_norms.add(cfg.model.norm)
            heavy = repr(
                (
                    cfg.data,
                    cfg.model,
                    cfg.trainer.batch_size,
                    cfg.trainer.device,
                    cfg.trainer.threads,
                    [getattr(cfg, g) for g in GROUPS if g not in ("model", "data", "optim", "trainer")],
                )
            )
            if heavy not in checked:
                check_runnable(cfg, data=data)
                checked[heavy] = None
        except (ConfigError, TorchvisionMismatch) as e:  # a bad value; a torchvision built for another torch
            raise UserError(str(e)) from None
    # flattened only when a baseline is set: to_dict costs ~50 ms a job, an hour for a big sweep
    flats = [flatten(to_dict(c)) for c in cfgs] if any(c.report.baseline for c in cfgs) else []
    check_baseline(flats, sweep=len(jobs) > 1)
    for note in unused_norm_keys(jobs, norms) + no_scale_invariance(si_norms):
        print(f"note: {note}", file=sys.stderr)
    return configs


def refuse_deletions(overrides: Sequence[str]) -> None:
    """`~model` left the model section without a kind (an AttributeError deep in validation) and
    `~probe` silently fell back to the schema's defaults: every section and key always has a value in
    ics, so a deletion is refused in one line that says what to do instead."""
    for o in overrides:
        if not o.startswith("~"):
            continue
        key = o[1:].split("=", 1)[0]
        section = key.split(".")[0].split("/")[0]
        if _is_choice(key):
            instead = f"choose another option ({key}=<option>; see `ics list`)"
        else:
            instead = f"set its value ({key}=<value>; see `ics list {section}`)"
        raise UserError(f"{o}: deleting a config group or key is not supported; {instead}")


MAX_JOB_LIST = 64 << 20  # bytes of a sweep's jobs.json that ics.record.jobs and ics.analysis.load read back


def check_job_list_size(jobs: List[List[str]]) -> None:
    """A sweep's jobs.json (every job's overrides) must be small enough to be read back by `ics report`
    and `ics status`, which stop at MAX_JOB_LIST bytes: refused before anything is written."""
    import json

    size = len(json.dumps(jobs).encode())
    if size > MAX_JOB_LIST:
        raise UserError(
            f"this sweep's job list would be {size / 2**20:,.0f} MB ({len(jobs):,} jobs); at most "
            f"{MAX_JOB_LIST >> 20} MB is read back: sweep fewer jobs or shorter values"
        )


def no_scale_invariance(norms: set) -> List[str]:
    """landscape.scale_invariant where no job's normaliser leaves a weight scale-invariant in the
    network's function (none; one whose invariance holds for the gradient only, as Batch Renorm's), so
    that nothing would be recorded. A study that compares such jobs with invariant ones (landscape:
    none vs batch) asks for exactly that and gets no note. Read from the normalisers' declarations."""
    from ics.config.norms import declared
    from ics.models.norms import exactly_invariant

    without = sorted(n for n in norms if not exactly_invariant(n))
    if not without or len(without) < len(norms):
        return []
    gradient_only = [n for n in without if declared()[n].invariance is not None]
    why = f"; {', '.join(gradient_only)} invariant in the gradient only" if gradient_only else ""
    return [
        f"landscape.scale_invariant=true records nothing with model.norm={', '.join(without)}: no weight "
        f"there is scale-invariant in the network's function{why}"
    ]


def check_baseline(flats: List[Dict], sweep: bool) -> None:
    """report.baseline at launch, not when the report is made: every key=value names a config key,
    and in a sweep a value some job has (a typo found hours later is a wasted sweep)."""
    from ics.analysis.configs import parse_override, same_value

    baselines = {tuple(f.get("report.baseline") or ()) for f in flats}
    for baseline in baselines:
        for item in baseline:
            key, value = parse_override(str(item)) or (str(item), None)
            if all(key not in f for f in flats):
                raise UserError(
                    f"report.baseline item {item} names no config key: {key} is not one (e.g. model.norm=batch)"
                )
            taken = list(dict.fromkeys(f[key] for f in flats if key in f))
            if sweep and not any(same_value(value, t) for t in taken):
                raise UserError(
                    f"report.baseline item {item} matches no job of this sweep: {key} takes "
                    f"{', '.join(map(str, taken))}"
                )


def unused_norm_keys(jobs: List[List[str]], norms: set) -> List[str]:
    """Overrides of one normaliser's keys (model.norm_groups: group's) where no job uses that
    normaliser: they change nothing, yet they would name the run. Read from the declarations' keys."""
    from ics.config.norms import owned_keys

    owner = owned_keys()
    out = []
    for key in dict.fromkeys(o.lstrip("+~").split("=", 1)[0] for job in jobs for o in job if "=" in o):
        name = key[len("model.") :] if key.startswith("model.") else None
        if name in owner and owner[name] not in norms:
            used = ", ".join(sorted(norms)) or "-"
            who = "this run uses" if len(jobs) == 1 else "these jobs use"
            out.append(f"{key} has no effect: it applies to model.norm={owner[name]} ({who} {used})")
    return out


_SCALARS = {"int": (int,), "float": (float, int), "str": (str,), "bool": (bool,)}


def _plain_values(section, overrides) -> Optional[object]:
    """The fast path of check_jobs: `section` with scalar keys it has set to values of their declared
    type (a seed, a learning rate); None when any override needs the full path (a list, a nested or
    unknown key, a value to convert, an append or delete), which also words the errors."""
    import dataclasses

    if not dataclasses.is_dataclass(section):
        return None
    types = {f.name: f.type for f in dataclasses.fields(section)}
    values = {}
    for o in overrides:
        key = o.get_key_element()
        parts = key.split(".")
        if key[:1] in "+~" or len(parts) != 2 or parts[1] == "name" or o.is_sweep_override():
            return None
        allowed = _SCALARS.get(str(types.get(parts[1])))
        value = o.value()
        if allowed is None or not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            return None
        values[parts[1]] = float(value) if allowed[0] is float else value
    return dataclasses.replace(section, **values)


def _set_all(cfg, overrides, choices) -> None:
    """_set each override of a job's section in `cfg` (the whole config, or the section alone)."""
    for o in overrides:
        _set(
            cfg,
            o.get_key_element().lstrip("+~"),
            o.value(),
            o.input_line,
            [c for c in choices if not c.startswith("hydra")],
        )


def _set(cfg: DictConfig, key: str, value, text: str, choices: List[str] = ()) -> None:
    try:
        OmegaConf.update(cfg, key, value, merge=True)
    except (ConfigKeyError, ConfigAttributeError):
        raise UserError(f"{key} is not a config key; {allowed_keys(key, choices)}") from None
    except OmegaConfBaseException as e:
        raise UserError(f"{text} is invalid: {compat._plain(compat.first_line(e))}") from None


def measure(n: int) -> str:
    """`ics bench --preflight N`: this check of an N-job seed sweep, timed in a fresh interpreter: what
    `ics run -m` spends before the first job starts (Hydra's sweep expansion, composition, every job's
    config checked; no data read). One line: seconds and peak memory."""
    import subprocess  # only this benchmark starts a process

    code = (
        "import resource, time, sys\n"
        "t0 = time.perf_counter()\n"
        "from ics_cli.preflight import preflight\n"
        "import torch  # check_runnable builds each distinct model on the meta device\n"
        "t1 = time.perf_counter()\n"
        "rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        f"plan = preflight(['-m', 'trainer.seed=range(0,{n})'], data=False)\n"
        "t2 = time.perf_counter()\n"
        "print(len(plan.jobs), t1 - t0, t2 - t1, rss0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if p.returncode != 0:
        raise UserError(f"the preflight benchmark failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}", code=1)
    jobs, imports, check, rss0, rss = (float(v) for v in p.stdout.split())
    return (
        f"pre-run check of a {int(jobs):,}-job sweep: {check:.2f} s ({check / jobs * 1e3:.2f} ms a job), after "
        f"{imports:.2f} s of imports; peak memory {rss:.0f} MB, of which {rss0:.0f} MB after the imports alone "
        "(mostly torch, whose share depends on its wheel)"
    )
