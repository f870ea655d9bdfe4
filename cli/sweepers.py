"""What ics knows of Hydra's sweepers, in one table.

Any sweeper a user installs runs: the task returns `sweep.objective` (cli/hydra_app.py) and the
sweeper does the rest. What ics reads from a sweeper's settings — how many jobs it will run (for
progress and the ETA) and which way it optimises (checked against the objective before anything
runs) — is known for the sweepers below; for any other, progress counts jobs without a total and
the direction is the user's to set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional


def _get(node: Any, path: str) -> Any:
    for part in path.split("."):
        if node is None or not hasattr(node, "get"):
            return None
        node = node.get(part)
    return node


def _int(value: Any) -> Optional[int]:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Sweeper:
    option: str  # hydra/sweeper=<option>
    target: str  # the class Hydra builds
    trials_key: Optional[str] = None  # where its settings say how many jobs it runs
    direction_key: Optional[str] = None  # ... and which way it optimises
    # the direction setting's value for "maximize" / "minimize"
    direction_value: Callable[[str], str] = staticmethod(lambda want: want)  # type: ignore[assignment]
    extra: Optional[str] = None  # the pip extra that provides it

    def trials(self, node: Any) -> Optional[int]:
        return _int(_get(node, self.trials_key)) if self.trials_key else None

    def direction(self, node: Any) -> Optional[str]:
        """maximize / minimize as the settings say; None where ics cannot tell."""
        if not self.direction_key:
            return None
        value = _get(node, self.direction_key)
        if isinstance(value, bool):  # Nevergrad: optim.maximize
            return "maximize" if value else "minimize"
        text = str(getattr(value, "name", value)).lower()  # Optuna: an enum or its name
        return text if text in ("maximize", "minimize") else None


SWEEPERS = (
    Sweeper("basic", "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"),
    Sweeper(
        "optuna",
        "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
        "n_trials",
        "direction",
        extra="optuna",
    ),
    Sweeper(
        "nevergrad",
        "hydra_plugins.hydra_nevergrad_sweeper.nevergrad_sweeper.NevergradSweeper",
        "optim.budget",
        "optim.maximize",
        lambda want: "true" if want == "maximize" else "false",
    ),
    Sweeper("ax", "hydra_plugins.hydra_ax_sweeper.ax_sweeper.AxSweeper", "ax_config.max_trials"),
)
OPTIONS = tuple(s.option for s in SWEEPERS)


def sweeper_of(node: Any) -> Sweeper:
    """The row of a composed `hydra.sweeper` node; an unknown sweeper gets a row of its own (it runs,
    without a known total or direction)."""
    target = str(_get(node, "_target_") or "")
    for sweeper in SWEEPERS:
        if target == sweeper.target:
            return sweeper
    name = target.rsplit(".", 1)[-1].lower().removesuffix("sweeper") or "unknown"
    return Sweeper(name, target)


def by_option(option: str) -> Optional[Sweeper]:
    return next((s for s in SWEEPERS if s.option == option), None)
