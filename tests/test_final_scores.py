"""A job's "final" score is the one at its last evaluation: a job killed before any evaluation after
step 0 holds only the untrained model's score, which the closing table, the live view and `ics
report` must not show as its final (or best) result (the live view and the end-of-run table list only
finished runs, which end with an evaluation); one stopped between evaluations names the
evaluation's step."""

from __future__ import annotations

from ics_cli.console import status_rows

from ics.analysis.tables import runs_table
from ics.record import JobRecord, Status, Summary

STEP0_ACC = 0.0987  # the untrained model's accuracy, evaluated at step 0


def _record(status: Status, steps: int, last_eval: int, final: float) -> Summary:
    return Summary(
        status=status,
        steps=steps,
        steps_requested=3000,
        last_eval_step=last_eval,
        final_test_acc=final,
        best_test_acc=max(final, STEP0_ACC),
        overrides=[f"trainer.seed={steps}"],
    )


CASES = [  # (record, final cell, best cell)
    (_record(Status.KILLED, 100, 0, STEP0_ACC), "- (no eval after step 0)", "-"),
    (_record(Status.KILLED, 2500, 2000, 0.9712), "0.9712 (step 2,000)", "0.9712"),
    (_record(Status.COMPLETED, 3000, 3000, 0.9801), "0.9801", "0.9801"),
]


def test_the_closing_table_shows_no_step_0_score_as_final(tmp_path):
    jobs = [JobRecord(tmp_path / str(i), i, s.status, s, s.overrides) for i, (s, _, _) in enumerate(CASES)]
    rows, _ = status_rows(jobs)
    assert [(r[3], r[4]) for r in rows] == [(final, best) for _, final, best in CASES]


def test_the_report_per_job_table_shows_no_step_0_score_as_final():
    rows = [
        {
            "job": i,
            "label": " ".join(s.overrides),
            "status": s.status,
            "status_text": str(s.status),
            "steps": s.steps,
            "last_eval_step": s.last_eval_step,
            "final_test_acc": s.final_test_acc,
            "best_test_acc": s.best_test_acc,
            "counted_test_acc": s.final_test_acc,
            "max_drift_w1_raw": None,
        }
        for i, (s, _, _) in enumerate(CASES)
    ]
    table = runs_table(rows, [], "runs")
    assert [(c[3], c[4]) for c in table.cells] == [(final, best) for _, final, best in CASES]
