"""Does any CUDA provider option make the graph-replayed step faster? And where does its time go?

Run where CUDA runs: ``python benchmarks/cuda_provider_options.py``. For each option set it
prints the step call's latency (``rtsep.bench.StepCall``, CUDA graph) and its error against
the CPU over 300 hops of noise; then the replay alone, without the copy of the sources back
(README, "CUDA"). Each set goes on top of the shipped ``rtsep.model.CUDA_OPTIONS`` through
``Model.cuda_options``.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from rtsep import bench, contract
from rtsep.model import CUDA_OPTIONS, load_model

CALLS = 3000
VARIANTS = {
    "as shipped": {},
    "cuDNN algorithm search HEURISTIC": {"cudnn_conv_algo_search": "HEURISTIC"},
    "cuDNN algorithm search DEFAULT": {"cudnn_conv_algo_search": "DEFAULT"},
    "conv1d padded to NC1D": {"cudnn_conv1d_pad_to_nc1d": "1"},
    "prefer NHWC": {"prefer_nhwc": "1"},
    "no maximum cuDNN workspace": {"cudnn_conv_use_max_workspace": "0"},
    "TF32 products": {"use_tf32": "1"},
    "as shipped, again": {},  # a drift over the run shows here
}


def hops(call: bench.StepCall, x: np.ndarray) -> np.ndarray:
    call.stepper.zero_states()
    out = []
    for start in range(0, x.shape[1], contract.HOP):
        call.audio[:] = x[:, start : start + contract.HOP]
        call()
        out.append(call.sources.copy())
    return np.concatenate(out, axis=-1)


def main() -> None:
    x = (0.3 * np.random.default_rng(0).standard_normal((2, contract.HOP * 300))).astype(np.float32)
    reference = hops(bench.StepCall(load_model(provider="cpu")), x)
    cuda = load_model(provider="cuda")
    for name, extra in VARIANTS.items():
        options = {**CUDA_OPTIONS, **extra}
        call = bench.StepCall(dataclasses.replace(cuda, cuda_options=options))
        error = hops(call, x) - reference
        error_db = 10 * np.log10(np.sum(error**2) / np.sum(reference**2))
        bench.time_calls(call, calls=300)  # warm-up
        row = bench.summarize(bench.time_calls(call, calls=CALLS).wall_ns, contract.HOP)
        print(
            f"{name:34s} graph {call.stepper.cuda_graph!s:5s} mean {row['mean_us']:6.1f} "
            f"p50 {row['p50_us']:6.1f} p99 {row['p99_us']:6.1f} µs, error {error_db:6.1f} dB",
            flush=True,
        )
    # The replay without the copy back: Stepper.run's first two parts, through its internals.
    stepper = bench.StepCall(cuda).stepper
    times = []
    for _ in range(CALLS):
        start = time.perf_counter_ns()
        stepper._upload(stepper._audio)
        parity = stepper._parity
        stepper.session.run_with_iobinding(stepper._bindings[parity], stepper._run_options[parity])
        stepper._parity = parity ^ 1
        times.append(time.perf_counter_ns() - start)
    print(f"replay without the copy back: p50 {np.median(times[300:]) / 1e3:.1f} µs")


if __name__ == "__main__":
    main()
