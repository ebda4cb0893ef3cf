"""The weights' moving average: its arithmetic, its warm-up and the swap for validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

tf = pytest.importorskip("tensorflow")

from training.ema import WeightAverage, effective_decay  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(
    decay=st.floats(0.0, 0.999),
    values=st.lists(st.floats(-10, 10), min_size=1, max_size=30),
    updates0=st.integers(0, 5000),
)
def test_update_is_the_warmed_up_exponential_average(decay, values, updates0):
    """After each step the shadow is ``d * shadow + (1 - d) * weight`` with
    ``d = min(decay, (1 + n) / (10 + n))``, n counting updates (resumed from ``updates0``)."""
    var = tf.Variable(np.zeros((2, 3), np.float32))
    average = WeightAverage([var], decay)
    average.restore([np.full((2, 3), 0.5, np.float32)], updates0)
    update = tf.function(average.update)
    expect = 0.5
    for k, x in enumerate(values):
        var.assign(np.full((2, 3), x, np.float32))
        update()
        d = effective_decay(decay, updates0 + k)
        expect = d * expect + (1 - d) * x
    np.testing.assert_allclose(average.arrays()[0], expect, rtol=1e-4, atol=1e-4)
    assert int(average.updates) == updates0 + len(values)


def test_warm_up_forgets_the_start():
    """Early updates weigh the new weights heavily, so a fresh average does not stay at the
    weights it started from; late ones use the decay itself."""
    assert effective_decay(0.999, 0) == pytest.approx(0.1)
    assert effective_decay(0.999, 100_000) == 0.999


def test_applied_swaps_the_average_in_and_back():
    var = tf.Variable([1.0, 2.0])
    average = WeightAverage([var], 0.9)
    average.restore([np.array([5.0, 6.0], np.float32)], 100)
    with average.applied():
        np.testing.assert_array_equal(var.numpy(), [5.0, 6.0])
    np.testing.assert_array_equal(var.numpy(), [1.0, 2.0])
    with pytest.raises(RuntimeError), average.applied():
        raise RuntimeError("validation failed")
    np.testing.assert_array_equal(var.numpy(), [1.0, 2.0])


def test_restore_without_shadows_starts_at_the_weights():
    var = tf.Variable([3.0, -1.0])
    average = WeightAverage([var], 0.99)
    var.assign([4.0, 4.0])
    average.restore(None, 0)
    np.testing.assert_array_equal(average.arrays()[0], [4.0, 4.0])
    assert int(average.updates) == 0
