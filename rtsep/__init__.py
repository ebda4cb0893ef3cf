"""rtsep: real-time music source separation (drums, bass, other, vocals).

The public API: ``Separator`` (streaming, plugin-style), ``separate`` (whole signals),
``load_model``. Heavy modules load on first use, so ``import rtsep`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rtsep.contract import HOP, SAMPLE_RATE, SOURCES
from rtsep.errors import ModelError, RtsepError

if TYPE_CHECKING:
    from rtsep.engine import Separator
    from rtsep.model import Model, load_model
    from rtsep.offline import ChunkedSeparator, separate

__all__ = [
    "HOP",
    "SAMPLE_RATE",
    "SOURCES",
    "ChunkedSeparator",
    "Model",
    "ModelError",
    "RtsepError",
    "Separator",
    "load_model",
    "separate",
]
__version__ = "0.1.0"

_LAZY = {
    "Separator": "rtsep.engine",
    "Model": "rtsep.model",
    "load_model": "rtsep.model",
    "ChunkedSeparator": "rtsep.offline",
    "separate": "rtsep.offline",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rtsep' has no attribute {name!r}")
