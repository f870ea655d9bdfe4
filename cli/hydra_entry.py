"""The one @hydra.main of the project. Its config folder is the installed package ics.configs (the
top-level configs/), so a non-editable install works the same; the schema and the shipped studies
come from the ConfigStore (cli/hydra_app.py)."""

from __future__ import annotations

import sys
from typing import List, Optional

import hydra
from hydra.core.global_hydra import GlobalHydra
from ics_cli.hydra_app import CONFIG_NAME, CONFIG_PATH, register, task
from omegaconf import DictConfig

register()


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=CONFIG_NAME)
def hydra_main(cfg: DictConfig) -> Optional[float]:
    return task(cfg)  # the job's sweep.objective: what an optimising sweeper (Optuna, ...) searches on


def run(argv: List[str]) -> None:
    """Hand the command line over to Hydra's runtime, as if `ics` were the @hydra.main script."""
    GlobalHydra.instance().clear()  # preflight's compose session; hydra.main starts its own
    sys.argv = ["ics", *argv]
    hydra_main()
