"""``DelayLine``: each entry comes back exactly its delay later, for any delays and shape."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsep.delays import DelayLine


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 2),
    delays=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    frame=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    hops=st.integers(1, 40),
)
def test_each_entry_is_the_output_of_its_delay_ago(rows, delays, frame, hops):
    shape = (rows, len(delays), *frame)
    line = DelayLine(shape, delays)
    rng = np.random.default_rng(len(delays) * 100 + hops)
    written = []
    for t in range(hops):
        for j, d in enumerate(delays):
            want = written[t - d][:, j] if t >= d else np.zeros((rows, *frame), np.float32)
            np.testing.assert_array_equal(line.input[:, j], want)
        out = rng.standard_normal(shape).astype(np.float32)
        line.output[...] = out
        written.append(out)
        line.advance()


def test_reset_forgets_the_past():
    line = DelayLine((1, 3, 8), [1, 4, 2])
    for value in range(1, 6):
        line.output.fill(value)
        line.advance()
    assert line.input.any()
    line.reset()
    for _ in range(5):  # only what comes after the reset comes back
        assert set(np.unique(line.input)) <= {0.0, -1.0}
        line.output.fill(-1.0)
        line.advance()


def test_advance_allocates_nothing():
    line = DelayLine((1, 9, 96), [1, 2, 4, 8, 16, 32, 64, 128, 256])
    for _ in range(300):
        line.advance()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    for _ in range(3000):
        line.advance()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert after - before <= 256  # nothing kept per call (3000 calls)
    assert peak - before < 1024  # no per-call buffers (the gathered input is 3.5 KB)


@pytest.mark.parametrize(
    ("shape", "delays"), [((1, 2, 4), [1]), ((1,), [1]), ((1, 2), [1, 0]), ((2, 0, 3), [])]
)
def test_delays_that_do_not_fit_the_shape_are_refused(shape, delays):
    with pytest.raises(ValueError, match="do not fit"):
        DelayLine(shape, delays)
