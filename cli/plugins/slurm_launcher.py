"""hydra/launcher=slurm: the launcher class Hydra builds for the preset (its logic: ics_cli.slurm).

It is defined here, in the `hydra_plugins` namespace, because Hydra builds a launcher only from a
class its plugin scan found there. (An editable install hides this package from that scan; the CLI
then names the class to Hydra itself: ics_cli.hydra_compat.register_launcher.)
"""

from ics_cli import slurm as _slurm

if _slurm.SlurmLauncherBase is not None:

    class SlurmLauncher(_slurm.SlurmLauncherBase):  # type: ignore[valid-type,misc]
        """submitit's SLURM launcher, watched with squeue, requeued at time limits (ics_cli.slurm)."""
