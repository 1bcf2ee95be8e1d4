"""Write a sweep's results: CSV tables (numbers), one Markdown and one HTML report (text), plots."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from cardioseg.config import Config
from cardioseg.evaluation.compare import compare_models
from cardioseg.fileio import write_text, write_with
from cardioseg.sweep.grid import AUGMENTATION_LABELS
from cardioseg.sweep.plots import write_plots
from cardioseg.sweep.tables import (
    KEY,
    aggregate,
    architecture_table,
    best_rows,
    best_table,
    comparisons,
    display_architecture,
    display_best,
    display_comparisons,
    display_schedule,
    encoder_table,
    encoders_across_architectures,
    findings,
    runs_frame,
    schedule_table,
)


def to_markdown(frame: pd.DataFrame) -> str:
    """A pipe table (pandas' own needs tabulate); MultiIndex headers are joined with spaces."""
    shown = frame.reset_index() if frame.index.name else frame
    header = [" ".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c) for c in shown.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines)


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    flat = frame.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = ["_".join(str(p) for p in c if str(p)).replace(" ", "_") for c in flat.columns]
    return write_with(path, lambda tmp: flat.to_csv(tmp, index=frame.index.name is not None))


def write_report(out_dir: Path, cfg: Config, records: list[dict[str, Any]]) -> dict[str, Path]:
    """Every table as CSV under ``tables/``, the plots under ``plots/``, and report.md / report.html."""
    tables_dir = out_dir / "tables"
    written = {"records": _csv(pd.json_normalize(records), out_dir / "records.csv")}
    sections: list[tuple[str, pd.DataFrame | list[str]]] = []
    runs = runs_frame(records)
    plots: list[Path] = []
    if len(runs):
        agg = aggregate(runs)
        comps = comparisons(runs, agg)
        best = best_table(agg)
        sections.append(("Findings", findings(comps, best)))
        for arch in dict.fromkeys(agg["arch"]):
            table = architecture_table(agg, arch)
            written[f"arch_{arch}"] = _csv(table, tables_dir / f"arch_{arch}.csv")
            sections.append((f"Architecture {arch}", display_architecture(table)))
        for encoder in encoders_across_architectures(agg):
            table = encoder_table(agg, encoder)
            written[f"encoder_{encoder}"] = _csv(table, tables_dir / f"encoder_{encoder}.csv")
            sections.append((f"Encoder {encoder} across architectures", display_architecture(table)))
        written["best"] = _csv(best, tables_dir / "best_per_architecture.csv")
        written["comparisons"] = _csv(comps, tables_dir / "comparisons.csv")
        sections.append(("Best configuration per architecture", display_best(best)))
        sections.append(("Paired seed comparisons (Dice)", display_comparisons(comps)))
        schedule = schedule_table(agg)
        if schedule is not None:
            written["schedule"] = _csv(schedule, tables_dir / "schedule.csv")
            sections.append(("Learning rate, batch size, epochs: training time and Dice", display_schedule(schedule)))
        plots = write_plots(agg, runs, out_dir / "plots")
        if samples := _samples(out_dir / "plots" / "samples.png", cfg, records, agg):
            plots.append(samples)
    failed = [{"run_id": r["run_id"], "error": r.get("error", "")} for r in records if r.get("status") != "ok"]
    if failed:
        sections.append(("Failed runs", pd.DataFrame(failed)))
    notes = _notes(cfg, records)
    written["markdown"] = write_text(out_dir / "report.md", _markdown(notes, sections, plots, out_dir))
    written["html"] = write_text(out_dir / "report.html", _html(notes, sections, plots, out_dir))
    return written


def _best_models(records: list[dict[str, Any]], agg: pd.DataFrame) -> dict[str, Path]:
    """Each architecture's best configuration by mean Dice, best first: name -> the model file of its first seed
    (left out when that file is not on this machine, e.g. a run made on another Ray node)."""
    several_augmentations = agg["augmentation"].nunique() > 1
    models: dict[str, Path] = {}
    for _, row in best_rows(agg).iterrows():
        runs = [r for r in records if r.get("status") == "ok"
                and all(("-" if r.get(k) is None else r[k]) == row[k] for k in KEY)]
        run_dir = min(runs, key=lambda r: r["seed"]).get("run_dir")
        name = row["arch"] + ("" if row["encoder"] == "-" else f" {row['encoder']}")
        name += f" ({AUGMENTATION_LABELS[row['augmentation']]})" if several_augmentations else ""
        if run_dir and (model := Path(run_dir) / "model.safetensors").is_file():
            models[name] = model
    return models


def _samples(out: Path, cfg: Config, records: list[dict[str, Any]], agg: pd.DataFrame) -> Path | None:
    """The studies' figure of random held-out cases (image, reference, prediction), one column per architecture's
    best configuration, so that their masks can be compared case by case."""
    models = _best_models(records, agg)
    if not models:
        return None
    compare_models(list(models.values()), cfg.data.prepared, cfg, out, n_cases=6, seed=0, names=list(models))
    return out


def _notes(cfg: Config, records: list[dict[str, Any]]) -> list[str]:
    ok = [r for r in records if r.get("status") == "ok"]
    unit = ok[0]["distance_unit"] if ok else "px"
    sweep = cfg.sweep
    epochs = "/".join(map(str, sweep.epochs)) if sweep.epochs else str(cfg.train.epochs)
    timed = cfg.train.time_budget and not sweep.equal_epochs
    budget = f"{epochs} epoch(s)" + (f" or {cfg.train.time_budget}, whichever ends first" if timed else " exactly")
    batch = "/".join(map(str, sweep.batch_sizes)) if sweep.batch_sizes else str(cfg.train.batch_size)
    lr = "/".join(map(str, sweep.learning_rates)) if sweep.learning_rates else str(cfg.train.lr)
    return [
        f"{len(ok)} of {len(records)} runs succeeded; every run had the same budget: {budget}, "
        f"batch {batch}, lr {lr}, input {cfg.preprocess.size[0]}x{cfg.preprocess.size[1]}.",
        f"Scored on the held-out split '{cfg.evaluate.split}' of {cfg.data.prepared}: mean over cases of the network "
        f"output (no post-processing) at the original resolution; HD95 in {unit}. 'undef.' counts cases where HD95 "
        "is undefined (one mask empty) and left out of the mean.",
        "'initial' = no augmentation; 'augmented' = the echo preset (shift 20 %, scale 0.5-2). "
        "'± x' = standard deviation over seeds (ddof=1); a cell without it comes from one seed.",
        "A difference is called only when it exceeds the seed-to-seed std AND a paired t-test over the same seeds "
        "gives p < 0.05; the sign test is shown too (it cannot reach 0.05 with fewer than 6 seeds). A comparison uses "
        "only the seeds both configurations have. The best configurations were picked on this same split, so their "
        "numbers lean optimistic.",
    ]


def _markdown(notes: list[str], sections: list[tuple[str, Any]], plots: list[Path], out_dir: Path) -> str:
    parts = ["# Architecture sweep", "", *(f"- {n}" for n in notes)]
    for title, body in sections:
        parts += ["", f"## {title}", ""]
        parts += [f"- {line}" for line in body] if isinstance(body, list) else [to_markdown(body)]
    parts += ["", "## Plots", "", *(f"![{p.stem}]({p.relative_to(out_dir)})" for p in plots)]
    return "\n".join(parts) + "\n"


def _html(notes: list[str], sections: list[tuple[str, Any]], plots: list[Path], out_dir: Path) -> str:
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px;margin-bottom:1em}"
             "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}th{background:#f3f3f3}img{max-width:100%}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Architecture sweep</title><style>{style}</style>"
             "</head><body><h1>Architecture sweep</h1><ul>", *(f"<li>{html.escape(n)}</li>" for n in notes), "</ul>"]
    for title, body in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(body, list):
            parts += ["<ul>", *(f"<li>{html.escape(line)}</li>" for line in body), "</ul>"]
        else:
            parts.append(body.to_html(border=0, na_rep="", index=body.index.name is not None))
    parts += ["<h2>Plots</h2>", *(f"<p><img src='{p.relative_to(out_dir)}' alt='{p.stem}'></p>" for p in plots)]
    return "\n".join(parts) + "\n</body></html>\n"
