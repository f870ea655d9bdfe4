"""Sizes and shapes on the command line (issue 22): a huge step count or sweep, a deletion, an
interpolation that does not resolve, a value too long for a folder name. Each is one line, exit 2,
nothing written; or, for the step count and long names, a run that works. In-process (Typer's
CliRunner): the refusals happen before Hydra runs anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from ics_cli.errors import UserError
from ics_cli.main import app
from typer.testing import CliRunner


@pytest.fixture
def cli(mnist_root, tmp_path, monkeypatch):
    """`ics ...` in-process in an empty working directory, on the tiny MNIST."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("ICS_DATA_ROOT", str(mnist_root))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str):
        return CliRunner().invoke(app, list(args))

    run.cwd = cwd
    return run


def one_line_refusal(result, cwd: Path, *needles: str) -> str:
    """Exit 2, one `error:` line on stderr naming what was wrong, no traceback, nothing written."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert list(cwd.iterdir()) == [], list(cwd.rglob("*"))
    return lines[0]


def test_a_sweep_of_a_hundred_million_seeds_is_refused_before_it_is_expanded(cli):
    r = cli("run", "-m", "trainer.seed=range(0,100000000)")
    line = one_line_refusal(
        r,
        cli.cwd,
        "trainer.seed=range(0,100000000)",
        "100,000,000 jobs",
        "at most 100,000",
        "trainer.seed=range(0,100000) then trainer.seed=range(100000,200000)",
    )
    assert "MemoryError" not in line


@pytest.mark.parametrize(
    "override, allowed",
    [
        ("~model", "model=<option>"),
        ("~probe", "probe=<option>"),  # ran the schema's defaults silently before
        ("~model.norm", "model.norm=<value>"),
    ],
)
def test_deleting_a_group_or_key_is_refused_in_one_line(cli, override, allowed):
    one_line_refusal(
        cli("run", override), cli.cwd, override, "deleting a config group or key is not supported", allowed
    )


@pytest.mark.parametrize(
    "override, shown",
    [
        ("name=${oc.env:ICS_TEST_UNSET}", "name=${oc.env:ICS_TEST_UNSET}"),
        ("trainer.steps=${oc.env:ICS_TEST_UNSET}", "trainer.steps=${oc.env:ICS_TEST_UNSET}"),
        ("model.widths=[${oc.env:ICS_TEST_UNSET}]", "model.widths=[${oc.env:ICS_TEST_UNSET}]"),
        ("trainer.eval_every=${model.no_such_key}", "trainer.eval_every=${model.no_such_key}"),
        ("name=${no_such_resolver:x}", "name=${no_such_resolver:x}"),
        ("hydra.run.dir=${oc.env:ICS_TEST_UNSET}", "hydra.run.dir=${oc.env:ICS_TEST_UNSET}"),
    ],
)
def test_an_unresolvable_interpolation_is_one_line_naming_key_and_value(cli, monkeypatch, override, shown):
    monkeypatch.delenv("ICS_TEST_UNSET", raising=False)
    one_line_refusal(cli("run", override), cli.cwd, shown, "cannot be resolved")


def test_an_interpolation_that_resolves_is_used(cli, monkeypatch):
    """Across sections too: the value is resolved in the whole config, not in its own section."""
    from ics_cli.preflight import check_jobs

    monkeypatch.setenv("ICS_TEST_STEPS", "30")
    check_jobs(
        [
            [
                "trainer.steps=${oc.env:ICS_TEST_STEPS}",
                "trainer.eval_every=${trainer.log_every}",
                "probe.every=1${data.split_seed}",
                "name=${now:%Y}",
            ]
        ],
        data=False,
    )
    with pytest.raises(UserError, match=r"^probe.size=0 is invalid"):  # resolved in data, then checked
        check_jobs([["probe.size=${data.val_size}"]], data=False)


def test_a_value_too_long_for_a_folder_name_still_sweeps(cli):
    """`ics run -m name=<300 chars>,b` made the sweep folder, then failed with "File name too long"."""
    long = "n" * 300
    r = cli(
        "run",
        "-m",
        f"name={long},b",
        "trainer.seed=0,1",
        "trainer.steps=2",
        "trainer.eval_every=2",
        "trainer.threads=1",
        "probe=off",
        "trainer.checkpoint_every=0",
        "hydra.sweep.dir=sweep",
    )
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert "named without name" in r.stderr
    names = sorted(p.name for p in (cli.cwd / "sweep").iterdir() if p.is_dir() and p.name[0].isdigit())
    assert names == ["0_trainer.seed=0", "1_trainer.seed=1", "2_trainer.seed=0", "3_trainer.seed=1"]
    assert all((cli.cwd / "sweep" / n / "summary.json").is_file() for n in names)


def test_job_names_fit_are_unique_and_keep_whole_pairs():
    from ics_cli.hydra_compat import override_dirname
    from ics_cli.sweeps import NAME_MAX, keys_left_out_of_names

    jobs = [
        [f"name={'x' * 200}{i}", f"data.root=/{'r' * 250}", f"optim.lr=0.{i}", f"model.widths=[{'9,' * 60}9]"]
        for i in range(12)
    ]
    out = keys_left_out_of_names(jobs, ["data.root"])
    assert out == ["name"]  # the longest goes first; then the rest fits
    names = [f"{n}_{override_dirname(job, ['data.root', *out])}" for n, job in enumerate(jobs)]
    assert len(set(names)) == len(names) and max(len(n.encode()) for n in names) <= NAME_MAX
    assert all(f"optim.lr=0.{n}" in name and "model.widths=[9," in name for n, name in enumerate(names))
    assert keys_left_out_of_names([["a=1"], ["a=2"]], []) == []  # short names are left as they were
    assert keys_left_out_of_names([["a=é" * 200]], []) == ["a"]  # bytes, not characters, count
