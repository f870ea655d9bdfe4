"""The new measurements on cases whose answers are known: gradient ICS (analytic cases),
loss-landscape quantities, noisy-BN moments, precise BN against a full pass, BN's r/d, weight norms
and the scale invariance under BN, and the deep linear network on Gaussian regression."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ics  # noqa: F401  (fills the registries)
from ics.config import (
    BNNoiseConfig,
    BNStatsConfig,
    Config,
    DLNConfig,
    GaussianRegressionConfig,
    GradICSConfig,
    LandscapeConfig,
    MLPConfig,
    MNISTConfig,
    ReportConfig,
    SGDConfig,
    TrainerConfig,
    WeightsConfig,
)
from ics.data import load_data
from ics.instruments import Batch, RunContext
from ics.instruments.bn_stats import precise_statistics
from ics.instruments.grad_ics import GradientICS
from ics.instruments.landscape import LossLandscape
from ics.models import Block, Net, build_model
from ics.models.noise import ScaleShiftNoise
from ics.train import train


def scalar_net(w1: float, w2: float) -> Net:
    """f(x) = w2 · w1 · x: two 1x1 linear layers without bias, no nonlinearity."""
    l1, l2 = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        l1.weight.fill_(w1)
        l2.weight.fill_(w2)
    return Net(OrderedDict(h1=Block(l1, None, nn.Identity())), l2, flatten_first=True)


def context(model, opt, loss_fn=F.mse_loss, seed=0, cfg=None) -> RunContext:
    return RunContext(cfg or Config(), model, opt, None, torch.device("cpu"), loss_fn, 100, seed)


def grad_ics_once(model, opt, x, y, loss_fn=F.mse_loss) -> dict:
    inst = GradientICS(GradICSConfig(enabled=True), context(model, opt, loss_fn))
    inst.observe_batch(Batch(0, x, y))
    return {k: v[-1] for k, v in inst.series.items()}


def test_grad_ics_two_layer_linear_by_hand():
    w1, w2, x, y, lr = 0.7, -1.3, 2.0, 0.5, 0.05
    model = scalar_net(w1, w2)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    out = grad_ics_once(model, opt, torch.tensor([[x]]), torch.tensor([[y]]))
    # L = (w2 w1 x − y)²: G1 = 2 r w2 x, G2 = 2 r w1 x with r = w2 w1 x − y
    r = w2 * w1 * x - y
    g1, g2 = 2 * r * w2 * x, 2 * r * w1 * x
    w1_new = w1 - lr * g1  # layer 1's actual SGD step
    g2_new = 2 * (w2 * w1_new * x - y) * w1_new * x
    assert out["grad_ics/h1/cos"] == pytest.approx(1.0) and out["grad_ics/h1/l2"] == 0.0  # no earlier layer
    assert out["grad_ics/out/grad_norm"] == pytest.approx(abs(g2), rel=1e-5)
    assert out["grad_ics/out/l2"] == pytest.approx(abs(g2 - g2_new), rel=1e-5)
    assert out["grad_ics/out/rel_l2"] == pytest.approx(abs(g2 - g2_new) / abs(g2), rel=1e-5)
    assert out["grad_ics/out/cos"] == pytest.approx(math.copysign(1.0, g2 * g2_new))


def test_grad_ics_is_zero_when_earlier_layers_cannot_move():
    """W2 = 0 makes ∇W1 = 0: layer 1 takes no step, so layer 2's gradient cannot change."""
    torch.manual_seed(0)
    l1, l2 = nn.Linear(5, 4, bias=False), nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        l2.weight.zero_()
    model = Net(OrderedDict(h1=Block(l1, None, nn.Tanh())), l2, flatten_first=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    out = grad_ics_once(model, opt, torch.randn(16, 5), torch.randn(16, 3))
    assert out["grad_ics/out/l2"] == 0.0 and out["grad_ics/out/cos"] == pytest.approx(1.0)
    assert out["grad_ics/out/grad_norm"] > 0


def test_grad_ics_uses_the_optimisers_actual_update():
    """With momentum state, the update differs from −lr·g: G′ must follow the real step."""
    torch.manual_seed(0)
    model = build_model(MLPConfig(widths=[8], norm="none", activation="tanh"), (6,), 3)
    x, y = torch.randn(20, 6), torch.randint(0, 3, (20,))
    plain = torch.optim.SGD(model.parameters(), lr=0.1)
    heavy = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):  # build up momentum, then restore the weights
        saved = {k: v.clone() for k, v in model.state_dict().items()}
        heavy.zero_grad()
        F.cross_entropy(model(x), y).backward()
        heavy.step()
        model.load_state_dict(saved)
    a = grad_ics_once(model, plain, x, y, F.cross_entropy)
    b = grad_ics_once(model, heavy, x, y, F.cross_entropy)
    assert a["grad_ics/out/l2"] != pytest.approx(b["grad_ics/out/l2"], rel=1e-3)
    state = heavy.state_dict()["state"]
    assert all("momentum_buffer" in s for s in state.values())  # the live optimiser kept its state


def test_landscape_on_a_quadratic():
    """L(w) = (w·x − y)² along −ηg is a parabola: the numbers have closed forms."""
    model = scalar_net(1.0, 1.0)
    with torch.no_grad():
        model.blocks.h1.affine.weight.fill_(1.0)
    lr = 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    cfg = LandscapeConfig(enabled=True, multipliers=[1.0], hessian=True, power_iters=50)
    inst = LossLandscape(cfg, context(model, opt))
    x, y = torch.tensor([[1.0]]), torch.tensor([[3.0]])
    inst.observe_batch(Batch(0, x, y))
    out = {k: v[-1] for k, v in inst.series.items()}
    # f = w1 w2, L = (w1 w2 − 3)², at w = (1, 1): g = (2(1−3), 2(1−3)) = (−4, −4)
    w = 1 + lr * 4  # both weights after the step −lr·g
    assert out["landscape/loss_min"] == pytest.approx((w * w - 3) ** 2, rel=1e-5)
    g_new = 2 * (w * w - 3) * w
    change = math.sqrt(2) * abs(g_new + 4)
    assert out["landscape/grad_change"] == pytest.approx(change, rel=1e-5)
    assert out["landscape/beta"] == pytest.approx(change / (lr * math.sqrt(32)), rel=1e-5)
    # Hessian at (1, 1): [[2, 2·2·1·1 − 6 + ...]]: d²L/dw1² = 2 w2², d²L/dw1dw2 = 2(2 w1 w2 − 3) → [[2, −2], [−2, 2]]
    assert out["landscape/top_eig"] == pytest.approx(4.0, rel=1e-6)
    assert out["landscape/min_eig"] == pytest.approx(0.0, abs=1e-6)
    assert out["landscape/two_over_lr"] == pytest.approx(2 / lr)


def test_noise_moments_and_eval_mode():
    torch.manual_seed(0)
    noise = ScaleShiftNoise(0.5, 1.25, 0.1, 0.1)
    noise.seed(1)
    s, m = noise.draw((20_000, 64), 64)
    mu_j, sigma_j = m.mean(dim=0), s.mean(dim=0)  # per unit: ≈ its drawn μ_j, σ_j
    assert mu_j.min() >= -0.5 - 0.01 and mu_j.max() <= 0.5 + 0.01 and mu_j.std() > 0.2  # μ_j ~ U(−0.5, 0.5)
    assert sigma_j.min() >= 1 - 0.01 and sigma_j.max() <= 1.25 + 0.01  # σ_j ~ U(1, 1.25)
    assert ((m - mu_j).abs().max()) <= 0.1 + 2e-3  # m ~ U(μ_j − 0.1, μ_j + 0.1) (μ_j estimated: ±2e-3)
    assert (m - mu_j).std() == pytest.approx(0.2 / math.sqrt(12), rel=0.02)
    assert (s - sigma_j).std() == pytest.approx(0.1, rel=0.02)  # s ~ N(σ_j, 0.1)
    # conv: per channel, H and W are batch dimensions
    s4, m4 = noise.draw((50, 3, 8, 8), 3)
    assert s4.shape == (50, 3, 8, 8) and m4[:, 0].mean().item() != pytest.approx(m4[:, 1].mean().item(), abs=1e-3)
    # eval mode (and an instrument pass) leaves the input untouched
    model = build_model(MLPConfig(widths=[16], noise="santurkar"), (1, 4, 4), 3, seed=2)
    x = torch.randn(10, 1, 4, 4)
    model.eval()
    ref = build_model(MLPConfig(widths=[16]), (1, 4, 4), 3)
    ref.load_state_dict({k: v for k, v in model.state_dict().items() if "noise" not in k})
    ref.eval()
    assert torch.equal(model(x), ref(x))
    model.train()
    assert not torch.equal(model(x), ref.train()(x))


def test_noise_generator_travels_with_the_state_dict():
    a = build_model(MLPConfig(widths=[8], noise="santurkar"), (4,), 2, seed=5)
    b = build_model(MLPConfig(widths=[8], noise="santurkar"), (4,), 2, seed=6)
    x = torch.randn(6, 4)
    a(x)  # advance a's generator
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(x), b(x))


def test_precise_bn_equals_a_full_pass_average():
    """One shuffled pass of equal batches: running mean = the mean over the whole training set;
    running var = the mean of the batches' unbiased variances (Alg. 2's m/(m−1) factor)."""
    torch.manual_seed(0)
    model = build_model(MLPConfig(widths=[7]), (5,), 3)
    x = torch.randn(600, 5) * 3 + 1
    twin = precise_statistics(model, x, batches=10, batch_size=60, seed=4)
    with torch.no_grad():
        pre = model.blocks.h1.affine(x)
    assert torch.allclose(twin.blocks.h1.norm.running_mean, pre.mean(dim=0), atol=1e-4)
    perm = torch.randperm(600, generator=torch.Generator().manual_seed(4))
    batch_vars = torch.stack([pre[perm[i : i + 60]].var(dim=0, unbiased=True) for i in range(0, 600, 60)])
    assert torch.allclose(twin.blocks.h1.norm.running_var, batch_vars.mean(dim=0), atol=1e-4)
    assert torch.equal(model.blocks.h1.norm.running_mean, torch.zeros(7))  # the live model is untouched


def tiny_run(mnist_root, tmp_path, **sections):
    cfg = Config(
        model=MLPConfig(widths=[32, 32]),
        data=MNISTConfig(root=str(mnist_root)),
        trainer=TrainerConfig(
            steps=60, batch_size=30, eval_every=20, log_every=10, threads=1, progress=False, checkpoint_every=0
        ),
        **sections,
    )
    from ics.config import ProbeConfig

    return train(dataclasses_replace(cfg, probe=ProbeConfig(enabled=False)), tmp_path / "run")


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_bn_stats_bn_noise_and_weights_in_a_run(mnist_root, tmp_path):
    from ics.analysis.load import load_series

    s = tiny_run(
        mnist_root,
        tmp_path,
        bn_stats=BNStatsConfig(enabled=True, batches=10, test_batch_sizes=[2, 20]),
        bn_noise=BNNoiseConfig(enabled=True, every=10),
        weights=WeightsConfig(enabled=True, every=10),
    )
    bn = load_series(tmp_path / "run", "bn_stats")
    # at every evaluation of the loop, the log-spaced early ones (10, 11, ...) included
    from ics.models.evaluate import eval_schedule

    assert list(bn.steps) == [0] + sorted(eval_schedule(60, 20, 8)) and 10 in bn.steps
    assert len(bn.tags["test_bn/ema/acc"]) == len(bn.steps)
    for kind in ("ema", "precise", "batch2", "batch20"):
        assert 0 <= bn.tags[f"test_bn/{kind}/acc"][-1] <= 1
    assert bn.tags["test_bn/ema/acc"][-1] == pytest.approx(s.final_test_acc)  # the same evaluation as test/acc
    assert set(s.instruments["bn_stats"]) == {"ema", "precise", "batch2", "batch20"}
    assert bn.tags["test_bn/h1/mean_gap"][-1] >= 0
    noise = load_series(tmp_path / "run", "bn_noise")
    assert list(noise.steps) == [0, 10, 20, 30, 40, 50]
    r = noise.tags["bn_noise/h1/r_mean"]
    assert (r > 0).all() and noise.tags["bn_noise/h1/d_abs"].min() >= 0
    w = load_series(tmp_path / "run", "weights")
    assert list(w.steps) == [10, 20, 30, 40, 50, 60]
    # under BN the loss is invariant to a row's scale: the gradient is orthogonal to the row
    assert w.tags["weights/h1/grad_cos_median"].max() < 1e-3
    assert w.tags["weights/out/grad_cos_median"].max() > 1e-3  # the output layer has no BN
    lr = s.config["optim"]["lr"]  # the run's own (the default)
    assert w.tags["weights/h1/eff_lr_median"][0] == pytest.approx(
        lr / w.tags["weights/h1/row_norm_median"][0] ** 2, rel=0.2
    )


def test_bn_noise_r_and_d_at_the_first_step(mnist_root):
    """At step 0 the running statistics are (0, 1): d is the batch mean, r the batch std (+eps)."""
    from ics.instruments.bn_noise import BNNoise

    data = load_data(MNISTConfig(root=str(mnist_root)))
    torch.manual_seed(0)
    model = build_model(MLPConfig(widths=[16]), data.in_shape, 10)
    ctx = context(model, torch.optim.SGD(model.parameters(), lr=0.1), F.cross_entropy)
    inst = BNNoise(BNNoiseConfig(enabled=True, every=1), ctx)
    x = data.x_train[:50]
    inst.observe_batch(Batch(0, x, data.y_train[:50]))
    ctx.training_forward = True
    model(x)
    ctx.training_forward = False
    inst.measure(1)
    with torch.no_grad():
        pre = model.blocks.h1.affine(x.flatten(1))
    expect_r = torch.sqrt(pre.var(dim=0, unbiased=False) + 1e-5) / math.sqrt(1 + 1e-5)
    assert inst.series["bn_noise/h1/r_mean"][-1] == pytest.approx(expect_r.mean().item(), rel=1e-4)
    expect_d = pre.mean(dim=0) / math.sqrt(1 + 1e-5)
    assert inst.series["bn_noise/h1/d_abs"][-1] == pytest.approx(expect_d.abs().mean().item(), rel=1e-4)
    inst.close()
    assert not model.blocks.h1.norm._forward_pre_hooks


def test_deep_linear_network_regression(tmp_path):
    cfg = Config(
        model=DLNConfig(depth=6, width=10, norm="none"),
        data=GaussianRegressionConfig(),
        optim=SGDConfig(lr=0.02),
        trainer=TrainerConfig(
            steps=200, batch_size=1000, eval_every=50, log_every=50, threads=1, progress=False, checkpoint_every=0
        ),
        grad_ics=GradICSConfig(enabled=True, every=50),
        report=ReportConfig(targets=[0.5]),
    )
    s = train(cfg, tmp_path / "dln")
    assert s.metric == "r2" and s.status == "completed"
    assert s.final_test_acc > 0.5  # R² of y = A x learnt by a 6-layer linear net
    assert s.final_train_acc is None or math.isnan(s.final_train_acc)
    cos = s.instruments["grad_ics"]["h3"]["cos"]
    assert -1 <= cos <= 1
    data = load_data(GaussianRegressionConfig())
    assert data.task == "regression" and data.x_train.shape == (1000, 10) and data.y_train.shape == (1000, 10)
    # y = A x exactly: least squares on the training set recovers it
    a = torch.linalg.lstsq(data.x_train, data.y_train).solution
    assert torch.allclose(data.x_test @ a, data.y_test, atol=1e-3)


# ----------------------------------------------------------------------------------------------
# drift in fair units (issue: "Drift in units that do not manufacture effects")


def _sorted_gauss(n, mu=0.0, sd=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, n, generator=g, dtype=torch.float64) * sd + mu
    return x.sort(dim=1).values, x.mean(dim=1), x.std(dim=1, unbiased=False)


@pytest.mark.parametrize(
    "mu, sd, raw",
    [
        (1.5, 1.0, 1.5),  # N(0,1) -> N(μ,1): w1_raw = |μ|
        (0.0, 3.0, 2.0 * math.sqrt(2 / math.pi)),  # N(0,1) -> N(0,σ²): |σ−1|·√(2/π)
        (-2.0, 0.5, None),  # both: shape unchanged
    ],
)
def test_w1_raw_and_shape_on_gaussians(mu, sd, raw):
    from ics.instruments.stats import w1_shape_sorted, w1_sorted

    a, ma, sa = _sorted_gauss(200_000, seed=1)
    b, mb, sb = _sorted_gauss(200_000, mu, sd, seed=1)  # the same draws, moved and scaled
    if raw is not None:
        assert w1_sorted(b, a).item() == pytest.approx(raw, rel=1e-2)
    assert w1_shape_sorted(b, mb, sb, a, ma, sa).item() == pytest.approx(0.0, abs=1e-9)
    c, mc, sc = _sorted_gauss(200_000, mu, sd, seed=2)  # independent draws: only sampling noise
    assert w1_shape_sorted(c, mc, sc, a, ma, sa).item() < 0.01


def test_w1_shape_sees_a_change_of_shape():
    from ics.instruments.stats import w1_shape_sorted

    a, ma, sa = _sorted_gauss(200_000)
    e = torch.distributions.Exponential(1.0).sample((1, 200_000)).double().sort(dim=1).values
    w = w1_shape_sorted(e, e.mean(dim=1), e.std(dim=1, unbiased=False), a, ma, sa).item()
    assert w > 0.1  # a skewed distribution with the same mean and std is a different shape


def test_probe_drift_units_through_a_model(mnist_root, tmp_path):
    """Scaling the last hidden layer's weights by k after training moves w1_raw (k× the spread) while
    w1_shape of its pre-activations stays 0: the instrument computes what the formulas say."""
    from ics.config import ProbeConfig
    from ics.instruments.probes import LayerInputProbes

    data = load_data(MNISTConfig(root=str(mnist_root)))
    torch.manual_seed(0)
    model = build_model(MLPConfig(widths=[16, 16], norm="none"), data.in_shape, 10)
    ctx = RunContext(
        Config(), model, torch.optim.SGD(model.parameters(), lr=0.1), data, torch.device("cpu"), F.cross_entropy, 10, 0
    )
    inst = LayerInputProbes(ProbeConfig(size=100, points=["h2.pre_act"]), ctx)
    inst.measure(0)
    from ics.instruments.probes import capture

    before = capture(model, inst.points, inst.x, "batch")["h2.pre_act"]  # (examples, units)
    with torch.no_grad():
        model.blocks.h2.affine.weight.mul_(3.0)
        model.blocks.h2.affine.bias.mul_(3.0)
    inst.measure(1)
    last = {k: v[-1] for k, v in inst.series.items()}
    assert last["drift/h2.pre_act/w1_shape"] == pytest.approx(0.0, abs=1e-5)
    # x → 3x: W1 per unit = mean|3a − a| = 2·mean|a|; in σ_ref units divided by each unit's std
    assert last["drift/h2.pre_act/w1_raw"] == pytest.approx((2 * before.abs().mean(dim=0)).mean().item(), rel=1e-4)
    sd = before.std(dim=0, unbiased=False)
    assert last["drift/h2.pre_act/w1_ref"] == pytest.approx((2 * before.abs().mean(dim=0) / sd).mean().item(), rel=1e-4)
    # every percentile moved by 2 × its own value (x → 3x): pmove = mean over units of 2|p_q(ref)|
    p50 = inst.series["probe/h2.pre_act/p50"]
    assert last["drift/h2.pre_act/pmove_p50"] >= abs(2 * p50[0]) - 1e-6


def test_hessian_extremes_are_algebraic_where_the_most_negative_dominates():
    """A depth-4 BN deep linear network at init (seed 0) sits where |λ_min| > λ_max: power iteration
    finds λ_min (the largest magnitude); Lanczos gives both extremes, equal to a dense eigensolve."""
    import numpy as np
    import torch.nn.functional as F
    from torch.func import functional_call

    from ics.instruments.functional import live_params
    from ics.instruments.landscape import hessian_extremes

    torch.manual_seed(0)
    model = build_model(DLNConfig(depth=4, width=3, norm="batch"), (3,), 3)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, generator=gen), torch.randn(16, 3, generator=gen)
    params = {n: p.detach() for n, p in model.named_parameters()}
    names, buffers = list(params), {n: b.clone() for n, b in model.named_buffers()}

    def loss(flat):
        parts = torch.split(flat, [params[n].numel() for n in names])
        ps = {n: t.reshape(params[n].shape) for n, t in zip(names, parts)}
        return F.mse_loss(functional_call(model, {**ps, **buffers}, (x,)), y)

    dense = np.linalg.eigvalsh(
        torch.autograd.functional.hessian(loss, torch.cat([params[n].reshape(-1) for n in names])).double().numpy()
    )
    assert abs(dense[0]) > dense[-1] > 0  # the case the issue found: a saddle dominated by λ_min
    hi, lo = hessian_extremes(model, live_params(model), x, y, F.mse_loss, 20, torch.Generator().manual_seed(0))
    assert hi == pytest.approx(dense[-1], rel=1e-4) and lo == pytest.approx(dense[0], rel=1e-4)
    # what the replaced power iteration returned: the eigenvalue of largest magnitude, here λ_min
    H = torch.autograd.functional.hessian(loss, torch.cat([params[n].reshape(-1) for n in names])).double()
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for _ in range(500):
        v = H @ v
        v = v / v.norm()
    assert float(v @ H @ v) == pytest.approx(dense[0], rel=1e-3)


def landscape_once(m, x, y) -> dict:
    """Every landscape measure (the scale-invariant ones too) at one batch, with SGD at lr 0.5."""
    cfg = LandscapeConfig(enabled=True, scale_invariant=True)
    inst = LossLandscape(cfg, context(m, torch.optim.SGD(m.parameters(), lr=0.5), loss_fn=F.cross_entropy))
    inst.observe_batch(Batch(0, x, y))
    return {k: v[-1] for k, v in inst.series.items()}


def test_scale_invariant_landscape_does_not_move_when_bn_fed_weights_are_rescaled():
    """BN makes the function invariant to the scale of each weight row feeding it: rescaling those rows
    by 3 leaves the si/ measures unchanged, while the plain ones (measured along the actual step)
    move — the confound of issue 16."""
    torch.manual_seed(0)
    # BN's ε breaks the invariance by ε/σ²; a tiny ε makes the symmetry exact enough to test to 1e-4
    model = build_model(MLPConfig(widths=[20, 20], bn_eps=1e-12), (6,), 4).double()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 6, generator=gen).double(), torch.randint(0, 4, (32,), generator=gen)
    measure = lambda m: landscape_once(m, x, y)  # noqa: E731
    before = measure(model)
    scaled = __import__("copy").deepcopy(model)
    with torch.no_grad():
        for name in ("h1", "h2"):  # the rows that feed BN (the output layer's do not)
            scaled.blocks[name].affine.weight.mul_(3.0)
    after = measure(scaled)
    with torch.no_grad():  # the same function, with the batch statistics the landscape uses
        assert torch.allclose(model(x), scaled(x), atol=1e-9)
    for k in ("loss_range", "grad_change_rel", "beta"):
        assert after[f"landscape/si/{k}"] == pytest.approx(before[f"landscape/si/{k}"], rel=1e-9), k
    for k in ("loss_range", "grad_change_rel", "beta"):  # the plain ones move (2-6% here, for a scale of 3)
        assert after[f"landscape/{k}"] != pytest.approx(before[f"landscape/{k}"], rel=0.01), k


@pytest.mark.parametrize("replay", [True, False])
def test_grad_ics_twin_update_is_the_real_step_under_noisy_bn(replay):
    """With model.noise=santurkar, grad_ics's twin update (computed before the step) equals the update
    the optimiser then takes, because its passes replay the step's noise draw; with the noise simply
    switched off (what it did before) the twin update differs (cos ≈ 0.98 in the issue)."""
    from ics.instruments.functional import live_params, loss_and_grad, optimizer_update
    from ics.models import noise_off, noise_replay

    torch.manual_seed(0)
    model = build_model(MLPConfig(widths=[16, 16], noise="santurkar"), (6,), 4, seed=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(24, 6, generator=gen), torch.randint(0, 4, (24,), generator=gen)
    for _ in range(2):  # momentum state that the twin must carry too
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    params = live_params(model)
    if replay:
        with noise_replay(model) as rewind:
            rewind()
            _, g = loss_and_grad(model, params, x, y, F.cross_entropy, noise=True)
    else:
        with noise_off(model):
            _, g = loss_and_grad(model, params, x, y, F.cross_entropy)
    twin = optimizer_update(model, opt, g)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()  # the real step draws its noise now
    opt.step()
    real = torch.cat([(p.detach() - before[n]).reshape(-1) for n, p in model.named_parameters()])
    twin_flat = torch.cat([twin[n].reshape(-1) for n, _ in model.named_parameters()])
    cos = float(real @ twin_flat / (real.norm() * twin_flat.norm()))
    if replay:
        assert torch.allclose(real, twin_flat, atol=1e-7, rtol=1e-5)
    else:
        assert not torch.allclose(real, twin_flat, atol=1e-7, rtol=1e-5) and cos < 0.9999


def test_gradient_flow_matches_a_hand_computation_and_sees_vanishing():
    """gradients: ‖∇W‖ of the step just taken and σ′'s saturation equal a hand computation; at init a
    6-layer sigmoid MLP without BN passes its first layer a far smaller share of the gradient than
    with BN."""
    from ics.config import GradientsConfig
    from ics.instruments.gradients import GradientFlow

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 10, generator=gen), torch.randint(0, 4, (64,), generator=gen)
    ratios = {}
    for norm in ("none", "batch"):
        torch.manual_seed(0)
        model = build_model(MLPConfig(widths=[50] * 6, norm=norm), (10,), 4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        inst = GradientFlow(GradientsConfig(enabled=True, every=1), context(model, opt, loss_fn=F.cross_entropy))
        assert inst.wants_batch(0)
        inst.observe_batch(Batch(0, x, y))
        with torch.no_grad():
            pre = (
                model.blocks.h3.norm(model.blocks.h3.affine(torch.nn.Sequential(model.blocks.h1, model.blocks.h2)(x)))
                if norm == "batch"
                else None
            )
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        assert inst.due(1)
        inst.measure(1)
        out = {k: v[-1] for k, v in inst.series.items()}
        assert out["gradients/h1/grad_norm"] == pytest.approx(
            float(model.blocks.h1.affine.weight.grad.norm()), rel=1e-6
        )
        assert out["gradients/out/grad_ratio"] == pytest.approx(1.0)
        if pre is not None:  # σ′(x)/σ′(0) < 5% ⇔ |x| > 4.36, on the batch statistics of the step's batch
            assert out["gradients/h3/saturated"] == pytest.approx(float((pre.abs() > 4.3605).float().mean()), abs=1e-6)
        ratios[norm] = out["gradients/h1/grad_ratio"]
    assert ratios["none"] < 0.1 * ratios["batch"], ratios
