"""Analysis of finished (and unfinished) runs: `ics report`.

load.py       job directories -> typed Jobs (through ics.record)
tolerance.py  LR tolerance (pure functions of RunResults)
tables.py     the tables (terminal, report.md, runs.csv)    figures.py  the figures
report.py     make_report: all of it into <dir>/report/
"""

from ics.analysis.load import Job, load_jobs
from ics.analysis.report import make_report

__all__ = ["Job", "load_jobs", "make_report"]
