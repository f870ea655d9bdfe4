"""Counted nouns agree with their number wherever ics says one: "sweep: 1 job", never "1 jobs"."""

from __future__ import annotations

from ics.words import count, of, them


def test_a_count_of_one_is_singular_and_others_plural():
    assert [count(n, "job") for n in (0, 1, 2, 1500)] == ["0 jobs", "1 job", "2 jobs", "1,500 jobs"]
    assert count(1, "usable core") == "1 usable core" and count(3, "CUDA device") == "3 CUDA devices"
    assert of(1, 1, "job") == "1/1 job" and of(2, 3000, "step") == "2/3,000 steps"
    assert them(["1"]) == "it" and them(["1", "2"]) == "them"


def test_a_one_job_sweeps_closing_table_says_1_job(tmp_path):
    from ics_cli.console import print_status_table
    from rich.console import Console

    from ics.record import JobRecord, Status, Summary

    job = JobRecord(tmp_path / "0", 0, Status.COMPLETED, Summary(status=Status.COMPLETED, final_test_acc=0.9), ["x=1"])
    for width in (160, 30):  # the table, and one block per job
        console = Console(width=width, record=True, color_system=None)
        print_status_table([job], tmp_path, console)
        text = console.export_text()
        assert "sweep: 1 job" in text and "1 jobs" not in text, text


def test_a_one_job_sweep_in_ics_status_says_1_job(tmp_path):
    import json

    from clirun import invoke

    from ics.record import Status, Summary, write_summary

    sweep = tmp_path / "s"
    write_summary(sweep / "0_x=1", Summary(status=Status.COMPLETED, steps=1, overrides=["x=1"]))
    (sweep / "0_x=1" / "progress.json").write_text(json.dumps({"step": 1, "steps": 1}))
    (sweep / "jobs.json").write_text(json.dumps([["x=1"]]))
    r = invoke(["status", str(tmp_path)])
    assert r.returncode == 0 and "1/1 job done" in r.stdout and "1/1 step" in r.stdout, r.stdout
    assert "1 jobs" not in r.stdout and "1 steps" not in r.stdout, r.stdout
