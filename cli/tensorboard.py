"""`ics tensorboard [DIR]`: TensorBoard for a run, a sweep, or everything here, as a child process
that lives exactly as long as `ics` does.

SIGINT, SIGTERM and SIGHUP to `ics` stop TensorBoard before `ics` exits; on Linux the child is also
told to end if `ics` dies without a word (PR_SET_PDEATHSIG). TensorBoard's own errors are passed on
(its start-up notes are not); the URL is printed once TensorBoard is listening. Without --port,
TensorBoard binds port 0 (the system picks a free one) and its own serving line says which: nothing
is chosen here that another process could take first.

The URL opens on the comparison: runs coloured by the swept values (seeds of a group share a colour),
smoothing 0 in every tab, and, for a sweep with a report, the Custom Scalars tab with the report's
group runs first (a folder of links: `groups/<label>` then `jobs/<job>`; TensorBoard orders Custom
Scalars by run name), so the mean ± CI band charts lead and `groups/` or `jobs/` in the runs filter
shows one kind alone (in the HParams table too).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Dict, List, Optional, Sequence
from urllib.parse import quote

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# TensorBoard 2.21 reads `smoothing` and `runColorGroup` from the query (Time Series, the run list) and
# `_smoothingWeight` from the hash (the Scalars and Custom Scalars tabs): each defaults to 0.6
SMOOTHING = "?smoothing=0"
HASH_SMOOTHING = "_smoothingWeight=0"
EVENTS = "events.out.tfevents.*"
REPORT_DIR, GROUPS_DIR = "report", "groups"  # ics.record.names.REPORT_DIR, ics.analysis.tboard.GROUPS_DIR
NOT_IN_TENSORBOARD = (
    "TensorBoard has no log step axis: the first steps, where BN leads, are a sliver here; "
    "report.html draws accuracy on one"
)
# what TensorBoard prints on every start: not news to an ics user
NOISE = (
    "TensorFlow installation not found",
    "NOTE: Using experimental fast data loading logic",
    '"--load_fast=false" and report issues',
    "https://github.com/tensorflow/tensorboard/issues/4784",
    "TensorBoard caught SIG",
)


def _socket(host: str) -> socket.socket:
    return socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)


def free_port(host: str = "127.0.0.1") -> int:
    with _socket(host) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def logdir_args(path: Optional[Path]) -> List[str]:
    """One directory, or (default) runs/ and multiruns/ of the working directory together."""
    if path is not None:
        return ["--logdir", str(path)]
    present = [d for d in ("runs", "multiruns") if Path(d).is_dir()]
    if not present:
        return ["--logdir", "."]
    return ["--logdir_spec", ",".join(f"{d}:{Path(d).resolve()}" for d in present)]


def command(path: Optional[Path], port: int, host: str = "127.0.0.1") -> List[str]:
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        *logdir_args(path),
        "--host",
        host,
        "--port",
        str(port),
        "--reload_interval",
        "5",
    ]


def _event_dirs(root: Path) -> List[Path]:
    """The folders right under root that hold event files themselves (links are not followed: the
    folder is untrusted)."""
    out = []
    for d in sorted(root.iterdir()) if root.is_dir() else ():
        if d.is_dir() and not d.is_symlink() and next(d.glob(EVENTS), None) is not None:
            out.append(d)
    return out


def sweep_view(sweep: Path, into: Path) -> Optional[Path]:
    """For a sweep with a report: into/groups/<label> and into/jobs/<job>, links to the report's
    group runs and to the jobs, so that TensorBoard lists the groups first; None for anything else."""
    groups, jobs = _event_dirs(sweep / REPORT_DIR / GROUPS_DIR), [d for d in _event_dirs(sweep) if d.name != REPORT_DIR]
    if (sweep / REPORT_DIR).is_symlink() or not groups or not jobs:
        return None
    for kind, dirs in ((GROUPS_DIR, groups), ("jobs", jobs)):
        (into / kind).mkdir(parents=True)
        for d in dirs:
            (into / kind / d.name).symlink_to(d.resolve(), target_is_directory=True)
    return into


def swept_keys(names: Sequence[str]) -> List[str]:
    """The keys whose value differs between run folder names (`3_model.norm=batch,trainer.seed=1`,
    a group's `model.norm=batch`), seeds left out: they are what a group is."""
    values: Dict[str, set] = {}
    for name in names:
        for k, v in re.findall(r"(?:^|[,_])([A-Za-z][\w.-]*)=([^,]*)", name):
            values.setdefault(k, set()).add(v)
    return [k for k, vs in values.items() if len(vs) > 1 and not k.endswith(".seed")]


def colour_regex(keys: Sequence[str]) -> Optional[str]:
    """A run-colouring regex whose capture groups are the values of keys: runs with equal values
    (a group run and its seeds) get one colour. Lookaheads, so the keys may come in any order."""
    if len(keys) <= 1:
        return f"{re.escape(keys[0])}=([^,/]*)" if keys else None
    return "".join(f"(?=.*(?:^|[/,_]){re.escape(k)}=([^,/]*))" for k in keys)


def url(host: str, port: int, colour: Optional[str] = None, tab: Optional[str] = None) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # a wildcard address is not a place to go
    shown = f"[{shown}]" if ":" in shown else shown
    query = SMOOTHING + (f"&runColorGroup={quote('regex:' + colour, safe=':=()[]^*,/')}" if colour else "")
    return f"http://{shown}:{port}/{query}#{tab or 'timeseries'}&{HASH_SMOOTHING}"


SERVING = re.compile(r"^TensorBoard \S+ at (https?://\S+?):(\d+)/")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with _socket(host) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class _Stop(BaseException):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _die_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM when the parent ends, however it ends."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _open_browser(address: str) -> None:
    """Only where a graphical browser can open (a display, or macOS): on a bare terminal Python's
    webbrowser would start a text browser in it."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform == "darwin"):
        return
    try:
        import webbrowser

        webbrowser.open(address, new=2)
    except Exception:  # noqa: BLE001 - opening is a courtesy; the URL is printed
        pass


def exposure(host: str) -> Optional[str]:
    """The warning for a --host that other machines can reach (TensorBoard asks no password), or None."""
    import ipaddress

    name = host.strip("[]")
    if name == "localhost":
        return None
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:  # a host name: whatever it resolves to may be reachable
        return f"warning: --host {host}: anyone who can reach {host} on this port reads every run shown (no password)"
    if ip.is_loopback:
        return None
    if ip.is_unspecified:
        return (
            f"warning: --host {host} listens on every interface: anyone who can reach this machine on this "
            "port reads every run shown (no password)"
        )
    return f"warning: --host {host} is reachable from other machines: anyone who can reach it reads every run shown"


def serve(path: Optional[Path], port: Optional[int], host: str = "127.0.0.1", open_browser: bool = True) -> int:
    """Start TensorBoard and wait for it; a port in use is a ValueError (one line) before anything
    starts. Returns TensorBoard's exit code, or 128 + signal when a signal stopped it."""
    if not host.strip():  # "" would bind every interface without saying so
        raise ValueError(
            "--host is empty; allowed: an address of this machine, e.g. 127.0.0.1 (this machine "
            "only) or 0.0.0.0 (every interface)"
        )
    try:
        free_port(host)  # only a check that host is an address of this machine: TensorBoard binds the port
    except (OSError, UnicodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ValueError(
            f"--host {host} cannot be listened on here ({reason}); allowed: an address of this "
            "machine, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
        ) from None
    if port is not None and not port_free(port, host):
        raise ValueError(f"--port {port} is in use on {host}; choose another, or leave --port out for a free one")
    warning = exposure(host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    where = path or ", ".join(d for d in ("runs", "multiruns") if Path(d).is_dir()) or "."
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory(prefix="ics-tensorboard-") as tmp:
        view = sweep_view(path, Path(tmp)) if path is not None else None
        runs = (
            [d.name for kind in (GROUPS_DIR, "jobs") for d in sorted((view / kind).iterdir())]
            if view
            else [d.name for d in _event_dirs(path)]
            if path is not None
            else []
        )
        argv = command(view or path, port or 0, host) + (["--load_fast=false"] if view else [])  # links: the
        # reader in Python follows them
        colour, tab = colour_regex(swept_keys(runs)), "custom_scalars" if view else None
        return _run(argv, env, lambda bound: (url(host, bound, colour, tab), where, view is not None), open_browser)


def _run(argv: List[str], env: Dict[str, str], address_of, open_browser: bool) -> int:
    """TensorBoard as a child until it ends or a signal comes; the URL printed once it listens."""

    def stop(signum, frame):
        raise _Stop(signum)

    old = (
        {s: signal.signal(s, stop) for s in STOP_SIGNALS}
        if threading.current_thread() is threading.main_thread()
        else {}
    )
    proc = None
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        for line in proc.stderr:  # until TensorBoard says it is listening (or ends)
            bound = SERVING.match(line)
            if bound:  # the port TensorBoard bound, read back from its own line
                address, where, grouped = address_of(int(bound.group(2)))
                print(f"TensorBoard for {where}: {address}  (smoothing 0; Ctrl-C stops it)", flush=True)
                if grouped:
                    print(
                        "  runs coloured by group; groups/ (mean ± 95% CI of the seeds) first, jobs/ (one run a "
                        "seed): type either in the runs filter to show one kind",
                        flush=True,
                    )
                print(f"  {NOT_IN_TENSORBOARD} (ics report <dir> writes report.html)", flush=True)
                if open_browser:
                    _open_browser(address)
                break
            if line.strip() and not any(n in line for n in NOISE):
                print(f"tensorboard: {line.rstrip()}", file=sys.stderr, flush=True)
        threading.Thread(target=_pass_on, args=(proc.stderr,), daemon=True).start()
        code = proc.wait()
        if code:
            print(f"tensorboard: exited with code {code}", file=sys.stderr, flush=True)
        return code
    except (_Stop, KeyboardInterrupt) as e:
        return 128 + (e.signum if isinstance(e, _Stop) else signal.SIGINT)
    finally:
        for s in STOP_SIGNALS:  # a second signal while TensorBoard ends is ignored: it is ending
            if s in old:
                signal.signal(s, signal.SIG_IGN)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for s, handler in old.items():
            signal.signal(s, handler)


def _pass_on(stream) -> None:
    """TensorBoard's later stderr (errors while serving), minus its routine notes."""
    try:
        for line in stream:
            if line.strip() and not any(n in line for n in NOISE):
                print(f"tensorboard: {line.rstrip()}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
