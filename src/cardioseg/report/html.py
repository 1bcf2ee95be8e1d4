"""`cardioseg report`: one self-contained HTML file for a training run or an evaluation.

The file opens offline in any browser and can be mailed as is: figures are PNG data URIs, case
pictures WebP at display size, videos MP4 (or GIF) data URIs, the 3D view carries plotly.js inline
(gzip-compressed) with a bounded number of surface points, and sorting the per-case table is a few
lines of inline script. Where the inputs come from: ``report.inputs``; what the
sections hold: ``report.content``; the page itself: ``report.template``.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from cardioseg.artifacts import EvaluationFiles, RunFiles
from cardioseg.config import Config
from cardioseg.fileio import write_text
from cardioseg.report.content import report_context
from cardioseg.report.inputs import load_evaluation, locate
from cardioseg.report.template import TEMPLATE


def build_report(run_dir: Path, cfg: Config, evaluation: Path | None = None) -> Path:
    """Write the HTML report of a run or evaluation folder (``cfg.report.out``, default inside ``run_dir``).

    ``evaluation`` names the evaluation folder when it is neither ``run_dir`` nor inside it.
    """
    run_dir = Path(run_dir)
    sources = locate(run_dir, cfg, evaluation)
    loaded = load_evaluation(sources.evaluation) if sources.evaluation else None
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = environment.from_string(TEMPLATE).render(**report_context(sources, loaded, cfg))
    default = RunFiles(run_dir).report if sources.run == run_dir else EvaluationFiles(run_dir).report
    return write_text(cfg.report.out or default, html)
