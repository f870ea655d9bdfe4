"""Model structure: shapes, where BatchNorm sits, biases, probe points and initialisation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import ics  # noqa: F401  (fills the registries)
from ics.config import CNNConfig, MLPConfig, ModelConfig
from ics.models import Net, build_model

DATA = {
    "mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
}
ACT_CLS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)
# small CNN so the 36 shape combinations stay fast
SMALL_CNN = dict(channels=[4, 8], widths=[16])


def model_cfg(name: str, **kw) -> ModelConfig:
    if name == "cnn":
        return CNNConfig(**{**SMALL_CNN, "init": "kaiming", **kw})
    assert name == "mlp", name
    return MLPConfig(**kw)


def build(name="mlp", data="mnist", seed=0, **kw) -> Net:
    torch.manual_seed(seed)
    in_shape, k = DATA[data]
    return build_model(model_cfg(name, **kw), in_shape, k)


def blocks(net: Net):
    return list(net.blocks.items())


# ----------------------------------------------------------------------------------------------
# shapes


@pytest.mark.parametrize("data", sorted(DATA))
@pytest.mark.parametrize("norm", ["none", "batch"])
@pytest.mark.parametrize("activation", sorted(ACT_CLS))
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_output_shapes(name, activation, norm, data):
    net = build(name, data, activation=activation, norm=norm)
    in_shape, k = DATA[data]
    x = torch.randn(5, *in_shape)
    net.train()
    out = net(x)
    assert out.shape == (5, k)
    assert torch.isfinite(out).all()
    out.sum().backward()  # the graph is connected: every parameter gets a gradient
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
    net.eval()
    with torch.no_grad():
        assert net(x[:1]).shape == (1, k)
    # every block uses the configured nonlinearity, and norm=batch puts a BN in every block
    for bname, b in blocks(net):
        assert isinstance(b.act, ACT_CLS[activation]), bname
        assert (b.norm is not None) == (norm == "batch"), bname
        if norm == "batch":
            expected = nn.BatchNorm2d if isinstance(b.affine, nn.Conv2d) else nn.BatchNorm1d
            assert type(b.norm) is expected, bname
            assert b.norm.num_features == (
                b.affine.out_channels if isinstance(b.affine, nn.Conv2d) else b.affine.out_features
            )


def test_mlp_layout_is_fig1():
    net = build("mlp", widths=[100, 100, 100])
    layers = [b.affine for _, b in blocks(net)] + [net.out]
    assert [(l.in_features, l.out_features) for l in layers] == [(784, 100), (100, 100), (100, 100), (100, 10)]
    assert [n for n, _ in blocks(net)] == ["h1", "h2", "h3"]


def test_cnn_layout():
    net = build("cnn", "cifar10", channels=[8, 16, 32], widths=[64], pool="max")
    names = [n for n, _ in blocks(net)]
    assert names == ["c1", "c2", "c3", "h1"]
    convs = [b.affine for n, b in blocks(net) if n.startswith("c")]
    assert all(isinstance(c, nn.Conv2d) for c in convs)
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 8), (8, 16), (16, 32)]
    assert all(isinstance(b.pool, nn.MaxPool2d) for n, b in blocks(net) if n.startswith("c"))
    # 32 -> 16 -> 8 -> 4 after three 2x2 pools: the head sees 32 * 4 * 4 features
    assert net.blocks["h1"].affine.in_features == 32 * 4 * 4
    assert net.out.in_features == 64 and net.out.out_features == 10


# ----------------------------------------------------------------------------------------------
# BN placement: affine -> BN -> activation


def _record_block_calls(net: Net):
    calls = []  # (block, part, input, output)
    handles = []
    for bname, b in blocks(net):
        for part in ("affine", "norm", "act", "pool"):
            mod = getattr(b, part)
            if mod is None:
                continue
            handles.append(
                mod.register_forward_hook(
                    lambda m, args, out, bname=bname, part=part: calls.append((bname, part, args[0], out))
                )
            )
    return calls, handles


@pytest.mark.parametrize("name,data", [("mlp", "mnist"), ("cnn", "cifar10")])
def test_bn_sits_between_affine_and_activation(name, data):
    net = build(name, data, norm="batch", activation="sigmoid")
    calls, handles = _record_block_calls(net)
    net.train()
    net(torch.randn(8, *DATA[data][0]))
    for h in handles:
        h.remove()
    for bname, b in blocks(net):
        mine = [(part, x, y) for (bn, part, x, y) in calls if bn == bname]
        parts = [p for p, _, _ in mine]
        expected = ["affine", "norm", "act"] + (["pool"] if b.pool is not None else [])
        assert parts == expected, (bname, parts)
        (_, _, affine_out), (_, bn_in, bn_out), (_, act_in, _) = mine[:3]
        assert bn_in is affine_out, f"{bname}: BN's input is not the affine output"
        assert act_in is bn_out, f"{bname}: the activation's input is not BN's output"
        assert isinstance(b.norm, BN_TYPES)


def test_no_bn_means_activation_reads_the_affine_output():
    net = build("mlp", norm="none", activation="tanh")
    calls, handles = _record_block_calls(net)
    net(torch.randn(4, 1, 28, 28))
    for h in handles:
        h.remove()
    for bname, _ in blocks(net):
        mine = [(part, x, y) for (bn, part, x, y) in calls if bn == bname]
        assert [p for p, _, _ in mine] == ["affine", "act"]
        assert mine[1][1] is mine[0][2]


@pytest.mark.parametrize("name,data", [("mlp", "mnist"), ("cnn", "cifar10")])
def test_bias_only_without_bn(name, data):
    with_bn = build(name, data, norm="batch")
    without = build(name, data, norm="none")
    for bname, b in blocks(with_bn):
        assert b.affine.bias is None, f"{bname}: a layer feeding BN must have no bias (BN's beta plays its role)"
        assert b.norm.affine and b.norm.bias is not None  # beta
    for bname, b in blocks(without):
        assert b.affine.bias is not None, f"{bname}: without BN the affine layer needs its bias"
    for net in (with_bn, without):
        assert isinstance(net.out, nn.Linear) and net.out.bias is not None


def test_bn_hyperparameters_are_passed_through():
    net = build("mlp", norm="batch", bn_eps=1e-3, bn_momentum=0.5)
    for _, b in blocks(net):
        assert b.norm.eps == pytest.approx(1e-3) and b.norm.momentum == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------
# probe points


def test_mlp_probe_point_names():
    net = build("mlp", widths=[100, 100, 100])
    assert list(net.probe_points()) == ["h1.in", "h1.pre_act", "h2.in", "h2.pre_act", "h3.in", "h3.pre_act", "out.in"]


def test_cnn_probe_point_names():
    net = build("cnn", "cifar10", channels=[4, 8, 16], widths=[32])
    assert list(net.probe_points()) == [
        "c1.in",
        "c1.pre_act",
        "c2.in",
        "c2.pre_act",
        "c3.in",
        "c3.pre_act",
        "h1.in",
        "h1.pre_act",
        "out.in",
    ]


def _capture_points(net: Net, x: torch.Tensor):
    got, handles = {}, []
    for pname, (mod, kind) in net.probe_points().items():
        if kind == "input":
            handles.append(mod.register_forward_pre_hook(lambda m, args, n=pname: got.__setitem__(n, args[0])))
        else:
            assert kind == "output"
            handles.append(mod.register_forward_hook(lambda m, args, out, n=pname: got.__setitem__(n, out)))
    acts, act_handles = {}, []
    for bname, b in blocks(net):
        act_handles.append(b.act.register_forward_pre_hook(lambda m, args, n=bname: acts.__setitem__(n, args[0])))
    net(x)
    for h in handles + act_handles:
        h.remove()
    return got, acts


@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize("name,data", [("mlp", "mnist"), ("cnn", "cifar10")])
def test_pre_act_is_the_nonlinearity_input(name, data, norm):
    """`<block>.pre_act` is what the nonlinearity sees: BN's output with BN, the affine output without."""
    net = build(name, data, norm=norm)
    x = torch.randn(6, *DATA[data][0])
    got, acts = _capture_points(net, x)
    points = net.probe_points()
    assert set(got) == set(points)
    for bname, b in blocks(net):
        mod, kind = points[f"{bname}.pre_act"]
        assert kind == "output"
        assert mod is (b.norm if norm == "batch" else b.affine)
        assert got[f"{bname}.pre_act"] is acts[bname]
        assert points[f"{bname}.in"] == (b.affine, "input")
    # out.in is the input to the output layer: the last block's activation output, flattened
    assert got["out.in"].shape == (6, net.out.in_features)
    assert points["out.in"] == (net.out, "input")


def test_pre_act_with_bn_is_normalised_in_training_mode():
    net = build("mlp", norm="batch")
    net.train()
    got, _ = _capture_points(net, torch.randn(64, 1, 28, 28))
    z = got["h1.pre_act"]  # gamma = 1, beta = 0 at init: per-unit mean 0, std 1
    assert z.mean(0).abs().max() < 1e-4
    assert (z.std(0, unbiased=False) - 1).abs().max() < 1e-2


def _affine(net: Net):
    return [b.affine for _, b in blocks(net)] + [net.out]


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_gaussian_init_std_and_zero_bias(norm):
    net = build("mlp", norm=norm, init="gaussian", init_std=0.1, widths=[100, 100, 100])
    first = net.blocks["h1"].affine  # 784 x 100: 78,400 draws, std error ~3e-4
    assert first.weight.shape == (100, 784)
    assert first.weight.std().item() == pytest.approx(0.1, abs=0.01)
    assert first.weight.std().item() == pytest.approx(0.1, abs=0.003)
    assert abs(first.weight.mean().item()) < 0.003
    for layer in _affine(net):
        assert layer.weight.std().item() == pytest.approx(0.1, rel=0.25)
        if layer.bias is not None:
            assert torch.count_nonzero(layer.bias) == 0
    assert torch.count_nonzero(net.out.bias) == 0


def test_gaussian_init_std_is_configurable():
    net = build("mlp", init="gaussian", init_std=0.02)
    assert net.blocks["h1"].affine.weight.std().item() == pytest.approx(0.02, abs=0.001)


def test_init_is_seeded():
    a, b, c = build("mlp", seed=3), build("mlp", seed=3), build("mlp", seed=4)
    assert torch.equal(a.blocks["h1"].affine.weight, b.blocks["h1"].affine.weight)
    assert not torch.equal(a.blocks["h1"].affine.weight, c.blocks["h1"].affine.weight)


@pytest.mark.parametrize("init", ["default", "xavier", "kaiming", "gaussian"])
@pytest.mark.parametrize("name,data", [("mlp", "mnist"), ("cnn", "cifar10")])
def test_every_init_builds(name, data, init):
    net = build(name, data, init=init, activation="relu", norm="none")
    for layer in _affine(net):
        assert torch.isfinite(layer.weight).all()
        assert layer.weight.std().item() > 0
    out = net(torch.randn(3, *DATA[data][0]))
    assert torch.isfinite(out).all()


def test_kaiming_and_xavier_scales():
    net = build("mlp", init="kaiming", activation="relu", norm="none", widths=[200])
    w = net.blocks["h1"].affine.weight  # fan_in 784, relu gain sqrt(2)
    assert w.std().item() == pytest.approx(math.sqrt(2 / 784), rel=0.05)
    assert torch.count_nonzero(net.blocks["h1"].affine.bias) == 0
    net = build("mlp", init="xavier", activation="tanh", norm="none", widths=[200])
    w = net.blocks["h1"].affine.weight
    gain = nn.init.calculate_gain("tanh")
    assert w.std().item() == pytest.approx(gain * math.sqrt(2 / (784 + 200)), rel=0.05)


def test_default_init_is_pytorch_uniform():
    net = build("mlp", init="default", norm="none", widths=[100])
    w = net.blocks["h1"].affine.weight
    bound = 1 / math.sqrt(784)  # kaiming_uniform(a=sqrt(5)) on a Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert w.abs().max().item() <= bound + 1e-6
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_dropout_is_training_only_and_has_its_own_resumable_stream():
    """model.dropout: inverted dropout on each hidden block's output, training mode only; its masks
    come from the layer's own generator (never the global RNG), which a state_dict carries."""
    from ics.config import MLPConfig
    from ics.models import Dropout, build_model, noise_off

    torch.manual_seed(0)
    plain = build_model(MLPConfig(widths=[50, 50]), (8,), 3)
    torch.manual_seed(0)
    dropped = build_model(MLPConfig(widths=[50, 50], dropout=0.5), (8,), 3, seed=1)
    assert [type(b.dropout) for b in dropped.blocks.values()] == [Dropout, Dropout] and plain.blocks.h1.dropout is None
    x = torch.randn(64, 8)
    plain.eval(), dropped.eval()
    assert torch.equal(plain(x), dropped(x))  # evaluation: the identity
    plain.train(), dropped.train()
    rng = torch.get_rng_state()
    with noise_off(dropped):  # a measurement pass: no masks drawn
        assert torch.equal(dropped(x), plain(x))
    state = copy.deepcopy(dropped.state_dict())
    a, b = dropped(x), dropped(x)
    assert not torch.equal(a, b) and not torch.equal(a, plain(x))
    assert torch.equal(torch.get_rng_state(), rng), "dropout drew from the global RNG"
    dropped.load_state_dict(state)
    assert torch.equal(dropped(x), a)  # the generator's position travels with the weights
    h = dropped.blocks.h1
    kept = (h.dropout(torch.ones(4000, 50)) != 0).float().mean()
    assert 0.45 < kept < 0.55 and h.dropout(torch.ones(10, 5)).max() == 2.0  # kept 1 - p, scaled 1/(1 - p)
