"""The CUDA provider gives what the CPU gives: the bundled model on the bundled demo clip.

Runs where CUDA runs (``bash scripts/setup.sh --gpu`` on an NVIDIA machine) and
is skipped elsewhere. The toy-model tests of the engine and of offline separation also run
once per provider there (``providers_here``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import rtsep
from rtsep.bench import StepCall
from rtsep.model import providers_here

pytestmark = pytest.mark.skipif(
    "cuda" not in providers_here(),
    reason="CUDA does not run here: bash scripts/setup.sh --gpu on an NVIDIA machine",
)

DEMO = Path(rtsep.__file__).parent / "data" / "demo.flac"
AGREEMENT_DB = -60.0
"""Largest error of CUDA against CPU, relative to the CPU output: far below what anyone hears
next to the separation error itself (about -4 dB at 4 dB SDR)."""


def demo(seconds: float = 4.0) -> np.ndarray:
    audio, rate = sf.read(DEMO, dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio[: int(seconds * rate)])


def error_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10(np.sum((estimate - reference) ** 2) / np.sum(reference**2)))


@pytest.mark.parametrize("source", rtsep.SOURCES)
def test_streaming_on_cuda_matches_cpu(source):
    x = demo()
    sizes = [512, 37, 64, 300, 1]
    heard = {}
    for provider in ("cpu", "cuda"):
        sep = rtsep.Separator.load(provider=provider)
        sep.solo(source)  # one source alone: the sum of all would be the input itself
        sep.prepare(44100, 512, 2)
        blocks, pos, i = [], 0, 0
        while pos < len(x):
            n = min(sizes[i % len(sizes)], len(x) - pos)
            blocks.append(sep.process(x[pos : pos + n]))
            pos, i = pos + n, i + 1
        heard[provider] = np.concatenate(blocks)
        assert sep.stats["errors"] == 0
    assert error_db(heard["cuda"], heard["cpu"]) < AGREEMENT_DB


def test_offline_on_cuda_matches_cpu():
    x = demo()
    cpu = rtsep.separate(x, 44100, provider="cpu")
    cuda = rtsep.separate(x, 44100, provider="cuda")
    for source in rtsep.SOURCES:
        assert error_db(cuda[source], cpu[source]) < AGREEMENT_DB, source


@pytest.mark.parametrize("cuda_graph", [True, False])
def test_a_hop_on_cuda_matches_cpu_with_and_without_a_graph(cuda_graph):
    x = demo(1.0)
    calls = {
        "cpu": StepCall(rtsep.load_model(provider="cpu")),
        "cuda": StepCall(rtsep.load_model(provider="cuda"), cuda_graph=cuda_graph),
    }
    assert calls["cuda"].stepper.cuda_graph == cuda_graph  # the bundled model is capturable
    hops = {}
    for provider, call in calls.items():
        out = []
        for start in range(0, len(x) - 63, 64):
            call.audio[:] = x[start : start + 64].T
            call()
            out.append(call.sources.copy())
        hops[provider] = np.concatenate(out, axis=-1)
    assert error_db(hops["cuda"], hops["cpu"]) < AGREEMENT_DB
