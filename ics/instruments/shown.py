"""How `ics report` shows an instrument's series, declared on the instrument's class as `shown`.

An instrument with `shown = Shown(...)` gets, from what it declares and no edit in ics/analysis, a
figure named by its key (one panel per column: mean over seeds with a 95% CI band per seed group), a
table (one row per seed group, one cell per column: mean ± CI over seeds of each run's mean or last
value) and a caption in report.html. A column's `tag` and `label` may hold `{item}`: the column is then
repeated for each of the first `max_items` entries of the list the instrument's `meta()` has under
`over` (its layers, say).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple


@dataclass(frozen=True)
class Column:
    tag: str  # the series tag, e.g. "my_key/{item}/ratio"
    label: str  # panel title and table header, e.g. "ratio {item}"
    log: bool = False  # a log-scale quantity: a log axis and geometric means in the figure
    last: bool = False  # the table takes each run's last value (default: its mean over the run)
    fmt: str = ".3g"  # the table's number format


@dataclass(frozen=True)
class Shown:
    title: str  # the figure's and the table's title
    columns: Tuple[Column, ...]
    caption: str = ""  # report.html's caption under the figure, and the table's note
    over: str = ""  # a key of meta() listing the items a column with {item} repeats for
    max_items: int = 4

    def expand(self, meta: dict) -> List[Column]:
        """The columns, those holding {item} once per item of meta[over]."""
        items = list(meta.get(self.over, []))[: self.max_items] if self.over else []
        out: List[Column] = []
        for c in self.columns:
            if "{item}" in c.tag:
                out += [Column(c.tag.format(item=i), c.label.format(item=i), c.log, c.last, c.fmt) for i in items]
            else:
                out.append(c)
        return out
