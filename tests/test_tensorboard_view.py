"""`ics tensorboard` on a two-group sweep, in headless Chromium (tests/cdp.py): the URL it prints
opens on Custom Scalars with the report's band charts first and smoothing 0, colours a group's runs
alike (Time Series), and sets smoothing 0 in the Scalars tab by the same parameter. Skips, saying why, without Chromium;
the URL itself is checked everywhere."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest
from clirun import ICS
from test_report import GOOD_LR, cfg, tiny_data
from test_report_html import BROWSER, NO_BROWSER

from ics.analysis import make_report
from ics.analysis.tboard import ACC_CHART, MARGIN_CATEGORY
from ics.train import build_trainer

# in the page: a query through every shadow root, and a promise that settles once fn() is truthy
# (fails after 60 s, so a page that never gets there fails the test rather than hanging it)
HELPERS = r"""
const deep = (sel, root = document) => { const out = [...root.querySelectorAll(sel)];
  for (const e of root.querySelectorAll('*')) if (e.shadowRoot) out.push(...deep(sel, e.shadowRoot)); return out; };
const until = (fn, ms = 60000) => new Promise((ok, no) => { const t0 = Date.now();
  const step = () => { let v; try { v = fn(); } catch (e) {} if (v) ok(v);
    else if (Date.now() - t0 > ms) no(new Error('not reached: ' + fn)); else setTimeout(step, 100); }; step(); });
"""
CUSTOM_SCALARS = r"""(async () => {HELPERS
  const d = await until(() => { const x = deep('tf-custom-scalar-dashboard')[0]; return x && x._layout && x._layout.category && x; });
  const card = await until(() => deep('tf-custom-scalar-margin-chart-card, tf-custom-scalar-multi-line-chart-card')[0]);
  await until(() => deep('path', card.shadowRoot).some(p => (p.getAttribute('d') || '').length > 20));  // drawn
  return {smoothing: d._smoothingWeight, categories: d._layout.category.map(c => c.title),
          first: [card.tagName.toLowerCase(), card.title]};
})()""".replace("HELPERS", HELPERS)
SCALARS = r"""(async () => {HELPERS
  const d = await until(() => deep('tf-scalar-dashboard')[0]);
  return {hash: location.hash, smoothing: d._smoothingWeight};
})()""".replace("HELPERS", HELPERS)
TIME_SERIES = r"""(async () => {HELPERS
  const rows = await until(() => { const r = [...document.querySelectorAll('.run-color-swatch')]; return r.length >= 8 && r; });
  const run = s => { let e = s; while (e && !/(groups|jobs)\//.test(e.innerText || '')) e = e.parentElement;
                     return e.innerText.match(/(groups|jobs)\/\S+/)[0]; };  // the nearest row around the swatch
  return rows.map(s => [run(s), getComputedStyle(s).backgroundColor]);
})()""".replace("HELPERS", HELPERS)


def test_the_url_colours_by_the_swept_keys_and_sets_smoothing_in_every_tab():
    from ics_cli.tensorboard import colour_regex, swept_keys, url

    names = ["0_model.norm=none,trainer.seed=0", "1_model.norm=batch,trainer.seed=0", "model.norm=none"]
    assert swept_keys(names) == ["model.norm"]  # the seed is not a group
    assert colour_regex(["model.norm"]) == r"model\.norm=([^,/]*)"
    two = re.compile(colour_regex(["optim.lr", "model.norm"]))  # either order in the name
    assert two.search("jobs/3_model.norm=batch,optim.lr=0.1").groups() == ("0.1", "batch")
    address = url("0.0.0.0", 6123, colour_regex(["model.norm"]), "custom_scalars")
    assert address.startswith("http://127.0.0.1:6123/?smoothing=0&runColorGroup=regex:")
    assert unquote(address).endswith(r"model\.norm=([^,/]*)#custom_scalars&_smoothingWeight=0")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    data = tiny_data()
    num = 0
    for norm in ("none", "batch"):
        for seed in range(3):  # 3 seeds: a band
            c = cfg(norm, GOOD_LR)
            c = dataclasses.replace(c, trainer=dataclasses.replace(c.trainer, seed=seed))
            build_trainer(
                c,
                root / f"{num}_model.norm={norm},trainer.seed={seed}",
                data=data,
                overrides=[f"model.norm={norm}", f"trainer.seed={seed}"],
            ).fit()
            num += 1
    make_report(root)
    return root


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason=NO_BROWSER)
def test_tensorboard_opens_on_the_bands_coloured_by_group(sweep, tmp_path):
    from cdp import Browser

    proc = subprocess.Popen(
        [*ICS, "tensorboard", str(sweep), "--no-open"],
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    browser = None
    try:
        line = proc.stdout.readline()  # printed once TensorBoard listens, with the port it bound
        m = re.search(r"(http://127\.0\.0\.1:\d+/\S+)", line)
        assert m, line + proc.stderr.read()
        address = m.group(1)
        assert "runColorGroup=regex:" in address and address.endswith("#custom_scalars&_smoothingWeight=0")
        assert "no log step axis" in proc.stdout.readline() + proc.stdout.readline()  # said once, with report.html
        browser = Browser(BROWSER)
        browser.open(address)
        got = browser.eval(CUSTOM_SCALARS)
        assert got["smoothing"] == 0
        assert got["categories"][0] == MARGIN_CATEGORY  # the band charts first
        assert got["first"] == ["tf-custom-scalar-margin-chart-card", ACC_CHART]
        browser.screenshot(Path(os.environ.get("ICS_SCREENSHOT_DIR", tmp_path)) / "tensorboard_custom_scalars.png")
        browser.open(address.replace("#custom_scalars", "#scalars"))  # the same hash parameter, another tab
        assert browser.eval(SCALARS)["smoothing"] == 0
        browser.open(address.replace("#custom_scalars", "#timeseries"))
        colours = dict(browser.eval(TIME_SERIES))
        norm = {run: re.search(r"model\.norm=(\w+)", run).group(1) for run in colours}
        assert set(norm.values()) == {"none", "batch"} and any(r.startswith("groups/") for r in colours)
        for a in colours:
            for b in colours:
                assert (colours[a] == colours[b]) == (norm[a] == norm[b]), (a, b, colours)
        browser.screenshot(Path(os.environ.get("ICS_SCREENSHOT_DIR", tmp_path)) / "tensorboard_time_series.png")
    finally:
        if browser is not None:
            browser.close()
        proc.terminate()
        proc.wait(timeout=60)
