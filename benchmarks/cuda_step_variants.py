"""Step-call latency on CUDA against the CPU, with and without TF32 and a CUDA graph.

Run on a machine where onnxruntime offers CUDA:
``python benchmarks/cuda_step_variants.py report.json``. It times the bundled model's step
graph the way ``rtsep bench`` does (one call per 64-frame hop), then a CUDA-graph session
with every input and output on the GPU (the hop's audio copied in each call). The engine
does not use a CUDA graph; this measures what one would give (README, "CUDA").
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort

from rtsep import bench, contract
from rtsep.model import CUDA_OPTIONS, load_model

CALLS = 3000


def report(name: str, timings: bench.Timings, results: dict) -> None:
    row = bench.summarize(timings.wall_ns, contract.HOP)
    results[name] = row
    print(f"{name:28s} p50 {row['p50_us']:7.1f}  p99 {row['p99_us']:7.1f}  µs", flush=True)


def graph_call(model, options: dict):
    """A step call with all I/O bound on the GPU, under ``options``; returns it, warmed up."""
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(model.path / contract.STEP_FILE),
        session_options,
        providers=[("CUDAExecutionProvider", options), "CPUExecutionProvider"],
    )
    binding = session.io_binding()
    values = []

    def on_gpu(shape: tuple[int, ...]):
        values.append(ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, np.float32), "cuda", 0))
        return values[-1]

    audio_value = on_gpu((model.channels, model.hop))
    binding.bind_ortvalue_input(contract.AUDIO_INPUT, audio_value)
    shape = (model.channels, len(model.sources), model.hop)
    binding.bind_ortvalue_output(contract.SOURCES_OUTPUT, on_gpu(shape))
    for name, state in model.states:
        binding.bind_ortvalue_input(name, on_gpu(state))
        binding.bind_ortvalue_output(name + contract.STATE_OUT_SUFFIX, on_gpu(state))
    audio = bench.noise(model.hop).T.copy()

    def call() -> None:
        audio_value.update_inplace(audio)
        session.run_with_iobinding(binding)

    for _ in range(200):  # the first run captures the graph
        call()
    return call


def main(out: str) -> None:
    results: dict = {"onnxruntime": ort.__version__}
    for provider in ("cpu", "cuda"):
        call = bench.StepCall(load_model(provider=provider))
        for _ in range(200):
            call()
        report(f"step {provider}", bench.time_calls(call, calls=CALLS), results)
    cuda = load_model(provider="cuda")
    report("step cuda, TF32", bench.time_calls(graph_call(cuda, {}), calls=CALLS), results)
    graph = graph_call(cuda, {**CUDA_OPTIONS, "enable_cuda_graph": "1"})
    report("step cuda, CUDA graph", bench.time_calls(graph, calls=CALLS), results)
    for provider in ("cpu", "cuda"):
        speed = bench.offline_speed(load_model(provider=provider), seconds=3.0)
        results[f"offline {provider}"] = speed["x_realtime"]
        print(f"offline {provider}: {speed['x_realtime']:.1f}x real time", flush=True)
    with open(out, "w") as file:
        json.dump(results, file, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
