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

from ics.analysis.configs import format_value, parse_override
from ics.record import Status, names, read_jobs
from ics.train.progress import LIVE_ENV

HPARAMS_FILE = "hparams.json"  # the sweep's varying keys and their values, read by each job
# written at a sweep's root when the CLI passes a signal on to its jobs: a job that starts after it
# (queued in a joblib worker, or next in line) does not start; holds the signal's number
STOP_FILE = ".stopped"


def stop_signal_of(sweep_dir: Path) -> Optional[int]:
    try:
        return int((Path(sweep_dir) / STOP_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def sweep_keys(jobs: Sequence[Sequence[str]]) -> Tuple[Dict[str, list], List[str]]:
    """({key: sorted distinct values} of the keys that vary between jobs, [keys that never vary])."""
    values: Dict[str, list] = {}
    for job in jobs:
        for text in job:
            kv = parse_override(text)
            if kv is not None:
                values.setdefault(kv[0], [])
                if kv[1] not in values[kv[0]]:
                    values[kv[0]].append(kv[1])
    varying = {k: sorted(v, key=lambda x: (str(type(x)), x)) for k, v in values.items() if len(v) > 1}
    constant = [k for k, v in values.items() if len(v) == 1]
    return varying, constant


def short(text: str, limit: int = 60) -> str:
    """A directory-name-safe short form of overrides: last key component, no spaces or slashes."""
    parts = []
    for o in text.split():
        kv = parse_override(o)
        if kv is None:
            continue
        key = kv[0].split(".")[-1].split("/")[-1]
        parts.append(f"{key}={format_value(kv[1])}")
    name = re.sub(r"[^A-Za-z0-9=.,_+-]", "", ",".join(parts))
    return name[:limit].rstrip(",")


def run_name(overrides: Sequence[str], label: Optional[str] = None) -> str:
    """`name=...` if the user gave one, else the short overrides (paths and machine keys left out)."""
    if label and label != "run":
        return re.sub(r"[^A-Za-z0-9=.,_+-]", "", label)[:60]
    skip = ("data.root", "data.image_folder", "data.cache_dir", "trainer.device", "trainer.threads",
            "trainer.progress", "hydra")
    return short(" ".join(o for o in overrides if not o.lstrip("+~").startswith(skip) and "=" in o))


def write_hparams(sweep_dir: Path, varying: Dict[str, list]) -> None:
    """The sweep's HParams experiment: its varying keys with their values as discrete domains, at the
    sweep's root, so TensorBoard's HParams tab shows exactly what was swept."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    from ics.train.loop import hparam_value

    keys = {k: [hparam_value(x) for x in v] for k, v in varying.items() if not k.startswith("hydra")}
    (sweep_dir / HPARAMS_FILE).write_text(json.dumps({"keys": list(keys)}))
    if not keys:
        return
    first = {k: (v[0] if isinstance(v[0], (bool, int, float, str)) else str(v[0])) for k, v in keys.items()}
    domains = {k: [x if isinstance(x, (bool, int, float, str)) else str(x) for x in v] for k, v in keys.items()
               if all(isinstance(x, (bool, int, float, str)) for x in v) and len({type(x) for x in v}) == 1}
    metrics = {m: 0.0 for m in names.HPARAM_METRICS}
    exp, _, _ = hparams(first, metrics, hparam_domain_discrete=domains)
    writer = SummaryWriter(log_dir=str(sweep_dir))
    writer.file_writer.add_summary(exp)
    writer.close()


def hparam_keys_of(sweep_dir: Path) -> Optional[List[str]]:
    try:
        return json.loads((Path(sweep_dir) / HPARAMS_FILE).read_text())["keys"]
    except (OSError, ValueError, KeyError):
        return None


# ----------------------------------------------------------------------------------------------
# the live view


class LiveSweep:
    """One line per running job (number, its swept values, step, loss, last test accuracy, steps/s)
    and an overall line (done / failed / total, ETA), redrawn twice a second from the job
    directories, whichever launcher runs them. Only on a terminal; jobs then draw nothing."""

    def __init__(self, sweep_dir: Path, total: int, parallel: int, console=None, swept: Sequence[str] = ()):
        from rich.console import Console

        self.sweep_dir, self.total, self.parallel = Path(sweep_dir), total, max(1, parallel)
        self.swept = set(swept)  # the keys that vary: a job's label shows only those
        self.console = console or Console()
        self.enabled = self.console.is_terminal
        self.t0 = time.monotonic()
        self._live = None
        self._old_env = None

    def __enter__(self) -> "LiveSweep":
        if self.enabled:
            from rich.live import Live

            self._old_env = os.environ.get(LIVE_ENV)
            os.environ[LIVE_ENV] = "1"  # jobs (in-process or workers, which inherit it) stay quiet
            self._live = Live(get_renderable=self.render, console=self.console, refresh_per_second=2,
                              redirect_stdout=True, redirect_stderr=False, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None
            if self._old_env is None:
                os.environ.pop(LIVE_ENV, None)
            else:
                os.environ[LIVE_ENV] = self._old_env

    def render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))  # one space between columns: a job's line fits 80 columns
        for _ in range(7):
            table.add_column(no_wrap=True, overflow="ellipsis")
        try:
            jobs = read_jobs(self.sweep_dir) if self.sweep_dir.is_dir() else []
        except OSError:
            jobs = []
        done = [j for j in jobs if j.status.finished]
        failed = [j for j in jobs if j.status == Status.FAILED]
        running = [j for j in jobs if j.status == Status.RUNNING]
        eta_parts = []
        for j in running:
            p = _progress(j.dir)
            step, steps = p.get("step") or 0, p.get("steps") or 0
            sps = p.get("steps_per_sec")
            fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
            mine = [o for o in j.overrides if o.lstrip("+~").split("=", 1)[0] in self.swept] or j.overrides
            label = short(" ".join(mine), 48)
            if sps:
                eta_parts.append((steps - step) / sps)
            table.add_row(f"job {j.num}", label, f"{p.get('phase', 'starting')}",
                          f"step {step:,}/{steps:,}" if steps else "",
                          f"loss {fmt(p.get('loss'), '.4f')}", f"acc {fmt(p.get('acc'), '.4f')}",
                          f"{fmt(sps, ',.0f')} steps/s")
        elapsed = time.monotonic() - self.t0
        finished = len(done) + len(failed)
        queued = self.total - finished - len(running)
        per_job = elapsed / finished * min(self.parallel, self.total) if finished else None
        eta = None
        if queued <= 0 and eta_parts:
            eta = max(eta_parts)
        elif per_job is not None:
            eta = (max(eta_parts) if eta_parts else 0) + queued * per_job / self.parallel
        # the overall line is its own line (in the job grid, narrow job columns would cut it)
        overall = Text.assemble((f"{finished}/{self.total} done", "bold"),
                                f" · {len(failed)} failed · {len(running)} running · {max(queued, 0)} queued"
                                f" · elapsed {_hms(elapsed)} · " + (f"ETA {_hms(eta)}" if eta else "ETA -"))
        return Group(table, overall)


def _progress(d: Path) -> dict:
    from ics.record.jobs import read_progress

    return read_progress(d)  # data: a damaged or hostile progress.json is {}


def _hms(sec: Optional[float]) -> str:
    if sec is None:
        return "-"
    sec = int(sec)
    return f"{sec // 3600}:{sec % 3600 // 60:02d}:{sec % 60:02d}" if sec >= 3600 else f"{sec // 60}:{sec % 60:02d}"
