"""Streaming resampling: exact in time, band-limited, any partition, the bridge never short."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsep.errors import RtsepError
from rtsep.resample import RateBridge, StreamResampler, _bridge_delay, half_taps

PAIRS = [(48000, 44100), (44100, 48000), (96000, 44100), (44100, 96000), (32000, 44100)]


def resample(r: StreamResampler, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Write x in blocks of the given sizes (cycled), reading all that is ready after each."""
    out, pos, i = [], 0, 0
    while pos < len(x):
        n = sizes[i % len(sizes)]
        r.write(x[pos : pos + n])
        got = np.zeros((r.ready(), x.shape[1]), np.float32)
        r.read(got)
        out.append(got)
        pos, i = pos + n, i + 1
    return np.concatenate(out)


def tone(freq: float, rate: int, frames: int, delay_s: float = 0.0) -> np.ndarray:
    t = np.arange(frames) / rate - delay_s
    return (0.5 * np.sin(2 * np.pi * freq * t))[:, None]


def error_db(got: np.ndarray, want: np.ndarray) -> float:
    return 10 * math.log10(np.mean((got - want) ** 2) / np.mean(want**2))


@pytest.mark.parametrize(("src", "dst"), PAIRS)
@pytest.mark.parametrize("share", [0.05, 0.45, 0.82])
def test_a_passband_tone_comes_out_at_the_new_rate_in_time(src, dst, share):
    """No delay, no phase error: output n is the tone at time n / dst (after the first
    filter length, which reads the silence before the stream). ``share`` of the lower
    Nyquist: 0.82 of 22050 Hz is 18 kHz."""
    freq = share * min(src, dst) / 2
    y = resample(StreamResampler(src, dst, 1, 300), tone(freq, src, src // 2), [300, 7, 64])
    want = tone(freq, dst, len(y))
    assert error_db(y[500:], want[500:]) < -70


@pytest.mark.parametrize(("src", "dst"), [(48000, 44100), (96000, 44100)])
def test_tones_above_the_lower_nyquist_are_removed(src, dst):
    y = resample(StreamResampler(src, dst, 1, 256), tone(23000.0, src, src // 2), [256])
    assert 10 * math.log10(np.mean(y[500:] ** 2) / 0.125) < -65


def test_lag_delays_by_whole_steps_of_one_over_q():
    """lag = 37 delays 48 kHz → 44.1 kHz output by 37 / 147 of a 48 kHz sample."""
    src, dst, lag = 48000, 44100, 37
    y = resample(StreamResampler(src, dst, 1, 128, lag), tone(5000.0, src, 24000), [128])
    want = tone(5000.0, dst, len(y), delay_s=lag / 147 / src)
    assert error_db(y[500:], want[500:]) < -70


@settings(max_examples=30, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    sizes=st.lists(st.integers(1, 200), min_size=1, max_size=8),
    lag=st.integers(0, 5000),
)
def test_any_partition_gives_the_same_output(pair, sizes, lag):
    src, dst = pair
    x = np.random.default_rng(0).standard_normal((3000, 2)).astype(np.float32)
    whole = resample(StreamResampler(src, dst, 2, 3000, lag), x, [3000])
    parts = resample(StreamResampler(src, dst, 2, 200, lag), x, sizes)
    assert len(parts) == len(whole)
    # the same to float rounding: BLAS sums a product's rows in an order that depends on its
    # shape (a one-row product is a matrix-vector one), so the last bits may differ (up to
    # 9.5e-7, two float32 steps at this noise's peaks of 3.9); a misplaced sample is O(1)
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-5)


def test_reading_more_than_is_ready_is_refused():
    r = StreamResampler(48000, 44100, 1, 64)
    r.write(np.zeros((64, 1), np.float32))
    with pytest.raises(RtsepError, match="ready"):
        r.read(np.zeros((r.ready() + 1, 1), np.float32))


def test_a_rare_rate_pair_is_refused_in_one_line():
    with pytest.raises(RtsepError) as err:
        StreamResampler(44101, 44100, 2, 128)
    assert "44101" in str(err.value) and "\n" not in str(err.value)


def bridge_run(bridge: RateBridge, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    """x through a bridge around a model-rate identity that is late by one hop (64)."""
    held = np.zeros((64, x.shape[1]), np.float32)
    line = np.zeros((0, x.shape[1]), np.float32)

    def late_identity(block: np.ndarray, out: np.ndarray) -> None:
        nonlocal line
        line = np.concatenate([line if len(line) else held, block])
        out[:] = line[: len(block)]
        line = line[len(block) :]

    out, pos, i = [], 0, 0
    while pos < len(x):
        n = min(sizes[i % len(sizes)], len(x) - pos)
        y = np.zeros((n, x.shape[1]), np.float32)
        bridge.process(x[pos : pos + n], y, late_identity)
        out.append(y)
        pos, i = pos + n, i + 1
    return np.concatenate(out)


@pytest.mark.parametrize("host", [48000, 96000, 32000])
def test_bridge_output_is_the_input_late_by_its_latency(host):
    """Around a 64-sample delay at 44.1 kHz, a band-limited signal comes back exactly
    ``latency`` host samples late: the latency is a whole number and it is true."""
    bridge = RateBridge(host, 44100, 1, 256, 64)
    x = sum(tone(f, host, host // 2) for f in (440.0, 3000.0, 9000.0, 13000.0)).astype(np.float32)
    y = bridge_run(bridge, x, [256, 1, 77])
    d = bridge.latency
    assert 2.5e-3 < d / host < 3.5e-3
    assert error_db(y[d + 500 :], x[500 : len(x) - d]) < -60
    assert error_db(y[d + 501 :], x[500 : len(x) - d - 1]) > -30  # one sample off is wrong


@settings(max_examples=20, deadline=None)
@given(
    host=st.sampled_from([48000, 88200, 96000, 22050]),
    sizes=st.lists(st.integers(1, 300), min_size=1, max_size=8),
)
def test_bridge_never_owes_output_it_cannot_make(host, sizes):
    """Any partition: every call can fill its output (``read`` raises otherwise)."""
    x = np.random.default_rng(1).standard_normal((4000, 2)).astype(np.float32)
    bridge_run(RateBridge(host, 44100, 2, 300, 64), x, sizes)


@pytest.mark.parametrize("host", [48000, 96000])
def test_bridge_latency_is_the_smallest_that_works(host):
    """One sample less, and some call (here: the first of one-frame blocks) runs short."""
    bridge = RateBridge(host, 44100, 1, 64, 64)
    g = math.gcd(host, 44100)
    d = _bridge_delay(host // g, 44100 // g, bridge._down.half, half_taps(44100, host), 64)
    assert d == bridge.latency
    bridge.latency -= 1
    lag = bridge.latency * (44100 // g) - 64 * (host // g)
    bridge._up = StreamResampler(44100, host, 1, bridge.max_model_block, lag)
    with pytest.raises(RtsepError, match="ready"):
        bridge_run(bridge, np.zeros((2 * host // 100, 1), np.float32), [1])
