"""Where configs come from: the shipped configs/ folder, studies in experiments/, and user folders.

A user config folder has the layout of configs/ (model/*.yaml, data/*.yaml, ..., experiment/*.yaml for
studies). Folders are added, in this order, by `--config-dir DIR` / `-cd DIR`, by
`hydra.searchpath=[file://DIR,...]` and by the environment variable ICS_CONFIG_PATH (colon-separated).
They follow Hydra's search path: an option is looked up in the shipped configs/ first, then in the user
folders in order; a study in the user folders first, then in experiments/ (the shipped studies sit in
Hydra's ConfigStore, which Hydra searches last). A user file that a shipped one of the same name hides
is reported, never silently ignored.

A folder the user names (on the command line or in ICS_CONFIG_PATH) is the user's own: what Hydra allows
there is allowed (a study may choose a sweeper and set its options, a hydra/ folder may add a launcher
preset). Nothing that a run or sweep folder names is ever put on the search path: `ics resume`
rebuilds jobs from data (cli/resume.py), and the study copy a sweep keeps is a record for people.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ics_cli.errors import UserError

ENV = "ICS_CONFIG_PATH"
STUDY_GROUP = "experiment"
STAGE = ".study"  # a sweep of a study given by path keeps a copy of it here (its own config folder)


def shipped_dir() -> Path:
    return Path(str(resources.files("ics.configs")))


def experiments_dir() -> Path:
    return Path(str(resources.files("ics.experiments")))


def shipped_studies() -> Dict[str, Path]:
    return {p.stem: p for p in sorted(experiments_dir().glob("*.yaml"))}


@dataclass
class ConfigDirs:
    """The user folders of one command, in search order, and what the command line had besides."""

    dirs: List[Path] = field(default_factory=list)
    args: List[str] = field(default_factory=list)  # the arguments without -cd/--config-dir/hydra.searchpath
    config_dir: Optional[Path] = None  # the -cd folder (Hydra looks up a -cn primary config there)

    def searchpath_override(self) -> List[str]:
        """The override that puts the folders on Hydra's search path (and records them in a sweep)."""
        if not self.dirs:
            return []
        from ics_cli.rundirs import quote

        return ["hydra.searchpath=[" + ",".join(quote(f"file://{d}") for d in self.dirs) + "]"]


def split(args: List[str], env: Optional[str] = None) -> ConfigDirs:
    """Take -cd/--config-dir and hydra.searchpath out of a command line and add ICS_CONFIG_PATH."""
    out = ConfigDirs()
    rest: List[str] = []
    found: List[Tuple[str, str]] = []  # (how it was given, the folder)
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-cd", "--config-dir", "--config_dir"):
            if i + 1 >= len(args):
                raise UserError(f"{a} needs a folder: {a} DIR")
            found.append((a, args[i + 1]))
            out.config_dir = Path(args[i + 1])
            i += 2
            continue
        if a.startswith(("--config-dir=", "--config_dir=")):
            value = a.split("=", 1)[1]
            found.append(("--config-dir", value))
            out.config_dir = Path(value)
        elif a.lstrip("+").startswith("hydra.searchpath="):
            for entry in _searchpath_entries(a):
                found.append(("hydra.searchpath", entry))
        else:
            rest.append(a)
        i += 1
    env = os.environ.get(ENV, "") if env is None else env
    found += [(ENV, p) for p in env.split(os.pathsep) if p.strip()]
    for how, value in found:
        path = check_dir(how, value)
        if path is not None and path not in out.dirs:
            out.dirs.append(path)
    if out.config_dir is not None:
        out.config_dir = Path(os.path.abspath(out.config_dir))
    out.args = rest
    return out


def _searchpath_entries(text: str) -> List[str]:
    from ics_cli import hydra_compat as compat

    (parsed,) = compat.parse_overrides([text.lstrip("+")])
    value = parsed.value()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(
            f"{text} is invalid: hydra.searchpath must be a list of folders, e.g. hydra.searchpath=[file://my_configs]"
        )
    return value


def check_dir(how: str, value: str) -> Optional[Path]:
    """A user config folder as an absolute path, checked; None for a pkg:// entry (left to Hydra)."""
    if value.startswith("pkg://"):
        import importlib.util

        module = value[len("pkg://") :].strip("/").replace("/", ".")
        try:
            found = bool(module) and importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise UserError(
                f"{how}={value} is not an importable package; a config folder is file://DIR or "
                "pkg://<an installed package>"
            )
        return None
    text = value[len("file://") :] if value.startswith("file://") else value
    path = Path(os.path.abspath(os.path.expanduser(text)))
    shown = f"{how}={value}" if how != ENV else f"{ENV} entry {value}"
    if not path.is_dir():
        raise UserError(
            f"{shown} is not a folder; a config folder holds model/*.yaml, data/*.yaml, ..., experiment/*.yaml"
        )
    check_files(path, shown)
    return path


def check_files(path: Path, shown: str) -> None:
    """Refuse a folder that would configure Hydra itself (its launcher, callbacks, job environment),
    and name the first option file that is not valid YAML (Hydra would print hundreds of lines).
    Studies are checked when one is chosen (check_study_file): one broken study does not block the
    others, nor `ics list`."""
    shipped = shipped_studies()
    for f in sorted(path.glob("*/*.yaml")):
        if f.parent.name == STUDY_GROUP:
            if f.stem in shipped:
                raise UserError(
                    f"{f} has the name of the shipped study {f.stem}; Hydra cannot tell them apart: rename it"
                )
            continue
        load_yaml(f)


def load_yaml(path: Path):
    """A YAML file as data (OmegaConf's safe loader), or a one-line UserError."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.load(path)
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    except Exception as e:  # noqa: BLE001 - yaml's and OmegaConf's errors: say where, in one line
        from ics_cli.hydra_compat import first_line

        raise UserError(f"{path} is not a valid config file: {first_line(e)}") from None


def check_study_file(path: Path) -> None:
    """A study sets keys of the whole config: its file must say so (`# @package _global_`) and be a mapping."""
    from omegaconf import DictConfig

    node = load_yaml(path)
    if not isinstance(node, DictConfig):
        raise UserError(f"{path} is not a study: its top level must be a mapping (defaults:, keys, hydra:)")
    header = []  # Hydra reads `# @KEY VALUE` lines at the very top only (blank lines skipped)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not re.match(r"^\s*#\s*@", line):
            break
        header.append(line)
    if not any(re.match(r"^\s*#\s*@package\s+_global_\s*$", ln) for ln in header):
        raise UserError(
            f"{path} does not begin with `# @package _global_`; a study sets keys of the whole config "
            "(model.norm, trainer.steps), so its first line must say so, as in experiments/"
        )
    hydra = node.get("hydra")
    if hydra is not None and not isinstance(hydra, DictConfig):
        raise UserError(f"{path}: hydra must be a mapping")


# ----------------------------------------------------------------------------------------------
# options and studies, with where each comes from


SHIPPED = "configs"  # the source label of the shipped options


def options(group: str, dirs: List[Path]) -> Dict[str, str]:
    """{option: where it comes from ("configs" or a user folder)}, as Hydra finds them: configs/ first."""
    out: Dict[str, str] = {}
    for name in sorted(p.stem for p in (shipped_dir() / group).glob("*.yaml")):
        out[name] = SHIPPED
    for d in dirs:
        for p in sorted((d / group).glob("*.yaml")):
            out.setdefault(p.stem, str(d))
    return out


def option_file(group: str, name: str, dirs: List[Path]) -> str:
    """The file an option is read from, for people: configs/<group>/<name>.yaml or a full path."""
    source = options(group, dirs).get(name)
    if source == SHIPPED:
        return f"configs/{group}/{name}.yaml"
    return str(Path(source) / group / f"{name}.yaml") if source else "?"


def kind_of(group: str, option: str, dirs: List[Path], depth: int = 0) -> Optional[str]:
    """The kind (schema) an option file of model/data/optim resolves to, read from its `name` or its
    defaults list (for completion: no Hydra). None when it cannot tell."""
    from ics.config import KINDS

    source = options(group, dirs).get(option)
    if source is None or depth > 8:
        return option if option in KINDS.get(group, {}) else None
    path = (shipped_dir() if source == SHIPPED else Path(source)) / group / f"{option}.yaml"
    try:
        node = load_yaml(path)
    except UserError:
        return None
    name = node.get("name") if hasattr(node, "get") else None
    if isinstance(name, str) and name in KINDS.get(group, {}):
        return name
    for item in (node.get("defaults") or []) if hasattr(node, "get") else []:
        if isinstance(item, str) and item != "_self_":
            ref = item.split("@")[0]
            if ref.startswith(f"/schema/{group}/"):
                return ref.rsplit("/", 1)[1]
            if "/" not in ref:
                return kind_of(group, ref, dirs, depth + 1)
    default = next(iter(KINDS.get(group, {})), None)  # a plain file: its group's default kind
    from ics.config import Config

    cls = type(getattr(Config(), group))
    return next((k for k, c in KINDS[group].items() if c is cls), default)


def shadowed(dirs: List[Path], groups) -> List[str]:
    """User option files that a shipped option of the same name hides (Hydra searches configs/ first)."""
    out = []
    for group in groups:
        shipped = {p.stem for p in (shipped_dir() / group).glob("*.yaml")}
        for d in dirs:
            out += [
                f"{d / group / p.name} is hidden by the shipped {group}={p.stem}; rename it"
                for p in sorted((d / group).glob("*.yaml"))
                if p.stem in shipped
            ]
    return out


def studies(dirs: List[Path]) -> Dict[str, Path]:
    """{study: file}: the user folders first (in order), then experiments/."""
    out: Dict[str, Path] = {}
    for d in dirs:
        for p in sorted((d / STUDY_GROUP).glob("*.yaml")):
            out.setdefault(p.stem, p)
    for name, p in shipped_studies().items():
        out.setdefault(name, p)
    return out


def is_study_path(text: str) -> bool:
    return text.endswith((".yaml", ".yml")) or os.sep in text or text.startswith(".")


def stage_study(path: Path, into: Path) -> Tuple[str, Path]:
    """Copy a study file into `into`/experiment/ (a config folder of its own); (its name, its folder root).
    The root — the folder it sits in, or the one above an `experiment/` folder — joins the search
    path, so the study's own model/data options beside it are found."""
    name = path.stem
    if not name.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"{path}: a study's file name must be letters, digits, _ and - (it names the sweep)")
    check_study_file(path)
    (into / STUDY_GROUP).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, into / STUDY_GROUP / f"{name}.yaml")
    root = path.parent.parent if path.parent.name == STUDY_GROUP else path.parent
    return name, Path(os.path.abspath(root))


def stage_study_file(given: str) -> Tuple[str, Path, Path]:
    """`ics sweep <path>`: the study file staged in a fresh temporary folder (a launched sweep moves it
    into its own folder; the caller removes it otherwise): (its name, its folder root, the temporary
    folder). A refused study leaves no temporary folder behind."""
    path = Path(given)
    if not path.is_file():
        raise UserError(f"{given} is not a study file (a YAML file like experiments/fig1.yaml)")
    stage = Path(tempfile.mkdtemp(prefix="ics-study-"))
    try:
        name, root = stage_study(path, stage)
        check_files(root, str(root))
    except UserError:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return name, root, stage


# ----------------------------------------------------------------------------------------------
# what a sweep remembers of its configs, for people and `ics status` (never read back as a source of configs)

RECORD = "sweep.json"


def write_sweep_record(sweep_dir: Path, study: Optional[str], dirs: List[Path], config_name: Optional[str]) -> None:
    staged = (sweep_dir / STAGE).resolve()
    record = {
        "study": study,
        "config_dirs": [str(d) for d in dirs if Path(d).resolve() != staged],
        "config_name": config_name,
        "staged_study": staged.is_dir(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # ics status: a copied sweep keeps it
    from ics.record.files import write_json

    write_json(sweep_dir / RECORD, record)
