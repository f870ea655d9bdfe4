"""hydra/launcher=ensemble: the launcher class Hydra builds for the option (its logic: ics_cli.ensemble).

Defined here, in the `hydra_plugins` namespace, because Hydra builds a launcher only from a class its
plugin scan found there (an editable install hides this package from that scan: ics_cli.ensemble.register
then names the class to Hydra itself).
"""

from hydra.plugins.launcher import Launcher
from ics_cli import ensemble as _ensemble


class EnsembleLauncher(_ensemble.EnsembleLauncherBase, Launcher):
    """Seeds of one config trained as one vectorised model; other jobs one by one (ics_cli.ensemble)."""
