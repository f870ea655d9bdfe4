"""The report's inference (issue: conclusions that survive multiplicity, equivalence and censoring):
Holm-adjusted p beside raw p, TOST equivalence, Kaplan–Meier steps-to-target with censored seeds and
the log-rank test, each checked against a hand-worked example or scipy's own implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from scipy import stats

from ics.analysis import make_report
from ics.analysis.stats import holm, kaplan_meier, km_median, logrank, tost
from ics.record import Status, Summary, write_summary


def test_holm_hand_worked():
    # m = 4; sorted 0.005, 0.01, 0.03, 0.04 -> ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 -> running max
    # keeps it monotone: 0.02, 0.03, 0.06, 0.06; returned in the input's order
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.9]) == pytest.approx([1.0, None, 1.0], nan_ok=True)  # capped at 1; None not counted
    assert holm([0.02]) == [0.02]


def test_holm_against_its_definition():
    """Holm rejects H_(i) at level α iff p_(j) <= α / (m − j + 1) for every j <= i: the adjusted p is
    the smallest α that rejects it."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        ps = list(rng.uniform(0, 0.2, size=int(rng.integers(1, 12))))
        adj = holm(ps)
        order = np.argsort(ps)
        for alpha in (0.01, 0.05, 0.1):
            rejected, still = set(), True
            for rank, i in enumerate(order):
                still = still and ps[i] <= alpha / (len(ps) - rank)
                if still:
                    rejected.add(int(i))
            assert {i for i, q in enumerate(adj) if q <= alpha} == rejected


def test_tost_is_two_one_sided_welch_tests():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.97, 0.003, 5), rng.normal(0.971, 0.004, 5)
    for margin in (0.002, 0.005, 0.02):
        e = tost(a, b, margin)
        low = stats.ttest_ind(a + margin, b, equal_var=False, alternative="greater").pvalue
        high = stats.ttest_ind(a - margin, b, equal_var=False, alternative="less").pvalue
        assert e.p == pytest.approx(max(low, high), rel=1e-9)
        assert e.equivalent == (-margin < e.lo90 and e.hi90 < margin)  # TOST at 0.05 ⇔ 90% CI inside
    assert tost(a, b, 0.02).sentence().startswith("equivalent within ±0.02 (TOST p ")
    assert tost(a, b, 0.0005).sentence().startswith("not shown equivalent within ±0.0005")
    assert tost([1.0], b, 0.1) is None  # one value: no test


def test_kaplan_meier_matches_scipy():
    times = [1500, 1917, 2300, 5000, 5000, 800, 2300]
    events = [True, True, True, False, False, True, False]
    ts, surv, var = kaplan_meier(times, events)
    data = stats.CensoredData(
        uncensored=[t for t, e in zip(times, events) if e], right=[t for t, e in zip(times, events) if not e]
    )
    ref = stats.ecdf(data).sf
    assert list(ts) == list(ref.quantiles[: len(ts)])
    assert surv == pytest.approx(ref.probabilities[: len(ts)])
    ci = ref.confidence_interval(0.95, method="log-log")
    z = stats.norm.ppf(0.975)
    for s, v, lo, hi in zip(surv, var, ci.low.probabilities, ci.high.probabilities):  # Greenwood, same bounds
        se = math.sqrt(v) / abs(s * math.log(s))
        assert (s ** math.exp(z * se), s ** math.exp(-z * se)) == pytest.approx((lo, hi), rel=1e-6)


def test_km_median_hand_worked():
    # 5 seeds, 2 never reach it (censored at 5000): S = 0.8, 0.6, 0.4 after 1500, 1917, 2300 -> median 2300;
    # averaging the three that reached it would give 1906, biased low
    km = km_median([1500, 1917, 2300, 5000, 5000], [True, True, True, False, False])
    assert (km.median, km.censored, km.n) == (2300, 2, 5)
    assert km.lo == 1500 and km.hi is None  # the upper end is open: S never falls far enough
    assert km.fmt() == "median 2,300 [95% CI 1,500, ∞] (KM; 2 of 5 censored)"
    none = km_median([5000] * 5, [False] * 5)
    assert none.median is None and none.fmt() == "not reached by half (KM; 5 of 5 censored)"


def test_logrank_matches_scipy():
    a_t, a_e = [100, 200, 200, 300, 400], [True] * 5
    b_t, b_e = [300, 500, 700, 900, 900], [True, True, True, False, False]
    ref = stats.logrank(
        stats.CensoredData(uncensored=a_t), stats.CensoredData(uncensored=b_t[:3], right=b_t[3:])
    ).pvalue
    assert logrank(a_t, a_e, b_t, b_e) == pytest.approx(ref, rel=1e-9)
    assert logrank([5, 5], [False, False], [5], [False]) is None


ACC = {
    "none": [0.960, 0.957, 0.962, 0.958],
    "batch": [0.971, 0.968, 0.974, 0.970],
    "layer": [0.962, 0.958, 0.966, 0.957],
}
STEPS = {"none": [None, 900, None, 700], "batch": [200, 300, 200, 300], "layer": [500, None, 600, 800]}


def write_sweep(root):
    num = 0
    for norm in ACC:
        for seed in range(4):
            d = root / f"{num}_model.norm={norm},trainer.seed={seed}"
            overrides = [f"model.norm={norm}", f"trainer.seed={seed}"]
            config = {
                "model": {"name": "mlp", "norm": norm},
                "optim": {"name": "sgd", "lr": 1.0},
                "trainer": {"seed": seed, "threads": 1, "steps": 1000},
            }
            (d / ".hydra").mkdir(parents=True)
            (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
            first = STEPS[norm][seed]
            write_summary(
                d,
                Summary(
                    status=Status.COMPLETED,
                    final_test_acc=ACC[norm][seed],
                    best_test_acc=ACC[norm][seed],
                    chance_acc=0.1,
                    overrides=overrides,
                    config=config,
                    steps=1000,
                    steps_to_target={"0.9": first},
                    steps_to_target_prev={"0.9": None if first is None else first - 100},
                ),
            )
            num += 1
    return root


def test_report_prints_raw_and_holm_p_and_censored_steps(tmp_path):
    res = make_report(write_sweep(tmp_path / "sweep"), tmp_path / "out")
    table = next(t for t in res["tables"] if t.title.startswith("Differences between groups"))
    assert table.headers[5:7] == ["p (Welch)", "p (Holm)"]
    assert "adjusted for the 3 tests of this table" in table.caption
    raw = {(r[1], r[2]): r[5] for r in table.cells}
    groups = {g.label: g for g in res["groups"]}
    from ics.analysis.stats import welch

    exact = [welch(groups[a].values("final_test_acc"), groups[b].values("final_test_acc")).p for a, b in raw]
    assert [r[6] for r in table.cells] == [("< 0.001" if q < 0.001 else f"{q:.3f}") for q in holm(exact)]
    assert all(r[5] != "-" for r in table.cells)  # the raw p is still there, beside the adjusted one
    assert any(", Holm p " in line and "over 3 tests" in line for line in res["headline"])
    seeds = res["by_title"]["Seed groups: mean ± 95% CI over seeds (Student t)"]
    cell = {r[0]: r[4] for r in seeds.cells}
    # none: 2 of 4 reached 0.9 (700, 900), 2 censored at 1000 -> S = 0.75, 0.5 -> median 900
    assert cell["model.norm=none"].startswith("median 900 ") and cell["model.norm=none"].endswith(
        "(KM; 2 of 4 censored)"
    )
    assert cell["model.norm=layer"].startswith("median 600 ")
    speed = next(t for t in res["tables"] if t.title.startswith("Training speed"))
    row = next(r for r in speed.cells if r[1] == "model.norm=batch" and r[2] == "model.norm=none")
    assert row[6] == "log-rank"
    ta, ea = [200, 300, 200, 300], [True] * 4
    tb, eb = [1000, 900, 1000, 700], [False, True, False, True]
    assert row[7] == f"{logrank(ta, ea, tb, eb):.3f}"


def test_paired_tost_is_two_one_sided_paired_t_tests():
    rng = np.random.default_rng(2)
    ema = rng.normal(0.96, 0.01, 5)
    precise = ema + rng.normal(0.001, 0.002, 5)  # the seeds move together: pairing narrows the test
    e = tost(precise, ema, 0.005, paired=True)
    low = stats.ttest_rel(precise + 0.005, ema, alternative="greater").pvalue
    high = stats.ttest_rel(precise - 0.005, ema, alternative="less").pvalue
    assert e.p == pytest.approx(max(low, high), rel=1e-9)
    assert tost(precise, ema, 0.005).p > e.p  # unpaired ignores the shared seed effect


def test_report_states_bn_statistics_equivalence_with_the_configured_margin(monkeypatch):
    from types import SimpleNamespace

    from ics.analysis import tables

    ema = {0: 0.951, 1: 0.962, 2: 0.957, 3: 0.949}
    gap = {0: 0.001, 1: -0.002, 2: 0.0, 3: 0.002}
    jobs = [SimpleNamespace(seed=s, config={"report.equivalence_margin": m}) for s in ema for m in (0.01,)]
    monkeypatch.setattr(
        tables,
        "series",
        lambda j, key: SimpleNamespace(
            tags={"test_bn/ema/acc": [0.5, ema[j.seed]], "test_bn/precise/acc": [0.6, ema[j.seed] + gap[j.seed]]}
        ),
    )
    group = SimpleNamespace(label="model.norm=batch", jobs=jobs)
    assert tables.equivalence_margin(jobs) == 0.01
    assert tables.equivalence_margin([SimpleNamespace(config={"report.equivalence_margin": "x; rm"})]) == 0.01
    t = tables.bn_equivalence_table([group], 0.01)
    (row,) = t.cells
    assert row[0] == "model.norm=batch" and row[1] == "+0.0003"
    assert row[3].startswith("equivalent within ±0.01 (TOST p ")
    (tight,) = tables.bn_equivalence_table([group], 0.001).cells
    assert tight[3].startswith("not shown equivalent within ±0.001")


def test_the_headline_covers_early_training(tmp_path, monkeypatch):
    from ics.analysis import tables
    from ics.analysis.headline import early_sentence

    res = make_report(write_sweep(tmp_path / "sweep"), tmp_path / "out")
    early = {"none": [0.80, 0.78, 0.82, 0.79], "batch": [0.89, 0.90, 0.88, 0.895], "layer": [0.7, 0.72, 0.69, 0.71]}
    monkeypatch.setattr(tables, "early_acc", lambda j: (250, early[j.config["model.norm"]][j.config["trainer.seed"]]))
    from ics.analysis.groups import contrasts

    c = next(c for c in contrasts(res["groups"]) if c.a.label == "model.norm=batch" and c.b.label == "model.norm=none")
    line = early_sentence(c)
    w = stats.ttest_ind(early["batch"], early["none"], equal_var=False)
    assert line.startswith("BN vs no BN early, at step 250: test acc +0.0938 [95% CI +0.06")
    assert line.endswith(f"Welch p = {w.pvalue:.3f}") or (w.pvalue < 0.001 and line.endswith("p < 0.001"))
