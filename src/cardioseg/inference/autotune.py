"""`--backend auto` by measurement: each backend this machine offers is timed on the run's own images.

Which backend is fastest depends on the CPU: on an AMD EPYC with AVX-512-BF16 but no AMX,
OpenVINO int8 led; on an Intel Xeon with AMX, PyTorch bf16 beat ONNX Runtime fp32 by 2.7x
(benchmarks/RESULTS.md). So nothing is assumed: every candidate (PyTorch fp32 and bf16, ONNX
Runtime fp32 and int8, OpenVINO fp32, bf16 and int8; bf16 only where the CPU has bf16 kernels,
int8 only with an `export --int8` file) segments a sample of the images about to be segmented;
a candidate whose masks fall below ``min_mask_dice`` against fp32 PyTorch's on any sample image
is rejected, and the fastest of the others is chosen and cached (``backend_cache``).

A measurement costs a few seconds per candidate (conversion, compilation, warm-up, timing), so a
run measures only when it has at least ``MIN_PLANES_TO_MEASURE`` planes to segment or when asked
(`cardioseg tune`); smaller runs use the cached choice or the rule without one (``members``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cardioseg.errors import CardiosegError
from cardioseg.inference.backend_cache import Choice, Trial, cached_choice, remember
from cardioseg.inference.members import RunOptions, auto_key, find_export, load_member, model_plan, torch_only
from cardioseg.inference.openvino_backend import openvino_available
from cardioseg.inference.quantize import mask_agreement, masks
from cardioseg.runtime import cpu_supports_bf16

MIN_PLANES_TO_MEASURE = 64
"""Below this many planes, measuring (10-40 s once) would cost more than the fastest backend saves."""
MIN_SECONDS = 0.5
"""Each candidate is timed over at least this long (and three calls)."""


def candidates(model: Path) -> list[tuple[str, str]]:
    """(backend, precision) pairs this machine and this model offer."""
    bf16 = cpu_supports_bf16()
    int8 = model.suffix == ".onnx" or find_export(model, "onnx-int8") is not None
    found: list[tuple[str, str]] = []
    if model.suffix == ".safetensors":
        found += [("torch", "32")] + ([("torch", "bf16")] if bf16 else [])
        found += [("onnx", "32")] + ([("onnx", "int8")] if int8 else [])
    else:
        found += [("onnx", "32")]
    if openvino_available():
        found += [("openvino", "32")] + ([("openvino", "bf16")] if bf16 else [])
        found += [("openvino", "int8")] if int8 and model.suffix == ".safetensors" else []
    return found


def _time(run: Callable[[], object]) -> float:
    """Median seconds of one call, after a warm-up call."""
    run()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - started < MIN_SECONDS:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(model: Path, options: RunOptions, sample: np.ndarray, scratch: Path,
            report: Callable[[str], None] | None = None) -> Choice:
    """Time every candidate on ``sample`` (normalised network inputs, (N, H, W)) and cache the fastest acceptable one."""
    batch = np.resize(sample, (options.batch_size, *sample.shape[1:])).astype(np.float32)
    reference: np.ndarray | None = None
    trials: list[Trial] = []
    for backend, precision in candidates(model):
        try:
            member = load_member(model, RunOptions(backend, precision, options.batch_size), scratch)
            predicted = masks(member.backend.probabilities(sample))
        except CardiosegError as exc:
            trials.append(Trial(backend, member_precision(precision), 0.0, 0.0, False, exc.problem[:120]))
            continue
        if reference is None:
            reference = predicted  # the first candidate is fp32 (PyTorch, or ONNX Runtime for an export)
        agreement = mask_agreement(predicted, reference).minimum
        seconds = _time(lambda run=member.backend.probabilities: run(batch))
        accepted = agreement >= options.min_mask_dice
        trials.append(Trial(backend, member.precision, len(batch) / seconds, agreement, accepted,
                            "" if accepted else f"masks reach Dice {agreement:.4f} < {options.min_mask_dice}"))
        if report:
            report(f"{backend} {member.precision}: {len(batch) / seconds:.1f} images/s, min Dice {agreement:.4f}")
    choice = decide(trials, len(sample), options)
    try:
        remember(auto_key(model, options.batch_size), choice)
    except CardiosegError:
        pass  # an unwritable cache folder: this run still uses the choice; the next one measures again
    return choice


def member_precision(asked: str) -> str:
    return "32" if asked == "auto" else asked


def decide(trials: list[Trial], n_sample: int, options: RunOptions) -> Choice:
    """The fastest accepted trial, with a reason that names the runner-up and the rejected."""
    accepted = sorted((t for t in trials if t.accepted), key=lambda t: -t.images_per_s)
    if not accepted:
        raise CardiosegError("no backend ran this model: " + "; ".join(f"{t.label}: {t.note}" for t in trials))
    best = accepted[0]
    parts = [f"{best.label} was fastest at {best.images_per_s:.0f} images/s (batch {options.batch_size}), masks "
             f"within Dice {best.min_dice:.4f} of fp32 on {n_sample} sample images"]
    if len(accepted) > 1:
        parts.append(f"next {accepted[1].label} at {accepted[1].images_per_s:.0f} images/s")
    rejected = [t for t in trials if not t.accepted]
    if rejected:
        parts.append("rejected " + ", ".join(f"{t.label} ({t.note})" for t in rejected))
    return Choice(best.backend, best.precision, "; ".join(parts), tuple(trials))


def measure_if_worthwhile(model: Path, options: RunOptions, n_planes: int, sample: Callable[[], np.ndarray | None],
                          scratch: Path, refresh: bool = False) -> Choice | None:
    """Measure for ``--backend auto`` unless a choice is cached or the run is too small to repay it.

    ``load_member`` then finds the choice in the cache (or applies the rule) and says why.
    """
    if options.backend != "auto" or torch_only(model_plan(model)):
        return None
    if not refresh and (n_planes < MIN_PLANES_TO_MEASURE or cached_choice(auto_key(model, options.batch_size))):
        return None
    images = sample()
    if images is None or not len(images):
        return None
    return measure(model, options, images, scratch)
