"""User-facing errors: one clear line, no traceback."""

from __future__ import annotations


class RtsepError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits non-zero."""


class ModelError(RtsepError):
    """A model folder that does not follow the contract."""
