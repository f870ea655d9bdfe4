"""The config: a dataclass schema (one class per option, ics/config/schema.py), per-key rules
(fields.py), strict dict conversion and cross-key validation (convert.py)."""

from typing import TYPE_CHECKING

from ics.config import schema as _schema
from ics.config.convert import from_dict, to_dict, validate
from ics.config.fields import ConfigError, field_docs
from ics.config.schema import GROUPS, KINDS, MISSING, schema_of

if TYPE_CHECKING:  # the names the globals().update below adds, for type checkers
    from ics.config.schema import *  # noqa: F403

# every schema class (Config, MLPConfig, ProbeConfig, ...) under ics.config
globals().update(
    {
        n: getattr(_schema, n)
        for n in dir(_schema)
        if n[:1].isupper()
        and isinstance(getattr(_schema, n), type)
        and n not in ("Any", "Dict", "List", "Optional", "Type", "Rule")
    }
)

__all__ = [n for n in dir() if not n.startswith("_")]
