"""What `ics config` and `ics list` print: the composed config of one job; every config group with its
options and where each comes from, and every study with its job count; or the keys of one section.
Nothing here trains or writes. A refusal is a UserError (one line).

Imported by those commands when they run, never by `ics --help` or a Tab. Hydra's composition and
sweep parser are imported only where a study or section needs them: the list of groups and of plain
studies reads YAML files.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ics_cli import configdirs
from ics_cli.errors import UserError
from ics_cli.sweepers import by_option
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ics.config import GROUPS, Config, ConfigError, field_docs, from_dict, to_dict


def composed_yaml(overrides: Sequence[str]) -> str:
    from ics_cli import hydra_compat as compat
    from ics_cli.preflight import check_jobs, compose, use

    """`ics config`: one job's composed config, every key of every section, as YAML."""
    where = configdirs.split(list(overrides))
    args = where.args
    ns = compat.parse_args(args)
    flags = [
        a
        for a in args
        if a not in (ns.overrides or [])
        and a != ns.config_name
        and not a.startswith(("-cn", "--config-name", "--config_name"))
    ]
    if flags:
        raise UserError(
            f"ics config takes overrides (key=value), --config-dir and --config-name only, not "
            f"{' '.join(flags)}; for Hydra's flags use `ics run`, e.g. `ics run --cfg job`"
        )
    dirs = list(where.dirs)
    if ns.config_name and where.config_dir is not None and where.config_dir not in dirs:
        dirs.insert(0, where.config_dir)
    use(dirs, ns.config_name)
    args = list(ns.overrides or [])
    if any(o.is_sweep_override() for o in compat.parse_overrides(args)):
        raise UserError("ics config prints one config, not a sweep (a,b); run sweeps with `ics run -m`")
    check_jobs([args], data=False)
    try:
        cfg = to_dict(from_dict(compose(args)))
    except ConfigError as e:
        raise UserError(str(e)) from None
    return OmegaConf.to_yaml(OmegaConf.create(cfg))


def print_groups(console: Console, dirs: Sequence[Path]) -> None:
    """`ics list`: every group with its options (shipped, and from the user's folders) and every study."""
    table = Table(title="config groups (choose with group=option; `ics list <group>=<option>` for its keys)")
    table.add_column("group", no_wrap=True)
    table.add_column("options (configs/<group>/)")
    table.add_column("from your folders", overflow="fold")
    for group in GROUPS:
        opts = configdirs.options(group, dirs)
        shipped = [n for n, src in opts.items() if src == configdirs.SHIPPED]
        mine = [f"{n} ({src})" for n, src in opts.items() if src != configdirs.SHIPPED]
        table.add_row(group, ", ".join(shipped), escape(", ".join(mine)))
    console.print(table)
    for note in configdirs.shadowed(dirs, GROUPS):
        console.print(f"note: {note}")
    exps = Table(title="studies (ics sweep <name>; `ics config experiment=<name>` shows one)", show_lines=True)
    exps.add_column("study", no_wrap=True)
    exps.add_column("jobs", justify="right")
    exps.add_column("what it asks, and its measured time", overflow="fold")
    for name, path in configdirs.studies(dirs).items():
        jobs, problem = job_count(name, dirs, path)
        text = escape(study_text(path))
        if path.parent != configdirs.experiments_dir():
            text = f"(from {escape(str(path))}) " + text
        exps.add_row(
            escape(name), jobs, text + (f" [bold red]cannot run: {escape(problem)}[/bold red]" if problem else "")
        )
    console.print(exps)


def study_text(path: Path) -> str:
    """A study's description: its leading comment lines."""
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return "(unreadable)"
    return " ".join(ln.lstrip("#").strip() for ln in lines if ln.startswith("#") and "@package" not in ln)


def job_count(study: str, dirs: Sequence[Path], path: Optional[Path] = None) -> Tuple[str, Optional[str]]:
    """(number of jobs, None) or ("?", why the study cannot run). Read from the study file itself (its
    sweeper params; the options its defaults list chooses must exist), which keeps `ics list` fast; a
    study whose defaults list takes in more than options is composed with Hydra."""
    try:
        node = configdirs.load_yaml(path) if path is not None else None
        defaults = node.get("defaults") if isinstance(node, DictConfig) else None
        simple = isinstance(node, DictConfig) and all(
            d == "_self_" or (isinstance(d, DictConfig) and len(d) == 1 and str(next(iter(d))).startswith("override /"))
            for d in (defaults or [])
        )
        if simple and isinstance(node, DictConfig):
            for d in defaults or []:
                if d == "_self_":
                    continue
                group, value = str(next(iter(d)))[len("override /") :].strip(), next(iter(d.values()))
                option = {True: "on", False: "off"}[value] if isinstance(value, bool) else str(value)  # YAML 1.1
                if group in GROUPS and option not in configdirs.options(group, dirs):
                    raise UserError(
                        f"{group}={option} is not an option; allowed: {', '.join(configdirs.options(group, dirs))}"
                    )
            params = OmegaConf.select(node, "hydra.sweeper.params") or {}
            chosen = [
                str(next(iter(d.values())))
                for d in defaults or []
                if d != "_self_" and str(next(iter(d))).endswith("/hydra/sweeper")
            ]
            if chosen and chosen[0] != "basic":  # an optimising sweeper runs as many trials as it is told
                sweeper = by_option(chosen[0])
                trials = sweeper.trials(OmegaConf.select(node, "hydra.sweeper")) if sweeper else None
                return (str(trials), None) if trials else ("?", None)
        else:
            from ics_cli.preflight import compose, use  # Hydra only for a study that needs composing

            use(list(dirs))
            params = compose([f"experiment={study}"], hydra_cfg=True).hydra.sweeper.get("params") or {}
        values = {k: str(v) for k, v in params.items()}
        item = r"[\w.+-]+|\[[\w.+,-]*\]"  # a value or a [list] of them
        if all(re.fullmatch(rf"(?:{item})(?:,(?:{item}))*", v) for v in values.values()):  # plain choices: no
            return str(math.prod(len(re.findall(item, v)) for v in values.values())), None  # Hydra parser (0.5 s)
        from ics_cli import hydra_compat as compat  # Hydra's sweep parser (0.5 s): only for other values

        return str(len(compat.expand_sweep([], values))), None
    except UserError as e:
        return "?", str(e)


def print_keys(section: str, console: Console, dirs: List[Path]) -> None:
    """`ics list <group>` or `ics list <group>=<option>`: the keys with their value, meaning and what is
    allowed, and the group's other options."""
    group, _, option = section.partition("=")
    base = Config()
    if group not in {f for f in vars(base)}:
        raise UserError(f"{section} is not a config section; allowed: {', '.join(vars(base))}")
    if group not in GROUPS:
        raise UserError(f"{section} is a single key, not a section; see `ics config`")
    opts = configdirs.options(group, dirs)
    if option and option not in opts:
        raise UserError(f"{section} is not an option; allowed: {', '.join(opts)}")
    from ics_cli.preflight import compose, use

    try:
        use(dirs)
        cfg = compose([f"{group}={option}"] if option else [], hydra_cfg=True)
        chosen = option or str(cfg.hydra.runtime.choices.get(group))
        node = getattr(from_dict(cfg), group)
    except ConfigError as e:
        raise UserError(str(e)) from None
    source = configdirs.option_file(group, chosen, dirs)
    table = Table(title=escape(f"{group}={chosen} ({source}): keys, values and what is allowed"))
    table.add_column("key", no_wrap=True)  # copyable whole
    for col in ("value", "meaning", "allowed"):
        table.add_column(col, overflow="fold")
    for key, value, doc, allowed in field_docs(node, f"{group}."):
        table.add_row(key, escape(str(value)), escape(doc), escape(allowed))
    console.print(table)
    others = [n for n in opts if n != chosen]
    if others:
        console.print(f"other {group} options: {', '.join(others)} (`ics list {group}=<option>`)")
