"""report.html: the report on one self-contained page (opens from the file system; no server, no
network): the headline, the figures embedded as data: URIs in the order that tells the story
(accuracy, Fig. 1 b/c, density, drift per layer, LR tolerance, the rest), then the tables.

Every text comes from run folders (labels, errors, paths): all of it is HTML-escaped. A small inline
script records, once the page has loaded, how many images there are, how many failed to load and
any script error, in `<body data-check="...">`: what the browser test reads (--dump-dom).
"""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path
from typing import Dict, Sequence

from ics.analysis.figures import FIGURES, shown_instruments
from ics.analysis.tables import TextTable

CAPTIONS = {
    "accuracy": "Test accuracy against the training step (log axis): mean over seeds, shaded 95% CI (3+ seeds).",
    "percentiles": "Fig. 1 b/c: percentiles of the last hidden layer's input, BN and no BN on one y-scale.",
    "density": "The input distribution of one unit at four matched steps; each column shares its x-axis.",
    "drift_layers": "Final drift from step 0 per layer, raw and shape units, mean ± 95% CI over seeds.",
    "lr_tolerance": "Accuracy against the learning rate: max non-diverging LR (dotted) and max good LR (triangle).",
    "drift": "Drift from step 0 over training, first and last hidden layer, in raw, shape and σ_ref units.",
    "init_tolerance": "Accuracy against the init std: good range (thick bar) and the range that learns at all (thin).",
    "gradients": "Gradient flow: each layer's ‖∇W‖ relative to the output layer's, and the saturated fraction of g′.",
    "normalizers": "The normalisers side by side: mean ± 95% CI over seeds of each per-normaliser number.",
}

CHECK = """window.icsErrors = [];
window.addEventListener('error', function (e) {
  icsErrors.push(e.message || ('failed to load ' + ((e.target && (e.target.currentSrc || e.target.src)) || '?').slice(0, 60)));
}, true);
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; }).length;
  document.body.setAttribute('data-check', JSON.stringify({images: imgs.length, broken: broken, errors: icsErrors}));
});"""

STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:1250px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.35em;word-break:break-all}.headline{font-size:1.08em;border-left:4px solid #2a6fb0;
padding:.3em .8em;background:#f3f7fb}.headline p{margin:.35em 0}.note{color:#555;font-style:italic}
figure{margin:1.4em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}figcaption{color:#444}
table{border-collapse:collapse;font-size:.86em;margin:.4em 0 1.4em}th,td{border:1px solid #ccc;padding:.2em .45em;
text-align:left;vertical-align:top}th{background:#f2f2f2}caption{text-align:left;font-weight:600;padding:.3em 0}
.cap{color:#555;font-size:.85em;margin-top:-1em}pre{white-space:pre-wrap;font-size:.85em;background:#fafafa;padding:.6em}"""


def _table(t: TextTable) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in t.cells)
    cap = f'<p class="cap">{escape(t.caption)}</p>' if t.caption else ""
    return f"<table><caption>{escape(t.title)}</caption><tr>{head}</tr>{body}</table>{cap}"


def _image(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _definitions(text: str) -> str:
    """report.md's "* **term**: ..." bullets as an HTML list (bold and `code` kept, all else escaped)."""
    items = [" ".join(line.strip() for line in item.splitlines()) for item in re.split(r"\n(?=\* )", text.strip())]
    items = [i[2:] if i.startswith("* ") else i for i in items if i]
    html = [re.sub(r"`([^`]+)`", r"<code>\1</code>", re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escape(i))) for i in items]
    return "<ul>" + "".join(f"<li>{h}</li>" for h in html) + "</ul>"


def write_html(
    path: Path,
    src: str,
    lines: Sequence[str],
    counts: str,
    tables: Sequence[TextTable],
    figures: Dict[str, Path],
    notes: Sequence[str],
    definitions: str,
) -> None:
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ICS report: {escape(src)}</title>",
        f"<style>{STYLE}</style>",
        f"<script>{CHECK}</script>",
        "</head><body>",
        f"<h1>ICS report: {escape(src)}</h1>",
    ]
    if lines:
        parts.append('<div class="headline">' + "".join(f"<p>{escape(line)}</p>" for line in lines) + "</div>")
    parts.append(f"<p>{escape(counts)}</p>")
    parts += [f'<p class="note">{escape(n)}</p>' for n in notes]
    shown = shown_instruments()  # an instrument's own caption (ics.instruments.shown)
    for name in FIGURES + tuple(k for k in shown if k not in FIGURES):  # FIGURES, then instruments registered since
        if name in figures:
            caption = CAPTIONS.get(name) or getattr(shown.get(name), "caption", "") or name.replace("_", " ")
            parts.append(
                f'<figure><img alt="{escape(name)}" src="{_image(figures[name])}">'
                f"<figcaption>{escape(caption)}</figcaption></figure>"
            )
    parts += ["<h2>Tables</h2>"] + [_table(t) for t in tables]
    parts += ["<h2>Definitions</h2>", _definitions(definitions), "</body></html>"]
    Path(path).write_text("\n".join(parts), encoding="utf-8")
