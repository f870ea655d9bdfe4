"""One place per config key: its default, what it means (with units) and what values it allows.

Every schema field is declared with :func:`opt`, which stores the doc string and the allowed
values (a fixed tuple, a registry, or a :class:`Rule`) in the dataclass field's metadata. The one
validator, :func:`check_fields`, and the help that lists keys (`ics list <group>`) read them from
there, so an allowed value is written down exactly once and every error message quotes it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, List, Optional, Tuple


class ConfigError(ValueError):
    """A bad config value. Its message is one line: the key, the bad value and what is allowed."""


@dataclass(frozen=True)
class Rule:
    """A value check with the sentence that says what is allowed ("must be > 0")."""

    test: Callable[[Any], bool]
    text: str

    def __call__(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def gt(x: float) -> Rule:
    return Rule(lambda v: _num(v) and v > x, f"must be a finite number > {x:g}")


def ge(x: float) -> Rule:
    return Rule(lambda v: _num(v) and v >= x, f"must be a finite number >= {x:g}")


def between(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Rule:
    def test(v):
        return _num(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

    fmt = lambda x: f"2**{int(x + 1).bit_length() - 1} - 1" if isinstance(x, int) and x > 10**6 else f"{x:g}"  # noqa: E731
    return Rule(test, f"must be in {'(' if lo_open else '['}{fmt(lo)}, {fmt(hi)}{')' if hi_open else ']'}")


def each(rule: Rule, min_len: int = 0) -> Rule:
    need = f"a list of {min_len}+ values, each " if min_len else "every value "
    return Rule(lambda v: len(v) >= min_len and all(rule(x) for x in v), need + rule.text.replace("must be ", ""))


def opt(default: Any, doc: str, *, choices: Any = None, rule: Optional[Rule] = None) -> Any:
    """A schema field. `choices`: a tuple of allowed values, or an object with keys (a registry)."""
    meta = {"doc": doc, "choices": choices, "rule": rule}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def allowed(choices: Any) -> List[str]:
    return [str(c) for c in (choices.keys() if hasattr(choices, "keys") else choices)]


def fmt_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(fmt_value(x) for x in v) + "]"
    return repr(v) if isinstance(v, str) else str(v)


def field_docs(obj_or_cls: Any, prefix: str = "") -> List[Tuple[str, Any, str, str]]:
    """(key, default or current value, doc, allowed) for every leaf field, for help screens."""
    out = []
    obj = obj_or_cls if not isinstance(obj_or_cls, type) else obj_or_cls()
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out += field_docs(value, f"{prefix}{f.name}.")
            continue
        md = f.metadata
        allow = (
            ", ".join(allowed(md["choices"]))
            if md.get("choices") is not None
            else (md["rule"].text if md.get("rule") else "")
        )
        out.append((f"{prefix}{f.name}", value, md.get("doc", ""), allow))
    return out


def check_fields(obj: Any, prefix: str = "") -> None:
    """Check every field of a (nested) dataclass against its choices and rule; raise ConfigError."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_fields(value, key + ".")
            continue
        choices, rule = f.metadata.get("choices"), f.metadata.get("rule")
        if (
            choices is not None
            and value not in allowed(choices)
            and value not in tuple(choices.keys() if hasattr(choices, "keys") else choices)
        ):
            raise ConfigError(f"{key}={fmt_value(value)} is invalid: allowed: {', '.join(allowed(choices))}")
        if rule is not None and not rule(value):
            raise ConfigError(f"{key}={fmt_value(value)} is invalid: {rule.text}")


def require(ok: bool, key: str, value: Any, text: str) -> None:
    """A cross-field check: the same one-line message format as the per-field rules."""
    if not ok:
        raise ConfigError(f"{key}={fmt_value(value)} is invalid: {text}")


def names(items: Iterable[Any]) -> str:
    return ", ".join(str(i) for i in items)
