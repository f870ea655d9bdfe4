"""The run record: what a job directory holds and how to read it back.

names.py    every file, array and tag name        summary.py  Status and the typed summary.json
files.py    atomic writes, strict JSON/npz         lock.py     the run lock (is a run alive?)
jobs.py     job directories in any state (running, killed, unreadable ...)
checkpoint.py  a checkpoint read back as data (its step; the whole state for a resume)
"""

from ics.record import names
from ics.record.files import atomic_write, write_json, write_npz
from ics.record.jobs import JobRecord, find_job_dirs, read_job, read_jobs, read_planned
from ics.record.lock import RunBusy, RunLock, holder
from ics.record.summary import SCHEMA_VERSION, RecordError, Status, Summary, read_summary, write_summary

__all__ = [
    "names",
    "atomic_write",
    "write_json",
    "write_npz",
    "JobRecord",
    "find_job_dirs",
    "read_job",
    "read_jobs",
    "read_planned",
    "RunBusy",
    "RunLock",
    "holder",
    "SCHEMA_VERSION",
    "RecordError",
    "Status",
    "Summary",
    "read_summary",
    "write_summary",
]
