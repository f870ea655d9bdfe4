"""Every name in a run directory, defined once: files, metric arrays and TensorBoard tags.

Writers (ics.train, ics.instruments) and readers (ics.analysis) both use these, so a renamed tag
or file cannot silently split the two.
"""

from __future__ import annotations

# files in a job directory
SUMMARY = "summary.json"
METRICS = "metrics.npz"
CHECKPOINT = "checkpoint.pt"
LOCK = "run.lock"  # held (flock) by the process training in this directory
SWEEP_LOCK = "sweep.lock"  # at a sweep's root: held (flock) by the `ics` process running or resuming it
HYDRA_DIR = ".hydra"  # Hydra's config snapshot: config.yaml, overrides.yaml
REPORT_DIR = "report"
PLANNED_JOBS = "jobs.json"  # at a sweep's root: every job's overrides, in launch order
JOB_PLAN = "plan.json"  # at a sweep's root: every job's resolved config as data (ics.record.plan)


def instrument_file(key: str) -> str:
    """The npz an instrument writes its series to (`probe` keeps its historical name)."""
    return "probes.npz" if key == "probe" else f"{key}.npz"


# arrays in metrics.npz
EVAL_STEP, TEST_LOSS, TEST_ACC = "eval_step", "test_loss", "test_acc"
TRAIN_STEP, TRAIN_LOSS, TRAIN_ACC = "train_step", "train_loss", "train_acc"
VAL_LOSS, VAL_ACC = "val_loss", "val_acc"  # empty without data.val_size; otherwise at every eval_step
# a fixed subset of the training split scored like the test split (eval mode): empty without
# trainer.train_eval_size; otherwise at every eval_step
TRAIN_EVAL_LOSS, TRAIN_EVAL_ACC = "train_eval_loss", "train_eval_acc"
METRIC_ARRAYS = (
    EVAL_STEP,
    TEST_LOSS,
    TEST_ACC,
    TRAIN_STEP,
    TRAIN_LOSS,
    TRAIN_ACC,
    VAL_LOSS,
    VAL_ACC,
    TRAIN_EVAL_LOSS,
    TRAIN_EVAL_ACC,
)

# TensorBoard scalar tags written by the loop. TensorBoard lists tag groups alphabetically: the
# accuracy group ("acc/") comes first, so Fig. 1a (acc/test, BN vs no BN) is what a sweep opens on.
TAG_TRAIN_LOSS, TAG_TRAIN_ACC = "loss/train", "acc/train"
TAG_TEST_LOSS, TAG_TEST_ACC = "loss/test", "acc/test"
TAG_VAL_LOSS, TAG_VAL_ACC = "loss/val", "acc/val"
TAG_TRAIN_EVAL_LOSS, TAG_TRAIN_EVAL_ACC = "loss/train_eval", "acc/train_eval"
TAG_FIG1 = "fig1/percentiles"  # image: the run's own Fig. 1 b/c (Images tab), redrawn as it trains
TAG_LR, TAG_STEPS_PER_SEC = "optim/lr", "perf/steps_per_sec"
# HParams metrics: a run writes the first six at its end (drift: the last hidden layer's input, mean
# over units, raw and shape units; steps to the first of report.targets); max good LR is a group's,
# written by `ics report` into its group runs
HPARAM_DRIFT_RAW, HPARAM_DRIFT_SHAPE = "hparams/drift_w1_raw_last", "hparams/drift_w1_shape_last"
HPARAM_STEPS, HPARAM_MAX_GOOD_LR = "hparams/steps_to_target", "hparams/max_good_lr"
HPARAM_METRICS = (
    "hparams/final_test_acc",
    "hparams/best_test_acc",
    "hparams/diverged",
    "hparams/steps_per_sec",
    HPARAM_DRIFT_RAW,
    HPARAM_DRIFT_SHAPE,
    HPARAM_STEPS,
    HPARAM_MAX_GOOD_LR,
)


# tags of the layer-input probes (ics.instruments.probes); the npz arrays use the same names
def probe_tag(point: str, stat: str) -> str:
    return f"probe/{point}/{stat}"


def unit_tag(point: str, unit: int, stat: str) -> str:
    return f"probe/{point}/unit{unit}/{stat}"


def drift_tag(point: str, metric: str) -> str:
    return f"drift/{point}/{metric}"


def probe_train_tag(point: str, stat: str) -> str:
    return f"probe_train/{point}/{stat}"


def hist_tag(point: str) -> str:
    return f"hist/{point}"


def percentile_name(q: float) -> str:
    return f"p{q:g}"
