"""An instrument shows in `ics report` through what it declares (`shown`, ics/instruments/shown.py): a
throwaway instrument registered for the test's duration gets its figure, its table and its caption in
report.md and report.html, with no edit in ics/analysis."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_report import GOOD_LR, cfg, tiny_data

from ics.analysis import make_report
from ics.instruments import Instrument
from ics.instruments.shown import Column, Shown
from ics.record import names
from ics.registry import INSTRUMENTS
from ics.train import build_trainer

KEY = "throwaway_ratio"


class Ratio(Instrument):
    key = KEY
    shown = Shown(
        title="A test's ratio per layer",
        caption="what the test's instrument measures",
        columns=(
            Column(f"{KEY}/{{item}}/ratio", "ratio {item}", log=True),
            Column(f"{KEY}/total", "total", last=True, fmt=".2f"),
        ),
        over="layers",
        max_items=2,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two short runs (BN, no BN), each with the npz the instrument would have written."""
    root = tmp_path_factory.mktemp("sweep")
    data = tiny_data()
    for num, norm in enumerate(("none", "batch")):
        overrides = [f"model.norm={norm}", f"optim.lr={GOOD_LR:g}"]
        run = root / f"{num}_{','.join(overrides)}"
        build_trainer(cfg(norm, GOOD_LR), run, data=data, overrides=overrides).fit()
        steps = np.arange(0, 60, 10)
        np.savez(
            run / names.instrument_file(KEY),
            steps=steps,
            meta=np.asarray(json.dumps({"layers": ["h1", "h2", "out"]})),
            **{
                f"{KEY}/h1/ratio": 1.0 + steps + num,
                f"{KEY}/h2/ratio": 2.0 + steps,
                f"{KEY}/out/ratio": steps * 0.0,
                f"{KEY}/total": np.full(len(steps), 3.0 + num),
            },
        )
    return root


@pytest.fixture
def sweep_with_ratio(runs, tmp_path, monkeypatch):
    """A copy of the runs, with the instrument registered for the test's duration."""
    shutil.copytree(runs, tmp_path / "sweep")
    monkeypatch.setitem(INSTRUMENTS, KEY, Ratio)
    return tmp_path / "sweep"


def test_a_new_instrument_shows_in_the_report_from_its_declaration(sweep_with_ratio, tmp_path):
    res = make_report(sweep_with_ratio, out=tmp_path / "out")
    assert KEY in res["figures"] and res["figures"][KEY].read_bytes().startswith(b"\x89PNG")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "A test's ratio per layer: mean over the run or last value" in md and f"![{KEY}]({KEY}.png)" in md
    table = next(t for t in res["tables"] if t.title.startswith("A test's ratio per layer"))
    assert table.headers == ["group", "ratio h1", "ratio h2", "total"]  # max_items=2 of meta's layers
    totals = {row[0]: row[-1] for row in table.cells}
    assert totals == {"model.norm=none": "3.00", "model.norm=batch": "4.00"}  # each run's last value
    html = (tmp_path / "out" / "report.html").read_text()
    assert f'alt="{KEY}"' in html and "what the test&#x27;s instrument measures" in html


def test_an_instrument_no_run_measured_is_skipped_with_the_reason(monkeypatch):
    from ics.analysis.figures import fig_shown, make_figures
    from ics.analysis.groups import Group
    from ics.analysis.tables import shown_tables

    monkeypatch.setitem(INSTRUMENTS, KEY, Ratio)
    groups = [Group(key=(("model.norm", "batch"),), label="batch", jobs=[])]  # no run, so no series
    assert fig_shown(groups, KEY, Ratio.shown) == (None, f"no run measured {KEY} ({KEY}=on)")
    assert make_figures(groups, [], "accuracy")[KEY] == (None, f"no run measured {KEY} ({KEY}=on)")
    assert shown_tables(groups) == []
