"""Temporary siblings for atomic writes get the permissions a plain write would."""

from __future__ import annotations

import os

from rtsep import atomic, evaluate


def test_temp_siblings_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        folder = atomic.temp_dir(tmp_path / "model")
        fd, file = atomic.temp_file(tmp_path / "scores.json")
        os.close(fd)
        evaluate.write_json(tmp_path / "out.json", {"a": 1})
    finally:
        os.umask(old)
    assert folder.parent == file.parent == tmp_path
    assert folder.name.startswith(".model.") and file.name.startswith(".scores.json.")
    assert folder.stat().st_mode & 0o777 == 0o750
    assert file.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o640
