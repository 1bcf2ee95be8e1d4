"""Post-processing chosen on the validation split: each step kept only where it raises the mean Dice (worked out
by hand below), written into the model's plan, and applied by evaluate under the settings given explicitly."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from cardioseg.artifacts import RunFiles, load_plan
from cardioseg.config import PostprocessConfig, load_config
from cardioseg.data.prepared import PreparedDataset
from cardioseg.evaluation.evaluate import evaluate_model
from cardioseg.evaluation.postprocess_choice import best_chain, choose_postprocess, keep_choice
from cardioseg.plan import Plan
from cardioseg.postprocess import planned_postprocess


def _square(holes: bool = False, stray: bool = False, second: bool = False) -> np.ndarray:
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:20] = 1  # 100 pixels
    if holes:
        mask[14:16, 14:16] = 0  # a 4-pixel hole
    if stray:
        mask[30:33, 30:33] = 1  # a 9-pixel island
    if second:
        mask[25:35, 25:35] = 1  # a second true structure
    return mask


def test_each_step_is_kept_where_it_raises_the_mean_dice() -> None:
    """Case a: a stray island (Dice 200/209 without, 1 with the largest component); case b: a 4-pixel hole
    (Dice 192/196 without, 1 with hole filling). Both steps raise the mean, so both are kept."""
    raw = {"a": _square(stray=True), "b": _square(holes=True)}
    refs = {"a": _square(), "b": _square()}
    chosen, baseline, trials = best_chain(raw, refs, {"a": [1], "b": [1]}, binary=True, slice_axis=2)
    assert baseline == pytest.approx((200 / 209 + 192 / 196) / 2, abs=1e-5)
    assert trials[0]["step"] == "largest component" and trials[0]["dice"] == pytest.approx((1 + 192 / 196) / 2, abs=1e-5)
    assert trials[1]["step"] == "fill holes" and trials[1]["dice"] == pytest.approx(1.0)
    assert chosen.largest_component and chosen.fill_holes


def test_a_step_that_lowers_or_keeps_the_dice_is_left_out() -> None:
    """Two true structures predicted exactly: the largest component would drop one (Dice 2*100/300), hole filling
    changes nothing (a tie keeps the simpler chain)."""
    both = _square(second=True)
    chosen, baseline, trials = best_chain({"a": both}, {"a": both.copy()}, {"a": [1]}, binary=True, slice_axis=2)
    assert baseline == 1.0 and trials[0]["dice"] == pytest.approx(200 / 300, abs=1e-5) and not trials[0]["kept"]
    assert trials[1]["gain"] == 0 and not trials[1]["kept"]
    assert chosen == PostprocessConfig()


def test_settings_given_explicitly_win_over_the_plans_choice() -> None:
    plan = Plan(postprocess=PostprocessConfig(largest_component=True, fill_holes=True))
    assert planned_postprocess(PostprocessConfig(), plan) == plan.postprocess
    mixed = planned_postprocess(PostprocessConfig(fill_holes=False, threshold=0.3), plan)
    assert mixed.largest_component and not mixed.fill_holes and mixed.threshold == 0.3
    assert planned_postprocess(PostprocessConfig(closing_radius=2), Plan()) == PostprocessConfig(closing_radius=2)


@pytest.mark.slow
def test_a_trained_model_keeps_its_choice_and_evaluate_applies_it(trained_run, camus64: Path, tmp_path: Path) -> None:
    """On the 200 camus validation images: the choice's Dice without post-processing is evaluate's raw Dice, and
    evaluate of the model with its choice scores the chosen chain's Dice (two independent paths through the data);
    that explicit settings win is checked above, without a model."""
    _, run = trained_run
    model = tmp_path / "run" / "model.safetensors"
    model.parent.mkdir()
    shutil.copy(run.model_path, model)  # the session's model stays as it is
    choice = choose_postprocess(model, PreparedDataset(camus64))
    assert choice is not None and choice.n_cases == 200 and [t["step"] for t in choice.trials] == [
        "largest component", "fill holes"]
    keep_choice(model, choice)
    assert load_plan(model).postprocess == choice.chosen and RunFiles(model.parent).postprocess_choice.is_file()

    def dice(summary: dict, variant: str) -> float:
        return next(m["mean"] for m in summary["metrics"][variant] if m["metric"] == "dice")

    scored = evaluate_model(model, camus64, load_config(overrides={
        "evaluate.split": "val", "evaluate.backend": "torch", "evaluate.out_dir": tmp_path / "eval"}), progress=False)
    assert scored.summary["postprocess"] == choice.chosen.model_dump()
    assert dice(scored.summary, "raw") == pytest.approx(choice.baseline_dice, abs=1e-4)
    best = max([choice.baseline_dice] + [t["dice"] for t in choice.trials if t["kept"]])
    assert dice(scored.summary, "post") == pytest.approx(best, abs=1e-4)


def test_rewriting_the_plan_keeps_half_precision_weights_half(tmp_path: Path) -> None:
    """A shipped model stores float16 weights; a new plan must not double its file by writing float32."""
    from safetensors import safe_open

    from cardioseg.models.checkpoint import with_plan
    from cardioseg.models.zoo import resolve_model

    model = tmp_path / "model.safetensors"
    shutil.copy(resolve_model("echo-lv"), model)
    size = model.stat().st_size
    with_plan(model, load_plan(model).model_copy(update={"postprocess": PostprocessConfig(largest_component=True)}))
    assert load_plan(model).postprocess == PostprocessConfig(largest_component=True)
    assert abs(model.stat().st_size - size) < 0.01 * size
    with safe_open(str(model), framework="pt") as stored:
        assert {stored.get_slice(k).get_dtype() for k in stored.keys()} >= {"F16"}
