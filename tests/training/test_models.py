"""The model family: step hop by hop == sequence in chunks == training model; sources sum to x."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("tensorflow")

from rtsep import contract
from rtsep.delays import DelayLine
from training import models

HOP = contract.HOP


@pytest.fixture(scope="module")
def tiny():
    return models.build("tiny")


def _chunked(model, specs, audio: np.ndarray, chunks: list[int], delays=None) -> np.ndarray:
    """``model`` on ``audio`` in ``chunks``, states chained; ``delays``: the step graph's
    delay-line states, fed back through ``rtsep.delays.DelayLine``."""
    delays = delays or {}
    lines = {name: DelayLine(shape, delays[name]) for name, shape in specs if name in delays}
    states = [np.zeros(s, np.float32) for _, s in specs]
    outs, pos = [], 0
    for n in chunks:
        res = model([audio[:, pos : pos + n], *states], training=False)
        res = [np.asarray(r) for r in res]
        outs.append(res[0])
        states = [
            lines[name].feed(value) if name in lines else value
            for (name, _), value in zip(specs, res[1:], strict=True)
        ]
        pos += n
    return np.concatenate(outs, axis=-1)


def _steps(net, audio: np.ndarray, hops: int) -> np.ndarray:
    """The step model hop by hop."""
    return _chunked(net.step_model(), net.step_specs, audio, [HOP] * hops, net.delays)


def _signal(seed: int, hops: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((contract.CHANNELS, hops * HOP))).astype(np.float32)


@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    chunks=st.lists(st.integers(1, 9), min_size=1, max_size=5),
)
def test_step_sequence_training_agree(tiny, seed, chunks):
    """Any chunking of the sequence model and the step model give the training model's output."""
    hops = sum(chunks)
    audio = _signal(seed, hops)
    want = np.asarray(tiny.training_model()(audio, training=False))
    seq = _chunked(tiny.sequence_model(), tiny.state_specs, audio, [n * HOP for n in chunks])
    step = _steps(tiny, audio, hops)
    np.testing.assert_allclose(seq, want, atol=1e-5)
    np.testing.assert_allclose(step, want, atol=1e-5)


def test_state_reaches_far_back(tiny):
    """The output at the last hop depends on input many hops earlier (the TCN's view)."""
    audio = _signal(1, 12)
    changed = audio.copy()
    changed[:, :HOP] += 0.5
    a = np.asarray(tiny.training_model()(audio))
    b = np.asarray(tiny.training_model()(changed))
    assert np.abs(a[..., -HOP:] - b[..., -HOP:]).max() > 1e-6
    # causal: changing the future never changes the past
    later = audio.copy()
    later[:, 6 * HOP :] += 0.5
    c = np.asarray(tiny.training_model()(later))
    np.testing.assert_allclose(c[..., : 6 * HOP], a[..., : 6 * HOP], atol=1e-6)


@pytest.mark.parametrize("preset", ["tiny", "seed"])
def test_mixture_consistency_and_shapes(preset):
    net = models.build(preset)
    audio = _signal(2, 5)
    out = np.asarray(net.training_model()(audio))
    assert out.shape == (contract.CHANNELS, len(contract.SOURCES), 5 * HOP)
    np.testing.assert_allclose(out.sum(axis=1), audio, atol=1e-5)


def test_seed_processes_each_hop_alone():
    """The seed preset sees one 64-sample chunk: a hop's output ignores every other hop."""
    net = models.build("seed")
    audio = _signal(3, 4)
    other = audio.copy()
    other[:, : 3 * HOP] = 0.0
    a = np.asarray(net.training_model()(audio))
    b = np.asarray(net.training_model()(other))
    np.testing.assert_allclose(a[..., 3 * HOP :], b[..., 3 * HOP :], atol=1e-6)
    assert net.state_specs == []


def test_presets_size():
    """Figures the design relies on: the seed is ~2 M params; rt fits the per-hop budget."""
    seed, rt, tiny = (models.build(p) for p in ("seed", "rt", "tiny"))
    assert 1.5e6 < seed.parameters() < 2.5e6
    assert rt.macs_per_hop() < 1.0e6
    assert tiny.parameters() < 20_000


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset"):
        models.build("huge")


@pytest.mark.parametrize(
    "overrides",
    [{"decoder_hops": 1}, {"norm_blocks": False, "window_hops": 8}, {"channels": 2}],
)
def test_variants_agree(overrides):
    """Design variants (no synthesis context, no block norms, longer window, stereo) stay
    exact: training, step and sequence graphs give the same numbers."""
    net = models.build("tiny", **overrides)
    audio = _signal(4, 7)
    want = np.asarray(net.training_model()(audio, training=False))
    step = _steps(net, audio, 7)
    seq = _chunked(net.sequence_model(), net.state_specs, audio, [3 * HOP, 4 * HOP])
    np.testing.assert_allclose(step, want, atol=1e-5)
    np.testing.assert_allclose(seq, want, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 2])
def test_rows_are_grouped_by_channels(channels):
    """Changing row 1 changes row 0's sources exactly when rows are stereo pairs; rows of
    another pair (2, 3) never do."""
    net = models.build("tiny", channels=channels)
    audio = np.concatenate([_signal(5, 6), _signal(6, 6)])  # 4 rows: two stereo items
    base = np.asarray(net.training_model()(audio, training=False))
    right = audio.copy()
    right[1] *= -0.5
    other = audio.copy()
    other[2:] = 0.0
    a = np.asarray(net.training_model()(right, training=False))
    b = np.asarray(net.training_model()(other, training=False))
    assert (np.abs(a[0] - base[0]).max() > 1e-4) == (channels == 2)
    np.testing.assert_allclose(b[:2], base[:2], atol=1e-6)
