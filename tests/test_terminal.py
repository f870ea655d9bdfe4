"""What a user sees: shell completion through the real entry point, the live sweep view under a
pseudo-terminal, plain progress lines in logs, start and end messages, TensorBoard served over
HTTP with the tags, layouts, histograms and HParams a sweep wrote, and the inputs still rejected."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from clirun import ICS, ics, invoke

FAST = ["trainer.threads=1", "trainer.eval_every=20", "probe.every=20", "probe.size=100", "trainer.log_every=10"]


# ----------------------------------------------------------------------------------------------
# completion


def complete_bash(words: str, cword: int, env) -> list:
    p = subprocess.run(
        [sys.executable, "-m", "ics_cli.main"],
        env={**env, "_ICS_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def complete_zsh(line: str, env) -> str:
    p = subprocess.run(
        [sys.executable, "-m", "ics_cli.main"],
        env={**env, "_ICS_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": line},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def zsh_candidates(answer: str) -> dict:
    """{candidate: zsh adds a space after it} from what the zsh function evaluates (see
    ics_cli.completion.zsh_answer): groups of `_ics_c=(...)` handed to _describe, -S '' = no space."""
    import shlex

    out = {}
    for group, nospace in re.findall(r"_ics_c=\((.*?)\); _describe -t values value _ics_c( -S '')?;", answer):
        for word in shlex.split(group):
            out[re.split(r"(?<!\\):", word)[0].replace("\\:", ":")] = not nospace
    return out


@pytest.mark.slow
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
    assert zsh_candidates(complete_zsh("ics run model=cn", env))["model=cnn"] is True  # a value: then a space
    assert "_files" not in complete_zsh("ics run model=cnn model.k", env) and "model.kernel_size=" in complete_zsh(
        "ics run model=cnn model.k", env
    )


@pytest.mark.slow
def test_zsh_adds_no_space_after_a_key_and_one_after_a_value(tiny_env):
    """Typer's zsh answer (_arguments) adds a space after every candidate, so `model.nor<Tab>` gave
    `model.norm= `. A key= now goes to _describe with compadd's -S '' (no suffix); values keep the space."""
    env = {**tiny_env, "PROG_NAME": "ics"}
    keys = zsh_candidates(complete_zsh("ics run optim.l", env))
    assert keys == {"optim.lr=": False}
    both = zsh_candidates(complete_zsh("ics run model", env))
    assert both["model="] is False and both["model.norm="] is False
    assert zsh_candidates(complete_zsh("ics run model.norm=ba", env)) == {
        "model.norm=batch": True,
        "model.norm=batch_renorm": True,
    }


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (.ci/run installs it where it can)")
def test_the_zsh_answer_is_valid_zsh(tiny_env, tmp_path):
    """The answer evaluated by a real zsh, through the function `ics` installs: _describe (a stand-in that
    prints its arguments) gets every candidate and -S '' for the keys; quotes and colons survive."""
    env = {**tiny_env, "PROG_NAME": "ics", "_ICS_COMPLETE": "source_zsh"}
    source = subprocess.run(
        [sys.executable, "-m", "ics_cli.main"], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert "_ics_completion()" in source
    script = tmp_path / "t.zsh"
    script.write_text(
        "compdef() { :; }\n"
        '_describe() { print -r -- "describe $*"; print -rl -- "${(@P)4}"; }\n'
        + source
        + "\nwords=(ics run optim.l); CURRENT=3; _ics_completion\n"
        "words=(ics run model.norm=ba); CURRENT=3; _ics_completion\n"
    )
    shim = tmp_path / "bin" / "ics"  # the function runs `env ... ics`: this interpreter's ics
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {shlex.join([sys.executable, "-m", "ics_cli.main"])} "$@"\n')
    shim.chmod(0o755)
    p = subprocess.run(
        ["zsh", "-f", str(script)],
        env={**env, "_ICS_COMPLETE": "", "PATH": f"{shim.parent}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0 and not p.stderr, p.stderr
    assert p.stdout.splitlines() == [
        "describe -t values value _ics_c -S ",
        "optim.lr=",
        "describe -t values value _ics_c",
        "model.norm=batch",
        "model.norm=batch_renorm",
    ]


@pytest.mark.slow
def test_completion_after_commas_of_list_and_of_a_study_from_a_config_dir(tiny_env, tmp_path):
    env = {**tiny_env, "PROG_NAME": "ics"}
    assert complete_bash("ics run model.norm = none,b", 4, env) == [
        "none,batch",
        "none,batch_renorm",
    ]  # the value after the comma
    assert "none,none" not in complete_bash("ics run model.norm = none,", 4, env)  # a value given is not offered
    assert "model.norm=none,batch" in zsh_candidates(complete_zsh("ics run model.norm=none,b", env))
    assert {"model", "trainer", "probe", "grad_ics"} <= set(complete_bash("ics list ", 2, env))
    assert "name" not in complete_bash("ics list ", 2, env)  # a single key, not a section
    conf = tmp_path / "conf"
    (conf / "experiment").mkdir(parents=True)
    (conf / "experiment" / "deepstudy.yaml").write_text("trainer:\n  steps: 10\n")
    (conf / "model").mkdir()
    (conf / "model" / "mine.yaml").write_text("widths: [10]\n")
    assert "deepstudy" in complete_bash(f"ics sweep --config-dir {conf} de", 4, env)
    assert "deepstudy" in complete_bash(f"ics sweep --config-dir = {conf} de", 5, env)  # bash splits at "="
    assert "mine" in complete_bash(f"ics sweep --config-dir {conf} deepstudy model = m", 7, env)
    # bash also splits at ':': hydra.searchpath=[file://...] is put back together to find the folder
    assert "mine" in complete_bash(f"ics run hydra.searchpath = [file : //{conf}] model = mi", 9, env)
    assert complete_bash("ics run 'hydra.searchpath=[file://x y", 2, env) == []  # an open quote: no traceback


@pytest.mark.slow
def test_completion_imports_neither_torch_nor_hydra(tiny_env):
    """What keeps a Tab fast (README: the time measured): the completion path imports no torch, Hydra or
    OmegaConf, not even for the values of a registry-backed key (model.activation=)."""
    code = (
        "import sys\ntry:\n    from ics_cli.main import app  # an override is answered here already\n"
        "    app(prog_name='ics')\nexcept SystemExit:\n    pass\n"
        "print('LOADED', *[m for m in ('torch', 'hydra', 'omegaconf', 'numpy', 'ics.train') if m in sys.modules],"
        " file=sys.stderr)\n"
    )
    for words, cword in (
        ("ics run model.nor", 2),
        ("ics run model = ", 3),
        ("ics run model.norm = b", 4),
        ("ics run model.activation = s", 4),
        ("ics run trainer.s", 2),
        ("ics sweep fi", 2),
        ("ics list ", 2),
        ("ics r", 1),
    ):
        p = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                **tiny_env,
                "PROG_NAME": "ics",
                "_ICS_COMPLETE": "complete_bash",
                "COMP_WORDS": words,
                "COMP_CWORD": str(cword),
            },
        )
        assert p.stdout.strip(), (words, p.stderr)
        assert p.stderr.strip().splitlines()[-1] == "LOADED", (words, p.stderr)


def test_registry_names_read_from_the_sources_match_the_registries():
    """Completion reads registry names from the parts' sources (no torch import): they must agree."""
    from ics_cli.completion import registered_names

    import ics.registry as reg

    registries = [v for v in vars(reg).values() if isinstance(v, reg.Registry)]
    assert len(registries) >= 7
    scanned = {r.kind: set(registered_names(r)) for r in registries}
    reg.load_parts()
    assert scanned == {r.kind: set(r.keys()) for r in registries}


@pytest.mark.parametrize(
    "line",
    [
        "ics run model.no",
        "ics run model.norm = ",
        "ics sweep fi",
        "ics sweep fig1 optim.",
        "ics config optim=",
        "ics run ",
        "ics run -m",
        "ics r",
    ],
)
def test_a_tab_on_an_override_is_answered_as_typer_answers_it(line, monkeypatch):
    """The answer given before Typer is imported (fast_answer) is Typer's own, in bash and zsh; where
    it declines (commands, options), Typer answers."""
    from ics_cli.completion import fast_answer
    from ics_cli.main import app
    from typer.testing import CliRunner

    words = line.split()
    bash = {
        "_ICS_COMPLETE": "complete_bash",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - (0 if line.endswith(" ") else 1)),
    }
    zsh = {"_ICS_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": line}
    for env in (bash, zsh):
        for k in ("COMP_WORDS", "COMP_CWORD", "_TYPER_COMPLETE_ARGS"):
            monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        fast = fast_answer(env)
        typer_says = CliRunner().invoke(app, [], prog_name="ics", env=env).stdout
        if line.startswith(("ics run", "ics sweep", "ics config")) and "-m" not in words:
            assert fast is not None and fast.strip(), line
        if fast is not None:
            assert fast + "\n" == typer_says, (line, env["_ICS_COMPLETE"])


def test_the_completion_options_take_the_shell_given():
    from ics_cli.completion import TAKE_SHELL, shell_argument

    for given, env, want in (
        (["ics", "--show-completion", "zsh"], {}, "zsh"),
        (["ics", "--install-completion=fish"], {}, "--install-completion=fish"),
        (["ics", "--show-completion"], {"SHELL": "/usr/bin/zsh"}, None),
        (["ics", "run"], {}, "run"),
    ):
        argv, environ = list(given), dict(env)
        shell_argument(argv, environ)
        if want == "run":  # nothing to do without a completion option
            assert argv == given and TAKE_SHELL not in environ
            continue
        assert environ[TAKE_SHELL] == "1"
        assert argv[: len(given)] == given and (argv[-1] == want if want else argv[-1] in ("bash", "zsh", "fish"))


@pytest.mark.slow
def test_show_completion_zsh_is_zsh_with_no_shell_above():
    """Started from Python with no SHELL: nothing to guess from, and the shell named is the one used."""
    p = subprocess.run(
        [*ICS, "--show-completion", "zsh"],
        env={"PATH": os.environ["PATH"], "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )
    assert p.returncode == 0 and p.stdout.startswith("#compdef ics") and "complete_zsh" in p.stdout, p.stdout + p.stderr


@pytest.mark.slow
def test_install_and_show_completion_exist(tiny_env):
    p = subprocess.run(
        [*ICS, "--show-completion", "bash"],
        env={**tiny_env, "SHELL": "/bin/bash"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0 and "_ICS_COMPLETE=complete_bash" in p.stdout, p.stdout + p.stderr
    assert "compopt -o nospace" in p.stdout  # no space after a completed "model.norm="
    p = subprocess.run([*ICS, "--help"], env=tiny_env, capture_output=True, text=True, timeout=60)
    assert "--install-completion" in p.stdout


# ----------------------------------------------------------------------------------------------
# progress: live sweep lines under a pseudo-terminal, plain lines in logs


def run_in_pty(args, env, cwd, timeout=300, columns: int = 160) -> str:
    """Run `ics` with a pseudo-terminal as stdout (what a user's terminal is); return everything it drew."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*ICS, *args],
        env={**env, "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm"},
        cwd=cwd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
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


def test_a_live_job_line_keeps_number_values_step_loss_acc_and_drops_phase_and_speed_first():
    from ics_cli.sweeps import job_line

    args = (11, "norm=batch,seed=3", 1500, 25000, 0.16123, 0.95873, "finishing", 1234.0)
    wide = job_line(*args, width=160)
    assert wide == "job 11  norm=batch,seed=3  step 1,500/25,000  loss 0.1612  acc 0.9587  finishing  1,234 steps/s"
    at80 = job_line(*args, width=80)
    assert len(at80) <= 80 and "steps/s" not in at80
    assert at80.startswith("job 11  norm=batch,seed=3  step 1,500/25,000  loss 0.1612  acc 0.9587")
    at60 = job_line(*args, width=60)
    assert at60 == "job 11  norm=batch,seed=3  step 1,500/25,000  loss 0.1612"
    # long swept values are shortened, never the job number nor step/total
    long = job_line(
        11,
        "norm=batch,lr=0.001,seed=3,activation=sigmoid,init=xavier",
        1500,
        25000,
        0.16,
        0.95,
        "training",
        99.0,
        width=60,
    )
    assert len(long) <= 60 and long.startswith("job 11  norm=batch") and "…" in long and "step 1,500/25,000" in long
    for width in range(8, 200):
        assert len(job_line(*args, width=width)) <= width
    # a regression run's score is R² (progress.json says "metric": "r2"), not accuracy
    assert "  R² 0.9587  " in job_line(*args, width=160, metric="r2")


def test_a_regression_run_says_r2_in_its_progress_lines(tmp_path, capsys):
    from ics.train.progress import Progress

    with Progress(100, mode="lines", out_dir=tmp_path, every_sec=0, metric="r2") as p:
        p.update(50, 0.25, 0.875, force=True)
    assert "loss 0.2500  test R² 0.8750" in capsys.readouterr().out
    assert json.loads((tmp_path / "progress.json").read_text())["metric"] == "r2"


def test_the_sweep_eta_uses_each_jobs_own_speed_across_slots(tmp_path):
    """Fast no-BN jobs first, slow BN jobs last (the order that fooled a global average): the ETA adds
    each queued job at the speed of started jobs like it, on the slot that frees first."""
    from ics_cli.sweeps import SweepState, bar_line, eta_seconds

    from ics.record import RunLock, Status, Summary, names, write_summary

    assert eta_seconds([], [], 2) is None  # nothing measured yet
    assert eta_seconds([6.0, None], [10.0], 2) == 16.0  # an unknown stands at the mean of the known
    plan = [["norm=none", "seed=0"], ["norm=batch", "seed=0"], ["norm=none", "seed=1"], ["norm=batch", "seed=1"]]
    (tmp_path / names.PLANNED_JOBS).write_text(json.dumps(plan))
    write_summary(
        tmp_path / "0_norm=none,seed=0",
        Summary(status=Status.COMPLETED, steps=600, steps_per_sec=100.0, final_test_acc=0.9, overrides=plan[0]),
    )
    running = tmp_path / "1_norm=batch,seed=0"
    write_summary(running, Summary(status=Status.RUNNING, overrides=plan[1]))
    (running / "progress.json").write_text(json.dumps({"step": 300, "steps": 600, "steps_per_sec": 50.0}))
    with RunLock(running):
        state = SweepState(tmp_path, 4, {"norm", "seed"})
        # slots: 6 s (job 1's 300 steps at 50/s) and free; job 2 (no BN, 6 s) takes the free one, then
        # job 3 (BN, 12 s) the first to free: 6 + 12
        assert state.eta(2, plan) == 18.0
        assert state.eta(1, plan) == 6 + 6 + 12
        # a third value no started job has (rms): as long as a whole started job takes on average
        # ((6 + 12) / 2 = 9 s), not the mean of what is left (which shrinks as running jobs near their end)
        odd = [*plan[:2], ["norm=rms", "seed=0"], ["norm=rms", "seed=1"]]
        assert state.eta(2, odd) == 6 + 9
        assert state.eta(1, odd) == 6 + 9 + 9
    assert bar_line(1, 4, 20) == "━━━╺───────────  25%" and len(bar_line(3, 4, 33)) == 33


def test_inside_the_live_view_library_log_lines_go_to_the_runs_log_file(tmp_path):
    import io
    import logging

    from ics_cli.sweeps import logs_to_file_only

    root = logging.getLogger()
    saved = root.handlers[:]
    screen = io.StringIO()
    try:
        root.handlers[:] = [logging.StreamHandler(screen)]  # what Hydra's job logging puts on the console
        logs_to_file_only(tmp_path)
        assert not (tmp_path / "ics.log").exists()  # nothing said yet, no file
        logging.getLogger("matplotlib.font_manager").warning("Matplotlib is building the font cache")
        for h in root.handlers:
            h.flush()
        assert screen.getvalue() == ""
        assert "Matplotlib is building the font cache" in (tmp_path / "ics.log").read_text()
    finally:
        for h in root.handlers:
            h.close()
        root.handlers[:] = saved


def test_a_finished_jobs_score_stays_on_the_terminal(tmp_path):
    import io

    from ics_cli.sweeps import LiveSweep
    from rich.console import Console

    from ics.record import Status, Summary, write_summary

    out = io.StringIO()
    live = LiveSweep(tmp_path, 2, 1, console=Console(file=out, force_terminal=True, width=80), swept=["x"])
    write_summary(
        tmp_path / "0_x=1", Summary(status=Status.COMPLETED, steps=600, final_test_acc=0.9612, overrides=["x=1"])
    )
    live.log_once()
    live.log_once()  # said once
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    assert len(lines) == 1 and "job 0  x=1" in lines[0] and "final test acc 0.9612" in lines[0], lines


def test_the_closing_table_fits_or_turns_vertical_and_counts_jobs_never_started(tmp_path):
    from ics_cli.console import print_status_table
    from rich.console import Console

    from ics.record import JobRecord, Status, Summary

    jobs = [
        JobRecord(
            tmp_path / f"{i}",
            i,
            Status.COMPLETED,
            Summary(status=Status.COMPLETED, final_test_acc=0.9512, best_test_acc=0.96, steps_per_sec=512.0),
            [f"model.norm={n}", f"optim.lr={lr}", f"trainer.seed={s}", "trainer.steps=3000"],
        )
        for i, (n, lr, s) in enumerate((n, lr, s) for n in ("none", "batch") for lr in (0.1, 1) for s in (0, 1, 2))
    ]
    planned = [j.overrides for j in jobs] + [
        ["model.norm=batch", "optim.lr=10", "trainer.seed=0", "trainer.steps=3000"]
    ]
    for width, vertical in ((160, False), (80, False), (40, True)):
        console = Console(width=width, record=True, color_system=None)
        print_status_table(jobs[:11], tmp_path, console, planned=planned[:12])
        text = console.export_text()
        assert all(len(line) <= width for line in text.splitlines()), text
        assert "sweep: 12 jobs" in text and "not started" in text  # job 11 never started: counted
        if vertical:
            assert "job 11  model.norm=batch" in text and "┃" not in text
        else:
            rows = [ln for ln in text.splitlines() if ln.startswith("│")]
            assert all(ln.endswith("│") and ln.count("│") == 7 for ln in rows), text  # every column, both borders
            assert re.search(r"┃ final", text) and re.search(r"┃ steps/s", text), text  # headers wrap, not cut


def test_report_tables_keep_every_column_border_and_word_at_80_columns():
    """`ics report` at 80 columns: no line wider than the terminal, every cell's words whole (wrapped at
    spaces, never cut mid-word), every column with both borders, or one block per row when the
    longest words cannot fit side by side."""
    from rich.console import Console

    from ics.analysis.tables import TextTable, print_tables

    groups = TextTable(
        "Seed groups: mean ± 95% CI over seeds (Student t)",
        ["group", "n", "final test acc", "best test acc", "steps→0.9", "steps→0.95"],
        [
            ["model.norm=none", "5", "0.5262 ± 0.2817", "0.5569 ± 0.3110", "- (0/5 reached)", "1,250 ± 90"],
            ["model.norm=batch", "5", "0.8560 ± 0.0575", "0.8641 ± 0.0288", "420 ± 31", "- (0/5 reached)"],
        ],
        "no ± where n < 3 (too few seeds for an interval); steps→t: the first evaluation at or above t",
    )
    jobs = TextTable(
        "sweep: 2 jobs",
        [
            "job",
            "overrides",
            "status",
            "final acc",
            "best acc",
            "steps→0.9",
            "steps→0.95",
            "steps→0.97",
            "max W1 raw",
            "max W1 shape",
        ],
        [
            ["0", "model.norm=none trainer.seed=0", "completed", "0.4129", "0.4129", "-", "-", "-", "2.330", "0.081"],
            [
                "1",
                "model.norm=batch trainer.seed=0",
                "diverged @ 1200",
                "-",
                "0.9012",
                "700",
                "-",
                "-",
                "0.321",
                "0.094",
            ],
        ],
    )
    for width in (80, 160):
        for t, vertical in ((groups, width == 80), (jobs, width == 80)):  # at 80 the numbers stay whole, a block a row
            console = Console(width=width, record=True, color_system=None)
            print_tables([t], console)
            text = console.export_text()
            lines = text.splitlines()
            assert all(len(line) <= width for line in lines), text
            words = text.replace("│", " ").replace("┃", " ").split()
            for cell in [w for row in t.cells for c in row for w in c.split()] + t.title.split()[:3]:
                assert cell in words, (cell, text)  # whole, not cut at the edge or mid-word
            for number in re.findall(r"[\d,.]+ ± [\d,.]+", " ".join(c for row in t.cells for c in row)):
                assert any(number in line for line in lines), (number, text)  # "0.5262 ± 0.2817" on one line
            if vertical and t is groups:
                assert "┃" not in text and "  n: 5 · final test acc: 0.5262 ± 0.2817 · best test acc" in text
            elif vertical:
                assert "┃" not in text and "1  model.norm=batch trainer.seed=0" in text
                assert "  status: diverged @ 1200 · final acc: - · best acc: 0.9012" in text.replace("\n    ", " ")
            else:
                rows = [ln for ln in lines if ln.startswith("│")]
                assert rows and all(ln.endswith("│") and ln.count("│") == len(t.headers) + 1 for ln in rows), text


def test_text_from_run_folders_is_never_rich_markup(tmp_path):
    """A config value like data.image_folder=/x/[/b] ends up in a cell: printed as written, no MarkupError
    (the report and the sweep's closing table, wide and narrow)."""
    from ics_cli.console import print_status_table
    from rich.console import Console

    from ics.analysis.tables import TextTable, print_tables
    from ics.record import JobRecord, Status, Summary

    t = TextTable(
        "runs of [bold]x",
        ["job", "overrides", "final acc"],
        [["0", "data.image_folder=/x/[/b]", "0.9"]],
        "caption [/i]",
    )
    jobs = [
        JobRecord(
            tmp_path / "0",
            0,
            Status.COMPLETED,
            Summary(status=Status.COMPLETED, final_test_acc=0.5),
            ["data.image_folder=/x/[/b]", "model.norm=[red]none"],
        )
    ]
    for width in (200, 80, 20):
        console = Console(width=width, record=True, color_system=None)
        print_tables([t], console)
        print_status_table(jobs, tmp_path, console)
        text = console.export_text().replace("│", " ").replace("\n", " ")
        for word in ("[bold]x", "/x/[/b]", "[/i]", "model.norm=[red]none"):
            assert word in text.replace(" ", "") or word in text, (word, text)


def test_a_regression_sweep_closing_table_says_r2(tmp_path):
    from ics_cli.console import COLUMNS, columns

    from ics.record import JobRecord, Status, Summary

    r2 = [JobRecord(tmp_path / "0", 0, Status.COMPLETED, Summary(status=Status.COMPLETED, metric="r2"), ["x=1"])]
    acc = [JobRecord(tmp_path / "1", 1, Status.COMPLETED, Summary(status=Status.COMPLETED), ["x=2"])]
    assert columns(r2)[3:5] == ("final test R²", "best test R²") and columns(r2 + acc) == COLUMNS == columns(acc)


@pytest.mark.slow
@pytest.mark.parametrize("columns", [160, 80])
def test_live_sweep_view_on_a_terminal(tiny_env, tmp_path, columns):
    sweep = tmp_path / "sweep"
    text = run_in_pty(
        ["run", "-m", "model.norm=none,batch", "trainer.steps=400", *FAST, f"hydra.sweep.dir={sweep}"],
        tiny_env,
        tmp_path,
        columns=columns,
    )
    assert "sweep: 2 jobs" in text
    assert re.search(r"job [01]\s+norm=(none|batch)", text), text[-3000:]  # a live line per running job
    # the overall line whole, also at 80 columns
    assert re.search(r"\d/2 done · \d failed · \d running · \d queued · elapsed \d+:\d\d · ETA", text), text[-3000:]
    assert re.search(r"━* *\d+% [\d,]+/[\d,]+ steps", text), text[-3000:]  # the overall bar, counted in steps
    assert "Traceback" not in text and "train ━" not in text  # jobs draw no bars of their own
    assert f"ics report {sweep}" in text and "0_norm=none" in {p.name for p in sweep.iterdir()} | {"0_norm=none"}
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0_model.norm=none", "1_model.norm=batch"]


@pytest.mark.slow
def test_plain_progress_lines_without_a_terminal(tiny_env, tmp_path):
    run = tmp_path / "run"
    p = ics(
        ["run", "trainer.steps=600", "trainer.progress_every_sec=0.01", *FAST, f"hydra.run.dir={run}"],
        tiny_env,
        tmp_path,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d step ", ln)]  # timestamped
    assert len(lines) >= 3 and lines[-1][9:].startswith("step 600/600")  # the last word is the final evaluation
    steps = [ln.split()[2] for ln in lines]
    assert len(steps) == len(set(steps))  # no step's line twice (the last one included)
    assert re.fullmatch(r"\d\d:\d\d:\d\d ics: checking the config \.\.\.", p.stdout.splitlines()[0])  # first, stamped
    assert p.stdout.index("model   mlp") < p.stdout.index("loading data") < p.stdout.index(" step ")
    assert f"ics report {run}" in p.stdout and f"ics tensorboard {run}" in p.stdout
    prog = json.loads((run / "progress.json").read_text())
    assert prog["step"] == 600 and prog["steps"] == 600


@pytest.mark.slow
def test_a_sweep_without_a_terminal_logs_timestamped_progress_and_n_of_n_done(tiny_env, tmp_path):
    sweep = tmp_path / "sweep"
    p = ics(
        [
            "run",
            "-m",
            "model.norm=none,batch",
            "trainer.steps=600",
            "trainer.progress_every_sec=0.5",
            *FAST,
            f"hydra.sweep.dir={sweep}",
        ],
        tiny_env,
        tmp_path,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout.splitlines()
    log = out[: next(i for i, ln in enumerate(out) if "sweep: 2 jobs" in ln and i > 1)]  # up to the closing table
    assert log and all(re.match(r"\d\d:\d\d:\d\d ", ln) for ln in log), log  # a timestamp on every line
    assert log[0][9:] == "ics: checking the config of every job ..." and log[1][9:].startswith("sweep: 2 jobs into ")
    # (which progress lines appear depends on timing: see the next test for them)
    assert [re.search(r"(\d/2) done  job (\d)", ln).groups() for ln in log if " done  job " in ln] == [
        ("1/2", "0"),
        ("2/2", "1"),
    ]
    assert re.search(r"job 1  norm=batch  completed, final test acc [01]\.\d{4}", "\n".join(log))


def test_the_sweep_log_says_started_progress_once_per_step_and_done(tmp_path, capsys):
    """LiveSweep's log without a terminal, step by step on a sweep folder written by hand (no timing)."""
    from ics_cli.sweeps import LiveSweep
    from rich.console import Console

    from ics.record import RunLock, Status, Summary, names, write_summary

    (tmp_path / names.PLANNED_JOBS).write_text(json.dumps([["x=1"], ["x=2"]]))
    job = tmp_path / "0_x=1"
    write_summary(job, Summary(status=Status.RUNNING, overrides=["x=1"]))
    progress = lambda step: (job / "progress.json").write_text(  # noqa: E731
        json.dumps({"step": step, "steps": 600, "loss": 0.5, "acc": 0.8, "steps_per_sec": 100.0})
    )
    progress(100)
    log = LiveSweep(tmp_path, 2, 1, console=Console(file=open(os.devnull, "w")), swept=["x"], every_sec=0)
    lines = []

    def look():
        log.log_once()
        lines.append([ln[9:] for ln in capsys.readouterr().out.splitlines()])

    with RunLock(job):  # held: the job reads as running
        look()
        progress(200)
        look()
        look()  # nothing moved: nothing said
    write_summary(job, Summary(status=Status.COMPLETED, steps=600, final_test_acc=0.9, overrides=["x=1"]))
    look()
    look()
    assert lines == [
        ["job 0  x=1  started"],
        ["job 0  x=1  step 200/600  loss 0.5000  acc 0.8000  100 steps/s"],
        [],
        ["1/2 done  job 0  x=1  completed, final test acc 0.9000"],
        [],
    ]


# ----------------------------------------------------------------------------------------------
# TensorBoard over HTTP


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _post(url: str, body: dict):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_tensorboard_serves_a_sweep(tiny_env, tmp_path):
    from ics_cli.tensorboard import command, free_port

    sweep = tmp_path / "sweep"
    p = ics(
        [
            "run",
            "-m",
            "model.norm=none,batch",
            "optim.lr=0.1,0.5",
            "trainer.steps=60",
            *FAST,
            f"hydra.sweep.dir={sweep}",
        ],
        tiny_env,
        tmp_path,
    )
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
        sessions = _post(
            f"{base}/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 100,
            },
        )
        assert sessions["totalSize"] == 4
    finally:
        server.terminate()
        server.wait(timeout=30)


def _children(pid: int) -> list:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_to_ics_tensorboard_stops_tensorboard_too(tmp_path, signum):
    """No orphan: synchronised on the URL line (printed once TensorBoard listens), then on ics's exit."""
    import signal
    import urllib.request

    (tmp_path / "events.out.tfevents.1.host.0.0").write_bytes(b"")
    proc = subprocess.Popen(
        [*ICS, "tensorboard", str(tmp_path), "--no-open"],
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        line = proc.stdout.readline()  # blocks until TensorBoard listens (or ics ends)
        m = re.search(r"http://127\.0\.0\.1:(\d+)/\?smoothing=0", line)
        assert m, line + proc.stderr.read()
        children = _children(proc.pid)
        assert len(children) == 1, children
        # it serves: a whole request and its answer (a connection left half-open would have TensorBoard
        # print its own "HTTP serving error" when it is stopped)
        with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/data/logdir", timeout=30) as r:
            assert r.status == 200 and r.read()
        proc.send_signal(getattr(signal, signum))
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 128 + getattr(signal, signum), proc.stderr.read()
    assert not Path(f"/proc/{children[0]}").exists()  # stopped and reaped by ics, not left running
    assert not re.search(r"^Traceback", proc.stderr.read(), re.M)  # none of ics's own (TensorBoard's are prefixed)


def test_a_host_other_machines_reach_is_warned_about_and_an_empty_one_refused(tmp_path):
    from ics_cli.tensorboard import exposure

    assert exposure("127.0.0.1") is None and exposure("::1") is None and exposure("localhost") is None
    assert "every interface" in exposure("0.0.0.0") and "every interface" in exposure("::")
    assert "reachable from other machines" in exposure("192.168.1.5")
    assert "no password" in exposure("myhost.example")
    (tmp_path / "events.out.tfevents.1.host.0.0").write_bytes(b"")
    p = invoke(["tensorboard", str(tmp_path), "--host", "", "--no-open"], tmp_path)  # refused before it starts one
    assert p.returncode != 0 and one_line(p).startswith("error: --host is empty; allowed: ")


@pytest.mark.slow
def test_tensorboard_errors_are_shown_and_the_host_is_checked(tmp_path):
    (tmp_path / "events.out.tfevents.1.host.0.0").write_bytes(b"")
    p = ics(["tensorboard", str(tmp_path), "--host", "192.0.2.1", "--no-open"], dict(os.environ), tmp_path, timeout=60)
    assert one_line(p).startswith("error: --host 192.0.2.1 cannot be listened on here")
    # an error of TensorBoard's own (a bad flag value it rejects after starting) reaches the user
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "__init__.py").write_text("")
    (tmp_path / "tensorboard" / "main.py").write_text(
        "import sys\nprint('boom: no such plugin', file=sys.stderr)\nsys.exit(3)\n"
    )
    p = ics(["tensorboard", str(tmp_path), "--no-open"], env, tmp_path, timeout=60)
    assert p.returncode == 3 and "tensorboard: boom: no such plugin" in p.stderr, p.stderr
    assert "http://" not in p.stdout  # no URL for a TensorBoard that never listened


# ----------------------------------------------------------------------------------------------
# inputs that are rejected with one line


def one_line(p) -> str:
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


FAST_BAD = ("probe.size=", "data.val_size=", "hydra.run.dir=")  # see test_more_bad_inputs


def _tier_bad(cases):
    for args, needle in cases:
        fast = any(a.startswith(FAST_BAD) for a in args)
        yield pytest.param(args, needle, marks=[] if fast else [pytest.mark.slow])


@pytest.mark.parametrize(
    "args, needle",
    _tier_bad(
        [
            (["trainer.threads=999"], "trainer.threads=999 is invalid: this machine has"),
            (["optim.lr=inf"], "optim.lr=inf is invalid: must be a finite number > 0"),
            (["probe.size=5000"], "probe.size=5000 is invalid: must be <= the test split size (200"),
            (["model.widths=[]"], "model.widths=[] is invalid: a list of 1+ values"),
            (
                ["-m", "trainer.batch_size=60,5000"],
                "trainer.batch_size=5000 is invalid: must be <= the training set size (600",
            ),
            (["-sc", "install=bash"], "ics --install-completion"),
            (["hydra.run.dir=/proc/none/run"], "hydra.run.dir=/proc/none/run cannot be created"),
            (["data.val_size=600"], "data.val_size=600 is invalid: must be < the training split size (600"),
            (["grad_ics=maybe"], "grad_ics=maybe is not an option; allowed: off, on"),
            (
                ["model.norm=none", "bn_stats=on"],
                "bn_stats.enabled=true is invalid with model.norm=none: it needs a normaliser with batch statistics",
            ),
            (
                ["model.norm=layer", "bn_noise=on"],
                "bn_noise.enabled=true is invalid with model.norm=layer: it needs a normaliser with batch",
            ),
            (["model.norm=group"], "model.norm_groups=32 is invalid for a block of 100 units"),
            (["model.norm=lp", "model.norm_p=3"], "model.norm_p='3' is invalid: allowed: 1, 2, inf"),
        ]
    ),
)
def test_more_bad_inputs(tiny_env, tmp_path, args, needle):
    """In-process; each value's rule is tested directly in test_config.py, so the fast tier keeps the
    cases known only once the data is read (probe.size, data.val_size) and the run-dir check."""
    probe = [] if any(a.startswith("probe.size") for a in args) else ["probe.size=100"]  # the tiny test split: 200
    line = one_line(invoke(["run", *args, *probe], tmp_path))
    assert needle in line, line
    assert not list(tmp_path.iterdir()), "something was written"


def test_corrupt_idx_files_are_named(tiny_env, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(Path(tiny_env["ICS_DATA_ROOT"]) / "MNIST", root / "MNIST")
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    data[3] = 0x09  # wrong magic number
    images.write_bytes(bytes(data))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("ICS_DATA_ROOT", str(root))
    line = one_line(invoke(["run"], cwd))
    assert str(images) in line and "magic number" in line
    data[3] = 0x03
    images.write_bytes(bytes(data[:-100]))  # truncated
    line = one_line(invoke(["run"], cwd))
    assert str(images) in line and "truncated" in line


def test_the_reports_prose_wraps_at_spaces_on_an_80_column_terminal(monkeypatch):
    """The headline, notes and `wrote:` line on a terminal: wrapped between words, never inside a
    number, a path or a word (a terminal's own hard wrap cuts anywhere)."""
    import io

    from ics.analysis.report import prose_printer

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setenv("COLUMNS", "80")
    text = (
        "note: 6 jobs repeat a config and seed already run (6 runs run more than once): replicas, not more "
        "seeds; BN vs no BN: final test acc +0.0023 [95% CI -0.0031, +0.0078], Welch p = 0.288 /tmp/pool/R5/accuracy.png"
    )
    prose_printer()(text)
    lines = screen.getvalue().splitlines()
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines), lines
    assert " ".join(line.strip() for line in lines) == text  # each break is at a space


def test_progress_steps_per_sec_is_the_segments_average_not_the_last_window(tmp_path, capsys):
    """A resumed run (from step 200) at 100 steps/s, then a window of 100 steps that took 10 s (an
    evaluation in it): the lines and progress.json say the average since the resume, 200 steps in
    11 s = 18 steps/s, not the last window's 10. A clock of the test's own: no waiting."""
    from ics.train.progress import Progress

    now = [100.0]
    with Progress(1000, start=200, mode="lines", out_dir=tmp_path, every_sec=0, t0=100.0, clock=lambda: now[0]) as p:
        now[0] = 101.0
        p.update(300, 0.5, 0.9, force=True)
        now[0] = 111.0
        p.update(400, 0.4, 0.9, force=True)
        said = json.loads((tmp_path / "progress.json").read_text())["steps_per_sec"]
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "step " in ln]
    assert lines[0].endswith("  100 steps/s avg") and lines[1].endswith("  18 steps/s avg"), lines
    assert said == 200 / 11


def test_a_steps_to_target_interval_is_never_broken_across_lines():
    """ "(178, 316] all 5" is one value: at any width the table keeps it on one line (its column as
    wide as it, or one block per row), never "(1000," on one line and "1778] all 5" on the next."""
    from rich.console import Console

    from ics.analysis.tables import TextTable, print_tables

    cells = [
        ["model.norm=batch optim.lr=0.1", "5", "0.9712 ± 0.0021", "(178, 316] all 5", "(316, 562] all 5"],
        ["model.norm=none optim.lr=0.1", "5", "0.9612 ± 0.0031", "(316, 562] all 5", "(1000, 1778] all 5"],
        ["model.norm=layer optim.lr=0.1", "2", "0.9512", "(56, 100]", "- (0/2 reached)"],
    ]
    t = TextTable("Seed groups", ["group", "n", "final test acc", "steps→0.9", "steps→0.95"], cells)
    for width in range(60, 121, 2):
        console = Console(width=width, record=True, color_system=None)
        print_tables([t], console)
        lines = console.export_text().splitlines()
        assert all(len(line) <= width for line in lines)
        for cell in {c for row in cells for c in row[3:] if c.startswith("(")}:
            assert any(cell in line for line in lines), (width, cell, "\n".join(lines))
