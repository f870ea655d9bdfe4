"""Config composition (Hydra Compose API over the ConfigStore the CLI fills from the dataclasses)
and value validation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hydra import compose
from ics_cli.configdirs import shipped_dir, shipped_studies
from ics_cli.preflight import use

import ics  # noqa: F401  (fills the registries)
from ics.config import (
    KINDS,
    Config,
    ConfigError,
    MLPConfig,
    MomentumConfig,
    ProbeConfig,
    TrainerConfig,
    from_dict,
    to_dict,
    validate,
)
from ics.models import build_model
from ics.registry import DATASETS

GROUPS = ("model", "data", "optim", "trainer", "probe", "experiment")
# every option configs/ (and experiments/) must provide (a missing one is a config-folder bug)
EXPECTED_OPTIONS = {
    "model": {
        "mlp",
        "cnn",
        "dln",
        "mlp_sigmoid_bn",
        "mlp_sigmoid_nobn",
        "mlp_relu_bn",
        "mlp_relu_nobn",
        "cnn_relu_bn",
        "cnn_relu_nobn",
        "cnn_sigmoid_bn",
        "cnn_sigmoid_nobn",
        "dln_bn",
        "dln_nobn",
    }
    | {p.stem for p in (shipped_dir() / "model").glob("*.yaml")},  # a normaliser's mlp_<name>.yaml too
    "data": set(DATASETS),  # every registered data set has configs/data/<name>.yaml
    "optim": {"sgd", "momentum", "adam"},
    "trainer": {"default", "smoke"},
    "probe": {"default", "all", "off"},
    "experiment": set(shipped_studies()),
}
DATA_SHAPES = {  # data option -> (in_shape, num_classes) the real data set's files have (a generated one: its spec)
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "image_folder": ((3, 32, 32), 10),
}
# overrides an option needs to be complete (image_folder has a mandatory `???` path)
EXTRA = {("data", "image_folder"): ["data.image_folder=/nonexistent/folder"]}


@pytest.fixture
def hydra_ctx():
    """A Compose API session on configs/ (primary config "config") and the ConfigStore."""
    from hydra.core.global_hydra import GlobalHydra

    use()
    return GlobalHydra.instance().config_loader()


def _compose(overrides=()):
    return compose(config_name="config", overrides=list(overrides))


def _options():
    return [(g, o) for g in GROUPS for o in sorted(EXPECTED_OPTIONS[g])]


# ----------------------------------------------------------------------------------------------
# composition


def test_group_options_are_discoverable(hydra_ctx):
    for group in GROUPS:
        assert set(hydra_ctx.get_group_options(group)) >= EXPECTED_OPTIONS[group], group


def test_defaults_are_the_fig1_setup(hydra_ctx):
    cfg = from_dict(_compose())
    validate(cfg)
    assert isinstance(cfg, Config)
    assert cfg.model == MLPConfig(
        name="mlp", widths=[100, 100, 100], activation="sigmoid", norm="batch", init="gaussian", init_std=0.1
    )
    assert cfg.data.name == "mnist"
    assert cfg.optim.name == "sgd" and cfg.optim.lr == 1.0
    assert cfg.trainer.batch_size == 60 and cfg.trainer.steps == 50_000
    assert cfg.probe.enabled and cfg.probe.points == ["*.pre_act"]
    # the library's own defaults are the same run: Config() needs no Hydra
    assert to_dict(Config()) == to_dict(cfg)


@pytest.mark.parametrize("group,option", _options())
def test_every_option_composes_converts_and_validates(hydra_ctx, group, option):
    overrides = [f"{group}={option}", *EXTRA.get((group, option), [])]
    raw = _compose(overrides)
    cfg = from_dict(raw)
    assert isinstance(cfg, Config)
    for section in ("model", "data", "optim", "trainer", "probe"):
        assert dataclasses.is_dataclass(getattr(cfg, section)), section
    validate(cfg)
    if group in ("model", "data", "optim") and option in KINDS[group]:
        assert getattr(cfg, group).name == option
    if group == "probe":
        assert cfg.probe.enabled is (option != "off")
        if option == "all":
            assert cfg.probe.points == ["*"]
    if group == "experiment":
        assert cfg.name == option
    # from_dict drops Hydra's own node, and the config round-trips through a plain dict
    assert "hydra" not in to_dict(cfg)
    assert from_dict(to_dict(cfg)) == cfg


def test_optim_option_values(hydra_ctx):
    assert from_dict(_compose(["optim=adam"])).optim.lr == pytest.approx(0.001)
    mom = from_dict(_compose(["optim=momentum"])).optim
    assert mom.momentum == pytest.approx(0.9) and mom.lr == pytest.approx(0.05)


def test_fig1_experiment_is_a_multirun_over_norm(hydra_ctx):
    raw = compose(config_name="config", overrides=["experiment=fig1"], return_hydra_config=True)
    assert str(raw.hydra.mode) in ("RunMode.MULTIRUN", "MULTIRUN")
    assert raw.hydra.sweeper.params["model.norm"].replace(" ", "") == "none,batch"
    cfg = from_dict(raw)
    validate(cfg)
    assert cfg.model.name == "mlp" and cfg.model.activation == "sigmoid" and cfg.data.name == "mnist"


@pytest.mark.parametrize(
    "override, error, says",
    [
        ("trainer.stepz=5", "ConfigCompositionException", "Could not override 'trainer.stepz'"),
        ("model.widthz=[3]", "ConfigCompositionException", "Could not override 'model.widthz'"),
        ("optim.lr=abc", "ValidationError", "could not be converted to Float"),
        ("trainer.steps=many", "ValidationError", "could not be converted to Integer"),
        ("model.widths=3", "ValidationError", "is not a ListConfig"),
        ("model=foo", "MissingConfigException", "Could not find 'model/foo'"),
    ],
)
def test_schema_rejects_unknown_keys_and_wrong_types(hydra_ctx, override, error, says):
    """The named error, for the named reason: a bare `raises(Exception)` would pass on any crash
    (an import error, a typo in the test). A wrong type is the schema's ValidationError, which Hydra
    wraps in a ConfigCompositionException."""
    from hydra.errors import HydraException

    with pytest.raises(HydraException) as e:
        _compose([override])
    cause = e.value.__cause__ if error == "ValidationError" else e.value
    assert type(cause).__name__ == error, repr(e.value)
    assert says in str(cause), str(cause)


def test_the_schema_rejects_a_key_added_with_plus_when_converted(hydra_ctx):
    # Hydra lets `+key=value` append to any config; the dataclass conversion is what refuses it
    with pytest.raises(ConfigError, match="trainer.stepz is not a config key"):
        from_dict(_compose(["+trainer.stepz=5"]))


# ----------------------------------------------------------------------------------------------
# model x data: every combination builds (no data is loaded)


def generated_shape(cfg: Config):
    """(in_shape, outputs) of a data set that is generated, not read (its reader needs no files); a new data
    set read from files fails here, naming what to add to DATA_SHAPES."""
    from pathlib import Path

    try:
        spec = DATASETS[cfg.data.name](cfg.data, Path("/nonexistent")).spec
    except ConfigError as e:
        raise AssertionError(f"data={cfg.data.name} is read from files: add its shape to DATA_SHAPES ({e})") from None
    return spec.in_shape, spec.out_features


def _combinations():
    """Every model x data x norm. The fast tier builds every model on MNIST and every data set with the
    MLP (each option at least once, both norms), each composed with Hydra; the rest of the matrix is
    slow and joins the model and data sections of those composes (a group's file sets only its own
    section), so that the matrix costs a compose per option, not per pair."""
    for data in sorted(EXPECTED_OPTIONS["data"]):
        for model in sorted(EXPECTED_OPTIONS["model"]):
            for norm in ("none", "batch"):
                marks = [] if data == "mnist" or model == "mlp" else [pytest.mark.slow]
                yield pytest.param(model, data, norm, marks=marks, id=f"{data}-{model}-{norm}")


_SECTIONS: dict = {}  # overrides -> the composed config as a plain dict (Hydra's compose: ~0.3 s each)


def _composed(overrides: tuple) -> dict:
    from omegaconf import OmegaConf

    if overrides not in _SECTIONS:
        c = _compose(overrides)  # without Hydra's own node, whose interpolations resolve only in a job
        _SECTIONS[overrides] = OmegaConf.to_container(
            OmegaConf.masked_copy(c, [k for k in c if k != "hydra"]), resolve=True
        )
    return _SECTIONS[overrides]


@pytest.mark.parametrize("model, data, norm", list(_combinations()))
def test_model_data_combinations_build(hydra_ctx, model, data, norm):
    data_overrides = (f"data={data}", *EXTRA.get(("data", data), []))
    if data == "mnist" or model == "mlp":  # the pair composed together
        raw = _compose([f"model={model}", f"model.norm={norm}", *data_overrides])
    else:  # the model's section of its compose with the data's section of its own
        raw = {**_composed((f"model={model}", f"model.norm={norm}")), "data": _composed(data_overrides)["data"]}
    cfg = from_dict(raw)
    validate(cfg)
    in_shape, num_classes = DATA_SHAPES[data] if data in DATA_SHAPES else generated_shape(cfg)
    torch.manual_seed(0)
    if len(in_shape) != 3 and cfg.model.name == "cnn":  # vectors (gaussian_regression): refused in one line
        with pytest.raises(ConfigError, match="model=cnn needs images"):
            build_model(cfg.model, in_shape, num_classes)
        return
    net = build_model(cfg.model, in_shape, num_classes)
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(2, *in_shape))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


# ----------------------------------------------------------------------------------------------
# validate: one-line errors naming the key and the value


def section(group: str, values: dict):
    """The option dataclass named by values["name"] (the group's default option for a name that is
    not an option, so that validate sees the bad name)."""
    values = dict(values or {})
    default = type(getattr(Config(), group))
    cls = KINDS[group].get(values.get("name"), default) if "name" in values else default
    return cls(**values)


def make_cfg(model=None, optim=None, trainer=None, data=None, probe=None) -> Config:
    return Config(
        model=section("model", model),
        data=section("data", data),
        optim=section("optim", optim),
        trainer=TrainerConfig(**(trainer or {})),
        probe=ProbeConfig(**(probe or {})),
    )


def one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg.strip(), msg
    return msg


def assert_one_line_error(cfg: Config, key: str, value: str) -> str:
    with pytest.raises(ConfigError) as exc:
        validate(cfg)
    msg = one_line(exc)
    assert key in msg, msg
    assert value in msg, msg
    return msg


def test_default_config_is_valid():
    validate(make_cfg())


@pytest.mark.parametrize("lr", [0.0, -1.0, -1e-9])
def test_lr_must_be_positive(lr):
    msg = assert_one_line_error(make_cfg(optim={"lr": lr}), "optim.lr", repr(lr))
    assert "> 0" in msg


@pytest.mark.parametrize("steps", [0, -5])
def test_steps_must_be_positive(steps):
    msg = assert_one_line_error(make_cfg(trainer={"steps": steps}), "trainer.steps", str(steps))
    assert "> 0" in msg


@pytest.mark.parametrize("batch", [1, 0])
def test_batch_below_two_with_batchnorm(batch):
    msg = assert_one_line_error(
        make_cfg(model={"norm": "batch"}, trainer={"batch_size": batch}), "trainer.batch_size", str(batch)
    )
    assert ">= 2" in msg and "norm" in msg


def test_batch_one_is_fine_without_batchnorm():
    validate(make_cfg(model={"norm": "none"}, trainer={"batch_size": 1}))
    assert_one_line_error(make_cfg(model={"norm": "none"}, trainer={"batch_size": 0}), "trainer.batch_size", "0")


def test_batch_larger_than_training_set(mnist_root):
    from ics.train import check_runnable

    small_probe = {"size": 100}  # the tiny test split has 200 examples
    cfg = make_cfg(trainer={"batch_size": 601}, data={"root": str(mnist_root)}, probe=small_probe)
    validate(cfg)  # the size is unknown without data
    check_runnable(make_cfg(trainer={"batch_size": 600}, data={"root": str(mnist_root)}, probe=small_probe))
    with pytest.raises(ConfigError) as exc:
        check_runnable(cfg)  # reads the size from the files' headers
    msg = one_line(exc)
    assert "trainer.batch_size" in msg and "601" in msg and "600" in msg


@pytest.mark.parametrize(
    "section,key,value",
    [
        ("model", "activation", "swish"),
        ("model", "norm", "instance"),
        ("model", "init", "orthogonal"),
        ("model", "name", "resnet"),
        ("optim", "name", "rmsprop"),
        ("data", "name", "imagenet"),
    ],
)
def test_unknown_registry_names(section, key, value):
    cfg = make_cfg(**{section: {key: value}})
    msg = assert_one_line_error(cfg, f"{section}.{key}", value)
    # a section's name is its kind: the message lists the kinds
    assert "allowed: " in msg


def test_unknown_name_error_lists_what_is_allowed():
    msg = assert_one_line_error(make_cfg(model={"activation": "swish"}), "model.activation", "swish")
    for act in ("sigmoid", "relu", "tanh"):
        assert act in msg
    msg = assert_one_line_error(make_cfg(optim={"name": "rmsprop"}), "optim.name", "rmsprop")
    for opt in ("sgd", "momentum", "adam"):
        assert opt in msg
    msg = assert_one_line_error(make_cfg(data={"name": "imagenet"}), "data.name", "imagenet")
    for ds in ("mnist", "cifar10"):
        assert ds in msg


@pytest.mark.parametrize(
    "section,key,value,option",
    [
        ("model", "kernel_size", 2, {"name": "cnn"}),
        ("model", "pool", "median", {"name": "cnn"}),
        ("model", "init_std", 0.0, {}),
        ("optim", "momentum", 1.0, {}),
        ("trainer", "eval_every", 0, {}),
        ("trainer", "sampler", "shuffle", {}),
        ("trainer", "device", "tpu", {}),
        ("trainer", "threads", 0, {}),
        ("probe", "size", 1, {}),
        ("probe", "bn_mode", "train", {}),
    ],
)
def test_other_bad_values(section, key, value, option):
    assert_one_line_error(make_cfg(**{section: {**option, key: value}}), f"{section}.{key}", str(value))


@pytest.mark.parametrize(
    "override,key,allowed",
    [
        ("+foo=1", "foo", "trainer"),
        ("+model.foo=1", "model.foo", "activation"),
        ("+trainer.x.y=1", "trainer.x", "batch_size"),
    ],
)
def test_appended_keys_the_schema_lacks_are_rejected(hydra_ctx, override, key, allowed):
    # Hydra lets `+key=value` add a key to a typed node; from_dict must still refuse it
    cfg = compose(config_name="config", overrides=[override])
    with pytest.raises(ConfigError) as err:
        from_dict(cfg)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{key} is not a config key") and allowed in msg


@pytest.mark.parametrize(
    "section,values,key,value",
    [
        ("model", {"bn_eps": -1.0}, "model.bn_eps", "-1.0"),
        ("model", {"bn_momentum": 5.0}, "model.bn_momentum", "5.0"),
        ("optim", {"nesterov": True}, "optim.nesterov", "True"),
        # list values are quoted the way they are written in an override: optim.betas=[2.0,3.0]
        ("optim", {"name": "adam", "betas": [2.0, 3.0]}, "optim.betas", "[2.0,3.0]"),
        ("optim", {"name": "adam", "betas": [0.9]}, "optim.betas", "[0.9]"),
        ("optim", {"name": "momentum", "momentum": 0.0}, "optim.momentum", "0.0"),
        ("trainer", {"seed": 2**70}, "trainer.seed", str(2**70)),
        ("trainer", {"seed": -1}, "trainer.seed", "-1"),
        ("probe", {"train_batch_every": 0}, "probe.train_batch_every", "0"),
    ],
)
def test_values_torch_would_reject_later_are_rejected_up_front(section, values, key, value):
    assert_one_line_error(make_cfg(**{section: values}), key, value)


@pytest.mark.parametrize(
    "section,values,key",
    [
        # adam has no momentum/nesterov (its betas play that role); MNIST has no image folder variant
        ("optim", {"name": "adam", "momentum": 0.9}, "optim.momentum"),
        ("optim", {"name": "adam", "nesterov": True}, "optim.nesterov"),
        ("data", {"name": "mnist", "image_folder": "/some/folder"}, "data.image_folder"),
        ("data", {"name": "fashion_mnist", "image_folder": "/some/folder"}, "data.image_folder"),
    ],
)
def test_keys_the_chosen_option_lacks_are_rejected_up_front(section, values, key):
    with pytest.raises(ConfigError) as exc:
        from_dict({section: values})
    msg = one_line(exc)
    assert msg.startswith(f"{key} is not a config key; keys in {section}: "), msg
    allowed = msg.split(": ", 1)[1].split(", ")
    assert allowed == [f.name for f in dataclasses.fields(KINDS[section][values["name"]])]


def test_channels_only_checked_for_the_cnn():
    # the MLP has no channels at all; the CNN needs at least one conv block
    with pytest.raises(ConfigError) as exc:
        from_dict({"model": {"name": "mlp", "channels": []}})
    assert one_line(exc).startswith("model.channels is not a config key; keys in model: ")
    validate(from_dict({"model": {"name": "mlp"}}))
    assert_one_line_error(make_cfg(model={"name": "cnn", "channels": []}), "model.channels", "[]")


def test_momentum_optimizer_uses_the_configured_momentum():
    from ics.train.optim import build_optimizer

    p = [torch.nn.Parameter(torch.zeros(2))]
    assert build_optimizer(p, MomentumConfig(lr=0.1, momentum=0.5)).param_groups[0]["momentum"] == 0.5
