"""Streaming resampling for the engine at host rates other than the model's (48 kHz, 96 kHz).

soxr resamples files (``rtsep.files``), but its streaming modes do not fit an audio callback:
the fixed-rate ones hand out output in bursts of several hundred frames, the variable-rate
one holds back about 5 ms in each direction, and every call returns a new array. So the
callback uses ``StreamResampler``: a polyphase Kaiser-windowed sinc filter with
``HALF_TAPS`` taps each side at the lower of the two rates (stopband from the lower
Nyquist, about 70 dB down; passband to about 0.86 of the lower Nyquist, 19 kHz at
44.1 kHz). Its buffers and coefficient tables are made once; ``write`` and ``read`` only
copy into them and do no Python loop per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from rtsep.errors import RtsepError

HALF_TAPS = 32
"""Filter taps on each side of an output sample, counted at the lower of the two rates."""

KAISER_BETA = 7.0
"""Kaiser window shape: about 70 dB of stopband attenuation."""

MAX_PHASES = 2048
"""Most fractional positions (rows of the coefficient table); rarer rate pairs are refused.
A table has phases + CHUNK rows, each as wide as the source span of that many outputs plus
the taps: 0.4 MB each way at 48 kHz, 3.2 MB from 384 kHz, about 15 MB at the most."""

CHUNK = 128
"""Most output samples computed by one matrix product (a read of more takes several)."""

MIN_RATE, MAX_RATE = 8000, 384000
"""Stream rates the engine takes, in Hz."""


def check_rate(rate: float, model_rate: int) -> int:
    """``rate`` as an int when the engine can stream at it (for a model at ``model_rate``);
    else an RtsepError that says what to use."""
    whole = isinstance(rate, (int, float, np.integer, np.floating)) and float(rate).is_integer()
    if not whole or not MIN_RATE <= rate <= MAX_RATE:
        raise RtsepError(
            f"sample rate must be a whole number of Hz from {MIN_RATE} to {MAX_RATE}, not {rate!r}"
        )
    rate = int(rate)
    if max(rate, model_rate) // math.gcd(rate, model_rate) > MAX_PHASES:
        raise _rare(rate, model_rate)
    return rate


def half_taps(src_rate: int, dst_rate: int) -> int:
    """Taps on each side of an output sample, at the source rate: HALF_TAPS at the lower rate."""
    return math.ceil(HALF_TAPS / min(1.0, dst_rate / src_rate))


def _rare(a: int, b: int) -> RtsepError:
    return RtsepError(
        f"cannot resample between {a} and {b} Hz in real time: use a common rate such as "
        "44100, 48000, 88200 or 96000 Hz"
    )


class StreamResampler:
    """Band-limited resampling of a stream from ``src_rate`` to ``dst_rate``.

    Output sample ``n`` is the source's value at source time ``(n * src_rate / dst_rate) -
    lag / q``, where ``q = dst_rate / gcd``: ``lag`` delays the output by a whole number of
    the finest steps of both rates, so that delays can be matched exactly. Source samples
    before the first one written are silence.

    Real-time safe after construction: ``write`` copies into a preallocated history,
    ``read`` computes into the caller's array: each output sample is a row of a dense
    coefficient table (zero outside its taps) times a slice of the history, so up to
    ``CHUNK`` outputs are one BLAS matrix product on views, with no gather.
    """

    def __init__(
        self, src_rate: int, dst_rate: int, channels: int, max_write: int, lag: int = 0
    ) -> None:
        g = math.gcd(src_rate, dst_rate)
        self._p, self._q = src_rate // g, dst_rate // g
        if self._q > MAX_PHASES:
            raise _rare(src_rate, dst_rate)
        scale = min(1.0, dst_rate / src_rate)  # the cutoff sits at the lower rate's Nyquist
        self.half = half_taps(src_rate, dst_rate)
        self._lag = lag
        taps = 2 * self.half
        self.max_read = max_write * self._q // self._p + 2
        # Output n = c q + m weighs the source samples from c p + _first + _starts[m] on
        # with row m of _table; a row is 2 half taps wide where it is not zero. Rows for one
        # period of q outputs and CHUNK more, so that up to CHUNK outputs are one product
        # of a block of _table with a slice of the history, whatever the phase m.
        m = np.arange(self._q + CHUNK, dtype=np.int64)
        pos = m * self._p - lag
        first_taps = pos // self._q - self.half + 1  # the source sample of each row's tap 0
        self._first = int(first_taps[0])
        starts = first_taps - self._first
        self._starts = starts.tolist()  # Python ints: cheap to index in the callback
        self._taps = taps
        self._table = np.zeros((len(m), int(starts[-1]) + taps), np.float32)
        self._table[m[:, None], starts[:, None] + np.arange(taps)] = _kernel_table(
            self._q, self.half, scale
        )[pos % self._q]
        self._origin = min(0, self._first)  # history index 0 holds this source sample at first
        self._buf = np.zeros((max_write + 2 * taps - self._origin + 8, channels), np.float32)
        self._base = self._origin  # the source sample at history index 0
        self._end = 0  # source samples written (the next one's index)
        self._next = 0  # the next output sample

    def reset(self) -> None:
        """Back to the start: silence before, nothing written, nothing read."""
        self._buf.fill(0.0)
        self._base, self._end, self._next = self._origin, 0, 0

    def ready(self) -> int:
        """Output samples that the source written so far determines, not yet read."""
        # output n needs source samples up to floor((n p - lag) / q) + half
        reach = (self._end - self.half) * self._q + self._lag
        return max(0, -(-reach // self._p) - self._next)

    def write(self, block: np.ndarray) -> None:
        """Append source frames (at most ``max_write``)."""
        frames = len(block)
        used = self._end - self._base
        if used + frames > len(self._buf):  # drop what no output will read again
            cycle, m = divmod(self._next, self._q)
            keep = cycle * self._p + self._first + self._starts[m] - self._base
            self._buf[: used - keep] = self._buf[keep:used]
            self._base += keep
            used -= keep
        self._buf[used : used + frames] = block
        self._end += frames

    def read(self, out: np.ndarray) -> None:
        """Fill ``out`` (frames, channels) with the next output samples; they must be ready."""
        n = len(out)
        if n > self.ready():
            raise RtsepError(f"resampler asked for {n} samples, {self.ready()} are ready")
        done = 0
        while done < n:
            cycle, m = divmod(self._next, self._q)
            rows = min(n - done, CHUNK)
            lo, hi = self._starts[m], self._starts[m + rows - 1] + self._taps
            src = cycle * self._p + self._first + lo - self._base
            np.matmul(
                self._table[m : m + rows, lo:hi],
                self._buf[src : src + hi - lo],
                out=out[done : done + rows],
            )
            self._next += rows
            done += rows


class RateBridge:
    """Runs a processor made for the model's rate on a stream at the host's rate.

    Each host block is resampled to the model's rate, processed there, and resampled back.
    The way back is delayed so that every output sample a call owes is already determined:
    the output is the processed input ``latency`` host samples late, a whole number, the
    smallest for which no block partition can leave the output short.
    """

    def __init__(
        self, host_rate: int, model_rate: int, channels: int, max_block: int, model_latency: int
    ) -> None:
        self._down = StreamResampler(host_rate, model_rate, channels, max_block)
        self.max_model_block = self._down.max_read
        g = math.gcd(host_rate, model_rate)
        host, model = host_rate // g, model_rate // g
        up_half = half_taps(model_rate, host_rate)
        self.latency = _bridge_delay(host, model, self._down.half, up_half, model_latency)
        # back at host sample j, read the model-rate stream at (j - latency) model/host
        # + model_latency: lag in steps of 1 / host (the up resampler's q)
        lag = self.latency * model - model_latency * host
        self._up = StreamResampler(model_rate, host_rate, channels, self.max_model_block, lag)
        self._in = np.zeros((self.max_model_block, channels), np.float32)
        self._out = np.zeros((self.max_model_block, channels), np.float32)

    def reset(self) -> None:
        """Forget the stream: both resamplers start from silence."""
        self._down.reset()
        self._up.reset()

    def process(
        self,
        block: np.ndarray,
        out: np.ndarray,
        inner: Callable[[np.ndarray, np.ndarray], None],
    ) -> None:
        """``out`` = ``inner(input, output)`` run at the model's rate on ``block``, returned
        at the host's rate ``latency`` samples late."""
        self._down.write(block)
        n = self._down.ready()
        if n:
            self._down.read(self._in[:n])
            inner(self._in[:n], self._out[:n])
            self._up.write(self._out[:n])
        self._up.read(out)


def _bridge_delay(host: int, model: int, down_half: int, up_half: int, model_latency: int) -> int:
    """The smallest whole delay in host samples for which, after any N host samples, the
    model-rate samples made so far determine host output N - 1 (rates reduced to
    ``host``:``model``)."""
    n = np.arange(1, 2 * host + 2 * down_half + 2, dtype=np.int64)
    made = np.maximum(0, -(-(n - down_half) * model // host))  # down outputs, then processed
    delay = max(0, int(down_half + (model_latency + up_half) * host / model) - 2)
    while True:
        lag = delay * model - model_latency * host
        needs = ((n - 1) * model - lag) // host + up_half  # newest model sample output n-1 reads
        if np.all(needs < made):
            return delay
        delay += 1


def _kernel_table(phases: int, half: int, scale: float) -> np.ndarray:
    """Windowed-sinc taps, one row of 2 half per fractional position k / phases.

    Row k weighs source samples at offsets -half+1 .. half from the output's integer
    position; each row sums to 1, so silence and DC pass exactly.
    """
    transition = (8.7 + KAISER_BETA / 0.1102 - 7.95) / (14.36 * 2 * HALF_TAPS)
    cutoff = scale * (1.0 - transition)  # stopband edge at the lower Nyquist
    offsets = np.arange(-half + 1, half + 1, dtype=np.float64)
    t = offsets[None, :] - np.arange(phases, dtype=np.float64)[:, None] / phases
    inside = np.clip(1.0 - (t / half) ** 2, 0.0, None)
    taps = cutoff * np.sinc(cutoff * t) * np.i0(KAISER_BETA * np.sqrt(inside)) / np.i0(KAISER_BETA)
    taps /= taps.sum(axis=1, keepdims=True)
    return taps.astype(np.float32)
