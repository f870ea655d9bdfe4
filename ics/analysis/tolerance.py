"""Learning-rate tolerance of a sweep: how wide a range of learning rates trains well.

Ioffe & Szegedy (2015), §3.3: with BatchNorm a layer's output is invariant to the scale of its
weights, BN(a·W u) = BN(W u), and the gradient w.r.t. the weights shrinks as 1/a when they grow, so
large learning rates no longer make parameters blow up; the claim is that BN networks tolerate
much higher learning rates. This module measures that claim on a sweep over a learning-rate grid.

Everything here is a pure function of `RunResult`s (status, final accuracy, chance, flat config:
what a job's own record says), so it can be tested on hand-made results. A job whose config is
unknown or that has no final result (running, killed, interrupted, unreadable) is not an input:
the report lists it and says it was left out. Runs are grouped by their config with the learning rate and the
seed removed (plus keys that do not change what is trained, e.g. paths and devices); inside a
group the runs differ only in learning rate and seed.

Definitions (per group, `fraction` = tolerance.fraction, default 0.9):

* accuracy of a run: its final test accuracy; a diverged or failed run (or one without any
  evaluation) counts as chance accuracy, since what it learnt before blowing up is not kept;
* mean/std per LR: over seeds; std is the sample std (ddof=1), 0 for a single seed;
* best LR: highest mean accuracy (ties: the smaller LR);
* an LR *qualifies* when none of its runs diverged or failed and its mean accuracy is
  >= fraction x the best mean accuracy of the group;
* max stable LR / min good LR: the largest / smallest qualifying LR;
* width (decades): log10(max stable / min good); 0 if one LR qualifies, None if none does;
* per-seed max stable LR: the same criterion on each seed's own curve (its best accuracy over the
  grid is the reference); reported as mean +/- std over the seeds that have one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ics.record import Status

DEFAULT_FRACTION = 0.9
LR_KEY, SEED_KEY = "optim.lr", "trainer.seed"
# Keys that do not change what is trained (where files live, which device, bookkeeping, what is
# measured: probing leaves training bit-identical) and the report's own settings: two runs
# differing only in these belong to the same group.
NEUTRAL_KEYS = {"name", "data.root", "data.cache_dir", "data.download", "trainer.device", "trainer.threads",
                "trainer.progress", "trainer.checkpoint_every", "trainer.eval_every", "trainer.eval_batch_size",
                "trainer.log_every"}
NEUTRAL_PREFIXES = ("report.", "tolerance.")


def neutral_prefixes() -> Tuple[str, ...]:
    """The analysis settings and every instrument's section (instruments never change training)."""
    from ics.registry import INSTRUMENTS

    return NEUTRAL_PREFIXES + tuple(f"{k}." for k in INSTRUMENTS)


@dataclass
class RunResult:
    """One finished (or failed) run as tolerance sees it."""

    config: Dict[str, Any]  # flat: "model.norm" -> "batch"
    status: Status
    final_acc: Optional[float]
    chance: Optional[float]


# ----------------------------------------------------------------------------------------------
# Flat configs


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


def group_key(cfg: Dict[str, Any]) -> Tuple[Tuple[str, Any], ...]:
    """The config without learning rate, seed and neutral keys, as a sorted hashable tuple."""
    skip = {LR_KEY, SEED_KEY} | NEUTRAL_KEYS
    return tuple(sorted((k, v) for k, v in cfg.items()
                        if k not in skip and not k.startswith(neutral_prefixes())))


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


# ----------------------------------------------------------------------------------------------
# Results


@dataclass
class LRPoint:
    """All runs of one group at one learning rate."""

    lr: float
    seeds: List[Any]
    accs: List[float]  # per run, diverged/failed replaced by chance
    statuses: List[Status]
    mean_acc: float
    std_acc: float
    n_diverged: int
    n_failed: int

    @property
    def n_runs(self) -> int:
        return len(self.accs)

    @property
    def stable(self) -> bool:
        return self.n_diverged == 0 and self.n_failed == 0


@dataclass
class GroupTolerance:
    key: Tuple[Tuple[str, Any], ...]
    label: str  # the group's values of the keys that vary between groups, "k=v k=v"
    fraction: float
    points: List[LRPoint]  # sorted by LR
    chance_acc: Optional[float]
    best_lr: Optional[float] = None
    best_acc: Optional[float] = None
    max_stable_lr: Optional[float] = None
    min_good_lr: Optional[float] = None
    width_decades: Optional[float] = None
    seed_max_stable: Dict[Any, Optional[float]] = field(default_factory=dict)
    seed_max_stable_mean: Optional[float] = None
    seed_max_stable_std: Optional[float] = None

    @property
    def lrs(self) -> List[float]:
        return [p.lr for p in self.points]

    @property
    def seeds(self) -> List[Any]:
        return sorted({s for p in self.points for s in p.seeds}, key=repr)


# ----------------------------------------------------------------------------------------------
# Computation


def run_accuracy(run: RunResult, chance: Optional[float]) -> float:
    """Final test accuracy, or chance for a diverged/failed run or one that never evaluated."""
    acc = run.final_acc
    fallback = chance if chance is not None else 0.0
    if run.status.counts_as_chance or acc is None or not math.isfinite(acc):
        return fallback
    return float(acc)


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample std (ddof=1; 0 for one value) - the spread over seeds."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def qualifying(points: Sequence[Tuple[float, bool, float]], fraction: float) -> List[float]:
    """LRs that qualify from (lr, stable, acc) triples: stable and acc >= fraction x best acc."""
    if not points:
        return []
    best = max(acc for _, _, acc in points)
    return sorted(lr for lr, stable, acc in points if stable and acc >= fraction * best)


def best_of(points: Sequence[LRPoint]) -> LRPoint:
    # highest mean accuracy; a tie goes to the smaller LR (points are sorted by LR, max keeps the first)
    return max(points, key=lambda p: p.mean_acc)


def group_chance(runs: Sequence[RunResult]) -> Optional[float]:
    chances = [r.chance for r in runs if r.chance is not None]
    return float(np.median(chances)) if chances else None


def lr_points(runs: Sequence[RunResult], chance: Optional[float]) -> List[LRPoint]:
    """One LRPoint per learning rate, sorted by LR."""
    by_lr: Dict[float, List[RunResult]] = {}
    for r in runs:
        by_lr.setdefault(float(r.config[LR_KEY]), []).append(r)
    points = []
    for lr in sorted(by_lr):
        members = by_lr[lr]
        accs = [run_accuracy(r, chance) for r in members]
        statuses = [r.status for r in members]
        mean, std = mean_std(accs)
        points.append(LRPoint(lr, [r.config.get(SEED_KEY) for r in members], accs, statuses, mean, std,
                              statuses.count(Status.DIVERGED), statuses.count(Status.FAILED)))
    return points


def seed_max_stable(points: Sequence[LRPoint], fraction: float) -> Dict[Any, Optional[float]]:
    """Per seed: the largest LR that qualifies on that seed's own accuracy-vs-LR curve."""
    per_seed: Dict[Any, List[Tuple[float, bool, float]]] = {}
    for p in points:
        for seed, acc, status in zip(p.seeds, p.accs, p.statuses):
            per_seed.setdefault(seed, []).append((p.lr, not status.counts_as_chance, acc))
    out = {}
    for seed in sorted(per_seed, key=repr):
        ok = qualifying(per_seed[seed], fraction)
        out[seed] = ok[-1] if ok else None
    return out


def group_tolerance(key, label: str, runs: Sequence[RunResult], fraction: float) -> GroupTolerance:
    """Tolerance of one group of runs."""
    chance = group_chance(runs)
    points = lr_points(runs, chance)
    g = GroupTolerance(key, label, fraction, points, chance)
    best = best_of(points)
    g.best_lr, g.best_acc = best.lr, best.mean_acc
    ok = qualifying([(p.lr, p.stable, p.mean_acc) for p in points], fraction)
    if ok:
        g.min_good_lr, g.max_stable_lr = ok[0], ok[-1]
        g.width_decades = math.log10(ok[-1] / ok[0])
    g.seed_max_stable = seed_max_stable(points, fraction)
    found = [v for v in g.seed_max_stable.values() if v is not None]
    if len(g.seed_max_stable) > 1 and found:
        g.seed_max_stable_mean, g.seed_max_stable_std = mean_std(found)
    return g


def run_fraction(configs: Sequence[Dict[str, Any]], default: float = DEFAULT_FRACTION) -> float:
    """tolerance.fraction from the runs' configs (first one that has it)."""
    for c in configs:
        if c.get("tolerance.fraction") is not None:
            return float(c["tolerance.fraction"])
    return default


def group_runs(runs: Sequence[RunResult]) -> Dict[tuple, List[RunResult]]:
    """Group key -> runs, in first-seen order. Runs without a learning rate are left out."""
    groups: Dict[tuple, List[RunResult]] = {}
    for r in runs:
        if r.config.get(LR_KEY) is None:
            continue
        groups.setdefault(group_key(r.config), []).append(r)
    return groups


def group_labels(keys: Sequence[tuple]) -> Dict[tuple, str]:
    """Name each group by its values of the keys that differ between groups."""
    dicts = [dict(k) for k in keys]
    vary = varying_keys(dicts)
    return {k: " ".join(f"{v}={format_value(d.get(v, '-'))}" for v in vary) or "all runs"
            for k, d in zip(keys, dicts)}


def lr_tolerance(runs: Sequence[RunResult], fraction: Optional[float] = None) -> List[GroupTolerance]:
    """LR tolerance of every group of runs in a sweep (see the module docstring for definitions).

    fraction: None takes tolerance.fraction from the runs' configs (default 0.9).
    """
    groups = group_runs(runs)
    if fraction is None:
        fraction = run_fraction([r.config for rs in groups.values() for r in rs])
    labels = group_labels(list(groups))
    return [group_tolerance(k, labels[k], rs, fraction) for k, rs in groups.items()]


def has_lr_grid(groups: Sequence[GroupTolerance]) -> bool:
    """True when some group was run at two or more learning rates."""
    return any(len(g.points) >= 2 for g in groups)
