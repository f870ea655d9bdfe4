"""configs/, user config folders and studies (issue 14): every shipped file composes and validates,
every study passes the pre-run check, user folders work through --config-dir, hydra.searchpath and
ICS_CONFIG_PATH for run, sweep, config, list, completion and resume, and every wrong file is one line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import datagen
import pytest
from clirun import invoke
from ics_cli import configdirs
from ics_cli.hydra_compat import UserError
from ics_cli.preflight import compose, preflight, use

from ics.config import from_dict, validate


def ics(args, env, cwd, timeout=None):
    """`ics ARGS` in this process (tests/clirun.py: invoke) with `env` as its environment: the
    differences from this process's are applied for the call only. The point here is config folders,
    not a process boundary, and each subprocess cost seconds of torch and Hydra imports."""
    import os

    extra = {k: v for k, v in env.items() if os.environ.get(k) != v}
    extra.update({k: None for k in os.environ if k not in env})  # None: unset for the call
    return invoke(args, cwd, extra)


GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide.md"
SHIPPED_FILES = sorted(configdirs.shipped_dir().glob("*/*.yaml"))
# options that need a value to be complete (image_folder's folder has no default)
NEEDS = {("data", "image_folder"): ["data.image_folder=/some/folder"]}


@pytest.fixture(autouse=True)
def _shipped_only(monkeypatch):
    monkeypatch.delenv(configdirs.ENV, raising=False)
    use()
    yield
    use()


def write(root: Path, rel: str, text) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text)
    return p


STUDY = """# @package _global_
# a user study in the shipped style: bare on/off, a model option of its own folder
defaults:
  - override /model: my_mlp
  - override /probe: off
  - override /weights: on
name: my_study
trainer:
  steps: 20
  eval_every: 10
  eval_log_points: 0
  threads: 1
hydra:
  mode: MULTIRUN
  sweeper:
    params:
      model.norm: none,batch
"""


@pytest.fixture
def user_dir(tmp_path) -> Path:
    d = tmp_path / "conf"
    write(d, "model/my_mlp.yaml", "# plain: only what it changes\nwidths: [16, 8]\nactivation: relu\n")
    write(d, "model/my_ext.yaml", "# extends a shipped option\ndefaults: [mlp_sigmoid_nobn]\nwidths: [12]\n")
    write(d, "data/my_data.yaml", "defaults: [mnist]\nval_size: 100\n")
    write(d, "experiment/my_study.yaml", STUDY)
    return d


# ----------------------------------------------------------------------------------------------
# the shipped folder


def _first_of_each_group(paths):
    """Each file, the first of each group in the fast tier (test_config.py composes every option there
    too, through Hydra's compose); the others slow."""
    seen = set()
    for p in paths:
        yield pytest.param(p, marks=[pytest.mark.slow] if p.parent.name in seen else [], id=f"{p.parent.name}/{p.stem}")
        seen.add(p.parent.name)


# a study's pre-run check composes and checks every job (seconds each): fig1 (the paper's), a CIFAR study
# and a deep linear network's (gradient_ics) in the fast tier, every study in the slow one
FAST_STUDIES = {"fig1", "cnn_cifar10", "gradient_ics"}


@pytest.mark.parametrize("path", list(_first_of_each_group(SHIPPED_FILES)))
def test_every_shipped_option_file_composes_and_validates(path):
    group, option = path.parent.name, path.stem
    cfg = from_dict(compose([f"{group}={option}", *NEEDS.get((group, option), [])]))
    validate(cfg)


@pytest.mark.parametrize("preset", sorted(p.stem for p in (configdirs.shipped_dir() / "model").glob("*_*bn.yaml")))
def test_model_presets_are_what_their_names_say(preset):
    kind, *act, norm = preset.split("_")
    m = from_dict(compose([f"model={preset}"])).model
    assert m.name == kind
    assert m.norm == ("none" if norm == "nobn" else "batch")
    if act:
        assert m.activation == act[0]
    if preset.startswith("mlp_sigmoid"):
        assert m.widths == [100, 100, 100]  # the BN paper's Fig. 1 network


def test_design_card_variants_are_in_configs_model():
    names = {p.stem for p in (configdirs.shipped_dir() / "model").glob("*.yaml")}
    assert {
        "mlp_sigmoid_bn",
        "mlp_sigmoid_nobn",
        "mlp_relu_bn",
        "mlp_relu_nobn",
        "cnn_relu_bn",
        "cnn_relu_nobn",
        "cnn_sigmoid_bn",
        "cnn_sigmoid_nobn",
        "dln",
    } <= names


@pytest.mark.parametrize(
    "study",
    [
        pytest.param(s, marks=[] if s in FAST_STUDIES else [pytest.mark.slow])
        for s in sorted(configdirs.shipped_studies())
    ],
)
def test_every_shipped_study_passes_the_pre_run_check(study):
    plan = preflight([f"experiment={study}"], data=False, force_multirun=True)
    assert plan.mode == "multirun" and len(plan.jobs) >= 2
    for job in plan.jobs[:3]:
        cfg = from_dict(compose(job))
        validate(cfg)
        assert cfg.name == study
    # a study says what it asks and how long it took at the top
    assert configdirs.shipped_studies()[study].read_text().startswith("# @package _global_\n# ")


def test_a_preset_and_a_key_are_each_one_override():
    assert from_dict(compose(["model=mlp_relu_nobn"])).model.norm == "none"
    assert from_dict(compose(["model.norm=none"])).model.norm == "none"
    both = from_dict(compose(["model=cnn_sigmoid_bn", "model.norm=none"])).model
    assert (both.name, both.activation, both.norm) == ("cnn", "sigmoid", "none")


def test_a_study_with_another_model_composes_that_model_not_a_hybrid(capsys):
    from ics.config import CNNConfig

    plan = preflight(["experiment=fig1", "model=cnn"], data=False, force_multirun=True)
    cfg = from_dict(compose(plan.jobs[0]))
    assert cfg.model == CNNConfig(norm=cfg.model.norm)  # the CNN's own widths, activation, init
    assert "model=cnn replaces experiment=fig1's model=mlp_sigmoid_bn" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# user folders, in-process


def test_plain_and_extending_user_options_are_whole_typed_configs(user_dir):
    use([user_dir])
    plain = from_dict(compose(["model=my_mlp", "model.norm=none"])).model  # a key the file does not set
    assert (plain.name, plain.widths, plain.activation, plain.norm) == ("mlp", [16, 8], "relu", "none")
    assert plain.init_std == 0.1  # the rest is model=mlp's
    ext = from_dict(compose(["model=my_ext"])).model
    assert (ext.widths, ext.activation, ext.norm) == ([12], "sigmoid", "none")
    assert from_dict(compose(["data=my_data"])).data.val_size == 100


def test_a_plain_file_naming_its_kind_gets_that_kinds_schema(tmp_path):
    d = tmp_path / "c"
    write(d, "model/small_cnn.yaml", "name: cnn\nchannels: [4]\nwidths: []\n")
    use([d])
    m = from_dict(compose(["model=small_cnn"])).model
    assert (m.name, m.channels, m.kernel_size, m.activation) == ("cnn", [4], 3, "relu")


def test_user_study_in_the_shipped_style_composes(user_dir):
    plan = preflight([f"--config-dir={user_dir}", "experiment=my_study"], data=False, force_multirun=True)
    assert [j[0] for j in plan.jobs] == ["model.norm=none", "model.norm=batch"]
    cfg = from_dict(compose(plan.jobs[0]))
    assert cfg.probe.enabled is False and cfg.weights.enabled is True and cfg.model.widths == [16, 8]


@pytest.mark.parametrize(
    "text,needle",
    [
        ("widthz: [1]\n", "model.widthz is not a config key (in model/bad.yaml); keys in model: name,"),
        ("widths: abc\n", "model.widths is invalid (in model/bad.yaml): must be a list"),
        ("init_std: -1\n", "model.init_std=-1.0 is invalid: must be a finite number > 0"),
        ("activation: swish\n", "model.activation='swish' is invalid: allowed: "),
        ("name: resnet\n", "model.name='resnet' is invalid: is the model kind; allowed: mlp, cnn, dln"),
        ("defaults: [nosuch]\n", "nosuch"),
        ("defaults: [bad]\n", "refers back to itself"),
    ],
)
def test_a_wrong_user_option_is_one_line(tmp_path, text, needle):
    d = tmp_path / "c"
    write(d, "model/bad.yaml", text)
    with pytest.raises(UserError) as e:
        preflight([f"--config-dir={d}", "model=bad"], data=False)
    assert "\n" not in str(e.value) and needle in str(e.value), str(e.value)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("every: -1\n", "probe.every=-1 is invalid"),
        ("evry: 1\n", "probe.evry is not a config key (in probe/bad.yaml); keys in probe: enabled"),
        ("every: abc\n", "probe.every is invalid (in probe/bad.yaml): must be an integer"),
    ],
)
def test_a_wrong_single_schema_option_is_one_line(tmp_path, text, needle):
    d = tmp_path / "c"
    write(d, "probe/bad.yaml", text)
    with pytest.raises(UserError) as e:
        preflight([f"--config-dir={d}", "probe=bad"], data=False)
    assert "\n" not in str(e.value) and needle in str(e.value), str(e.value)


def test_a_study_that_sets_its_own_architecture_refuses_another_model(tmp_path):
    d = tmp_path / "c"
    write(
        d,
        "experiment/arch.yaml",
        "# @package _global_\ndefaults:\n  - override /model: mlp\n"
        "model:\n  widths: [5]\n  norm: none\nhydra:\n  mode: MULTIRUN\n",
    )
    with pytest.raises(UserError, match=r"model=cnn conflicts with experiment=arch, which sets model.widths"):
        preflight([f"--config-dir={d}", "experiment=arch", "model=cnn"], data=False, force_multirun=True)
    preflight([f"--config-dir={d}", "experiment=arch"], data=False, force_multirun=True)  # alone it is fine


@pytest.mark.parametrize(
    "rel,text,needle",
    [
        ("experiment/x.yaml", "defaults:\n  - override /probe: off\n", "does not begin with `# @package _global_`"),
        ("experiment/x.yaml", "# @package _global_\n: [\n", "is not a valid config file"),
        ("experiment/fig1.yaml", "# @package _global_\n", "has the name of the shipped study fig1"),
        ("model/y.yaml", "widths: [5\n", "model/y.yaml is not a valid config file"),
        ("model/y.yaml", "widths:\n\t- 5\n", "model/y.yaml is not a valid config file"),
        ("model/y.yaml", b"widths: [5]\n# \xff\n", "model/y.yaml is not UTF-8 text"),
    ],
)
def test_a_broken_user_file_is_one_line(tmp_path, rel, text, needle):
    d = tmp_path / "c"
    write(d, rel, text)
    chosen = ["experiment=x"] if rel.startswith("experiment/") else []
    with pytest.raises(UserError) as e:
        preflight([f"--config-dir={d}", *chosen], data=False, force_multirun=bool(chosen))
    assert "\n" not in str(e.value) and needle in str(e.value), str(e.value)


def test_a_users_own_study_may_choose_and_configure_hydras_plugins(tmp_path):
    """A folder the user names is the user's own: what Hydra allows there is allowed (a launcher
    choice and its settings, a launcher preset in a hydra/ folder)."""
    d = tmp_path / "c"
    write(d, "hydra/launcher/two.yaml", "defaults: [joblib]\nn_jobs: 2\n")
    write(
        d,
        "experiment/x.yaml",
        "# @package _global_\ndefaults:\n  - override /hydra/launcher: two\n"
        "hydra:\n  mode: MULTIRUN\n  sweeper:\n    params:\n      trainer.seed: 0,1\n",
    )
    plan = preflight([f"--config-dir={d}", "experiment=x"], data=False, force_multirun=True)
    assert plan.launcher.option == "joblib" and plan.hydra.launcher.n_jobs == 2 and len(plan.jobs) == 2


def test_a_user_file_hidden_by_a_shipped_one_is_reported(tmp_path, capsys):
    d = tmp_path / "c"
    write(d, "model/mlp.yaml", "widths: [3]\n")
    assert configdirs.shadowed([d.resolve()], ["model"]) == [
        f"{d.resolve() / 'model' / 'mlp.yaml'} is hidden by the shipped model=mlp; rename it"
    ]
    preflight([f"--config-dir={d}"], data=False)
    assert "is hidden by the shipped model=mlp" in capsys.readouterr().err


def test_a_search_path_entry_that_does_not_exist_is_one_line(tmp_path):
    for entry, needle in (("file://typo", "is not a folder"), ("[pkg://nosuch_pkg]", "is not an importable package")):
        with pytest.raises(UserError, match=needle):
            preflight([f"hydra.searchpath={entry}"], data=False)
    preflight(["hydra.searchpath=[pkg://ics.configs]"], data=False)


def test_folders_from_all_three_places_in_order(tmp_path, monkeypatch):
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    monkeypatch.setenv(configdirs.ENV, str(c))
    found = configdirs.split(["-cd", str(a), f"hydra.searchpath=[file://{b}]", "model=x"])
    assert found.dirs == [a, b, c] and found.args == ["model=x"]
    assert found.searchpath_override() == [f"hydra.searchpath=['file://{a}','file://{b}','file://{c}']"]
    with pytest.raises(UserError, match="ICS_CONFIG_PATH entry /nonexistent is not a folder"):
        configdirs.split([], env="/nonexistent")


def test_completion_offers_user_options_studies_and_their_keys(user_dir, monkeypatch):
    from ics_cli.completion import candidates, complete_study

    assert "model=my_mlp" in candidates(["--config-dir", str(user_dir)], "model=my")
    assert candidates(["-cd", str(user_dir), "model", "="], "my_") == ["my_ext", "my_mlp"]  # bash's split
    assert "experiment=my_study" in candidates(["-cd", str(user_dir)], "experiment=")
    assert candidates(["-cd", str(user_dir), "model=my_mlp"], "model.wid") == ["model.widths="]
    assert candidates(["model=cnn_small"], "model.chan") == ["model.channels="]  # a preset's kind
    monkeypatch.setenv(configdirs.ENV, str(user_dir))
    monkeypatch.delenv("COMP_WORDS", raising=False)
    monkeypatch.setenv("_TYPER_COMPLETE_ARGS", "ics sweep my")
    assert "my_study" in complete_study("my") and "fig1" in complete_study("f")


def test_a_launcher_target_that_does_not_import_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(UserError, match=r"hydra.launcher._target_=foo.Bar cannot be imported"):
        preflight(["-m", "hydra.launcher._target_=foo.Bar", "trainer.seed=0,1"], data=False)


# ----------------------------------------------------------------------------------------------
# the CLI, end to end (in-process)


def ok(p: subprocess.CompletedProcess) -> str:
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "Traceback" not in out, out
    return out


def one_line_error(p: subprocess.CompletedProcess, needle: str) -> None:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("note: ")]
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), p.stdout + p.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in p.stdout + p.stderr


FAST = ["trainer.threads=1", "trainer.steps=20", "trainer.eval_every=10", "trainer.eval_log_points=0", "probe.size=100"]


@pytest.mark.slow
def test_user_folder_through_every_entry_and_command(tiny_env, tmp_path, user_dir):
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {k: v for k, v in tiny_env.items() if k != configdirs.ENV}
    # run: --config-dir, -cd, hydra.searchpath (relative), ICS_CONFIG_PATH
    for how, extra_env in (
        (["--config-dir", str(user_dir)], {}),
        (["-cd", str(user_dir)], {}),
        ([f"hydra.searchpath=[file://{Path('..') / 'conf'}]"], {}),
        ([], {configdirs.ENV: str(user_dir)}),
    ):
        ok(ics(["run", *how, "model=my_mlp", *FAST], {**env, **extra_env}, cwd))
    runs = sorted((cwd / "runs").glob("*/*"))
    assert len(runs) == 4
    for r in runs:
        rec = json.loads((r / "summary.json").read_text())
        assert rec["config"]["model"]["widths"] == [16, 8] and rec["status"] in ("completed", "not_learning")
    # config and list
    out = ok(ics(["config", "-cd", str(user_dir), "model=my_ext"], env, cwd))
    assert "widths:\n  - 12" in out and "activation: sigmoid" in out
    out = ok(ics(["list", "--config-dir", str(user_dir)], env, cwd))
    assert "my_mlp" in out and str(user_dir) in out and "my_study" in out
    out = ok(ics(["list", "model=my_mlp", "-cd", str(user_dir)], env, cwd))
    assert str(user_dir / "model" / "my_mlp.yaml") in out and "[16, 8]" in out
    # sweep by name, then by path, each resumed from another directory
    ok(ics(["sweep", "my_study", "--config-dir", str(user_dir), "probe.size=100"], env, cwd))
    ok(ics(["sweep", str(user_dir / "experiment" / "my_study.yaml"), "probe.size=100"], env, cwd))
    sweeps = sorted((cwd / "multiruns").glob("*/*"))
    assert len(sweeps) == 2 and all(s.name.endswith("_my_study") for s in sweeps)
    assert (sweeps[1] / configdirs.STAGE / "experiment" / "my_study.yaml").read_text() == STUDY
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for s in sweeps:
        job = next(s.glob("1_*"))
        shutil.rmtree(job)  # as if never started
        out = ok(ics(["resume", str(s)], env, elsewhere))  # no config folder needed: the plan holds the config
        assert "start    1_" in out
        rec = json.loads((next(s.glob("1_*")) / "summary.json").read_text())
        assert rec["config"]["model"]["widths"] == [16, 8] and rec["config"]["model"]["norm"] == "batch"
    assert list(elsewhere.iterdir()) == []


@pytest.mark.slow
def test_the_cases_of_issue_14_are_runs_or_one_line(tiny_env, tmp_path, user_dir):
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {k: v for k, v in tiny_env.items() if k != configdirs.ENV}
    write(
        user_dir,
        "my_config.yaml",
        "defaults: [config, _self_]\ntrainer:\n  steps: 20\n  eval_every: 10\n  threads: 1\nprobe:\n  size: 100\n",
    )
    # -cn goes through the pre-run check: a bad value is one line before anything is written
    one_line_error(
        ics(["run", "-cd", str(user_dir), "-cn", "my_config", "trainer.batch_size=0"], env, cwd),
        "trainer.batch_size=0 is invalid",
    )
    assert list(cwd.iterdir()) == []
    ok(ics(["run", "-cd", str(user_dir), "-cn", "my_config"], env, cwd))
    one_line_error(ics(["sweep", "nosuch"], env, cwd), "unknown study 'nosuch'")
    one_line_error(ics(["sweep", "./nosuch.yaml"], env, cwd), "./nosuch.yaml is not a study file")
    one_line_error(ics(["run", "model=my_mlp"], env, cwd), "model=my_mlp is not an option")
    one_line_error(ics(["run", "--config-dir", "nope"], env, cwd), "--config-dir=nope is not a folder")
    one_line_error(
        ics(["run", "-m", "hydra.launcher._target_=foo.Bar", "trainer.seed=0,1"], env, cwd),
        "hydra.launcher._target_=foo.Bar cannot be imported",
    )
    out = ok(ics(["config", "experiment=fig1", "model=cnn"], env, cwd))
    model = out[out.index("model:") : out.index("data:")]
    assert "channels:" in model and "widths:\n  - 128\n" in model  # the CNN's own head, not fig1's 3x100
    assert [p.name for p in cwd.iterdir()] == ["runs"]


def _guide_section() -> str:
    """docs/guide.md's 'Your own configs' section, up to the next section."""
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index("\n## Your own configs\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


@pytest.mark.slow
def test_the_guide_user_config_examples_run_as_written(tmp_path, monkeypatch):
    """The YAML files and commands of the guide's 'Your own configs' section (docs/guide.md), as written
    (on a small generated MNIST with a 1,000-example test split, so that the default probe set fits)."""
    root = tmp_path / "data"
    datagen.write_idx_mnist(root, "MNIST", n_train=1200, n_test=1000)
    cwd = tmp_path / "work"
    cwd.mkdir()
    section = _guide_section()
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        rel = next(ln for ln in block.splitlines() if "my_configs/" in ln).lstrip("# ").split()[0]
        write(cwd, rel, block)
    import os

    env = {**os.environ, "ICS_DATA_ROOT": str(root)}
    env.pop(configdirs.ENV, None)
    commands = re.findall(r"```bash\n(.*?)```", section, re.S)[0].splitlines()
    ran = 0
    for line in commands:
        line = line.split("  #")[0].strip()
        if "<" in line:  # `ics resume multiruns/<date>/...`: the sweep just made
            line = line.replace(line.split()[-1], str(sorted((cwd / "multiruns").glob("*/*"))[-1]))
        words = line.split()
        extra = {}
        while "=" in words[0]:  # VAR=value ics ...
            k, v = words.pop(0).split("=", 1)
            extra[k] = v
        assert words[0] == "ics", line
        ok(ics(words[1:], {**env, **extra}, cwd, timeout=600))
        ran += 1
    assert ran == 6
    sweeps = sorted((cwd / "multiruns").glob("*/*_depth_study"))
    assert len(sweeps) == 2
    for s in sweeps:
        states = [
            json.loads((j / "summary.json").read_text())["status"]
            for j in s.iterdir()
            if j.is_dir() and (j / "summary.json").exists()
        ]
        assert len(states) == 4 and all(st in ("completed", "not_learning") for st in states), states


@pytest.mark.slow
def test_resume_of_a_cn_sweep_a_removed_folder_and_a_planted_lock_link(tiny_env, tmp_path, user_dir):
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {k: v for k, v in tiny_env.items() if k != configdirs.ENV}
    write(
        user_dir,
        "mine.yaml",
        "defaults: [config, _self_]\ntrainer:\n  steps: 20\n  eval_every: 10\n  threads: 1\nprobe:\n  size: 100\n",
    )
    sweep = tmp_path / "sweep"
    ok(
        ics(
            [
                "run",
                "-m",
                "-cd",
                str(user_dir),
                "-cn",
                "mine",
                "model=my_mlp",
                "trainer.seed=0,1",
                f"hydra.sweep.dir={sweep}",
            ],
            env,
            cwd,
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(next(sweep.glob("1_*")))
    ok(ics(["resume", str(sweep)], env, elsewhere))  # -cn's primary config found again, from anywhere
    rec = json.loads((next(sweep.glob("1_*")) / "summary.json").read_text())
    assert rec["config"]["trainer"]["steps"] == 20 and rec["config"]["model"]["widths"] == [16, 8]
    # the folder moved away: resume needs none of it (each job's config is in the sweep's plan)
    moved = tmp_path / "conf-moved"
    user_dir.rename(moved)
    shutil.rmtree(next(sweep.glob("1_*")))
    ok(ics(["resume", str(sweep)], env, elsewhere))
    assert json.loads((next(sweep.glob("1_*")) / "summary.json").read_text())["status"] in ("completed", "not_learning")
    # a planted run.lock link in a job folder: named, nothing is written through it
    victim = tmp_path / "victim"
    victim.write_text("precious")
    job = next(sweep.glob("1_*"))
    shutil.rmtree(job)
    job.mkdir()
    (job / "run.lock").symlink_to(victim)
    p = ics(["resume", str(sweep)], env, elsewhere)
    assert "Traceback" not in p.stdout + p.stderr and victim.read_text() == "precious" and p.returncode == 1
    assert "run.lock in it is a symbolic link" in p.stdout + p.stderr
    # a study's --cfg prints its config (no -m/--cfg clash)
    out = ok(ics(["sweep", "fig1", "trainer.steps=5", "--cfg", "job"], env, cwd))
    assert "steps: 5" in out
