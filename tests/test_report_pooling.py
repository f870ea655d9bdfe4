"""`ics report DIR...` pools sweeps honestly (issue 18, items 1-2): a job that repeats a config and
seed already reported is a replica, never one more seed; the report opens with one sentence per
contrast, and below three seeds it gives no interval instead of a meaningless one."""

from __future__ import annotations

import shutil

import pytest
import yaml
from clirun import invoke

from ics.analysis import make_report
from ics.config import ConfigError
from ics.record import Status, Summary, write_summary

CHANCE = 0.1
# final test accuracy per (norm, seed): BN ahead by about 0.01 with some spread between seeds
ACC = {
    ("batch", 0): 0.971,
    ("batch", 1): 0.968,
    ("batch", 2): 0.974,
    ("none", 0): 0.962,
    ("none", 1): 0.957,
    ("none", 2): 0.965,
}


def write_sweep(root, seeds=(0, 1, 2)):
    """A finished 2 × len(seeds) sweep as summaries (no training: the statistics are what is tested)."""
    num = 0
    for norm in ("none", "batch"):
        for seed in seeds:
            d = root / f"{num}_model.norm={norm},trainer.seed={seed}"
            overrides = [f"model.norm={norm}", f"trainer.seed={seed}"]
            config = {
                "model": {"name": "mlp", "norm": norm},
                "optim": {"name": "sgd", "lr": 1.0},
                "trainer": {"seed": seed, "threads": 1},
            }
            (d / ".hydra").mkdir(parents=True)
            (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
            write_summary(
                d,
                Summary(
                    status=Status.COMPLETED,
                    final_test_acc=ACC[norm, seed],
                    best_test_acc=ACC[norm, seed],
                    chance_acc=CHANCE,
                    overrides=overrides,
                    config=config,
                    steps=100,
                    steps_to_target={"0.9": 40 + 10 * seed},
                ),
            )
            num += 1
    return root


def numbers(res) -> dict:
    """n, mean and CI per group and the contrast's Δ, CI and p, as report.md prints them."""
    groups = {g.label: (g.n, g.estimate("final_test_acc").fmt()) for g in res["groups"]}
    contrast = res["by_title"]["Differences between groups that differ in one key (Welch's t-test on final test acc)"]
    return {"groups": groups, "contrast": contrast.cells, "headline": res["headline"]}


@pytest.fixture
def three(tmp_path):
    """Three identical sweeps (same configs, same seeds: re-runs) side by side under one folder."""
    parent = tmp_path / "multiruns"
    first = write_sweep(parent / "10-00-00")
    for name in ("11-00-00", "12-00-00"):
        shutil.copytree(first, parent / name)
    return parent


def test_three_identical_sweeps_pooled_equal_one(three, tmp_path):
    one = numbers(make_report(three / "10-00-00", tmp_path / "one"))
    assert one["groups"]["model.norm=batch"][0] == 3 and "±" in one["groups"]["model.norm=batch"][1]
    # the folder holding all three, and the three given one by one: the same n, CI and p as one sweep
    by_parent = make_report(three, tmp_path / "parent")
    by_list = make_report(sorted(three.iterdir()), tmp_path / "list")
    for res in (by_parent, by_list):
        assert numbers(res) == one
        assert len(res["runs"]) == 18  # every job is still listed, with its sweep
        assert len(res["replicas"]) == 6 and all(len(s) == 3 for s in res["replicas"])
        table = res["runs_table"]
        assert table.headers[:2] == ["sweep", "job"]
        assert {row[0] for row in table.cells} == {
            str(p) if res is by_list else p.name for p in sorted(three.iterdir())
        }
        md = res["report_md"].read_text()
        assert (
            "12 jobs repeat a config and seed already run (6 runs run more than once): replicas, not more seeds" in md
        )


def test_the_headline_comes_first(three, tmp_path, capsys):
    res = make_report(three / "10-00-00", tmp_path / "one")
    (line,) = res["headline"]
    screen = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert screen[0] == screen[-1] == line  # on screen first and again last, where the tables end
    diff = sum(ACC["batch", s] for s in range(3)) / 3 - sum(ACC["none", s] for s in range(3)) / 3
    assert line.startswith(f"BN vs no BN: final test acc {diff:+.4f} [95% CI +0.0")
    assert line.endswith("n = 3 seeds each") and ", Welch p = 0.0" in line
    md = res["report_md"].read_text().splitlines()
    assert md[2] == f"**{line}**  "  # right under the title
    assert "skipped" not in "\n".join(md)  # no section for figures nothing was recorded for


def test_two_seeds_give_no_interval(tmp_path):
    res = make_report(write_sweep(tmp_path / "sweep", seeds=(0, 1)))
    (line,) = res["headline"]
    assert "n = 2 seeds each: too few seeds for a 95% interval or a test (none given; 3+ needed)" in line
    assert "CI" not in line
    groups = res["by_title"]["Seed groups: mean ± 95% CI over seeds (Student t)"]
    assert all(" ± " not in cell for row in groups.cells for cell in row), groups.cells  # "grid ±22" is the grid
    contrast = next(t for t in res["tables"] if t.title.startswith("Differences"))
    assert contrast.cells[0][4] == "- (n < 3)" and contrast.cells[0][5] == "- (n < 3)"  # no p either


def test_several_paths_need_an_out(three):
    with pytest.raises(ConfigError, match="2 folders are reported together: give --out"):
        make_report([three / "10-00-00", three / "11-00-00"])


def test_report_takes_several_paths_on_the_command_line(three, tmp_path):
    out = tmp_path / "compare"
    p = invoke(["report", str(three / "10-00-00"), str(three / "11-00-00"), "--out", str(out)])
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("BN vs no BN: final test acc +0.0097 [95% CI")
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    p = invoke(["report", str(three / "10-00-00"), str(three / "11-00-00")])
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [
        "error: 2 folders are reported together: give --out, a new folder for "
        "the report (the default, <dir>/report, belongs to one sweep)"
    ]


@pytest.mark.parametrize(
    "out, says",
    [
        ("", "is the current folder"),  # typer reads "" as "."
        (".", "is the current folder"),
        ("parent", "holds runs or sweeps ("),
        ("a_file/report", "cannot be created"),
    ],
)
def test_bad_out_folders_are_one_line(three, tmp_path, out, says):
    (tmp_path / "a_file").write_text("x")
    target = {"parent": str(three)}.get(out, out)
    p = invoke(["report", str(three / "10-00-00"), "--out", target], tmp_path)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("error: --out ") and says in line, line
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "a_file").is_dir()


def test_the_same_folder_twice_is_refused(three, tmp_path):
    p = invoke(["report", str(three / "10-00-00"), str(three / "10-00-00") + "/", "--out", str(tmp_path / "x")])
    assert p.returncode != 0 and "Traceback" not in p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert "is given twice" in line and not (tmp_path / "x").exists()


def test_runs_csv_groupby_counted_gives_the_reports_n(three, tmp_path):
    """A pooled report's runs.csv lists every job, with the group it belongs to and whether it counts:
    a groupby over the counted rows gives the report's n (3 per group), not 9."""
    import csv
    from collections import Counter

    res = make_report(three, tmp_path / "parent")
    with open(res["runs_csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 18 and {r["group"] for r in rows} == {"model.norm=none", "model.norm=batch"}
    n = Counter(r["group"] for r in rows if r["counted"] == "True")
    assert n == {g.label: g.n for g in res["groups"]} == {"model.norm=none": 3, "model.norm=batch": 3}
    later = [r for r in rows if r["replica_of"]]
    assert len(later) == 12 and all(r["counted"] == "False" for r in later)
    assert all(r["replica_of"].startswith("10-00-00") for r in later)  # the first sweep's job counts
    # docs/guide.md's pandas line, in plain Python: the counted rows' mean per group is the report's
    acc: dict = {}
    for r in rows:
        if r["counted"] == "True":
            acc.setdefault(r["group"], []).append(float(r["final_test_acc"]))
    for g in res["groups"]:
        assert abs(sum(acc[g.label]) / len(acc[g.label]) - g.estimate("final_test_acc").mean) < 1e-12
