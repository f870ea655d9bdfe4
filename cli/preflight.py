"""Validate overrides before Hydra creates any directory, and turn Hydra's multi-line errors into
one line that names the bad value and what is allowed.

Every value a sweep would use is checked: the base (first value of each sweep), then each sweep
value in turn, including sweeps an experiment defines in `hydra.sweeper.params`.
"""
from __future__ import annotations

import copy
import itertools
import math
from typing import Dict, List, Optional, Tuple

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
MAX_COMBINATIONS = 2_000  # beyond this a sweep's values are checked one by one, not in every combination


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
        if not isinstance(node, DictConfig):  # an unknown parent: list the top level
            node, parent = base, ""
        where = f"keys in {parent}" if parent else "top-level keys"
        return f"{where}: {', '.join(str(k) for k in node.keys() if k != 'hydra')}"
    except UserError:
        pass
    return "see `ics config` for the keys"


def _first_line(e: BaseException) -> str:
    return next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)


def _parse(overrides: List[str]):
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as e:
        raise UserError(f"cannot parse overrides {overrides}: {_first_line(e)}") from None


def split_sweeps(overrides: List[str]) -> Tuple[List[str], List[Tuple[str, list, list]]]:
    """-> fixed override strings, and sweeps as (key, value strings, typed values)."""
    fixed, sweeps = [], []
    for o in _parse(overrides):
        if o.is_sweep_override():
            sweeps.append((o.get_key_element(), list(o.sweep_string_iterator()), list(o.sweep_iterator())))
        else:
            fixed.append(o.input_line)
    return fixed, sweeps


def _linear_sets(fixed: List[str], sweeps) -> List[List[str]]:
    """The base set (first value of every sweep) plus one set per other sweep value."""
    base = fixed + [f"{k}={vs[0]}" for k, vs, _ in sweeps]
    sets = [base]
    for i, (key, values, _) in enumerate(sweeps):
        for v in values[1:]:
            sets.append(base[:len(fixed) + i] + [f"{key}={v}"] + base[len(fixed) + i + 1:])
    return sets


def _is_group(key: str) -> bool:
    # `model=cnn`, `hydra/launcher=joblib`, `+x=...`: need a compose; `optim.lr=...` does not
    return "." not in key or "/" in key or key[:1] in "+~"


def _validate_values(cfg: DictConfig, data_checked: Optional[set] = None) -> None:
    from ics.config import ConfigError, to_config, validate
    from ics.data import check_data
    from ics.train import resolve_device

    try:
        conf = to_config(cfg)
        validate(conf)
        resolve_device(conf.trainer.device)  # cuda asked for on a machine without it
        _check_probe_points(conf)
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


def _check_probe_points(conf) -> None:
    """probe.points must match a point of the model; names depend on the model config only, so a
    model built for any input shape will do (no data needed)."""
    from ics.models import build_model
    from ics.probes import select_points

    if conf.probe.enabled:
        shape = (1, 28, 28) if conf.data.name in ("mnist", "fashion_mnist") else (3, 32, 32)
        select_points(build_model(conf.model, shape, 10), conf.probe.points)


def hydra_argv(args: List[str]):
    """Parse with Hydra's own argument parser; its errors become one line."""
    from hydra._internal.utils import get_args_parser

    def error(message: str):
        raise UserError(f"{message}; Hydra flags: -m/--multirun, --cfg job|hydra|all, --resolve, "
                        "--package, --info, --hydra-help (see `ics run --hydra-help`)")

    parser = get_args_parser()
    parser.error = error  # argparse would print its usage block and exit
    return parser.parse_intermixed_args(args)


def preflight(args: List[str], data: bool = True) -> List[str]:
    """Check every override and every combination a sweep will run, and with `data` that the data
    can be found; return argv for Hydra (flags first, then overrides).

    Each sweep value is composed once (Hydra's own errors, made one line); then every combination
    is validated on a copy of a composed config with the values set directly (~8 ms each, where a
    compose costs ~60 ms), composing again only for each combination of group choices."""
    ns = hydra_argv(args)
    overrides = list(ns.overrides or [])
    if ns.help or ns.hydra_help or ns.info or ns.shell_completion:
        return args
    modes = [f for f, on in (("--multirun", ns.multirun), ("--run", ns.run), ("--cfg", ns.cfg), ("--info", ns.info))
             if on]
    if len(modes) > 1:
        raise UserError(f"{' and '.join(modes)} cannot be combined; to see a study's config: "
                        "`ics config experiment=<name>`")
    checked: Optional[set] = set() if data and not ns.cfg else None  # --cfg only prints
    fixed, sweeps = split_sweeps(overrides)
    base = compose(_linear_sets(fixed, sweeps)[0], hydra_cfg=True)
    given = {k.lstrip("+~") for k, _, _ in sweeps} | {o.lstrip("+~").split("=")[0] for o in fixed}
    params = OmegaConf.select(base, "hydra.sweeper.params") or {}
    exp_fixed, exp_sweeps = split_sweeps([f"{k}={v}" for k, v in params.items() if k not in given])
    fixed, sweeps = fixed + exp_fixed, sweeps + exp_sweeps
    for i, ov in enumerate(_linear_sets(fixed, sweeps)):
        _validate_values(base if i == 0 and not exp_fixed and not exp_sweeps else compose(ov), checked)
    # with one sweep or none, the sets above already are every combination
    if len(sweeps) > 1 and math.prod(len(vs) for _, vs, _ in sweeps) <= MAX_COMBINATIONS:
        _validate_product(fixed, sweeps, checked)
    flags = [a for a in args if a not in overrides]
    return flags + overrides


def _validate_product(fixed: List[str], sweeps, checked: Optional[set]) -> None:
    groups = [(k, vs) for k, vs, _ in sweeps if _is_group(k)]
    values = [(k, typed) for k, _, typed in sweeps if not _is_group(k) and not k.startswith("hydra.")]
    for choice in itertools.product(*[[f"{k}={v}" for v in vs] for k, vs in groups]):
        cfg = compose(fixed + list(choice))
        for combo in itertools.product(*[[(k, v) for v in vs] for k, vs in values]):
            c = copy.deepcopy(cfg)
            for k, v in combo:
                OmegaConf.update(c, k, v, merge=False)
            _validate_values(c, checked)
