"""Tests for the layer-input probes (ics.instruments.probes): known answers under exact affine
changes of a probe point's input, point selection, tracked units, conv subsampling, persistence, and
the promise that probing leaves the model (and training) exactly as it would have been without probes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ics.analysis.load import load_series
from ics.config import CNNConfig, Config, ConfigError, MLPConfig, MNISTConfig, ProbeConfig, SGDConfig, TrainerConfig
from ics.data import DataBundle
from ics.instruments import Batch, RunContext
from ics.instruments.base import load_instrument_arrays
from ics.instruments.probes import MAX_SAMPLES, LayerInputProbes, select_points
from ics.models import build_model
from ics.record import write_npz
from ics.train import build_trainer

IN_SHAPE = (1, 28, 28)


# --- helpers -------------------------------------------------------------------------------------


def mlp(norm: str = "none", activation: str = "sigmoid", widths=(16, 12, 8), seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(MLPConfig(widths=list(widths), norm=norm, activation=activation, **kw), IN_SHAPE, 10)


def cnn(norm: str = "none", activation: str = "relu", channels=(4, 6), seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = CNNConfig(channels=list(channels), widths=[8], norm=norm, activation=activation)
    return build_model(cfg, IN_SHAPE, 10)


def probe_x(n: int = 256, seed: int = 123, shape=IN_SHAPE) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


def probe_data(x: torch.Tensor) -> DataBundle:
    """A data set whose test split is x: with probe.size >= len(x) the probe set is x, in order."""
    y = torch.arange(x.shape[0]) % 10
    return DataBundle("probe", x, y, x, y, [str(k) for k in range(10)], (0.0,), (1.0,), "memory")


def suite(model, x, activation="sigmoid", writer=None, **kw) -> LayerInputProbes:
    """The probe instrument on `model` with x as the probe set (the run's model config only tells
    it the nonlinearity, for saturation)."""
    kw.setdefault("size", max(2, x.shape[0]))
    assert kw["size"] >= x.shape[0]
    cfg = ProbeConfig(**kw)
    run = Config(model=MLPConfig(activation=activation), probe=cfg)
    ctx = RunContext(
        run,
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        probe_data(x),
        x.device,
        torch.nn.functional.cross_entropy,
        steps=1_000,
        seed=0,
        writer=writer,
    )
    return LayerInputProbes(cfg, ctx)


def measure(s: LayerInputProbes, step: int) -> dict:
    """s.measure(step), returning the values it recorded at that step: {tag: value}."""
    before = {tag: len(v) for tag, v in s.series.items()}
    s.measure(step)
    return {tag: v[-1] for tag, v in s.series.items() if len(v) > before.get(tag, 0)}


def train_batch(n: int = 20, seed: int = 77) -> Batch:
    return Batch(0, probe_x(n, seed=seed), torch.arange(n) % 10)


def at(batch: Batch, step: int) -> Batch:
    return Batch(step, batch.x, batch.y)


def units_of(model, x, point: str, bn_mode: str = "batch") -> torch.Tensor:
    """The (units, samples) activations at a probe point, captured independently of ProbeSuite."""
    module, kind = model.probe_points()[point]
    got = {}
    h = (
        module.register_forward_pre_hook(lambda m, a: got.setdefault("v", a[0].detach().clone()))
        if kind == "input"
        else module.register_forward_hook(lambda m, a, o: got.setdefault("v", o.detach().clone()))
    )
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {m: m.training for m in model.modules()}
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        with torch.no_grad():
            if bn_mode == "batch":
                model.train()
                for bn in bns:
                    bn.track_running_stats = False
            else:
                model.eval()
            model(x)
    finally:
        h.remove()
        for bn in bns:
            bn.track_running_stats = True
        for m, t in flags.items():
            m.training = t
        model.load_state_dict(state)
    v = got["v"].float()
    return v.t() if v.dim() == 2 else v.transpose(0, 1).reshape(v.shape[1], -1)


class FakeWriter:
    """Records what ProbeSuite writes to TensorBoard."""

    def __init__(self):
        self.layouts, self.scalars, self.histograms, self.figures = [], [], [], []

    def add_custom_scalars(self, layout):
        self.layouts.append(layout)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def add_histogram(self, tag, values, step):
        self.histograms.append((tag, values.detach().clone(), step))

    def add_figure(self, tag, figure, step, close=True):
        self.figures.append((tag, step))


def snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "training": {name: m.training for name, m in model.named_modules()},
        "tracking": {
            name: m.track_running_stats
            for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
        },
        "rng": torch.get_rng_state().clone(),
    }


def assert_untouched(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    for k, v in before["state"].items():
        w = after["state"][k]
        assert w.dtype == v.dtype and torch.equal(w, v), f"{k} changed by probing"
    assert after["training"] == before["training"]
    assert after["tracking"] == before["tracking"]
    assert torch.equal(after["rng"], before["rng"]), "global torch RNG consumed by probing"
    for name, m in model.named_modules():
        assert not m._forward_hooks, f"forward hook left on {name!r}"
        assert not m._forward_pre_hooks, f"forward pre-hook left on {name!r}"


def approx(v, rel=1e-4, abs=1e-5):
    return pytest.approx(v, rel=rel, abs=abs)


# --- exact answers under affine changes of a probe point's input ---------------------------------


def test_pure_shift_in_reference_std_units():
    """h1.pre_act = W x + b. Adding c·σ_ref,k to unit k's bias shifts unit k by exactly c of its own
    reference stds: w1_ref = shift_ref = c, log_std_ratio = 0, and the path grows by c once."""
    model, x = mlp(), probe_x()
    s = suite(model, x)
    v0 = measure(s, 0)
    for m in ("w1_ref", "w1_prev", "shift_ref", "log_std_ratio", "path"):
        assert v0[f"drift/h1.pre_act/{m}"] == 0.0
        assert v0[f"drift/h1.pre_act/{m}_max"] == 0.0

    u = units_of(model, x, "h1.pre_act")
    sd = u.std(dim=1, unbiased=False)
    c = 0.7
    with torch.no_grad():
        model.blocks.h1.affine.bias += c * sd
    v1 = measure(s, 10)
    p = "drift/h1.pre_act"
    assert v1[f"{p}/shift_ref"] == approx(c)
    assert v1[f"{p}/shift_ref_max"] == approx(c)
    assert v1[f"{p}/w1_ref"] == approx(c)
    assert v1[f"{p}/w1_ref_max"] == approx(c)
    assert v1[f"{p}/w1_prev"] == approx(c)
    assert v1[f"{p}/log_std_ratio"] == approx(0.0, abs=1e-5)
    assert v1[f"{p}/path"] == approx(c)
    # the percentiles moved by c·σ_k per unit: the aggregate by c·mean σ
    assert v1["probe/h1.pre_act/p50"] - v0["probe/h1.pre_act/p50"] == approx(c * sd.mean().item())
    assert v1["probe/h1.pre_act/mean"] - v0["probe/h1.pre_act/mean"] == approx(c * sd.mean().item())
    assert v1["probe/h1.pre_act/std"] == approx(v0["probe/h1.pre_act/std"])

    # an identical snapshot: nothing moved since the previous one, the path does not grow
    v2 = measure(s, 20)
    assert v2[f"{p}/w1_prev"] == 0.0
    assert v2[f"{p}/path"] == approx(c)
    assert v2[f"{p}/w1_ref"] == approx(c)

    # shift back: w1_ref returns to 0, but the path (distance travelled) is 2c
    with torch.no_grad():
        model.blocks.h1.affine.bias -= c * sd
    v3 = measure(s, 30)
    assert v3[f"{p}/w1_ref"] == approx(0.0, abs=1e-5)
    assert v3[f"{p}/shift_ref"] == approx(0.0, abs=1e-5)
    assert v3[f"{p}/w1_prev"] == approx(c)
    assert v3[f"{p}/path"] == approx(2 * c)
    assert s.steps["main"] == [0, 10, 20, 30]


def test_uniform_shift_gives_mean_of_shift_over_reference_std():
    """The same constant b added to every unit: per unit |b|/σ_ref,k, the tag is the mean over units."""
    model, x = mlp(), probe_x()
    s = suite(model, x)
    measure(s, 0)
    sd = units_of(model, x, "h1.pre_act").std(dim=1, unbiased=False)
    b = -0.3
    with torch.no_grad():
        model.blocks.h1.affine.bias += b
    v = measure(s, 1)
    per_unit = abs(b) / sd
    assert v["drift/h1.pre_act/shift_ref"] == approx(per_unit.mean().item())
    assert v["drift/h1.pre_act/shift_ref_max"] == approx(per_unit.max().item())
    assert v["drift/h1.pre_act/w1_ref"] == approx(per_unit.mean().item())


@pytest.mark.parametrize("a", [2.0, 0.5])
def test_scale_about_the_mean(a):
    """x -> a(x − μ) + μ per unit (W *= a, b -> a·b + (1 − a)μ): shift 0, |log std ratio| = |log a|,
    and W1 = |a − 1|·E|x − μ| (sorted samples move by (a − 1)(x_(i) − μ))."""
    model, x = mlp(), probe_x()
    s = suite(model, x)
    measure(s, 0)
    u = units_of(model, x, "h1.pre_act")
    mu, sd = u.mean(dim=1), u.std(dim=1, unbiased=False)
    mad = (u - mu[:, None]).abs().mean(dim=1)
    lin = model.blocks.h1.affine
    with torch.no_grad():
        lin.weight *= a
        lin.bias.copy_(a * lin.bias + (1 - a) * mu)
    v = measure(s, 5)
    p = "drift/h1.pre_act"
    assert v[f"{p}/shift_ref"] == approx(0.0, abs=1e-4)
    # the tag is a magnitude (mean over units of |log σ_t/σ_ref|), like shift_ref
    assert v[f"{p}/log_std_ratio"] == approx(abs(math.log(a)))
    assert v[f"{p}/log_std_ratio_max"] == approx(abs(math.log(a)))
    assert v[f"{p}/w1_ref"] == approx((abs(a - 1) * mad / sd).mean().item())
    assert v["probe/h1.pre_act/std"] == approx(a * sd.mean().item())


def test_general_affine_per_unit():
    """x -> a·x + b: shift = |(a − 1)μ + b|/σ, log ratio = log a, W1 = mean|(a−1)x_(i) + b|/σ."""
    model, x = mlp(seed=3), probe_x()
    s = suite(model, x)
    measure(s, 0)
    u = units_of(model, x, "h1.pre_act")
    mu, sd = u.mean(dim=1).double(), u.std(dim=1, unbiased=False).double()
    us = u.double().sort(dim=1).values
    a, b = 1.5, 0.25
    lin = model.blocks.h1.affine
    with torch.no_grad():
        lin.weight *= a
        lin.bias.copy_(a * lin.bias + b)
    v = measure(s, 1)
    p = "drift/h1.pre_act"
    assert v[f"{p}/shift_ref"] == approx((((a - 1) * mu + b).abs() / sd).mean().item())
    assert v[f"{p}/log_std_ratio"] == approx(math.log(a))
    assert v[f"{p}/w1_ref"] == approx((((a - 1) * us + b).abs().mean(dim=1) / sd).mean().item())


def test_zero_drift_when_nothing_changes():
    model, x = mlp(norm="batch"), probe_x()
    s = suite(model, x, points=["*"])
    measure(s, 0)
    v = measure(s, 7)
    drift = {k: val for k, val in v.items() if k.startswith("drift/")}
    assert drift and all(val == 0.0 for val in drift.values()), {k: val for k, val in drift.items() if val != 0}


def test_step_zero_reference_is_zero_even_in_eval_mode():
    model, x = mlp(norm="batch"), probe_x()
    s = suite(model, x, bn_mode="eval")
    v = measure(s, 0)
    assert all(val == 0.0 for k, val in v.items() if k.startswith("drift/"))


# --- percentiles and tracked units ---------------------------------------------------------------


def test_percentile_tags_and_values():
    model, x = mlp(), probe_x()
    s = suite(model, x, units=3, percentiles=[15.0, 50.0, 85.0])
    v = measure(s, 0)
    u = units_of(model, x, "h2.pre_act").double().numpy()
    st = s.state["h2.pre_act"]
    assert len(st.units) == 3
    for q in (15, 50, 85):
        per_unit = np.percentile(u, q, axis=1)
        assert v[f"probe/h2.pre_act/p{q}"] == approx(per_unit.mean())
        for k in st.units:
            assert v[f"probe/h2.pre_act/unit{k}/p{q}"] == approx(per_unit[k])
    assert v["probe/h2.pre_act/mean"] == approx(u.mean(axis=1).mean())
    assert v["probe/h2.pre_act/std"] == approx(u.std(axis=1).mean())
    assert v["probe/h2.pre_act/mean_spread"] == approx(u.mean(axis=1).std())
    assert v["probe/h2.pre_act/std_spread"] == approx(u.std(axis=1).std())
    # untracked units have no per-unit tags
    untracked = [k for k in range(12) if k not in st.units]
    assert not any(f"probe/h2.pre_act/unit{k}/" in tag for tag in v for k in untracked)
    # every selected point has aggregate tags and per-unit tags for its tracked units
    for name in ("h1.pre_act", "h2.pre_act", "h3.pre_act"):
        for q in ("p15", "p50", "p85"):
            assert f"probe/{name}/{q}" in v
            for k in s.state[name].units:
                assert f"probe/{name}/unit{k}/{q}" in v
        assert f"probe/{name}/saturation" in v


def test_percentile_names_for_fractional_percentiles():
    model, x = mlp(), probe_x()
    v = measure(suite(model, x, percentiles=[2.5, 50.0, 97.5]), 0)
    for q in ("p2.5", "p50", "p97.5"):
        assert f"probe/h1.pre_act/{q}" in v
    assert v["probe/h1.pre_act/p2.5"] < v["probe/h1.pre_act/p50"] < v["probe/h1.pre_act/p97.5"]


def test_tracked_units_deterministic_and_in_range():
    x = probe_x()
    a = suite(mlp(seed=0), x, units=4, seed=5)
    b = suite(mlp(seed=1), x, units=4, seed=5)
    measure(a, 0), measure(b, 0)
    widths = {"h1.pre_act": 16, "h2.pre_act": 12, "h3.pre_act": 8}
    for name, n in widths.items():
        ua, ub = a.state[name].units, b.state[name].units
        assert ua == ub
        assert len(ua) == 4 and len(set(ua)) == 4 and ua == sorted(ua)
        assert all(0 <= k < n for k in ua)
    assert a.meta()["tracked_units"] == b.meta()["tracked_units"]
    c = suite(mlp(seed=0), x, units=4, seed=6)
    measure(c, 0)
    assert any(c.state[n].units != a.state[n].units for n in widths)  # seed matters


def test_tracked_units_capped_at_layer_width():
    s = suite(mlp(), probe_x(), units=100)
    measure(s, 0)
    assert s.state["h3.pre_act"].units == list(range(8))
    assert s.state["h1.pre_act"].units == list(range(16))


# --- probe point selection -----------------------------------------------------------------------


def test_default_points_are_the_nonlinearity_inputs():
    s = suite(mlp(), probe_x())
    assert list(s.points) == ["h1.pre_act", "h2.pre_act", "h3.pre_act"]
    v = measure(s, 0)
    assert {k.split("/")[1] for k in v} == {"h1.pre_act", "h2.pre_act", "h3.pre_act"}


def test_glob_selection():
    model = mlp()
    assert list(select_points(model, ["h3.*"])) == ["h3.in", "h3.pre_act"]
    every = ["h1.in", "h1.pre_act", "h2.in", "h2.pre_act", "h3.in", "h3.pre_act", "out.in"]
    assert list(select_points(model, ["*"])) == every
    assert list(select_points(model, ["out.in", "h1.*"])) == ["h1.in", "h1.pre_act", "out.in"]
    s = suite(model, probe_x(), points=["h3.*"])
    v = measure(s, 0)
    assert {k.split("/")[1] for k in v} == {"h3.in", "h3.pre_act"}
    assert "probe/h3.pre_act/saturation" in v and "probe/h3.in/saturation" not in v  # only nonlinearity inputs
    assert s.meta()["points"] == ["h3.in", "h3.pre_act"]


def test_glob_matching_nothing_lists_the_available_points():
    with pytest.raises(ConfigError) as e:
        suite(mlp(), probe_x(), points=["conv*"])
    msg = str(e.value)
    assert "conv*" in msg
    for name in ("h1.in", "h1.pre_act", "h3.pre_act", "out.in"):
        assert name in msg


def test_all_points_shapes():
    s = suite(mlp(), probe_x(), points=["*"], units=100)
    measure(s, 0)
    h1_in = s.state["h1.in"].units
    assert len(h1_in) == 100 and all(0 <= k < 784 for k in h1_in)  # 100 of the 784 input pixels
    assert s.state["h1.in"].path.shape == (784,)
    assert len(s.state["out.in"].units) == 8
    assert len(s.state["h2.in"].units) == 16


# --- state invariance ----------------------------------------------------------------------------


@pytest.mark.parametrize("bn_mode", ["batch", "eval"])
@pytest.mark.parametrize("train_mode", [True, False])
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_measuring_leaves_the_model_exactly_as_found(bn_mode, train_mode, norm):
    model = mlp(norm=norm)
    x = probe_x(64)
    # non-default BN buffers, so that any update would show
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(probe_x(32, seed=9))
    model.train(train_mode)
    model.blocks.h2.train(not train_mode)  # a mixed-mode model must come back mixed
    before = snapshot(model)
    s = suite(model, x, bn_mode=bn_mode, points=["*"])
    for step in (0, 5, 10):
        measure(s, step)
        assert_untouched(model, before)


@pytest.mark.parametrize("bn_mode", ["batch", "eval"])
def test_measuring_leaves_a_cnn_exactly_as_found(bn_mode):
    model = cnn(norm="batch")
    model.train()
    with torch.no_grad():
        model(probe_x(8, seed=3))
    before = snapshot(model)
    s = suite(model, probe_x(8), activation="relu", bn_mode=bn_mode, points=["*"])
    measure(s, 0)
    measure(s, 1)
    assert_untouched(model, before)


def test_measure_under_grad_mode_records_no_graph():
    model, x = mlp(norm="batch"), probe_x(32)
    s = suite(model, x)
    assert torch.is_grad_enabled()
    measure(s, 0)
    assert torch.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())


def test_failed_measurement_still_restores_the_model():
    model = mlp(norm="batch")
    model.eval()
    before = snapshot(model)
    s = suite(model, probe_x(16, shape=(1, 27, 27)))  # wrong input size: the forward raises
    with pytest.raises(RuntimeError):
        measure(s, 0)
    assert_untouched(model, before)


@pytest.mark.parametrize("bn_mode", ["batch", "eval"])
def test_on_train_batch_capture_and_close(bn_mode):
    """probe.on_train_batch: before the update of step t (t > 0, a multiple of train_batch_every) the
    loop hands the instrument that step's mini-batch; an extra probe-mode pass over it logs its
    statistics, labelled t. Nothing is attached to the model for it."""
    model = mlp(norm="batch")
    model.train()
    before = snapshot(model)
    w = FakeWriter()
    s = suite(model, probe_x(32), writer=w, bn_mode=bn_mode, on_train_batch=True, train_batch_every=2, every=2)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())  # no standing hooks
    batch = train_batch()
    assert s.due(0) and not s.wants_batch(0)
    measure(s, 0)
    assert not any(t.startswith("probe_train/") for t in s.series)  # the probe-set pass is not a training batch
    forwards = 0
    for step in range(5):  # the training loop: B_step is observed before its update, measure() after it
        if s.wants_batch(step):
            s.observe_batch(at(batch, step))
        model(batch.x)  # this step's "training" forward: train mode, grad enabled
        forwards += 1
        if s.due(step + 1):
            measure(s, step + 1)
    # probe passes do not feed the train-batch statistics; the training batches of steps 2, 4 do
    train_tags = [t for t in s.series if t.startswith("probe_train/")]
    assert "probe_train/h1.pre_act/p50" in train_tags
    assert len(s.series["probe_train/h1.pre_act/p50"]) == 2 and s.steps["train_batch"] == [2, 4]
    assert [st for tag, _, st in w.scalars if tag == "probe_train/h1.pre_act/p50"] == [2, 4]
    # the logged batch statistics are those of the training batch (BN in train mode: mean 0, std 1)
    assert s.series["probe_train/h1.pre_act/mean"][-1] == approx(0.0, abs=1e-5)
    assert s.series["probe_train/h1.pre_act/std"][-1] == approx(1.0, abs=1e-3)
    s.close()
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    # what changed the model here was the test's own training-mode forwards (BN running stats)
    for k in ("blocks.h1.norm.num_batches_tracked",):
        assert model.state_dict()[k].item() == before["state"][k].item() + forwards


def test_on_train_batch_close_leaves_model_as_found_without_training_forwards():
    model = mlp(norm="batch")
    before = snapshot(model)
    s = suite(model, probe_x(32), on_train_batch=True, train_batch_every=1)
    measure(s, 0)
    assert s.wants_batch(1)
    s.observe_batch(at(train_batch(), 1))  # the extra pass over a training batch
    measure(s, 1)
    s.close()
    assert s.steps["train_batch"] == [1]
    assert_untouched(model, before)


# --- BN modes ------------------------------------------------------------------------------------


def test_batch_mode_normalises_with_the_probe_sets_own_statistics():
    model = mlp(norm="batch")  # at init: γ = 1, β = 0
    s = suite(model, probe_x(500), points=["*.pre_act"])
    for step in (0, 3):
        v = measure(s, step)
        for name in ("h1.pre_act", "h2.pre_act", "h3.pre_act"):
            assert v[f"probe/{name}/mean"] == approx(0.0, abs=1e-5)
            assert v[f"probe/{name}/mean_spread"] == approx(0.0, abs=1e-5)
            assert v[f"probe/{name}/std"] == approx(1.0, abs=2e-3)
            assert v[f"probe/{name}/std_spread"] == approx(0.0, abs=2e-3)
    # batch mode ignores the running statistics entirely
    with torch.no_grad():
        model.blocks.h1.norm.running_mean.fill_(5.0)
        model.blocks.h1.norm.running_var.fill_(9.0)
    v = measure(s, 6)
    assert v["probe/h1.pre_act/mean"] == approx(0.0, abs=1e-5)
    assert v["drift/h1.pre_act/w1_ref"] == 0.0


def test_eval_mode_uses_running_statistics_after_step_zero():
    model = mlp(norm="batch")
    x = probe_x(500)
    eps = model.blocks.h1.norm.eps
    s = suite(model, x, bn_mode="eval")
    # step 0 is always measured with batch statistics (running stats are still PyTorch's defaults)
    v0 = measure(s, 0)
    assert v0["probe/h1.pre_act/mean"] == approx(0.0, abs=1e-5)
    assert v0["probe/h1.pre_act/std"] == approx(1.0, abs=2e-3)
    # later steps in eval mode: default running stats (mean 0, var 1) = the affine output / √(1+ε)
    with torch.no_grad():
        a = model.blocks.h1.affine(x.flatten(1))
    v1 = measure(s, 1)
    assert v1["probe/h1.pre_act/mean"] == approx((a.mean(0) / math.sqrt(1 + eps)).mean().item())
    assert v1["probe/h1.pre_act/std"] == approx((a.std(0, unbiased=False) / math.sqrt(1 + eps)).mean().item())
    assert v1["drift/h1.pre_act/w1_ref"] > 0.1  # un-normalised vs the batch-normalised reference
    # running stats set to m, v: per unit (a − m)/√(v + ε)
    m = torch.linspace(-1, 1, 16)
    var = torch.linspace(0.5, 4, 16)
    with torch.no_grad():
        model.blocks.h1.norm.running_mean.copy_(m)
        model.blocks.h1.norm.running_var.copy_(var)
    v2 = measure(s, 2)
    per_unit_mean = (a.mean(0) - m) / torch.sqrt(var + eps)
    per_unit_std = a.std(0, unbiased=False) / torch.sqrt(var + eps)
    assert v2["probe/h1.pre_act/mean"] == approx(per_unit_mean.mean().item())
    assert v2["probe/h1.pre_act/std"] == approx(per_unit_std.mean().item())
    # running stats equal to the probe set's own moments: eval ≈ batch, drift ≈ 0 vs the reference
    with torch.no_grad():
        model.blocks.h1.norm.running_mean.copy_(a.mean(0))
        model.blocks.h1.norm.running_var.copy_(a.var(0, unbiased=False))
    v3 = measure(s, 3)
    assert v3["drift/h1.pre_act/w1_ref"] == approx(0.0, abs=1e-4)
    assert v3["drift/h1.pre_act/shift_ref"] == approx(0.0, abs=1e-4)


# --- CNN: channels are units ---------------------------------------------------------------------


def test_cnn_channels_are_units_and_samples_are_batch_x_h_x_w():
    model = cnn(channels=(4, 6))
    x = probe_x(8)  # c1: 8·28·28 = 6272 > MAX_SAMPLES samples per channel; c2: 8·14·14 = 1568
    w = FakeWriter()
    s = suite(model, x, activation="relu", writer=w, units=100, histogram_every=1)
    v = measure(s, 0)
    assert list(s.points) == ["c1.pre_act", "c2.pre_act", "h1.pre_act"]
    assert s.state["c1.pre_act"].units == [0, 1, 2, 3]
    assert s.state["c2.pre_act"].units == list(range(6))
    assert s.state["c1.pre_act"].path.shape == (4,)
    assert 8 * 28 * 28 > MAX_SAMPLES >= 8 * 14 * 14
    cols = s.state["c1.pre_act"].cols
    assert cols is not None and cols.shape == (MAX_SAMPLES,)
    assert torch.equal(cols, cols.sort().values) and cols.unique().numel() == MAX_SAMPLES
    assert 0 <= cols.min() and cols.max() < 8 * 28 * 28
    assert s.state["c2.pre_act"].cols is None
    hist = {tag: vals for tag, vals, _ in w.histograms}
    assert hist["hist/c1.pre_act"].numel() == 4 * MAX_SAMPLES
    assert hist["hist/c2.pre_act"].numel() == 6 * 8 * 14 * 14

    u = units_of(model, x, "c1.pre_act")
    assert u.shape == (4, 8 * 28 * 28)
    sub = u[:, cols].double().numpy()
    for k in range(4):
        for q in (15, 50, 85):
            assert v[f"probe/c1.pre_act/unit{k}/p{q}"] == approx(np.percentile(sub[k], q))
    # moments use every sample, not the subset
    assert v["probe/c1.pre_act/mean"] == approx(u.mean(dim=1).mean().item())
    assert v["probe/c1.pre_act/std"] == approx(u.std(dim=1, unbiased=False).mean().item())
    # ReLU saturation over all samples, and dead channels
    assert v["probe/c1.pre_act/saturation"] == approx((u <= 0).float().mean().item())
    assert "probe/c1.pre_act/dead" in v
    u2 = units_of(model, x, "c2.pre_act").double().numpy()
    assert u2.shape == (6, 8 * 14 * 14)
    assert v["probe/c2.pre_act/p50"] == approx(np.percentile(u2, 50, axis=1).mean())


def test_cnn_subsample_is_the_same_column_subset_every_snapshot():
    """A per-channel bias shift of c·σ_ref moves every sample by exactly c·σ_ref: W1 on the subset is c
    only if both snapshots use the same columns."""
    model, x = cnn(channels=(4, 6)), probe_x(8)
    s = suite(model, x, activation="relu")
    measure(s, 0)
    cols0 = s.state["c1.pre_act"].cols.clone()
    sd = units_of(model, x, "c1.pre_act").std(dim=1, unbiased=False)
    c = 0.4
    with torch.no_grad():
        model.blocks.c1.affine.bias += c * sd
    v = measure(s, 1)
    assert torch.equal(s.state["c1.pre_act"].cols, cols0)
    assert v["drift/c1.pre_act/w1_ref"] == approx(c)
    assert v["drift/c1.pre_act/w1_ref_max"] == approx(c)
    assert v["drift/c1.pre_act/shift_ref"] == approx(c)
    assert v["drift/c1.pre_act/log_std_ratio"] == approx(0.0, abs=1e-5)
    u1 = units_of(model, x, "c1.pre_act")[:, cols0].double().numpy()
    assert v["probe/c1.pre_act/unit2/p85"] == approx(np.percentile(u1[2], 85))
    # the same seed picks the same columns in another suite
    s2 = suite(cnn(channels=(4, 6), seed=9), x, activation="relu")
    measure(s2, 0)
    assert torch.equal(s2.state["c1.pre_act"].cols, cols0)


# --- persistence ---------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    model, x = mlp(norm="batch"), probe_x(64)
    s = suite(
        model,
        x,
        points=["h2.*", "out.in"],
        units=3,
        percentiles=[10.0, 50.0, 90.0],
        on_train_batch=True,
        train_batch_every=1,
    )
    measure(s, 0)
    for step in (3, 7):
        if s.wants_batch(step):  # the batch of this step, before its update: the train-batch series
            s.observe_batch(at(train_batch(seed=step), step))
        with torch.no_grad():
            model.blocks.h2.affine.weight.mul_(1.1)
        measure(s, step)
    s.close()
    path = tmp_path / "probes.npz"
    write_npz(path, s.arrays())
    series = load_instrument_arrays(path)
    steps, meta, train_steps = series.pop("steps"), series.pop("meta"), series.pop("train_batch_steps")
    assert steps.tolist() == [0, 3, 7] and steps.dtype == np.int64
    expected = dict(s.series)
    assert any(k.startswith("probe_train/") for k in s.series)  # the train-batch series are saved too
    # every series is saved; the only other arrays are the tracked units' raw samples
    assert set(expected) <= set(series)
    assert all(k.startswith("sample") for k in set(series) - set(expected)), sorted(set(series) - set(expected))
    assert train_steps.tolist() == s.steps["train_batch"] == [3, 7]
    for tag, vals in expected.items():
        assert series[tag].dtype == np.float64
        np.testing.assert_array_equal(series[tag], np.asarray(vals, dtype=np.float64))
        assert len(series[tag]) == (len(train_steps) if tag.startswith("probe_train/") else 3)
    assert meta["points"] == ["h2.in", "h2.pre_act", "out.in"]
    assert meta["percentiles"] == [10.0, 50.0, 90.0]
    assert meta["tracked_units"] == {n: st.units for n, st in s.state.items()}
    assert meta["activation"] == "sigmoid" and meta["bn_mode"] == "batch" and meta["probe_size"] == 64
    assert (
        "drift/h2.pre_act/w1_ref" in series and "probe/out.in/unit{}/p90".format(s.state["out.in"].units[0]) in series
    )


def _resume_pair(transfer):
    x = probe_x(64)
    model = mlp()
    a = suite(model, x)
    measure(a, 0)
    with torch.no_grad():
        model.blocks.h1.affine.bias += 0.2
    measure(a, 1)
    b = suite(model, x)
    b.load_state_dict(transfer(a.state_dict()))
    with torch.no_grad():
        model.blocks.h1.affine.bias += 0.2
    return a, b


def _through_file(sd):
    import io

    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # as checkpoints are read: data only


def test_state_dict_through_a_checkpoint_file_continues_identically():
    """What the Trainer does (checkpoint.pt): the resumed suite logs what the uninterrupted one logs."""
    a, b = _resume_pair(_through_file)
    va, vb = measure(a, 2), measure(b, 2)
    assert va == vb
    assert a.series == b.series and a.steps == b.steps
    assert va["drift/h1.pre_act/path"] > va["drift/h1.pre_act/w1_prev"] > 0


def test_state_dict_is_a_snapshot_not_a_view_of_live_state():
    """A state_dict taken at step 1 must not change when the suite measures again (in-memory resume)."""
    x = probe_x(64)
    model = mlp()
    a = suite(model, x)
    measure(a, 0)
    with torch.no_grad():
        model.blocks.h1.affine.bias += 0.2
    measure(a, 1)
    sd = a.state_dict()
    path1 = {n: p["path"].clone() for n, p in sd["points"].items()}
    with torch.no_grad():
        model.blocks.h1.affine.bias += 0.2
    measure(a, 2)
    for n, p in sd["points"].items():
        assert torch.equal(p["path"], path1[n]), f"{n}: state_dict()['path'] aliases the live path tensor"
    a2, b2 = _resume_pair(lambda d: d)
    assert measure(a2, 2) == measure(b2, 2)


# --- writer output -------------------------------------------------------------------------------


def test_writer_receives_layout_scalars_and_histograms():
    w = FakeWriter()
    s = suite(mlp(), probe_x(64), writer=w, every=5, histogram_every=10)
    for step in (0, 5, 10):
        measure(s, step)
    # the layout is the instrument's answer to layout(); the training loop writes it, once
    assert w.layouts == []
    layout = s.layout()
    (margins,) = [charts for title, charts in layout.items() if "Fig. 1 b/c" in title]
    chart = margins["h1.pre_act p15/p50/p85 (mean over units)"]
    assert chart == ["Margin", ["probe/h1.pre_act/p50", "probe/h1.pre_act/p15", "probe/h1.pre_act/p85"]]
    k = s.state["h3.pre_act"].units[0]
    assert f"h3.pre_act p15/p50/p85 (unit {k})" in margins
    assert "w1_ref (all points)" in layout["ICS: drift"]
    assert sorted({st for tag, _, st in w.histograms}) == [0, 10]
    assert {tag for tag, _, _ in w.histograms} == {"hist/h1.pre_act", "hist/h2.pre_act", "hist/h3.pre_act"}
    tags = {tag for tag, _, _ in w.scalars}
    assert {"probe/h1.pre_act/p50", "drift/h2.pre_act/w1_ref", "drift/h3.pre_act/path"} <= tags
    assert [st for tag, _, st in w.scalars if tag == "drift/h1.pre_act/w1_ref"] == [0, 5, 10]


def test_a_diverged_nets_inputs_leave_out_the_histogram_not_the_run(tmp_path):
    """Inputs that are all inf/NaN (a ReLU net after its loss blew up) have no histogram: TensorBoard's
    writer refuses an empty one, and that used to crash the run's final measurement."""
    from torch.utils.tensorboard import SummaryWriter

    model = mlp()
    writer = SummaryWriter(str(tmp_path))
    try:
        s = suite(model, probe_x(64), writer=writer, every=5, histogram_every=5)
        measure(s, 0)
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("inf"))
        measure(s, 5)  # no exception: the scalars are recorded as non-finite, the histogram is left out
    finally:
        writer.close()
    assert math.isfinite(s.series["probe/h1.pre_act/p50"][0])  # step 0, before the blow-up
    assert not math.isfinite(s.series["probe/h1.pre_act/p50"][-1])


# --- with the Trainer ----------------------------------------------------------------------------


def tiny_config(mnist_root: Path, probe: ProbeConfig, steps: int = 60, norm: str = "batch") -> Config:
    return Config(
        model=MLPConfig(widths=[32, 16], norm=norm),
        data=MNISTConfig(root=str(mnist_root)),
        optim=SGDConfig(lr=0.5),
        trainer=TrainerConfig(
            steps=steps,
            batch_size=20,
            eval_every=20,
            eval_log_points=0,
            log_every=10,
            threads=1,
            progress=False,
            seed=3,
        ),
        probe=probe,
    )


@pytest.mark.parametrize("bn_mode", ["batch", "eval"])
def test_probes_do_not_change_training(mnist_root, tmp_path, bn_mode):
    """The spec's invariance: the same seed with and without probes trains bit-identically."""
    probed = ProbeConfig(
        size=100, every=5, histogram_every=5, on_train_batch=True, train_batch_every=5, points=["*"], bn_mode=bn_mode
    )
    t1 = build_trainer(tiny_config(mnist_root, probed), tmp_path / "probed")
    s1 = t1.fit()
    t2 = build_trainer(tiny_config(mnist_root, ProbeConfig(enabled=False)), None)
    s2 = t2.fit()
    assert [i.key for i in t1.instruments] == ["probe"] and t2.instruments == []
    assert s1.status == s2.status
    assert s1.steps == s2.steps == 60
    sd1, sd2 = t1.model.state_dict(), t2.model.state_dict()
    assert sd1.keys() == sd2.keys()
    assert any("running_mean" in k for k in sd1) and any("num_batches_tracked" in k for k in sd1)
    for k in sd1:
        assert torch.equal(sd1[k], sd2[k]), f"{k} differs with probes on"
    for k in ("eval_step", "test_acc", "test_loss", "train_step", "train_loss", "train_acc"):
        assert t1.history[k] == t2.history[k], k
    assert t1.history["test_acc"] and len(t1.history["test_acc"]) == 4  # steps 0, 20, 40, 60
    probes = t1.instruments[0]
    assert probes.steps["main"] == list(range(0, 61, 5))
    assert probes.steps["train_batch"] == list(range(5, 60, 5))  # the batches of steps 5 .. 55, before their update
    assert any(k.startswith("probe_train/") for k in probes.series)  # the train-batch passes were active


def test_trainer_leaves_no_hooks_on_the_model_after_fit(mnist_root):
    """With probe.on_train_batch the probes look at the model during the whole run; once fit() returns,
    the trained model (Trainer.model, handed to the library user) must carry no probe hooks."""
    probe = ProbeConfig(size=50, every=5, on_train_batch=True, train_batch_every=5, points=["*"])
    t = build_trainer(tiny_config(mnist_root, probe, steps=10), None)
    t.fit()
    assert any(k.startswith("probe_train/") for k in t.instruments[0].series)
    for name, m in t.model.named_modules():
        assert not m._forward_hooks, f"forward hook left on {name!r} after fit()"
        assert not m._forward_pre_hooks, f"forward pre-hook left on {name!r} after fit()"


def test_trainer_writes_probes_npz_and_tensorboard(mnist_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    out = tmp_path / "run"
    probe = ProbeConfig(size=100, every=5, histogram_every=10, on_train_batch=True, train_batch_every=10)
    summary = build_trainer(tiny_config(mnist_root, probe, steps=20), out).fit()
    loaded = load_series(out, "probe")  # probes.npz
    steps, series, meta = loaded.steps, loaded.tags, loaded.meta
    assert steps.tolist() == [0, 5, 10, 15, 20]
    assert meta["points"] == ["h1.pre_act", "h2.pre_act"]
    assert meta["probe_size"] == 100
    for pt in meta["points"]:
        assert series[f"drift/{pt}/w1_ref"][0] == 0.0
        assert series[f"drift/{pt}/path"][0] == 0.0
        assert len(series[f"drift/{pt}/w1_ref"]) == 5
        assert np.all(np.diff(series[f"drift/{pt}/path"]) >= 0)  # a path length never shrinks
        assert series[f"drift/{pt}/w1_ref"][-1] > 0  # trained at lr 0.5: something moved
    assert set(summary.drift) == set(meta["points"])
    assert summary.drift["h1.pre_act"]["w1_ref"] == series["drift/h1.pre_act/w1_ref"][-1]

    acc = EventAccumulator(str(out), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    for pt in meta["points"]:
        assert f"hist/{pt}" in tags["histograms"]
        assert [e.step for e in acc.Histograms(f"hist/{pt}")] == [0, 10, 20]
        assert f"probe/{pt}/p50" in tags["scalars"]
        assert f"drift/{pt}/w1_ref" in tags["scalars"]
        assert [e.step for e in acc.Scalars(f"drift/{pt}/w1_ref")] == [0, 5, 10, 15, 20]
        assert f"probe_train/{pt}/p50" in tags["scalars"]
    assert "custom_scalars__config__" in acc.PluginTagToContent("custom_scalars")
    layout = layout_pb2.Layout()
    layout.ParseFromString(acc.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    titles = {c.title for c in layout.category}
    assert any("Fig. 1 b/c" in t for t in titles) and "ICS: drift" in titles
    margins = [ch for c in layout.category for ch in c.chart if ch.HasField("margin")]
    assert any(
        s.value == "probe/h1.pre_act/p50" and s.lower == "probe/h1.pre_act/p15" and s.upper == "probe/h1.pre_act/p85"
        for ch in margins
        for s in ch.margin.series
    )


def test_a_run_whose_activations_become_nan_ends_diverged_with_its_histograms(tmp_path):
    """A diverging run's last probe snapshot holds NaN/inf: its histograms take the finite values (or
    none), and the run is recorded as diverged instead of crashing in TensorBoard's histogram."""
    from ics.config import DLNConfig, GaussianRegressionConfig

    cfg = Config(
        model=DLNConfig(),
        data=GaussianRegressionConfig(),
        optim=SGDConfig(lr=100.0),
        trainer=TrainerConfig(
            steps=30, batch_size=1000, eval_every=10, log_every=10, threads=1, progress=False, checkpoint_every=0
        ),
        probe=ProbeConfig(size=100, every=10, histogram_every=10),
    )
    summary = build_trainer(cfg, tmp_path / "run").fit()
    assert str(summary.status) == "diverged"
    series = load_series(tmp_path / "run", "probe")
    assert series is not None and not all(np.isfinite(v).all() for v in series.tags.values())  # NaN reached the probes
