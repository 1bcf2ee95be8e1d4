"""Load test of `cardioseg serve`: many clinicians' pages at once, for a fixed time, on this CPU.

Starts `cardioseg serve` on 127.0.0.1 (its own scratch folder, in a private TMPDIR) with a real
model file, then runs ``--clients`` concurrent clients for ``--seconds``. Each client does what a
page does with one real camus224 validation image: upload it (segmentation), fetch the slice and
its PNG, move the threshold, paint a stroke, undo it, download the mask, and close the session;
one cycle in four leaves the session open, as a clinician who closes the tab does, so the
store's eviction is exercised too. Reported: requests done and failed per request type (any 5xx
is an error of the app), median and 95th-percentile latency, and the server's peak resident
memory (VmHWM) and its resident memory when the clients stop, which must stay bounded.

The model defaults to the trained demo model (runs/demo/run/model.safetensors, U-Net-ResNet18 at
128 x 128) when it exists, else a width-16 plain U-Net at 128 x 128 with random weights is
written (inference costs the same whatever the weights). The load generator runs on the same
machine: run it alone:

    .venv/bin/python benchmarks/load_test.py --out load_results.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from cardioseg.app.sessions import MAX_SESSIONS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "camus224" / "val"
DEMO = ROOT / "runs" / "demo" / "run" / "model.safetensors"
HEADERS = {"X-Cardioseg": "1"}
KEEP_OPEN_EVERY = 4  # one cycle in four leaves its session open


@dataclass
class Tally:
    """Latencies and outcomes of one request type."""

    latencies: list[float] = field(default_factory=list)
    status: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    failures: int = 0  # no answer at all (connection error, timeout)


def cpu_name() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def tiny_unet(folder: Path) -> Path:
    """A width-16 plain U-Net for 128 x 128 camus224 images, random weights."""
    import torch

    from cardioseg.config import ModelConfig, PreprocessConfig
    from cardioseg.models.checkpoint import ModelBundle, save_bundle
    from cardioseg.models.factory import build_model
    from cardioseg.plan import ClassSpec, Plan

    torch.manual_seed(0)
    model_cfg = ModelConfig(arch="plain_unet", encoder=None, classes=1, options={"base": 16, "depth": 4})
    plan = Plan(layout="camus_png", orientation="transpose", preprocess=PreprocessConfig(size=(128, 128)),
                label_map={1: 1}, classes=(ClassSpec(id=0, name="background"),
                                           ClassSpec(id=1, name="LV endocardium", role="lv_cavity")))
    return save_bundle(ModelBundle(model=build_model(model_cfg).eval(), model_cfg=model_cfg, plan=plan),
                       folder / "plain_unet16.safetensors")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def memory_kb(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` field in kB: VmRSS (now) or VmHWM (peak resident set)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


async def timed(session: aiohttp.ClientSession, tallies: dict[str, Tally], kind: str, method: str, url: str,
                **kwargs: object) -> tuple[int, object] | None:
    """One request: its latency and status recorded under ``kind``; (status, JSON or bytes), None on no answer."""
    begun = time.perf_counter()
    try:
        async with session.request(method, url, headers=HEADERS, **kwargs) as response:  # type: ignore[arg-type]
            body = await (response.json() if response.content_type == "application/json" else response.read())
            status = response.status
    except (TimeoutError, aiohttp.ClientError):
        tallies[kind].failures += 1
        return None
    tallies[kind].latencies.append(time.perf_counter() - begun)
    tallies[kind].status[status] += 1
    return status, body


async def page(base: str, images: list[tuple[str, bytes]], deadline: float, tallies: dict[str, Tally],
               seed: int) -> None:
    """One client: upload, review, correct, download, close; again until the deadline."""
    rng = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(base, timeout=timeout) as http:
        cycle = 0
        while time.monotonic() < deadline:
            cycle += 1
            name, data = rng.choice(images)
            answer = await timed(http, tallies, "upload", "POST", "/api/sessions", params={"name": name}, data=data)
            if answer is None or answer[0] != 200:
                continue
            summary = answer[1]
            sid = summary["id"]  # type: ignore[index]
            await timed(http, tallies, "slice", "GET", f"/api/sessions/{sid}/slices/0")
            await timed(http, tallies, "image.png", "GET", f"/api/sessions/{sid}/slices/0/image.png")
            await timed(http, tallies, "settings", "PUT", f"/api/sessions/{sid}/settings",
                        json={"threshold": round(rng.uniform(0.3, 0.7), 2), "fill_holes": True,
                              "largest_component": True, "closing_radius": rng.randint(0, 3)})
            points = [[rng.randint(40, 180), rng.randint(40, 180)] for _ in range(rng.randint(2, 30))]
            await timed(http, tallies, "stroke", "POST", f"/api/sessions/{sid}/slices/0/strokes",
                        json={"mode": rng.choice(["brush", "eraser"]), "radius": rng.randint(2, 12), "points": points})
            await timed(http, tallies, "undo", "POST", f"/api/sessions/{sid}/undo")
            await timed(http, tallies, "mask.png", "GET", f"/api/sessions/{sid}/mask.png")
            if cycle % KEEP_OPEN_EVERY:
                await timed(http, tallies, "close", "DELETE", f"/api/sessions/{sid}")


def wait_until_serving(base: str, server: subprocess.Popen[bytes]) -> None:
    import urllib.request

    for _ in range(1200):
        if server.poll() is not None:
            raise SystemExit(f"cardioseg serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("cardioseg serve did not answer within 2 minutes")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def table(tallies: dict[str, Tally], seconds: float) -> list[str]:
    rows = ["| request | done | per s | 2xx | 4xx | 5xx | no answer | median ms | p95 ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, tally in tallies.items():
        done = len(tally.latencies)
        ok = sum(n for s, n in tally.status.items() if 200 <= s < 300)
        client = sum(n for s, n in tally.status.items() if 400 <= s < 500)
        server = sum(n for s, n in tally.status.items() if s >= 500)
        median = statistics.median(tally.latencies) * 1000 if done else float("nan")
        p95 = percentile(tally.latencies, 0.95) * 1000 if done else float("nan")
        rows.append(f"| {kind} | {done} | {done / seconds:.1f} | {ok} | {client} | {server} | {tally.failures} "
                    f"| {median:.0f} | {p95:.0f} |")
    return rows


async def run_clients(base: str, images: list[tuple[str, bytes]], clients: int, seconds: float,
                      tallies: dict[str, Tally]) -> float:
    begun = time.monotonic()
    deadline = begun + seconds
    await asyncio.gather(*(page(base, images, deadline, tallies, seed) for seed in range(clients)))
    return time.monotonic() - begun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model file to serve (default: the demo model, else a "
                        "width-16 plain U-Net at 128x128 with random weights)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--images", type=int, default=40, help="camus224 validation images the clients pick from")
    parser.add_argument("--out", type=Path, help="write the results (Markdown) here too")
    args = parser.parse_args()

    images = [(p.name, p.read_bytes()) for p in sorted(DATA.glob("patient*_[24]CH_E[DS].png"))[: args.images]]
    if not images:
        raise SystemExit(f"no camus224 validation images under {DATA} (see ../shared/data/README.md)")
    with tempfile.TemporaryDirectory(prefix="cardioseg-load-") as private:
        model = args.model or (DEMO if DEMO.exists() else tiny_unet(Path(private)))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [str(Path(sys.executable).with_name("cardioseg")), "serve", "--model", str(model), "--port", str(port)]
        server = subprocess.Popen(command, env={**os.environ, "TMPDIR": private}, stdout=subprocess.DEVNULL)
        try:
            wait_until_serving(base, server)
            rss_start = memory_kb(server.pid, "VmRSS")
            tallies: dict[str, Tally] = defaultdict(Tally)
            elapsed = asyncio.run(run_clients(base, images, args.clients, args.seconds, tallies))
            peak, rss_end = memory_kb(server.pid, "VmHWM"), memory_kb(server.pid, "VmRSS")
            still_open = len(list(Path(private).glob("cardioseg-serve-*/sessions/*")))  # a folder per session
        finally:
            server.terminate()
            server.wait(timeout=60)

    total = sum(len(t.latencies) for t in tallies.values())
    errors_5xx = sum(n for t in tallies.values() for s, n in t.status.items() if s >= 500)
    lines = [
        f"## Load test of `cardioseg serve` ({time.strftime('%Y-%m-%d')})",
        "",
        f"CPU: {cpu_name()} ({os.cpu_count()} cores; the load generator runs on the same cores). "
        f"Model: `{model.name}`{' (the trained demo model)' if model == DEMO else ''}; "
        f"{args.clients} concurrent clients for {args.seconds:g} s on {len(images)} real camus224 validation images, "
        f"serve.workers 2 (default).",
        "",
        f"Command: `.venv/bin/python benchmarks/load_test.py "
        f"{' '.join(shlex.quote(a) for a in sys.argv[1:])}`",
        "",
        *table(tallies, elapsed),
        "",
        f"{total} requests in {elapsed:.1f} s ({total / elapsed:.1f}/s), {errors_5xx} with a 5xx answer. "
        f"Server resident memory: {rss_start / 1024:.0f} MB after start, peak {peak / 1024:.0f} MB (VmHWM), "
        f"{rss_end / 1024:.0f} MB when the clients stopped, with {still_open} sessions still open "
        f"(those left open are evicted beyond the store's {MAX_SESSIONS}).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
