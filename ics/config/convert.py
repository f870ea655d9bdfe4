"""Configs to and from plain dicts (summary.json, checkpoints, Hydra's DictConfig), strictly.

`from_dict` picks each section's dataclass by its `name` and rejects keys the schema lacks with a
one-line ConfigError; `validate` adds the checks that involve more than one key.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Dict

from ics.config.fields import ConfigError, allowed, check_fields, fmt_value, require
from ics.config.norms import batch_statistics
from ics.config.schema import GROUPS, Config, schema_of

# OmegaConf is imported where it is used: shell completion imports this module on every Tab


def to_dict(cfg: Config) -> Dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cfg))


def from_dict(d: Dict[str, Any]) -> Config:
    """A plain nested dict (every key optional) -> Config. Unknown keys and wrong types raise."""
    if _is_dictconfig(d):  # drop Hydra's node first: its interpolations resolve only inside a job
        from omegaconf import OmegaConf

        d = OmegaConf.to_container(OmegaConf.masked_copy(d, [k for k in d.keys() if k != "hydra"]), resolve=True)
    else:  # plain data (a record, a checkpoint, a plan): taken as it is, never resolved
        reject_interpolations(d)
    d = {k: v for k, v in dict(d).items() if k != "hydra"}
    _reject_unknown(d, Config, "")
    kwargs = {}
    for f in dataclasses.fields(Config):
        if f.name not in d:
            continue
        value = d[f.name]
        kwargs[f.name] = section_from_dict(f.name, value) if isinstance(value, dict) else value
    return Config(**kwargs)


def reject_interpolations(d: Any, prefix: str = "") -> None:
    """A config read as data holds plain values only. A string holding `${` would be resolved by
    OmegaConf when the dataclass is built (`${oc.env:TOKEN}` would read the reader's environment), so
    it is refused, naming the key."""
    if isinstance(d, dict):
        for k, v in d.items():
            reject_interpolations(v, f"{prefix}{k}.")
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            reject_interpolations(v, f"{prefix}{i}.")
    elif isinstance(d, str) and "${" in d:
        shown = d if len(d) <= 60 else d[:57] + "..."
        raise ConfigError(
            f"{prefix.rstrip('.')}={shown} is an interpolation; a stored config holds plain values "
            "only and is never resolved"
        )


def _is_dictconfig(d) -> bool:
    """Without omegaconf imported, nothing is a DictConfig (and this module need not import it)."""
    omegaconf = sys.modules.get("omegaconf")
    return omegaconf is not None and isinstance(d, omegaconf.DictConfig)


def section_from_dict(name: str, value: Dict[str, Any]):
    """One section of Config from a plain dict: its dataclass (by kind), unknown keys and types checked."""
    cls = schema_of(name, value.get("name")) if name in GROUPS else _field_type(Config, name)
    _reject_unknown(value, cls, name + ".")
    return _build(cls, value, name)


def _field_type(cls, name: str):
    default = getattr(cls(), name)
    return type(default)


def _build(cls, values: Dict[str, Any], key: str):
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    try:
        node = OmegaConf.merge(OmegaConf.structured(cls), values)
        return OmegaConf.to_object(node)
    except MissingMandatoryValue as e:
        sub = (getattr(e, "full_key", "") or "").split(".")[-1]
        raise ConfigError(
            f"{key}.{sub} must be set for {key}={values.get('name', cls.__name__)} (it has no default)"
        ) from None
    except OmegaConfBaseException as e:
        full = getattr(e, "full_key", "") or ""
        sub = full.split(".")[-1] if full else ""
        where = f"{key}.{sub}" if sub else key
        value = values.get(sub, "?") if sub else values
        first = str(e).strip().splitlines()[0]
        if "could not be converted to Integer" in first:
            first = "must be an integer (e.g. 5000)"
        elif "is not a ListConfig" in first:
            first = "must be a list, e.g. [100,100]"
        elif "is not Optional" in first:  # null where a value is needed: say which values are
            f = next((f for f in dataclasses.fields(cls) if f.name == sub), None)
            choices = f.metadata.get("choices") if f is not None else None
            first = f"allowed: {', '.join(allowed(choices))}" if choices is not None else "must be set (not null)"
        raise ConfigError(f"{where}={fmt_value(value)} is invalid: {first}") from None


def _reject_unknown(d: Dict[str, Any], cls, prefix: str) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    for key in d:
        if key not in known:
            where = f"keys in {prefix.rstrip('.')}" if prefix else "top-level keys"
            raise ConfigError(f"{prefix}{key} is not a config key; {where}: {', '.join(known)}")


def _two_per_batch(norm: str) -> str:
    why = "BN needs" if norm == "batch" else "its batch statistics need"
    return f"must be >= 2 with model.norm={norm} ({why} 2+ examples per batch)"


def _canonical_p(p):
    """model.norm_p as 1, 2 or inf however written (1.0, 2.0, Infinity); anything else as given."""
    try:
        v = float(str(p))
    except ValueError:
        return p
    return "inf" if v == float("inf") else (str(int(v)) if v in (1.0, 2.0) else p)


def validate(cfg: Config) -> None:
    """Every per-key rule (ics.config.fields) plus the checks that involve several keys; model.norm_p is
    rewritten in its canonical form (1.0 -> 1)."""
    from ics.config.schema import KINDS

    m, o, t, d = cfg.model, cfg.optim, cfg.trainer, cfg.data
    m.norm_p = _canonical_p(m.norm_p)
    if m.norm in batch_statistics() and isinstance(t.batch_size, int) and t.batch_size < 2:  # the stricter rule first
        require(False, "trainer.batch_size", t.batch_size, _two_per_batch(m.norm))
    check_fields(cfg)
    for group, kinds in KINDS.items():
        node = getattr(cfg, group)
        require(
            node.name in kinds and isinstance(node, kinds[node.name]),
            f"{group}.name",
            node.name,
            f"is the {group} kind; allowed: {', '.join(kinds)}",
        )
    if hasattr(m, "kernel_size"):
        require(m.kernel_size % 2 == 1, "model.kernel_size", m.kernel_size, "must be odd and > 0")
    if hasattr(o, "nesterov"):
        require(not o.nesterov or o.momentum > 0, "optim.nesterov", o.nesterov, "needs optim.momentum > 0")
    if o.name == "momentum":
        require(o.momentum > 0, "optim.momentum", o.momentum, "must be > 0 for optim=momentum (optim=sgd is plain SGD)")
    if m.norm in batch_statistics():
        require(t.batch_size >= 2, "trainer.batch_size", t.batch_size, _two_per_batch(m.norm))
    require(
        t.device in ("auto", "cpu", "cuda") or (str(t.device).startswith("cuda:") and str(t.device)[5:].isdigit()),
        "trainer.device",
        t.device,
        "allowed: auto, cpu, cuda, cuda:N",
    )
    require(
        t.threads == "auto" or (isinstance(t.threads, int) and not isinstance(t.threads, bool) and t.threads > 0),
        "trainer.threads",
        t.threads,
        "allowed: auto or a positive integer",
    )
    require(t.progress in ("auto", True, False), "trainer.progress", t.progress, "allowed: auto, true, false")
    require(
        t.channels_last in ("auto", True, False), "trainer.channels_last", t.channels_last, "allowed: auto, true, false"
    )
    if getattr(d, "image_folder", None) == "???":
        raise ConfigError(
            f"data.image_folder must be set for data={d.name} (a folder with train/<class>/ and test/<class>/ images)"
        )
