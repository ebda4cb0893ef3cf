"""Offline separation on the sequence graph: long chunks, states chained between them.

Chaining the states makes chunked separation give the same numbers as the streaming engine
(which runs the step graph hop by hop), at batch speed, where both graphs hold the same
weights; a model exported with 8-bit step weights (``rtsep export``, the default) differs by
those (about -40 dB), and ``graph="step"`` runs the step graph itself, hop by hop, for
what the engine computes. Outputs are sample-aligned with the input: neither graph has
latency; only the real-time engine buffers a hop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from rtsep import contract
from rtsep.errors import RtsepError
from rtsep.model import Model, load_model

DEFAULT_CHUNK = 65536
"""Frames per sequence-graph call (1.5 s): long enough to amortize call overhead."""


GRAPHS = ("sequence", "step")


class ChunkedSeparator:
    """Streams audio through the sequence graph: ``process`` blocks in, aligned sources out.

    ``process(block)`` takes float32 (frames, channels) at the model's rate and returns the
    sources ready so far as (frames, sources, channels); ``flush()`` returns the rest, so the
    total output length equals the total input length. ``graph="step"`` runs the step graph
    instead, one hop a call as the live engine does (``Stepper``; about 10x slower).
    """

    def __init__(
        self, model: Model, chunk: int = DEFAULT_CHUNK, threads: int = 1, graph: str = "sequence"
    ) -> None:
        if graph not in GRAPHS:
            raise RtsepError(f"graph {graph!r}: use one of {', '.join(GRAPHS)}")
        hop = model.hop
        self.model = model
        self.chunk = hop if graph == "step" else max(hop, chunk - chunk % hop)
        self._graph: Callable[[np.ndarray], np.ndarray] = self._sequence_graph
        """One chunk (rows, frames) through the graph: the sources (rows, sources, frames)."""
        if graph == "step":
            from rtsep.step import Stepper

            self._hop = np.zeros((model.channels, hop), np.float32)
            self._hop_sources = np.zeros((model.channels, len(model.sources), hop), np.float32)
            self._stepper = Stepper(model, self._hop, self._hop_sources)
            self._graph = self._step_graph
        else:
            self._session = model.shared_session("sequence", threads)
            self._states = model.zero_states("sequence")
        self._pending = np.zeros((self.chunk, model.channels), np.float32)
        self._fill = 0
        self._channels: int | None = None

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed (frames, channels); get (frames_ready, sources, channels)."""
        block = self._check(block)
        outputs = []
        pos = 0
        while pos < len(block):
            take = min(self.chunk - self._fill, len(block) - pos)
            # mono fills both rows (broadcast), as in the engine
            self._pending[self._fill : self._fill + take] = block[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self.chunk:
                outputs.append(self._run(self.chunk))
        return self._join(outputs)

    def flush(self) -> np.ndarray:
        """Separate what is left (zero-padded to a hop multiple, trimmed back)."""
        if not self._fill:
            return self._join([])
        hop = self.model.hop
        padded = -(-self._fill // hop) * hop
        self._pending[self._fill : padded] = 0.0
        n = self._fill
        return self._run(padded)[:n]

    def _check(self, block: np.ndarray) -> np.ndarray:
        if block.ndim != 2:
            raise RtsepError("audio must be shaped (frames, channels)")
        channels = block.shape[1]
        if channels not in (1, 2):
            raise RtsepError(f"{channels} channels: rtsep separates mono or stereo; downmix first")
        if self._channels is None:
            self._channels = channels
        elif channels != self._channels:
            raise RtsepError(f"channel count changed from {self._channels} to {channels}")
        return np.asarray(block, np.float32)

    def _run(self, frames: int) -> np.ndarray:
        audio = np.ascontiguousarray(self._pending[:frames].T)
        np.nan_to_num(audio, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        self._fill = 0
        return self._graph(audio)[: self._channels].transpose(2, 1, 0)

    def _sequence_graph(self, audio: np.ndarray) -> np.ndarray:
        feed = {contract.AUDIO_INPUT: audio, **self._states}
        outputs = self._session.run(None, feed)
        names = [o.name for o in self._session.get_outputs()]
        result = dict(zip(names, outputs))
        for name, _ in self.model.sequence_states:
            self._states[name] = result[name + contract.STATE_OUT_SUFFIX]
        return result[contract.SOURCES_OUTPUT]

    def _step_graph(self, audio: np.ndarray) -> np.ndarray:
        np.copyto(self._hop, audio)
        self._stepper.run()
        return self._hop_sources.copy()  # the next hop overwrites the Stepper's array

    def _join(self, outputs: list[np.ndarray]) -> np.ndarray:
        if outputs:
            return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
        return np.zeros((0, len(self.model.sources), self._channels or 1), np.float32)


def separate(
    audio: np.ndarray,
    sample_rate: int,
    model: Model | str | Path | None = None,
    provider: str = "auto",
    threads: int = 1,
    graph: str = "sequence",
) -> dict[str, np.ndarray]:
    """Separate a whole signal: {source: array shaped like ``audio``}, sample-aligned.

    ``audio`` is (frames,) or (frames, channels), mono or stereo, at any ``sample_rate``
    (resampled with soxr to the model's rate and back). The sources sum to the input.
    ``graph="step"``: what the live engine computes, hop by hop (``ChunkedSeparator``).
    """
    if not isinstance(model, Model):
        model = load_model(model, provider)
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or audio.shape[0] == 0:
        raise RtsepError("audio must be a non-empty array shaped (frames,) or (frames, channels)")
    signal = audio.reshape(len(audio), -1).astype(np.float32)
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise RtsepError(f"sample_rate must be a positive integer, not {sample_rate!r}")
    resample = sample_rate != model.sample_rate
    if resample:
        import soxr

        signal = soxr.resample(signal, sample_rate, model.sample_rate, quality="HQ")
    runner = ChunkedSeparator(model, threads=threads, graph=graph)
    sources = np.concatenate([runner.process(signal), runner.flush()])
    result = {}
    for i, name in enumerate(model.sources):
        out = sources[:, i, :]
        if resample:
            import soxr

            out = soxr.resample(out, model.sample_rate, sample_rate, quality="HQ")
            out = _fit(out, len(audio))
        result[name] = out.reshape(audio.shape).astype(np.float32)
    return result


def _fit(signal: np.ndarray, frames: int) -> np.ndarray:
    if len(signal) >= frames:
        return signal[:frames]
    return np.concatenate(
        [signal, np.zeros((frames - len(signal), *signal.shape[1:]), signal.dtype)]
    )
