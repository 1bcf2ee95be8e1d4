"""Video encoding of RGB frames: H.264 MP4 (what every browser plays) through imageio-ffmpeg, or an
animated GIF when no encoder is available. Which frames make a video is the caller's choice.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardioseg.errors import CardiosegError
from cardioseg.fileio import write_bytes
from cardioseg.viz.frames import pad_to

QUALITY = 4  # imageio-ffmpeg's scale (crf 30): half the bytes of its default (crf 25), contours still crisp


@dataclass(frozen=True)
class Video:
    """An encoded video and how to embed it."""

    data: bytes
    mime: str
    suffix: str


def encode_video(frames: list[np.ndarray], fps: float) -> Video:
    """H.264 MP4 of RGB frames (any sizes: centred on one canvas); GIF when ffmpeg cannot encode."""
    if not frames:
        raise CardiosegError("a video needs at least one frame")
    frames = pad_to(frames)
    try:
        return Video(_mp4(frames, fps), "video/mp4", ".mp4")
    except (OSError, RuntimeError, ImportError):
        return Video(_gif(frames, fps), "image/gif", ".gif")


def _mp4(frames: list[np.ndarray], fps: float) -> bytes:
    import imageio_ffmpeg

    height, width = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "video.mp4"
        writer = imageio_ffmpeg.write_frames(
            str(path), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p", macro_block_size=16,
            quality=QUALITY,
            output_params=["-movflags", "+faststart"], ffmpeg_log_level="error",
        )
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        return path.read_bytes()


def _gif(frames: list[np.ndarray], fps: float) -> bytes:
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=1000 / fps, loop=0)


def write_video(video: Video, stem: Path) -> Path:
    """Write ``video`` next to ``stem`` with its own suffix (.mp4 or .gif), atomically."""
    return write_bytes(stem.with_suffix(video.suffix), video.data)
