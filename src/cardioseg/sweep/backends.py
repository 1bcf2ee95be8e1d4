"""Where the runs of a sweep execute: one after another here, or spread over a Ray cluster.

Both yield each run's record as it finishes. With Ray, every run is a task holding
``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs, at most ``max_concurrent`` at a time; the sweep
folder and the prepared dataset must be on a filesystem every node sees (paths are made absolute
before submission). Without ``address`` a private local Ray instance is started (never another
user's cluster); Ray's usage statistics are switched off, so nothing leaves the machine.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from typing import Any

from cardioseg.config import Config
from cardioseg.errors import ConfigError
from cardioseg.sweep.grid import GridPoint
from cardioseg.sweep.trial import execute_run, failed_record


def run_local(cfg: Config, points: list[GridPoint]) -> Iterator[dict[str, Any]]:
    for point in points:
        yield execute_run(cfg, point)


def import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install 'cardioseg[ray]'") from None
    return ray


def _ray_task(cfg: Config, point: GridPoint, threads: int) -> dict[str, Any]:
    return execute_run(cfg, point, threads)


def run_ray(cfg: Config, points: list[GridPoint]) -> Iterator[dict[str, Any]]:
    """Submit the runs as Ray tasks, keep at most ``max_concurrent`` in flight, yield records as they finish."""
    ray = import_ray()
    sweep = cfg.sweep
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=sweep.address or "local", include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=sweep.cpus_per_run, num_gpus=sweep.gpus_per_run, max_retries=0)(_ray_task)
    threads = max(1, math.floor(sweep.cpus_per_run))
    queue = list(points)
    in_flight: dict[Any, tuple[GridPoint, float]] = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < sweep.max_concurrent:
                point = queue.pop(0)
                in_flight[task.remote(cfg, point, threads)] = (point, time.time())
            done, _ = ray.wait(list(in_flight), num_returns=1)
            point, submitted = in_flight.pop(done[0])
            try:
                record = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # the worker died (killed, out of memory): record it, go on
                record = failed_record(cfg, point, f"{type(exc).__name__}: {exc}", submitted)
            yield record
    finally:
        for ref in in_flight:
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()


def run_points(cfg: Config, points: list[GridPoint]) -> Iterator[dict[str, Any]]:
    return run_ray(cfg, points) if cfg.sweep.backend == "ray" else run_local(cfg, points)
