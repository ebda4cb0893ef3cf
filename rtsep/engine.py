"""The streaming engine: ``Separator``, a plugin-style processor over the step graph.

Host blocks of any size (1 to ``max_block_size`` frames) go into an input ring; every
complete hop of 64 frames runs the ONNX step graph once (IOBinding, states alternating
between two preallocated sets), the sources are mixed with per-sample gain ramps, and the
mix goes into an output ring that is read one hop later. Latency is exactly one hop.
At other host rates (48 kHz, 96 kHz) a ``RateBridge`` resamples each block to the model's
rate and back, and the latency is a fixed whole number of host samples (about 3 ms).

Real-time rules (DESIGN.md): ``process(block, out=...)`` allocates no buffers, takes no
locks, does no I/O and no logging, and loops in Python per hop, never per sample. Controls
(``set_gain``, ``mute``, ``solo``, ``toggle``, ``bypass``, ``set_dry_wet``) only write
single elements of small arrays, so they are safe from another thread (a MIDI callback)
while ``process`` runs, and every change is ramped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rtsep.errors import RtsepError
from rtsep.model import Model, load_model
from rtsep.resample import RateBridge, check_rate
from rtsep.step import Stepper

RAMP_MS = 5.0
"""Time a gain change of 1.0 takes; the gain moves at most 1/ramp_samples per sample."""

MAX_GAIN = 4.0
"""Largest per-source gain (+12 dB)."""


class Separator:
    """Real-time separation of a stream, with per-source gains.

    >>> sep = Separator.load()
    >>> sep.prepare(sample_rate=44100, max_block_size=512, channels=2)
    >>> out = sep.process(block)        # block: float32 (frames, channels)
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        n = len(model.sources)
        self._gain = np.ones(n, np.float32)
        self._muted = np.zeros(n, bool)
        self._soloed = np.zeros(n, bool)
        self._dry_wet = 1.0
        self._bypassed = False
        # Ramp targets: one per source, then the wet amount (last).
        self._target = np.ones(n + 1, np.float32)
        self._prepared = False
        self._bridge: RateBridge | None = None  # resampling, when the host's rate is another
        self._hops = 0
        self._nonfinite = 0
        self._errors = 0

    @classmethod
    def load(cls, path: str | Path | None = None, provider: str = "cpu") -> Separator:
        """A Separator over the model folder at ``path`` (None = the bundled default).

        The CPU is the default: a hop takes about 130 µs on one core of a laptop-class CPU,
        against 230–270 µs replayed from a CUDA graph on an H200 (README, "CUDA").
        """
        return cls(load_model(path, provider))

    # ---- set-up (not real-time) -------------------------------------------------------

    def prepare(self, sample_rate: int = 44100, max_block_size: int = 1024, channels: int = 2):
        """Allocate everything ``process`` needs; call before streaming, not in the callback.

        Mono and stereo are supported (mono runs in the first row of the model's batch).
        The model runs at its own rate (44100 Hz); a stream at another rate is resampled
        to it and back inside ``process``, which adds about 3 ms of latency
        (``latency_samples`` says how much) and band-limits the output to about 19 kHz.
        """
        sample_rate = check_rate(sample_rate, self.model.sample_rate)  # 48000.0 is fine too
        if channels not in (1, 2):
            raise RtsepError(
                f"{channels} channels: rtsep separates mono or stereo; downmix to 2 channels first"
            )
        if not isinstance(max_block_size, int) or max_block_size < 1:
            raise RtsepError(f"max_block_size must be a positive integer, not {max_block_size!r}")
        hop, rows, n = self.model.hop, self.model.channels, len(self.model.sources)
        self._channels = channels
        self._max_block = max_block_size
        self._bridge = None
        if sample_rate != self.model.sample_rate:
            self._bridge = RateBridge(
                sample_rate, self.model.sample_rate, channels, max_block_size, hop
            )
            max_block_size = self._bridge.max_model_block  # what reaches the model's rate

        self._hop_frames = np.zeros((hop, rows), np.float32)  # input ring: one hop, time-major
        self._in_fill = 0
        self._audio = np.zeros((rows, hop), np.float32)  # model input, channel-major
        self._sources = np.zeros((rows, n, hop), np.float32)
        self._weighted = np.zeros((rows, n, hop), np.float32)
        self._mixed = np.zeros((rows, hop), np.float32)
        self._abs = np.zeros((rows, n, hop), np.float32)
        self._levels = np.zeros(n, np.float32)
        self._ring = np.zeros((max_block_size + 2 * hop, channels), np.float32)
        self._dry_tail = np.zeros((hop, channels), np.float32)  # last hop of input: the fallback
        self._read = 0
        self._avail = 0

        ramp_samples = RAMP_MS * 1e-3 * self.model.sample_rate
        self._ramp = (np.arange(1, hop + 1, dtype=np.float32) / np.float32(ramp_samples))[None, :]
        self._current = self._target.copy()
        self._delta = np.zeros(n + 1, np.float32)
        self._sign = np.zeros(n + 1, np.float32)
        self._curve = np.zeros((n + 1, hop), np.float32)

        self._stepper = Stepper(self.model, self._audio, self._sources)
        self._prepared = True
        self.reset()

    def reset(self) -> None:
        """Forget the past: zero states and rings, gains jump to their targets.

        Not real-time safe against a concurrent ``process``: call it from the audio thread or
        while the stream is stopped.
        """
        self._require_prepared()
        self._stepper.zero_states()
        if self._bridge is not None:
            self._bridge.reset()
        self._resting = False
        self._hop_frames.fill(0.0)
        self._in_fill = 0
        self._ring.fill(0.0)
        self._dry_tail.fill(0.0)
        self._tail_pos = 0  # where the oldest remembered sample is
        self._read = 0
        self._avail = self.model.hop  # one hop of silence: the latency
        np.copyto(self._current, self._target)

    # ---- properties ---------------------------------------------------------------------

    @property
    def sources(self) -> tuple[str, ...]:
        """Source names in model order."""
        return self.model.sources

    @property
    def latency_samples(self) -> int:
        """Delay from input to output in samples, constant: one hop at the model's rate,
        more at other rates (the resampling there)."""
        return self.model.hop if self._bridge is None else self._bridge.latency

    @property
    def gains(self) -> dict[str, float]:
        """User gain per source (mute and solo not applied)."""
        return {s: float(g) for s, g in zip(self.sources, self._gain)}

    @property
    def heard(self) -> dict[str, bool]:
        """Whether each source is heard, after mute and solo."""
        return {s: bool(t > 0.0) for s, t in zip(self.sources, self._target[:-1])}

    @property
    def targets(self) -> dict[str, float]:
        """Effective gain per source (mute, solo applied) that the ramps move towards."""
        return {s: float(t) for s, t in zip(self.sources, self._target[:-1])}

    @property
    def soloed(self) -> frozenset[str]:
        """Sources that are soloed now."""
        return frozenset(s for s, on in zip(self.sources, self._soloed) if on)

    @property
    def bypassed(self) -> bool:
        """Whether the dry input is passed through."""
        return self._bypassed

    @property
    def dry_wet(self) -> float:
        """Effective wet amount: 0 = dry input, 1 = separated mix (bypass gives 0)."""
        return float(self._target[-1])

    @property
    def levels(self) -> np.ndarray:
        """Peak of each separated source over the last hop, before gains (for meters)."""
        return self._levels if self._prepared else np.zeros(len(self.sources), np.float32)

    @property
    def stats(self) -> dict[str, int]:
        """Counters: hops run, inputs with NaN/Inf sanitized, exceptions passed through dry."""
        return {"hops": self._hops, "nonfinite": self._nonfinite, "errors": self._errors}

    # ---- controls (lock-free, any thread) -------------------------------------------------

    def _index(self, source: str) -> int:
        try:
            return self.sources.index(source)
        except ValueError:
            raise RtsepError(
                f"unknown source {source!r}: choose from {', '.join(self.sources)}"
            ) from None

    def set_gain(self, source: str, gain: float) -> None:
        """Set a source's gain (0 to 4, linear); ramped."""
        if not (isinstance(gain, (int, float)) and math.isfinite(gain) and 0 <= gain <= MAX_GAIN):
            raise RtsepError(f"gain must be a number from 0 to {MAX_GAIN}, not {gain!r}")
        self._gain[self._index(source)] = gain
        self._update_targets()

    def mute(self, source: str, on: bool = True) -> None:
        """Mute (or unmute) a source."""
        self._muted[self._index(source)] = on
        self._update_targets()

    def solo(self, source: str, on: bool = True) -> None:
        """Solo a source: while any source is soloed, only soloed sources are heard."""
        self._soloed[self._index(source)] = on
        self._update_targets()

    def toggle(self, source: str) -> bool:
        """Flip a source's mute; returns whether it is now unmuted."""
        i = self._index(source)
        self._muted[i] = not self._muted[i]
        self._update_targets()
        return not bool(self._muted[i])

    def only(self, sources: list[str] | tuple[str, ...]) -> None:
        """Unmute exactly ``sources`` and mute the rest (solos cleared)."""
        keep = {self._index(s) for s in sources}
        for i in range(len(self.sources)):
            self._muted[i] = i not in keep
            self._soloed[i] = False
        self._update_targets()

    def bypass(self, on: bool = True) -> None:
        """Pass the dry input through (delayed by the latency), ramped."""
        self._bypassed = bool(on)
        self._update_targets()

    def set_dry_wet(self, wet: float) -> None:
        """Blend between the dry input (0) and the separated mix (1)."""
        if not (isinstance(wet, (int, float)) and math.isfinite(wet) and 0 <= wet <= 1):
            raise RtsepError(f"dry/wet must be a number from 0 to 1, not {wet!r}")
        self._dry_wet = float(wet)
        self._update_targets()

    def _update_targets(self) -> None:
        any_solo = bool(self._soloed.any())
        for i in range(len(self.sources)):
            heard = not self._muted[i] and (self._soloed[i] or not any_solo)
            self._target[i] = self._gain[i] if heard else 0.0
        self._target[-1] = 0.0 if self._bypassed else self._dry_wet

    # ---- the hot path ---------------------------------------------------------------------

    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Process one host block (float32, (frames, channels)); returns the output block.

        Pass ``out`` (same shape, float32) to avoid the one allocation this makes otherwise.
        Output is the input delayed by ``latency_samples``, remixed by the source gains.
        An exception inside passes the input through dry, still delayed by the latency so that
        nothing jumps in time, and is counted in ``stats``.
        """
        return self._run(block, out, self._process)

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        """``process`` at the model's rate, on a checked block."""
        frames = len(block)
        if self._resting:  # back from pass_dry: a fresh model, continuing from the dry signal
            self._resting = False
            self._stepper.zero_states()
            self._recover()
        try:
            self._push(block, frames)
            self._pop(out, frames)
        except Exception:
            self._errors += 1
            self._emit_dry(block, out, frames)
            self._remember_tail(block, frames)
            self._recover()
        else:
            self._remember_tail(block, frames)

    def pass_dry(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Play the input late by the latency without running the model: the path for an
        overload.

        Real-time safe and a few µs (about 10 more through the resampling at other rates).
        The model is not fed meanwhile, so the next ``process``
        starts it from zero states, goes on from the dry signal without a gap, and ramps
        from dry to the separated mix over the ramp time.
        """
        return self._run(block, out, self._pass_dry)

    def _run(
        self,
        block: np.ndarray,
        out: np.ndarray | None,
        inner: Callable[[np.ndarray, np.ndarray], None],
    ) -> np.ndarray:
        """Check the call, then run ``inner`` at the model's rate: on the block itself, or
        through the resampling when the host's rate is another."""
        self._require_prepared()
        self._check_block(block)
        out = self._check_out(block, out)
        if self._bridge is None:
            inner(block, out)
        else:
            self._bridge.process(block, out, inner)
        return out

    def _pass_dry(self, block: np.ndarray, out: np.ndarray) -> None:
        """``pass_dry`` at the model's rate, on a checked block."""
        frames = len(block)
        self._emit_dry(block, out, frames)
        self._remember_tail(block, frames)
        self._resting = True

    def _check_out(self, block: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        if out is None:
            return np.empty_like(block)
        if out.shape != block.shape or out.dtype != np.float32:
            raise RtsepError(
                f"out must be float32 of shape {block.shape}, not {out.dtype} {out.shape}"
            )
        return out

    def _check_block(self, block: np.ndarray) -> int:
        if not isinstance(block, np.ndarray) or block.dtype != np.float32 or block.ndim != 2:
            raise RtsepError("process() takes a float32 array shaped (frames, channels)")
        frames, channels = block.shape
        if channels != self._channels:
            raise RtsepError(f"block has {channels} channels; prepare() was given {self._channels}")
        if not 1 <= frames <= self._max_block:
            raise RtsepError(f"block has {frames} frames; allowed is 1 to {self._max_block}")
        return frames

    def _push(self, block: np.ndarray, frames: int) -> None:
        hop = self.model.hop
        pos = 0
        while pos < frames:
            take = min(hop - self._in_fill, frames - pos)
            # mono fills both rows: a stereo model hears it centred, not hard left
            self._hop_frames[self._in_fill : self._in_fill + take] = block[pos : pos + take]
            self._in_fill += take
            pos += take
            if self._in_fill == hop:
                self._run_hop()
                self._in_fill = 0

    def _run_hop(self) -> None:
        audio = self._audio
        np.copyto(audio, self._hop_frames.T)
        if not math.isfinite(float(audio.sum())):
            np.nan_to_num(audio, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            self._nonfinite += 1
        self._stepper.run()
        self._hops += 1
        self._mix()

    def _mix(self) -> None:
        """Sources → gain-ramped mix → dry/wet → output ring; meters."""
        n = len(self.sources)
        current = self._current
        np.subtract(self._target, current, out=self._delta)
        if self._delta.any():
            wet = self._ramp_gains()
            np.multiply(self._sources, self._curve[None, :n, :], out=self._weighted)
            np.sum(self._weighted, axis=1, out=self._mixed)
        else:  # every gain at its target, as on almost every hop: one weighted sum
            wet = current[n]
            np.matmul(current[:n], self._sources, out=self._mixed)
        self._mixed -= self._audio  # dry + wet * (mix - dry)
        self._mixed *= wet
        self._mixed += self._audio
        np.abs(self._sources, out=self._abs)
        np.maximum.reduce(self._abs, axis=(0, 2), out=self._levels)  # np.max adds ~1 µs

        hop, cap, ch = self.model.hop, len(self._ring), self._channels
        start = (self._read + self._avail) % cap
        first = min(hop, cap - start)
        self._ring[start : start + first] = self._mixed[:ch, :first].T
        if first < hop:
            self._ring[: hop - first] = self._mixed[:ch, first:].T
        self._avail += hop

    def _ramp_gains(self) -> np.ndarray:
        """Move each gain towards its target by at most 1/ramp_samples a sample: fills
        ``_curve`` (one row per source, then the wet amount) from ``_delta`` = target −
        current, and returns the wet amount's row."""
        curve, current = self._curve, self._current
        np.sign(self._delta, out=self._sign)
        np.abs(self._delta, out=self._delta)
        np.minimum(self._ramp, self._delta[:, None], out=curve)
        curve *= self._sign[:, None]
        curve += current[:, None]
        np.copyto(current, curve[:, -1])
        return curve[-1]

    def _pop(self, out: np.ndarray, frames: int) -> None:
        cap = len(self._ring)
        first = min(frames, cap - self._read)
        out[:first] = self._ring[self._read : self._read + first]
        if first < frames:
            out[first:] = self._ring[: frames - first]
        self._read = (self._read + frames) % cap
        self._avail -= frames

    def _remember_tail(self, block: np.ndarray, frames: int) -> None:
        """Keep the last hop of input (a ring: no shifting, no temporaries)."""
        tail, pos = self._dry_tail, self._tail_pos
        hop = len(tail)
        take = min(frames, hop)
        first = min(take, hop - pos)
        tail[pos : pos + first] = block[frames - take : frames - take + first]
        tail[: take - first] = block[frames - take + first :]
        self._tail_pos = (pos + take) % hop

    def _emit_dry(self, block: np.ndarray, out: np.ndarray, frames: int) -> None:
        """``out`` = the input delayed by one hop: the remembered hop, oldest first, then
        the block."""
        tail, pos = self._dry_tail, self._tail_pos
        hop = len(tail)
        take = min(frames, hop)
        first = min(take, hop - pos)
        out[:first] = tail[pos : pos + first]
        out[first:take] = tail[: take - first]
        if frames > hop:
            out[hop:] = block[: frames - hop]

    def _recover(self) -> None:
        """Restart the rings on the dry input, still one hop behind (after an exception or
        ``pass_dry``).

        The pending partial hop is dropped and the output ring holds the last hop of input,
        so the output goes on as the input delayed by the latency until the model's next hop,
        then ramps from dry to the separated mix.
        """
        self._in_fill = 0
        self._read = 0
        self._avail = self.model.hop
        self._ring.fill(0.0)
        hop, pos = self.model.hop, self._tail_pos
        self._ring[: hop - pos] = self._dry_tail[pos:]  # the remembered hop, oldest first
        self._ring[hop - pos : hop] = self._dry_tail[:pos]
        self._current[-1] = 0.0  # the dry/wet ramp: from dry back to the separated mix

    def _require_prepared(self) -> None:
        if not self._prepared:
            raise RtsepError("call prepare(sample_rate, max_block_size, channels) first")
