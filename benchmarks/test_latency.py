"""Hot-path latency: ``Separator.process`` per host block size, the bare step call, the floor.

Each benchmark times every call and fails when the p99 exceeds a third of the block's
real-time budget (frames / 44100 s) or the mean exceeds a sixth (``rtsep.bench``).
"""

from __future__ import annotations

import pytest

from rtsep import bench, contract
from rtsep.engine import Separator


@pytest.mark.parametrize("frames", [64, 128, 256, 512, 1024])
def test_process(frames, bench_model, measure, rounds, within_budget):
    """The engine as an audio callback runs it: stereo, one onnxruntime thread, ``out=``."""
    sep = Separator(bench_model)
    sep.prepare(contract.SAMPLE_RATE, max_block_size=frames, channels=2)
    times = measure(bench.process_call(sep, frames), rounds(frames))
    assert sep.stats["errors"] == 0
    within_budget(times, frames)


def test_step_call(bench_model, measure, rounds, within_budget):
    """One hop of the ONNX step graph as the engine runs it (``Stepper.run``)."""
    times = measure(bench.StepCall(bench_model), rounds(bench_model.hop))
    within_budget(times, bench_model.hop)


def test_identity_step_call(identity_model, measure, rounds, within_budget):
    """The floor: a trivial graph with the step graph's inputs and outputs."""
    times = measure(bench.StepCall(identity_model), rounds(identity_model.hop))
    within_budget(times, identity_model.hop)


def test_process_on_identity(identity_model, measure, rounds, within_budget):
    """The engine around the trivial graph: its own cost per hop, the network excluded."""
    hop = identity_model.hop
    sep = Separator(identity_model)
    sep.prepare(contract.SAMPLE_RATE, max_block_size=hop, channels=2)
    times = measure(bench.process_call(sep, hop), rounds(hop))
    within_budget(times, hop)
