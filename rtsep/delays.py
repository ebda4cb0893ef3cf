"""Delay lines: states that a step graph gets back after more than one hop.

A dilated causal conv needs its input from ``d`` hops ago. Kept as a state of the last ``d``
frames, the graph would shift all of them every hop (a copy of the whole window, 200 KB a
hop for the default model's TCN, a seventh of its step time on the CPU). As a delay line the
graph takes only the frame from ``d`` hops ago and returns only the current one; the rest
waits here, in a ring that nothing shifts.

A state with ``delays`` (model.json) is ``[rows, len(delays), *frame]``: entry ``j`` of its
axis 1 is, at every hop, entry ``j`` of the state the graph returned ``delays[j]`` hops ago
(zeros before the first ones).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class DelayLine:
    """One delayed state: ``input`` is what the next hop reads, ``output`` what it writes.

    Real-time rules: ``advance`` and ``reset`` allocate nothing; ``advance`` is one copy in
    and one gather out (``np.take`` into ``input``), whatever the delays.
    """

    def __init__(self, shape: Sequence[int], delays: Sequence[int]) -> None:
        shape = tuple(shape)
        if len(shape) < 2 or shape[1] != len(delays) or min(delays, default=0) < 1:
            raise ValueError(f"delays {list(delays)} do not fit a state of shape {list(shape)}")
        rows, n = shape[0], shape[1]
        self.length = max(delays)
        """Hops the ring holds: the longest delay (a slot is read before it is rewritten)."""
        self.input = np.zeros(shape, np.float32)
        self.output = np.zeros(shape, np.float32)
        self._ring = np.zeros((self.length, *shape), np.float32)
        entries = rows * n
        self._ring_rows = self._ring.reshape(self.length * entries, -1)
        self._input_rows = self.input.reshape(entries, -1)
        # _gather[p]: for the hop after the one written at slot p - 1, the ring row of each
        # (row, entry) pair: slot (p - delays[j]) mod length
        slots = (np.arange(self.length)[:, None] - np.asarray(delays)[None, :]) % self.length
        within = np.arange(rows)[:, None] * n + np.arange(n)[None, :]  # [rows, n]
        gather = slots[:, None, :] * entries + within[None]
        self._gather = gather.reshape(self.length, -1).astype(np.intp)
        self._slot = 0

    def advance(self) -> None:
        """After a hop: keep its ``output`` and gather the next hop's ``input``."""
        np.copyto(self._ring[self._slot], self.output)
        self._slot = (self._slot + 1) % self.length
        # mode="clip": the indices are always in range, and "raise" buffers ``out`` (allocates)
        np.take(
            self._ring_rows, self._gather[self._slot], axis=0, out=self._input_rows, mode="clip"
        )

    def feed(self, output: np.ndarray) -> np.ndarray:
        """``output`` as the hop's, then ``advance``: a copy of the next hop's input. For
        callers that pass states to ``session.run`` by value (export checks, tests)."""
        np.copyto(self.output, output)
        self.advance()
        return self.input.copy()

    def reset(self) -> None:
        """Back to zeros: no past."""
        self._ring.fill(0.0)
        self.input.fill(0.0)
        self.output.fill(0.0)
        self._slot = 0
