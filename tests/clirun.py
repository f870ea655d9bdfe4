"""The one way tests drive the `ics` CLI: in a subprocess (`ics`, `start`) where the process boundary is
the point (signals, exit codes of a real process, the console script, concurrency, Hydra's launchers),
and in-process through Typer's CliRunner (`invoke`) everywhere else, which is seconds faster a call
(no torch/Hydra import per command) and runs in the fast tier.

Tests that call `ics` or `start` are slow: mark them `@pytest.mark.slow` (conftest.py refuses a
subprocess started by a test that is not)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

ICS = [sys.executable, "-m", "ics_cli.main"]
# a wide terminal without colour: lines the tests search are neither wrapped nor full of escape codes
PLAIN = {"COLUMNS": "200", "NO_COLOR": "1"}


def plain(env: Mapping[str, str], extra_env: Optional[Mapping[str, str]] = None) -> dict:
    return {**env, **PLAIN, **(extra_env or {})}


def ics(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd,
    timeout: float = 600,
    extra_env: Optional[Mapping[str, str]] = None,
) -> subprocess.CompletedProcess:
    """`ics ARGS` in a fresh interpreter; waits for it and returns its exit code and output."""
    return subprocess.run(
        [*ICS, *args], env=plain(env, extra_env), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def start(
    args: Sequence[str], env: Mapping[str, str], cwd, extra_env: Optional[Mapping[str, str]] = None
) -> subprocess.Popen:
    """`ics ARGS` in a fresh interpreter, not waited for (to signal or kill it mid-run)."""
    return subprocess.Popen(
        [*ICS, *args], env=plain(env, extra_env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@dataclass
class Result:
    """What `invoke` returns: the fields of subprocess.CompletedProcess the tests read, so that the
    same assertions serve both ways of running the CLI."""

    args: list
    returncode: int
    stdout: str
    stderr: str
    exception: Optional[BaseException] = None


def invoke(args: Sequence[str], cwd=None, extra_env: Optional[Mapping[str, str]] = None) -> Result:
    """`ics ARGS` in this process (typer.testing.CliRunner), in `cwd` if given. The environment is this
    process's (a test sets ICS_DATA_ROOT through the tiny_env fixture) plus PLAIN and `extra_env`.
    An exception the CLI lets escape is re-raised: a traceback is a failure, as in a subprocess."""
    import os

    from ics_cli.main import app
    from typer.testing import CliRunner

    argv, old_cwd = list(sys.argv), os.getcwd()  # `ics run` hands Hydra its arguments through sys.argv
    try:
        if cwd is not None:
            os.chdir(cwd)
        r = CliRunner().invoke(app, list(args), env={**PLAIN, **(extra_env or {})}, catch_exceptions=True)
    finally:
        sys.argv[:] = argv
        os.chdir(old_cwd)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(list(args), r.exit_code, r.stdout, r.stderr, r.exception)


def lines(text: str) -> list:
    """The non-blank lines of `text`."""
    return [ln for ln in text.splitlines() if ln.strip()]


def cwd_empty(cwd: Path) -> bool:
    return not any(Path(cwd).iterdir())
