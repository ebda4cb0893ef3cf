"""The model contract: the constants shared by training, export and the runtime.

A model is a folder holding ``step.onnx``, ``sequence.onnx`` and ``model.json``
(see ``../shared/DESIGN.md``). Everything that crosses from training to the
runtime is named here, so that the three sides cannot drift apart.
"""

from __future__ import annotations

SAMPLE_RATE = 44100
"""Sample rate every model runs at (Hz)."""

HOP = 64
"""Samples per step-graph call: 1.45 ms at 44.1 kHz."""

SOURCES = ("drums", "bass", "other", "vocals")
"""Source names, in the order the networks output them."""

FORMAT_VERSION = 1
"""Version of ``model.json``; the runtime refuses versions it does not know."""

STEP_FILE = "step.onnx"
SEQUENCE_FILE = "sequence.onnx"
META_FILE = "model.json"

AUDIO_INPUT = "audio"
"""Input name of both graphs: float32 [channels, time]."""

SOURCES_OUTPUT = "sources"
"""Output name of both graphs: float32 [channels, len(sources), time]."""

STATE_OUT_SUFFIX = "_out"
"""A state input ``s`` has the matching output ``s_out``."""

CHANNELS = 2
"""Rows of the audio input (left, right; a mono signal fills both). A model may run them as
independent items or as one stereo pair; each state's shape, in ``model.json``, says how."""
