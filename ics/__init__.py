"""ics: measure internal covariate shift while MLPs and CNNs train, with and without BatchNorm.

    from ics.config import Config
    from ics.train import train_and_evaluate
    summary = train_and_evaluate(Config(), "runs/fig1")       # the BN paper's Fig. 1, resumable

The library never imports Hydra; the `ics` command (ics_cli) is the Hydra edge.
"""
__version__ = "0.2.0"

# Importing the parts fills the registries in ics.registry.
from ics import data, instruments, models  # noqa: E402,F401
from ics.train import optim  # noqa: E402,F401
