"""Agreement figures say when there are too few pairs, instead of drawing r = -1 and limits from two points."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from cardioseg.clinical import agreement_stats
from cardioseg.viz import bland_altman
from cardioseg.viz.bland_altman import Paired, plot_bland_altman


def drawn_texts(monkeypatch: pytest.MonkeyPatch, pred: list[float], ref: list[float], tmp_path: Path) -> list[str]:
    """Every title, text and legend entry of the figure (caught before it is saved and closed)."""
    figures: list[plt.Figure] = []
    monkeypatch.setattr(bland_altman, "save_figure", lambda fig, out: figures.append(fig) or Path(out))
    pred_a, ref_a = np.array(pred), np.array(ref)
    plot_bland_altman([Paired("EF", "%", pred_a, ref_a, agreement_stats(pred_a, ref_a), ["p1", "p2", "p3"][: len(pred)])],
                      tmp_path / "ba.png", "EF")
    texts = []
    for ax in figures[0].axes:
        texts += [*ax.get_title().split("\n", 1), *(t.get_text() for t in ax.texts)]
        legend = ax.get_legend()
        texts += [t.get_text() for t in legend.get_texts()] if legend else []
    plt.close(figures[0])
    return [" ".join(text.split()) for text in texts]  # a caveat is wrapped over lines


def test_two_patients_give_the_caveat_not_r_and_limits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    texts = drawn_texts(monkeypatch, [55.0, 60.0], [50.0, 62.0], tmp_path)
    assert "EF: r = n/a, n = 2" in texts
    assert "n = 2: too few cases for a correlation / limits of agreement" in texts
    assert not any("1.000" in t or "95% limits" in t for t in texts)


def test_three_patients_get_r_and_limits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    texts = drawn_texts(monkeypatch, [55.0, 60.0, 40.0], [50.0, 62.0, 41.0], tmp_path)
    assert any(t.startswith("EF: r = 0.9") and t.endswith("n = 3") for t in texts)
    assert any(t.startswith("95% limits") for t in texts) and not any("too few" in t for t in texts)
