"""SLURM for ics: the `hydra/launcher=slurm` preset and the launcher behind it.

    ics sweep fig1 hydra/launcher=slurm hydra.launcher.partition=gpu hydra.launcher.timeout_min=240

The launcher is hydra-submitit-launcher's SLURM launcher (one job array per sweep, each job a
`submitit` job running ics's Hydra task on a node) with three changes:

* It watches jobs with `squeue` and the jobs' result files, never with `sacct`: clusters without an
  accounting database (and the toy cluster of cluster/toy-slurm.sh) make sacct fail, and submitit
  then logs "Bypassing sacct error" at every poll and never notices a job that ended without a
  result (cancelled, killed, node failure). A job that ends so is reported once, in one line, and
  the sweep still ends with its status table.
* Time limits and pre-emption: SLURM sends the job SIGUSR2 `signal_delay_s` seconds before its
  limit (and at pre-emption on clusters with SlurmctldParameters=preempt_send_user_signal). The run
  treats it like SIGTERM (ics.train.stopping.also_stop_on): it stops after the current step and
  writes its checkpoint and an `interrupted` record; then the job hands over to submitit's own
  handler, which dumps the resubmission and runs `scontrol requeue`. The requeued job runs the same
  task in the same job directory, which continues from the checkpoint (train_and_evaluate resumes
  automatically), so the result is bit-identical to an uninterrupted run. A plain SIGTERM
  (`scancel`, or pre-emption without the user signal) stops the run the same way but is not
  requeued by ics: the job ends `interrupted` with its checkpoint, and `ics resume <sweep dir>`
  finishes it (on SLURM or, with hydra/launcher=basic, locally).
* `ics resume` on SLURM submits only the jobs that are not finished.

Importable without submitit: the preset is then a stub that says what to install.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ics_cli.sweeps import HPARAMS_FILE

from ics.record import names
from ics.words import count, them

log = logging.getLogger(__name__)
# the CLI quiets Hydra's own INFO lines (root at WARNING); what this launcher says (job ids, squeue and
# log hints, requeues) is the only view of a SLURM sweep, so it keeps INFO
log.setLevel(logging.INFO)

PRESET = "slurm"
HYDRA_TARGET = "hydra_plugins.ics.slurm_launcher.SlurmLauncher"  # cli/plugins/slurm_launcher.py
SACCT_WARNING = "Bypassing sacct error"
# squeue states after which a job will not run again (unless someone requeues it by hand)
ENDED = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
    "SPECIAL_EXIT",
    "REVOKED",
}
RESULT_GRACE_S = 10.0  # an ended job's result file may reach a network file system a little later
POLL_S = 2.0  # result files are looked for this often; squeue is asked every 2 s at first, then less


# ----------------------------------------------------------------------------------------------
# the preset


try:  # the `submitit` extra: pip install "ics[submitit]"
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf as _QueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurmLauncher
except ImportError:  # pragma: no cover - exercised only without the extra
    _QueueConf = _SubmititSlurmLauncher = None


if _QueueConf is not None:

    @dataclass
    class SlurmPreset(_QueueConf):
        """hydra/launcher=slurm: submitit's SLURM settings with defaults for ics jobs. Every field is a
        hydra.launcher.<field> override (partition, account, qos, gpus_per_node, setup, ...)."""

        _target_: str = HYDRA_TARGET  # hydra_plugins.ics.slurm_launcher.SlurmLauncher (see register)
        name: str = "ics"  # the job name squeue shows
        cpus_per_task: Optional[int] = 1  # ics trains on one core well; raise it for CNNs or GPU jobs
        mem_gb: Optional[int] = 4
        timeout_min: int = 60  # the time limit of each job (a longer run is requeued and continues)
        signal_delay_s: int = 120  # SIGUSR2 this long before the limit (SLURM may send it up to 60 s earlier)
        max_num_timeout: int = 20  # how often one job may be requeued at its limit before it gives up
        array_parallelism: int = 64  # at most this many jobs of the sweep run at once
else:  # pragma: no cover

    @dataclass
    class SlurmPreset:
        _target_: str = HYDRA_TARGET  # builds MissingSubmitit, which says what to install


class MissingSubmitit:  # pragma: no cover - only without the extra
    def __init__(self, *args, **kwargs):
        _refuse("hydra/launcher=slurm needs the submitit launcher: pip install 'ics[submitit]'")


def register(cs) -> None:
    """Store the preset as hydra/launcher=slurm, make its launcher known to Hydra, and quiet
    submitit's sacct warnings (idempotent)."""
    node = SlurmPreset
    if _QueueConf is not None:  # any sbatch option: hydra.launcher.additional_parameters={mail-type:END}
        from omegaconf import OmegaConf

        node = OmegaConf.structured(SlurmPreset)
        OmegaConf.set_struct(node.additional_parameters, False)
    cs.store(group="hydra/launcher", name=PRESET, node=node, provider="ics")
    # Hydra's plugin scan finds hydra_plugins.ics in an installed wheel; an editable install hides it
    # from that scan, so the class is named to Hydra directly when the scan missed it (an internal:
    # see cli/hydra_compat.py)
    from ics_cli.hydra_compat import register_launcher

    if SlurmLauncherBase is not None:
        from hydra_plugins.ics.slurm_launcher import SlurmLauncher

        register_launcher(HYDRA_TARGET, SlurmLauncher)
    else:  # pragma: no cover - without the submitit extra: the preset says what to install
        register_launcher(HYDRA_TARGET, MissingSubmitit)
    quiet_sacct()


class _SacctOnce(logging.Filter):
    """submitit asks sacct for job states at every poll and logs each failure (through three
    handlers). Without an accounting database every poll fails: say why once, then drop them."""

    def __init__(self):
        super().__init__()
        self.said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if SACCT_WARNING not in str(record.msg):
            return True
        if not self.said:
            self.said = True
            log.warning(
                "sacct does not answer (no accounting database?): submitit's launcher then learns only from "
                "result files and misses jobs that end without one; hydra/launcher=slurm watches with "
                "squeue instead. Further sacct errors are not shown."
            )
        return False


def quiet_sacct() -> None:
    logger = logging.getLogger("submitit")
    if not any(isinstance(f, _SacctOnce) for f in logger.filters):
        logger.addFilter(_SacctOnce())


# ----------------------------------------------------------------------------------------------
# the launcher


def _refuse(msg: str, code: int = 2) -> None:
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(code)


def requeue_signal() -> int:
    """The signal submitit asks SLURM to send before a time limit ($SUBMITIT_PREEMPT_SIGNAL, default USR2)."""
    from submitit.core.job_environment import JobEnvironment

    return int(JobEnvironment._usr_sig())


if _SubmititSlurmLauncher is not None:

    class SlurmLauncherBase(_SubmititSlurmLauncher):
        # --- on the node: one job ---------------------------------------------------------------
        def __call__(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state):
            from ics.train.stopping import also_stop_on

            sig = requeue_signal()
            also_stop_on(sig)  # the warning stops the run like SIGTERM, after a checkpoint
            try:
                return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
            except SystemExit as e:  # the task ends an interrupted run with 128 + signal
                if e.code == 128 + sig:
                    _requeue(sig)
                raise

        # --- where ics runs: submit, watch, collect ---------------------------------------------
        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
            from hydra.core.singleton import Singleton
            from hydra.core.utils import filter_overrides

            assert self.config is not None
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            if "mode" in self.config.hydra.sweep:
                os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
            if shutil.which("sbatch") is None or shutil.which("squeue") is None:
                _forget(sweep_dir)
                _refuse(
                    "hydra/launcher=slurm submits with sbatch and watches with squeue, which are not on PATH "
                    "here: run ics on a login node of the cluster (or start a toy cluster: cluster/toy-slurm.sh)"
                )
            # `ics resume` launches only unfinished jobs, named by folder (+ics_resume=...), numbered anew
            resuming = any(str(o).startswith("+ics_resume=") for ov in job_overrides for o in ov)
            finished = {} if resuming else _finished_jobs(sweep_dir)
            todo: List[Tuple[int, List[str]]] = []
            results: Dict[int, Any] = {}
            for k, overrides in enumerate(job_overrides):
                num = initial_job_idx + k
                if num in finished:
                    log.info(
                        f"\t#{num} : {' '.join(filter_overrides(overrides))} (already {finished[num]}; not submitted)"
                    )
                    results[num] = _placeholder(overrides)
                else:
                    log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
                    todo.append((num, list(overrides)))
            if todo:
                state = Singleton.get_state()
                args = [(ov, "hydra.sweep.dir", num, f"job_id_for_{num}", state) for num, ov in todo]
                jobs = self._submit(args, sweep_dir)
                ids = ",".join(sorted({j.job_id.split("_")[0] for j in jobs}, key=int))
                log.info(
                    f"submitted {len(jobs)} job(s) to SLURM: {ids}. Progress: squeue -j {ids}; job logs: "
                    f"{_log_folder(jobs[0])}"
                )
                try:
                    ended = _wait({num: job for (num, _), job in zip(todo, jobs)})
                except KeyboardInterrupt:
                    print(
                        f"stopped watching; the jobs go on in SLURM (squeue -j {ids}; scancel {ids} stops "
                        f"them). Results: ics report {sweep_dir}; unfinished jobs: ics resume {sweep_dir}",
                        file=sys.stderr,
                    )
                    raise SystemExit(130) from None
                # the outcome of a job is its record (summary.json, read as data); submitit's result
                # pickle is never loaded: unpickling a file from a sweep folder runs what it holds
                for num, overrides in todo:
                    results[num] = _placeholder(overrides)
                unfinished = [f"#{num} ({ended[num]})" for num, _ in todo if ended.get(num)]
                if unfinished:
                    log.warning(
                        f"{count(len(unfinished), 'job')} ended without a result: {', '.join(unfinished)}; what "
                        f"{'it' if len(unfinished) == 1 else 'they'} kept is in the table below; finish "
                        f"{them(unfinished)} with: ics resume {sweep_dir}"
                    )
            return [results[initial_job_idx + k] for k in range(len(job_overrides))]

        def _submit(self, args: List[tuple], sweep_dir: Path) -> list:
            """One job array through submitit; SLURM's refusal (bad partition, account, memory ...) is
            one line and exit status 2, and leaves no sweep directory behind."""
            import submitit
            from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
            from omegaconf import OmegaConf

            params = dict(self.params)
            folder = params.pop("submitit_folder")
            max_num_timeout = params.pop("max_num_timeout")
            base = set(OmegaConf.structured(BaseQueueConf).keys())
            captured = io.StringIO()
            try:
                with contextlib.redirect_stderr(captured):  # submitit prints sbatch's whole error output
                    executor = submitit.AutoExecutor(
                        cluster="slurm", folder=folder, slurm_max_num_timeout=max_num_timeout
                    )
                    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
                    return executor.map_array(self, *zip(*args))
            except Exception as e:  # noqa: BLE001 - whatever sbatch or submitit refused: one line
                _forget(sweep_dir)
                _refuse(f"SLURM did not take the jobs: {_sbatch_reason(e, captured.getvalue())}")
            raise AssertionError("unreachable")
else:  # pragma: no cover
    SlurmLauncherBase = None


def _requeue(sig: int) -> None:
    """On the node, after the run wrote its checkpoint: let submitit's handler for `sig` (still
    installed: the run restored it) dump the resubmission and requeue the job; it then exits."""
    handler = signal.getsignal(sig)
    if not callable(handler):
        return  # not under submitit's job runner: the job simply ends interrupted
    print(
        f"{signal.Signals(sig).name} is SLURM's warning (time limit or pre-emption): asking SLURM to requeue this "
        "job; it continues from the checkpoint when it restarts (no ics resume needed)",
        file=sys.stderr,
    )
    try:
        handler(sig, None)
    except subprocess.SubprocessError as e:  # `scontrol requeue` refused (e.g. a pre-emption requeues it already)
        print(f"scontrol requeue failed ({e}); the job ends interrupted with its checkpoint", file=sys.stderr)


def _finished_jobs(sweep_dir: Path) -> Dict[int, str]:
    """{job number: status} of the sweep's finished jobs (a resumed sweep does not submit them again)."""
    from ics.record import read_jobs

    try:
        return {j.num: str(j.status) for j in read_jobs(sweep_dir) if j.num is not None and j.status.finished}
    except OSError:
        return {}


def _forget(sweep_dir: Path) -> None:
    """Remove a sweep directory that holds nothing but what this launch wrote (no job ever ran), and
    the parents made for it (multiruns/<date>/) once empty, up to the working directory."""
    try:
        entries = {p.name for p in sweep_dir.iterdir()}
    except OSError:
        return
    # what the CLI and this launch write before any job runs: the plan, the HParams experiment
    # (hparams.json and its events file, sweep.json, a study's copy), Hydra's multirun.yaml, submitit's pickles,
    # the sweep's lock
    from ics_cli.configdirs import RECORD, STAGE

    launch_files = {"multirun.yaml", ".submitit", names.PLANNED_JOBS, names.JOB_PLAN, names.SWEEP_LOCK}
    launch_files |= {HPARAMS_FILE, RECORD, STAGE}
    if any(e not in launch_files and not e.startswith("events.out.tfevents.") for e in entries):
        return
    shutil.rmtree(sweep_dir, ignore_errors=True)
    stop, parent = Path.cwd().resolve(), sweep_dir.resolve().parent
    while parent != stop and stop in parent.parents:
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break
        parent = parent.parent


def _sbatch_reason(e: BaseException, printed: str) -> str:
    text = "\n".join(x for x in (str(e), printed) if x)
    reasons: List[str] = []
    for line in text.splitlines():
        line = line.strip()
        for prefix in ("sbatch: error: ", "sbatch: "):
            if line.startswith(prefix):
                line = line[len(prefix) :]
                break
        else:
            if "error" not in line.lower():
                continue
        if line and line not in reasons:
            reasons.append(line)
    return "; ".join(reasons) if reasons else (str(e).strip().splitlines() or [type(e).__name__])[0]


def _log_folder(job) -> Path:
    """The folder that holds one folder per job with its <id>_0_log.out and <id>_0_log.err."""
    return job.paths.folder.parent


def _squeue(ids: Sequence[str]) -> Optional[Dict[str, Tuple[str, int]]]:
    """{job id (array elements as A_i): (state, restarts)} for the given job/array ids; None if squeue fails."""
    cmd = ["squeue", "-h", "-r", "-t", "all", "-O", "JobArrayID:48,State:24,RestartCnt:8", "-j", ",".join(ids)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if p.returncode != 0:
        return {} if "Invalid job id" in p.stderr else None  # every job already left the queue
    out: Dict[str, Tuple[str, int]] = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = (parts[1], int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0)
    return out


def _wait(jobs: Dict[int, Any]) -> Dict[int, str]:
    """Wait until every job has a result file or has left SLURM for good; {num: final state} for the
    jobs that ended without a result. A job that is requeued (restart count up) is said once."""
    pending = dict(jobs)
    ids = sorted({j.job_id.split("_")[0] for j in jobs.values()})
    restarts = {num: 0 for num in jobs}
    ended_since: Dict[int, float] = {}
    ended: Dict[int, str] = {}
    t0 = last_ask = time.time()
    interval, squeue_failed = POLL_S, False
    done_count = 0
    while pending:
        for num, job in list(pending.items()):
            if job.paths.result_pickle.exists():
                del pending[num]
                done_count += 1
                log.info(f"job #{num} ({job.job_id}) returned ({done_count}/{len(jobs)})")
        now = time.time()
        if pending and now - last_ask >= interval:
            last_ask, interval = now, min(30.0, max(POLL_S, (now - t0) / 10))
            seen = _squeue(ids)
            if seen is None:
                if not squeue_failed:
                    log.warning("squeue does not answer; still waiting for the jobs' result files")
                squeue_failed = True
                seen = {}
                known = False
            else:
                known = True
            for num, job in list(pending.items()):
                state, count = seen.get(job.job_id, ("GONE" if known else "UNKNOWN", restarts[num]))
                if count > restarts[num]:
                    restarts[num] = count
                    log.info(
                        f"job #{num} ({job.job_id}) was requeued (restart {count}): it continues from its checkpoint"
                    )
                if state in ENDED or state == "GONE":
                    first = ended_since.setdefault(num, now)
                    if now - first >= RESULT_GRACE_S and not job.paths.result_pickle.exists():
                        ended[num] = state if state != "GONE" else "left the queue"
                        del pending[num]
                        done_count += 1
                        log.warning(
                            f"job #{num} ({job.job_id}) ended {ended[num]} without a result "
                            f"({done_count}/{len(jobs)}); its log: {job.paths.stderr}"
                        )
                else:
                    ended_since.pop(num, None)
        if pending:
            time.sleep(POLL_S)
    return ended


def _placeholder(overrides: Sequence[str]):
    """A JobReturn for a job whose outcome lives in its record (Hydra's sweeper only needs it to exist)."""
    from hydra.core.utils import JobReturn, JobStatus

    return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=None)
