"""Step-call latency on CUDA, with and without a CUDA graph, against the CPU; offline speed.

Run where CUDA runs: ``python benchmarks/cuda_step_variants.py report.json``. Each step
call is one hop as the engine runs it (``rtsep.bench.StepCall``): on CUDA that includes
copying the hop in and the sources back (README, "CUDA").
"""

from __future__ import annotations

import json
import sys

import onnxruntime as ort

from rtsep import bench, contract
from rtsep.model import load_model

CALLS = 3000


def main(out: str) -> None:
    results: dict = {"onnxruntime": ort.__version__}
    cpu, cuda = load_model(provider="cpu"), load_model(provider="cuda")
    variants = {
        "step cpu": bench.StepCall(cpu),
        "step cuda, CUDA graph": bench.StepCall(cuda),
        "step cuda, no graph": bench.StepCall(cuda, cuda_graph=False),
    }
    assert variants["step cuda, CUDA graph"].stepper.cuda_graph, "the graph was not captured"
    for name, call in variants.items():
        bench.time_calls(call, calls=200)  # warm-up
        row = bench.summarize(bench.time_calls(call, calls=CALLS).wall_ns, contract.HOP)
        results[name] = row
        print(f"{name:24s} p50 {row['p50_us']:7.1f}  p99 {row['p99_us']:7.1f}  µs", flush=True)
    for model in (cpu, cuda):
        speed = bench.offline_speed(model, seconds=3.0)["x_realtime"]
        results[f"offline {model.provider}"] = speed
        print(f"offline {model.provider}: {speed:.1f}x real time", flush=True)
    with open(out, "w") as file:
        json.dump(results, file, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
