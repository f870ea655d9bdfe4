"""The report's first lines: one sentence per contrast of the study, so the answer comes before the
tables ("BN vs no BN: final test acc +0.0052 [95% CI +0.0038, +0.0066], Welch p < 0.001, n = 5
seeds each"). Below MIN_CI_N seeds a side, the sentence says that no interval is given."""

from __future__ import annotations

from typing import Any, List, Sequence

from ics.analysis.groups import Contrast, Group
from ics.analysis.stats import MIN_CI_N, fmt_p, holm, tost, welch
from ics.analysis.tolerance import GroupTolerance, has_lr_grid
from ics.words import count

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
    return f"n = {count(n_a, 'seed')} each" if n_a == n_b else f"n = {n_a} and {count(n_b, 'seed')}"


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


def early_sentence(c: Contrast, score: str = "acc") -> str:
    """The same contrast early in training: the test score at the first evaluation an eighth into the
    run (Welch), for the normaliser contrasts; "" where there is no such evaluation or too few seeds."""
    from ics.analysis.tables import early_acc

    if c.key != "model.norm":
        return ""
    a, b = ([early_acc(j) for j in g.jobs] for g in (c.a, c.b))
    steps = sorted({s for s, _ in a + b if s is not None})
    w = welch([v for _, v in a], [v for _, v in b])
    if not steps or w is None or w.p is None or min(w.n_a, w.n_b) < MIN_CI_N:
        return ""
    x, y = value_name(c.key, c.a.config.get(c.key)), value_name(c.key, c.b.config.get(c.key))
    return (
        f"{x} vs {y}{_context(c)} early, at step {'/'.join(map(str, steps))}: test {score} {w.diff:+.4f} "
        f"[95% CI {w.diff - (w.half or 0):+.4f}, {w.diff + (w.half or 0):+.4f}], Welch p {fmt_p(w.p, eq=True)}"
    )


def group_sentence(g: Group, score: str = "acc") -> str:
    e = g.estimate("final_test_acc")
    if e.mean is None:
        return f"{g.label}: no final test {score}"
    if e.shown_half is None:
        return f"{g.label}: final test {score} {e.mean:.4f}, n = {count(e.n, 'seed')} (no interval below {MIN_CI_N})"
    return f"{g.label}: final test {score} {e.mean:.4f} [95% CI {e.mean - e.half:.4f}, {e.mean + e.half:.4f}], n = {count(e.n, 'seed')}"


def tolerance_sentence(t: GroupTolerance) -> str:
    lr = lambda v: "none" if v is None else f"{v:g}"  # noqa: E731
    return (
        f"{t.label}: max good LR {lr(t.max_good_lr)}, max non-diverging LR {lr(t.max_nondiverging_lr)}, "
        f"best LR {lr(t.best_lr)} ({count(len(t.seeds), 'seed')} per LR at most)"
    )


def headline(
    groups: Sequence[Group], items: Sequence[Contrast], tol: Sequence[GroupTolerance], score: str = "acc"
) -> List[str]:
    """The sentences: each contrast with a result; with none, each group's final score; for an LR
    study, each group's tolerance limits too."""
    found = [c for c in items if c.result is not None]
    out = [contrast_sentence(c, score) for c in found[:MAX_SENTENCES]]
    early = [e for c in found[:MAX_SENTENCES] if (e := early_sentence(c, score))]
    out += early[:2]  # early training beside the final number: the normaliser contrasts first
    if len(found) > MAX_SENTENCES:
        out.append(f"… and {len(found) - MAX_SENTENCES} more differences in the table below")
    if not found:
        out = [group_sentence(g, score) for g in groups[:MAX_SENTENCES]]
    if has_lr_grid(tol):
        out += [tolerance_sentence(t) for t in tol[:MAX_SENTENCES]]
    return out


def study_budget(name: Any) -> Any:
    """trainer.steps of the shipped study `name` (None when there is no such study or it sets none).
    The name comes from a run's files: it is only compared with the shipped studies' names."""
    from importlib import resources

    import yaml

    folder = resources.files("ics.experiments")
    for f in folder.iterdir():
        if f.name.endswith(".yaml") and f.name[:-5] == str(name):
            try:
                steps = ((yaml.safe_load(f.read_text()) or {}).get("trainer") or {}).get("steps")
            except (yaml.YAMLError, AttributeError):
                return None
            return steps if isinstance(steps, int) and not isinstance(steps, bool) else None
    return None


def budget_sentence(groups: Sequence[Group]) -> List[str]:
    """A run shorter than its study's budget says so first: its conclusions are not the study's."""
    jobs = [j for g in groups for j in g.jobs]
    names = {str(j.config.get("name")) for j in jobs if j.config.get("name")}
    if len(names) != 1:
        return []
    (name,) = names
    budget = study_budget(name)
    steps = {j.config.get("trainer.steps") for j in jobs}
    ran = [s for s in steps if isinstance(s, int) and not isinstance(s, bool)]
    if budget is None or not ran or max(ran) >= budget:
        return []
    return [
        f"Shortened run: these runs trained {max(ran):,} of the {name} study's {budget:,} steps; what they "
        f"show is early training, not the study's answer (re-run without trainer.steps for that)"
    ]


def dropout_verdict(groups: Sequence[Group], margin: float) -> List[str]:
    """Does BN remove the need for dropout? BN with each dropout against BN alone (Holm over them),
    and TOST within ±margin: a plain sentence."""

    def value(g: Group, k: str) -> Any:
        return g.config.get(k)

    alone = [g for g in groups if value(g, "model.norm") == "batch" and value(g, "model.dropout") in (0, 0.0)]
    if len(alone) != 1 or not any("model.dropout" in g.config for g in groups):
        return []
    ref = alone[0]
    same = lambda g: all(v == ref.config.get(k) for k, v in g.config.items() if k != "model.dropout")  # noqa: E731
    with_dropout = [g for g in groups if g is not ref and same(g) and value(g, "model.norm") == "batch"]
    tests = [(g, welch(g.values("final_test_acc"), ref.values("final_test_acc"))) for g in with_dropout]
    tests = [(g, w) for g, w in tests if w is not None and w.p is not None and min(w.n_a, w.n_b) >= MIN_CI_N]
    if not tests:
        return []
    adj = holm([w.p for _, w in tests])
    parts, gain = [], False
    for (g, w), q in zip(tests, adj):
        e = tost(g.values("final_test_acc"), ref.values("final_test_acc"), margin)
        gain = gain or (q is not None and q < 0.05 and w.diff > 0)
        parts.append(
            f"dropout {value(g, 'model.dropout')}: {w.diff:+.4f} ± {w.half or 0:.4f} (Holm p "
            f"{fmt_p(q, eq=True)}; {e.sentence() if e else 'no equivalence test'})"
        )
    verdict = (
        "adding dropout to BN raised test accuracy" if gain else "adding dropout to BN did not raise test accuracy"
    )
    return [f"Does BN remove the need for dropout? {verdict[0].upper() + verdict[1:]} here — " + "; ".join(parts)]
