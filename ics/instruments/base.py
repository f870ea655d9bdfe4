"""The measurement interface: everything that watches training is an `Instrument`.

The training loop holds a list of instruments built from the config (`build_instruments`) and
contains no instrument-specific code. Per step it asks each one two questions, both pure:

  wants_batch(step)        call observe_batch(Batch) *before* this step's update? (the batch B_t,
                           the parameters θ_t and the optimiser state before it moves: what
                           gradient-ICS or loss-landscape measurements need)
  due(step, final)         call measure(step) *after* `step` updates? (final: the last step, or
                           the step a diverging run stopped at; step 0 is measured before training)

Everything an instrument may use arrives in one `RunContext`; it never reaches into the Trainer.

Rules (a test runs every registered instrument against them): an instrument never changes
training. It never calls step() or backward() on the live model, never advances the data sampler,
takes randomness only from its own generator, and any extra forward pass leaves parameters, BN
buffers, train/eval flags, optimiser state and every RNG exactly as found. Parameters after N steps
are bit-identical with all instruments on and off.

What an instrument produces goes through `emit(step, {tag: value})`: one TensorBoard event and a
series kept for its npz (`arrays()`, file name from ics.record.names.instrument_file), and its
`summary()` (final values) goes into summary.json under `instruments.<key>`. Its `state_dict()`
is part of every checkpoint, so a resumed run continues its series exactly.

To add an instrument: subclass Instrument, set `key` (the config section and TensorBoard prefix),
register it with @INSTRUMENTS.register(key), and add its config dataclass (with an `enabled`
flag) to ics/config/schema.py as the `key` field of Config.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from ics.registry import INSTRUMENTS


@dataclass
class RunContext:
    """What instruments may use. The model and optimiser are the live ones: read, never move."""

    cfg: Any  # ics.config.Config of the run
    model: nn.Module
    optimizer: torch.optim.Optimizer
    data: Any  # ics.data.DataBundle: train/test tensors on the device
    device: torch.device
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # mean loss of (outputs, targets)
    steps: int  # steps the run will take in total
    seed: int  # the run's seed: derive instrument generators from it (never the global RNG)
    writer: Any = None  # TensorBoard SummaryWriter, or None when the run writes nothing
    training_forward: bool = False  # True only during the loop's own forward/backward (hooks read it)


@dataclass
class Batch:
    """The mini-batch of the coming update: θ_step is about to become θ_step+1."""

    step: int
    x: torch.Tensor
    y: torch.Tensor


def write_scalars(writer, values: Dict[str, float], step: int) -> None:
    """All of a measurement's scalars in one event (one queue hand-off instead of ~100 add_scalar
    calls); TensorBoard reads each value as its own tag, exactly as if written one by one."""
    if writer is None or not values:
        return
    if getattr(writer, "file_writer", None) is None:  # any writer-like object with add_scalar
        for tag, v in values.items():
            writer.add_scalar(tag, v, step)
        return
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard.summary import scalar

    merged = Summary(value=[scalar(tag, v).value[0] for tag, v in values.items()])
    writer.file_writer.add_summary(merged, step)


class Instrument:
    key: ClassVar[str] = ""
    # what an ensemble's member (ics.train.group) must provide: the live parameters' .grad after
    # each update (given as views of the stack's), or the loop's own forward pass, which a member's
    # part of the vectorised forward does not run (such an instrument keeps its jobs out of groups)
    reads_update_grads: ClassVar[bool] = False
    watches_training_forward: ClassVar[bool] = False

    def __init__(self, cfg: Any, ctx: RunContext):
        self.cfg, self.ctx = cfg, ctx
        self.series: Dict[str, List[float]] = defaultdict(list)
        self.steps: Dict[str, List[int]] = defaultdict(list)  # stream -> steps; "main" is `steps` in the npz

    @classmethod
    def check(cls, section: Any, cfg: Any, model: nn.Module, spec: Any) -> None:
        """Raise a one-line ConfigError for settings that cannot work with this model and data set
        (called before anything is written; `model` lives on the meta device)."""

    # --- the loop's questions (pure) and calls -----------------------------------------------------
    def wants_batch(self, step: int) -> bool:
        return False

    def observe_batch(self, batch: Batch) -> None:
        pass

    def due(self, step: int, final: bool = False) -> bool:
        return False

    def measure(self, step: int) -> None:
        pass

    # --- output -------------------------------------------------------------------------------------
    def emit(self, step: int, values: Dict[str, float], stream: str = "main") -> None:
        """Record a measurement (one step of every tag in `values`) and write it to TensorBoard."""
        self.steps[stream].append(step)
        for tag, v in values.items():
            self.series[tag].append(v)
        write_scalars(self.ctx.writer, values, step)

    def layout(self) -> Dict[str, Dict[str, list]]:
        """Custom Scalars categories {title: {chart: [kind, [tag regexes]]}} (written once)."""
        return {}

    def meta(self) -> Dict[str, Any]:
        return {}

    def arrays(self) -> Dict[str, np.ndarray]:
        out = {tag: np.asarray(v, dtype=np.float64) for tag, v in self.series.items()}
        for stream, steps in self.steps.items():
            out["steps" if stream == "main" else f"{stream}_steps"] = np.asarray(steps, dtype=np.int64)
        out.setdefault("steps", np.zeros(0, dtype=np.int64))
        out["meta"] = np.asarray(json.dumps(self.meta()))
        return out

    def summary(self) -> Dict[str, Any]:
        return {}

    # --- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {
            "series": {k: list(v) for k, v in self.series.items()},
            "steps": {k: list(v) for k, v in self.steps.items()},
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.series = defaultdict(list, {k: list(v) for k, v in state["series"].items()})
        self.steps = defaultdict(list, {k: list(v) for k, v in state["steps"].items()})

    def close(self) -> None:
        """Remove anything attached to the live model (hooks)."""


def instrument_configs(cfg) -> Dict[str, Any]:
    """key -> the config section of every registered instrument that is switched on."""
    return {key: getattr(cfg, key) for key in INSTRUMENTS if getattr(getattr(cfg, key, None), "enabled", False)}


def build_instruments(cfg, ctx: RunContext) -> List[Instrument]:
    """One instrument per enabled config section, in registry order, each checked first."""
    out = []
    for key, section in instrument_configs(cfg).items():
        INSTRUMENTS[key].check(section, cfg, ctx.model, ctx.data)
        out.append(INSTRUMENTS[key](section, ctx))
    return out


def load_instrument_arrays(path) -> Optional[Dict[str, Any]]:
    """An instrument's npz -> {"steps": ..., tag: array, "meta": dict}; None when absent/unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files if k != "meta"}
            out["meta"] = json.loads(str(z["meta"])) if "meta" in z.files else {}
            return out
    except Exception:  # missing, truncated (BadZipFile, EOFError), foreign: the reader says which
        return None
