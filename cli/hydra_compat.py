"""Everything in ics that relies on Hydra internals or Hydra's message text, in one place.

Hydra 1.3's public API covers composing a config and running a task; it does not cover parsing its
command-line flags without running, expanding a sweep the way its basic sweeper will, or saying
*which* value was wrong in one line. Those three live here, and tests/test_hydra_compat.py pins
their behaviour so that a Hydra upgrade that changes them fails loudly in one obvious place.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

HYDRA_FLAGS = ("-m/--multirun, --cfg job|hydra|all, --resolve, --package, --info, --hydra-help "
               "(see `ics run --hydra-help`)")


# launchers that come from optional extras: say what to install instead of "not an option"
LAUNCHER_EXTRAS = {
    "joblib": "joblib launcher: pip install 'ics[joblib]' (or hydra-joblib-launcher)",
    "submitit_local": "submitit launcher: pip install 'ics[submitit]' (or hydra-submitit-launcher)",
    "submitit_slurm": "submitit launcher: pip install 'ics[submitit]' (or hydra-submitit-launcher)",
}


class UserError(Exception):
    """A one-line message for the user."""


def first_line(e: BaseException) -> str:
    return next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)


def parse_args(args: List[str]):
    """Hydra's own argument parser (internal: hydra._internal.utils.get_args_parser); its usage
    block becomes one line."""
    from hydra._internal.utils import get_args_parser

    def error(message: str):
        raise UserError(f"{message}; Hydra flags: {HYDRA_FLAGS}")

    parser = get_args_parser()
    parser.error = error  # argparse would print its usage block and exit
    return parser.parse_intermixed_args(args)


def parse_overrides(overrides: List[str]):
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as e:
        raise UserError(f"cannot parse overrides {overrides}: {first_line(e)}") from None


def expand_sweep(overrides: List[str], sweeper_params: Optional[Dict[str, str]] = None) -> List[List[str]]:
    """The override list of every job, in Hydra's job order: what its BasicSweeper will launch
    (internal: BasicSweeper.split_arguments; the sweeper puts hydra.sweeper.params first, then the
    command line, and a later value of a key replaces an earlier one)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    params = [f"{k}={v}" for k, v in (sweeper_params or {}).items()]
    parsed = parse_overrides(params + list(overrides))
    try:
        (jobs,) = BasicSweeper.split_arguments(parsed, None)
    except Exception as e:  # e.g. an interval sweep the basic sweeper cannot run
        raise UserError(first_line(e)) from None
    return [list(job) for job in jobs]


def _plain(text: str) -> str:
    """OmegaConf's type errors, said as what is allowed."""
    if "could not be converted to Integer" in text:
        return "must be an integer (e.g. 5000)"
    if "could not be converted to Float" in text:
        return "must be a number (e.g. 0.1)"
    if "could not be converted to Boolean" in text:
        return "must be true or false"
    if "is not a ListConfig, list or tuple" in text:
        return "must be a list, e.g. [100,100]"
    return text


def explain(e: Exception, overrides: List[str], group_options, allowed_keys) -> str:
    """Hydra's composition error -> one line naming the value and what is allowed. Reads Hydra's
    exception types and, where they carry no structure, its message text."""
    if isinstance(e, MissingConfigException):
        missing = (e.missing_cfg_file or "").strip("/")
        group, _, option = missing.rpartition("/")
        if group:
            options = group_options(group)
            hint = LAUNCHER_EXTRAS.get(option) if group == "hydra/launcher" else None
            if hint:
                return f"{group}={option} needs the {hint}; allowed now: {', '.join(options)}"
            if options:
                return f"{group}={option} is not an option; allowed: {', '.join(options)}"
        return first_line(e)
    cause = e.__cause__ or e.__context__
    msg = first_line(e)
    if msg.startswith("Error merging override ") and cause is not None:
        return f"{msg.split(' ', 3)[3]} is invalid: {_plain(first_line(cause))}"
    if "Could not override '" in msg or "Could not append to config" in msg:
        key = msg.split("'")[1] if "'" in msg else "?"
        given = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").split("=")[0] == key), "?")
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
            return f"{key} is not a config key; {allowed_keys(key)}"
        return f"{key}={given} is invalid: {_plain(first_line(cause)) if cause else msg}"
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and "Key '" in str(cause):
        text = str(cause)
        key = text.split("full_key: ")[-1].split()[0] if "full_key: " in text else text.split("'")[1]
        return f"{key} is not a config key; {allowed_keys(key)}"
    if isinstance(e, OverrideParseException):
        return f"cannot parse overrides {overrides}: {msg}"
    if cause is not None:
        return f"{msg} {first_line(cause)}"
    return msg


COMPOSE_ERRORS = (MissingConfigException, ConfigCompositionException, OverrideParseException)


def register_launcher(target: str, cls) -> None:
    """Make a launcher class known to Hydra under a `hydra_plugins.*` name (internal: Hydra builds a
    launcher only from its plugin registry, Plugins.class_name_to_class, filled by scanning the
    hydra_plugins namespace packages; ics ships none, so it adds its own entry)."""
    from hydra.core.plugins import Plugins

    Plugins.instance().class_name_to_class.setdefault(target, cls)
