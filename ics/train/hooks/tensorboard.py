"""The TensorBoard writer of a run: event files directly in the run directory (so that
`tensorboard --logdir <sweep>` shows one run per job), the config as text, the Custom Scalars layout (Layout),
and at the end the status text and the HParams entry. Scalars are written by whoever measures them
(trainer.log_scalars, the instruments through RunContext.writer)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional, Sequence

from ics.config import Config
from ics.record import Status, Summary, names
from ics.record.files import FullDiskError, full_disk_cause
from ics.train.hooks.base import Hook

if TYPE_CHECKING:
    from ics.train.loop import Trainer


class TensorBoard(Hook):
    def before_train(self, trainer: "Trainer") -> None:
        """The writer. A resumed run purges the events the killed run wrote after its checkpoint; a
        fresh run in a used directory purges all old events."""
        if trainer.out_dir is None:
            return
        from torch.utils.tensorboard import SummaryWriter

        out = trainer.out_dir
        out.mkdir(parents=True, exist_ok=True)
        old_events = any(out.glob("events.out.tfevents.*"))
        # everything up to the checkpoint's step was logged before the checkpoint was written
        purge = trainer.step + 1 if not trainer.fresh else (0 if old_events else None)
        quiet_tensorboard_thread()
        try:
            writer = SummaryWriter(log_dir=str(out), flush_secs=20, purge_step=purge)
        except OSError as e:
            full = full_disk_cause(e)
            if full is None:
                raise
            raise FullDiskError(full.errno, full.strerror, str(out / "events.out.tfevents.*")) from None
        trainer.writer = trainer.ctx.writer = writer
        if trainer.fresh:
            from omegaconf import OmegaConf

            text = OmegaConf.to_yaml(OmegaConf.structured(trainer.cfg))
            writer.add_text("config", "```yaml\n" + text + "```\n\noverrides: `" + " ".join(trainer.overrides) + "`", 0)

    def before_save(self, trainer: "Trainer") -> None:
        if trainer.writer is not None:
            trainer.writer.flush()  # the events up to this step are on disk before a checkpoint says so

    def close(self, trainer: "Trainer", summary: Optional[Summary]) -> None:
        writer = trainer.writer
        if writer is None:
            return
        if summary is not None:
            try:  # after the record: TensorBoard's last words are a view, never a reason to fail
                writer.add_text("status", f"{summary.status} at step {summary.steps}", trainer.step)
                if summary.status != Status.INTERRUPTED:
                    write_hparams(trainer, summary)
                writer.flush()
            except OSError:
                pass
        try:
            writer.close()
        except OSError:  # its thread already failed (a full disk): nothing more to save there
            pass


class Layout(Hook):
    """The Custom Scalars layout, once, after the step-0 measurements (an instrument's charts may
    name what its first measurement found)."""

    def before_train(self, trainer: "Trainer") -> None:
        if trainer.writer is not None and trainer.fresh:
            trainer.writer.add_custom_scalars(layout(trainer))


def layout(trainer: "Trainer") -> dict:
    """Custom Scalars: the accuracy first (Fig. 1a), then each instrument's charts."""
    out = {
        "Fig. 1a: test accuracy (set smoothing to 0)": {
            "test accuracy (all runs)": ["Multiline", [r"^acc/test$"]],
            "train accuracy": ["Multiline", [r"^acc/train$"]],
        }
    }
    for inst in trainer.instruments:
        out.update(inst.layout())
    return out


def events_file(trainer: "Trainer") -> str:
    """The TensorBoard events file this run writes."""
    name = getattr(getattr(getattr(trainer.writer, "file_writer", None), "event_writer", None), "_file_name", None)
    return str(name) if name else str(Path(trainer.out_dir or ".") / "events.out.tfevents.*")


def write_hparams(trainer: "Trainer", summary: Summary) -> None:
    """HParams dashboard entry in this run's own directory (SummaryWriter.add_hparams would
    create a second run folder): the experiment/session summaries go through the file writer."""
    from torch.utils.tensorboard.summary import hparams

    cfg = trainer.cfg
    values = (
        summary.final_test_acc,
        summary.best_test_acc,
        float(summary.status == Status.DIVERGED),
        summary.steps_per_sec,
    ) + hparam_result(summary, cfg.report.targets)
    metrics = {k: float("nan") if v is None else float(v) for k, v in zip(names.HPARAM_METRICS, values)}
    shown = hparam_values(cfg, trainer.overrides, trainer.hparam_keys)
    # a domain whose values are not of this run's type (lr=1 in a float sweep) is left out: the
    # HParams tab then lists the values it sees
    domains = {
        k: v for k, v in trainer.hparam_domains.items() if k in shown and all(type(x) is type(shown[k]) for x in v)
    }
    # every run, also each job of a sweep, carries the experiment summary in its own folder:
    # TensorBoard takes it from any run, so no extra `.` run at the sweep's root is needed
    for s in hparams(shown, metrics, hparam_domain_discrete=domains):
        trainer.writer.file_writer.add_summary(s)
    for tag, v in metrics.items():
        trainer.writer.add_scalar(tag, v, trainer.step)


def hparam_result(summary: Summary, targets) -> tuple:
    """The ICS result as HParams metrics: final drift of the last hidden layer's input (raw, shape)
    and the steps to the first target accuracy (None where not measured or not reached)."""
    pre = [p for p in summary.drift if p.endswith(".pre_act")]
    last = summary.drift.get(pre[-1], {}) if pre else {}
    first = f"{targets[0]:g}" if targets else None
    return last.get("w1_raw"), last.get("w1_shape"), summary.steps_to_target.get(first) if first else None


HPARAM_KEYS = (
    "model.name",
    "model.activation",
    "model.norm",
    "model.init",
    "data.name",
    "optim.name",
    "optim.lr",
    "trainer.batch_size",
    "trainer.steps",
    "trainer.seed",
)


def hparam_value(v):
    """TensorBoard shows numbers with 4 decimals: integers (seeds, sizes) read better as text."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return v


def hparam_values(cfg: Config, overrides: Sequence[str], keys: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """The given keys (a sweep's varying keys), else the main knobs plus every overridden key, as
    TensorBoard-friendly scalars/strings."""
    from omegaconf import OmegaConf

    conf = OmegaConf.structured(cfg)
    if keys is None:
        keys = list(HPARAM_KEYS) + [o.lstrip("+~").split("=")[0] for o in overrides if "=" in o]
    out: Dict[str, object] = {}
    for key in keys:
        if key.startswith("hydra.") or key in out:
            continue
        val = OmegaConf.select(conf, key, default=None)
        if isinstance(val, (bool, int, float, str)):
            out[key] = hparam_value(val)
        elif val is not None:
            out[key] = str(OmegaConf.to_container(val) if OmegaConf.is_config(val) else val)
    return out


def quiet_tensorboard_thread() -> None:
    """TensorBoard writes its events from a thread; on a full disk that thread dies with a traceback,
    and the same error surfaces in the run at its next write or flush, where it is reported in one
    line. So the thread's own traceback is not printed (other threads' still are)."""
    import threading

    try:
        from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread
    except ImportError:  # pragma: no cover - another TensorBoard layout: leave the hook alone
        return
    hook = threading.excepthook
    if getattr(hook, "_ics_quiet", False):
        return

    def quiet(args) -> None:
        if isinstance(args.thread, _AsyncWriterThread) and isinstance(args.exc_value, OSError):
            return
        hook(args)

    quiet._ics_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = quiet
