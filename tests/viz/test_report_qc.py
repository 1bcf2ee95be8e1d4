"""The report shows each case's QC flag, uncertainty and reasons, flagged cases first, and the count."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cardioseg.config import load_config
from cardioseg.data.prepared import PreparedDataset
from cardioseg.evaluation.quality import qc_performance, qc_table
from cardioseg.fileio import write_json
from cardioseg.report.html import build_report

NO_MEDIA = {"report.max_videos": 0, "report.max_cases": 1}


@pytest.fixture(scope="module")
def qc_report(camus_eval: Path, camus_small: PreparedDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The echo evaluation with QC columns: one case made empty, one case uncertain."""
    evaluation = Path(shutil.copytree(camus_eval, tmp_path_factory.mktemp("qc_report") / "evaluation"))
    predictions = {case: camus_small.original_label(case) for case in camus_small.cases}
    predictions["patient0003_4CH_ES"] = predictions["patient0003_4CH_ES"] * 0
    uncertainty = {case: 0.02 for case in predictions} | {"patient0002_2CH_ED": 0.4}
    per_case = pd.read_csv(evaluation / "per_case.csv").merge(
        qc_table(camus_small, predictions, uncertainty, spacing_known=False), on="case_id", how="left")
    per_case.to_csv(evaluation / "per_case.csv", index=False)
    summary = json.loads((evaluation / "summary.json").read_text())
    summary["qc"] = qc_performance(per_case)
    write_json(evaluation / "summary.json", summary)
    return build_report(evaluation, load_config(overrides=NO_MEDIA))


def test_flagged_cases_come_first_with_their_reasons(qc_report: Path) -> None:
    html = qc_report.read_text()
    section = html[html.index('<section id="per-case">'):]
    assert "QC: 2 of 16 cases flagged for a check" in section
    cases = re.findall(r'<tr><td class="text">(patient\d+_\dCH_E[DS])</td>', section)
    assert cases[:2] == ["patient0002_2CH_ED", "patient0003_4CH_ES"]  # flagged, the most uncertain first
    assert len(cases) == 16
    row = re.search(r'<tr><td class="text">patient0003_4CH_ES</td>(.*?)</tr>', section, re.S)
    assert row and '<td class="text qc-check" data-value="check">check</td>' in row.group(1)
    assert row.group(1).endswith('<td class="note">LV endocardium empty</td>')  # no EF: an empty ES has no volume
    calm = re.search(r'<tr><td class="text">patient0001_2CH_ED</td>(.*?)</tr>', section, re.S)
    assert calm and 'data-value="ok">ok</td>' in calm.group(1)
    assert "cases flagged by QC" in html
