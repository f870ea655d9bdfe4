"""The regularization study's report: the train − test gap per group (the train side scored in eval
mode where the runs recorded it), a plain verdict on "BN removes the need for dropout", and a caveat
first when the runs are shorter than the study's budget."""

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
TRAIN_EVAL = {  # the same runs' fixed training subset in eval mode: dropout off, so above TRAIN's dropout row
    ("batch", 0.0): [0.9990, 0.9985, 0.9995],
    ("batch", 0.2): [0.9970, 0.9975, 0.9965],
    ("none", 0.0): [0.9950, 0.9960, 0.9955],
}


def write_sweep(root, steps, eval_groups=()):
    """One job per seed and group; the groups in eval_groups also record the eval-mode train score."""
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
                    final_train_eval_acc=TRAIN_EVAL[norm, p][seed] if (norm, p) in eval_groups else None,
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
    assert rows[bn][4].startswith("+0.0207 ± ")  # mean of 0.999−0.978, 0.998−0.979, 0.999−0.977
    assert rows[bn][1] == "3" and rows[bn][5] == "training mode"
    assert "± +" not in rows[bn][4]  # the half-width carries no sign
    assert "dropout on" in gap.caption


def test_the_gap_uses_the_eval_mode_train_score_where_every_run_of_a_group_has_it(tmp_path):
    groups = {("batch", 0.0), ("batch", 0.2)}  # the plain net's runs predate the subset
    res = make_report(write_sweep(tmp_path / "sweep", 20000, eval_groups=groups), tmp_path / "out")
    gap = next(t for t in res["tables"] if t.title.startswith("Generalisation"))
    rows = {r[0]: r for r in gap.cells}
    drop = next(k for k in rows if "batch" in k and "dropout=0.2" in k)
    plain = next(k for k in rows if "none" in k)
    # 0.997−0.9785, 0.9975−0.978, 0.9965−0.979: +0.0185 (training mode would give +0.0063)
    assert rows[drop][2].startswith("0.9970 ± ") and rows[drop][4].startswith("+0.0185 ± ")
    assert rows[drop][5] == "eval mode"
    assert rows[plain][5] == "training mode" and rows[plain][4].startswith("+0.0233 ± ")
    assert "scored at the final evaluation exactly as the test split is" in gap.caption


def test_a_full_length_run_has_no_caveat(tmp_path):
    res = make_report(write_sweep(tmp_path / "full", 20000), tmp_path / "out")
    assert not any(line.startswith("Shortened run") for line in res["headline"])


def test_no_gap_table_where_dropout_does_not_vary(tmp_path):
    from test_inference import write_sweep as norms_only

    res = make_report(norms_only(tmp_path / "norms"), tmp_path / "out")
    assert not any(t.title.startswith("Generalisation") for t in res["tables"])
