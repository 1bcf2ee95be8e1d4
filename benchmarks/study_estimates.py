"""How long each study's full protocol would take: on this machine, measured, and on one GPU, estimated.

For every network of every study configuration (benchmarks/studies/*.yaml), at the protocol's input size and
batch, this times training steps as `cardioseg train` runs them (Adam, bf16 autocast where the CPU has bf16,
channels-last) and the validation forward pass, on this machine. The protocol's time is then

    runs x epochs x (training batches x step time + validation images x forward time) + test images x forward time

with the image counts of the study's split (its CPU variant's prepared dataset, which splits the same patients).
With ``--factorised`` a grid of architectures x encoders is timed along one row and one column only (every
architecture with the first encoder, every encoder with the first architecture), and the other cells are
estimated as t(arch, encoder) = t(arch, first encoder) x t(first arch, encoder) / t(first arch, first encoder):
19 networks timed instead of 91 for the echo study.
The GPU figure is not a measurement: the network's FLOPs (forward, x3 for a training step) over an assumed
sustained rate (``--gpu-tflops``, default 78: a quarter of an A100's 312 TFLOP/s bf16 peak, what small-batch
convolutional nets typically sustain), plus nothing for data loading. Results go to
benchmarks/study_estimates/results.json (rewritten after each study; a study already there is kept unless
``--redo``) and a markdown table on stdout. Each network is built, summarised and timed in a worker process
that is replaced every ``NETWORKS_PER_WORKER`` networks: one long process building a hundred large networks grows past 24 GB
(the allocator keeps what it freed), though no single network needs more than about 2 GB.

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/study_estimates.py --steps 2 --factorised
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cardioseg.config import Config, ModelConfig, load_config
from cardioseg.data.prepared import PreparedDataset
from cardioseg.fileio import write_json
from cardioseg.models.factory import build_model
from cardioseg.models.registry import get_model_entry
from cardioseg.models.summary import summarize_model
from cardioseg.runtime import machine_fingerprint
from cardioseg.training.losses import build_loss

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "benchmarks" / "studies"
OUT = ROOT / "benchmarks" / "study_estimates"
NETWORKS_PER_WORKER = 8
"""networks built in one worker process before it is replaced (its allocator keeps what they freed)"""


@dataclass
class NetworkTime:
    study: str
    arch: str
    encoder: str | None
    runs: int
    step_s: float
    """at the study's (last) batch size"""
    forward_ms_per_image: float
    gflops_per_image: float
    cpu_hours: float
    gpu_hours: float
    measured: bool
    """False: estimated from its grid's timed row and column (``--factorised``)"""


def split_counts(study: str) -> dict[str, int]:
    """Images per split of the study's data, from its CPU variant's prepared dataset (the same patients; for CT
    version 2 the offline-augmented one, so its training count already holds the ten copies)."""
    variant = STUDIES / "cpu" / f"{study}.yaml"
    cfg = load_config(variant if variant.is_file() else STUDIES / f"{study}.yaml")
    prepared = PreparedDataset(cfg.data.prepared)
    return {split: len(prepared.indices(split)) for split in ("train", "val", "test")}


def networks(cfg: Config) -> list[tuple[str, str | None]]:
    found: dict[tuple[str, str | None], None] = {}
    for arch in cfg.sweep.architectures:
        encoders = cfg.sweep.encoders if get_model_entry(arch).uses_encoder else [None]
        for encoder in encoders:
            found[(arch, encoder)] = None
    return list(found)


def time_network(model_cfg: ModelConfig, cfg: Config, steps: int) -> tuple[float, float]:
    """(seconds per training step, ms per image of the validation forward pass) at the protocol's size and batch."""
    height, width = cfg.preprocess.size
    batch = cfg.train.batch_size
    model = build_model(model_cfg).to(memory_format=torch.channels_last)
    loss_fn = build_loss(cfg.train, binary=True)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    images = torch.rand(batch, model_cfg.in_channels, height, width).contiguous(memory_format=torch.channels_last)
    labels = (torch.rand(batch, 1, height, width) > 0.5).float()
    bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(images)
        loss = loss_fn(out.float(), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    model.train()
    step()  # warm-up: oneDNN picks its kernels on the first call
    started = time.perf_counter()
    for _ in range(steps):
        step()
    step_s = (time.perf_counter() - started) / steps
    model.eval()
    val = torch.rand(2 * batch, model_cfg.in_channels, height, width).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(val)
        started = time.perf_counter()
        model(val)
    return step_s, 1000 * (time.perf_counter() - started) / len(val)


Network = tuple[str, str | None]


def timed_networks(cfg: Config, factorised: bool) -> tuple[set[Network], Network | None]:
    """The networks to time, and the grid's corner (first architecture, first encoder) when it is factorised:
    then only its first row and first column are timed."""
    every = networks(cfg)
    encoded = [(a, e) for a, e in every if e is not None]
    if not factorised or len({a for a, _ in encoded}) < 2 or len({e for _, e in encoded}) < 2:
        return set(every), None
    first_arch, first_encoder = encoded[0]
    return {(a, e) for a, e in every if e is None or a == first_arch or e == first_encoder}, encoded[0]


def factor(times: dict[Network, tuple[float, float]], corner: Network, arch: str,
           encoder: str | None) -> tuple[float, float]:
    """t(arch, encoder) from the timed row and column of the grid (see the module docstring)."""
    first_arch, first_encoder = corner
    row, column, corner = times[(arch, first_encoder)], times[(first_arch, encoder)], times[(first_arch, first_encoder)]
    return row[0] * column[0] / corner[0], row[1] * column[1] / corner[1]


def measure(study: str, arch: str, encoder: str | None, batches: list[int], timed: bool,
            steps: int) -> tuple[float, dict[int, tuple[float, float]]]:
    """In a worker process: the network's GFLOPs per image and, when it is timed, its times at each batch."""
    cfg = load_config(STUDIES / f"{study}.yaml")
    model_cfg = cfg.model.model_copy(update={"arch": arch, "encoder": encoder, "encoder_weights": None})
    gflops = summarize_model(build_model(model_cfg), in_channels=model_cfg.in_channels,
                             size=cfg.preprocess.size[0]).gflops
    times = {}
    if timed:
        for batch in batches:
            cfg.train.batch_size = batch
            times[batch] = time_network(model_cfg, cfg, steps)
    return gflops, times


def estimate(study: str, steps: int, gpu_tflops: float, factorised: bool = False) -> list[NetworkTime]:
    cfg = load_config(STUDIES / f"{study}.yaml")
    counts = split_counts(study)
    rows = []
    timed, corner = timed_networks(cfg, factorised)
    # timed networks first, so that every factorised estimate finds its row and column
    ordered = sorted(networks(cfg), key=lambda net: net not in timed)
    batches = cfg.sweep.batch_sizes or [cfg.train.batch_size]
    times: dict[tuple[int, Network], tuple[float, float]] = {}
    for start in range(0, len(ordered), NETWORKS_PER_WORKER):
        # a fresh pool per chunk: Python 3.11's max_tasks_per_child can hang when it replaces a worker
        chunk = ordered[start:start + NETWORKS_PER_WORKER]
        with ProcessPoolExecutor(max_workers=1) as pool:
            measured = [pool.submit(measure, study, arch, encoder, batches, (arch, encoder) in timed, steps)
                        for arch, encoder in chunk]
            for (arch, encoder), future in zip(chunk, measured):
                gflops, network_times = future.result()
                times.update({(batch, (arch, encoder)): t for batch, t in network_times.items()})
                rows.append(_row(study, arch, encoder, gflops, times, corner, (arch, encoder) in timed, cfg,
                                 counts, gpu_tflops))
    return rows


def _row(study: str, arch: str, encoder: str | None, gflops: float, times: dict[tuple[int, Network], tuple[float, float]],
         corner: Network | None, timed: bool, cfg: Config, counts: dict[str, int], gpu_tflops: float) -> NetworkTime:
    """The protocol's time for one network, from its own times or (factorised) its grid's row and column."""
    runs_per_setting = len(cfg.sweep.augmentations) * len(cfg.sweep.seeds) * len(cfg.sweep.learning_rates or [0])
    cpu_s = gpu_s = 0.0
    runs = 0
    for batch in cfg.sweep.batch_sizes or [cfg.train.batch_size]:
        if timed:
            step_s, forward_ms = times[(batch, (arch, encoder))]
        else:
            step_s, forward_ms = factor({net: v for (b, net), v in times.items() if b == batch}, corner,
                                        arch, encoder)
        for epochs in cfg.sweep.epochs or [cfg.train.epochs]:
            per_run = epochs * (math.ceil(counts["train"] / batch) * step_s + counts["val"] * forward_ms / 1000) \
                + counts["test"] * forward_ms / 1000
            flops = gflops * 1e9 * (epochs * (3 * counts["train"] + counts["val"]) + counts["test"])
            cpu_s += per_run * runs_per_setting
            gpu_s += flops / (gpu_tflops * 1e12) * runs_per_setting
            runs += runs_per_setting
    print(f"{study} {arch} {encoder}: {step_s:.3f} s/step, {forward_ms:.1f} ms/image, "
          f"{cpu_s / 3600:.2f} CPU h", flush=True)
    return NetworkTime(study, arch, encoder, runs, round(step_s, 4), round(forward_ms, 3), round(gflops, 3),
                       round(cpu_s / 3600, 3), round(gpu_s / 3600, 4), timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", nargs="*", default=sorted(p.stem for p in STUDIES.glob("*.yaml")))
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per network, after one warm-up")
    parser.add_argument("--gpu-tflops", type=float, default=78.0, help="assumed sustained GPU rate (TFLOP/s)")
    parser.add_argument("--factorised", action="store_true", help="time one row and one column of each grid")
    parser.add_argument("--redo", action="store_true", help="measure again the studies results.json already holds")
    args = parser.parse_args()
    results = OUT / "results.json"
    kept = json.loads(results.read_text())["networks"] if results.is_file() else []
    rows = [NetworkTime(**row) for row in kept if not (args.redo and row["study"] in args.studies)]
    for study in args.studies:
        if any(row.study == study for row in rows):
            continue
        rows += estimate(study, args.steps, args.gpu_tflops, args.factorised)
        OUT.mkdir(parents=True, exist_ok=True)
        write_json(results, {"machine": machine_fingerprint(), "gpu_tflops_assumed": args.gpu_tflops,
                             "steps": args.steps, "factorised": args.factorised,
                             "networks": [asdict(r) for r in rows]})
    print("\n| study | networks | runs | CPU hours (measured rate) | GPU hours (estimated) |\n|---|---:|---:|---:|---:|")
    for study in args.studies:
        mine = [r for r in rows if r.study == study]
        print(f"| {study} | {len(mine)} | {sum(r.runs for r in mine)} | {sum(r.cpu_hours for r in mine):.1f} | "
              f"{sum(r.gpu_hours for r in mine):.2f} |")


if __name__ == "__main__":
    main()
