"""`cardioseg report PREDICTIONS_DIR`: one HTML page of a prediction run, cases to check first.

Every input of ``predictions.csv`` with its QC flag and reasons, flagged ones first (most
uncertain first); for each cine (and 2CH + 4CH pair) its area or volume curve with ED and ES
marked, the detected frames and the EF. Curves are embedded as PNG data URIs, so the file opens
offline and can be mailed as is.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from cardioseg.artifacts import PredictionFiles
from cardioseg.errors import DataError
from cardioseg.fileio import write_text

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>cardioseg predictions: {{ folder }}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}.check{color:#b00;font-weight:bold}
img{max-width:100%}</style></head><body>
<h1>Predictions in {{ folder }}</h1>
<p>{{ n }} input(s); <span class="check">{{ n_check }} to check by eye</span> (QC flag "check"), listed first.</p>
<table><tr><th>input</th><th>kind</th><th>QC</th><th>reasons</th><th>uncertainty</th><th>ED / ES frame</th><th>EF %</th></tr>
{% for r in rows %}<tr><td>{{ r.source }}</td><td>{{ r.kind }}</td><td class="{{ r.qc_flag }}">{{ r.qc_flag }}</td>
<td>{{ r.qc_reasons }}</td><td>{{ r.qc_uncertainty }}</td><td>{{ r.phases }}</td><td>{{ r.ef }}</td></tr>
{% endfor %}</table>
{% for c in curves %}<h2>{{ c.title }}</h2><p>ED frame {{ c.ed }}, ES frame {{ c.es }} ({{ c.phase_source }});
EDV {{ c.edv }}, ESV {{ c.esv }} {{ c.unit }}; EF {{ c.ef }} %. QC: <span class="{{ c.qc_flag }}">{{ c.qc_flag }}</span>
{{ c.qc_reasons }}</p><img alt="curve of {{ c.title }}" src="{{ c.uri }}">
{% endfor %}</body></html>
"""


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def build_predictions_report(folder: Path, out: Path | None = None) -> Path:
    """Write the page of a `cardioseg predict` output folder (default ``FOLDER/report.html``)."""
    files = PredictionFiles(Path(folder))
    if not files.table.is_file():
        raise DataError("not a prediction folder: no predictions.csv (run `cardioseg predict -o FOLDER` first)", folder)
    table = pd.read_csv(files.table)
    for column in ("qc_flag", "qc_reasons", "qc_uncertainty", "ed_frame", "es_frame", "ef", "curve_plot"):
        if column not in table:
            table[column] = None
    table["_order"] = (table["qc_flag"] != "check").astype(int)
    table = table.sort_values(["_order", "qc_uncertainty"], ascending=[True, False], na_position="last")
    rows, curves = [], []
    for _, row in table.iterrows():
        phases = "" if pd.isna(row["ed_frame"]) else f"{int(row['ed_frame'])} / {int(row['es_frame'])}"
        rows.append({"source": row["source"], "kind": row.get("kind", ""), "qc_flag": _text(row["qc_flag"]),
                     "qc_reasons": _text(row["qc_reasons"]), "qc_uncertainty": _text(row["qc_uncertainty"]),
                     "phases": phases, "ef": _text(row["ef"])})
        plot = _text(row["curve_plot"])
        if plot and Path(plot).is_file():
            curves.append({"title": Path(str(row["source"])).name, "ed": int(row["ed_frame"]), "es": int(row["es_frame"]),
                           "phase_source": _text(row.get("phase_source")), "edv": _text(row.get("edv")),
                           "esv": _text(row.get("esv")), "unit": _text(row.get("volume_unit")), "ef": _text(row["ef"]),
                           "qc_flag": _text(row["qc_flag"]), "qc_reasons": _text(row["qc_reasons"]),
                           "uri": "data:image/png;base64," + base64.b64encode(Path(plot).read_bytes()).decode("ascii")})
    html = jinja2.Environment(autoescape=True).from_string(PAGE).render(
        folder=Path(folder).name, n=len(rows), n_check=sum(r["qc_flag"] == "check" for r in rows), rows=rows, curves=curves)
    return write_text(out or files.report, html)
