"""Training losses: the SDR loss measures dB per source; weights shift it between sources."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("tensorflow")

from rtsep import contract
from training import losses


def _pair(seed: int, batch: int = 3, samples: int = 256) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.standard_normal((batch, 4, samples)).astype(np.float32)
    scale = rng.uniform(0.05, 2.0, (batch, 4, 1)).astype(np.float32)
    return target, target + scale * rng.standard_normal(target.shape).astype(np.float32)


def test_sdr_per_source_is_the_energy_ratio_in_db():
    target, estimate = _pair(0)
    got = losses.neg_sdr_per_source(target, estimate).numpy()
    signal = np.sum(target**2, -1)
    noise = np.sum((target - estimate) ** 2, -1)
    floor = losses.MIX_FLOOR * np.sum(target.sum(1) ** 2, -1)[:, None]
    want = -10 * np.log10((signal + floor) / (noise + 1e-3 * signal + floor))
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.isclose(float(losses.neg_sdr(target, estimate)), want.mean(), atol=1e-4)


@pytest.mark.parametrize("frames", [1, 3])
def test_sdr_frames_is_the_mean_of_each_frames_sdr(frames):
    """An excerpt of ``frames`` seconds is cut into 1 s frames, each scored on its own."""
    rng = np.random.default_rng(frames)
    n = frames * losses.FRAME
    target = rng.standard_normal((2, 4, n)).astype(np.float32)
    scale = np.repeat(rng.uniform(0.01, 1.0, (2, 4, frames)), losses.FRAME, axis=-1)
    estimate = (target + scale * rng.standard_normal(target.shape)).astype(np.float32)
    cut = [slice(f * losses.FRAME, (f + 1) * losses.FRAME) for f in range(frames)]
    each = [losses.neg_sdr_per_source(target[..., c], estimate[..., c]) for c in cut]
    got = losses.neg_sdr_frames_per_source(target, estimate).numpy()
    np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-5, atol=1e-5)
    if frames > 1:  # unlike the whole excerpt's SDR
        whole = losses.neg_sdr_per_source(target, estimate).numpy()
        assert np.abs(got - whole).max() > 0.5


def test_sdr_frames_counts_a_quiet_second_as_much_as_a_loud_one():
    """The same relative error in a second 40 dB quieter moves the frame loss as much, and the
    whole-excerpt loss hardly at all."""
    rng = np.random.default_rng(0)
    target = rng.standard_normal((1, 4, 2 * losses.FRAME)).astype(np.float32)
    target[..., losses.FRAME :] *= 0.01
    clean = target.copy()
    noisy = target.copy()
    noisy[..., losses.FRAME :] *= 1.5  # 6 dB SDR in the quiet second
    frames = float(losses.neg_sdr_frames(target, noisy) - losses.neg_sdr_frames(target, clean))
    whole = float(losses.neg_sdr(target, noisy) - losses.neg_sdr(target, clean))
    assert frames > 5.0 and whole < 0.5


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 1000),
    name=st.sampled_from(sorted(losses.LOSSES)),
    weights=st.dictionaries(st.sampled_from(contract.SOURCES), st.floats(0.1, 10.0), max_size=4),
)
def test_weighted_is_the_weighted_mean_over_sources(seed, name, weights):
    target, estimate = _pair(seed)
    w = losses.source_weights(weights, contract.SOURCES)
    assert np.isclose(np.mean(w), 1.0)
    ratios = [w[i] / weights.get(s, 1.0) for i, s in enumerate(contract.SOURCES)]
    assert np.allclose(ratios, ratios[0])  # proportional to what was asked
    per = losses.PER_SOURCE[name](target, estimate).numpy()
    got = float(losses.weighted(name, w)(target, estimate))
    assert np.isclose(got, float(np.mean(per * np.asarray(w))), rtol=1e-5, atol=1e-6)
    if not weights or len(set(w)) == 1:  # equal weights: the plain loss
        assert np.isclose(got, float(losses.LOSSES[name](target, estimate)), rtol=1e-5)


def test_drums_weighted_moves_the_gradient_to_drums():
    """The gradient on the drums' estimate grows against the others' by the weight ratio."""
    import tensorflow as tf

    target, estimate = _pair(1)
    est = tf.Variable(estimate)
    norms = {}
    for key, weights in (("equal", {}), ("drums", {"drums": 3.0})):
        loss = losses.weighted("sdr", losses.source_weights(weights, contract.SOURCES))
        with tf.GradientTape() as tape:
            value = loss(target, est)
        grad = tape.gradient(value, est).numpy()
        norms[key] = np.linalg.norm(grad, axis=(0, 2))
    ratio = norms["drums"] / norms["equal"]
    assert np.allclose(ratio, [2.0, 2 / 3, 2 / 3, 2 / 3], rtol=1e-4)


@pytest.mark.parametrize(
    "weights, match",
    [({"drum": 2.0}, "unknown source 'drum'"), ({"bass": 0.0}, "above 0")],
)
def test_source_weights_refuses_what_it_cannot_use(weights, match):
    with pytest.raises(ValueError, match=match):
        losses.source_weights(weights, contract.SOURCES)
