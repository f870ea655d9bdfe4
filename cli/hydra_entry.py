"""The one @hydra.main of the project. The config comes from the ConfigStore (cli/hydra_app.py),
so there is no config folder to find: a non-editable install works the same."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ics_cli.hydra_app import CONFIG_NAME, register, task

register()


@hydra.main(version_base="1.3", config_path=None, config_name=CONFIG_NAME)
def hydra_main(cfg: DictConfig) -> None:
    task(cfg)
