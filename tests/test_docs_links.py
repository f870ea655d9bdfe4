"""The documentation's links: every relative link in README.md, docs/*.md and CHANGELOG.md points to a
file that exists, and every #anchor to a heading of the page it names (GitHub's slugs). Pure file
reading: no package import, no subprocess."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SETUP_COMMANDS = (
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[all]" && ICS_DATA_ROOT=../shared/data ics run',
    "ICS_DATA_ROOT=../shared/data python -m pytest -q -n 2 --dist loadfile",
)

FENCE = re.compile(r"^\s{0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target); link text may hold one level of brackets
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=[\"']([^\"']+)[\"']", re.I)
EXTERNAL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # http:, https:, mailto:, data:, ...


def doc_files() -> List[Path]:
    files = [README, *sorted((ROOT / "docs").glob("*.md"))]
    changelog = ROOT / "CHANGELOG.md"
    if changelog.exists():
        files.append(changelog)
    return files


def prose_lines(text: str) -> Iterator[Tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text (markup and link targets dropped), lower-cased,
    every character that is not a letter, a mark, a digit, '_', '-' or a space dropped, spaces -> '-'."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = text.strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LMN")
    return kept.replace(" ", "-")


_ANCHORS: Dict[Path, Set[str]] = {}


def anchors(path: Path) -> Set[str]:
    """The anchors of a page: its headings' slugs (a repeated one gets -1, -2, ...) and HTML anchors."""
    cache = _ANCHORS
    if path not in cache:
        seen: Dict[str, int] = {}
        found: Set[str] = set()
        text = path.read_text(encoding="utf-8")
        for _, line in prose_lines(text):
            m = HEADING.match(line)
            if m:
                base = slug(m.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                found.add(base if n == 0 else f"{base}-{n}")
        found.update(HTML_ANCHOR.findall(text))
        cache[path] = found
    return cache[path]


def links(path: Path) -> Iterator[Tuple[int, str]]:
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        bare = CODE_SPAN.sub("", line)
        for target in INLINE_LINK.findall(bare):
            yield number, target
        m = REFERENCE_DEF.match(bare)
        if m:
            yield number, m.group(1)


def broken_links(path: Path) -> List[str]:
    problems = []
    for number, target in links(path):
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not target:
            problems.append(f"{where}: an empty link")
            continue
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{where}: no such file {dest.relative_to(ROOT) if ROOT in dest.parents else dest}")
            continue
        if anchor:
            if dest.suffix != ".md":
                problems.append(f"{where}: an #anchor into a file that is not Markdown")
            elif unquote(anchor) not in anchors(dest):
                problems.append(f"{where}: no heading with the anchor #{anchor} in {dest.relative_to(ROOT)}")
    return problems


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path):
    assert broken_links(path) == []


def test_the_link_check_sees_links_anchors_and_code():
    """The checker itself: GitHub's slugs for the headings these pages use, links found outside code only."""
    assert slug("What is measured") == "what-is-measured"
    assert slug("Normalisers beyond BN — `model.norm`") == "normalisers-beyond-bn--modelnorm"
    assert (
        slug("Weight norms and the effective learning rate (BN paper §3.3) — `weights`, TensorBoard `weights/<layer>/`")
        == "weight-norms-and-the-effective-learning-rate-bn-paper-33--weights-tensorboard-weightslayer"
    )
    assert (
        slug("BN paper Fig. 1 (§4.1): MNIST, 3×100 sigmoid MLP, batch 60, 50,000 SGD steps at lr 1, 5 seeds")
        == "bn-paper-fig-1-41-mnist-3100-sigmoid-mlp-batch-60-50000-sgd-steps-at-lr-1-5-seeds"
    )
    assert (
        slug("BN's inference statistics (BN paper Alg. 2) and BN's own noise")
        == "bns-inference-statistics-bn-paper-alg-2-and-bns-own-noise"
    )
    assert slug("Tab completion and `ics list`") == "tab-completion-and-ics-list"
    assert slug("ℓp and [the guide](docs/guide.md)") == "ℓp-and-the-guide"
    text = '[a](x.md) `[b](y.md)` ![c](img/z.png#q) [d [e]](w.md#h "title")\n```\n[f](nope.md)\n# not a heading\n```\n'
    found = [target for _, target in _links_of(text)]
    assert found == ["x.md", "img/z.png#q", "w.md#h"]


def _links_of(text: str) -> Iterator[Tuple[int, str]]:
    for number, line in prose_lines(text):
        for target in INLINE_LINK.findall(CODE_SPAN.sub("", line)):
            yield number, target


def test_readme_is_a_front_door_with_the_two_set_up_commands():
    """README.md stays short (the manual is in docs/) and keeps the two set-up commands that CI runs, as
    written."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    lines = text.splitlines()
    for command in SETUP_COMMANDS:
        assert command in lines, command
