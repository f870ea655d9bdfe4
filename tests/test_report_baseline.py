"""`report.baseline`: the report contrasts every group with one reference group, whatever keys they
differ in (the regularization studies: each (norm, dropout) group against BN alone)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ics.analysis import make_report
from ics.analysis.stats import welch
from ics.config import ReportConfig
from ics.train import build_trainer
from tests.test_report import GOOD_LR, cfg, tiny_data

GROUPS = [("none", 0.0), ("batch", 0.0), ("none", 0.2)]
SEEDS = (0, 1, 2)


def make_sweep(root: Path, baseline) -> Path:
    data = tiny_data()
    num = 0
    for norm, p in GROUPS:
        for seed in SEEDS:
            c = cfg(norm, GOOD_LR)
            c = dataclasses.replace(
                c,
                model=dataclasses.replace(c.model, dropout=p),
                trainer=dataclasses.replace(c.trainer, seed=seed, steps=40),
                report=ReportConfig(baseline=baseline),
            )
            overrides = [f"model.norm={norm}", f"model.dropout={p:g}", f"trainer.seed={seed}"]
            build_trainer(c, root / f"{num}_{','.join(overrides)}", data=data, overrides=overrides).fit()
            num += 1
    return root


def finals(root: Path, norm: str, p: float, field: str):
    out = []
    for d in sorted(root.iterdir()):
        if d.is_dir() and f"model.norm={norm}," in d.name and f"model.dropout={p:g}," in d.name:
            out.append(json.loads((d / "summary.json").read_text())[field])
    return out


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return make_sweep(tmp_path_factory.mktemp("baseline"), ["model.norm=batch", "model.dropout=0"])


# each test below makes a whole report of a sweep it trains (seconds each): slow; the parsing of a
# baseline value is fast
@pytest.mark.slow
@pytest.mark.parametrize("field", ["final_test_acc", "final_test_loss"])
def test_every_group_against_the_baseline(sweep, field):
    res = make_report(sweep)
    table = next(
        t
        for t in res["tables"]
        if t.title.startswith("Each group against the baseline") and field.replace("_", " ") in t.title
    )
    assert "model.dropout=0 model.norm=batch" in table.title
    rows = {r[1]: r for r in table.cells}
    assert set(rows) == {"model.dropout=0 model.norm=none", "model.dropout=0.2 model.norm=none"}
    assert rows["model.dropout=0.2 model.norm=none"][0] == "model.dropout, model.norm"  # two keys differ
    assert rows["model.dropout=0 model.norm=none"][0] == "model.norm"
    ref = finals(sweep, "batch", 0.0, field)
    for (norm, p), label in [
        (("none", 0.0), "model.dropout=0 model.norm=none"),
        (("none", 0.2), "model.dropout=0.2 model.norm=none"),
    ]:
        w = welch(finals(sweep, norm, p, field), ref)
        assert rows[label][3] == f"{w.diff:+.4f}" and rows[label][-1] == "3/3"


@pytest.mark.slow
def test_the_headline_leads_with_the_baseline_contrasts(sweep, capsys):
    make_report(sweep)
    first, second = capsys.readouterr().out.splitlines()[:2]
    assert first.startswith("no BN vs BN (model.dropout=0): final test acc "), first  # one key differs
    assert second.startswith(
        "model.dropout=0.2 model.norm=none vs the baseline model.dropout=0 model.norm=batch: final test acc "
    ), second


@pytest.mark.slow
def test_a_baseline_that_matches_no_group_is_a_note_not_a_table(tmp_path, capsys):
    res = make_report(make_sweep(tmp_path, ["model.norm=layer"]))
    assert not any(t.title.startswith("Each group against") for t in res["tables"])
    assert "report.baseline (model.norm=layer) matches no group of this report" in capsys.readouterr().out


def test_a_baseline_value_matches_however_the_number_is_written():
    """report.baseline is text (model.norm_p=1) while model.norm_p is stored as the text "1" and lr as a
    float: 1, 1.0, "1" match; inf and "inf" match; none of them match 2 or a word."""
    from ics.analysis.configs import parse_override, same_value
    from ics.analysis.groups import Group, baseline_group

    assert same_value(parse_override("model.norm_p=1")[1], "1") and same_value(parse_override("x=inf")[1], "inf")
    assert same_value(parse_override("model.dropout=0")[1], 0.0) and same_value(parse_override("x=1e-3")[1], 0.001)
    assert not same_value(1, "2") and not same_value("batch", "none") and not same_value(True, 1)
    groups = [Group(key=(("model.norm", "lp"), ("model.norm_p", p)), label=p, jobs=[]) for p in ("1", "2", "inf")]
    for text, p in (("model.norm_p=1", "1"), ("model.norm_p=inf", "inf"), ("model.norm_p=2.0", "2")):
        ref, why = baseline_group(groups, [text])
        assert why is None and ref.config["model.norm_p"] == p
