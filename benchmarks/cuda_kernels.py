"""Which GPU kernels one hop of the step graph runs on CUDA, and how long each one takes.

A replayed hop is one launch on the host, so its time is the GPU's: this counts it kernel by
kernel (README, "CUDA"). Run where CUDA runs, under Nsight Compute, with warm caches and the
GPU's own clocks (ncu otherwise flushes the caches before each kernel and locks the clocks,
which inflates a tiny kernel's time by about half)::

    ncu --profile-from-start off --graph-profiling node --cache-control none \\
        --clock-control none --metrics gpu__time_duration.sum --csv \\
        python benchmarks/cuda_kernels.py run 5 > kernels.csv
    python benchmarks/cuda_kernels.py summarize kernels.csv 5 > kernels.md

``run HOPS`` warms the CUDA graph up, then runs HOPS hops between cudaProfilerStart and
cudaProfilerStop (``--no-graph`` runs plain CUDA instead). ``summarize CSV HOPS`` needs no GPU.
"""

from __future__ import annotations

import argparse
import collections
import csv
import ctypes
from pathlib import Path

WARM_UP_HOPS = 50


def run(hops: int, cuda_graph: bool) -> None:
    """HOPS hops of the bundled model inside the profiled range (ncu sees nothing else)."""
    from rtsep.bench import StepCall
    from rtsep.model import load_model
    from rtsep.step import _cuda_version

    call = StepCall(load_model(provider="cuda"), cuda_graph=cuda_graph)
    assert call.stepper.cuda_graph == cuda_graph, "the CUDA graph was not captured"
    for _ in range(WARM_UP_HOPS):
        call()
    cudart = ctypes.CDLL(f"libcudart.so.{_cuda_version().split('.')[0]}")
    cudart.cudaProfilerStart()
    for _ in range(hops):
        call()
    cudart.cudaProfilerStop()


def summarize(path: Path, hops: int) -> str:
    """A Markdown table from ncu's CSV: kernels per hop and GPU time per kernel name."""
    rows = [row for row in csv.DictReader(_csv_lines(path)) if row["Metric Name"]]
    count: collections.Counter[str] = collections.Counter()
    time_ns: collections.Counter[str] = collections.Counter()
    for row in rows:
        name = row["Kernel Name"].removeprefix("void ").split("(")[0]
        count[name] += 1
        time_ns[name] += float(row["Metric Value"].replace(",", ""))
    each = sorted(float(row["Metric Value"].replace(",", "")) for row in rows)
    lines = [
        f"{len(rows) / hops:.0f} kernels a hop, {sum(each) / hops / 1000:.1f} µs of GPU time a hop "
        f"(median kernel {each[len(each) // 2] / 1000:.2f} µs, shortest {each[0] / 1000:.2f} µs; "
        f"{hops} hops)",
        "",
        "| kernels a hop | µs a hop | kernel |",
        "|---:|---:|---|",
    ]
    for name, ns in time_ns.most_common():
        lines.append(f"| {count[name] / hops:.0f} | {ns / hops / 1000:.1f} | `{name[:90]}` |")
    return "\n".join(lines)


def _csv_lines(path: Path) -> list[str]:
    """ncu's CSV without the ``==PROF==`` lines and the program's own output before it."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('"ID"'))
    return [line for line in lines[start:] if not line.startswith("==")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    profile = commands.add_parser("run", help="run HOPS hops inside the profiled range")
    profile.add_argument("hops", type=int)
    profile.add_argument("--no-graph", action="store_true", help="plain CUDA, no CUDA graph")
    table = commands.add_parser("summarize", help="a Markdown table from ncu's CSV")
    table.add_argument("csv", type=Path)
    table.add_argument("hops", type=int)
    args = parser.parse_args()
    if args.command == "run":
        run(args.hops, cuda_graph=not args.no_graph)
    else:
        print(summarize(args.csv, args.hops))


if __name__ == "__main__":
    main()
