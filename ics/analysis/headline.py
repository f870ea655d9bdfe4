"""The report's first lines: one sentence per contrast of the study, so the answer comes before the
tables ("BN vs no BN: final test acc +0.0052 [95% CI +0.0038, +0.0066], Welch p < 0.001, n = 5
seeds each"). Below MIN_CI_N seeds a side, the sentence says that no interval is given."""
from __future__ import annotations

from typing import Any, List, Sequence

from ics.analysis.groups import Contrast, Group
from ics.analysis.stats import MIN_CI_N, fmt_p
from ics.analysis.tolerance import GroupTolerance, has_lr_grid

MAX_SENTENCES = 6  # more contrasts than this (an LR grid has one per LR) stay in the table
WORDS = {("model.norm", "batch"): "BN", ("model.norm", "none"): "no BN"}


def value_name(key: str, value: Any) -> str:
    from ics.analysis.configs import format_value

    return WORDS.get((key, str(value)), f"{key}={format_value(value)}")


def _context(c: Contrast) -> str:
    """What the two groups share among the keys that vary (the LR, the noise ...), in brackets."""
    rest = [part for part in c.a.label.split() if not part.startswith(f"{c.key}=")]
    return f" ({' '.join(rest)})" if rest else ""


def _seeds(n_a: int, n_b: int) -> str:
    return f"n = {n_a} seed{'s' if n_a != 1 else ''} each" if n_a == n_b else f"n = {n_a} and {n_b} seeds"


def contrast_sentence(c: Contrast, score: str = "acc") -> str:
    r = c.result
    if c.key in c.a.config:
        a, b = value_name(c.key, c.a.config.get(c.key)), value_name(c.key, c.b.config.get(c.key))
        head = f"{a} vs {b}{_context(c)}: final test {score} {r.diff:+.4f}"
    else:  # against report.baseline: the groups differ in several keys, so they are named in full
        head = f"{c.a.label} vs the baseline {c.b.label}: final test {score} {r.diff:+.4f}"
    if min(r.n_a, r.n_b) < MIN_CI_N:
        return f"{head}, {_seeds(r.n_a, r.n_b)}: too few seeds for a 95% interval or a test (none given; {MIN_CI_N}+ needed)"
    lo, hi = r.diff - (r.half or 0.0), r.diff + (r.half or 0.0)
    holm = f", Holm p {fmt_p(c.p_holm, eq=True)} over {c.family} tests" if c.family > 1 and c.p_holm is not None else ""
    return f"{head} [95% CI {lo:+.4f}, {hi:+.4f}], Welch p {fmt_p(r.p, eq=True)}{holm}, {_seeds(r.n_a, r.n_b)}"


def group_sentence(g: Group, score: str = "acc") -> str:
    e = g.estimate("final_test_acc")
    if e.mean is None:
        return f"{g.label}: no final test {score}"
    if e.shown_half is None:
        return f"{g.label}: final test {score} {e.mean:.4f}, n = {e.n} seed{'s' if e.n != 1 else ''} (no interval below {MIN_CI_N})"
    return f"{g.label}: final test {score} {e.mean:.4f} [95% CI {e.mean - e.half:.4f}, {e.mean + e.half:.4f}], n = {e.n} seeds"


def tolerance_sentence(t: GroupTolerance) -> str:
    lr = lambda v: "none" if v is None else f"{v:g}"  # noqa: E731
    return (f"{t.label}: max good LR {lr(t.max_good_lr)}, max non-diverging LR {lr(t.max_nondiverging_lr)}, "
            f"best LR {lr(t.best_lr)} ({len(t.seeds)} seed{'s' if len(t.seeds) != 1 else ''} per LR at most)")


def headline(groups: Sequence[Group], items: Sequence[Contrast], tol: Sequence[GroupTolerance],
             score: str = "acc") -> List[str]:
    """The sentences: each contrast with a result; with none, each group's final score; for an LR
    study, each group's tolerance limits too."""
    found = [c for c in items if c.result is not None]
    out = [contrast_sentence(c, score) for c in found[:MAX_SENTENCES]]
    if len(found) > MAX_SENTENCES:
        out.append(f"… and {len(found) - MAX_SENTENCES} more differences in the table below")
    if not found:
        out = [group_sentence(g, score) for g in groups[:MAX_SENTENCES]]
    if has_lr_grid(tol):
        out += [tolerance_sentence(t) for t in tol[:MAX_SENTENCES]]
    return out
