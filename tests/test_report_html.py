"""report.html in a real browser (issue 18, item 3): headless Chromium opens the page from the file
system, every image loads, no script error, and a screenshot is written. The page records its own
check in <body data-check> once loaded; --dump-dom returns the DOM after the load event (virtual
time: no sleep). Skips, saying why, where Chromium is not installed (.ci/run installs it as root)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest
from test_report import GOOD_LR, PNG_MAGIC, cfg, tiny_data

from ics.analysis import make_report
from ics.train import build_trainer

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
# the browser tests are slow (a browser per check, and a sweep to report); the escaping of the page's
# text needs no browser and runs everywhere
NO_BROWSER = "no headless Chromium (apt-get install chromium; .ci/run installs it when it runs as root)"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    data = tiny_data()
    for num, norm in enumerate(("none", "batch")):
        overrides = [f"model.norm={norm}"]
        build_trainer(cfg(norm, GOOD_LR), root / f"{num}_model.norm={norm}", data=data, overrides=overrides).fit()
    return make_report(root)


def browser_check(page) -> dict:
    p = subprocess.run([BROWSER, *FLAGS, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    m = re.search(r'data-check="([^"]*)"', p.stdout)
    assert m, "the page's load check never ran: " + p.stdout[:500]
    return json.loads(html.unescape(m.group(1)))


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)
def test_every_image_loads_without_a_script_error(report, tmp_path):
    page = report["report_html"]
    check = browser_check(page)
    assert check == {"images": len(report["figures"]), "broken": 0, "errors": []}
    assert len(report["figures"]) >= 5  # accuracy, percentiles, density, drift per layer, drift
    shot = tmp_path / "report.png"
    p = subprocess.run(
        [BROWSER, *FLAGS, "--window-size=1300,3000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0 and shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 50_000, p.stderr[-2000:]


@pytest.mark.slow  # its `report` fixture trains two runs and reports them; it needs no browser: never skipped
def test_the_page_is_self_contained(report):
    text = report["report_html"].read_text()
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing fetched: no file, no server, no network
    assert text.count('src="data:image/png;base64,') == len(report["figures"])
    headline = html.escape(report["headline"][0])
    assert text.index(headline) < text.index("<figure")  # the answer before the figures


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)
def test_the_check_catches_a_broken_image_and_a_script_error(report, tmp_path):
    """The same check on a damaged copy: what the first test relies on can fail."""
    text = report["report_html"].read_text()
    text = text.replace('src="data:image/png;base64,', 'src="data:image/png;base64,AAAA', 1)
    text = text.replace("</body>", "<script>notDefinedAnywhere();</script></body>")
    page = tmp_path / "damaged.html"
    page.write_text(text)
    check = browser_check(page)
    assert check["broken"] == 1 and check["images"] == len(report["figures"])
    assert any("notDefinedAnywhere" in e for e in check["errors"]), check


def test_definitions_are_a_list_with_bold_terms_and_everything_else_escaped():
    from ics.analysis.html import _definitions

    html = _definitions("* **Seed groups**: runs that\n  differ only in `trainer.seed` <b>x</b>.\n* **Drift**: W1")
    assert html == (
        "<ul><li><b>Seed groups</b>: runs that differ only in <code>trainer.seed</code> "
        "&lt;b&gt;x&lt;/b&gt;.</li><li><b>Drift</b>: W1</li></ul>"
    )
