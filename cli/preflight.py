"""Validate overrides before Hydra creates any directory, and turn Hydra's multi-line errors into
one line that names the bad value and what is allowed.

Every value a sweep would use is checked: the base (first value of each sweep), then each sweep
value in turn, including sweeps an experiment defines in `hydra.sweeper.params`.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

CONFIG_MODULE = "ics.conf"
CONFIG_NAME = "config"
GROUPS = ("model", "data", "optim", "trainer", "probe", "experiment")


class UserError(Exception):
    """A one-line message for the user."""


def _init() -> None:
    from ics.config import register_configs

    if not GlobalHydra.instance().is_initialized():
        register_configs()
        initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3")


def group_options() -> Dict[str, List[str]]:
    _init()
    loader = GlobalHydra.instance().config_loader()
    return {g: sorted(loader.get_group_options(g)) for g in GROUPS}


def compose(overrides: List[str], hydra_cfg: bool = False) -> DictConfig:
    _init()
    try:
        return hydra_compose(config_name=CONFIG_NAME, overrides=overrides, return_hydra_config=hydra_cfg)
    except (MissingConfigException, ConfigCompositionException, OverrideParseException, OmegaConfBaseException) as e:
        raise UserError(_explain(e, overrides)) from None


def _explain(e: Exception, overrides: List[str]) -> str:
    if isinstance(e, MissingConfigException):
        missing = (e.missing_cfg_file or "").strip("/")
        group, _, option = missing.rpartition("/")
        if group:
            _init()
            options = sorted(GlobalHydra.instance().config_loader().get_group_options(group))
            if options:
                return f"{group}={option} is not an option; allowed: {', '.join(options)}"
        return _first_line(e)
    cause = e.__cause__ or e.__context__
    msg = _first_line(e)
    if msg.startswith("Error merging override ") and cause is not None:
        return f"{msg.split(' ', 3)[3]} is invalid: {_first_line(cause)}"
    if "Could not override '" in msg:
        key = msg.split("'")[1]
        given = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").split("=")[0] == key), "?")
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
            return f"{key} is not a config key; {_allowed_keys(key)}"
        return f"{key}={given} is invalid: {_first_line(cause) if cause else msg}"
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and "Key '" in str(cause):
        text = str(cause)
        key = text.split("full_key: ")[-1].split()[0] if "full_key: " in text else text.split("'")[1]
        return f"{key} is not a config key; {_allowed_keys(key)}"
    if cause is not None:
        return f"{msg} {_first_line(cause)}"
    return msg


def _allowed_keys(key: str) -> str:
    parent = key.rpartition(".")[0]
    try:
        base = compose([])
        node = OmegaConf.select(base, parent) if parent else base
        if isinstance(node, DictConfig):
            where = f"keys in {parent}" if parent else "top-level keys"
            return f"{where}: {', '.join(str(k) for k in node.keys())}"
    except UserError:
        pass
    return "see `ics config` for the keys"


def _first_line(e: BaseException) -> str:
    return next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)


def _candidate_sets(overrides: List[str]) -> List[List[str]]:
    """The base override set plus one set per sweep value (linear, not the cartesian product)."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as e:
        raise UserError(f"cannot parse overrides {overrides}: {_first_line(e)}") from None
    base, sweeps = [], []
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override():
            values = list(o.sweep_string_iterator())
            base.append(f"{key}={values[0]}")
            sweeps.append((len(base) - 1, key, values))
        else:
            base.append(o.input_line)
    sets = [base]
    for i, key, values in sweeps:
        for v in values[1:]:
            sets.append(base[:i] + [f"{key}={v}"] + base[i + 1:])
    return sets


def _validate_values(cfg: DictConfig, data_checked: Optional[set] = None) -> None:
    from ics.config import ConfigError, to_config, validate
    from ics.data import check_data
    from ics.train import resolve_device

    try:
        conf = to_config(cfg)
        validate(conf)
        resolve_device(conf.trainer.device)  # cuda asked for on a machine without it
        if data_checked is not None and repr(conf.data) not in data_checked:
            check_data(conf.data)  # missing files fail here, before Hydra makes a run directory
            data_checked.add(repr(conf.data))
    except ConfigError as e:
        raise UserError(str(e)) from None
    except (ConfigKeyError, ConfigAttributeError) as e:  # e.g. +foo=1 adds a key the schema lacks
        key = getattr(e, "full_key", None) or _first_line(e)
        raise UserError(f"{key} is not a config key; {_allowed_keys(str(key))}") from None
    except OmegaConfBaseException as e:
        raise UserError(_first_line(e)) from None


def hydra_argv(args: List[str]):
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.exit_on_error = False
    try:
        ns = parser.parse_intermixed_args(args)
    except (SystemExit, Exception) as e:  # argparse reports on stderr and exits: keep it one line
        raise UserError(f"bad Hydra flags in {args}: see `ics run --hydra-help`") from None
    return ns


def preflight(args: List[str], data: bool = True) -> List[str]:
    """Check every override (and sweep value), and with `data` that the data can be found; return
    argv for Hydra (flags first, then overrides)."""
    ns = hydra_argv(args)
    overrides = list(ns.overrides or [])
    if ns.help or ns.hydra_help or ns.info or ns.shell_completion:
        return args
    data = data and not ns.cfg  # --cfg only prints the config
    sets = _candidate_sets(overrides)
    checked: Optional[set] = set() if data else None
    for i, ov in enumerate(sets):
        cfg = compose(ov, hydra_cfg=(i == 0))
        if i == 0:
            sets += _experiment_sweeps(cfg, ov)
        _validate_values(cfg, checked)
    flags = [a for a in args if a not in overrides]
    return flags + overrides


def _experiment_sweeps(cfg: DictConfig, base: List[str]) -> List[List[str]]:
    """Sweeps defined in the config (hydra.sweeper.params, e.g. by an experiment file)."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    given = {o.lstrip("+~").split("=")[0] for o in base}
    extra = [f"{k}={v}" for k, v in params.items() if k not in given]
    sets = _candidate_sets(extra) if extra else []
    return [base + s for s in sets]
