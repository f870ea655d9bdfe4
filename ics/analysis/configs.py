"""Flat configs and how runs are grouped: the keys that say what was trained, and which do not."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

from ics.config.schema import MACHINE_KEYS

LR_KEY, SEED_KEY = "optim.lr", "trainer.seed"
# Keys that do not change what is trained (where files live, which device, bookkeeping, when it is
# evaluated or checkpointed) and the report's own settings: runs differing only in these belong
# together. Every instrument's section is neutral too: instruments never change training.
NEUTRAL_KEYS = {
    *MACHINE_KEYS,
    "trainer.checkpoint_every",
    "trainer.eval_every",
    "trainer.eval_batch_size",
    "trainer.eval_log_points",
    "trainer.train_eval_size",
    "trainer.log_every",
}
NEUTRAL_PREFIXES = ("report.", "tolerance.", "sweep.")


def neutral_prefixes() -> Tuple[str, ...]:
    from ics.registry import INSTRUMENTS

    return NEUTRAL_PREFIXES + tuple(f"{k}." for k in INSTRUMENTS)


def flatten(d: dict, prefix: str = "") -> Dict[str, Any]:
    """{"model": {"norm": "batch"}} -> {"model.norm": "batch"}; lists become tuples (hashable)."""
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = tuple(v) if isinstance(v, list) else v
    return out


def parse_override(text: str) -> Optional[Tuple[str, Any]]:
    """'optim.lr=0.1' -> ('optim.lr', 0.1); values parsed as YAML scalars like Hydra does."""
    import yaml

    if "=" not in text:
        return None
    key, raw = text.split("=", 1)
    key = key.lstrip("+~")  # +key=v (append) and ~key (delete) prefixes
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string; Hydra reads it as a float
        try:
            value = float(value)
        except ValueError:
            pass
    return key, tuple(value) if isinstance(value, list) else value


def same_value(want: Any, have: Any) -> bool:
    """A value given as text (report.baseline's key=value) against a run's config value: equal, or the
    same number however written (model.norm_p is the text "1"; 1, 1.0 and "1" match; inf and "inf")."""
    if isinstance(want, bool) or isinstance(have, bool):  # True is not 1 here
        return type(want) is type(have) and want == have
    if want == have or str(want) == str(have):
        return True
    try:
        return float(want) == float(have)
    except (TypeError, ValueError, OverflowError):
        return False


def config_key(cfg: Dict[str, Any], drop: Iterable[str] = ()) -> Tuple[Tuple[str, Any], ...]:
    """The config without neutral keys and `drop`, as a sorted hashable tuple."""
    skip = set(drop) | NEUTRAL_KEYS
    prefixes = neutral_prefixes()
    return tuple(sorted((k, v) for k, v in cfg.items() if k not in skip and not k.startswith(prefixes)))


def group_key(cfg: Dict[str, Any]) -> Tuple[Tuple[str, Any], ...]:
    """LR-tolerance groups: the config without learning rate, seed and neutral keys."""
    return config_key(cfg, (LR_KEY, SEED_KEY))


def seed_key(cfg: Dict[str, Any]) -> Tuple[Tuple[str, Any], ...]:
    """Seed groups: the config without the seed and neutral keys (runs that differ only in seed)."""
    return config_key(cfg, (SEED_KEY,))


def varying_keys(configs: Iterable[Dict[str, Any]]) -> List[str]:
    """Keys whose value is not the same in all the given flat configs, sorted."""
    configs = list(configs)
    keys = sorted({k for c in configs for k in c})
    missing = object()
    return [k for k in keys if len({repr(c.get(k, missing)) for c in configs}) > 1]


def format_value(v: Any) -> str:
    if isinstance(v, tuple):
        return "[" + ",".join(format_value(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def labels_for(keys: List[Tuple[Tuple[str, Any], ...]]) -> Dict[tuple, str]:
    """Name each group by its values of the keys that differ between groups ("model.norm=batch")."""
    dicts = [dict(k) for k in keys]
    vary = varying_keys(dicts)
    return {k: " ".join(f"{v}={format_value(d.get(v, '-'))}" for v in vary) or "all runs" for k, d in zip(keys, dicts)}
