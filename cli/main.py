"""`ics`: Typer owns the commands; Hydra owns everything after the command name."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ics_cli.preflight import UserError, split_sweeps, compose, group_options, preflight

app = typer.Typer(
    name="ics", no_args_is_help=True, rich_markup_mode="rich", add_completion=False,
    help="Train MLPs and CNNs with and without BatchNorm and measure internal covariate shift: how "
         "each layer's input distribution drifts during training.\n\n"
         "Example: [bold]ics run model=cnn data=cifar10 model.norm=none optim.lr=0.05[/bold]",
)
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from ics import __version__

        typer.echo(f"ics {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")) -> None:
    pass


def _launch(args: List[str]) -> None:
    """Validate, then hand the arguments to Hydra's real runtime (multirun, launchers, job dirs)."""
    try:
        argv = preflight(args)
    except UserError as e:
        _fail(str(e))
    from hydra.core.global_hydra import GlobalHydra

    from ics_cli.hydra_entry import hydra_main

    GlobalHydra.instance().clear()  # preflight's Compose API session; hydra.main starts its own
    sys.argv = ["ics", *argv]
    hydra_main()
    from ics.app import FAILED_JOBS

    if FAILED_JOBS:  # diverged or not_learning jobs are results; a failed job is an error
        _fail(f"{len(FAILED_JOBS)} job(s) failed: {', '.join(FAILED_JOBS)} (see their summary.json)", code=1)


@app.command(context_settings=PASS_THROUGH)
def run(overrides: Optional[List[str]] = typer.Argument(
        None, help="Hydra overrides and flags: key=value, group=option, -m/--multirun, --cfg job, ...")) -> None:
    """Train one run (or a Hydra multirun with -m) and log it to TensorBoard.

    Examples:

      [bold]ics run[/bold]  (BN paper Fig. 1: MNIST, 3x100 sigmoid MLP with BN, batch 60, 50k steps)

      [bold]ics run model.norm=none trainer.steps=5000[/bold]

      [bold]ics run model=cnn data=cifar10 data.image_folder=/data/cifar10-jpeg model.norm=none optim.lr=0.05[/bold]

      [bold]ics run -m model.norm=none,batch optim.lr=0.01,0.1,1[/bold]
    """
    _launch(list(overrides or []))


@app.command(context_settings=PASS_THROUGH)
def sweep(experiment: str = typer.Argument(..., help="A study in experiments/ (see `ics list`)."),
          overrides: Optional[List[str]] = typer.Argument(None, help="Extra Hydra overrides.")) -> None:
    """Run a named study from experiments/ as a Hydra multirun.

    Example: [bold]ics sweep fig1 trainer.steps=5000[/bold]
    """
    from ics.config import experiment_files

    if experiment not in experiment_files():
        _fail(f"unknown experiment {experiment!r}; allowed: {', '.join(experiment_files())}")
    _launch(["--multirun", f"experiment={experiment}", *(overrides or [])])


@app.command(name="config", context_settings=PASS_THROUGH)
def show_config(overrides: Optional[List[str]] = typer.Argument(None, help="Hydra overrides.")) -> None:
    """Print the composed config (no training).

    Example: [bold]ics config model=cnn optim=adam[/bold]
    """
    from omegaconf import OmegaConf

    args = list(overrides or [])
    try:
        flags = [a for a in args if a.startswith("-")]
        if flags:
            raise UserError(f"ics config takes overrides only (key=value), not {' '.join(flags)}; "
                            "for Hydra's flags use `ics run`, e.g. `ics run --cfg job`")
        preflight(args, data=False)
        if split_sweeps(args)[1]:
            raise UserError("ics config prints one config, not a sweep (a,b); run sweeps with `ics run -m`")
        cfg = compose(args)
    except UserError as e:
        _fail(str(e))
    typer.echo(OmegaConf.to_yaml(cfg), nl=False)


@app.command(name="list")
def list_options() -> None:
    """List every config group with its options, and every experiment.

    Example: [bold]ics list[/bold]
    """
    from rich.console import Console
    from rich.table import Table

    from ics.config import experiment_files

    table = Table(title="config groups (choose with group=option)")
    table.add_column("group")
    table.add_column("options")
    for group, options in group_options().items():
        table.add_row(group, ", ".join(options))
    Console().print(table)
    exps = Table(title="experiments (ics sweep <name>, or ics run experiment=<name>)")
    exps.add_column("experiment")
    exps.add_column("question")
    for name, path in experiment_files().items():
        first = next((ln.lstrip("# ").strip() for ln in path.read_text().splitlines() if ln.startswith("#") and "@package" not in ln), "")
        exps.add_row(name, first)
    Console().print(exps)


@app.command()
def bench(steps: int = typer.Option(3000, min=100, help="Training steps per timed loop."),
          data_root: Optional[str] = typer.Option(None, help="Data root (default: $ICS_DATA_ROOT)."),
          synthetic: bool = typer.Option(False, help="Use random MNIST-shaped tensors instead of MNIST."),
          repeats: int = typer.Option(3, min=1, help="Timed repeats per loop (the best is kept).")) -> None:
    """Throughput of the ics loop vs a hand-written loop and the tutorial DataLoader pipeline.

    Example: [bold]ICS_DATA_ROOT=/data ics bench --steps 3000[/bold]
    """
    from ics.bench import run_bench
    from ics.config import ConfigError

    try:
        run_bench(steps=steps, data_root=data_root, synthetic=synthetic, repeats=repeats)
    except ConfigError as e:
        _fail(str(e))


@app.command()
def report(path: Path = typer.Argument(..., help="A run or sweep directory."),
           out: Optional[Path] = typer.Option(None, help="Where to write report.md, runs.csv and figures "
                                                          "(default: <path>/report).")) -> None:
    """Tables, LR tolerance and figures for a run or sweep directory.

    Example: [bold]ics report multiruns/2026-11-26/12-00-00[/bold]
    """
    from ics.config import ConfigError
    from ics.report import make_report

    if not path.is_dir():
        _fail(f"{path} is not a directory; give a run or sweep directory (one with summary.json files)")
    try:
        make_report(path, out)
    except ConfigError as e:
        _fail(str(e))


if __name__ == "__main__":  # pragma: no cover
    app()
