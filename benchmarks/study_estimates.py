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
benchmarks/study_estimates/results.json and a markdown table on stdout.

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/study_estimates.py --steps 2 --factorised
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cardioseg.config import Config, ModelConfig, load_config
from cardioseg.data.prepared import PreparedDataset
from cardioseg.models.factory import build_model
from cardioseg.models.registry import get_model_entry
from cardioseg.models.summary import summarize_model
from cardioseg.runtime import machine_fingerprint
from cardioseg.training.losses import build_loss

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "benchmarks" / "studies"
OUT = ROOT / "benchmarks" / "study_estimates"


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


def estimate(study: str, steps: int, gpu_tflops: float, factorised: bool = False) -> list[NetworkTime]:
    cfg = load_config(STUDIES / f"{study}.yaml")
    counts = split_counts(study)
    runs_per_setting = len(cfg.sweep.augmentations) * len(cfg.sweep.seeds) * len(cfg.sweep.learning_rates or [0])
    epoch_grid = cfg.sweep.epochs or [cfg.train.epochs]
    rows = []
    timed, corner = timed_networks(cfg, factorised)
    # timed networks first, so that every factorised estimate finds its row and column
    ordered = sorted(networks(cfg), key=lambda net: net not in timed)
    times: dict[tuple[int, Network], tuple[float, float]] = {}
    for arch, encoder in ordered:
        model_cfg = cfg.model.model_copy(update={"arch": arch, "encoder": encoder, "encoder_weights": None})
        gflops = summarize_model(build_model(model_cfg), in_channels=model_cfg.in_channels,
                                 size=cfg.preprocess.size[0]).gflops
        cpu_s = gpu_s = 0.0
        runs = 0
        for batch in cfg.sweep.batch_sizes or [cfg.train.batch_size]:
            cfg.train.batch_size = batch
            if (arch, encoder) in timed:
                times[(batch, (arch, encoder))] = time_network(model_cfg, cfg, steps)
                step_s, forward_ms = times[(batch, (arch, encoder))]
            else:
                step_s, forward_ms = factor({net: v for (b, net), v in times.items() if b == batch}, corner,
                                            arch, encoder)
            for epochs in epoch_grid:
                per_run = epochs * (math.ceil(counts["train"] / batch) * step_s + counts["val"] * forward_ms / 1000) \
                    + counts["test"] * forward_ms / 1000
                flops = gflops * 1e9 * (epochs * (3 * counts["train"] + counts["val"]) + counts["test"])
                cpu_s += per_run * runs_per_setting
                gpu_s += flops / (gpu_tflops * 1e12) * runs_per_setting
                runs += runs_per_setting
        rows.append(NetworkTime(study, arch, encoder, runs, round(step_s, 4), round(forward_ms, 3), round(gflops, 3),
                                round(cpu_s / 3600, 3), round(gpu_s / 3600, 4), (arch, encoder) in timed))
        print(f"{study} {arch} {encoder}: {step_s:.3f} s/step, {forward_ms:.1f} ms/image, "
              f"{cpu_s / 3600:.2f} CPU h", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", nargs="*", default=sorted(p.stem for p in STUDIES.glob("*.yaml")))
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per network, after one warm-up")
    parser.add_argument("--gpu-tflops", type=float, default=78.0, help="assumed sustained GPU rate (TFLOP/s)")
    parser.add_argument("--factorised", action="store_true", help="time one row and one column of each grid")
    args = parser.parse_args()
    machine = machine_fingerprint()
    rows = [row for study in args.studies for row in estimate(study, args.steps, args.gpu_tflops, args.factorised)]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"machine": machine, "gpu_tflops_assumed": args.gpu_tflops,
                                                  "steps": args.steps, "networks": [asdict(r) for r in rows]},
                                                 indent=2, default=str) + "\n")
    print("\n| study | networks | runs | CPU hours (measured rate) | GPU hours (estimated) |\n|---|---:|---:|---:|---:|")
    for study in args.studies:
        mine = [r for r in rows if r.study == study]
        print(f"| {study} | {len(mine)} | {sum(r.runs for r in mine)} | {sum(r.cpu_hours for r in mine):.1f} | "
              f"{sum(r.gpu_hours for r in mine):.2f} |")


if __name__ == "__main__":
    main()
