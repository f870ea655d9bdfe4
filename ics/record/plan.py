"""A sweep's plan: every launched job as data, so that `ics resume` never composes a config again.

`plan.json` at a sweep's root is written when the sweep starts. It holds each planned job's
overrides (for people and for folder names) and its whole resolved, schema-validated config (plain
values, no interpolation, no `hydra` section), the name of the launcher and sweeper that ran it, and
the objective an optimising sweeper was given. It is stored compactly: one base config and, per job,
the flat keys where that job differs from it (a 2,000-seed sweep: 138 kB).

Read back, it is untrusted data like everything in a sweep folder: size-capped, checked key by key,
and every config goes through `ics.config.from_dict`, which refuses interpolations. A job that an
optimising sweeper (Optuna, Nevergrad, ...) will create is not known in advance; its folder's own
record (summary.json, checkpoint) is the only source of its config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ics.record import names

FORMAT = 1
MAX_BYTES = 64 << 20  # a 100,000-job sweep of seeds is ~10 MB
# what a launcher or sweeper option name may look like: a recorded name only ever selects one of
# the known options (the CLI checks it against its table); anything else is not a name
OPTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class PlanError(ValueError):
    """plan.json cannot be used: one line saying why."""


@dataclass
class PlannedJob:
    num: int
    overrides: List[str]
    config: Dict[str, Any]  # nested, plain


@dataclass
class Plan:
    launcher: Optional[str] = None  # option name (basic, joblib, slurm, ...)
    sweeper: Optional[str] = None  # option name (basic, optuna, ...)
    objective: Optional[Dict[str, Any]] = None  # {"metric": ..., "direction": ...} for an optimising sweeper
    jobs: List[PlannedJob] = field(default_factory=list)

    def job(self, num: int) -> Optional[PlannedJob]:
        return self.jobs[num] if 0 <= num < len(self.jobs) and self.jobs[num].num == num else None


def _flat(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _nest(flat: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, v in flat.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise PlanError(f"key {key} crosses the value of {p}")
            node = nxt
        node[parts[-1]] = v
    return out


def to_json(plan: Plan) -> Dict[str, Any]:
    """The stored form: the first job's config as the base, each job as its differences from it."""
    base = plan.jobs[0].config if plan.jobs else {}
    flat_base = _flat(base)
    jobs = []
    for j in plan.jobs:
        flat = _flat(j.config)
        diff = {k: v for k, v in flat.items() if k not in flat_base or flat_base[k] != v}
        gone = [k for k in flat_base if k not in flat]
        jobs.append({"overrides": list(j.overrides), "set": diff, **({"unset": gone} if gone else {})})
    return {
        "format": FORMAT,
        "launcher": plan.launcher,
        "sweeper": plan.sweeper,
        "objective": plan.objective,
        "base": base,
        "jobs": jobs,
    }


def write_plan(sweep_dir: Path, plan: Plan) -> None:
    from ics.record.files import write_json

    write_json(Path(sweep_dir) / names.JOB_PLAN, to_json(plan))


def _plain(v: Any, depth: int = 0) -> bool:
    """JSON scalars, lists and string-keyed dicts only, not nested absurdly deep."""
    if depth > 12:
        return False
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, list):
        return all(_plain(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x, depth + 1) for k, x in v.items())
    return False


def read_plan(sweep_dir: Path) -> Optional[Plan]:
    """The sweep's plan, or None where the sweep has none (started before plans were written).
    Anything malformed is a PlanError with one line; nothing in it is resolved or executed."""
    from ics.record.files import read_json

    path = Path(sweep_dir) / names.JOB_PLAN
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink() or not path.is_file():
        raise PlanError(f"{path} is not a plain file (a link or a folder); not read")
    try:
        data = read_json(path, MAX_BYTES)  # the capped reader: size before reading, nesting depth
    except (OSError, ValueError) as e:
        from ics.record.files import one_line

        raise PlanError(f"{path} does not read as a sweep plan ({one_line(e)})") from None
    bad = PlanError(f"{path} is not a sweep plan ics wrote (format {FORMAT}: base config and jobs)")
    if not isinstance(data, dict) or data.get("format") != FORMAT or not _plain(data):
        raise bad
    base, jobs = data.get("base"), data.get("jobs")
    if not isinstance(base, dict) or not isinstance(jobs, list):
        raise bad
    plan = Plan()
    for key in ("launcher", "sweeper"):
        value = data.get(key)
        if value is not None and not (isinstance(value, str) and OPTION_NAME.match(value)):
            raise PlanError(f"{path}: {key} {str(value)[:60]!r} is not an option name")
        setattr(plan, key, value)
    objective = data.get("objective")
    if objective is not None and not (
        isinstance(objective, dict) and all(isinstance(v, str) for v in objective.values())
    ):
        raise bad
    plan.objective = objective
    flat_base = _flat(base)
    for num, job in enumerate(jobs):
        if (
            not isinstance(job, dict)
            or not isinstance(job.get("overrides"), list)
            or not all(isinstance(o, str) for o in job["overrides"])
            or not isinstance(job.get("set", {}), dict)
            or not isinstance(job.get("unset", []), list)
        ):
            raise PlanError(f"{path}: job {num} is not a planned job (overrides, set)")
        flat = {k: v for k, v in flat_base.items() if k not in set(job.get("unset", []))}
        flat.update(job.get("set", {}))
        plan.jobs.append(PlannedJob(num, list(job["overrides"]), _nest(flat)))
    return plan
