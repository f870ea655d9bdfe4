"""Shell completion of Hydra overrides for `ics run`, `ics sweep` and `ics config`: group names and
their options (`model=` → cnn, dln, mlp), config keys (`trainer.` → trainer.steps=, ...), the
allowed values of keys that have them, studies and launchers. Read from the schema (no Hydra, no
torch import unless a registry's choices are asked for), so Tab answers at once.

bash splits words at '=' (COMP_WORDBREAKS), zsh does not: `model=cn<Tab>` arrives as
["model", "=", "cn"] from bash and as "model=cn" from zsh; both are handled.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

FLAGS = ["-m", "--multirun", "--cfg", "--hydra-help", "--config-dir", "--config-name"]

# Typer's bash script, plus: a lone candidate ending in '=' (model.norm=) waits for its value, so
# bash adds no space after it
BASH_SCRIPT = """
%(complete_func)s() {
    local IFS=$'\\n'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \\
                   COMP_CWORD=$COMP_CWORD \\
                   %(autocomplete_var)s=complete_bash $1 ) )
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
        compopt -o nospace
    fi
    return 0
}

complete -o default -F %(complete_func)s %(prog_name)s
"""


SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
COMPLETION_FLAGS = ("--show-completion", "--install-completion")
# Typer's switch for its completion options to take the shell as their value (no guessing)
TAKE_SHELL = "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"


def shell_argument(argv: List[str], environ) -> None:
    """`ics --show-completion zsh` means zsh: Typer would guess the shell from the parent process
    instead (and fail with none above it). So the completion options take a shell as their value;
    one given without a shell gets the detected one, else $SHELL's, else bash."""
    at = next((i for i, a in enumerate(argv) if a.split("=", 1)[0] in COMPLETION_FLAGS), None)
    if at is None:
        return
    environ[TAKE_SHELL] = "1"
    if "=" in argv[at] or (at + 1 < len(argv) and argv[at + 1] in SHELLS):
        return
    shell = None
    try:
        import shellingham

        shell = shellingham.detect_shell()[0]
    except Exception:  # noqa: BLE001 - no shell above (a script, a container): fall back
        pass
    if shell not in SHELLS:
        shell = os.path.basename(environ.get("SHELL", ""))
    argv.insert(at + 1, shell if shell in SHELLS else "bash")


def use_own_scripts() -> None:
    """Make `ics --install-completion` / `--show-completion` write BASH_SCRIPT, and zsh's answers leave
    no space after a key= (Typer keeps its scripts in a table and its shells as classes; both modules
    are imported with typer already)."""
    import sys

    from typer import _completion_classes, _completion_shared

    shell_argument(sys.argv, os.environ)
    _completion_shared._completion_scripts["bash"] = BASH_SCRIPT
    _completion_classes.BashComplete.source_template = BASH_SCRIPT
    _completion_classes.ZshComplete.complete = zsh_answer


def zsh_answer(self) -> str:
    """What Typer's zsh function evaluates: the candidates through _describe, and those ending in '='
    (model.norm=) with compadd's -S '' so that zsh adds no space and the value can follow. Typer's own
    answer (_arguments) always adds a space."""
    args, incomplete = self.get_completion_args()
    return zsh_script([(i.value, i.help) for i in self.get_completions(args, incomplete)])


def zsh_script(items: Sequence[Tuple[str, Optional[str]]]) -> str:
    if not items:
        return "_files"

    def entry(value: str, help: Optional[str]) -> str:  # 'value:help', quoted; ':' escaped for _describe
        text = value.replace("\\", "\\\\").replace(":", "\\:")
        text += f":{' '.join(str(help).split())}" if help else ""
        return "'" + text.replace("'", "'\\''") + "'"

    out = ["local -a _ics_c;"]
    for more, group in (
        ("", [i for i in items if not i[0].endswith("=")]),
        (" -S ''", [i for i in items if i[0].endswith("=")]),
    ):
        if group:
            out.append(f"_ics_c=({' '.join(entry(*i) for i in group)}); _describe -t values value _ics_c{more};")
    return " ".join(out)


def fast_answer(environ) -> Optional[str]:
    """The answer to a Tab on an override of run, sweep or config, as Typer would give it, without
    building Typer's command (that imports pydantic: about half a second a Tab); None where Typer
    answers (command names, options and their values)."""
    mode = environ.get("_ICS_COMPLETE")
    if mode == "complete_bash" and "COMP_WORDS" in environ:
        words = _split(environ["COMP_WORDS"])
        cword = int(environ.get("COMP_CWORD", len(words)))
        args, incomplete = words[1:cword], words[cword] if cword < len(words) else ""
    elif mode == "complete_zsh":
        line = environ.get("_TYPER_COMPLETE_ARGS", "")
        args = _split(line)[1:]
        incomplete = args.pop() if args and not line.endswith(" ") else ""
    else:
        return None
    if not args or args[0] not in ("run", "sweep", "config") or incomplete.startswith("-") or args[-1].startswith("-"):
        return None
    values = complete_override(None, args[1:], "" if incomplete == "=" else incomplete)
    return "\n".join(values) if mode == "complete_bash" else zsh_script([(v, None) for v in values])


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
    from ics_cli.configdirs import options, studies
    from ics_cli.launchers import OPTIONS

    from ics.config import GROUPS

    dirs = _dirs(args)
    out = {g: sorted(options(g, dirs)) for g in GROUPS}
    out["experiment"] = sorted(studies(dirs))
    out["hydra/launcher"] = list(OPTIONS)
    return out


def _sections(args: Sequence[str]):
    """(section name, dataclass) of every config section, with the options chosen on the line."""
    from ics_cli.configdirs import kind_of

    from ics.config import KINDS, Config

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
        # a registry not filled yet (its own len() would fill it, importing torch)
        if isinstance(choices, dict) and not dict.__len__(choices):
            return registered_names(choices)
        from ics.config.fields import allowed

        return allowed(choices)
    if f.type in (bool, "bool"):
        return ["true", "false"]
    return []


def registered_names(registry) -> List[str]:
    """The names a registry will hold, read from the parts' sources (`NORMS.register("batch")`) rather
    than by importing them, which imports torch (a Tab must answer at once; a test checks the two agree)."""
    import re
    from pathlib import Path

    from ics import registry as reg

    var = next((name for name, value in vars(reg).items() if value is registry), None)
    if var is None:
        return []
    pattern = re.compile(rf"\b{var}\.register\(\s*[\"']([A-Za-z0-9_.-]+)[\"']")  # not "<name>" in a docstring
    names: List[str] = []
    root = Path(reg.__file__).parent  # the ics package (find_spec would import the parent packages)
    for module in reg.PARTS:
        where = root.joinpath(*module.split(".")[1:])
        files = sorted(where.rglob("*.py")) if where.is_dir() else [where.with_suffix(".py")]
        for path in files:
            names += [n for n in pattern.findall(path.read_text(encoding="utf-8")) if n not in names]
    return names


def _joined(args: Sequence[str]) -> List[str]:
    """bash splits words at '=' and ':' (COMP_WORDBREAKS): ["model", "=", "cnn"] -> ["model=cnn"] and
    ["hydra.searchpath", "=", "[file", ":", "//conf]"] -> ["hydra.searchpath=[file://conf]"]; a trailing
    ["key", "="] stays as it is (the cursor is right after the '=')."""
    out: List[str] = []
    i = 0
    while i < len(args):
        if args[i] in ("=", ":") and out and i + 1 < len(args):
            out[-1] += args[i] + args[i + 1]
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


def _after_comma(values: List[str], part: str) -> List[str]:
    """Values of a sweep being typed ("none,ba" -> "none,batch"): the last item is completed, the items
    before it stay, and values already listed are not offered again."""
    head, comma, last = part.rpartition(",")
    given = set(head.split(",")) if comma else set()
    return [head + comma + v for v in values if v.startswith(last) and v not in given]


def candidates(args: Sequence[str], incomplete: str) -> List[str]:
    args = _joined(list(args))
    if incomplete == "=" and args:  # bash, cursor right after '='
        return _values(args[-1], args)
    if len(args) >= 2 and args[-1] == "=":  # bash: key, '=', partial value
        return _after_comma(_values(args[-2], args), incomplete)
    if "=" in incomplete:  # zsh (and bash with '=' removed from COMP_WORDBREAKS)
        key, _, part = incomplete.partition("=")
        return [f"{key}={v}" for v in _after_comma(_values(key, args), part)]
    words = [f"{g}=" for g in _groups(args)] + [f"{k}=" for k in _keys(args)] + FLAGS
    return [w for w in words if w.startswith(incomplete)]


def _line_words() -> List[str]:
    """The words before the one being completed, from the shell's completion variables (Typer
    hands the callback only this parameter's values, not '=' tokens nor earlier overrides)."""
    import os

    if "COMP_WORDS" in os.environ:  # bash
        words = _split(os.environ["COMP_WORDS"])
        cword = int(os.environ.get("COMP_CWORD", len(words)))
        # click turns a current word of "=" into "": keep the '=' so the key before it is known
        return words[1:cword] + (["="] if cword < len(words) and words[cword] == "=" else [])
    words = _split(os.environ.get("_TYPER_COMPLETE_ARGS", ""))  # zsh, fish: the last is incomplete
    return words[1:-1] if words else []


def _split(line: str) -> List[str]:
    """Shell words; a line cut inside quotes (a quoted override still being typed) splits at spaces."""
    import shlex

    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


def complete_override(ctx, args: List[str], incomplete: str) -> List[str]:
    """Typer's autocompletion hook for the overrides argument."""
    try:
        words = _line_words()
        if words and words[0] == "sweep":
            words = _joined(words[1:])
            study = next(
                (
                    i
                    for i, w in enumerate(words)
                    if not w.startswith("-") and (i == 0 or words[i - 1] not in ("-cd", "--config-dir", "--config_dir"))
                ),
                None,
            )
            if study is None:  # `ics sweep --config-dir X de<Tab>`: the study is what is being typed
                return [name for name in _studies(words) if name.startswith(incomplete)]
            words = words[:study] + words[study + 1 :]
        elif words and words[0] in ("run", "config"):
            words = words[1:]
        return candidates(words, incomplete)
    except Exception:  # never print a traceback into a shell prompt
        return []


def _studies(words: Sequence[str]) -> List[str]:
    from ics_cli.configdirs import studies

    return list(studies(_dirs(words)))


def complete_study(incomplete: str) -> List[str]:
    try:
        words = _joined(_line_words())
    except Exception:
        words = []
    return [name for name in _studies(words) if name.startswith(incomplete)]


def complete_section(incomplete: str) -> List[str]:
    """`ics list <Tab>`: the config sections; "group=" (zsh keeps it whole) gives that group's options."""
    try:
        from ics.config import Config

        if "=" in incomplete:
            group, _, part = incomplete.partition("=")
            return [f"{group}={v}" for v in _groups([]).get(group, []) if v.startswith(part)]
        base = Config()
        return [
            name for name in vars(base) if dataclasses.is_dataclass(getattr(base, name)) and name.startswith(incomplete)
        ]
    except Exception:  # never print a traceback into a shell prompt
        return []
