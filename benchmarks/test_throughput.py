"""Offline throughput: ``rtsep.separate`` on stereo audio, in multiples of real time.

The floor is the issue's target for the default model, 30x real time on this 2-core
machine: a 4-minute song in 8 s. The toy model is far cheaper, so the same floor holds it.
It holds on the thread's own CPU time always (one onnxruntime thread: all the work is on
this thread); on the wall clock too, except that a miss caused by preemption on a busy
machine is reported as xfail (unless ``RTSEP_BENCH_STRICT=1``). Up to ten measurement
windows, as for latency (``conftest.WINDOWS``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from rtsep import bench, contract
from rtsep.offline import separate

MIN_X_REALTIME = 30.0


def test_separate_throughput(bench_model, measure, short, benchmark):
    seconds = 5.0 if short else 20.0
    audio = bench.noise(int(seconds * contract.SAMPLE_RATE))
    strict = os.environ.get("RTSEP_BENCH_STRICT") == "1"

    def x_realtime(times_ns: np.ndarray) -> float:
        return seconds / (float(np.median(times_ns)) / 1e9)

    def problems(timings: bench.Timings) -> list[str]:
        cpu_x, wall_x = x_realtime(timings.cpu_ns), x_realtime(timings.wall_ns)
        if cpu_x < MIN_X_REALTIME:
            return [f"on-CPU {cpu_x:.1f}x real time < {MIN_X_REALTIME:g}x"]
        if wall_x < MIN_X_REALTIME and (strict or not timings.involuntary):
            return [f"{wall_x:.1f}x real time < {MIN_X_REALTIME:g}x"]
        return []

    timings = measure(
        lambda: separate(audio, contract.SAMPLE_RATE, model=bench_model),
        3 if short else 7,
        problems,
    )
    wall_x, cpu_x = x_realtime(timings.wall_ns), x_realtime(timings.cpu_ns)
    benchmark.extra_info.update(audio_seconds=seconds, x_realtime=wall_x, cpu_x_realtime=cpu_x)
    if wall_x < MIN_X_REALTIME:  # held only because the machine was busy
        pytest.xfail(
            f"the machine is busy: {wall_x:.1f}x real time on the wall clock, but on-CPU "
            f"{cpu_x:.1f}x holds; preempted {timings.involuntary} times by other work"
        )
