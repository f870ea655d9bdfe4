"""`ics tensorboard [DIR]`: TensorBoard on 127.0.0.1 for a run, a sweep, or everything here."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import List, Optional


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
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
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def serve(path: Optional[Path], port: Optional[int]) -> int:
    """Start TensorBoard and wait for it; a port in use is a ValueError (one line) before anything starts."""
    if port is not None and not port_free(port):
        raise ValueError(f"--port {port} is in use on 127.0.0.1; choose another, or leave --port out for a free one")
    port = port or free_port()
    where = path or ", ".join(d for d in ("runs", "multiruns") if Path(d).is_dir()) or "."
    print(f"TensorBoard for {where}: http://127.0.0.1:{port}/  (Ctrl-C stops it)\n"
          "  set Smoothing to 0 for accuracy: evaluations are few and log-spaced, and the default 0.6 "
          "draws a curve that lags them", flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(command(path, port), env=env, stderr=subprocess.DEVNULL)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        return 0
