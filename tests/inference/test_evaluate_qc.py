"""`cardioseg evaluate` gives every case a QC flag, its reasons and its uncertainty, and counts the flagged ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from inference_helpers import camus_files
from typer.testing import CliRunner

from cardioseg.artifacts import EvaluationFiles
from cardioseg.cli import app
from cardioseg.clinical.qc import assess_for_plan
from cardioseg.data.prepared import PreparedDataset


def _raw(camus224: Path, folder: Path, count: int) -> Path:
    folder.mkdir()
    for file in camus_files(camus224, count):
        shutil.copy(file, folder / file.name)
        shutil.copy(file.with_name(file.stem + "_gt.png"), folder / f"{file.stem}_gt.png")
    return folder


def test_evaluate_writes_qc_columns_and_counts(camus224: Path, camus_checkpoint: Path, tmp_path: Path) -> None:
    raw = _raw(camus224, tmp_path / "raw", 6)
    out = tmp_path / "ev"
    result = CliRunner().invoke(app, ["evaluate", "-m", str(camus_checkpoint), "--tta", "-d", str(raw),
                                      "--split", "all", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    files = EvaluationFiles(out)
    per_case = pd.read_csv(files.per_case, keep_default_na=False)
    summary = json.loads(files.summary.read_text())
    qc = summary["qc"]
    assert qc["n_cases"] == 6 and qc["n_worst"] == 1
    assert f"QC: {qc['n_flagged']} of 6 cases flagged for a check" in " ".join(result.output.split())
    post = per_case[per_case["variant"] == "post"].set_index("case_id")
    assert set(post["qc_flag"]) <= {"ok", "check"} and (post["qc_uncertainty"].astype(float).between(0, 1)).all()
    assert ((post["qc_flag"] == "check") == (post["qc_reasons"] != "")).all()
    prepared = PreparedDataset(files.prepared)
    with np.load(files.predictions) as store:
        case = sorted(store)[0]
        expected = assess_for_plan(store[case], prepared.plan, None, float(post.loc[case, "qc_uncertainty"]), case)
    assert post.loc[case, "qc_reasons"].startswith("; ".join(r for r in expected.reasons if "EF" not in r))
