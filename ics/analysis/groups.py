"""Seeds as a first-class axis: jobs that differ only in trainer.seed form a group, and every
number the report shows for a group is a mean with a 95% confidence interval over its seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ics.analysis.configs import config_key, labels_for, seed_key
from ics.analysis.load import Job
from ics.analysis.stats import Comparison, Estimate, holm, mean_ci, welch
from ics.record import Status

# contrasts the report tests between groups that differ in exactly one of these keys
CONTRAST_KEYS = (
    "model.norm",
    "model.norm_p",
    "model.noise",
    "data.binarize",
    "model.activation",
    "trainer.batch_size",
    "model.bn_momentum",
    "optim.name",
)


@dataclass
class Group:
    key: Tuple[Tuple[str, Any], ...]
    label: str
    jobs: List[Job]

    @property
    def n(self) -> int:
        return len(self.jobs)

    @property
    def config(self) -> Dict[str, Any]:
        return dict(self.key)

    @property
    def norm(self) -> str:
        return str(self.config.get("model.norm", "?"))

    def values(self, field: str) -> List[Optional[float]]:
        """A summary number per seed (diverged/failed: chance for scores)."""
        return [j.final(field) for j in self.jobs]

    def estimate(self, field: str) -> Estimate:
        return mean_ci(self.values(field))

    @property
    def n_diverged(self) -> int:
        return sum(j.status == Status.DIVERGED for j in self.jobs)

    @property
    def n_finished(self) -> int:
        return sum(j.status.finished or j.status == Status.FAILED for j in self.jobs)


def has_result(j: Job) -> bool:
    return bool(j.config) and j.summary is not None and (j.status.finished or j.status == Status.FAILED)


def replicas(jobs: Sequence[Job]) -> Tuple[List[Job], List[List[Job]]]:
    """Jobs with a result whose config (neutral keys aside) and seed are identical are replicas of
    one run -- a re-run of the same sweep, not another sample: only the first counts in statistics.
    Returns (the jobs that count: every job but the later replicas, in order; each set of replicas,
    first the one that counts)."""
    by: Dict[tuple, List[Job]] = {}
    for j in jobs:
        if has_result(j):
            by.setdefault(config_key(j.config), []).append(j)
    sets = [js for js in by.values() if len(js) > 1]
    extra = {id(j) for js in sets for j in js[1:]}
    return [j for j in jobs if id(j) not in extra], sets


def seed_groups(jobs: Sequence[Job]) -> List[Group]:
    """Jobs with a known config, grouped by everything but the seed (first-seen order). Jobs
    without a result (running, killed, interrupted, unreadable) are left out; pass the jobs
    `replicas` keeps, so that a re-run never counts as one more seed."""
    by: Dict[tuple, List[Job]] = {}
    for j in jobs:
        if has_result(j):
            by.setdefault(seed_key(j.config), []).append(j)
    labels = labels_for(list(by))
    return [Group(k, labels[k], js) for k, js in by.items()]


@dataclass
class Contrast:
    key: str
    a: Group
    b: Group
    field: str
    result: Optional[Comparison]
    p_holm: Optional[float] = None  # Holm-adjusted within its family (the contrasts of one table)
    family: int = 0  # that family's size: the contrasts with a p-value


def adjust(items: Sequence[Contrast]) -> List[Contrast]:
    """Holm-adjust the p-values of one family in place: every contrast one table of the report prints
    (the one-key contrasts; each group against the baseline, per field). Returns the items."""
    ps = [c.result.p if c.result is not None and min(c.result.n_a, c.result.n_b) >= 3 else None for c in items]
    m = sum(p is not None for p in ps)
    for c, q in zip(items, holm(ps)):
        c.p_holm, c.family = q, m
    return list(items)


def contrasts(groups: Sequence[Group], field: str = "final_test_acc", limit: int = 60) -> List[Contrast]:
    """Welch tests between groups that differ in exactly one contrast key (BN vs no BN, ...)."""
    out = []
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            ca, cb = a.config, b.config
            diff = [k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k)]
            if len(diff) == 1 and diff[0] in CONTRAST_KEYS:
                # order: the "with" side first (batch before none, santurkar before none, ...)
                first, second = (a, b) if str(ca.get(diff[0])) != "none" else (b, a)
                out.append(Contrast(diff[0], first, second, field, welch(first.values(field), second.values(field))))
    return adjust(out[:limit])


def baseline_group(groups: Sequence[Group], baseline: Sequence[str]) -> Tuple[Optional[Group], Optional[str]]:
    """The one group whose config has every `key=value` of `report.baseline`, or None and why."""
    from ics.analysis.configs import parse_override, same_value

    if not isinstance(baseline, (list, tuple)):  # read from a run's files: anything may be there
        return None, f"report.baseline ({str(baseline)[:80]}) is not a list of key=value texts; no baseline contrasts"
    want = [kv for o in baseline if (kv := parse_override(str(o))) is not None]
    if not want:
        return None, None
    match = [g for g in groups if all(k in g.config and same_value(v, g.config[k]) for k, v in want)]
    if len(match) == 1:
        return match[0], None
    text = " ".join(str(o) for o in baseline)
    return None, (
        f"report.baseline ({text}) matches no group of this report"
        if not match
        else f"report.baseline ({text}) matches {len(match)} groups; it must pick one"
    )


def baseline_contrasts(groups: Sequence[Group], ref: Group, field: str = "final_test_acc") -> List[Contrast]:
    """Every other group against the reference group (a − ref), whatever keys they differ in."""
    out = []
    for g in groups:
        if g is ref:
            continue
        diff = sorted(k for k in set(g.config) | set(ref.config) if g.config.get(k) != ref.config.get(k))
        out.append(Contrast(", ".join(diff), g, ref, field, welch(g.values(field), ref.values(field))))
    return adjust(out)
