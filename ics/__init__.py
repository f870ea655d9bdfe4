"""ics: measure internal covariate shift while MLPs and CNNs train, with and without BatchNorm."""
__version__ = "0.1.0"

# Importing the parts fills the registries in ics.registry.
from ics import data, models, optim  # noqa: E402,F401
