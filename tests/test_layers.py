"""The library's layers, read from the source (ast; nothing imported): each package of ics imports only
the layers below it, so that no two packages import each other and a reader of run folders never pulls
in the trainer. Every import counts, also one inside a function (the record -> checkpoint circle was
one), because an import deferred for start-up time is still a dependency.

    ics.config, ics.registry   the typed schema and the registries it names (one layer), and
      ics.words                counted nouns ("1 job"), which import nothing
    ics.record                 run and sweep folders: names, atomic files, summaries, locks, checkpoints read
    ics.data                   data sets and loaders
    ics.models                 networks, normalisers, initialisation
    ics.instruments            the measurements taken while training
    ics.train                  the trainer, checkpoints written, resume
    ics.analysis, ics.bench    reports over finished runs; the benchmark

ics_cli (cli/) sits above all of them; ics never imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
LAYERS: List[Tuple[str, ...]] = [
    ("ics.config", "ics.registry", "ics.words"),
    ("ics.record",),
    ("ics.data",),
    ("ics.models",),
    ("ics.instruments",),
    ("ics.train",),
    ("ics.analysis", "ics.bench"),
]
LEVEL = {pkg: n for n, layer in enumerate(LAYERS) for pkg in layer}


def unit(module: str) -> str:
    """The layer unit a module belongs to: ics.record.jobs -> ics.record; ics.bench -> ics.bench."""
    return ".".join(module.split(".")[:2])


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, imported module) for every absolute import in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "ics":  # `from ics import registry`: the submodule is what is imported
                for alias in node.names:
                    yield node.lineno, f"ics.{alias.name}"
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: a relative import; ics uses absolute ones")


def edges() -> Dict[Tuple[str, str], List[str]]:
    """(importing unit, imported unit) -> where, for every import between two units of ics."""
    found: Dict[Tuple[str, str], List[str]] = {}
    for path in sorted((ROOT / "ics").rglob("*.py")):
        src = unit(module_name(path))
        for line, target in imports(path):
            if target == "ics" or not target.startswith(("ics.", "ics_cli")):
                continue
            dst = unit(target)
            if dst != src:
                found.setdefault((src, dst), []).append(f"{path.relative_to(ROOT)}:{line}")
    return found


def upward(found: Dict[Tuple[str, str], List[str]]) -> List[str]:
    """The imports that go up a layer, or sideways within one between different units except inside
    the bottom layer (the schema names the registries, which raise its ConfigError)."""
    bad = []
    for (src, dst), where in sorted(found.items()):
        if src not in LEVEL or dst not in LEVEL:
            bad.append(f"{src} -> {dst} ({where[0]}): a unit no layer names; add it to LAYERS here")
        elif LEVEL[dst] > LEVEL[src] or (LEVEL[dst] == LEVEL[src] and LEVEL[src] != 0):
            bad.append(f"{src} -> {dst} ({', '.join(where)}): {dst} is not below {src}")
    return bad


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Every cycle's units (strongly connected components of more than one unit; Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_package_imports_only_the_layers_below_it():
    found = edges()
    assert ("ics.train", "ics.record") in found  # the walk sees the imports it judges
    assert upward(found) == []


def test_no_two_layers_import_each_other_and_the_record_never_imports_the_trainer():
    found = edges()
    graph: Dict[str, Set[str]] = {}
    for src, dst in found:
        if {src, dst} != {"ics.config", "ics.registry"}:  # the bottom layer's two halves, one unit
            graph.setdefault(src, set()).add(dst)
    assert cycles(graph) == []
    assert not [k for k in found if k[0] == "ics.record" and k[1] != "ics.config"], (
        "the run record reads folders and checkpoints as data; it needs the schema's errors only"
    )


def test_the_library_never_imports_the_command_line():
    assert [w for (src, dst), w in edges().items() if dst.startswith("ics_cli")] == []


def test_the_checks_fail_on_a_circle_and_on_an_upward_import():
    """The checker itself, on made-up graphs: the old record <-> checkpoint circle is found both ways."""
    circle = {("ics.record", "ics.train"): ["ics/record/jobs.py:131"], ("ics.train", "ics.record"): ["x:1"]}
    assert upward(circle) == ["ics.record -> ics.train (ics/record/jobs.py:131): ics.train is not below ics.record"]
    assert cycles({"ics.record": {"ics.train"}, "ics.train": {"ics.record", "ics.data"}}) == [
        ["ics.record", "ics.train"]
    ]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert upward({("ics.models", "ics.nets"): ["ics/models/x.py:1"]})[0].startswith("ics.models -> ics.nets")
