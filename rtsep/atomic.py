"""Temporary siblings for atomic writes, with the permissions a plain write would give.

``tempfile.mkstemp`` and ``mkdtemp`` make private (0600 / 0700) files and folders. Renamed
into place they would keep that mode, so a model folder or a report written for others to use
would be unreadable to them. These helpers make the same siblings with the umask's mode.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_dir(final: Path) -> Path:
    """A hidden empty folder beside ``final``, mode 0777 less the umask."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())
    return tmp


def temp_file(final: Path) -> tuple[int, Path]:
    """An open descriptor and the path of a hidden file beside ``final``, mode 0666 less
    the umask."""
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.chmod(fd, 0o666 & ~_umask())
    return fd, Path(tmp)
