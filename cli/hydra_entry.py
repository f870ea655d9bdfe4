"""The one @hydra.main of the project. Configs come from the installed package (pkg://ics.conf),
so a non-editable install finds them too."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ics.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="pkg://ics.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    from ics.app import run_job

    run_job(cfg)
