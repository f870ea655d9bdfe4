"""What a user sees: shell completion through the real entry point, the live sweep view under a
pseudo-terminal, plain progress lines in logs, start and end messages, TensorBoard served over
HTTP with the tags, layouts, histograms and HParams a sweep wrote, and the inputs still rejected."""
from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ICS = [sys.executable, "-m", "ics_cli.main"]
FAST = ["trainer.threads=1", "trainer.eval_every=20", "probe.every=20", "probe.size=100", "trainer.log_every=10"]


def ics(args, env, cwd, timeout=300, extra_env=None):
    env = {**env, "COLUMNS": "200", "NO_COLOR": "1", **(extra_env or {})}
    return subprocess.run([*ICS, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------------------------
# completion


def complete_bash(words: str, cword: int, env) -> list:
    p = subprocess.run([sys.executable, "-m", "ics_cli.main"], env={**env, "_ICS_COMPLETE": "complete_bash",
                                                                 "COMP_WORDS": words, "COMP_CWORD": str(cword)},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def complete_zsh(line: str, env) -> str:
    p = subprocess.run([sys.executable, "-m", "ics_cli.main"], env={**env, "_ICS_COMPLETE": "complete_zsh",
                                                                 "_TYPER_COMPLETE_ARGS": line},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_completion_of_commands_groups_options_and_keys(tiny_env):
    env = {**tiny_env, "PROG_NAME": "ics"}
    assert {"run", "resume", "report"} <= set(complete_bash("ics r", 1, env))
    assert "model=" in complete_bash("ics run mod", 2, env)
    # bash splits at '=': "model", "=", "c"
    assert complete_bash("ics run model = d", 4, env) == ["dln", "dln_bn", "dln_nobn"]
    assert {"cnn", "dln", "mlp", "mlp_sigmoid_bn"} <= set(complete_bash("ics run model = ", 3, env))
    assert "cnn_relu_nobn" in complete_bash("ics run model = cnn_r", 4, env)
    # keys follow the chosen option: the CNN has `pool`, the MLP has not
    assert "model.pool=" in complete_bash("ics run model = cnn model.po", 5, env)
    assert "model.pool=" not in complete_bash("ics run model.po", 2, env)
    assert {"trainer.steps=", "trainer.seed="} <= set(complete_bash("ics run trainer.s", 2, env))
    assert set(complete_bash("ics run model.activation = s", 4, env)) == {"sigmoid"}
    assert "fig1" in complete_bash("ics sweep fi", 2, env)
    assert "joblib" in complete_bash("ics run hydra/launcher = j", 4, env)
    # zsh keeps "model=cn" whole
    assert '"model=cnn"' in complete_zsh("ics run model=cn", env)
    assert "_files" not in complete_zsh("ics run model=cnn model.k", env) and "model.kernel_size=" in \
        complete_zsh("ics run model=cnn model.k", env)


def test_install_and_show_completion_exist(tiny_env):
    p = subprocess.run([*ICS, "--show-completion", "bash"], env={**tiny_env, "SHELL": "/bin/bash"},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "_ICS_COMPLETE=complete_bash" in p.stdout, p.stdout + p.stderr
    p = subprocess.run([*ICS, "--help"], env=tiny_env, capture_output=True, text=True, timeout=60)
    assert "--install-completion" in p.stdout


# ----------------------------------------------------------------------------------------------
# progress: live sweep lines under a pseudo-terminal, plain lines in logs


def run_in_pty(args, env, cwd, timeout=300, columns: int = 160) -> str:
    """Run `ics` with a pseudo-terminal as stdout (what a user's terminal is); return everything it drew."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*ICS, *args], env={**env, "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm"}, cwd=cwd,
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out, t0 = b"", time.time()
    while True:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
        assert time.time() - t0 < timeout, "timed out"
    proc.wait()
    os.close(master)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))


@pytest.mark.parametrize("columns", [160, 80])
def test_live_sweep_view_on_a_terminal(tiny_env, tmp_path, columns):
    sweep = tmp_path / "sweep"
    text = run_in_pty(["run", "-m", "model.norm=none,batch", "trainer.steps=400", *FAST,
                       f"hydra.sweep.dir={sweep}"], tiny_env, tmp_path, columns=columns)
    assert "sweep: 2 jobs" in text
    assert re.search(r"job [01]\s+norm=(none|batch)", text), text[-3000:]  # a live line per running job
    # the overall line whole, also at 80 columns
    assert re.search(r"\d/2 done · \d failed · \d running · \d queued · elapsed \d+:\d\d · ETA", text), text[-3000:]
    assert "Traceback" not in text and "train ━" not in text  # jobs draw no bars of their own
    assert f"ics report {sweep}" in text and "0_norm=none" in {p.name for p in sweep.iterdir()} | {"0_norm=none"}
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0_model.norm=none", "1_model.norm=batch"]


def test_plain_progress_lines_without_a_terminal(tiny_env, tmp_path):
    run = tmp_path / "run"
    p = ics(["run", "trainer.steps=600", "trainer.progress_every_sec=0.01", *FAST, f"hydra.run.dir={run}"],
            tiny_env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("step ")]
    assert len(lines) >= 3 and lines[-1].startswith("step 600/600")  # the last word is the final evaluation
    assert p.stdout.index("model   mlp") < p.stdout.index("loading data") < p.stdout.index("step ")
    assert f"ics report {run}" in p.stdout and f"ics tensorboard {run}" in p.stdout
    prog = json.loads((run / "progress.json").read_text())
    assert prog["step"] == 600 and prog["steps"] == 600


# ----------------------------------------------------------------------------------------------
# TensorBoard over HTTP


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _post(url: str, body: dict):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_tensorboard_serves_a_sweep(tiny_env, tmp_path):
    from ics_cli.tensorboard import command, free_port

    sweep = tmp_path / "sweep"
    p = ics(["run", "-m", "model.norm=none,batch", "optim.lr=0.1,0.5", "trainer.steps=60", *FAST,
             f"hydra.sweep.dir={sweep}"], tiny_env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    port = free_port()
    server = subprocess.Popen(command(sweep, port), env=tiny_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while True:
            try:
                runs = _get(f"{base}/data/runs")
                if len(runs) >= 4:
                    break
            except OSError:
                pass
            assert time.time() - t0 < 120 and server.poll() is None, "TensorBoard did not come up"
            time.sleep(1)
        jobs = [r for r in runs if re.match(r"\d_", r)]
        assert len(jobs) == 4 and all("optim.lr=" in r and "model.norm=" in r for r in jobs)  # readable names
        assert not any("trainer.steps" in r for r in jobs)  # constant overrides are not in the names
        tags = _get(f"{base}/data/plugin/scalars/tags")
        one = tags[jobs[0]]
        for tag in ("acc/test", "acc/train", "loss/test", "drift/h3.pre_act/w1_raw", "probe/h3.pre_act/p50"):
            assert tag in one, tag
        assert sorted(one)[0].startswith("acc/")  # the accuracy group comes first
        layout = _get(f"{base}/data/plugin/custom_scalars/layout")
        titles = [c["title"] for c in layout["category"]]
        assert titles[0].startswith("Fig. 1a") and any(t.startswith("Fig. 1 b/c") for t in titles)
        hist = _get(f"{base}/data/plugin/histograms/tags")
        assert any("hist/h3.pre_act" in t for t in hist[jobs[0]])
        images = _get(f"{base}/data/plugin/images/tags")
        assert "fig1/percentiles" in images[jobs[0]]
        exp = _post(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
        hp = {h["name"]: h for h in exp["hparamInfos"]}
        assert set(hp) == {"model.norm", "optim.lr"}  # what was swept, nothing constant
        assert sorted(hp["optim.lr"]["domainDiscrete"]) == [0.1, 0.5]
        sessions = _post(f"{base}/data/plugin/hparams/session_groups",
                         {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
                          "colParams": [], "startIndex": 0, "sliceSize": 100})
        assert sessions["totalSize"] == 4
    finally:
        server.terminate()
        server.wait(timeout=30)


# ----------------------------------------------------------------------------------------------
# inputs that are rejected with one line


def one_line(p) -> str:
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


@pytest.mark.parametrize("args, needle", [
    (["trainer.threads=999"], "trainer.threads=999 is invalid: this machine has"),
    (["optim.lr=inf"], "optim.lr=inf is invalid: must be a finite number > 0"),
    (["probe.size=5000"], "probe.size=5000 is invalid: must be <= the test split size (200"),
    (["model.widths=[]"], "model.widths=[] is invalid: a list of 1+ values"),
    (["-m", "trainer.batch_size=60,5000"], "trainer.batch_size=5000 is invalid: must be <= the training set size (600"),
    (["-sc", "install=bash"], "ics --install-completion"),
    (["hydra.run.dir=/proc/none/run"], "hydra.run.dir=/proc/none/run cannot be created"),
    (["data.val_size=600"], "data.val_size=600 is invalid: must be < the training split size (600"),
    (["grad_ics=maybe"], "grad_ics=maybe is not an option; allowed: off, on"),
    (["model.norm=none", "bn_stats=on"], "bn_stats.enabled=true is invalid with model.norm=none: it needs a normaliser with batch statistics"),
    (["model.norm=layer", "bn_noise=on"], "bn_noise.enabled=true is invalid with model.norm=layer: it needs a normaliser with batch"),
    (["model.norm=group"], "model.norm_groups=32 is invalid for a block of 100 units"),
    (["model.norm=lp", "model.norm_p=3"], "model.norm_p='3' is invalid: allowed: 1, 2, inf"),
])
def test_more_bad_inputs(tiny_env, tmp_path, args, needle):
    probe = [] if any(a.startswith("probe.size") for a in args) else ["probe.size=100"]  # the tiny test split: 200
    line = one_line(ics(["run", *args, *probe], tiny_env, tmp_path))
    assert needle in line, line
    assert not list(tmp_path.iterdir()), "something was written"


def test_corrupt_idx_files_are_named(tiny_env, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(Path(tiny_env["ICS_DATA_ROOT"]) / "MNIST", root / "MNIST")
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    data[3] = 0x09  # wrong magic number
    images.write_bytes(bytes(data))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    line = one_line(ics(["run"], {**tiny_env, "ICS_DATA_ROOT": str(root)}, cwd))
    assert str(images) in line and "magic number" in line
    data[3] = 0x03
    images.write_bytes(bytes(data[:-100]))  # truncated
    line = one_line(ics(["run"], {**tiny_env, "ICS_DATA_ROOT": str(root)}, cwd))
    assert str(images) in line and "truncated" in line
