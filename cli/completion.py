"""Shell completion of Hydra overrides for `ics run`, `ics sweep` and `ics config`: group names and
their options (`model=` → cnn, dln, mlp), config keys (`trainer.` → trainer.steps=, ...), the
allowed values of keys that have them, studies and launchers. Read from the schema (no Hydra, no
torch import unless a registry's choices are asked for), so Tab answers at once.

bash splits words at '=' (COMP_WORDBREAKS), zsh does not: `model=cn<Tab>` arrives as
["model", "=", "cn"] from bash and as "model=cn" from zsh; both are handled.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Sequence

FLAGS = ["-m", "--multirun", "--cfg", "--hydra-help", "--config-dir", "--config-name"]


def _dirs(args: Sequence[str]) -> List:
    """The user config folders on the line (-cd, --config-dir, hydra.searchpath) and in ICS_CONFIG_PATH."""
    from ics_cli.configdirs import split

    try:
        return split(list(args)).dirs
    except Exception:  # a folder that does not exist (yet): complete from the others
        try:
            return split([]).dirs
        except Exception:
            return []


def _groups(args: Sequence[str] = ()) -> Dict[str, List[str]]:
    from ics.config import GROUPS
    from ics_cli.configdirs import options, studies
    from ics_cli.launchers import OPTIONS

    dirs = _dirs(args)
    out = {g: sorted(options(g, dirs)) for g in GROUPS}
    out["experiment"] = sorted(studies(dirs))
    out["hydra/launcher"] = list(OPTIONS)
    return out


def _sections(args: Sequence[str]):
    """(section name, dataclass) of every config section, with the options chosen on the line."""
    from ics.config import KINDS, Config
    from ics_cli.configdirs import kind_of

    chosen = {}
    for a in args:
        key, _, value = a.partition("=")
        if key in KINDS and value:
            kind = kind_of(key, value, _dirs(args))
            if kind in KINDS[key]:
                chosen[key] = KINDS[key][kind]
    base = Config()
    for f in dataclasses.fields(base):
        value = getattr(base, f.name)
        if dataclasses.is_dataclass(value):
            yield f.name, chosen.get(f.name, type(value))


def _keys(args: Sequence[str]) -> Dict[str, dataclasses.Field]:
    out = {}
    for section, cls in _sections(args):
        for f in dataclasses.fields(cls):
            if f.name != "name":
                out[f"{section}.{f.name}"] = f
    return out


def _values(key: str, args: Sequence[str]) -> List[str]:
    groups = _groups(args)
    if key.lstrip("+") in groups:
        return groups[key.lstrip("+")]
    f = _keys(args).get(key)
    if f is None:
        return []
    choices = f.metadata.get("choices")
    if choices is not None:
        if hasattr(choices, "keys") and not len(choices):  # a registry: fill it (imports torch)
            import ics  # noqa: F401
        from ics.config.fields import allowed

        return allowed(choices)
    if f.type in (bool, "bool"):
        return ["true", "false"]
    return []


def _joined(args: Sequence[str]) -> List[str]:
    """bash's ["model", "=", "cnn"] -> ["model=cnn"]; a trailing ["key", "="] stays as it is."""
    out: List[str] = []
    i = 0
    while i < len(args):
        if i + 2 < len(args) and args[i + 1] == "=":
            out.append(f"{args[i]}={args[i + 2]}")
            i += 3
        else:
            out.append(args[i])
            i += 1
    return out


def candidates(args: Sequence[str], incomplete: str) -> List[str]:
    args = _joined(list(args))
    if incomplete == "=" and args:  # bash, cursor right after '='
        return _values(args[-1], args)
    if len(args) >= 2 and args[-1] == "=":  # bash: key, '=', partial value
        return [v for v in _values(args[-2], args) if v.startswith(incomplete)]
    if "=" in incomplete:  # zsh (and bash with '=' removed from COMP_WORDBREAKS)
        key, _, part = incomplete.partition("=")
        return [f"{key}={v}" for v in _values(key, args) if v.startswith(part)]
    words = [f"{g}=" for g in _groups(args)] + [f"{k}=" for k in _keys(args)] + FLAGS
    return [w for w in words if w.startswith(incomplete)]


def _line_words() -> List[str]:
    """The words before the one being completed, from the shell's completion variables (Typer
    hands the callback only this parameter's values, not '=' tokens nor earlier overrides)."""
    import os
    import shlex

    if "COMP_WORDS" in os.environ:  # bash
        words = shlex.split(os.environ["COMP_WORDS"])
        cword = int(os.environ.get("COMP_CWORD", len(words)))
        # click turns a current word of "=" into "": keep the '=' so the key before it is known
        return words[1:cword] + (["="] if cword < len(words) and words[cword] == "=" else [])
    words = shlex.split(os.environ.get("_TYPER_COMPLETE_ARGS", ""))  # zsh, fish: the last is incomplete
    return words[1:-1] if words else []


def complete_override(ctx, args: List[str], incomplete: str) -> List[str]:
    """Typer's autocompletion hook for the overrides argument."""
    try:
        words = _line_words()
        if words and words[0] in ("run", "sweep", "config"):
            words = words[2:] if words[0] == "sweep" else words[1:]
        return candidates(words, incomplete)
    except Exception:  # never print a traceback into a shell prompt
        return []


def complete_study(incomplete: str) -> List[str]:
    from ics_cli.configdirs import studies

    try:
        words = _line_words()
    except Exception:
        words = []
    return [name for name in studies(_dirs(words)) if name.startswith(incomplete)]
