"""Library-level training runs on tiny generated data: what a run records, learning, determinism,
train/eval modes, divergence, and a CNN on an image folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ics  # noqa: F401  (fills the registries)
from ics.config import KINDS, Config, MNISTConfig, ProbeConfig, SGDConfig, TrainerConfig, from_dict
from ics.data import load_data
from ics.record import Status, names
from ics.train import build_trainer

STEPS = 100
EVERY = 25


def make_cfg(mnist_root, *, model=None, optim=None, trainer=None, probe=None, data=None, cache_dir=None) -> Config:
    data_kw = {
        "name": "mnist",
        "root": str(mnist_root),
        **({"cache_dir": str(cache_dir)} if cache_dir else {}),
        **(data or {}),
    }
    # eval_log_points=0: evaluations exactly every eval_every steps (no extra dense-early ones)
    trainer_kw = {
        "steps": STEPS,
        "eval_every": EVERY,
        "eval_log_points": 0,
        "log_every": EVERY,
        "threads": 1,
        "progress": False,
        **(trainer or {}),
    }
    probe_kw = {"every": EVERY, "size": 100, "histogram_every": 50, **(probe or {})}
    model_kw = model or {}
    return Config(
        model=KINDS["model"][model_kw.get("name", "mlp")](**model_kw),
        data=KINDS["data"][data_kw["name"]](**data_kw),
        optim=SGDConfig(**({"lr": 0.5} | (optim or {}))),
        trainer=TrainerConfig(**trainer_kw),
        probe=ProbeConfig(**probe_kw),
    )


def read_events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert list(run_dir.glob("events.out.tfevents.*")), f"no event file in {run_dir}"
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0, "histograms": 0})
    ea.Reload()
    return ea


@pytest.fixture(scope="module")
def ref_run(mnist_root, tmp_path_factory):
    """One 100-step BN run (Fig. 1 MLP) with every probe point, shared by the read-only tests."""
    base = tmp_path_factory.mktemp("ref")
    cfg = make_cfg(mnist_root, probe={"points": ["*"]}, cache_dir=base / "cache")
    out = base / "run"
    summary = build_trainer(cfg, out).fit()
    return cfg, out, summary


# ----------------------------------------------------------------------------------------------
# what a run writes


def test_event_file_scalar_tags(ref_run):
    cfg, out, _ = ref_run
    ea = read_events(out)
    tags = set(ea.Tags()["scalars"])
    # the loop's tags are named once, in ics.record.names (train/test loss and accuracy, lr, speed)
    for tag in (
        names.TAG_TRAIN_LOSS,
        names.TAG_TRAIN_ACC,
        names.TAG_TEST_LOSS,
        names.TAG_TEST_ACC,
        "optim/lr",
        "perf/steps_per_sec",
    ):
        assert tag in tags, tag
    for point in ("h1.in", "h1.pre_act", "h2.pre_act", "h3.pre_act", "out.in"):
        assert f"probe/{point}/p50" in tags, point
        assert f"probe/{point}/mean" in tags, point
        assert f"drift/{point}/w1_ref" in tags, point
    assert "probe/h3.pre_act/saturation" in tags  # sigmoid inputs: fraction in the flat part
    assert any(t.startswith("drift/") for t in tags) and any(t.startswith("probe/") for t in tags)

    test_steps = [e.step for e in ea.Scalars(names.TAG_TEST_ACC)]
    assert test_steps == list(range(0, STEPS + 1, EVERY))  # step 0 (before any update) .. the last step
    assert [e.step for e in ea.Scalars(names.TAG_TRAIN_LOSS)] == list(range(EVERY, STEPS + 1, EVERY))
    assert [e.step for e in ea.Scalars("drift/h3.pre_act/w1_ref")] == list(range(0, STEPS + 1, EVERY))
    assert all(e.value == pytest.approx(cfg.optim.lr) for e in ea.Scalars("optim/lr"))
    assert all(e.value > 0 for e in ea.Scalars("perf/steps_per_sec"))
    assert all(0 <= e.value <= 1 for e in ea.Scalars(names.TAG_TRAIN_ACC) + ea.Scalars(names.TAG_TEST_ACC))
    # the reference snapshot drifts zero from itself; training moves the distributions
    w1 = [e.value for e in ea.Scalars("drift/h1.pre_act/w1_ref")]
    assert w1[0] == pytest.approx(0.0, abs=1e-6) and w1[-1] > 0


def test_event_file_text_holds_the_config(ref_run):
    cfg, out, _ = ref_run
    ea = read_events(out)
    tensors = ea.Tags()["tensors"]
    tag = next((t for t in tensors if t.startswith("config")), None)
    assert tag is not None, tensors
    text = ea.Tensors(tag)[0].tensor_proto.string_val[0].decode()
    assert "lr: 0.5" in text and "norm: batch" in text and "activation: sigmoid" in text
    assert f"steps: {STEPS}" in text


def test_summary_json(ref_run):
    cfg, out, returned = ref_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["steps"] == STEPS and summary["steps_requested"] == STEPS
    assert summary["diverged_at_step"] is None
    assert 0 <= summary["final_test_acc"] <= 1 and summary["best_test_acc"] >= summary["final_test_acc"]
    assert summary["best_test_acc_step"] in range(0, STEPS + 1, EVERY)
    assert summary["steps_per_sec"] > 0
    assert summary["device"] == "cpu"
    assert summary["dataset"]["name"] == "mnist"
    assert summary["dataset"]["train"] == 600 and summary["dataset"]["test"] == 200
    assert summary["chance_acc"] == pytest.approx(0.1)
    # the probe instrument's final drift per point
    assert set(summary["instruments"]["probe"]) >= {"h1.pre_act", "h3.pre_act"}
    # the returned Summary is what was written
    assert summary["final_test_acc"] == pytest.approx(returned.final_test_acc)
    assert summary["status"] == returned.status
    assert summary["instruments"]["probe"] == returned.drift
    # the config round-trips into the same typed Config
    back = from_dict(summary["config"])
    assert back == cfg
    # what float rounding depends on beyond the config: versions, CPU kernels, threads, device
    env = summary["environment"]
    assert env["torch"] == torch.__version__ and env["threads"] == summary["threads"] and env["device"] == "cpu"
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert {"python", "numpy", "machine", "deterministic"} <= set(env)


def test_a_report_says_when_pooled_runs_differ_in_their_environment():
    from types import SimpleNamespace

    from ics.analysis.report import environment_note

    def job(**env):
        return SimpleNamespace(
            summary=SimpleNamespace(environment={"torch": "2.14.1", "cpu_capability": "AVX512", "threads": 1, **env})
        )

    assert environment_note([job(), job()]) is None
    note = environment_note([job(), job(cpu_capability="AVX2"), job()])
    assert "cpu_capability: AVX512 (2 runs), AVX2 (1 run)" in note and "torch" not in note


def test_checkpoint(ref_run):
    cfg, out, _ = ref_run
    ck = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)  # data only, no code
    for key in ("model", "optimizer", "step", "sampler", "rng"):
        assert key in ck, key
    assert ck["step"] == STEPS
    assert "blocks.h1.affine.weight" in ck["model"] and "out.bias" in ck["model"]
    assert "blocks.h1.norm.running_mean" in ck["model"]
    assert "state" in ck["optimizer"] and "param_groups" in ck["optimizer"]
    assert ck["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.5)
    assert {"gen", "pos"} <= set(ck["sampler"])
    assert isinstance(ck["rng"]["torch"], torch.Tensor)


def test_other_run_files(ref_run):
    _, out, _ = ref_run
    assert (out / "metrics.npz").is_file() and (out / "probes.npz").is_file()
    assert not list(out.glob("*.tmp")), "atomic writes left a temporary file"


# ----------------------------------------------------------------------------------------------
# learning


def test_bn_run_learns_the_tiny_data(ref_run):
    _, _, summary = ref_run
    ea = read_events(ref_run[1])
    acc = [e.value for e in ea.Scalars(names.TAG_TEST_ACC)]
    assert acc[0] < 0.35, "the untrained model should be near chance (0.1)"
    assert summary.final_test_acc >= 0.9, summary.final_test_acc
    loss = [e.value for e in ea.Scalars(names.TAG_TRAIN_LOSS)]
    assert loss[-1] < loss[0] and loss[-1] < 0.5 * math.log(10)
    assert summary.steps_to_target["0.9"] is not None


def test_no_bn_run_learns_too(mnist_root):
    cfg = make_cfg(mnist_root, model={"norm": "none"}, trainer={"steps": 200, "eval_every": 100}, probe={"every": 100})
    summary = build_trainer(cfg, None).fit()
    assert summary.status == Status.COMPLETED
    assert summary.final_test_acc >= 0.9


# ----------------------------------------------------------------------------------------------
# determinism


def _final(mnist_root, data, seed, tmp=None):
    cfg = make_cfg(
        mnist_root, trainer={"steps": 30, "eval_every": 15, "log_every": 15, "seed": seed}, probe={"every": 15}
    )
    tr = build_trainer(cfg, tmp, data=data)
    summary = tr.fit()
    return {k: v.detach().clone() for k, v in tr.model.state_dict().items()}, summary


def test_same_seed_same_run_different_seed_different_run(mnist_root):
    data = load_data(MNISTConfig(root=str(mnist_root)))
    a, sa = _final(mnist_root, data, seed=0)
    b, sb = _final(mnist_root, data, seed=0)
    c, sc = _final(mnist_root, data, seed=1)
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for key in ("final_test_acc", "best_test_acc", "final_test_loss", "final_train_loss"):
        assert getattr(sa, key) == getattr(sb, key), key
    assert sa.drift and sa.drift == sb.drift
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
    assert sa.final_test_loss != sc.final_test_loss


# ----------------------------------------------------------------------------------------------
# train mode for updates, eval mode for evaluation


def test_train_mode_for_steps_eval_mode_for_evaluation(mnist_root, monkeypatch):
    phase = {"now": "train"}
    records = []  # (phase, bn.training, grad enabled)

    from ics.train.hooks import evaluation, instruments

    orig_eval, orig_probe = evaluation.Evaluation.evaluate, instruments.measure  # measure: the instruments' snapshots

    def spy_eval(self, *a, **kw):
        phase["now"] = "eval"
        try:
            return orig_eval(self, *a, **kw)
        finally:
            phase["now"] = "train"

    def spy_probe(*a, **kw):
        phase["now"] = "probe"
        try:
            return orig_probe(*a, **kw)
        finally:
            phase["now"] = "train"

    monkeypatch.setattr(evaluation.Evaluation, "evaluate", spy_eval)
    monkeypatch.setattr(instruments, "measure", spy_probe)
    steps = 20
    cfg = make_cfg(mnist_root, trainer={"steps": steps, "eval_every": 10, "log_every": 10}, probe={"every": 10})
    tr = build_trainer(cfg, None)
    bns = [m for m in tr.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns
    for bn in bns:
        bn.register_forward_pre_hook(
            lambda m, args: records.append((phase["now"], m.training, torch.is_grad_enabled()))
        )
    summary = tr.fit()

    train = [r for r in records if r[0] == "train"]
    evals = [r for r in records if r[0] == "eval"]
    assert len(train) == steps * len(bns)
    assert all(training and grad for _, training, grad in train), "training steps must run in train mode"
    assert evals, "evaluation never ran the model"
    assert all(not training for _, training, _ in evals), "evaluation must run in eval mode (BN running stats)"
    assert all(not grad for _, _, grad in evals), "evaluation must not build a graph"
    assert tr.model.training, "the model must be back in train mode after evaluation"

    # the final evaluation is the eval-mode loss of the final model on the whole test split
    tr.model.eval()
    with torch.no_grad():
        logits = tr.model(tr.data.x_test)
        loss = F.cross_entropy(logits, tr.data.y_test).item()
        acc = (logits.argmax(1) == tr.data.y_test).float().mean().item()
    assert summary.final_test_loss == pytest.approx(loss, rel=1e-4, abs=1e-6)
    assert summary.final_test_acc == pytest.approx(acc, abs=1e-6)
    # only training steps update BN's running statistics (evaluation and probes leave them alone)
    for bn in bns:
        assert int(bn.num_batches_tracked) == steps
        assert bn.running_mean.abs().sum() > 0


# ----------------------------------------------------------------------------------------------
# divergence


def test_huge_lr_diverges_without_an_exception(mnist_root, tmp_path):
    cfg = make_cfg(
        mnist_root,
        model={"norm": "none"},
        optim={"lr": 1e6},
        trainer={"steps": 200, "log_every": 5, "eval_every": 50},
        probe={"every": 50},
    )
    summary = build_trainer(cfg, tmp_path / "run").fit()
    assert summary.status == Status.DIVERGED
    assert summary.diverged_at_step is not None and 0 < summary.diverged_at_step <= 200
    assert summary.diverged_at_step % 5 == 0  # seen at a logging step
    assert summary.steps == summary.diverged_at_step < 200  # stopped early
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["status"] == "diverged" and written["diverged_at_step"] == summary.diverged_at_step
    read_events(tmp_path / "run")  # the event file is still readable


# ----------------------------------------------------------------------------------------------
# CNN on an image folder


def test_cnn_trains_on_cifar_image_folder(mnist_root, cifar_folder, tmp_path):
    cfg = make_cfg(
        mnist_root,
        model={"name": "cnn", "channels": [8, 16], "widths": [32], "activation": "relu", "init": "kaiming"},
        data={"name": "cifar10", "root": None, "image_folder": str(cifar_folder)},
        optim={"lr": 0.05},
        trainer={"steps": 10, "eval_every": 5, "log_every": 5, "batch_size": 20},
        probe={"every": 5, "size": 40},
    )  # the probe set is drawn from the 40 test images
    summary = build_trainer(cfg, tmp_path / "cnn").fit()
    assert summary.status in ("completed", "not_learning")
    assert summary.steps == 10
    assert summary.dataset["name"] == "cifar10"
    assert summary.dataset["train"] == 120 and summary.dataset["test"] == 40
    assert math.isfinite(summary.final_train_loss)
    tags = set(read_events(tmp_path / "cnn").Tags()["scalars"])
    assert "probe/c1.pre_act/p50" in tags and "drift/c2.pre_act/w1_ref" in tags and names.TAG_TEST_ACC in tags


def test_meter_folding_matches_a_direct_computation(monkeypatch):
    from ics.train.meter import Meter

    monkeypatch.setattr(Meter, "FOLD", 3)  # fold every 3 steps: 7 steps = two folds + a remainder
    gen = torch.Generator().manual_seed(0)
    m, losses, logits, ys = Meter(), [], [], []
    for _ in range(7):
        loss, lg, y = (
            torch.rand((), generator=gen),
            torch.randn(5, 4, generator=gen),
            torch.randint(0, 4, (5,), generator=gen),
        )
        m.add(loss, lg, y)
        losses.append(loss), logits.append(lg), ys.append(y)
    out = m.read()
    assert out["loss"] == pytest.approx(float(torch.stack(losses).mean()), rel=1e-6)
    assert out["loss_max"] == pytest.approx(float(torch.stack(losses).max()))
    assert out["acc"] == pytest.approx(float((torch.cat(logits).argmax(1) == torch.cat(ys)).float().mean()))
    assert not m.losses and m.sums is None  # reset after reading


def test_replacement_sampler_is_deterministic_and_resumable():
    from ics.data.sampler import IndexSampler

    a, b = IndexSampler(50, 8, seed=3, mode="replacement"), IndexSampler(50, 8, seed=3, mode="replacement")
    first = [a.next() for _ in range(300)]  # crosses a block boundary (BLOCK = 256)
    assert all(torch.equal(x, b.next()) for x in first)
    assert all(x.shape == (8,) and 0 <= int(x.min()) and int(x.max()) < 50 for x in first)
    state = a.state_dict()
    c = IndexSampler(50, 8, seed=99, mode="replacement")
    c.load_state_dict(state)
    assert all(torch.equal(a.next(), c.next()) for _ in range(300))


# ----------------------------------------------------------------------------------------------
# the evaluation schedule (issue 22): answered arithmetically, the same steps as before


def _set_schedule(steps: int, every: int, log_points: int) -> set:
    """The schedule as it was built before issue 22 (a set of every evaluation step), kept here as the
    reference the arithmetic schedule must reproduce step for step."""
    import numpy as np

    at = set(range(every, steps + 1, every)) | {steps}
    if log_points and every > 10:
        at |= {int(round(v)) for v in np.geomspace(10, every, log_points + 1)[:-1] if round(v) < steps}
    return at


@pytest.mark.parametrize(
    "steps,every,log_points",
    [
        (50_000, 1_000, 8),  # the defaults
        (100, 25, 0),
        (100, 25, 8),
        (3000, 100, 8),
        (60, 20, 8),  # sizes the other tests train
        (7, 1_000, 8),
        (10, 1_000, 8),
        (11, 1_000, 8),  # a run shorter than its first eval_every
        (1_001, 1_000, 8),
        (999, 10, 8),
        (50, 11, 40),
        (500, 12, 300),  # a remainder; points rounding up to every
        (1, 1, 0),
        (5, 3, 0),
        (12_345, 678, 20),
    ],
)
def test_eval_schedule_matches_the_set_it_replaced(steps, every, log_points):
    from ics.models.evaluate import eval_schedule

    schedule = eval_schedule(steps, every, log_points)
    reference = _set_schedule(steps, every, log_points)
    assert list(schedule) == sorted(reference)  # iterated in order, no duplicates
    assert {s for s in range(0, steps + 3) if s in schedule} == reference


def test_eval_schedule_memory_does_not_grow_with_steps():
    """`ics run trainer.steps=1000000000000` died of MemoryError building a set of every eval step."""
    import tracemalloc

    from ics.models.evaluate import eval_schedule

    tracemalloc.start()
    try:
        schedule = eval_schedule(1_000_000, 1, 8)  # the old set: a million ints (~60 MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # checked first: the old code would not return from the next line
    big = eval_schedule(10**12, 1_000, 8)
    assert 1_000_000 in schedule and 999_999 in schedule and 0 not in schedule
    assert 10**12 in big and 10**12 - 1_000 in big and 10**12 - 1 not in big and 10 in big
    first = []
    for s in big:  # lazily generated: the first few without the rest
        first.append(s)
        if len(first) == 10:
            break
    assert first == sorted(_set_schedule(2_000, 1_000, 8))  # 8 log-spaced points, then 1000, 2000


def test_steps_and_eval_log_points_have_documented_upper_bounds():
    from ics.config import ConfigError, validate
    from ics.config.schema import MAX_STEPS

    validate(Config(trainer=TrainerConfig(steps=MAX_STEPS)))
    for trainer, needle in (
        ({"steps": MAX_STEPS + 1}, "trainer.steps"),
        ({"eval_log_points": 10_001}, "trainer.eval_log_points"),
    ):
        with pytest.raises(ConfigError, match=needle):
            validate(Config(trainer=TrainerConfig(**trainer)))
