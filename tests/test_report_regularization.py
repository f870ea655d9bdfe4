"""The regularization study's report: the train − test gap per group, a plain verdict on "BN removes
the need for dropout", and a caveat first when the runs are shorter than the study's budget."""

from __future__ import annotations

import yaml

from ics.analysis import make_report
from ics.record import Status, Summary, write_summary

TEST = {
    ("batch", 0.0): [0.978, 0.979, 0.977],
    ("batch", 0.2): [0.9785, 0.9780, 0.9790],
    ("none", 0.0): [0.972, 0.973, 0.971],
}
TRAIN = {
    ("batch", 0.0): [0.999, 0.998, 0.999],
    ("batch", 0.2): [0.985, 0.986, 0.984],
    ("none", 0.0): [0.995, 0.996, 0.995],
}


def write_sweep(root, steps):
    num = 0
    for (norm, p), accs in TEST.items():
        for seed, acc in enumerate(accs):
            d = root / f"{num}_job"
            overrides = [f"model.norm={norm}", f"model.dropout={p}", f"trainer.seed={seed}", f"trainer.steps={steps}"]
            config = {
                "name": "regularization",
                "model": {"name": "mlp", "norm": norm, "dropout": p},
                "optim": {"name": "sgd", "lr": 1.0},
                "trainer": {"seed": seed, "threads": 1, "steps": steps},
            }
            (d / ".hydra").mkdir(parents=True)
            (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
            write_summary(
                d,
                Summary(
                    status=Status.COMPLETED,
                    final_test_acc=acc,
                    best_test_acc=acc,
                    chance_acc=0.1,
                    final_train_acc=TRAIN[norm, p][seed],
                    overrides=overrides,
                    config=config,
                    steps=steps,
                ),
            )
            num += 1
    return root


def test_shortened_run_gets_a_caveat_a_gap_table_and_a_verdict(tmp_path):
    res = make_report(write_sweep(tmp_path / "short", 1500), tmp_path / "out")
    lines = res["headline"]
    assert lines[0].startswith("Shortened run: these runs trained 1,500 of the regularization study's 20,000 steps")
    verdict = next(line for line in lines if line.startswith("Does BN remove the need for dropout?"))
    assert (
        "did not raise test accuracy" in verdict
        and "dropout 0.2: +0.0005" in verdict
        and "Adding dropout to BN" in verdict
    )
    gap = next(t for t in res["tables"] if t.title.startswith("Generalisation"))
    rows = {r[0]: r for r in gap.cells}
    bn = next(k for k in rows if "batch" in k and "dropout=0.2" not in k)
    assert rows[bn][3].startswith("+0.0207 ± ")  # mean of 0.999−0.978, 0.998−0.979, 0.999−0.977
    assert "dropout on" in gap.caption


def test_a_full_length_run_has_no_caveat(tmp_path):
    res = make_report(write_sweep(tmp_path / "full", 20000), tmp_path / "out")
    assert not any(line.startswith("Shortened run") for line in res["headline"])


def test_no_gap_table_where_dropout_does_not_vary(tmp_path):
    from test_inference import write_sweep as norms_only

    res = make_report(norms_only(tmp_path / "norms"), tmp_path / "out")
    assert not any(t.title.startswith("Generalisation") for t in res["tables"])
