"""`ics report <dir>`: tables, learning-rate tolerance and figures for a run or sweep directory.

Reads what every job wrote through the run record (summary.json, metrics.npz, the instruments'
npz files; never the event files; jobs in any state, each with its own config) and writes into
`<dir>/report/` (or `out`):

* report.md    the headline (one sentence per contrast), every table in Markdown, the figures, the
               definitions; report.html  the same on one self-contained page, figures embedded;
* runs.csv     one row per job (summary numbers, drift per point in three units, the whole config);
* groups.csv   one row per seed group: mean, CI half-width and n of the same numbers;
* one PNG per figure (a figure whose data no run recorded is left out);
* groups/<label>/  a TensorBoard run per seed group (tboard.py), so `tensorboard --logdir <sweep>`
  colours groups, not seeds, and HParams compares groups.

Several folders can be reported together (--out then required): a job whose config and seed repeat
one already read is a replica and counts once in every statistic.

The output folder is the report's own: a run or sweep folder, any folder inside one (but the
reported folder's own `report`), the folder being reported, a folder holding TensorBoard events the
report did not write, or a `report` that is a symbolic link, is refused before anything is written.
`.ics-report.json` lists each file the report wrote with its sha256: a later report replaces or
removes a file only when the manifest lists it and it still has that digest, and otherwise refuses
in one line before writing anything (a file of the user's, or one changed since, is never touched;
a manifest naming anything outside the folder is refused, never followed). Every file goes in
through ics.record.files.atomic_write (a new unguessable temporary file and a rename).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ics.analysis.figures import FIGURES, make_figures, shown_instruments
from ics.analysis.groups import Group, baseline_contrasts, baseline_group, contrasts, replicas, seed_groups
from ics.analysis.headline import budget_sentence, dropout_verdict, headline
from ics.analysis.html import write_html
from ics.analysis.init_tolerance import has_init_grid, init_tolerance
from ics.analysis.load import Job, common_overrides, load_jobs, planned_jobs, planned_jobs_problem
from ics.analysis.tables import (
    TextTable,
    bn_equivalence_table,
    contrast_table,
    drift_table,
    effective_lr_table,
    equivalence_margin,
    generalisation_table,
    group_rows,
    groups_table,
    init_scale_table,
    init_tolerance_table,
    instrument_tables,
    is_norm_study,
    lr_table,
    markdown_table,
    normalizer_table,
    print_tables,
    run_rows,
    runs_table,
    score_name,
    speed_table,
    targets_of,
    tolerance_table,
    write_csv,
)
from ics.analysis.tolerance import GroupTolerance, has_lr_grid, lr_tolerance
from ics.config import ConfigError
from ics.record import names
from ics.words import count

MAX_CURVES = 16  # groups drawn in one curve figure; an LR sweep shows each group at its best LR

DEFINITIONS = """\
* **Seed groups**: runs that differ only in `trainer.seed`. Every group number is the mean over seeds
  ± the half-width of its 95% confidence interval, x̄ ± t₀.₉₇₅,ₙ₋₁ · s/√n (Student t; s with ddof 1;
  computed from n = 2 but shown only from n = 3: with one degree of freedom t = 12.7 and the interval
  says nothing). A diverged or failed run counts as chance accuracy, everywhere.
* **Differences**: groups that differ in exactly one key (`model.norm`, `model.noise`, ...): the
  difference of mean final test accuracy, its 95% CI and the two-sided p-value of Welch's t-test.
* **final / best acc**: test accuracy (whole test split, BN with its running statistics) at the last /
  the best evaluation; for regression tasks the score is R² = 1 − SSE/SSE(predicting the training mean).
* **steps→t**: first evaluated step with test score ≥ t, reached somewhere in (previous evaluation, step].
* **Drift** of a layer's input distribution from step 0, per unit then averaged over units:
  W1 raw = W1(P_t, P_0) in the probed quantity's units; W1 shape = W1 between the two distributions
  each standardised by its own mean and std (0 for a pure shift or rescaling); W1/σ_ref = W1 raw
  divided by the unit's step-0 std (inflated where that std is small, e.g. sigmoid inputs without BN).
* **LR tolerance**: see `ics/analysis/tolerance.py`: max non-diverging LR (no seed's loss went
  non-finite or above the divergence threshold) and max good LR (mean score ≥ fraction × the best)
  are kept apart; per-seed limits are summarised by geometric mean ×/÷ geometric std.
"""


def state_counts(jobs: Sequence[Job]) -> str:
    """ "3 completed, 1 killed": how many jobs are in each state."""
    counts = Counter(str(j.status) for j in jobs)
    return ", ".join(f"{n} {state}" for state, n in counts.most_common())


def prose_printer():
    """print, or on a terminal a printer that wraps at spaces (a narrow terminal then cuts no number,
    path or word in the headline, the notes and the `wrote:` line)."""
    import sys

    if not sys.stdout.isatty():
        return print
    from rich.console import Console

    terminal = Console(highlight=False)
    return lambda text="": terminal.print(text, markup=False, emoji=False)


def unstarted_note(sweep: Path, jobs: Sequence[Job]) -> Optional[str]:
    """A note when a sweep's plan (plan.json, read as untrusted data) lists jobs that have no folder
    here: they never started, so the report's groups leave them out. None for a run, a search (its
    trials are not planned ahead) or an unreadable plan (the report reads the jobs it finds)."""
    from ics.record.plan import PlanError, read_plan

    try:
        plan = read_plan(Path(sweep))
    except (PlanError, OSError):
        return None
    if plan is None or (plan.sweeper not in (None, "basic")):
        return None
    found = sum(1 for j in jobs if j.dir.resolve().parent == Path(sweep).resolve())
    missing = len(plan.jobs) - found
    if missing <= 0:
        return None
    return (
        f"{count(missing, 'planned job')} of {Path(sweep).resolve()} never started ({found} of {len(plan.jobs)} "
        f"{'has' if found == 1 else 'have'} a folder) and {'is' if missing == 1 else 'are'} not in this report: `ics resume "
        f"{Path(sweep).resolve()}` starts {'it' if missing == 1 else 'them'}"
    )


def curve_groups(groups: List[Group], tol: Sequence[GroupTolerance]) -> List[Group]:
    """The groups drawn in curve figures: all of them, or in a big LR sweep each tolerance
    group at its best learning rate."""
    if len(groups) <= MAX_CURVES or not tol:
        return groups[:MAX_CURVES]
    best = {(g.key, g.best_lr) for g in tol}
    from ics.analysis.configs import LR_KEY, group_key

    picked = [g for g in groups if (group_key(dict(g.key)), g.config.get(LR_KEY)) in best]
    return picked[:MAX_CURVES] or groups[:MAX_CURVES]


def write_markdown(
    path: Path,
    src: str,
    jobs: Sequence[Job],
    lines: Sequence[str],
    tables: Sequence[TextTable],
    figures: Dict[str, Path],
    notes: Sequence[str],
) -> str:
    """report.md: the headline first, then the tables and the figures there are (a figure whose data
    no run recorded is left out); returns the text without image links (TensorBoard's copy)."""
    parts = (
        [f"# ICS report: `{src}`", ""]
        + [f"**{line}**  " for line in lines]
        + ["", f"{count(len(jobs), 'job')}: {state_counts(jobs)}.", ""]
    )
    parts += [f"_{n}_\n" for n in notes]
    for t in tables:
        parts += [markdown_table(t), ""]
    text_only = "\n".join(parts + ["## Definitions", "", DEFINITIONS])
    if figures:
        parts += ["## Figures", ""]
    for name in FIGURES + tuple(n for n in shown_instruments() if n not in FIGURES):
        if name in figures:
            parts += [f"### {name}", "", f"![{name}]({figures[name].name})", ""]
    parts += ["## Definitions", "", DEFINITIONS]
    Path(path).write_text("\n".join(parts), encoding="utf-8")  # into the report's private staging folder
    return text_only


# --- the output folder: the report's own -----------------------------------------------------------
MANIFEST = ".ics-report.json"  # each file the report wrote here, with its sha256: the only files a re-run replaces
EVENTS = "events.out.tfevents."
# what a report may name a file; a manifest (data in a folder anyone may have written) naming
# anything else is refused
# figures: the built-in ones, and one per instrument key (an instrument that declares `shown`)
OWN_NAME = re.compile(
    r"^(report\.md|report\.html|runs\.csv|groups\.csv|[a-z][a-z0-9_]{0,63}\.png|"
    r"(groups/(?!\.+/)[A-Za-z0-9=.,_+-]{1,120}/)?" + re.escape(EVENTS) + r"[A-Za-z0-9_.\-]+)$"
)
# what marks a run or sweep folder: a report is never written into one, nor anywhere below one
RUN_MARKERS = (
    names.SUMMARY,
    "multirun.yaml",
    names.HYDRA_DIR,
    names.CHECKPOINT,
    names.PLANNED_JOBS,
    names.JOB_PLAN,
    names.LOCK,
    names.SWEEP_LOCK,
    names.METRICS,
    "sweep.json",
    "hparams.json",
)
MAX_MANIFEST_BYTES = 1 << 20


def check_out(path: Path, out: Optional[Path], reported: Sequence[Path] = ()) -> Path:
    """The report's output folder for `ics report path [--out out]`, or a one-line ConfigError if
    writing there could touch anything but a report: a run or sweep folder or any folder inside one
    (other than the reported folder's own `report`), the folder reported on, a folder with
    TensorBoard events the report did not write, a default `report` that is a symbolic link (planted
    in a sweep, it could lead anywhere) or a file. reported: every folder of this report."""
    default = out is None
    out = Path(path) / names.REPORT_DIR if default else Path(out)
    how = "remove it, or give --out a new folder" if default else "give --out a new folder (default: <dir>/report)"
    if default and out.is_symlink():
        raise ConfigError(f"{out} is a symbolic link; ics report writes only into a real folder of its own: {how}")
    if not default and (str(out) == "." or out.resolve() == Path.cwd().resolve()):
        raise ConfigError(f"--out {str(out) or '(empty)'} is the current folder; {how}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; {how}")
    real = out.resolve()
    own = {(Path(p).resolve() / names.REPORT_DIR) for p in [path, *reported]}  # a reported folder's own report
    if real not in own:
        for p in [path, *reported]:
            if Path(p).resolve() in real.parents:
                raise ConfigError(
                    f"--out {out} is inside {p}, the folder being reported (its report goes in "
                    f"{Path(p) / names.REPORT_DIR}); {how}"
                )
        for above in real.parents:
            held = next((m for m in RUN_MARKERS if os.path.lexists(above / m)), None)
            if held is not None:
                raise ConfigError(
                    f"--out {out} is inside the run or sweep folder {above} (it holds {held}); ics "
                    f"report never writes into one: {how}"
                )
    if not out.exists():
        # the nearest folder that exists must be one: a file on the way is found now, not after the work
        first = next((a for a in real.parents if a.exists()), None)
        if first is not None and not first.is_dir():
            raise ConfigError(f"--out {out} cannot be created: {first} is a file, not a folder; {how}")
        return out
    held = next((m for m in RUN_MARKERS if (real / m).exists() or (real / m).is_symlink()), None)
    if held is not None:
        raise ConfigError(
            f"--out {out} is a run or sweep folder (it holds {held}); ics report never writes into one: {how}"
        )
    if real == Path(path).resolve():
        raise ConfigError(f"--out {out} is the folder being reported; {how}")
    from ics.record.jobs import is_job_dir

    try:
        job = next((c for c in real.iterdir() if c.is_dir() and not c.is_symlink() and is_job_dir(c)), None)
    except OSError as e:
        raise ConfigError(f"--out {out} cannot be read ({e.strerror})") from None
    if job is not None:
        raise ConfigError(f"--out {out} is a sweep folder (it holds the job folder {job.name}); {how}")

    def holds_runs(c: Path) -> bool:  # a run folder, or a sweep folder (job folders inside)
        if any((c / m).exists() for m in RUN_MARKERS):
            return True
        return any(g.is_dir() and not g.is_symlink() and is_job_dir(g) for g in islice(c.iterdir(), 200))

    try:
        holder = next((c for c in real.iterdir() if c.is_dir() and not c.is_symlink() and holds_runs(c)), None)
    except OSError:
        holder = None
    if holder is not None:
        raise ConfigError(f"--out {out} holds runs or sweeps ({holder.name}); {how}")
    previous = read_manifest(real, out)
    foreign = sorted(
        str(p.relative_to(real))
        for p in [*real.glob(EVENTS + "*"), *real.glob(f"groups/*/{EVENTS}*")]
        if str(p.relative_to(real)) not in previous
    )
    if foreign:
        raise ConfigError(
            f"--out {out} holds TensorBoard events ics report did not write ({foreign[0]}): a run's "
            f"history is never touched; {how}"
        )
    return out


def _not_ours(path: Path) -> ConfigError:
    return ConfigError(f"{path} was not written by ics report (or was changed since): move it or choose another --out")


def read_manifest(real: Path, shown: Optional[Path] = None) -> Dict[str, List[str]]:
    """{file name: the sha256 digests ics report wrote it with} from the manifest in the output
    folder ({} when there is none). The manifest is data in a folder anyone may write: a manifest
    that is a link, does not read, or lists anything but a report's own file name (a path outside
    the folder, `..`, absolute, through a symbolic link) is a one-line ConfigError; nothing it names
    is followed. A manifest of an older ics (a list of names, no digests) vouches for nothing."""
    from ics.record.files import one_line, read_json

    shown = Path(shown) if shown is not None else real
    where = shown / MANIFEST
    if os.path.islink(real / MANIFEST):
        raise _not_ours(where)
    try:
        data = read_json(real / MANIFEST, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"{where} does not read ({one_line(e)}): move it or choose another --out") from None
    listed = data.get("files") if isinstance(data, dict) else None
    if isinstance(listed, list):  # before digests: names only
        listed = {n: [] for n in listed}
    if not isinstance(listed, dict):
        raise ConfigError(f"{where} is not a manifest of ics report: move it or choose another --out")
    out: Dict[str, List[str]] = {}
    for name, digests in listed.items():
        if not isinstance(name, str) or not OWN_NAME.match(name) or ".." in name.split("/") or name.startswith("/"):
            raise ConfigError(
                f"{where} lists {str(name)[:80]!r}, not a file ics report writes in this folder "
                "(a path outside it, .., or absolute): refused, nothing it names is touched"
            )
        inner = real / name
        link = next((d for d in [inner, *inner.parents] if real in d.parents and os.path.islink(d)), None)
        if link is not None:
            raise ConfigError(
                f"{where} lists {name}, but {shown / link.relative_to(real)} is a symbolic link: refused, not followed"
            )
        digests = [digests] if isinstance(digests, str) else digests
        if not isinstance(digests, list) or not all(
            isinstance(d, str) and re.fullmatch(r"[0-9a-f]{64}", d) for d in digests
        ):
            raise ConfigError(
                f"{where} is not a manifest of ics report ({name}: not a list of sha256 digests): "
                "move it or choose another --out"
            )
        out[name] = digests[:4]
    return out


def _sha256(path: Path, cap: int = 1 << 30) -> Optional[str]:
    """The sha256 of a plain file (never through a link; None for anything else or beyond cap)."""
    import hashlib
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
            return None
        h = hashlib.sha256()
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ReportFolder:
    """The report's output folder. Nothing is written until every file is ready: the files are made
    in a private temporary folder elsewhere, then `commit` checks that every file it would replace
    or remove is one ics report wrote (listed in the manifest, same sha256) and only then writes,
    each file through ics.record.files.atomic_write (a new unguessable temporary file, a rename; a
    link is never written through)."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.previous = read_manifest(self.out) if self.out.is_dir() else {}

    def _check(self, files: Dict[str, bytes]) -> None:
        """A one-line ConfigError, before anything is written, for the first file this report would
        replace or remove that it did not write, and for a folder of the report that is not one."""
        for name in sorted(set(files) | set(self.previous)):
            p = self.out / name
            for d in reversed([d for d in p.parents if self.out in d.parents]):  # groups/, groups/<label>/
                if os.path.islink(d) or (os.path.lexists(d) and not d.is_dir()):
                    raise _not_ours(d)
            if not os.path.lexists(p):
                continue
            digests = self.previous.get(name)
            if not digests or os.path.islink(p) or _sha256(p) not in digests:
                raise _not_ours(p)

    def _manifest(self, files: Dict[str, List[str]]) -> None:
        from ics.record.files import write_text

        write_text(self.out / MANIFEST, json.dumps({"files": dict(sorted(files.items()))}, indent=1))

    def commit(self, files: Dict[str, bytes]) -> Dict[str, Path]:
        """Put files ({name relative to out: content}) in place, remove what the previous report
        wrote and this one did not, and leave the manifest listing exactly these files."""
        import hashlib

        from ics.record.files import remove_stale_temp_files, write_bytes

        self._check(files)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a read-only place, /proc, a path through a file ...
            raise ConfigError(
                f"--out {self.out} cannot be created ({e.strerror or type(e).__name__}); "
                "give --out a folder in a writable place"
            ) from None
        # a report killed while writing left a temporary file (its process is gone): the only files
        # removed that no manifest lists, recognised by atomic_write's own naming
        remove_stale_temp_files(self.out)
        digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        # listed (old digests kept) before any file is in place: a report killed half-way leaves
        # nothing of its own that the next one would take for someone else's
        both = {n: list(d) for n, d in self.previous.items()}
        for name, d in digests.items():
            both[name] = both.get(name, []) + [d]
        self._manifest(both)
        for name, data in files.items():
            p = self.out / name
            for parent in reversed([q for q in p.parents if self.out in q.parents]):
                parent.mkdir(exist_ok=True)
            write_bytes(p, data)
        for name in self.previous:
            if name in files:
                continue
            p = self.out / name
            if os.path.lexists(p) and not os.path.islink(p) and _sha256(p) in self.previous[name]:
                p.unlink()
            if p.parent != self.out and not os.path.islink(p.parent):
                try:
                    p.parent.rmdir()  # a group run no longer written: its folder, when empty
                except OSError:
                    pass
        self._manifest({n: [d] for n, d in digests.items()})
        return {name: self.out / name for name in files}


def stage_files(stage: Path) -> Dict[str, bytes]:
    """Every file under the private staging folder, by its name relative to it."""
    return {str(f.relative_to(stage)): f.read_bytes() for f in sorted(stage.rglob("*")) if f.is_file()}


def make_report(path, out: Optional[Path] = None, console=None) -> dict:
    from ics.analysis.search import fig_search, search_lines, search_of, search_table

    """Build the report of a run or sweep directory, or of several pooled (a list of paths: then
    out is required); returns the paths written and the tables."""
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    if len(paths) > 1 and out is None:
        raise ConfigError(
            f"{len(paths)} folders are reported together: give --out, a new folder for the report "
            "(the default, <dir>/report, belongs to one sweep)"
        )
    jobs = load_jobs(*paths)
    for p in paths:
        out = check_out(p, out, paths)
    path = paths[0]
    src = " + ".join(str(p) for p in paths)
    score = score_name(jobs)
    targets = targets_of(jobs)
    rows = run_rows(jobs)
    counted, replica_sets = replicas(jobs)
    groups = seed_groups(counted)
    label_rows(jobs, rows, groups, replica_sets)
    k = next((int(j.config.get("tolerance.last_k", 3)) for j in jobs if j.config), 3)
    results = [r for j in counted if (r := j.result(k)) is not None]
    tol, itol = lr_tolerance(results), init_tolerance(results)
    notes = [n for p in paths if (n := unstarted_note(p, jobs)) is not None]
    if replica_sets:
        n_extra = sum(len(s) - 1 for s in replica_sets)
        notes.append(
            f"{count(n_extra, 'job')} repeat{'s' if n_extra == 1 else ''} a config and seed already run "
            f"({count(len(replica_sets), 'run')} run more than once): replicas, not more seeds; each counts "
            "once in the statistics (the first): "
            + "; ".join(" = ".join(_job_name(j) for j in s) for s in replica_sets[:5])
            + (" …" if len(replica_sets) > 5 else "")
        )
    for p in paths:
        planned = planned_jobs(p)
        present = {j.num for j in jobs if j.dir == p or p in j.dir.parents}
        if planned and len(planned) > len(present):
            missing = [_planned_label(i, planned) for i in range(len(planned)) if i not in present]
            notes.append(
                f"{len(missing)} of the sweep's {count(len(planned), 'job')} {'has' if len(missing) == 1 else 'have'} not started"
                + (f" in {p}" if len(paths) > 1 else "")
                + ": "
                + "; ".join(missing[:10])
                + (" …" if len(missing) > 10 else "")
                + " (once the sweep has ended, ics resume runs them)"
            )
        plan_problem = planned_jobs_problem(p)
        if plan_problem:
            notes.append(
                f"the sweep's list of planned jobs could not be read ({plan_problem}); jobs that never "
                "started are not counted"
            )
    mixed = environment_note(jobs)
    if mixed:
        notes.append(mixed)
    unreadable = [j for j in jobs if j.problems]
    if unreadable:
        notes.append(
            "files that could not be read (what they hold is left out of the figures and tables): "
            + "; ".join(f"{_job_name(j)}: {', '.join(j.problems)}" for j in unreadable)
        )
    left_out = [j for j in jobs if j.result(k) is None]
    if left_out:
        notes.append(
            f"{count(len(left_out), 'job')} without a final result or a known config {'is' if len(left_out) == 1 else 'are'} listed but left out of "
            f"the group statistics: {', '.join(f'{_job_name(j)} ({j.status})' for j in left_out)}."
        )

    tables = [
        runs_table(
            rows, targets, f"{src}: {count(len(jobs), 'job')} ({state_counts(jobs)})", common_overrides(jobs), score
        )
    ]
    search = search_of(paths, jobs)  # an optimising sweeper's trials: ranked, not seed groups
    if search is not None:
        tables.append(search_table(jobs, search))
        tol, itol = [], []
    contrast = contrasts(groups) if search is None else []
    headline_items = contrast
    if search is None and (any(g.n > 1 for g in groups) or len(groups) > 1):
        tables.append(groups_table(groups, targets, score))
        if contrast:
            tables.append(contrast_table(contrast, score))
            speed = speed_table(contrast, targets)
            if speed is not None:
                tables.append(speed)
        baseline = next((j.config.get("report.baseline") for j in jobs if j.config.get("report.baseline")), None)
        if baseline:
            ref, problem = baseline_group(groups, baseline)
            if problem:
                notes.append(problem)
            if ref is not None:
                for field in ("final_test_acc", "final_test_loss"):
                    against = baseline_contrasts(groups, ref, field)
                    if field == "final_test_acc":
                        headline_items = against  # the study's own contrasts lead the headline
                    tables.append(
                        contrast_table(
                            against,
                            score,
                            f"Each group against the baseline {ref.label} (report.baseline; "
                            f"Welch's t-test on {field.replace('_', ' ')})",
                        )
                    )
    if is_norm_study(groups):
        tables.append(normalizer_table(groups, targets))
    if any(j.summary is not None and j.summary.drift for j in jobs):
        tables.append(drift_table(groups))
    equiv = bn_equivalence_table(groups, equivalence_margin(jobs))
    if equiv is not None:
        tables.append(equiv)
    try:
        tables += instrument_tables(groups)
    except Exception as e:  # noqa: BLE001 - an instrument's files of some job are not what it writes
        notes.append(f"the instrument tables could not be built from these files ({type(e).__name__}: {e})")
    if has_lr_grid(tol):
        tables += [tolerance_table(tol), lr_table(tol)]
        eff = effective_lr_table(tol)
        if eff is not None:
            tables.append(eff)
    if has_init_grid(itol):
        tables += [init_tolerance_table(itol), init_scale_table(itol)]
    lines = headline(groups, headline_items, tol, score) if search is None else search_lines(jobs, search)
    if search is None:  # a shortened run says so first; the dropout question gets its plain answer
        lines = budget_sentence(groups) + lines + dropout_verdict(groups, equivalence_margin(jobs))
        gap = generalisation_table(groups)
        if gap is not None:
            tables.append(gap)
    say = console.print if console is not None else prose_printer()
    for line in lines:
        say(line)
    print_tables(tables, console)
    for n in notes:
        say(f"note: {n}")

    folder = ReportFolder(out)  # a manifest that does not read is refused here, before any work
    written, skipped = {}, {}
    texts: List[str] = []
    with tempfile.TemporaryDirectory(prefix="ics-report-") as tmp:
        stage = Path(tmp)  # private (0700, outside out): nothing reaches out before the check
        figures = make_figures(
            curve_groups(groups, tol), tol, "R²" if score == "R²" else "accuracy", groups, itol, targets
        )
        if search is not None:
            figures = {"search": fig_search(jobs, search), **figures}
        for name, (fig, reason) in figures.items():
            if fig is None:
                skipped[name] = reason
                continue
            written[name] = stage / f"{name}.png"
            fig.savefig(written[name], dpi=100, format="png")
        write_csv(stage / "runs.csv", rows)
        write_csv(stage / "groups.csv", group_rows(groups, targets))
        texts.append(write_markdown(stage / "report.md", src, jobs, lines, tables, written, notes))
        write_html(
            stage / "report.html",
            src,
            lines,
            f"{count(len(jobs), 'job')}: {state_counts(jobs)}.",
            tables,
            written,
            notes,
            DEFINITIONS,
        )
        from ics.analysis.tboard import GROUPS_DIR, percentile_figures, write_group_runs

        write_group_runs(stage / GROUPS_DIR, groups, tol, texts[0], percentile_figures(groups))
        files = {n: b for n, b in stage_files(stage).items() if OWN_NAME.match(n)}
    placed = folder.commit(files)
    written = {name: placed[f"{name}.png"] for name in written}
    md_path, html_path = placed["report.md"], placed["report.html"]
    csv_path, groups_path = placed["runs.csv"], placed["groups.csv"]
    say(
        f"wrote: {out}/ (report.md, report.html, runs.csv, groups.csv"
        + (
            f", {count(len(written), 'figure')}: {', '.join(p.name for p in written.values())})"
            if written
            else "; no figure: no run recorded curves)"
        )
    )
    if lines and tables:  # the answer again where the screen ends: the tables scroll the first one away
        say("")
        for line in lines:
            say(line)
    by_title = {t.title: t for t in tables}
    return {
        "out": out,
        "report_md": md_path,
        "report_html": html_path,
        "runs_csv": csv_path,
        "groups_csv": groups_path,
        "figures": written,
        "headline": lines,
        "replicas": replica_sets,
        "skipped": skipped,
        "runs": rows,
        "groups": groups,
        "tables": tables,
        "tolerance": tol,
        "init_tolerance": itol,
        "runs_table": tables[0],
        "tolerance_table": next((t for t in tables if t.title.startswith("LR tolerance")), None),
        "lr_table": next((t for t in tables if t.title.startswith("Per learning rate")), None),
        "by_title": by_title,
    }


def label_rows(jobs: Sequence[Job], rows: List[Dict[str, Any]], groups, replica_sets) -> None:
    """runs.csv says which seed group each job is in and whether it counts, so that a groupby on it
    gives the report's n: `counted` is false for a later replica of a config and seed already run
    (`replica_of` names the one that counts) and for jobs without a result."""
    group_of = {id(j): g.label for g in groups for j in g.jobs}
    first_of = {id(j): s[0] for s in replica_sets for j in s[1:]}
    for j, row in zip(jobs, rows):
        first = first_of.get(id(j))
        row["group"] = group_of.get(id(first) if first is not None else id(j), "")
        row["counted"] = id(j) in group_of
        row["replica_of"] = _job_name(first) if first is not None else ""


def environment_note(jobs: Sequence[Job]) -> Optional[str]:
    """Runs reported together that ran under different versions, CPU kernels, thread counts or
    devices: their last digits may differ for that reason alone (summary.json's `environment`)."""
    values: Dict[str, Dict[str, int]] = {}
    unknown = 0
    for j in jobs:
        env = j.summary.environment if j.summary is not None else {}
        if not env:
            unknown += 1
            continue
        for k, v in env.items():
            values.setdefault(str(k), {}).setdefault(str(v), 0)
            values[str(k)][str(v)] += 1
    differ = {k: v for k, v in values.items() if len(v) > 1}
    if not differ:
        return None
    said = "; ".join(
        f"{k}: " + ", ".join(f"{v} ({count(n, 'run')})" for v, n in vs.items()) for k, vs in differ.items()
    )
    return (
        f"the runs differ in their environment ({said}){f'; {unknown} record none' if unknown else ''}: "
        "float rounding differs between them, so identical configs may differ in the last digits"
    )


def _job_name(j: Job) -> str:
    """#3, or sweepA#3 when several sweeps are reported together (job numbers repeat)."""
    return f"{j.source}#{j.num}" if j.source else f"#{j.num}"


def _planned_label(num: int, planned: List[List[str]]) -> str:
    """A planned job by its number and the values that vary across the sweep, as they were typed
    (job numbers are the launch order of the plan): '#2 (optim.lr=0.3)'."""
    from ics.analysis.configs import parse_override, varying_keys

    jobs = [
        {
            kv[0]: o.split("=", 1)[1]
            for o in job
            if (kv := parse_override(o)) is not None and not kv[0].startswith("hydra")
        }
        for job in planned
    ]
    swept = ", ".join(f"{k}={jobs[num][k]}" for k in varying_keys(jobs) if k in jobs[num])
    return f"#{num}" + (f" ({swept})" if swept else "")
