"""Training curves: a one-epoch run shows its points on a readable epoch axis."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from cardioseg.viz import plots

# The log Lightning wrote for a real 1-epoch run on msd_heart_la (3 rows: a step, validation, epoch end).
ONE_EPOCH = """epoch,lr,step,train_loss_epoch,train_loss_step,train_seconds,val_dice,val_loss,val_samples
0,0.0005458767991513014,19,,0.6505002975463867,,,,
0,,37,,,13.504790306091309,0.5418562293052673,0.6175585389137268,230.0
0,,37,0.6917373538017273,,,,,
"""


def drawn(monkeypatch: pytest.MonkeyPatch, log: str, tmp_path: Path) -> plt.Figure:
    """The figure plot_training_curves draws from ``log`` (caught before it is saved and closed)."""
    figures: list[plt.Figure] = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: figures.append(fig) or Path(out))
    (tmp_path / "metrics.csv").write_text(log)
    assert plots.plot_training_curves(tmp_path / "metrics.csv", tmp_path / "curves.png") is not None
    return figures[0]


def test_one_epoch_is_points_on_a_whole_epoch_axis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fig = drawn(monkeypatch, ONE_EPOCH, tmp_path)
    ax_loss, ax_dice = fig.axes
    lines = ax_loss.lines + ax_dice.lines
    assert [line.get_label() for line in ax_loss.lines] == ["train loss", "validation loss"]
    assert len(lines) == 3 and all(line.get_marker() == "o" and len(line.get_xdata()) == 1 for line in lines)
    for ax in (ax_loss, ax_dice):
        low, high = ax.get_xlim()
        assert low <= 0.5 and high >= 1.5  # a whole epoch either side of the point, not a sliver
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert 1 in ticks and all(float(t).is_integer() for t in ticks)
    plt.close(fig)


def test_many_epochs_are_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rows = "".join(f"{e},,{e},{1 / (e + 1):.4f},,,{e / 100:.3f},{1 / (e + 2):.4f},\n" for e in range(plots.MARKERS_UP_TO + 10))
    fig = drawn(monkeypatch, ONE_EPOCH.splitlines()[0] + "\n" + rows, tmp_path)
    assert all(line.get_marker() in (None, "None", "") for ax in fig.axes for line in ax.lines)
    assert fig.axes[0].get_xlim()[1] == pytest.approx(plots.MARKERS_UP_TO + 10.5)
    plt.close(fig)
