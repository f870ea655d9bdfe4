"""Everything in ics that relies on Hydra internals or Hydra's message text, in one place.

Hydra 1.3's public API covers composing a config and running a task; it does not cover parsing its
command-line flags without running, expanding a sweep the way its basic sweeper will, saying
*which* value was wrong in one line, composing with extra config folders before a run, or reading
`override /probe: off` in a defaults list (YAML 1.1 makes `off` a boolean, which Hydra refuses). Those
live here, and tests/test_hydra_compat.py pins
their behaviour so that a Hydra upgrade that changes them fails loudly in one obvious place.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from ics_cli.errors import UserError  # noqa: F401 - re-exported: the CLI's modules import it from here
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

HYDRA_FLAGS = (
    "-m/--multirun, --cfg job|hydra|all, --resolve, --package, --info, --hydra-help (see `ics run --hydra-help`)"
)


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
        raise UserError(unparsable(overrides, first_line(e))) from None


def unparsable(overrides: List[str], msg: str) -> str:
    """Hydra's parse error; for key=[a=b] (list items holding '=', e.g. report.baseline) the quoting
    Hydra's grammar needs."""
    for o in overrides:
        m = re.fullmatch(r"([\w./+~-]+)=\[([^\]\"']*=[^\]\"']*)\]", o)
        if m:
            items = ",".join(f'"{i.strip()}"' for i in m.group(2).split(","))
            return (
                f"{o} cannot be parsed: list items holding '=' must be quoted: '{m.group(1)}=[{items}]' "
                "(the outer single quotes are for the shell)"
            )
    return f"cannot parse overrides {overrides}: {msg}"


def expand_sweep(overrides: List[str], sweeper_params: Optional[Dict[str, str]] = None) -> List[List[str]]:
    """The override list of every job, in Hydra's job order: what its BasicSweeper will launch
    (internal: BasicSweeper.split_arguments; the sweeper puts hydra.sweeper.params first, then the
    command line, and a later value of a key replaces an earlier one)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    params = [f"{k}={v}" for k, v in (sweeper_params or {}).items()]
    parsed = parse_overrides(params + list(overrides))
    check_job_count(parsed)  # before the product is built: range(0,100000000) would need ~8 GB
    try:
        (jobs,) = BasicSweeper.split_arguments(parsed, None)
    except Exception as e:  # e.g. an interval sweep the basic sweeper cannot run
        hint = (
            "; interval() is searched by an optimising sweeper: add hydra/sweeper=optuna (pip install 'ics[optuna]')"
            if "INTERVAL_SWEEP" in str(e)
            else ""
        )
        raise UserError(first_line(e) + hint) from None
    return [list(job) for job in jobs]


def search_space(overrides: List[str], sweeper_params: Optional[Dict[str, str]] = None) -> Dict[str, List[str]]:
    """{key: values to check} of an optimising sweeper's search space, as override values: each choice
    of a choice/list sweep, the first and last value of a range, both ends of an interval (as the
    sweeper would draw them: an int interval as ints). The sweeper puts hydra.sweeper.params first and
    the command line after; a later value of a key replaces an earlier one. (Reads the parsed sweep
    objects of hydra.core.override_parser.types, which sweeper plugins use too.)"""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    params = [f"{k}={v}" for k, v in (sweeper_params or {}).items()]
    space: Dict[str, List[str]] = {}
    for o in parse_overrides(params + list(overrides)):
        if not o.is_sweep_override():
            space.pop(o.get_key_element(), None)
            continue
        value = o.value()
        if isinstance(value, IntervalSweep):
            ends = [value.start, value.end]
            if "int" in (value.tags or set()) or (
                isinstance(value.start, int) and isinstance(value.end, int) and not isinstance(value.start, bool)
            ):
                ends = [int(v) for v in ends if v is not None]
            values = [str(v) for v in ends]
        elif isinstance(value, RangeSweep):
            items = list(o.sweep_string_iterator())
            values = [items[0], items[-1]] if items else []
        elif isinstance(value, ChoiceSweep):
            values = list(o.sweep_string_iterator())
        else:  # a glob or another sweep: Hydra's own iterator says what it means
            values = list(o.sweep_string_iterator())
        if not values:
            raise UserError(f"{o.input_line} gives the sweeper nothing to choose from")
        space[o.get_key_element()] = values
    return space


MAX_JOBS = 100_000  # jobs in one sweep; past this, ics asks for the sweep in parts


def sweep_sizes(parsed) -> Dict[str, int]:
    """{key: number of values} of parsed overrides, counted without enumerating them, by Hydra's
    rules (a later override of a key replaces an earlier one; internal: the sweep objects of
    hydra.core.override_parser.types, whose ranges BasicSweeper enumerates with Python's range or
    Hydra's Decimal FloatRange). A sweep the basic sweeper cannot enumerate (interval, glob) counts
    as 1: expanding it gives its own one-line error."""
    import math

    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    sizes: Dict[str, int] = {}
    for o in parsed:
        n, value = 1, o._value
        if o.is_sweep_override() and isinstance(value, ChoiceSweep):
            n = len(value.list)
        elif o.is_sweep_override() and isinstance(value, RangeSweep) and value.step:
            r = value.range()
            if isinstance(r, range):
                n = len(r)  # O(1)
            else:  # FloatRange: start + k·step for k = 0, 1, ... while short of stop, in Decimal
                n = max(0, math.ceil((r.stop - r.start) / r.step)) if r.step else 1  # type: ignore[operator]
        elif o.is_sweep_override() and isinstance(value, list):
            n = len(value)
        sizes[o.get_key_element()] = n
    return sizes


def check_job_count(parsed, limit: Optional[int] = None) -> int:
    """The number of jobs these overrides make (the product of each key's number of values); a
    UserError saying how to split the sweep when it is over `limit` (MAX_JOBS)."""
    limit = MAX_JOBS if limit is None else limit
    sizes = sweep_sizes(parsed)
    total = 1
    for n in sizes.values():
        total *= n
    if total <= limit:
        return total
    key, n = max(sizes.items(), key=lambda kv: kv[1])
    rest = total // n  # the jobs the other keys make for each value of the biggest one
    per = limit // rest  # values of `key` per part
    last = {o.get_key_element(): o.input_line for o in parsed}
    swept = " ".join(_cut(last[k]) for k, v in sizes.items() if v > 1)
    head = f"{swept} is a sweep of {total:,} jobs; at most {limit:,} are allowed"
    if per < 1:
        return _too_many(f"{head}: sweep fewer values of the other keys ({rest:,} jobs for each {key})")
    given = next(o for o in reversed(list(parsed)) if o.get_key_element() == key)
    r = given._value.range() if given.is_range_sweep() and not given._value.shuffle else None
    if isinstance(r, range):
        a, b = r[0], r[min(per, len(r)) - 1] + r.step
        c = r[min(2 * per, len(r)) - 1] + r.step
        step = "" if r.step == 1 else f",{r.step}"
        return _too_many(
            f"{head}: run it in parts of at most {per:,} values of {key}, e.g. {key}=range({a},{b}{step}) "
            f"then {key}=range({b},{c}{step}), ..."
        )
    return _too_many(f"{head}: run it in parts, each with at most {per:,} of {key}'s {n:,} values")


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _too_many(msg: str) -> int:
    raise UserError(msg)


def override_dirname(job: List[str], exclude) -> str:
    """A job's hydra.job.override_dirname as Hydra builds it with ics's settings (kv_sep "=",
    item_sep ","; internal: config_loader_impl.get_overrides_dirname): the job's overrides whose key is
    not excluded, sorted as text, joined by commas. Computed on the text, without parsing, so that a
    sweep of 100,000 jobs is named in milliseconds."""
    return ",".join(sorted(o for o in job if o.split("=", 1)[0].lstrip("+~").split("@", 1)[0] not in exclude))


def _plain(text: str) -> str:
    """OmegaConf's type errors, said as what is allowed."""
    if "could not be converted to Integer" in text:
        return "must be an integer (e.g. 5000)"
    if "could not be converted to Float" in text:
        return "must be a number (e.g. 0.1)"
    if "could not be converted to Boolean" in text:
        return "must be true or false"
    if "is not a ListConfig, list or tuple" in text or "Invalid value assigned: AnyNode is not a ListConfig" in text:
        return "must be a list, e.g. [100,100]"
    missing = re.search(r"field '([\w.]+)' is not Optional", text)
    if missing:  # null given where the key needs a value
        return _needs_value(missing.group(1))
    return text


def _needs_value(key: str) -> str:
    """What a key that cannot be null allows, from the schema (its choices where it has them)."""
    import dataclasses

    from ics.config import KINDS, Config
    from ics.config.fields import allowed

    group, _, name = key.partition(".")
    section = getattr(Config(), group, None)
    for cls in ([type(section)] if dataclasses.is_dataclass(section) else []) + list(KINDS.get(group, {}).values()):
        f = {f.name: f for f in dataclasses.fields(cls)}.get(name)
        if f is not None and f.metadata.get("choices") is not None:
            return f"allowed: {', '.join(allowed(f.metadata['choices']))}"
    return "must be set (null is not allowed)"


def explain(e: Exception, overrides: List[str], group_options, allowed_keys) -> str:
    """Hydra's composition error -> one line naming the value and what is allowed. Reads Hydra's
    exception types and, where they carry no structure, its message text."""
    if isinstance(e, MissingConfigException):
        missing = (e.missing_cfg_file or "").strip("/")
        group, _, option = missing.rpartition("/")
        if group:
            options = group_options(group)
            from ics_cli.launchers import install_hint

            hint = install_hint(option) if group == "hydra/launcher" else None
            if hint:
                return f"{group}={option} needs the {hint}; allowed now: {', '.join(options)}"
            if options:
                mine = (
                    ""
                    if group.startswith("hydra/")
                    else " (an option of your own: add its folder with --config-dir DIR or ICS_CONFIG_PATH)"
                )
                return f"{group}={option} is not an option; allowed: {', '.join(options)}{mine}"
        return first_line(e)
    cause = e.__cause__ or e.__context__
    msg = first_line(e)
    if msg.startswith("In '") and "raised while composing config" in msg:
        return _in_file(str(e))
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
        return unparsable(overrides, msg)
    if cause is not None:
        return f"{msg} {first_line(cause)}"
    return msg


def _in_file(text: str) -> str:
    """Hydra's "In 'model/m1': ConfigKeyError raised while composing config: / Key 'x' not in
    'MLPConfig' / full_key: model.x" (an option file that does not fit its schema) as one line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    where = lines[0].split("'")[1] if "'" in lines[0] else "?"
    detail = lines[1] if len(lines) > 1 else lines[0]
    key = next((ln.split("full_key:", 1)[1].strip() for ln in lines if ln.startswith("full_key:")), "")
    schema = next((ln.split("object_type=", 1)[1].strip() for ln in lines if ln.startswith("object_type=")), "")
    if "ConfigKeyError" in lines[0] and key:
        import dataclasses

        import ics.config

        cls = getattr(ics.config, schema, None)
        keys = ", ".join(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ""
        section = key.rpartition(".")[0]
        return f"{key} is not a config key (in {where}.yaml)" + (f"; keys in {section}: {keys}" if keys else "")
    if key:
        return f"{key} is invalid (in {where}.yaml): {_plain(detail)}"
    return f"{where}.yaml: {_plain(detail)}"


COMPOSE_ERRORS = (MissingConfigException, ConfigCompositionException, OverrideParseException)


def register_launcher(target: str, cls) -> None:
    """Make a launcher class of ics's `hydra_plugins.ics` package known to Hydra where its plugin scan
    missed it (internal: Hydra builds a launcher only from its plugin registry,
    Plugins.class_name_to_class, filled by scanning the hydra_plugins namespace; an editable install's
    import hook hides the package from pkgutil's scan, while an installed wheel is found as usual)."""
    from hydra.core.plugins import Plugins

    Plugins.instance().class_name_to_class.setdefault(target, cls)


# ----------------------------------------------------------------------------------------------
# defaults lists: on/off, and a base for plain option files


def read_defaults_lists(base_of: Callable[[str, Any], Optional[str]]) -> None:
    """Two readings of every defaults list Hydra loads (idempotent; internal:
    ConfigRepository._extract_defaults_list, which returns a config file's raw defaults list):

    - `override /probe: off` means the option named off. YAML 1.1 (Hydra's loader) reads bare
      on/off/yes/no as booleans, and Hydra refuses a boolean in a defaults list ("Unsupported item
      value in defaults : bool"); a boolean there can only mean an option named on or off.
    - An option file with no defaults list gets `base_of(config_path, cfg)` (e.g. /schema/model/mlp)
      as its base, so that a plain `model/my_mlp.yaml` holding only `widths: [64]` is a whole, typed
      MLP that `model.norm=none` can override, like the shipped files that name their schema.

    Applies to the shipped studies, user folders and joblib's worker processes (which import this
    module with the task) alike."""
    from hydra._internal.config_repository import ConfigRepository
    from omegaconf import DictConfig, ListConfig, OmegaConf

    original = ConfigRepository._extract_defaults_list
    if getattr(original, "_ics", False):
        return

    def extract_defaults_list(self, config_path, cfg):
        defaults = original(self, config_path, cfg)
        if isinstance(defaults, ListConfig):
            for item in defaults:
                if isinstance(item, DictConfig):
                    for key in list(item.keys()):
                        value = item._get_node(key)._value()
                        if isinstance(value, bool):
                            item[key] = "on" if value else "off"
            if len(defaults) == 0 and config_path:
                base = base_of(config_path, cfg)
                if base:
                    defaults = OmegaConf.create([f"{base}@_here_", "_self_"])
        return defaults

    extract_defaults_list._ics = True
    ConfigRepository._extract_defaults_list = extract_defaults_list


# ----------------------------------------------------------------------------------------------
# composing with extra config folders


def init_compose(main: str, dirs, config_name: Optional[str] = None) -> None:
    """Start a Compose API session whose search path is Hydra's own, `main` (pkg://ics.configs),
    then each user folder in order, then the ConfigStore — the order `hydra.main` uses with
    --config-dir and hydra.searchpath (internal: create_config_search_path, Hydra.create_main_hydra2;
    the public initialize_* functions take one folder only)."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra

    search_path = create_config_search_path(main)
    for d in dirs:
        search_path.prepend(provider="ics config folder", path=f"file://{d}", anchor=SearchPathQuery(provider="schema"))
    GlobalHydra.instance().clear()
    Hydra.create_main_hydra2(task_name="ics", config_search_path=search_path)  # sets GlobalHydra
