"""Offline separation: chunked sequence graph == step graph hop by hop; resampling; shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtsep
from rtsep.errors import RtsepError
from rtsep.model import providers_here
from rtsep.offline import ChunkedSeparator


@pytest.fixture(scope="module", params=providers_here())
def model(toy_model_dir, request):
    return rtsep.load_model(toy_model_dir, provider=request.param)


def noise(frames: int, channels: int = 2, seed: int = 1) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal((frames, channels))).astype(
        np.float32
    )


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunk_hops=st.integers(1, 40),
    blocks=st.lists(st.integers(1, 3000), min_size=1, max_size=6),
)
def test_sequence_in_any_chunks_equals_step_graph_hop_by_hop(
    model, chunk_hops, blocks, step_graph_hop_by_hop
):
    x = noise(64 * 60)
    want = step_graph_hop_by_hop(model, x)
    runner = ChunkedSeparator(model, chunk=64 * chunk_hops)
    parts, pos, i = [], 0, 0
    while pos < len(x):
        n = blocks[i % len(blocks)]
        parts.append(runner.process(x[pos : pos + n]))
        pos += n
        i += 1
    parts.append(runner.flush())
    got = np.concatenate(parts)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("shape", [(3000, 2), (3001, 1), (77,)])
def test_step_graph_separates_as_the_engine_computes(model, step_graph_hop_by_hop, shape):
    """``graph="step"``: the step graph hop by hop (through ``Stepper``), any length, mono."""
    x = noise(shape[0], 1 if len(shape) == 1 else shape[1]).reshape(shape)
    rows = np.zeros((-(-len(x) // 64) * 64, 2), np.float32)
    rows[: len(x)] = x.reshape(len(x), -1)  # mono: in both rows
    want = step_graph_hop_by_hop(model, rows)[: len(x)]
    out = rtsep.separate(x, 44100, model, graph="step")
    for i, s in enumerate(rtsep.SOURCES):
        assert out[s].shape == x.shape
        got = out[s].reshape(len(x), -1)
        np.testing.assert_allclose(got, want[:, i, : got.shape[1]], atol=1e-5)
    with pytest.raises(RtsepError, match="graph 'stepp'"):
        rtsep.separate(x, 44100, model, graph="stepp")


@pytest.mark.parametrize("shape", [(5000,), (5000, 1), (5000, 2), (77, 2)])
def test_separate_keeps_shape_and_sums_to_input(model, shape):
    x = noise(shape[0], 1 if len(shape) == 1 else shape[1]).reshape(shape)
    out = rtsep.separate(x, 44100, model)
    assert list(out) == list(rtsep.SOURCES)
    assert all(v.shape == x.shape and v.dtype == np.float32 for v in out.values())
    np.testing.assert_allclose(sum(out.values()), x, atol=1e-4)


@pytest.mark.parametrize("rate", [22050, 48000, 96000])
def test_other_rates_are_resampled_and_aligned(model, rate):
    t = np.arange(rate) / rate
    x = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None].repeat(2, 1)
    out = rtsep.separate(x, rate, model)
    assert out["drums"].shape == x.shape
    mix = sum(out.values())
    # resampling is linear, so the sources still sum to the input (inside the band)
    inner = slice(rate // 10, -rate // 10)
    np.testing.assert_allclose(mix[inner], x[inner], atol=2e-3)


def test_mono_equals_first_channel_of_stereo_with_same_left(model):
    x = noise(3000, 2)
    mono = rtsep.separate(x[:, 0], 44100, model)
    stereo = rtsep.separate(x, 44100, model)
    for s in rtsep.SOURCES:
        np.testing.assert_allclose(mono[s], stereo[s][:, 0], atol=1e-5)


def test_bad_input(model):
    with pytest.raises(RtsepError, match="non-empty"):
        rtsep.separate(np.zeros((0, 2), np.float32), 44100, model)
    with pytest.raises(RtsepError, match="3 channels"):
        rtsep.separate(np.zeros((100, 3), np.float32), 44100, model)
    with pytest.raises(RtsepError, match="sample_rate"):
        rtsep.separate(np.zeros((100, 2), np.float32), 0, model)


def test_separators_sharing_a_session_keep_their_own_states(model):
    """The model's sequence session is shared; interleaving two runs changes neither."""
    a, b = noise(64 * 40, seed=2), noise(64 * 40, seed=3)
    alone = [
        np.concatenate([r.process(x), r.flush()])
        for r, x in (
            (ChunkedSeparator(model, chunk=64 * 7), a),
            (ChunkedSeparator(model, chunk=64 * 7), b),
        )
    ]
    ra, rb = ChunkedSeparator(model, chunk=64 * 7), ChunkedSeparator(model, chunk=64 * 7)
    assert ra._session is rb._session is model.shared_session("sequence")
    parts_a, parts_b = [], []
    for pos in range(0, len(a), 500):
        parts_a.append(ra.process(a[pos : pos + 500]))
        parts_b.append(rb.process(b[pos : pos + 500]))
    parts_a.append(ra.flush())
    parts_b.append(rb.flush())
    np.testing.assert_array_equal(np.concatenate(parts_a), alone[0])
    np.testing.assert_array_equal(np.concatenate(parts_b), alone[1])
