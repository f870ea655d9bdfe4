"""What the CLI does around a sweep: names, the keys that vary (for directory names and TensorBoard's
HParams tab), and the live terminal view of the running jobs."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ics.record import Status, read_jobs
from ics.words import of

HPARAMS_FILE = "hparams.json"  # the sweep's varying keys and their values, read by each job
# written at a sweep's root when the CLI passes a signal on to its jobs: a job that starts after it
# (queued in a joblib worker, or next in line) does not start; holds the signal's number
STOP_FILE = ".stopped"
# hparams.json is read back up to this size; a sweep of 100,000 values of a key (a float domain of
# ~2 MB) keeps its keys and leaves that domain out (TensorBoard then shows the values it finds)
MAX_HPARAMS = 1_000_000


def stop_signal_of(sweep_dir: Path) -> Optional[int]:
    from ics.record.files import read_text

    try:
        return int(read_text(Path(sweep_dir) / STOP_FILE, 64).strip())
    except (OSError, ValueError):
        return None


def write_stop_file(sweep_dir: Path, signum: int) -> None:
    """The stop file, written like every file of a sweep folder (ics.record.files.atomic_write)."""
    from ics.record.files import write_text

    write_text(Path(sweep_dir) / STOP_FILE, str(int(signum)))


def sweep_keys(jobs: Sequence[Sequence[str]]) -> Tuple[Dict[str, list], List[str]]:
    """({key: sorted distinct values} of the keys that vary between jobs, [keys that never vary])."""
    from ics.analysis.configs import parse_override  # here: ics.analysis is heavy for the CLI's start

    values: Dict[str, list] = {}
    seen: set = set()  # (key, value) pairs listed: a list lookup per job made 100,000 seeds take minutes
    for job in jobs:
        for text in job:
            kv = parse_override(text)
            if kv is not None:
                values.setdefault(kv[0], [])
                try:
                    new = kv not in seen  # == as the list lookup (1 == 1.0), in O(1)
                    seen.add(kv)
                except TypeError:  # a list or dict value: unhashable
                    new = kv[1] not in values[kv[0]]
                if new:
                    values[kv[0]].append(kv[1])
    varying = {k: sorted(v, key=lambda x: (str(type(x)), x)) for k, v in values.items() if len(v) > 1}
    constant = [k for k, v in values.items() if len(v) == 1]
    return varying, constant


def short(text: str, limit: int = 60) -> str:
    """A directory-name-safe short form of overrides: last key component, no spaces or slashes; values
    as typed (`grad_ics=on` stays `on`, not YAML's True)."""
    parts = []
    for o in text.split():
        if "=" not in o:
            continue
        key, value = o.split("=", 1)
        key = key.lstrip("+~").split(".")[-1].split("/")[-1]
        parts.append(f"{key}={value}")
    parts = [re.sub(r"[^A-Za-z0-9=.,_+-]", "", p) for p in parts]
    kept: List[str] = []
    for i, part in enumerate(parts):  # whole key=value pairs only: a value cut short would mislead
        rest = len(parts) - i - 1
        if len(",".join(kept + [part])) + (len(f",+{rest}") if rest else 0) > limit:
            if not kept:  # one long value: its key says what was set
                return part.split("=", 1)[0][:limit] + (f",+{rest}" if rest else "")
            return ",".join(kept) + f",+{rest + 1}"  # "+N": N more overrides, in .hydra/overrides.yaml
        kept.append(part)
    return ",".join(kept)


def run_name(overrides: Sequence[str], label: Optional[str] = None) -> str:
    """`name=...` if the user gave one, else the short overrides (paths and machine keys left out)."""
    if label and label != "run":
        return re.sub(r"[^A-Za-z0-9=.,_+-]", "", label)[:60]
    skip = (
        "data.root",
        "data.image_folder",
        "data.cache_dir",
        "trainer.device",
        "trainer.threads",
        "trainer.progress",
        "hydra",
    )
    return short(" ".join(o for o in overrides if not o.lstrip("+~").startswith(skip) and "=" in o))


def sweep_name(varying: Dict[str, list], limit: int = 40) -> str:
    """An ad-hoc sweep's folder suffix: the keys it sweeps ("norm,lr"), or "sweep" when none varies."""
    keys = [k.split(".")[-1].split("/")[-1] for k in varying if not k.startswith("hydra")]
    name = re.sub(r"[^A-Za-z0-9,_+-]", "", ",".join(keys))[:limit].rstrip(",")
    return name or "sweep"


NAME_MAX = 255  # bytes in a file name (ext4, xfs, btrfs, tmpfs, NFS): a job folder's name must fit


def keys_left_out_of_names(jobs: Sequence[Sequence[str]], exclude: Sequence[str], limit: int = NAME_MAX) -> List[str]:
    """Keys to leave out of the job folder names (`<num>_<key=value,...>`, Hydra's override_dirname) so
    that every name fits in `limit` bytes: while a job's name is too long, the key of its longest
    override goes. Whole key=value pairs stay; names stay unique (each begins with the job number);
    the choice depends only on the jobs, so `ics resume` names the folders the same way. A job's
    overrides are all in its .hydra/overrides.yaml and summary.json."""
    from ics_cli.hydra_compat import override_dirname

    out: List[str] = []
    while True:
        gone = set(exclude) | set(out)
        long_job = next(
            (job for num, job in enumerate(jobs) if len(f"{num}_{override_dirname(list(job), gone)}".encode()) > limit),
            None,
        )
        if long_job is None:
            return out
        named = [o for o in long_job if o.split("=", 1)[0].lstrip("+~") not in gone]
        longest = max(named, key=lambda o: (len(o.encode()), o))
        out.append(longest.split("=", 1)[0].lstrip("+~"))


def write_hparams(sweep_dir: Path, varying: Dict[str, list]) -> None:
    """The sweep's HParams experiment, read by each job: its varying keys and, where one type holds
    all of a key's values, those values as a discrete domain. Each job writes the experiment summary
    into its own run folder (TensorBoard takes it from any run), so the sweep's root holds no event
    file and shows no `.` run."""
    from ics.train.hooks.tensorboard import hparam_value

    keys = {k: [hparam_value(x) for x in v] for k, v in varying.items() if not k.startswith("hydra")}
    domains = {
        k: v
        for k, v in keys.items()
        if all(isinstance(x, (bool, int, float, str)) for x in v) and len({type(x) for x in v}) == 1
    }
    from ics.record.files import write_text

    text = json.dumps({"keys": list(keys), "domains": domains})
    while len(text.encode()) > MAX_HPARAMS and domains:  # hparam_keys_of ignores a bigger file: keep the keys,
        del domains[max(domains, key=lambda k: len(json.dumps(domains[k])))]  # drop the biggest domains
        text = json.dumps({"keys": list(keys), "domains": domains})
    write_text(sweep_dir / HPARAMS_FILE, text)


def hparam_keys_of(sweep_dir: Path) -> Optional[Tuple[List[str], Dict[str, list]]]:
    """The keys a sweep varies and their discrete domains, as written by write_hparams; None where the
    file is missing or not what write_hparams writes (it is read from a folder: untrusted)."""
    from ics.record.files import read_json

    try:
        spec = read_json(Path(sweep_dir) / HPARAMS_FILE, MAX_HPARAMS)  # what write_hparams writes is a few kB
        keys, domains = spec["keys"], spec.get("domains", {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys) and isinstance(domains, dict)):
        return None
    ok = (bool, int, float, str)
    return keys, {
        k: v
        for k, v in domains.items()
        if k in keys and isinstance(v, list) and v and all(isinstance(x, ok) for x in v)
    }


# ----------------------------------------------------------------------------------------------
# the live view


def job_line(
    num, label: str, step: Optional[int], steps: Optional[int], loss, acc, phase: str, sps, width: int, metric=None
) -> str:
    """A running job in at most `width` characters. Fields go in by priority (job number, swept values,
    step/total, loss, accuracy, then the phase word and speed) and are shown in that order; one that
    does not fit whole is left out, except the swept values, which are shortened to fit. metric: "r2"
    for a regression run (its score is R², not accuracy)."""
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    head = f"job {num}"
    rest = [
        f"step {step or 0:,}/{steps:,}" if steps else "",
        f"loss {fmt(loss, '.4f')}",
        f"{'R²' if metric == 'r2' else 'acc'} {fmt(acc, '.4f')}",
        phase,
        f"{fmt(sps, ',.0f')} steps/s" if sps else "",
    ]
    room = width - len(head) - 2
    if room <= 0:
        return head[:width]
    # the swept values keep what they need of the room left after step/total (when that fits)
    keep = room - (len(rest[0]) + 2 if rest[0] and len(label) + len(rest[0]) + 2 > room else 0)
    label = label if len(label) <= max(keep, 8) else label[: max(keep, 8) - 1] + "…"
    parts, used = [head, label], len(head) + 2 + len(label)
    for field in rest:
        if field and used + 2 + len(field) <= width:
            parts.append(field)
            used += 2 + len(field)
    return "  ".join(p for p in parts if p)[:width]


def bar_line(done: float, total: float, width: int) -> str:
    """A text progress bar of `done` out of `total` steps, with the percentage, `width` characters."""
    frac = min(max(done / total, 0.0), 1.0) if total else 0.0
    pct = f" {frac * 100:3.0f}%"
    cells = max(width - len(pct), 0)
    full = int(frac * cells)
    return "━" * full + "╺" * (full < cells) + "─" * max(cells - full - 1, 0) + pct


def logs_to_file_only(out_dir: Path) -> None:
    """Inside a sweep the CLI draws: the root logger's console handlers go (a library's line, such as
    matplotlib's font-cache note, would break the live view) and what they would have said goes to the
    run's log file (Hydra's, or <out_dir>/ics.log where the job has none)."""
    import logging

    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            root.removeHandler(h)
    if not any(isinstance(h, logging.FileHandler) for h in root.handlers):
        handler = logging.FileHandler(out_dir / "ics.log", delay=True)  # no file until a line comes
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        root.addHandler(handler)


def eta_seconds(left: Sequence[Optional[float]], queued: Sequence[Optional[float]], slots: int) -> Optional[float]:
    """Seconds until the last job ends: `left` the seconds each running job still needs (its steps
    left / its own steps/s), `queued` the seconds each job not started yet will take (from the speed
    of started jobs like it), None where unknown (the mean of the known stands in). Jobs start in
    order on the slot that frees first, `slots` at a time; None while nothing is known."""
    known = [t for t in (*left, *queued) if t is not None]
    if not known:
        return None
    mean = sum(known) / len(known)
    free = sorted([t if t is not None else mean for t in left] + [0.0] * max(slots - len(left), 0))
    for t in queued:
        free[0] += t if t is not None else mean
        free.sort()
    return max(free) if free else 0.0


def _speed_key(overrides: Sequence[str], swept: set) -> Tuple[str, ...]:
    """What sets a job's speed here: its swept values other than seeds (seeds of a config run alike)."""
    return tuple(
        sorted(
            o for o in overrides if (k := o.lstrip("+~").split("=", 1)[0]) in swept and k.rsplit(".", 1)[-1] != "seed"
        )
    )


class SweepState:
    """One look at a sweep's job folders: per job its status, label and progress; steps done/total."""

    def __init__(self, sweep_dir: Path, total: int, swept: set):
        try:
            jobs = read_jobs(sweep_dir) if sweep_dir.is_dir() else []
        except OSError:
            jobs = []
        self.jobs, self.total = jobs, total
        self.progress = {j.dir: _progress(j.dir) for j in jobs}
        self.labels = {}
        for j in jobs:
            mine = [o for o in j.overrides if o.lstrip("+~").split("=", 1)[0] in swept] or j.overrides
            self.labels[j.dir] = short(" ".join(mine), 48) or "-"
        self.finished = [j for j in jobs if j.status.finished or j.status == Status.FAILED]
        self.failed = [j for j in jobs if j.status == Status.FAILED]
        self.running = [j for j in jobs if j.status == Status.RUNNING]
        self.queued = max(total - len(self.finished) - len(self.running), 0)
        self.swept = swept

    def steps(self) -> Tuple[float, float]:
        """(steps done, steps in all): a finished job counts whole; a job whose length is not known yet
        (not started, or starting) counts as the mean length of the others."""
        done = total = 0.0
        unknown = max(self.total - len(self.jobs), 0)
        lengths = []
        for j in self.jobs:
            p = self.progress[j.dir]
            n = p.get("steps") or (j.summary.steps if j.summary else 0) or 0
            if not n:
                unknown += 1
            elif j in self.finished:
                done, total = done + n, total + n
            elif j in self.running:
                done, total = done + min(p.get("step") or 0, n), total + n
            lengths += [n] if n else []
        return done, total + unknown * (sum(lengths) / len(lengths) if lengths else 0)

    def eta(self, slots: int, planned: Optional[List[List[str]]]) -> Optional[float]:
        """eta_seconds from each running job's own speed, and for each job not started its planned
        overrides' speed as measured on started jobs alike (planned: jobs.json, None when absent)."""
        seconds: Dict[Tuple[str, ...], List[float]] = {}  # speed key -> seconds a whole job takes
        left: List[Optional[float]] = []
        for j in [*self.running, *self.finished]:
            p = self.progress[j.dir]
            running = j in self.running
            n = p.get("steps") or (j.summary.steps if j.summary else 0) or 0
            sps = p.get("steps_per_sec") if running else (j.summary.steps_per_sec if j.summary else None)
            if not isinstance(sps, (int, float)) or sps <= 0 or not isinstance(n, (int, float)):
                left += [None] if running else []
                continue
            seconds.setdefault(_speed_key(j.overrides, self.swept), []).append(n / sps)
            if running:
                left.append(max(n - (p.get("step") or 0), 0) / sps)
        started = {j.num for j in self.jobs}
        todo = [o for i, o in enumerate(planned or []) if i not in started][: self.queued] if planned else []
        per = {k: sum(v) / len(v) for k, v in seconds.items()}
        # a job like no started one (another swept value), or one not started yet at all: as long as a
        # whole started job takes on average (never the mean of what running jobs have left, which
        # shrinks as they near their end)
        whole = [t for v in seconds.values() for t in v]
        typical = sum(whole) / len(whole) if whole else None
        queued = [per.get(_speed_key(o, self.swept), typical) for o in todo] + [typical] * (self.queued - len(todo))
        return eta_seconds(left, queued, slots)


class LiveSweep:
    """What a sweep shows while its jobs run, whichever launcher runs them (jobs then print nothing).

    On a terminal: one line per running job (see job_line) and an overall bar with the ETA (each
    job's own speed: eta_seconds), redrawn twice a second; as each job ends, its line with its final
    test score is printed above them and stays. Without one (a log file): a timestamped line as each job starts, a progress line
    per running job every `every_sec` seconds (only when its step moved), and "n/N done" as jobs end."""

    def __init__(
        self,
        sweep_dir: Path,
        total: int,
        parallel: int,
        console=None,
        swept: Sequence[str] = (),
        every_sec: float = 30.0,
    ):
        from rich.console import Console

        self.sweep_dir, self.total, self.parallel = Path(sweep_dir), total, max(1, parallel)
        self.swept = set(swept)  # the keys that vary: a job's label shows only those
        self.console = console or Console()
        self.terminal = self.console.is_terminal
        self.every_sec = every_sec
        self.t0 = time.monotonic()
        self._live = None
        self._old_env = None
        self._thread = None
        self._stop = threading.Event()
        self._seen: Dict[Path, str] = {}  # job folder -> the state last logged ("running" / its status)
        self._logged: Dict[Path, Tuple[float, Optional[int]]] = {}  # job -> (time, step) of its last line
        self._done = 0  # finished jobs logged so far
        self._plan: Optional[List[List[str]]] = None

    def _planned(self) -> Optional[List[List[str]]]:
        """jobs.json, read once it is there (it does not change while the sweep runs)."""
        if self._plan is None:
            from ics.record.jobs import read_planned

            self._plan = read_planned(self.sweep_dir)
        return self._plan

    def __enter__(self) -> "LiveSweep":
        from ics.train.progress import LIVE_ENV

        self._old_env = os.environ.get(LIVE_ENV)
        os.environ[LIVE_ENV] = "1"  # jobs (in-process or workers, which inherit it) stay quiet
        if self.terminal:
            from rich.live import Live

            self._live = Live(
                get_renderable=self.render,
                console=self.console,
                refresh_per_second=2,
                redirect_stdout=True,
                redirect_stderr=False,
                transient=True,
            )
            self._live.__enter__()
        # without a terminal, the log; on one, each finished job's line above the live lines, to stay
        before = SweepState(self.sweep_dir, self.total, self.swept).finished  # a resumed sweep's results
        self._seen.update({j.dir: str(j.status) for j in before})
        self._done = len(before)
        self._thread = threading.Thread(target=self._log_loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.log_once()
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None
        from ics.train.progress import LIVE_ENV

        if self._old_env is None:
            os.environ.pop(LIVE_ENV, None)
        else:
            os.environ[LIVE_ENV] = self._old_env

    # --- without a terminal: log lines ----------------------------------------------------------
    def _log_loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.log_once()
            except Exception:  # noqa: BLE001 - a display problem never stops the sweep
                pass

    def log_once(self) -> None:
        from ics_cli.console import status_text

        from ics.train.progress import stamp

        state = SweepState(self.sweep_dir, self.total, self.swept)
        now = time.monotonic()
        out = []
        for j in state.finished:
            if self._seen.get(j.dir) in (None, "running"):
                self._seen[j.dir] = str(j.status)
                self._done += 1
                acc = j.summary.final_test_acc if j.summary and j.status != Status.FAILED else None
                score = "R²" if j.summary and j.summary.metric == "r2" else "acc"
                out.append(
                    f"{self._done}/{self.total} done  job {j.num}  {state.labels[j.dir]}  {status_text(j)}"
                    + (f", final test {score} {acc:.4f}" if acc is not None else "")
                )
        if self.terminal:  # the live lines show the running jobs; a finished job's line stays above them
            for line in out:
                self.console.print(line, highlight=False, soft_wrap=True)
            return
        for j in state.running:
            label, p = state.labels[j.dir], state.progress[j.dir]
            if self._seen.get(j.dir) != "running":
                self._seen[j.dir] = "running"
                self._logged[j.dir] = (now, p.get("step"))
                out.append(f"job {j.num}  {label}  started")
                continue
            last_t, last_step = self._logged[j.dir]
            if now - last_t >= self.every_sec and p.get("step") and p.get("step") != last_step:
                self._logged[j.dir] = (now, p.get("step"))
                out.append(
                    job_line(
                        j.num,
                        label,
                        p.get("step"),
                        p.get("steps"),
                        p.get("loss"),
                        p.get("acc"),
                        "",
                        p.get("steps_per_sec"),
                        1000,
                        p.get("metric"),
                    )
                )
        for line in out:
            print(f"{stamp()} {line}", flush=True)

    # --- on a terminal: the live view -----------------------------------------------------------
    def render(self):
        from rich.console import Group
        from rich.text import Text

        state = SweepState(self.sweep_dir, self.total, self.swept)
        width = self.console.width
        lines = []
        for j in state.running:
            p = state.progress[j.dir]
            lines.append(
                Text(
                    job_line(
                        j.num,
                        state.labels[j.dir],
                        p.get("step"),
                        p.get("steps"),
                        p.get("loss"),
                        p.get("acc"),
                        p.get("phase", "starting"),
                        p.get("steps_per_sec"),
                        width,
                        p.get("metric"),
                    ),
                    no_wrap=True,
                    overflow="crop",
                )
            )
        now = time.monotonic()
        done, total = state.steps()
        eta = state.eta(self.parallel, self._planned()) if state.jobs else None
        counts = (
            f"{len(state.finished)}/{self.total} done · {len(state.failed)} failed · {len(state.running)} "
            f"running · {state.queued} queued · elapsed {_hms(now - self.t0)} · ETA {_hms(eta)}"
        )
        steps = f" {of(int(done), int(total), 'step')}" if total else ""
        lines.append(Text(bar_line(done, total, max(width - len(steps), 10)) + steps, no_wrap=True, overflow="crop"))
        lines.append(Text(counts, style="bold"))  # wraps at 80 columns rather than lose the ETA
        return Group(*lines)


def _progress(d: Path) -> dict:
    from ics.record.jobs import read_progress

    return read_progress(d)  # data: a damaged or hostile progress.json is {}


def _hms(sec: Optional[float]) -> str:
    if sec is None:
        return "-"
    sec = int(sec)
    return f"{sec // 3600}:{sec % 3600 // 60:02d}:{sec % 60:02d}" if sec >= 3600 else f"{sec // 60}:{sec % 60:02d}"
