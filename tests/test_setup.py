"""README's CPU-only set-up route, as written: the same virtualenv as the first set-up command, a torch
and torchvision pair made for each other that satisfies ics's requirements and is the pair this
environment runs on, and pip resolving it (slow: pip in a subprocess, against the configured package
index, since tests have no internet: the README's --index-url for the CPU wheels is the one word left
out). The first set-up command itself is what .ci/run runs."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path
from typing import List, Tuple

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from test_docs_links import README, SETUP_COMMANDS, prose_lines
from test_packages import tomllib

from ics.data import vision

ROOT = Path(__file__).resolve().parent.parent
CPU_HEADING = "### On a machine without a GPU"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def cpu_block() -> List[str]:
    """The lines of the first bash block under the CPU heading."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index(CPU_HEADING) :]
    m = re.search(r"```bash\n(.*?)```", after, re.S)
    assert m, "no bash block under " + CPU_HEADING
    return [ln for ln in m.group(1).splitlines() if ln.strip()]


def cpu_pins() -> Tuple[str, str]:
    """(torch version, torchvision version) the CPU route installs."""
    words = shlex.split(cpu_block()[0])
    pins = dict(w.split("==", 1) for w in words if w.startswith(("torch==", "torchvision==")))
    return pins["torch"], pins["torchvision"]


def test_the_cpu_route_is_the_first_set_up_command_with_the_cpu_wheels_installed_first():
    venv, _, rest = SETUP_COMMANDS[0].partition(' && pip install -e ".[all]" && ')
    assert rest, SETUP_COMMANDS[0]
    torch_v, vision_v = cpu_pins()
    assert cpu_block() == [
        f"{venv} && pip install torch=={torch_v} torchvision=={vision_v} --index-url {CPU_INDEX} && "
        'pip install -e ".[all]"',
        rest,  # the run, in the virtualenv the line above created and activated
    ]


def test_the_pinned_pair_satisfies_ics_and_is_the_pair_installed_here():
    torch_v, vision_v = cpu_pins()
    deps = [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    for name, pinned in (("torch", torch_v), ("torchvision", vision_v)):
        req = next(r for r in deps if r.name == name)
        assert req.specifier.contains(pinned), f"{name}=={pinned} does not satisfy ics's {req}"
        # so `pip install -e ".[all]"` afterwards keeps it (pip upgrades nothing already satisfied)
        assert Version(version(name)).base_version == pinned, (
            f"README pins {name}=={pinned}, this environment runs {version(name)}"
        )
    assert vision_v.startswith(vision.pair_for(torch_v) + ".")  # torchvision 0.N+15 for torch 2.N
    needs = [Requirement(r) for r in requires("torchvision") or [] if r.startswith("torch")]
    assert needs and all(r.specifier.contains(torch_v) for r in needs if r.name == "torch"), needs


def test_the_readme_quotes_the_mismatch_line_ics_prints():
    """README's example of the one line a mismatched pair gives is what vision.mismatch_line writes."""
    text = " ".join(line for _, line in prose_lines(README.read_text(encoding="utf-8")))
    quoted = re.search(r"`(torchvision (\S+) does not work\s+with torch (\S+) \((.*?)\))`", text)
    assert quoted, "README quotes no mismatch line"
    said = " ".join(quoted.group(1).split())
    line = vision.mismatch_line(RuntimeError(quoted.group(4)), quoted.group(3), quoted.group(2))
    assert line.startswith(said), (line, said)


def _dry_run(args: List[str], tmp_path: Path) -> List[Tuple[str, str]]:
    report = tmp_path / "report.json"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--disable-pip-version-check",
            "--report",
            str(report),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return [
        (i["metadata"]["name"].lower(), i["metadata"]["version"]) for i in json.loads(report.read_text())["install"]
    ]


@pytest.mark.slow
def test_pip_resolves_the_cpu_route_and_keeps_its_torch(tmp_path):
    """The route's two pip steps, resolved by pip itself (nothing installed): the pinned pair, with every
    dependency torchvision states, into an empty virtualenv (--ignore-installed); then ics into this one,
    which holds that pair, and which must keep it."""
    torch_v, vision_v = cpu_pins()
    words = shlex.split(cpu_block()[0].split(" && ")[2])  # pip install torch==… torchvision==… --index-url …
    assert words[:2] == ["pip", "install"] and words[-2:] == ["--index-url", CPU_INDEX], words
    first = dict(_dry_run(["--ignore-installed", *words[2:-2]], tmp_path))
    assert (first.get("torch"), first.get("torchvision")) == (torch_v, vision_v), first
    second = dict(_dry_run(["--no-build-isolation", "-e", ".[all]"], tmp_path))
    assert "ics" in second and "torch" not in second and "torchvision" not in second, second
