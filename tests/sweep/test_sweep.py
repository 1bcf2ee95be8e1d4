"""The architecture sweep: grid, validation, resume, crashes, tables, statistics, Ray."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from cardioseg.cli import app
from cardioseg.config import Config, SweepConfig
from cardioseg.errors import CardiosegError, ConfigError, DataError
from cardioseg.evaluation.evaluate import EvaluationResult
from cardioseg.fileio import folder_lock
from cardioseg.sweep import trial
from cardioseg.sweep.grid import GridPoint, expand_grid, validate_sweep
from cardioseg.sweep.run import run_sweep
from cardioseg.sweep.stats import paired_comparison, pareto_front
from cardioseg.sweep.tables import (
    aggregate,
    architecture_table,
    best_table,
    comparisons,
    encoder_table,
    encoders_across_architectures,
    runs_frame,
)
from cardioseg.sweep.writeup import to_markdown, write_report
from cardioseg.training.run import TrainResult

SweepFactory = Callable[..., Config]

# ---- grid and validation ----------------------------------------------------------------------

def test_grid_crosses_every_axis_and_collapses_encoders_of_encoder_free_networks() -> None:
    sweep = SweepConfig(architectures=["unet", "plain_unet"], encoders=["resnet18", "mobilenet_v2"],
                        augmentations=["none", "echo"], losses=["dice", "dice_bce"], seeds=[0, 1])
    points = expand_grid(sweep, "dice_bce", {"unet": True, "plain_unet": False})
    assert len(points) == 2 * 2 * 2 * 2 + 1 * 2 * 2 * 2  # plain_unet takes no encoder: one slot
    assert len({p.run_id for p in points}) == len(points)
    assert {p.encoder for p in points if p.arch == "plain_unet"} == {None}
    assert GridPoint("unet", "resnet18", None, "echo", "dice", 1) in points


def test_with_extra_seeds_the_grid_runs_the_first_seed_only() -> None:
    sweep = SweepConfig(architectures=["unet"], encoders=["resnet18"], seeds=[3, 4], extra_seeds_for_best=2)
    points = expand_grid(sweep, "dice_bce", {"unet": True})
    assert {p.seed for p in points} == {3} and len(points) == 2


@pytest.mark.parametrize(("sweep", "message"), [
    ({"architectures": ["unet", "segformer-xxl"]}, "unknown architecture 'segformer-xxl'"),
    ({"encoders": ["resnet18", "resnet-9000"]}, "unknown encoder(s) resnet-9000"),
    ({"encoders": [None]}, "lists null, but unet, fpn need(s) an encoder"),
    ({"architectures": ["unet", "unet"]}, "sweep.architectures lists unet more than once"),
    ({"seeds": []}, "sweep.seeds is empty"),
    ({"losses": ["dice_ce"]}, "loss dice_ce does not fit a binary task"),
    ({"encoder_weights": [None, "/nowhere/w.safetensors"]}, "does not fit encoder resnet18"),
    ({"architectures": ["unet", "pan"]}, "pan on resnet18 cannot take 32x32 inputs"),
])
def test_invalid_grids_are_refused_by_name(prepared32: Path, tmp_path: Path, sweep: dict, message: str, sweep_config: SweepFactory) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_sweep(sweep_config(prepared32, tmp_path, **sweep))
    assert message in str(caught.value)


def test_a_missing_dataset_or_empty_split_is_refused_before_any_run(prepared32: Path, tmp_path: Path, sweep_config: SweepFactory) -> None:
    with pytest.raises(DataError, match="prepared dataset not found"):
        validate_sweep(sweep_config(tmp_path / "nowhere", tmp_path))
    cfg = sweep_config(prepared32, tmp_path)
    cfg.evaluate.split = "holdout"
    with pytest.raises(ConfigError, match=r"evaluate\.split 'holdout' is empty"):
        validate_sweep(cfg)


def test_cli_reports_a_bad_grid_in_one_line_and_runs_nothing(prepared32: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sweep", "--out", str(tmp_path / "out"), "--set", f"data.prepared={prepared32}",
                                      "--set", "sweep.encoders=[resnet-9000]"])
    assert result.exit_code == 1
    assert "unknown encoder(s) resnet-9000" in result.output
    assert not (tmp_path / "out" / "runs").exists()


# ---- resume, crashes and extra seeds (training and evaluation faked) --------------------------

class FakeRuns:
    """Stands in for train/evaluate_model: counts calls, scores by architecture and augmentation."""

    DICE: ClassVar[dict[tuple[str, str], float]] = {("unet", "none"): 0.80, ("unet", "echo"): 0.84, ("fpn", "none"): 0.78, ("fpn", "echo"): 0.79}

    def __init__(self, fail_arch: str | None = None) -> None:
        self.trained: list[str] = []
        self.fail_arch = fail_arch

    def train(self, cfg: Config, progress: bool = True) -> TrainResult:
        self.trained.append(Path(cfg.train.run_dir).name)
        if cfg.model.arch == self.fail_arch:
            raise RuntimeError("CUDA out of memory (simulated)")
        return TrainResult(Path(cfg.train.run_dir), Path(cfg.train.run_dir) / "model.safetensors", 0.5, 1, 2.0, "32-true")

    def evaluate(self, model_path: Path, data: Path, cfg: Config, progress: bool = True) -> EvaluationResult:
        dice = self.DICE[(cfg.model.arch, cfg.train.augment.preset)] + 0.01 * cfg.train.seed
        metrics = [{"class_name": "LV", "metric": m, "mean": v, "std": 0.1, "median": v, "n": 16, "n_undefined": 0}
                   for m, v in (("dice", dice), ("iou", dice - 0.1), ("precision", 0.9), ("recall", 0.8),
                                ("accuracy", 0.95), ("hd95", 5.0))]
        summary = {"metrics": {"raw": metrics}, "distance_unit": "px", "split": "test", "n_cases": 16,
                   "parameters": 1_000_000, "model_file_mb": 4.0, "inference_ms_per_image": 3.0}
        return EvaluationResult(Path(model_path).parent, summary, pd.DataFrame())


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRuns:
    runs = FakeRuns()
    monkeypatch.setattr(trial, "train", runs.train)
    monkeypatch.setattr(trial, "evaluate_model", runs.evaluate)
    return runs


def test_a_restarted_sweep_skips_finished_runs(prepared32: Path, tmp_path: Path, fake: FakeRuns, sweep_config: SweepFactory) -> None:
    cfg = sweep_config(prepared32, tmp_path / "sweep", architectures=["unet"])
    first = run_sweep(cfg)
    assert (first.ran, first.skipped, len(fake.trained)) == (2, 0, 2)
    assert all(r["status"] == "ok" for r in first.records)
    second = run_sweep(cfg)
    assert (second.ran, second.skipped, len(fake.trained)) == (0, 2, 2)
    (tmp_path / "sweep" / "runs" / fake.trained[0] / trial.RECORD_FILE).unlink()  # as if killed before its record
    third = run_sweep(cfg)
    assert (third.ran, third.skipped, fake.trained[-1]) == (1, 1, fake.trained[0])
    with folder_lock(tmp_path / "sweep", "cardioseg sweep"), pytest.raises(CardiosegError, match=r"in use by cardioseg sweep \(PID \d+"):
        run_sweep(cfg)


def test_a_sweep_folder_refuses_other_shared_settings(prepared32: Path, tmp_path: Path, fake: FakeRuns, sweep_config: SweepFactory) -> None:
    run_sweep(sweep_config(prepared32, tmp_path / "sweep", architectures=["unet"], augmentations=["none"]))
    cfg = sweep_config(prepared32, tmp_path / "sweep", architectures=["unet"], augmentations=["none"])
    cfg.train.epochs = 5
    with pytest.raises(ConfigError, match=r"train\.epochs was 1, now 5"):
        run_sweep(cfg)


def test_a_crashing_run_is_recorded_and_the_sweep_goes_on(prepared32: Path, tmp_path: Path, fake: FakeRuns, sweep_config: SweepFactory) -> None:
    fake.fail_arch = "fpn"
    result = run_sweep(sweep_config(prepared32, tmp_path / "sweep"))
    assert len(fake.trained) == 4
    failed = result.failed
    assert [r["arch"] for r in failed] == ["fpn", "fpn"]
    assert "RuntimeError: CUDA out of memory (simulated)" in failed[0]["error"]
    assert "Failed runs" in result.written["markdown"].read_text()
    assert (tmp_path / "sweep" / "tables" / "arch_unet.csv").is_file()
    fake.fail_arch = None
    again = run_sweep(sweep_config(prepared32, tmp_path / "sweep"))  # failed runs are retried, finished ones not
    assert again.ran == 2 and not again.failed


def test_extra_seeds_go_to_the_best_configurations(prepared32: Path, tmp_path: Path, fake: FakeRuns, sweep_config: SweepFactory) -> None:
    result = run_sweep(sweep_config(prepared32, tmp_path / "sweep", extra_seeds_for_best=2, seeds=[0, 1, 2]))
    seeds = {}
    for record in result.records:
        seeds.setdefault((record["arch"], record["augmentation"]), []).append(record["seed"])
    assert seeds == {("unet", "none"): [0, 1, 2], ("unet", "echo"): [0, 1, 2], ("fpn", "none"): [0], ("fpn", "echo"): [0]}
    assert len(fake.trained) == 4 + 2 * 2
    table = pd.read_csv(result.written["comparisons"])
    best = table[table["comparison"] == "best vs runner-up configuration"].iloc[0]
    assert best["a"] == "unet / resnet18 / augmented" and best["n_seeds"] == 3
    assert best["verdict"] == "unet / resnet18 / augmented better"  # +0.04 on every seed; seed std 0.01


# ---- tables, statistics, Pareto front (hand-made records) ------------------------------------

def record(arch: str, encoder: str, aug: str, seed: int, dice: float, weights: str | None = None) -> dict[str, Any]:
    point = GridPoint(arch, encoder, weights, aug, "dice_bce", seed)
    return {**point.to_dict(), "status": "ok", "started": 0.0, "finished": 1.0,
            "metrics": {"dice": dice, "iou": dice - 0.1, "precision": 0.9, "recall": 0.8, "accuracy": 0.95, "hd95": 4.0},
            "undefined": {"hd95": 1 if seed else 0}, "distance_unit": "px", "parameters": 2_000_000 if arch == "unet" else 1_000_000,
            "train_seconds": 60.0 + seed, "inference_ms_per_image": 2.0, "epochs": 3}


def hand_made() -> list[dict[str, Any]]:
    dice = {("unet", "resnet18"): 0.80, ("unet", "mobilenet_v2"): 0.76, ("fpn", "resnet18"): 0.74, ("fpn", "mobilenet_v2"): 0.70}
    return [record(arch, enc, aug, seed, base + (0.03 if aug == "echo" else 0) + 0.02 * seed)
            for (arch, enc), base in dice.items() for aug in ("none", "echo") for seed in (0, 1)]


def test_tables_have_the_studys_shape() -> None:
    runs = runs_frame(hand_made())
    agg = aggregate(runs)
    table = architecture_table(agg, "unet")
    assert list(table.index) == ["resnet18", "mobilenet_v2"]  # rows: encoders
    assert [c for c in table.columns if c[0] == "Dice"] == [("Dice", "initial", "mean"), ("Dice", "initial", "std"),
                                                           ("Dice", "augmented", "mean"), ("Dice", "augmented", "std")]
    assert table.loc["resnet18", ("Dice", "initial", "mean")] == pytest.approx(0.81)  # seeds: 0.80, 0.82
    assert table.loc["resnet18", ("Dice", "augmented", "mean")] == pytest.approx(0.84)
    assert table.loc["resnet18", ("Dice", "initial", "std")] == pytest.approx(0.02 / math.sqrt(2))
    assert table.loc["resnet18", ("HD95", "initial", "undefined")] == 1
    assert table.loc["mobilenet_v2", ("Parameters [M]", "", "mean")] == 2.0
    # the echo study's tables 10-1 / 10-2: one encoder fixed, rows = architectures
    assert encoders_across_architectures(agg) == ["resnet18", "mobilenet_v2"]
    fixed = encoder_table(agg, "mobilenet_v2")
    assert list(fixed.index) == ["unet", "fpn"] and fixed.index.name == "architecture"
    assert fixed.loc["fpn", ("Dice", "initial", "mean")] == pytest.approx(0.71)  # seeds: 0.70, 0.72
    assert fixed.loc["unet", ("Dice", "augmented", "mean")] == pytest.approx(0.80)  # 0.76 + 0.03, seeds +0, +0.02
    best = best_table(agg)
    assert list(best["arch"]) == ["unet", "fpn"] and list(best["augmentation"]) == ["augmented", "augmented"]
    assert best.loc[0, "dice_mean"] == pytest.approx(0.84)


def test_report_files_in_every_format(tmp_path: Path) -> None:
    written = write_report(tmp_path, Config(), hand_made())
    markdown = written["markdown"].read_text()
    assert "| encoder | Dice initial | Dice augmented |" in markdown
    assert "0.8100 ± 0.0141" in markdown and "4.00 ± 0.00 (1 undef.)" in markdown
    assert ("augmented vs initial: augmented was higher in 4 of 4 configurations (mean difference +0.0300); "
            "beyond the seed spread and significant: 4 higher, 0 lower") in markdown
    assert "<th>resnet18</th>" in written["html"].read_text()
    assert set(pd.read_csv(written["arch_unet"]).columns) >= {"encoder", "Dice_initial_mean", "Dice_augmented_std"}
    assert "## Encoder resnet18 across architectures" in markdown
    assert list(pd.read_csv(written["encoder_resnet18"], index_col=0).index) == ["unet", "fpn"]
    assert all((tmp_path / "plots" / f"{name}.png").stat().st_size > 5000
               for name in ("dice_bars", "dice_vs_inference", "dice_vs_parameters"))


def test_paired_comparison_matches_a_hand_worked_example() -> None:
    a = {0: 0.80, 1: 0.82, 2: 0.84}
    b = {0: 0.78, 1: 0.79, 2: 0.80}
    c = paired_comparison(a, b, "A", "B")
    # differences 0.02, 0.03, 0.04: mean 0.03, sd 0.01, t = 0.03 / (0.01 / sqrt 3) = 5.196 on 2 df;
    # two-sided p = 1 - t / sqrt(2 + t^2) = 0.0351; seed std sqrt((0.0004 + 0.0001) / 2) = 0.0158.
    assert c.mean_diff == pytest.approx(0.03)
    assert c.t_statistic == pytest.approx(math.sqrt(27), rel=1e-6)
    assert c.p_t_test == pytest.approx(1 - math.sqrt(27) / math.sqrt(29), rel=1e-6)
    assert c.p_t_test == pytest.approx(stats.ttest_rel(list(a.values()), list(b.values())).pvalue)
    assert c.seed_std == pytest.approx(math.sqrt(0.00025))
    assert (c.wins_a, c.wins_b, c.p_sign_test) == (3, 0, pytest.approx(0.25))
    assert c.exceeds_seed_std and c.verdict == "A better"


def test_paired_comparison_within_noise_and_with_one_seed() -> None:
    noisy = paired_comparison({0: 0.80, 1: 0.90, 2: 0.70}, {0: 0.79, 1: 0.88, 2: 0.72}, "A", "B")
    assert not noisy.exceeds_seed_std and noisy.verdict == "within seed spread"
    one = paired_comparison({0: 0.9}, {0: 0.5, 1: 0.6})
    assert one.n_seeds == 1 and one.verdict == "one seed: spread unknown" and math.isnan(one.seed_std)


def test_comparisons_pair_augmented_with_initial_and_pretrained_with_scratch() -> None:
    records = hand_made() + [record("unet", "resnet18", "none", s, 0.85 + 0.02 * s, weights="/w/lite0.safetensors")
                             for s in (0, 1)]
    runs = runs_frame(records)
    table = comparisons(runs, aggregate(runs))
    assert (table["comparison"] == "augmented vs initial").sum() == 4
    pretrained = table[table["comparison"] == "pretrained vs scratch"].iloc[0]
    assert pretrained["a"] == "unet / resnet18 · lite0 / initial" and pretrained["mean_diff"] == pytest.approx(0.05)


def test_pareto_front_on_hand_made_points() -> None:
    cost = np.array([1.0, 2.0, 3.0, 2.0, 4.0, 1.0])
    dice = np.array([0.70, 0.80, 0.85, 0.75, 0.85, 0.60])
    # (2, 0.75) is beaten by (2, 0.80); (4, 0.85) by (3, 0.85); (1, 0.60) by (1, 0.70)
    assert pareto_front(cost, dice).tolist() == [True, True, True, False, False, False]


def test_markdown_table_joins_multiindex_headers() -> None:
    frame = pd.DataFrame({("Dice", "initial"): ["0.9"], ("Params", ""): ["1.0"]}, index=pd.Index(["resnet18"], name="encoder"))
    assert to_markdown(frame).splitlines()[0] == "| encoder | Dice initial | Params |"


# ---- Ray: a real local instance, two runs at once -------------------------------------------

def test_ray_backend_runs_two_trials_at_once(prepared32: Path, tmp_path: Path, sweep_config: SweepFactory) -> None:
    ray = pytest.importorskip("ray", reason="the Ray backend needs ray (pip install 'cardioseg[ray]')")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    cfg = sweep_config(prepared32, tmp_path / "sweep", augmentations=["none"], backend="ray", max_concurrent=2,
                       cpus_per_run=1)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
    try:
        result = run_sweep(cfg)
    finally:
        ray.shutdown()
    assert [r["status"] for r in result.records] == ["ok", "ok"], [r.get("error") for r in result.records]
    assert result.records[0]["pid"] != result.records[1]["pid"] and os.getpid() not in {r["pid"] for r in result.records}
    starts = [r["started"] for r in result.records]
    ends = [r["finished"] for r in result.records]
    assert max(starts) < min(ends), "the two runs did not overlap in time"
    assert all(0 < r["metrics"]["dice"] <= 1 for r in result.records)


def test_a_grid_over_learning_rate_batch_and_epochs_gives_the_timing_table(
        prepared32: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sweep_config: SweepFactory) -> None:
    """The thesis's table: each run trains with its own lr, batch size and epochs (no time budget with
    equal_epochs); training time (here epochs x batch) and Dice (here 1 - lr) per configuration."""
    seen: list[tuple[float, int, int, str | None]] = []

    def train(cfg: Config, progress: bool = True) -> TrainResult:
        tc = cfg.train
        seen.append((tc.lr, tc.batch_size, tc.epochs, tc.time_budget))
        return TrainResult(Path(tc.run_dir), Path(tc.run_dir) / "model.safetensors", 0.5, tc.epochs,
                           float(tc.epochs * tc.batch_size), "32-true")

    def evaluate(model_path: Path, data: Path, cfg: Config, progress: bool = True) -> EvaluationResult:
        metrics = [{"class_name": "LV", "metric": m, "mean": 1 - cfg.train.lr if m == "dice" else 0.5, "std": 0.0,
                    "median": 0.5, "n": 4, "n_undefined": 0} for m in ("dice", "iou", "precision", "recall", "accuracy", "hd95")]
        return EvaluationResult(Path(model_path).parent, {"metrics": {"raw": metrics}, "distance_unit": "px", "split": "test",
                                                          "n_cases": 4, "parameters": 10, "model_file_mb": 1.0,
                                                          "inference_ms_per_image": 1.0}, pd.DataFrame())

    monkeypatch.setattr(trial, "train", train)
    monkeypatch.setattr(trial, "evaluate_model", evaluate)
    cfg = sweep_config(prepared32, tmp_path / "sweep", architectures=["unet"], augmentations=["none"],
                       learning_rates=[0.001, 0.01], batch_sizes=[4, 8], epochs=[2, 3], equal_epochs=True)
    cfg.train.time_budget = "10m"
    result = run_sweep(cfg)
    assert result.ran == 8 and sorted(seen) == sorted((lr, b, e, None) for lr in (0.001, 0.01) for b in (4, 8) for e in (2, 3))
    assert "unet__resnet18__scratch__none__dice_bce__lr0.001__b4__e2__s0" in {r["run_id"] for r in result.records}
    table = pd.read_csv(tmp_path / "sweep" / "tables" / "schedule.csv")
    assert len(table) == 8 and list(table.columns[:3]) == ["lr", "batch_size", "epochs"]
    for _, row in table.iterrows():
        assert row.train_seconds_mean == row.epochs * row.batch_size and row.dice_mean == pytest.approx(1 - row.lr)
    report = (tmp_path / "sweep" / "report.md").read_text()
    assert "## Learning rate, batch size, epochs: training time and Dice" in report
    assert "2/3 epoch(s) exactly, batch 4/8, lr 0.001/0.01" in report
