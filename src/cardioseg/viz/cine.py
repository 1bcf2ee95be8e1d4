"""A cine's pictures: the LV curve over time with ED and ES marked, and the frames with their contours.

The curve shows the measured values (points) and the smoothed curve ED and ES were read from
(line), so a reader sees both the jitter and what the detection saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cardioseg.clinical.sequence import SequenceResult
from cardioseg.viz.frames import grey_levels, overlay_frame
from cardioseg.viz.plots import save_figure
from cardioseg.viz.video import Video, encode_video

ED_COLOUR, ES_COLOUR = "#d62728", "#1f77b4"


def plot_curve(sequence: SequenceResult, target: Path, title: str = "") -> Path:
    """PNG of the volume curve (or the area curve when no frame's volume could be measured), ED and ES marked."""
    volumes = np.isfinite(sequence.volume).any()
    values = sequence.volume if volumes else sequence.area
    unit = sequence.volume_unit if volumes else sequence.area_unit
    x = sequence.times_ms if sequence.times_ms is not None else np.arange(sequence.n_frames)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(x, values, "o", ms=3, color="0.45", label="measured")
    ax.plot(x, sequence.smoothed, "-", color="0.1", lw=1.5, label="smoothed")
    for frame, name, colour in ((sequence.ed, "ED", ED_COLOUR), (sequence.es, "ES", ES_COLOUR)):
        ax.axvline(x[frame], color=colour, ls="--", lw=1.2)
        ax.annotate(f"{name} (frame {frame})", (x[frame], ax.get_ylim()[1]), color=colour, fontsize=8,
                    ha="center", va="bottom", annotation_clip=False)
    what = f"LV volume ({sequence.method}) [{unit}]" if volumes else f"LV cavity area [{unit}]"
    ax.set(xlabel="time [ms]" if sequence.times_ms is not None else "frame", ylabel=what)
    ef = sequence.ef
    ax.set_title((f"{title}: " if title else "") + (f"EF {ef:.1f} %" if np.isfinite(ef) else "EF not measurable")
                 + f" (ED/ES {sequence.phase_source})", fontsize=10, pad=14)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, target)


def cine_video(
    frames: np.ndarray, labels: np.ndarray, sequence: SequenceResult | None, class_names: Mapping[int, str],
    spacing: Sequence[float] | None, fps: float, title: str = "",
) -> Video:
    """Every frame with its predicted contours, captioned with its number and ED/ES when it is one."""
    window = grey_levels(frames)
    marks = {} if sequence is None else {sequence.ed: "  ED", sequence.es: "  ES"}
    pictures = [
        overlay_frame(frame, mask, None, window, f"{title}  frame {k + 1} of {len(frames)}{marks.get(k, '')}",
                      spacing, class_names=class_names)
        for k, (frame, mask) in enumerate(zip(frames, labels))
    ]
    return encode_video(pictures, fps)
