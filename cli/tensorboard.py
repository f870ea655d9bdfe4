"""`ics tensorboard [DIR]`: TensorBoard for a run, a sweep, or everything here, as a child process
that lives exactly as long as `ics` does.

SIGINT, SIGTERM and SIGHUP to `ics` stop TensorBoard before `ics` exits; on Linux the child is also
told to end if `ics` dies without a word (PR_SET_PDEATHSIG). TensorBoard's own errors are passed on
(its start-up notes are not); the URL is printed once TensorBoard is listening.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import List, Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# TensorBoard 2.x reads `smoothing` from the query of its default (Time Series) dashboard
SMOOTHING = "?smoothing=0"
# what TensorBoard prints on every start: not news to an ics user
NOISE = ("TensorFlow installation not found", "NOTE: Using experimental fast data loading logic",
         '"--load_fast=false" and report issues', "https://github.com/tensorflow/tensorboard/issues/4784",
         "TensorBoard caught SIG")


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
    return [sys.executable, "-m", "tensorboard.main", *logdir_args(path), "--host", host, "--port", str(port),
            "--reload_interval", "5"]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with _socket(host) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # a wildcard address is not a place to go
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/{SMOOTHING}"


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
        return (f"warning: --host {host} listens on every interface: anyone who can reach this machine on this "
                "port reads every run shown (no password)")
    return f"warning: --host {host} is reachable from other machines: anyone who can reach it reads every run shown"


def serve(path: Optional[Path], port: Optional[int], host: str = "127.0.0.1", open_browser: bool = True) -> int:
    """Start TensorBoard and wait for it; a port in use is a ValueError (one line) before anything
    starts. Returns TensorBoard's exit code, or 128 + signal when a signal stopped it."""
    if not host.strip():  # "" would bind every interface without saying so
        raise ValueError("--host is empty; allowed: an address of this machine, e.g. 127.0.0.1 (this machine "
                         "only) or 0.0.0.0 (every interface)")
    try:
        free = free_port(host)
    except (OSError, UnicodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ValueError(f"--host {host} cannot be listened on here ({reason}); allowed: an address of this "
                         "machine, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)") from None
    if port is not None and not port_free(port, host):
        raise ValueError(f"--port {port} is in use on {host}; choose another, or leave --port out for a free one")
    port = port or free
    warning = exposure(host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    where = path or ", ".join(d for d in ("runs", "multiruns") if Path(d).is_dir()) or "."
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def stop(signum, frame):
        raise _Stop(signum)

    old = {s: signal.signal(s, stop) for s in STOP_SIGNALS} if threading.current_thread() is threading.main_thread() \
        else {}
    proc = None
    try:
        proc = subprocess.Popen(command(path, port, host), env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        for line in proc.stderr:  # until TensorBoard says it is listening (or ends)
            if line.startswith("TensorBoard ") and " at http" in line:
                address = url(host, port)
                print(f"TensorBoard for {where}: {address}  (smoothing 0; Ctrl-C stops it)", flush=True)
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
