"""Levels of a stem in training excerpts and test tracks: bins, counts, user errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from rtsep.contract import SAMPLE_RATE, SOURCES
from training import levels


def track(folder: Path, stems: dict[str, np.ndarray]) -> None:
    """A MUSDB18-HQ-layout track: the given stems, the others silent, and their mixture."""
    folder.mkdir(parents=True)
    n = len(next(iter(stems.values())))
    full = {s: stems.get(s, np.zeros((n, 2), np.float32)) for s in SOURCES}
    for name, x in full.items():
        sf.write(folder / f"{name}.wav", x, SAMPLE_RATE, subtype="FLOAT")
    sf.write(folder / "mixture.wav", sum(full.values()), SAMPLE_RATE, subtype="FLOAT")


def noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((int(seconds * SAMPLE_RATE), 2))).astype(np.float32)


def test_a_stem_alone_in_the_mix_is_at_zero_db_in_every_excerpt(tmp_path):
    """However the excerpt is augmented (gain, EQ, remix, speed), drums alone are the mix;
    an excerpt whose drums augmentation silenced is "silent"."""
    for i in range(2):
        track(tmp_path / "train" / f"t{i}", {"drums": noise(3.5, i)})
    bins = levels.excerpt_levels(tmp_path, "drums", 40)
    assert sum(bins.values()) == 40
    assert set(bins) <= {"-3 to +0 dB", "+0 to +3 dB", "silent"}
    assert bins["silent"] < 20


def test_test_tracks_land_in_the_bin_of_their_stems_level(tmp_path):
    """Drums at half the bass's amplitude, uncorrelated: 1 / 1.25 of the mix's energy is
    bass, so drums sit at 10 log10(0.25 / 1.25) = -7.0 dB."""
    for i in range(3):
        x = noise(1.0, 10 + i)
        track(tmp_path / "test" / f"t{i}", {"drums": 0.5 * x, "bass": noise(1.0, 20 + i)})
    assert levels.track_levels(tmp_path, "test", "drums") == {"-9 to -6 dB": 3}


def test_a_missing_train_split_is_one_line_and_exit_2(tmp_path, capsys):
    track(tmp_path / "test" / "t0", {"drums": noise(1.0, 0)})
    assert levels.main([str(tmp_path), "--excerpts", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no train split" in err[0]
