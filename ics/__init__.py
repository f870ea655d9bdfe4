"""ics: measure internal covariate shift while MLPs and CNNs train, with and without BatchNorm.

    from ics.config import Config
    from ics.train import train_and_evaluate
    summary = train_and_evaluate(Config(), "runs/fig1")       # the BN paper's Fig. 1, resumable

The library never imports Hydra; the `ics` command (ics_cli) is the Hydra edge.
"""

__version__ = "0.2.0"

# The parts (data sets, models, optimisers, instruments) register themselves when a registry in
# ics.registry is first read; `import ics` alone stays light.
