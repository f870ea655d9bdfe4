"""Normalisers (ics/models/norms): each one's defining invariance, Batch Renorm against BN, and, for every
declared normaliser (tests/norm_cases.py), that its declaration holds (invariance, batch statistics,
evaluation mode), what the instruments read from them, refusals, and a bit-identical resume."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from norm_cases import beyond_bn, invariant, names, normalisers
from torch.nn import functional as F

from ics.config import (
    CNNConfig,
    Config,
    ConfigError,
    DLNConfig,
    MLPConfig,
    MNISTConfig,
    MomentumConfig,
    ProbeConfig,
    TrainerConfig,
)
from ics.config.norms import declared
from ics.models import build_model
from ics.models.norms import scale_invariant_weights
from ics.registry import NORMS


def mlp(norm, **kw):
    torch.manual_seed(0)
    return build_model(MLPConfig(widths=[8, 8], norm=norm, norm_groups=2, **kw), (6,), 3).double()


def block_out(model, x, name="h1"):
    """The first block's normaliser output (the probes' pre_act) for input x."""
    b = model.blocks[name]
    return b.norm(b.affine(x))


def test_every_declared_norm_is_registered_and_read_from_its_source_as_imported():
    """The declarations read without torch (from the sources) are the modules' own, one per factory."""
    import sys

    assert set(declared()) == set(NORMS)
    for name, fn in NORMS.items():
        assert sys.modules[fn.__module__].DECLARED == declared()[name], name


@pytest.mark.parametrize("norm", normalisers())
def test_batch_statistics_are_as_declared(norm):
    """A normaliser that declares batch statistics is a _BatchNorm (what bn_stats, bn_noise and the probes
    read) and makes each example's output depend on the others in training; one that does not, neither."""
    model = mlp(norm)
    mod = model.blocks.h1.norm
    assert mod.norm_spec is declared()[norm]
    assert isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) == declared()[norm].batch_statistics
    x = torch.randn(10, 6, dtype=torch.float64)
    other = x.clone()
    other[3] += 1.0
    moved = not torch.allclose(copy.deepcopy(model).train()(other)[0], copy.deepcopy(model).train()(x)[0])
    assert moved == declared()[norm].batch_statistics


def test_every_norm_is_registered_and_builds_for_mlp_cnn_and_dln():
    for norm in NORMS:
        kw = {"norm": norm, "norm_groups": 2}
        for cfg, shape in (
            (MLPConfig(widths=[8, 4], **kw), (6,)),
            (CNNConfig(channels=[4, 8], widths=[6], **kw), (3, 8, 8)),
            (DLNConfig(depth=3, width=4, **kw), (4,)),
        ):
            model = build_model(cfg, shape, 3)
            out = model(torch.randn(5, *shape))
            assert out.shape == (5, 3) and torch.isfinite(out).all(), (norm, cfg.name)
            if norm != "none":  # the norm sits where BN is and owns the affine layer's bias
                assert all(b.norm is not None and b.affine.bias is None for b in model.blocks.values())


def test_batch_statistics_norms_are_per_unit_over_the_batch():
    """BN: each unit is normalised by its own batch statistics, so scaling (or shifting) one unit's
    pre-activations over the batch leaves the output as it was; ℓp subtracts the mean but divides by
    the ℓp average of the uncentred values, so scaling leaves it and shifting does not. Both depend
    on the other examples."""
    torch.manual_seed(1)
    z = torch.randn(16, 5, dtype=torch.float64) * 3 + 1
    for norm, p in (("batch", "2"), ("batch_renorm", "2"), ("lp", "1"), ("lp", "2"), ("lp", "inf")):
        torch.manual_seed(0)
        mod = NORMS[norm](5, False, MLPConfig(norm=norm, norm_p=p, bn_eps=1e-12)).double().train()
        with torch.no_grad():
            mod.weight.uniform_(0.5, 2), mod.bias.uniform_(-1, 1)

        def call(t, mod=mod):  # a fresh copy each time: the running statistics stay put
            return copy.deepcopy(mod)(t)

        base = call(z)
        scaled = z.clone()
        scaled[:, 2] *= 7.0
        assert torch.allclose(call(scaled), base, atol=1e-9), (norm, p)
        shifted = z.clone()
        shifted[:, 2] += 5.0
        assert torch.allclose(call(shifted), base, atol=1e-9) == (norm != "lp"), (norm, p)
        other = z.clone()
        other[3] += 1.0  # another example moves: example 0's output moves (batch statistics)
        assert not torch.allclose(call(other)[0], base[0]), (norm, p)


def test_lp_centres_and_divides_by_the_average_lp_norm_over_the_batch():
    """Santurkar et al. §3.3: the first moment fixed as in BN, then divided by the average ℓp norm of
    the activations before the mean is subtracted; its output mean is 0 but its variance is not 1."""
    z = torch.randn(10, 3, dtype=torch.float64) + 1.5
    for p, s in (("1", z.abs().mean(0)), ("2", z.pow(2).mean(0).sqrt()), ("inf", z.abs().amax(0))):
        mod = NORMS["lp"](3, False, MLPConfig(norm="lp", norm_p=p, bn_eps=1e-12)).double().train()
        out = mod(z)
        assert torch.allclose(out, (z - z.mean(0)) / s, atol=1e-9), p
        assert torch.allclose(out.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-9)
        assert not torch.allclose(out.var(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=0.05), p
        mod.eval()  # evaluation: the running μ and s (one batch so far, momentum 0.1)
        mu, s_run = 0.1 * z.mean(0), 0.9 + 0.1 * s  # s̄ += α(s − s̄) from s̄ = 1: the average of s, not of s²
        assert torch.allclose(mod(z), (z - mu) / s_run, atol=1e-9), p


def test_layer_norm_is_per_example():
    """Each example normalised over all of its own units: scaling/shifting one example's units moves
    nothing, other examples never matter, and training and evaluation are the same function."""
    model = mlp("layer", bn_eps=1e-12)  # ε breaks the invariance by ε/σ²
    x = torch.randn(12, 6, dtype=torch.float64)
    z = model.blocks.h1.affine(x)
    ln = model.blocks.h1.norm
    base = ln(z)
    moved = z.clone()
    moved[4] = moved[4] * 5 + 2
    assert torch.allclose(ln(moved), base, atol=1e-6)
    assert torch.allclose(ln(z[:1]), base[:1]) and torch.allclose(model.eval()(x[:1]), model.train()(x)[:1])
    one = z.clone()
    one[:, 0] *= 5  # one unit alone is not an invariance of LayerNorm
    assert not torch.allclose(ln(one), base, atol=1e-3)


def test_layer_norm_on_a_conv_block_is_over_channels_height_and_width():
    torch.manual_seed(0)
    model = build_model(CNNConfig(channels=[4], widths=[], norm="layer"), (3, 6, 6), 2)
    ln = model.blocks.c1.norm
    z = torch.randn(3, 4, 6, 6)
    out = ln(z)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.var(dim=(1, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)


def test_group_norm_is_per_group_of_one_example():
    torch.manual_seed(0)
    mod = NORMS["group"](6, True, CNNConfig(norm="group", norm_groups=3, bn_eps=1e-12)).double()
    assert mod.num_groups == 3
    z = torch.randn(4, 6, 5, 5, dtype=torch.float64)
    base = mod(z)
    moved = z.clone()
    moved[1, 2:4] = moved[1, 2:4] * 4 - 1  # the second group (channels 2, 3) of example 1
    assert torch.allclose(mod(moved), base, atol=1e-6)
    alone = z.clone()
    alone[1, 2] *= 4  # one channel of a group: not an invariance
    assert not torch.allclose(mod(alone), base, atol=1e-3)
    assert torch.allclose(mod(z[1:2]), base[1:2])  # no batch statistics
    # the default 32 groups is capped at a block's channels
    assert NORMS["group"](16, True, CNNConfig(norm="group")).num_groups == 16


def test_weight_norm_is_invariant_to_the_scale_of_v_and_is_g_v_over_norm_v():
    model = mlp("weight")
    x = torch.randn(7, 6, dtype=torch.float64)
    h1 = model.blocks.h1
    with torch.no_grad():
        h1.norm.weight.uniform_(0.5, 2), h1.norm.bias.uniform_(-1, 1)
    v = h1.affine.weight.detach()
    w = h1.norm.weight.detach()[:, None] * v / v.norm(dim=1, keepdim=True)
    assert torch.allclose(block_out(model, x), F.linear(x, w, h1.norm.bias.detach()), atol=1e-12)
    base = model(x)
    with torch.no_grad():
        h1.affine.weight.mul_(torch.linspace(0.1, 9, 8, dtype=torch.float64)[:, None])  # every row by its own c
    assert torch.allclose(model(x), base, atol=1e-12)
    # g and b are the layer's normaliser parameters (grad_ics's `_with_bn`, weights' γ and β)
    assert model.param_layers()["h1"][1] == ["blocks.h1.norm.weight", "blocks.h1.norm.bias"]
    assert model.blocks.h1.norm.weight.grad is None and "affine" not in dict(model.blocks.h1.norm.named_modules())


def test_batch_renorm_equals_bn_while_r_and_d_are_clamped_to_1_and_0():
    """r_max = 1, d_max = 0 (the warm-up's start) is plain BN in training: the same outputs, gradients
    and running means, step after step. The running σ differs by definition: Ioffe's Alg. 1 averages
    σ_B, BN averages unbiased variances (tests/test_batch_renorm.py checks Alg. 1's)."""
    torch.manual_seed(0)
    bn = build_model(MLPConfig(widths=[10, 10]), (6,), 3).double()
    torch.manual_seed(0)
    rn = build_model(MLPConfig(widths=[10, 10], norm="batch_renorm", renorm_start=10_000), (6,), 3).double()
    opt_a, opt_b = torch.optim.SGD(bn.parameters(), lr=0.5), torch.optim.SGD(rn.parameters(), lr=0.5)
    gen = torch.Generator().manual_seed(2)
    for _ in range(5):
        x, y = torch.randn(4, 6, generator=gen, dtype=torch.float64), torch.randint(0, 3, (4,), generator=gen)
        la, lb = F.cross_entropy(bn(x), y), F.cross_entropy(rn(x), y)
        assert torch.allclose(la, lb, atol=1e-12)
        for o, l in ((opt_a, la), (opt_b, lb)):
            o.zero_grad(), l.backward(), o.step()
    for k, v in bn.state_dict().items():
        same = torch.allclose(v.double(), rn.state_dict()[k].double(), atol=1e-10)
        assert same != k.endswith("running_var"), k


def test_batch_renorm_differs_from_bn_with_a_small_batch_once_r_and_d_open():
    """Open (r_max = 3, d_max = 5 from step 0) and with a batch of 2, whose statistics are far from the
    running ones, the training output uses the running statistics (unclipped: y = γ(x − μ)/σ + β)."""
    torch.manual_seed(0)
    cfg = MLPConfig(norm="batch_renorm", renorm_start=0, renorm_ramp=0, bn_momentum=0.1)
    rn = NORMS["batch_renorm"](3, False, cfg).double()
    bn = NORMS["batch"](3, False, cfg).double()
    with torch.no_grad():
        for m in (rn, bn):
            m.running_mean.copy_(torch.tensor([0.5, -0.2, 0.1])), m.running_var.copy_(torch.tensor([0.2, 0.3, 0.25]))
    z = torch.tensor([[0.3, 0.1, -0.4], [1.0, -0.5, 0.2]], dtype=torch.float64)
    mu, sd = rn.running_mean.clone(), torch.sqrt(rn.running_var + rn.eps)
    out_rn, out_bn = rn.train()(z), bn.train()(z)
    assert not torch.allclose(out_rn, out_bn, atol=1e-3)
    assert torch.allclose(out_rn, (z - mu) / sd, atol=1e-9)  # γ = 1, β = 0, r and d inside their limits
    assert int(rn.num_batches_tracked) == 1 and torch.allclose(rn.running_mean, bn.running_mean)


def test_batch_renorm_warm_up_schedule():
    rn = NORMS["batch_renorm"](2, False, MLPConfig(renorm_r_max=3, renorm_d_max=5, renorm_start=10, renorm_ramp=20))
    assert rn.limits(0) == (1, 0) and rn.limits(10) == (1, 0)
    assert rn.limits(20) == pytest.approx((2, 2.5)) and rn.limits(30) == (3, 5) and rn.limits(10_000) == (3, 5)


@pytest.mark.parametrize("norm", names(eval_mode="running"))
def test_eval_mode_uses_running_statistics_per_example(norm):
    model = mlp(norm)
    x = torch.randn(20, 6, dtype=torch.float64)
    for _ in range(3):
        model(x)  # training forwards move the running statistics
    model.eval()
    assert torch.allclose(model(x[:1]), model(x)[:1])  # nothing from the batch
    assert not torch.allclose(model.train()(x)[:1], model.eval()(x)[:1], atol=1e-6)


@pytest.mark.parametrize("norm", names(eval_mode="same"))
def test_eval_mode_same_is_the_training_function(norm):
    model = mlp(norm)
    x = torch.randn(20, 6, dtype=torch.float64)
    assert torch.equal(model.train()(x), model.eval()(x)) and torch.allclose(model(x[:1]), model(x)[:1])


@pytest.mark.parametrize("norm", invariant())
def test_declared_invariance_holds(norm):
    """Scaling each invariant group of rows of the affine weights by its own c > 0 leaves the network's
    function unchanged where the declaration says exact, and its gradient orthogonal to each group
    (⟨w, ∇w⟩ = 0) everywhere it declares an invariance."""
    model = mlp(norm, bn_eps=1e-12).train()
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 3, (16,))
    groups = scale_invariant_weights(model)
    assert len(groups) == 2  # both hidden layers' weights
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        for name, n in groups.items():
            w = dict(scaled.named_parameters())[name]
            c = torch.linspace(0.3, 4, n, dtype=torch.float64).repeat_interleave(w.shape[0] // n)
            w.mul_(c.view((-1,) + (1,) * (w.dim() - 1)))
    if declared()[norm].exact:
        assert torch.allclose(copy.deepcopy(model)(x), scaled(x), atol=1e-6)
    F.cross_entropy(copy.deepcopy(model)(x), y).backward()
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    params = dict(model.named_parameters())
    for name, n in groups.items():
        w, g = params[name].detach(), params[name].grad
        dots = (w * g).reshape(n, -1).sum(dim=1)
        assert torch.allclose(dots, torch.zeros(n, dtype=torch.float64), atol=1e-8), (norm, name)


def test_scale_invariant_weights_per_norm():
    """What weights (effective LR) and landscape (si/ measures) treat as scale-invariant."""
    for norm, expected, exact in (
        ("none", {}, {}),
        ("batch", {"h1": 8, "h2": 8}, None),
        ("lp", {"h1": 8, "h2": 8}, None),
        ("weight", {"h1": 8, "h2": 8}, None),
        ("layer", {"h1": 1, "h2": 1}, None),
        ("group", {"h1": 2, "h2": 2}, None),
        ("batch_renorm", {"h1": 8, "h2": 8}, {}),
    ):
        model = mlp(norm)
        got = {k.split(".")[1]: v for k, v in scale_invariant_weights(model).items()}
        assert got == expected, norm
        got = {k.split(".")[1]: v for k, v in scale_invariant_weights(model, exact_only=True).items()}
        assert got == (expected if exact is None else exact), norm


@pytest.mark.parametrize(
    "norm",
    names(exact=True, invariance="layer")
    + names(exact=True, invariance="group")
    + [n for n in names(exact=True, invariance="row") if n != "batch"],
)  # BN: test_measurements
def test_scale_invariant_landscape_does_not_move_when_invariant_groups_are_rescaled(norm):
    """The landscape's si/ measures sit at the canonical point of each normaliser's own symmetry: under
    LayerNorm all of W rescaled together, under GroupNorm each group's rows, under weight norm and ℓp
    each row — none of which changes the function — leave them unchanged."""
    from test_measurements import landscape_once

    model = mlp(norm, bn_eps=1e-12)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 6, generator=gen).double(), torch.randint(0, 3, (32,), generator=gen)
    measure = lambda m: landscape_once(m, x, y)  # noqa: E731
    before = measure(model)
    scaled = copy.deepcopy(model)
    groups = scale_invariant_weights(model)["blocks.h1.affine.weight"]
    c = torch.linspace(0.3, 4, groups, dtype=torch.float64).repeat_interleave(8 // groups)[:, None]
    with torch.no_grad():
        for name in ("h1", "h2"):
            scaled.blocks[name].affine.weight.mul_(c)
    with torch.no_grad():
        assert torch.allclose(model(x), scaled(x), atol=1e-6)
    after = measure(scaled)
    for k in ("loss_range", "grad_change_rel", "beta"):
        assert after[f"landscape/si/{k}"] == pytest.approx(before[f"landscape/si/{k}"], rel=1e-5), (norm, k)


def test_weights_reports_effective_lr_where_there_is_scale_invariance():
    from test_measurements import context

    from ics.config import WeightsConfig
    from ics.instruments.base import Batch
    from ics.instruments.weights import WeightNorms

    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 3, (16,))
    for norm in ("none", "layer", "group", "weight", "batch_renorm"):
        model = mlp(norm)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        inst = WeightNorms(WeightsConfig(enabled=True, every=1), context(model, opt, loss_fn=F.cross_entropy))
        inst.observe_batch(Batch(0, x, y))
        opt.zero_grad(), F.cross_entropy(model(x), y).backward()
        w = model.blocks.h1.affine.weight.detach().clone()
        opt.step()
        inst.measure(1)
        meta = inst.meta()["eff_lr"]
        assert "eff_lr_median" not in str([k for k in inst.series if "/out/" in k]) and meta["out"].startswith("none")
        if norm == "none":
            assert not [k for k in inst.series if k.endswith("eff_lr_median")] and meta["h1"].startswith("none")
            continue
        key = {"layer": "eff_lr_layer", "group": "eff_lr_group_median"}.get(norm, "eff_lr_median")  # units differ
        got = inst.series[f"weights/h1/{key}"][-1]
        assert norm not in ("layer", "group") or "weights/h1/eff_lr_median" not in inst.series
        expected = {
            "layer": 0.5 / w.norm() ** 2,
            "group": torch.quantile(0.5 / w.reshape(2, -1).norm(dim=1) ** 2, 0.5),
        }.get(norm, torch.quantile(0.5 / w.norm(dim=1) ** 2, 0.5))
        assert got == pytest.approx(float(expected), rel=1e-5), norm
        assert meta["h1"] == {"layer": "layer", "group": "2 groups"}.get(norm, "row")


@pytest.mark.parametrize("norm", [n for n in names(batch_statistics=False) if n != "none"])
def test_bn_stats_and_bn_noise_are_refused_without_batch_statistics(norm):
    from ics.config import BNNoiseConfig, BNStatsConfig
    from ics.instruments.bn_noise import BNNoise
    from ics.instruments.bn_stats import BNInferenceStatistics

    cfg = Config(model=MLPConfig(norm=norm, norm_groups=4))
    with torch.device("meta"):
        model = build_model(cfg.model, (784,), 10)
    for cls, section in ((BNInferenceStatistics, BNStatsConfig(enabled=True)), (BNNoise, BNNoiseConfig(enabled=True))):
        with pytest.raises(
            ConfigError,
            match=f"invalid with model.norm={norm}: it needs a normaliser with batch "
            "statistics; allowed: model.norm=batch, batch_renorm, lp",
        ):
            cls.check(section, cfg, model, None)
    for ok in names(batch_statistics=True):
        c = Config(model=MLPConfig(norm=ok))
        with torch.device("meta"):
            m = build_model(c.model, (784,), 10)
        BNInferenceStatistics.check(BNStatsConfig(enabled=True), c, m, None)
        BNNoise.check(BNNoiseConfig(enabled=True), c, m, None)


def test_bn_noise_reads_what_lp_subtracts_and_divides_by():
    from ics.models.norms import moments

    mod = NORMS["lp"](3, False, MLPConfig(norm="lp", norm_p="1"))
    z = torch.randn(50, 3) + 2
    (mu_b, s_b), (mu_pop, s_pop) = moments(mod, z)
    assert torch.allclose(mu_b, z.mean(0)) and torch.allclose(s_b, z.abs().mean(0), atol=1e-4)
    assert torch.equal(mu_pop, torch.zeros(3)) and torch.allclose(s_pop, torch.ones(3), atol=1e-4)  # (0, 1) at start


def test_group_refusals_are_one_line():
    for cfg, msg in (
        (MLPConfig(norm="group"), "model.norm_groups=32 is invalid for a block of 100 units"),
        (MLPConfig(norm="group", norm_groups=100, widths=[100]), "a group needs >= 2 units"),
        (CNNConfig(norm="group", norm_groups=3), "model.norm_groups=3 is invalid for a block of 32 channels"),
    ):
        with pytest.raises(ConfigError, match=msg) as e:
            with torch.device("meta"):
                build_model(cfg, (3, 32, 32) if cfg.name == "cnn" else (784,), 10)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("norm", beyond_bn())
def test_resume_is_bit_identical(mnist_root, norm):
    """A run stopped at a checkpoint and continued from it (through torch.save/load, as on disk) ends
    bit-identical to one that never stopped: Batch Renorm's running statistics and step counter (its
    warm-up) travel in the checkpoint."""
    from ics.data import load_data
    from ics.train import build_trainer
    from ics.train.hooks import Checkpoint

    cfg = Config(
        model=MLPConfig(widths=[12, 12], norm=norm, norm_groups=3, renorm_start=5, renorm_ramp=10),
        data=MNISTConfig(root=str(mnist_root)),
        optim=MomentumConfig(lr=0.05),
        trainer=TrainerConfig(
            steps=30, batch_size=8, eval_every=10, log_every=5, checkpoint_every=10, threads=1, progress=False
        ),
        probe=ProbeConfig(size=40, every=5),
    )
    data = load_data(cfg.data)
    saved = {}
    orig = Checkpoint.save

    def keep(self, trainer):
        if trainer.step == 20:
            buf = io.BytesIO()
            torch.save(trainer.state_dict(), buf)
            saved["state"] = buf.getvalue()
        orig(self, trainer)

    Checkpoint.save = keep
    try:
        whole = build_trainer(cfg, None, data=data)
        whole.fit()
    finally:
        Checkpoint.save = orig
    resumed = build_trainer(cfg, None, data=data)
    resumed.load_state_dict(torch.load(io.BytesIO(saved["state"]), weights_only=False))
    resumed.fit()
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    if norm == "batch_renorm":
        assert int(a["blocks.h1.norm.num_batches_tracked"]) == 30
    assert whole.history == resumed.history


@pytest.mark.parametrize("norm", list(declared()))
def test_batch_of_one_is_refused_for_every_batch_statistics_norm(norm):
    """Read from the declaration: refused where it normalises by the batch; elsewhere one example is a batch."""
    from ics.config import validate

    cfg = Config(model=MLPConfig(norm=norm, norm_groups=1), trainer=TrainerConfig(batch_size=1))
    if declared()[norm].batch_statistics:
        with pytest.raises(ConfigError, match=f"trainer.batch_size=1 is invalid: must be >= 2 with model.norm={norm}"):
            validate(cfg)
    else:
        validate(cfg)


@pytest.mark.parametrize("norm", [n for n, d in declared().items() if d.keys])
def test_keys_of_every_normaliser_are_schema_keys_with_a_note_when_unused(norm):
    """Each key a normaliser declares is a key of every model kind (its user-facing name), documented as
    its own, and an override of it where no job uses that normaliser gets the pre-run note."""
    import dataclasses

    from ics_cli.preflight import unused_norm_keys

    from ics.config import KINDS

    other = next(n for n in declared() if n != norm)
    for key in declared()[norm].keys:
        for cls in KINDS["model"].values():
            f = next(f for f in dataclasses.fields(cls) if f.name == key)
            assert f.metadata["doc"].startswith(f"norm={norm}: ")
        assert unused_norm_keys([[f"model.norm={other}", f"model.{key}=1"]], {other}) == [
            f"model.{key} has no effect: it applies to model.norm={norm} (this run uses {other})"
        ]
        assert unused_norm_keys([[f"model.norm={norm}", f"model.{key}=1"]], {norm}) == []


@pytest.mark.parametrize(
    "given, canonical", [("1.0", "1"), (2.0, "2"), ("Infinity", "inf"), ("inf", "inf"), ("2", "2")]
)
def test_norm_p_written_as_a_number_is_taken(given, canonical):
    from ics.config.convert import validate

    cfg = Config(model=MLPConfig(norm="lp", norm_p=given))
    validate(cfg)
    assert cfg.model.norm_p == canonical
    with pytest.raises(ConfigError, match=r"model.norm_p='3' is invalid: allowed: 1, 2, inf"):
        validate(Config(model=MLPConfig(norm="lp", norm_p="3")))


def test_keys_of_a_normaliser_no_job_uses_get_a_note():
    """model.norm_groups with model.norm=batch changes nothing (and would name the run): said, not silent."""
    from ics_cli.preflight import unused_norm_keys

    assert unused_norm_keys([["model.norm=batch", "model.norm_groups=4"]], {"batch"}) == [
        "model.norm_groups has no effect: it applies to model.norm=group (this run uses batch)"
    ]
    notes = unused_norm_keys(
        [
            ["model.norm=batch", "model.renorm_r_max=2", "model.norm_p=inf"],
            ["model.norm=layer", "model.renorm_r_max=2", "model.norm_p=inf"],
        ],
        {"batch", "layer"},
    )
    assert notes == [
        "model.renorm_r_max has no effect: it applies to model.norm=batch_renorm (these jobs use batch, layer)",
        "model.norm_p has no effect: it applies to model.norm=lp (these jobs use batch, layer)",
    ]
    # a sweep where one job uses the key: no note
    assert (
        unused_norm_keys(
            [["model.norm=batch", "model.norm_groups=4"], ["model.norm=group", "model.norm_groups=4"]],
            {"batch", "group"},
        )
        == []
    )


def test_a_scale_invariant_landscape_where_no_weight_is_invariant_gets_a_note():
    """landscape.scale_invariant with model.norm=batch_renorm (or none) records no si measures: said at launch."""
    from ics_cli.preflight import no_scale_invariance

    from ics.models.norms import exactly_invariant

    invariant_ = {n for n in NORMS.keys() if exactly_invariant(n)}
    assert {"batch", "layer", "group", "weight", "lp"} <= invariant_ and not {"none", "batch_renorm"} & invariant_
    assert no_scale_invariance({"batch", "layer"}) == []
    assert no_scale_invariance(set(NORMS.keys())) == []  # a study comparing both kinds asks for exactly that
    [note] = no_scale_invariance({"none", "batch_renorm"})
    assert note.startswith("landscape.scale_invariant=true records nothing with model.norm=batch_renorm, none: ")
