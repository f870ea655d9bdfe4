"""Seeds as a first-class axis: jobs that differ only in trainer.seed form a group, and every
number the report shows for a group is a mean with a 95% confidence interval over its seeds."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ics.analysis.configs import labels_for, seed_key
from ics.analysis.load import Job
from ics.analysis.stats import Comparison, Estimate, mean_ci, welch
from ics.record import Status

# contrasts the report tests between groups that differ in exactly one of these keys
CONTRAST_KEYS = ("model.norm", "model.norm_p", "model.noise", "data.binarize", "model.activation", "trainer.batch_size",
                 "model.bn_momentum", "optim.name")


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


def seed_groups(jobs: Sequence[Job]) -> List[Group]:
    """Jobs with a known config, grouped by everything but the seed (first-seen order). Jobs
    without a result (running, killed, interrupted, unreadable) are left out."""
    by: Dict[tuple, List[Job]] = {}
    for j in jobs:
        if j.config and j.summary is not None and (j.status.finished or j.status == Status.FAILED):
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


def contrasts(groups: Sequence[Group], field: str = "final_test_acc", limit: int = 60) -> List[Contrast]:
    """Welch tests between groups that differ in exactly one contrast key (BN vs no BN, ...)."""
    out = []
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            ca, cb = a.config, b.config
            diff = [k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k)]
            if len(diff) == 1 and diff[0] in CONTRAST_KEYS:
                # order: the "with" side first (batch before none, santurkar before none, ...)
                first, second = (a, b) if str(ca.get(diff[0])) != "none" else (b, a)
                out.append(Contrast(diff[0], first, second, field,
                                    welch(first.values(field), second.values(field))))
    return out[:limit]
