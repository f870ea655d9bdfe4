"""Tables of a report. Each is a `TextTable`, printed with rich, written to report.md and (runs,
groups) to CSV, so the terminal, report.md and the CSV files show the same numbers.

Per job: what each run recorded. Per seed group (runs that differ only in the seed): mean ± 95% CI
over seeds (Student t; n shown; no ± for n < 3). A diverged or failed run's accuracy is counted as
chance everywhere, and the tables say so.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ics.analysis.configs import format_value
from ics.analysis.groups import Contrast, Group
from ics.analysis.init_tolerance import InitTolerance
from ics.analysis.load import Job, series
from ics.analysis.stats import (
    MIN_CI_N,
    Estimate,
    Survival,
    fmt_p,
    geo_mean_std,
    holm,
    km_median,
    logrank,
    mean_ci,
    tost,
    welch,
)
from ics.analysis.tolerance import GroupTolerance
from ics.record import Status, Summary, names
from ics.record.jobs import score_text


@dataclass
class TextTable:
    """A table for the console (rich) and report.md alike."""

    title: str
    headers: List[str]
    cells: List[List[str]]
    caption: Optional[str] = None


def _fmt(v: Any, spec: str = ".4f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec) if math.isfinite(v) else str(v)
    return str(v)


def score_name(jobs: Sequence[Job]) -> str:
    metrics = {j.summary.metric for j in jobs if j.summary is not None}
    return "R²" if metrics == {"r2"} else ("acc" if metrics <= {"accuracy"} else "score")


# ----------------------------------------------------------------------------------------------
# per job


def max_drift(summary: Optional[Summary], metric: str = "w1_raw") -> Optional[float]:
    """Max over probe points of a final drift metric (w1_raw: in the probed quantity's units)."""
    if summary is None:
        return None
    vals = [v.get(metric) for v in summary.drift.values() if v.get(metric) is not None]
    finite = [v for v in vals if math.isfinite(v)]
    return max(finite) if finite else None


def targets_of(jobs: Sequence[Job]) -> List[str]:
    """Target scores present in any summary's steps_to_target, ascending."""
    keys = {k for j in jobs if j.summary is not None for k in j.summary.steps_to_target}
    return sorted(keys, key=float)


def run_rows(jobs: Sequence[Job]) -> List[Dict[str, Any]]:
    """One flat dict per job: the runs table and runs.csv."""
    targets = targets_of(jobs)
    several = any(j.source for j in jobs)  # several sweeps: the sweep column first (job numbers repeat)
    rows = []
    for j in jobs:
        s = j.summary
        row: Dict[str, Any] = {"sweep": j.source} if several else {}
        row |= {
            "job": j.num,
            "label": j.label,
            "overrides": j.record.label,
            "dir": str(j.dir),
            "status": str(j.status),
            "status_text": j.status_text,
        }
        for k in (
            "diverged_at_step",
            "steps",
            "last_eval_step",
            "final_test_acc",
            "best_test_acc",
            "best_test_acc_step",
            "final_val_acc",
            "chance_acc",
            "steps_per_sec",
            "wall_time_sec",
            "error",
        ):
            row[k] = getattr(s, k) if s is not None else None
        row["counted_test_acc"] = j.final("final_test_acc")  # chance for diverged/failed
        if s is None and j.record.problem:
            row["error"] = j.record.problem
        for t in targets:
            row[f"steps_to_{t}"] = s.steps_to_target.get(t) if s is not None else None
            row[f"steps_to_{t}_after"] = s.steps_to_target_prev.get(t) if s is not None else None
        for m in ("w1_raw", "w1_shape", "w1_ref"):
            row[f"max_drift_{m}"] = max_drift(s, m)
        for point, d in (s.drift if s is not None else {}).items():
            for m in ("w1_raw", "w1_shape", "w1_ref"):
                row[f"drift.{point}.{m}"] = d.get(m)
        row.update({f"config.{k}": None if v is None else format_value(v) for k, v in j.config.items()})
        rows.append(row)
    return rows


def _interval(first: Optional[int], prev: Optional[int]) -> str:
    """Steps-to-target at the evaluation schedule's resolution: reached in (prev, first]."""
    if first is None:
        return "-"
    return f"({prev}, {first}]" if prev is not None else f"≤{first}"


def runs_table(
    rows: Sequence[Dict[str, Any]], targets: Sequence[str], title: str, common: Sequence[str] = (), score: str = "acc"
) -> TextTable:
    """The per-job table; overrides = the ones that differ between jobs (common ones in the caption)."""
    several = any(r.get("sweep") for r in rows)  # job numbers repeat across sweeps: name the sweep too
    headers = (
        (["sweep"] if several else [])
        + ["job", "overrides", "status", f"final {score}", f"best {score}"]
        + [f"steps→{t}" for t in targets]
        + ["max W1 raw"]
    )
    cells = []
    for r in rows:
        bad = r["status"] in (Status.DIVERGED, Status.FAILED)
        steps, last = r["steps"], r["last_eval_step"]
        final = f"{_fmt(r['counted_test_acc'])}*" if bad else score_text(r["final_test_acc"], steps, last, ".4f")
        best = "-" if bad else score_text(r["best_test_acc"], steps, last, ".4f", best=True)
        cells.append(
            ([r["sweep"]] if several else [])
            + [str(r["job"]), r["label"], r["status_text"], final, best]
            + [_interval(r[f"steps_to_{t}"], r[f"steps_to_{t}_after"]) for t in targets]
            + [r["status"] if bad else _fmt(r["max_drift_w1_raw"], ".3f")]
        )
    notes = []
    if common:
        notes.append(f"common overrides: {' '.join(common)}")
    if any(r["status"] in (Status.DIVERGED, Status.FAILED) for r in rows):
        notes.append("* diverged/failed: counted at chance (what it learnt before is not kept)")
    if targets:
        notes.append("steps→t: reached between the previous evaluation and this one, (prev, step]")
    return TextTable(title, headers, cells, "; ".join(notes) or None)


# ----------------------------------------------------------------------------------------------
# per seed group


def group_rows(groups: Sequence[Group], targets: Sequence[str]) -> List[Dict[str, Any]]:
    """groups.csv: one row per group, each number as mean, CI half-width and n."""
    rows = []
    for g in groups:
        row: Dict[str, Any] = {"group": g.label, "n": g.n, "diverged": g.n_diverged}
        for f in ("final_test_acc", "best_test_acc", "final_val_acc", "final_test_loss"):
            e = g.estimate(f)
            row[f], row[f"{f}_ci"], row[f"{f}_n"] = e.mean, e.half, e.n
        for t in targets:
            e = mean_ci([j.summary.steps_to_target.get(t) for j in g.jobs])
            row[f"steps_to_{t}"], row[f"steps_to_{t}_ci"], row[f"steps_to_{t}_n"] = e.mean, e.half, e.n
            row[f"steps_to_{t}_resolution"] = _resolution(g, t)
            km = survival(g, t)
            row[f"steps_to_{t}_km_median"], row[f"steps_to_{t}_km_lo"], row[f"steps_to_{t}_km_hi"] = (
                km.median,
                km.lo,
                km.hi,
            )
            row[f"steps_to_{t}_censored"] = km.censored
        for point in _points(g):
            for m in ("w1_raw", "w1_shape", "w1_ref"):
                e = mean_ci([j.summary.drift.get(point, {}).get(m) for j in g.jobs])
                row[f"drift.{point}.{m}"], row[f"drift.{point}.{m}_ci"] = e.mean, e.half
        row.update({f"config.{k}": format_value(v) for k, v in g.key})
        rows.append(row)
    return rows


def _points(g: Group) -> List[str]:
    return list(dict.fromkeys(p for j in g.jobs for p in j.summary.drift))


def groups_table(groups: Sequence[Group], targets: Sequence[str], score: str = "acc") -> TextTable:
    headers = ["group", "n", f"final test {score}", f"best test {score}"] + [f"steps→{t}" for t in targets]
    cells = []
    for g in groups:
        final = g.estimate("final_test_acc").fmt(show_n=False) + (
            f" ({g.n_diverged} diverged*)" if g.n_diverged else ""
        )
        row = [g.label, str(g.n), final, g.estimate("best_test_acc").fmt(show_n=False)]
        for t in targets:
            row.append(_steps_cell(g, t))
        cells.append(row)
    return TextTable(
        "Seed groups: mean ± 95% CI over seeds (Student t)",
        headers,
        cells,
        "no ± where n < 3 (too few seeds for an interval); * diverged/failed runs are counted at chance; steps→t: the first evaluation at or above t, "
        "mean ± CI when every seed reached it; when some did not, the Kaplan–Meier median with its 95% CI "
        "(Brookmeyer–Crowley; ∞: open above), the others censored at their last evaluation; with the evaluation grid's resolution (the mean "
        "gap to the evaluation before); when every seed reached t between the same two evaluations "
        "that interval is given instead of a CI of 0. Finer: lower trainer.eval_every or raise "
        "trainer.eval_log_points",
    )


def _brackets(g: Group, t: str) -> List[Tuple[Optional[int], int]]:
    """(evaluation before, first evaluation at or above t) of every seed that reached t."""
    out = []
    for j in g.jobs:
        first = j.summary.steps_to_target.get(t)
        if first is not None:
            out.append((j.summary.steps_to_target_prev.get(t), first))
    return out


def _resolution(g: Group, t: str) -> Optional[float]:
    """Mean width of the (prev, first] brackets: how finely the evaluation grid locates the crossing."""
    gaps = [first - (prev or 0) for prev, first in _brackets(g, t)]
    return sum(gaps) / len(gaps) if gaps else None


def last_eval(j: Job) -> Optional[int]:
    """The step of a run's last evaluation: where a seed that never reached a target is censored."""
    m = j.metrics
    if m is not None and len(m.eval_step):
        return int(m.eval_step[-1])
    return j.summary.steps if j.summary is not None and j.summary.steps else None


def censored_steps(g: Group, t: str) -> Tuple[List[float], List[bool]]:
    """(steps, reached) per seed: the first evaluation at or above t, or, for a seed that never
    reached it, its last evaluation (censored: it would have taken longer than that)."""
    times, events = [], []
    for j in g.jobs:
        first = j.summary.steps_to_target.get(t)
        end = first if first is not None else last_eval(j)
        if end is not None:
            times.append(float(end))
            events.append(first is not None)
    return times, events


def survival(g: Group, t: str) -> Survival:
    return km_median(*censored_steps(g, t))


def _steps_cell(g: Group, t: str) -> str:
    brackets = _brackets(g, t)
    reached = "" if len(brackets) == g.n else f" ({len(brackets)}/{g.n} reached)"
    if brackets and len(brackets) < g.n:  # some seeds never reached t: censored, not dropped (a mean
        return survival(g, t).fmt()  # over the seeds that reached it would be biased low)
    if not brackets:
        return "-" + reached
    if len(set(brackets)) == 1:  # every seed in one grid cell: the cell, not "± 0"
        prev, first = brackets[0]
        return f"{_interval(first, prev)}" + (reached or f" all {len(brackets)}")
    e = mean_ci([first for _, first in brackets])
    return f"{e.fmt('.0f', show_n=False)} (grid ±{_resolution(g, t) / 2:.0f})" + reached


def drift_table(groups: Sequence[Group]) -> TextTable:
    """Final drift of each probe point in three units: raw, shape, σ_ref (mean over units, then mean
    ± CI over seeds), the same W1s as medians over units, and the movement of the median without
    sign cancellation (mean over units of |p50(t) − p50(0)|, raw units, from the probe series)."""
    headers = ["group", "point", "W1 raw", "W1 shape", "W1 / σ_ref", "median unit: raw / shape", "p50 move"]
    cells = []
    for g in groups:
        jobs = [j for j in g.jobs if j.status != Status.DIVERGED]
        for point in _points(g):
            est = {
                m: mean_ci([j.summary.drift.get(point, {}).get(m) for j in jobs])
                for m in ("w1_raw", "w1_shape", "w1_ref", "w1_raw_median", "w1_shape_median")
            }
            pmove = _last_of(jobs, "probe", names.drift_tag(point, "pmove_p50"))
            medians = " / ".join(
                "-" if est[m].mean is None else f"{est[m].mean:.3f}" for m in ("w1_raw_median", "w1_shape_median")
            )
            cells.append(
                [g.label, point]
                + [est[m].fmt(".3f", show_n=False) for m in ("w1_raw", "w1_shape", "w1_ref")]
                + [medians, pmove.fmt(".3f", show_n=False)]
            )
    return TextTable(
        "Final drift from step 0: raw units first, then shape, then σ_ref units",
        headers,
        cells,
        "W1 raw: in the probed quantity's units; W1 shape: after standardising both distributions "
        "(shape change only); W1/σ_ref: divided by the step-0 std (inflated where that std is small); "
        "each the mean over units, then mean ± 95% CI over seeds; median unit: the median over units "
        "(mean over seeds). p50 move: mean over units of |p50(t) − p50(0)| in raw units (no sign "
        "cancellation). Diverged runs left out.",
    )


def contrast_table(items: Sequence[Contrast], score: str = "acc", title: Optional[str] = None) -> TextTable:
    what = {"final_test_loss": "final test loss"}.get(items[0].field if items else "", f"final test {score}")
    headers = ["differs in", "a", "b", f"Δ {what} (a − b)", "95% CI", "p (Welch)", "p (Holm)", "n a/b"]
    cells = []
    for c in items:
        r = c.result
        if r is None:
            continue
        few = min(r.n_a, r.n_b) < MIN_CI_N
        cells.append(
            [
                c.key,
                c.a.label,
                c.b.label,
                f"{r.diff:+.4f}",
                "- (n < 3)" if few else "-" if r.half is None else f"± {r.half:.4f}",
                "- (n < 3)" if few else fmt_p(r.p),
                "-" if few else fmt_p(c.p_holm),
                f"{r.n_a}/{r.n_b}",
            ]
        )
    m = max((c.family for c in items), default=0)
    return TextTable(
        title or f"Differences between groups that differ in one key (Welch's t-test on {what})",
        headers,
        cells,
        "diverged/failed runs counted at chance; p (Holm): adjusted for the "
        f"{m} test{'s' if m != 1 else ''} of this table (one family; Holm–Bonferroni), the p a "
        "claim rests on",
    )


def speed_table(items: Sequence[Contrast], targets: Sequence[str]) -> Optional[TextTable]:
    """Does one side train faster? Per one-key contrast: steps to each target with censoring (KM
    medians, log-rank test) and the test score at the early evaluation (Welch); all the p-values of
    the table are one Holm family."""
    rows: List[List[Any]] = []
    for c in items:
        for t in targets:
            (ta, ea), (tb, eb) = censored_steps(c.a, t), censored_steps(c.b, t)
            if not (any(ea) or any(eb)) or min(len(ta), len(tb)) < MIN_CI_N:
                continue
            rows.append(
                [
                    c.key,
                    c.a.label,
                    c.b.label,
                    f"steps→{t}",
                    survival(c.a, t).fmt(),
                    survival(c.b, t).fmt(),
                    "log-rank",
                    logrank(ta, ea, tb, eb),
                ]
            )
        ea_, eb_ = ([early_acc(j) for j in g.jobs] for g in (c.a, c.b))
        steps = sorted({s for s, _ in ea_ + eb_ if s is not None})
        w = welch([v for _, v in ea_], [v for _, v in eb_])
        if w is not None and steps and min(w.n_a, w.n_b) >= MIN_CI_N:
            at = f"acc @ {'/'.join(map(str, steps))}"
            rows.append(
                [
                    c.key,
                    c.a.label,
                    c.b.label,
                    at,
                    mean_ci([v for _, v in ea_]).fmt(".3f", False),
                    mean_ci([v for _, v in eb_]).fmt(".3f", False),
                    f"Welch Δ {w.diff:+.3f} ± {w.half or 0:.3f}",
                    w.p,
                ]
            )
    if not rows:
        return None
    adj = holm([r[-1] for r in rows])
    cells = [r[:-1] + [fmt_p(r[-1]), fmt_p(q)] for r, q in zip(rows, adj)]
    m = sum(r[-1] is not None for r in rows)
    return TextTable(
        "Training speed: steps to target with censoring (Kaplan–Meier, log-rank) and the early score",
        ["differs in", "a", "b", "measure", "a", "b", "test", "p", "p (Holm)"],
        cells,
        "steps→t: Kaplan–Meier median [95% CI] with seeds that never reached t censored at their last "
        "evaluation; log-rank (Mantel–Cox) test of a vs b; acc @ s: test score at the first evaluation "
        f"at or after an eighth of the run, Welch; p (Holm): adjusted over the {m} tests of this table",
    )


def _signed(e: Estimate) -> str:
    """A difference: its mean with a sign, its CI half-width without one."""
    if e.mean is None:
        return "-"
    return f"{e.mean:+.4f}" + (f" ± {e.half:.4f}" if e.shown_half is not None else "")


def generalisation_table(groups: Sequence[Group]) -> Optional[TextTable]:
    """Train − test accuracy per group (mean ± CI over seeds of each seed's gap), for studies that vary
    dropout: how much each group overfits. The train side is the eval-mode score of the fixed training
    subset (trainer.train_eval_size) where every run of the group recorded one, else the training
    window in training mode, and the row says which."""
    if len({str(g.config.get("model.dropout")) for g in groups}) < 2:  # dropout is not what the study varies
        return None
    cells = []
    for g in groups:
        records = [j.summary for j in g.jobs if j.summary is not None]
        in_eval = bool(records) and all(s.final_train_eval_acc is not None for s in records)
        train = [(s.final_train_eval_acc if in_eval else s.final_train_acc) for s in records]
        test = [s.final_test_acc for s in records]
        gap = [a - b for a, b in zip(train, test) if a is not None and b is not None]
        cells.append(
            [
                g.label,
                str(mean_ci(gap).n),
                mean_ci(train).fmt(".4f", False),
                mean_ci(test).fmt(".4f", False),
                _signed(mean_ci(gap)),
                "eval mode" if in_eval else "training mode",
            ]
        )
    return TextTable(
        "Generalisation: train − test accuracy per group (mean ± 95% CI over seeds)",
        ["group", "n", "train acc", "test acc", "train − test", "train acc measured in"],
        cells,
        "train acc, eval mode: the fixed subset of the training split (trainer.train_eval_size "
        "examples, one stratified draw for every seed) scored at the final evaluation exactly as the "
        "test split is (no dropout, BN with running statistics); training mode (runs without that "
        "subset): the training batches of the last logging window with dropout on, which lowers a "
        "dropout group's train acc, so its gap is not comparable with a no-dropout group's. test acc: "
        "the final evaluation. train − test: each seed's own gap; n: seeds with both",
    )


def equivalence_margin(jobs: Sequence[Job], default: float = 0.01) -> float:
    """report.equivalence_margin of the runs (read from their files: anything that is not a positive
    number falls back to the default)."""
    for j in jobs:
        v = j.config.get("report.equivalence_margin")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
            return float(v)
    return default


def _last_per_job(jobs: Sequence[Job], key: str, tag: str) -> List[Optional[float]]:
    out: List[Optional[float]] = []
    for j in jobs:
        s = series(j, key)
        out.append(float(s.tags[tag][-1]) if s is not None and tag in s.tags and len(s.tags[tag]) else None)
    return out


def bn_equivalence_table(groups: Sequence[Group], margin: float) -> Optional[TextTable]:
    """BN's running (EMA) vs population (precise) statistics at the end: equivalent within ±margin?
    A paired TOST over the seeds; "agree" is claimed only where it passes."""
    cells = []
    for g in groups:
        ema = _last_per_job(g.jobs, "bn_stats", "test_bn/ema/acc")
        precise = _last_per_job(g.jobs, "bn_stats", "test_bn/precise/acc")
        e = tost(precise, ema, margin, paired=True)
        if e is None:
            continue
        cells.append([g.label, f"{e.diff:+.4f}", f"{e.lo90:+.4f}, {e.hi90:+.4f}", e.sentence()])
    if not cells:
        return None
    return TextTable(
        f"BN inference statistics: precise − EMA test accuracy at the end, equivalence within ±{margin:g}",
        ["group", "precise − EMA", "90% CI", "verdict"],
        cells,
        "paired TOST over seeds (two one-sided t-tests of the per-seed differences, Schuirmann 1987): "
        "equivalent when the 90% CI lies inside ±margin; margin: report.equivalence_margin",
    )


# ----------------------------------------------------------------------------------------------
# instruments, per group


def _last_mean(g: Group, key: str, tag: str) -> Estimate:
    return _last_of(g.jobs, key, tag)


def _last_of(jobs: Sequence[Job], key: str, tag: str) -> Estimate:
    """The last value of a series tag per job, then mean ± CI over the jobs."""
    vals = []
    for j in jobs:
        s = series(j, key)
        if s is not None and tag in s.tags and len(s.tags[tag]):
            vals.append(float(s.tags[tag][-1]))
    return mean_ci(vals)


def gauge_table(groups: Sequence[Group], key: str, scales: Sequence[float], items: Sequence[str]) -> TextTable:
    """A scale-dependent measure at the net's own weights and with every normaliser-fed row at norm c,
    for each c: a conclusion holds only where it holds across the row. Groups without such rows (no
    normaliser) have one value, the same at every c."""
    cells = []
    for g in groups:
        for it in items:
            own, tag = _gauge_tags(key, it)
            at = [_run_mean(g, key, tag.format(c=f"{c:g}")) for c in scales]
            if all(e.mean is None for e in at):  # a plain net: its value does not depend on a gauge
                base = _run_mean(g, key, own).fmt(".3g", False)
                cells.append([g.label, it, base] + [base] * len(scales))
            else:
                cells.append(
                    [g.label, it, _run_mean(g, key, own).fmt(".3g", False)] + [e.fmt(".3g", False) for e in at]
                )
    what = "gradient ICS cos(G, G′)" if key == "grad_ics" else "landscape along −η·g"
    return TextTable(
        f"The weight-scale gauge: {what} at the net's own weights and with normaliser-fed rows at norm c",
        ["group", "measure", "own weights"] + [f"‖w‖ = {c:g}" for c in scales],
        cells,
        "mean over the run, then ± 95% CI over seeds; the function is the same at every c, the step of "
        "nominal size η is not (its effect scales as η/c²): a difference between groups that changes sign "
        "across the columns depends on the gauge, not on the normaliser alone; plain nets repeat their "
        "one value",
    )


def _gauge_tags(key: str, it: str) -> Tuple[str, str]:
    """(the measure's tag at the net's own weights, its tag at row norm {c})."""
    if key == "grad_ics":
        return f"grad_ics/{it}/cos", "grad_ics/gauge/{c}/" + it + "/cos"
    return f"landscape/{it}", "landscape/gauge/{c}/" + it


def _seed_means(g: Group, key: str, tag: str) -> List[float]:
    """Per seed the mean over the run's measurements (the values _run_mean averages)."""
    import numpy as np

    out = []
    for j in g.jobs:
        s = series(j, key)
        if s is not None and tag in s.tags and len(s.tags[tag]):
            v = float(np.nanmean(s.tags[tag]))
            if math.isfinite(v):
                out.append(v)
    return out


def gauge_contrast_table(
    groups: Sequence[Group], key: str, scales: Sequence[float], items: Sequence[str]
) -> Optional[TextTable]:
    """Each pair of groups that differ in the normaliser alone, compared on a gauge-dependent measure
    at the net's own weights and at every row norm c (Welch over seeds of each run's mean; a plain net
    has one value at every c). One Holm family: every test of the table. A conclusion holds over the
    row norms where its sign and adjusted significance hold."""
    pairs = []  # (with the normaliser, the other): the groups' configs differ in model.norm alone
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            diff = [k for k in set(a.config) | set(b.config) if a.config.get(k) != b.config.get(k)]
            if diff == ["model.norm"]:
                pairs.append((a, b) if str(a.config.get("model.norm")) != "none" else (b, a))
    rows: List[List[Any]] = []
    for ga, gb in pairs:
        for it in items:
            own, tag = _gauge_tags(key, it)
            for at in ["own"] + [f"{v:g}" for v in scales]:
                sides = []
                for g in (ga, gb):
                    vals = _seed_means(g, key, own if at == "own" else tag.format(c=at))
                    if at != "own" and not vals:  # no normaliser-fed rows: the same value at every c
                        vals = _seed_means(g, key, own)
                    sides.append(vals)
                w = welch(*sides)
                if w is None:
                    continue
                ma, mb = (mean_ci(v) for v in sides)
                ratio = f"{ma.mean / mb.mean:.2f}×" if ma.mean is not None and mb.mean else "-"
                ci = f"{w.diff:+.3g} ± {w.half:.2g}" if w.half is not None else f"{w.diff:+.3g}"
                where = "own weights" if at == "own" else f"‖w‖ = {at}"
                p = w.p if min(w.n_a, w.n_b) >= MIN_CI_N else None
                rows.append([ga.label, gb.label, it, where, ma.fmt(".3g", False), mb.fmt(".3g", False), ci, ratio, p])
    if not rows:
        return None
    adj = holm([r[-1] for r in rows])
    cells = [r[:-1] + [fmt_p(r[-1]), fmt_p(q)] for r, q in zip(rows, adj)]
    m = sum(r[-1] is not None for r in rows)
    what = "gradient ICS cos(G, G′)" if key == "grad_ics" else "landscape along −η·g"
    return TextTable(
        f"The weight-scale gauge, tested: {what}, a − b at the net's own weights and at each row norm c",
        ["a", "b", "measure", "at", "a", "b", "a − b (95% CI)", "a / b", "p", "p (Holm)"],
        cells,
        "Welch over seeds of each run's mean over its measurements; a group without normaliser-fed rows "
        f"has one value at every c; p (Holm): adjusted over the {m} tests of this table. A difference "
        "holds over the row norms where its sign and its adjusted p hold, and only there",
    )


def _unconverged(g: Group) -> bool:
    """Whether any Lanczos measurement of the group stopped at its cap before converging."""
    for j in g.jobs:
        s = series(j, "landscape")
        if (
            s is not None
            and "landscape/eig_converged" in s.tags
            and min(s.tags["landscape/eig_converged"], default=1) < 1
        ):
            return True
    return False


def _run_mean(g: Group, key: str, tag: str) -> Estimate:
    """Per seed the mean over the run's measurements, then mean ± CI over seeds."""
    import numpy as np

    vals = []
    for j in g.jobs:
        s = series(j, key)
        if s is not None and tag in s.tags and len(s.tags[tag]):
            vals.append(float(np.nanmean(s.tags[tag])))
    return mean_ci(vals)


def _spread(layers: Sequence[str], last: bool) -> List[str]:
    """A few layers across the net, in order: the first, the middle, the one before the last, and
    (last=True) the last."""
    pick = {layers[0], layers[len(layers) // 2], layers[-2] if len(layers) > 1 else layers[0]}
    return sorted(pick | ({layers[-1]} if last else set()), key=list(layers).index)


def _mean_cells(groups: Sequence[Group], key: str, tags: Sequence[Tuple[str, str]]) -> List[List[str]]:
    """Per group: its label, then for each (tag, format) of instrument `key` the mean over the run,
    then mean ± CI over seeds."""
    return [[g.label] + [_run_mean(g, key, tag).fmt(spec, False) for tag, spec in tags] for g in groups]


def instrument_tables(groups: Sequence[Group]) -> List[TextTable]:
    out = []

    def meta(key: str) -> Optional[Dict[str, Any]]:
        """The instrument's meta: the first run's, with gauge_scales from the first run that has any (a
        net without normaliser-fed rows records none, and may come first)."""
        metas = [s.meta for g in groups for j in g.jobs if (s := series(j, key)) is not None]
        if not metas:
            return None
        scales: List[float] = []
        for m in metas:
            given = m.get("gauge_scales")
            if isinstance(given, list):  # read from a run's files: numbers only
                scales = [float(v) for v in given if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
            if scales:
                break
        return {**metas[0], "gauge_scales": scales}

    gm = meta("grad_ics")
    if gm:
        layers = gm["layers"][1:] or gm["layers"]  # layer 1 has no earlier layers: cos = 1 by definition
        pick = _spread(layers, last=True)
        headers = ["group"] + [f"cos {l}" for l in pick] + [f"‖G−G′‖/‖G‖ {l}" for l in pick]
        tags = [(f"grad_ics/{l}/{m}", ".3f") for m in ("cos", "rel_l2") for l in pick]
        cells = _mean_cells(groups, "grad_ics", tags)
        out.append(
            TextTable(
                "Gradient ICS (Santurkar et al. Def. 2.1): mean over the run, then over seeds",
                headers,
                cells,
                "cos = 1, rel = 0: earlier layers' updates leave layer i's gradient unchanged",
            )
        )
    if gm and gm.get("gauge_scales"):
        shown = [layers[-2] if len(layers) > 1 else layers[-1], layers[-1]]
        out.append(gauge_table(groups, "grad_ics", gm["gauge_scales"], shown))
        tested = gauge_contrast_table(groups, "grad_ics", gm["gauge_scales"], shown)
        if tested is not None:
            out.append(tested)
    lm = meta("landscape")
    if lm and lm.get("gauge_scales"):
        out.append(gauge_table(groups, "landscape", lm["gauge_scales"], ["loss_range", "beta"]))
        tested = gauge_contrast_table(
            groups, "landscape", lm["gauge_scales"], ["loss_range", "grad_change_rel", "beta"]
        )
        if tested is not None:
            out.append(tested)
    if lm:
        ms = ["loss_range", "grad_change_rel", "beta"] + (
            ["top_eig", "min_eig", "two_over_lr"] if lm.get("hessian") else []
        )
        si = any(
            (sr := series(j, "landscape")) is not None and sr.meta.get("scale_invariant")
            for g in groups
            for j in g.jobs
        )  # only runs with BN-fed weights have them
        ms += ["si/loss_range", "si/grad_change_rel", "si/beta"] if si else []
        headers = ["group"] + ms

        def cell(g: Group, m: str) -> str:
            text = _run_mean(g, "landscape", f"landscape/{m}").fmt(".3g", False)
            if m in ("top_eig", "min_eig") and _unconverged(g):  # Ritz values short of convergence: flagged
                text += " (unconverged)"
            return text

        cells = [[g.label] + [cell(g, m) for m in ms] for g in groups]
        out.append(
            TextTable(
                "Loss landscape along the step (Santurkar et al. §3.2): mean over the run, then seeds",
                headers,
                cells,
                "top_eig, min_eig: extreme Hessian eigenvalues (Lanczos); (unconverged): "
                "some measurement's Ritz residual stayed above landscape.lanczos_tol at "
                "landscape.lanczos_max_iters steps (run.log's landscape/eig_converged is 0 there)"
                if lm.get("hessian")
                else None,
            )
        )
    fm = meta("gradients")
    if fm:
        pick = _spread(fm["layers"], last=False)
        blocks = [b for b in pick if b in fm.get("blocks", [])]
        headers = ["group"] + [f"‖∇W‖ ratio {l}" for l in pick] + [f"saturated {b}" for b in blocks]
        tags = [(f"gradients/{l}/grad_ratio", ".3g") for l in pick] + [
            (f"gradients/{b}/saturated", ".3f") for b in blocks
        ]
        cells = _mean_cells(groups, "gradients", tags)
        out.append(
            TextTable(
                "Gradient flow: ‖∇W_layer‖ / ‖∇W_out‖ and the saturated fraction of g′, mean over the run, "
                "then over seeds",
                headers,
                cells,
                "a ratio far below 1 in the first layers is a vanishing gradient; saturated: g′(x) < 5% of its peak",
            )
        )
    bm = meta("bn_stats")
    if bm:
        kinds = ["ema", "precise"] + [f"batch{b}" for b in bm["test_batch_sizes"]]
        headers = ["group"] + [f"final {k}" for k in kinds] + ["early ema", "early precise"]
        cells = []
        for g in groups:
            row = [g.label] + [_last_mean(g, "bn_stats", f"test_bn/{k}/acc").fmt(".4f", False) for k in kinds]
            early = [
                mean_ci([_nth(series(j, "bn_stats"), f"test_bn/{k}/acc", 1) for j in g.jobs])
                for k in ("ema", "precise")
            ]
            cells.append(row + [e.fmt(".4f", False) for e in early])
        out.append(
            TextTable(
                "BN inference statistics: test accuracy by the statistics BN uses (mean ± CI over seeds)",
                headers,
                cells,
                "early: the first evaluation after step 0",
            )
        )
    nm = meta("bn_noise")
    if nm:
        layers = nm["layers"]
        headers = ["group"] + [f"r std {l}" for l in layers] + [f"|d| {l}" for l in layers]
        cells = _mean_cells(
            groups, "bn_noise", [(f"bn_noise/{l}/{m}", ".3f") for m in ("r_std", "d_abs") for l in layers]
        )
        out.append(TextTable("BN's own noise (Batch Renorm r = σ_B/σ_pop, d = (μ_B − μ_pop)/σ_pop)", headers, cells))
    return out + shown_tables(groups)


def shown_tables(groups: Sequence[Group]) -> List[TextTable]:
    """A table for each instrument that declares how the report shows it (ics.instruments.shown)."""
    from ics.analysis.figures import shown_instruments

    out = []
    for key, shown in shown_instruments().items():
        meta = next((s.meta for g in groups for j in g.jobs if (s := series(j, key)) is not None), None)
        if meta is None:
            continue
        cols = shown.expand(meta)
        cells = [
            [g.label] + [(_last_mean if c.last else _run_mean)(g, key, c.tag).fmt(c.fmt, False) for c in cols]
            for g in groups
        ]
        how = (
            "last value"
            if all(c.last for c in cols)
            else "mean over the run"
            if not any(c.last for c in cols)
            else "mean over the run or last value"
        )
        out.append(
            TextTable(
                f"{shown.title}: {how}, then mean ± CI over seeds",
                ["group"] + [c.label for c in cols],
                cells,
                shown.caption,
            )
        )
    return out


# ----------------------------------------------------------------------------------------------
# normalisers side by side (experiments/normalizers*.yaml, small_batch.yaml)


def is_norm_study(groups: Sequence[Group]) -> bool:
    """Groups that compare normalisers beyond none/batch (model.norm: layer, lp, ...)."""
    norms = {g.norm for g in groups}
    return len(groups) > 1 and bool(norms - {"none", "batch", "?"})


def last_hidden(groups: Sequence[Group]) -> Tuple[Optional[str], Optional[str]]:
    """(probe point, layer) of the last hidden layer: the last `*.pre_act` any job's drift has, and
    its block name (h3, c3 ...), the layer whose input Fig. 1 watches."""
    points = [p for g in groups for p in _points(g) if p.endswith(".pre_act")]
    if not points:
        return None, None
    point = max(
        dict.fromkeys(points), key=lambda p: (p[0] == "h", int("".join(c for c in p.split(".")[0] if c.isdigit()) or 0))
    )
    return point, point.split(".")[0]


def early_acc(j: Job) -> Tuple[Optional[int], Optional[float]]:
    """(step, test score) at the first evaluation at or after an eighth of the run: how far each
    normaliser has got early in training (the accuracy figure has the whole curve)."""
    m, steps = j.metrics, j.config.get("trainer.steps")
    if m is None or not isinstance(steps, (int, float)) or not len(m.eval_step):
        return None, None
    at = [i for i, s in enumerate(m.eval_step) if s >= steps / 8]
    return (int(m.eval_step[at[0]]), float(m.test_acc[at[0]])) if at else (None, None)


def norm_measures(g: Group, targets: Sequence[str], point: Optional[str], layer: Optional[str]) -> Dict[str, Estimate]:
    """The per-normaliser numbers of one seed group (mean ± CI over seeds): what normalizer_table
    shows and fig_normalizers draws."""
    jobs = [j for j in g.jobs if j.status != Status.DIVERGED]
    out = {"final test acc": g.estimate("final_test_acc"), "early acc": mean_ci([early_acc(j)[1] for j in g.jobs])}
    for t in targets:
        out[f"steps→{t}"] = mean_ci([j.summary.steps_to_target.get(t) for j in g.jobs])
    for m, name in (("w1_raw", "drift raw"), ("w1_shape", "drift shape")):
        out[name] = mean_ci([j.summary.drift.get(point, {}).get(m) for j in jobs]) if point else mean_ci([])
    out["grad-ICS cos"] = _run_mean(g, "grad_ics", f"grad_ics/{layer}/cos")
    out["si β"] = _run_mean(g, "landscape", "landscape/si/beta")
    out["β"] = _run_mean(g, "landscape", "landscape/beta")
    out["eff LR"] = _last_mean(g, "weights", f"weights/{layer}/eff_lr_median")
    out["eff LR, layer"] = _last_mean(g, "weights", f"weights/{layer}/eff_lr_layer")
    out["eff LR, groups"] = _last_mean(g, "weights", f"weights/{layer}/eff_lr_group_median")
    out["ema acc"] = _last_mean(g, "bn_stats", "test_bn/ema/acc")
    out["precise acc"] = _last_mean(g, "bn_stats", "test_bn/precise/acc")
    return out


def normalizer_table(groups: Sequence[Group], targets: Sequence[str]) -> TextTable:
    point, layer = last_hidden(groups)
    rows = {g.label: norm_measures(g, targets, point, layer) for g in groups}
    cols = list(next(iter(rows.values())))
    cols = [c for c in cols if any(r[c].mean is not None for r in rows.values())]  # measured by some group
    spec = {
        "final test acc": ".4f",
        "early acc": ".3f",
        "drift raw": ".3f",
        "drift shape": ".3f",
        "grad-ICS cos": ".3f",
        "ema acc": ".4f",
        "precise acc": ".4f",
    }
    steps = {g.label: {f"steps→{t}": _steps_cell(g, t) for t in targets} for g in groups}  # as the groups table
    cells = [
        [label] + [steps[label].get(c) or r[c].fmt(spec.get(c, ".3g"), show_n=False) for c in cols]
        for label, r in rows.items()
    ]
    early = sorted({e for g in groups for j in g.jobs if (e := early_acc(j)[0]) is not None})
    headers = [f"acc @ {'/'.join(map(str, early))}" if c == "early acc" and early else c for c in cols]
    return TextTable(
        f"Normalisers side by side (last hidden layer {layer or '-'}): mean ± 95% CI over seeds",
        ["group"] + headers,
        cells,
        "acc @ s: test score at the first evaluation at or after an eighth of the run (step s); "
        f"drift: W1 of {point or '-'} from step 0, raw units and shape (diverged runs left out); "
        f"grad-ICS cos: cos(G, G′) of {layer or '-'}, mean over the run; si β: effective β-smoothness "
        "at the normaliser's scale-invariant point (none without one), β: along the actual step, both "
        f"means over the run; eff LR: η/‖w‖² of {layer or '-'}'s scale-invariant weights at the end "
        "per row (- where the normaliser makes none: norm=none); eff LR, layer: LayerNorm's η/‖W‖² of the "
        "whole layer, eff LR, groups: GroupNorm's median η/‖W_g‖², other units than a row's; steps→t as in "
        "the seed-group table; "
        "ema / precise acc: bn_stats' final test accuracy with running / population statistics",
    )


def _nth(s, tag: str, i: int) -> Optional[float]:
    if s is None or tag not in s.tags or len(s.tags[tag]) <= i:
        return None
    return float(s.tags[tag][i])


# ----------------------------------------------------------------------------------------------
# LR tolerance


def _lr(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:g}"


def _geo(values: Dict[Any, Optional[float]]) -> str:
    found = [v for v in values.values() if v is not None]
    gm, gs = geo_mean_std(found)
    if gm is None:
        return "-"
    return f"{gm:.3g}" + (f" ×/÷ {gs:.2f}" if gs is not None else "") + f" (n={len(found)}/{len(values)})"


def _point_cells(label: str, p, good: bool) -> List[str]:
    """One grid point of a tolerance table (an LR, or an init std: both are `p.lr`): its score and
    test accuracy (mean ± CI over seeds), how many runs, how many of them diverged or failed, good."""
    return [
        label,
        f"{p.lr:g}",
        p.score.fmt(".4f", False),
        p.test.fmt(".4f", False),
        str(p.n_runs),
        str(p.n_diverged + p.n_failed),
        "yes" if good else "no",
    ]


def tolerance_table(groups: Sequence[GroupTolerance]) -> TextTable:
    on = "validation" if any(g.on_validation for g in groups) else "test"
    headers = [
        "group",
        "LRs",
        "best LR (score)",
        "max non-diverging LR",
        "max good LR",
        "good range (decades)",
        "per seed: max non-diverging",
        "per seed: max good",
    ]
    cells = []
    for g in groups:
        rng = "-" if g.good_range is None else f"{_lr(g.good_range[0])}–{_lr(g.good_range[1])} ({g.width_decades:.2f})"
        if g.good_outside:
            rng += f"; also good beyond a gap: {', '.join(_lr(v) for v in g.good_outside)}"
        cells.append(
            [
                g.label,
                str(len(g.points)),
                f"{_lr(g.best_lr)} ({g.best_score:.3f})",
                _lr(g.max_nondiverging_lr),
                _lr(g.max_good_lr),
                rng,
                _geo(g.seed_max_nondiverging),
                _geo(g.seed_max_good),
            ]
        )
    fraction = groups[0].fraction if groups else 0.9
    return TextTable(
        f"LR tolerance (score: mean of the last evaluations on {on}; good: >= {fraction:g} × best)",
        headers,
        cells,
        "non-diverging: no seed's loss went non-finite or above trainer.divergence_loss; "
        "per seed: geometric mean ×/÷ geometric std over seeds",
    )


def lr_table(groups: Sequence[GroupTolerance]) -> TextTable:
    on = "val" if any(g.on_validation for g in groups) else "test"
    headers = ["group", "LR", f"score ({on})", "test acc", "runs", "diverged", "good", "η/‖w‖² at the end"]
    cells = [
        _point_cells(g.label, p, p.lr in g.good_lrs) + ["-" if p.eff_lr is None else f"{p.eff_lr:.3g}"]
        for g in groups
        for p in g.points
    ]
    return TextTable(
        "Per learning rate: mean ± 95% CI over seeds (diverged/failed runs counted at chance)",
        headers,
        cells,
        "η/‖w‖²: effective step of the rows feeding BN (geometric mean over seeds), BN groups only",
    )


def effective_lr_table(groups: Sequence[GroupTolerance]) -> Optional[TextTable]:
    """The tolerance limits in effective learning rate, for groups whose runs recorded it (BN)."""
    rows = []
    for g in groups:
        pts = [g.point(g.max_nondiverging_lr), g.point(g.max_good_lr), g.point(g.best_lr)]
        effs = [None if p is None else p.eff_lr for p in pts]
        if all(e is None for e in effs):
            continue
        rows.append(
            [g.label] + [f"{_lr(p.lr) if p else '-'} → {'-' if e is None else f'{e:.3g}'}" for p, e in zip(pts, effs)]
        )
    if not rows:
        return None
    return TextTable(
        "The same limits in effective LR η/‖w‖² (nominal → effective, at the end of training)",
        ["group", "max non-diverging", "max good", "best"],
        rows,
    )


# ----------------------------------------------------------------------------------------------
# initialisation tolerance


def _range(rng: Optional[Tuple[float, float]], outside: Sequence[float]) -> str:
    if rng is None:
        return "none"
    text = (
        f"only at {_lr(rng[0])}"
        if rng[0] == rng[1]
        else f"{_lr(rng[0])}–{_lr(rng[1])} ({(d := math.log10(rng[1] / rng[0])):.0f} decade{'' if round(d) == 1 else 's'})"
    )
    return text + (f"; also beyond a gap: {', '.join(_lr(v) for v in outside)}" if outside else "")


def init_tolerance_table(groups: Sequence[InitTolerance]) -> TextTable:
    on = "validation" if any(g.on_validation for g in groups) else "test"
    fraction = groups[0].fraction if groups else 0.9
    cells = [
        [
            g.label,
            str(len(g.points)),
            f"{_lr(g.best_scale)} ({g.best_score:.3f})",
            _range(g.good_range, g.good_outside),
            _range(g.learn_range, g.learn_outside),
        ]
        for g in groups
    ]
    return TextTable(
        f"Initialisation tolerance over the init std s (score: mean of the last evaluations on {on})",
        ["group", "scales", "best s (score)", f"good: >= {fraction:g} × best", "learns at all"],
        cells,
        "learns: mean score >= chance + 0.1 × (1 − chance) and its 95% CI above chance; ranges are "
        "contiguous runs of grid points around the best s (resolution: the grid's step)",
    )


def init_scale_table(groups: Sequence[InitTolerance]) -> TextTable:
    on = "val" if any(g.on_validation for g in groups) else "test"
    cells = [
        _point_cells(g.label, p, p.lr in g.good_scales) + ["yes" if p.lr in g.learn_scales else "no"]
        for g in groups
        for p in g.points
    ]
    return TextTable(
        "Per init std: mean ± 95% CI over seeds (diverged/failed runs counted at chance)",
        ["group", "init std", f"score ({on})", "test acc", "runs", "diverged", "good", "learns"],
        cells,
    )


# ----------------------------------------------------------------------------------------------
# output


LABEL_COLUMNS = {"sweep", "overrides", "group", "a", "b", "differs in"}  # long text: these wrap


HEAD_COLUMNS = LABEL_COLUMNS | {"job", "point", "LR", "init std"}  # name a row in the vertical layout


def print_tables(tables: Sequence[TextTable], console=None) -> None:
    """Each table at the console's width without cutting a column, a border or a word: columns narrowed
    (cells wrap at spaces) where that is enough, else one block of lines per row."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # piped output (logs, CI) has no width to respect: use a wide one so rows stay one line
    console = console or Console(width=None if Console().is_terminal else 200)
    for t in tables:  # cells come from run folders: Text throughout, so a '[' is never Rich markup
        widths = fit_widths(t.headers, t.cells, console.width - 3 * len(t.headers) - 1)  # 3 a column + 1: borders
        if widths is None:
            console.print(t.title, style="bold", highlight=False, markup=False)
            for row in t.cells:
                for line in vertical_lines(t.headers, row, console.width):
                    console.print(line, highlight=False, markup=False, soft_wrap=True)
            if t.caption:
                console.print(t.caption, highlight=False, markup=False)
            continue
        table = Table(title=Text(t.title), caption=Text(t.caption) if t.caption else None, caption_justify="left")
        for h, w in zip(t.headers, widths):
            table.add_column(Text(h), width=w, overflow="fold")
        for row in t.cells:
            table.add_row(*(Text(wrap_cell(str(c), w)) for c, w in zip(row, widths)))
        console.print(table)


def fit_widths(headers: Sequence[str], rows, room: int) -> Optional[List[int]]:
    """Column widths that fit `room` characters without cutting a word (cells then wrap at spaces):
    each column as wide as its longest cell, the widest narrowed first; None when even the longest
    words do not fit."""
    cells = [[name] + [str(r[i]) for r in rows] for i, name in enumerate(headers)]
    widths = [max(len(c) for c in col) for col in cells]
    # headers wrap first (down to their longest word or the widest cell), then cells at spaces that do
    # not split a number ("mean ± ci" stays whole); the widest column narrowed first
    units = [max(len(u) for c in col[1:] + [""] for u in (_units(c) or [""])) for col in cells]
    heads = [max(len(w) for w in col[0].split() or [""]) for col in cells]
    least = [max(h, u) for h, u in zip(heads, units)]
    if sum(least) > room:
        return None
    for floor in ([max(h, max(map(len, col[1:]), default=0)) for h, col in zip(heads, cells)], least):
        while sum(widths) > room and any(w > f for w, f in zip(widths, floor)):
            i = max((i for i in range(len(widths)) if widths[i] > floor[i]), key=lambda i: widths[i])
            widths[i] -= 1
    return widths


# a steps-to-target cell, "(178, 316]" or "(178, 316] all 5": read as one value, never broken
_INTERVAL = re.compile(r"\(\S+, \S+\](?: all \d+)?")


def _units(text: str) -> List[str]:
    """A cell's pieces that never break: words, with "mean ± ci" and an interval one piece each."""
    kept = _INTERVAL.sub(lambda m: m[0].replace(" ", "\xa0"), text.strip())
    return [u.replace("\xa0", " ") for u in re.split(r"(?<!±) (?!±)", kept)]


def wrap_cell(text: str, width: int) -> str:
    """A cell's lines, broken only between units (Rich would break "0.9618 ± 0.0063" at its spaces)."""
    lines: List[str] = []
    for unit in _units(text):
        if lines and len(lines[-1]) + 1 + len(unit) <= width:
            lines[-1] += " " + unit
        else:
            lines.append(unit)
    return "\n".join(lines)


def vertical_lines(headers: Sequence[str], row: Sequence[str], width: int) -> List[str]:
    """One row as lines no wider than `width`: the naming cells (job, group, point, ...) on the first
    line, then "header: value" pairs, wrapped at spaces."""
    import textwrap

    n = next((i for i, h in enumerate(headers) if h not in HEAD_COLUMNS), len(headers)) or 1
    pair = lambda h, c: f"{h}: {c}".replace(" ", "\xa0")  # noqa: E731  textwrap breaks between pairs only
    head = "  ".join(
        str(c) if h in ("job", "group", "overrides", "sweep") else pair(h, c) for h, c in zip(headers[:n], row[:n])
    )
    values = " · ".join(pair(h, c) for h, c in zip(headers[n:], row[n:]))

    def wrap(text: str, first: str) -> List[str]:
        lines = textwrap.wrap(text, width, initial_indent=first, subsequent_indent="    ", break_on_hyphens=False)
        return [line.replace("\xa0", " ") for line in lines]

    return wrap(head, "") + (wrap(values, "  ") if values else [])


def markdown_table(t: TextTable) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = [f"**{t.title}**", ""]
    lines += ["| " + " | ".join(esc(h) for h in t.headers) + " |", "|" + "---|" * len(t.headers)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in t.cells]
    if t.caption:
        lines += ["", f"_{t.caption}_"]
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[Dict[str, Any]]) -> None:
    cols: List[str] = []
    for r in rows:  # union of columns in first-seen order (drift points differ between models)
        cols += [k for k in r if k not in cols]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if v is None else v for k, v in r.items()})
