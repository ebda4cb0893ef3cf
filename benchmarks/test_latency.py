"""Hot-path latency: ``Separator.process`` per host block size (at 44.1 kHz, and at 48 kHz
through the resampling), the bare step call, the floor.

Each benchmark times every call and fails when the p99 exceeds a third of the block's
real-time budget (frames / rate s) or the mean exceeds a sixth (``rtsep.bench``), in
each of up to ten measurement windows (``conftest.WINDOWS``).
"""

from __future__ import annotations

import pytest

from rtsep import bench, contract
from rtsep.engine import Separator


@pytest.mark.parametrize("frames", [64, 128, 256, 512, 1024])
def test_process(frames, bench_model, rounds, within_budget):
    """The engine as an audio callback runs it: stereo, one onnxruntime thread, ``out=``."""
    sep = Separator(bench_model)
    sep.prepare(contract.SAMPLE_RATE, max_block_size=frames, channels=2)
    within_budget(bench.process_call(sep, frames), frames, rounds(frames))
    assert sep.stats["errors"] == 0


@pytest.mark.parametrize("frames", [64, 128])
def test_process_at_48k(frames, bench_model, rounds, within_budget):
    """The engine under a 48 kHz host: each call resamples to the model's rate and back."""
    sep = Separator(bench_model)
    sep.prepare(48000, max_block_size=frames, channels=2)
    within_budget(bench.process_call(sep, frames), frames, rounds(frames), 48000)
    assert sep.stats["errors"] == 0


def test_step_call(bench_model, rounds, within_budget):
    """One hop of the ONNX step graph as the engine runs it (``Stepper.run``)."""
    within_budget(bench.StepCall(bench_model), bench_model.hop, rounds(bench_model.hop))


def test_identity_step_call(identity_model, rounds, within_budget):
    """The floor: a trivial graph with the step graph's inputs and outputs."""
    hop = identity_model.hop
    within_budget(bench.StepCall(identity_model), hop, rounds(hop))


def test_process_on_identity(identity_model, rounds, within_budget):
    """The engine around the trivial graph: its own cost per hop, the network excluded."""
    hop = identity_model.hop
    sep = Separator(identity_model)
    sep.prepare(contract.SAMPLE_RATE, max_block_size=hop, channels=2)
    within_budget(bench.process_call(sep, hop), hop, rounds(hop))
