"""Fuzz the readers at scale: thousands of structure-aware files per format, outcomes tabulated.

The strategies are those of ``tests/faults/test_property_readers.py`` (``FORMATS``), which runs a
small sample of each in the test suite. Every example is written to a scratch folder and read by
the reader its name selects. An outcome is "ok" (the result passed the sanity checks), one of the
project's errors (DataError: the expected refusal), or anything else -- an exception escaping as
a library traceback, or a result failing the checks -- which is a finding to fix in the reader.
The most frequent DataError messages are listed too, to show how deep into the parsers the
examples reach.

    .venv/bin/python benchmarks/fuzz_readers.py --examples 5000
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import re
import shutil
import subprocess
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path
from types import ModuleType

from hypothesis import HealthCheck, Phase, given, settings

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ROOT / "tests" / "faults" / "test_property_readers.py"


def cpu_name() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def load_strategies() -> ModuleType:
    spec = importlib.util.spec_from_file_location("test_property_readers", STRATEGIES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _message_kind(problem: str) -> str:
    """A DataError's problem without numbers, names and library detail, so that like refusals count together."""
    text = re.sub(r"\((\w+): .*", r"(\1: ...)", " ".join(problem.split()))
    text = re.sub(r"^\S+\.(png|dcm|nii|nii\.gz|mhd|npy|jpg|tif|bmp|raw) ", "FILE ", text)
    return re.sub(r"-?\d[\d,.e+-]*", "N", text)[:100]


def fuzz(module: ModuleType, fmt: str, examples: int, scratch: Path) -> dict[str, object]:
    """Run ``examples`` examples of one format; counts of outcomes, findings with their tracebacks."""
    outcomes: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    findings: list[str] = []
    counter = iter(range(10**9))

    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(sample=module.FORMATS[fmt]())
    def run(sample: tuple[str, dict[str, bytes], bool]) -> None:
        folder = scratch / fmt / str(next(counter))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kind, message = module.outcome(folder, sample)
            outcomes[kind] += 1
            if message:
                messages[_message_kind(message)] += 1
        except Exception as exc:  # noqa: BLE001 - a finding: anything but the project's errors is counted
            outcomes[type(exc).__name__] += 1
            if len(findings) < 5:
                findings.append(f"{sample[0]} ({len(next(iter(sample[1].values())))} bytes): "
                                f"{''.join(traceback.format_exception_only(exc)).strip()}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    start = time.perf_counter()
    run()
    return {"outcomes": outcomes, "messages": messages, "findings": findings, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000, help="examples per format")
    parser.add_argument("--formats", nargs="*", default=None, help="formats to run (default: all)")
    parser.add_argument("--top", type=int, default=8, help="most frequent DataError messages listed per format")
    args = parser.parse_args()
    module = load_strategies()
    formats = args.formats or list(module.FORMATS)
    print(f"CPU: {cpu_name()}; {args.examples} examples per format")
    print()
    print("| format | examples | ok | DataError | other (findings) | time (s) |")
    print("|---|---:|---:|---:|---|---:|")
    details = []
    with tempfile.TemporaryDirectory(prefix="fuzz-readers-") as scratch:
        for fmt in formats:
            if fmt == "truncated_real" and not module.REAL_FILES:
                print(f"| {fmt} | skipped: no real data under {module.SHARED_DATA} | | | | |")
                continue
            result = fuzz(module, fmt, args.examples, Path(scratch))
            outcomes: Counter[str] = result["outcomes"]  # type: ignore[assignment]
            others = {k: v for k, v in outcomes.items() if k not in ("ok", "DataError")}
            other_text = ", ".join(f"{k}: {v}" for k, v in sorted(others.items())) or "0"
            print(f"| {fmt} | {sum(outcomes.values())} | {outcomes['ok']} | {outcomes['DataError']} | {other_text} "
                  f"| {result['seconds']:.0f} |", flush=True)
            details.append((fmt, result))
    for fmt, result in details:
        messages: Counter[str] = result["messages"]  # type: ignore[assignment]
        print(f"\n{fmt}: {len(messages)} distinct DataError messages; the most frequent:")
        for message, count in messages.most_common(args.top):
            print(f"  {count:6d}  {message}")
        for finding in result["findings"]:  # type: ignore[union-attr]
            print(f"  FINDING: {finding}")


if __name__ == "__main__":
    main()
