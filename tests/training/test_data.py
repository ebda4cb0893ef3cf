"""Loaders (MUSDB18-HQ folders, .stem.mp4) and the excerpt pipeline, on generated tracks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsep.contract import HOP, SAMPLE_RATE, SOURCES
from rtsep.errors import RtsepError
from training import data
from training.synth.__main__ import generate

STEMS = ("mixture", *SOURCES)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("musdb")
    generate(out, tracks=2, seconds=2.0, seed=5, split="train", jobs=1, progress=False)
    return out


@pytest.fixture
def broken(root, tmp_path) -> Path:
    """A copy of one generated track, to damage."""
    track = data.list_tracks(root, "train")[0]
    dst = tmp_path / "train" / track.name
    shutil.copytree(track, dst)
    return dst


def test_read_track(root):
    tracks = data.list_tracks(root, "train")
    assert len(tracks) == 2
    x = data.read_track(tracks[0])
    assert list(x) == list(STEMS)
    n = round(2.0 * SAMPLE_RATE)
    for s in STEMS:
        assert x[s].shape == (n, 2) and x[s].dtype == np.float32
    np.testing.assert_allclose(sum(x[s] for s in SOURCES), x["mixture"], atol=1e-6)


def test_missing_split_or_tracks(tmp_path):
    with pytest.raises(RtsepError, match="no test split"):
        data.list_tracks(tmp_path, "test")
    (tmp_path / "test").mkdir()
    with pytest.raises(RtsepError, match="no tracks"):
        data.list_tracks(tmp_path, "test")


def test_missing_stem_names_the_file(broken):
    (broken / "bass.wav").unlink()
    with pytest.raises(RtsepError, match=r"missing stem .*bass\.wav"):
        data.read_track(broken)


def test_truncated_stem_is_reported(broken):
    x, sr = sf.read(broken / "vocals.wav", dtype="int16")
    sf.write(broken / "vocals.wav", x[: len(x) // 2], sr, subtype="PCM_16")
    with pytest.raises(RtsepError, match=r"stem .*vocals\.wav has 44100 frames .* truncated"):
        data.read_track(broken)


def test_wrong_sample_rate_is_reported(broken):
    x, _ = sf.read(broken / "drums.wav", dtype="int16")
    sf.write(broken / "drums.wav", x, 48000, subtype="PCM_16")
    with pytest.raises(RtsepError, match=r"drums\.wav is at 48000 Hz"):
        data.read_track(broken)


def _stem_mp4(track: Path, out: Path) -> Path:
    """A 5-stream .stem.mp4 (lossless ALAC) made from a generated track with ffmpeg."""
    cmd = ["ffmpeg", "-v", "error", "-y"]
    for s in STEMS:
        cmd += ["-i", str(track / f"{s}.wav")]
    for i in range(len(STEMS)):
        cmd += ["-map", f"{i}:a"]
    cmd += ["-c:a", "alac", str(out)]
    subprocess.run(cmd, check=True)
    return out


def test_stem_mp4(root, tmp_path):
    track = data.list_tracks(root, "train")[0]
    (tmp_path / "test").mkdir()
    mp4 = _stem_mp4(track, tmp_path / "test" / f"{track.name}.stem.mp4")
    assert data.list_tracks(tmp_path, "test") == [mp4]
    got, want = data.read_track(mp4), data.read_track(track)
    for s in STEMS:
        np.testing.assert_allclose(got[s], want[s], atol=1e-6, err_msg=s)
    info = data.track_info(mp4)
    seg = data.read_segment(info, "bass", 30000, 4096)
    np.testing.assert_allclose(seg, want["bass"][30000:34096], atol=1e-6)


def test_stem_mp4_with_too_few_streams(root, tmp_path):
    track = data.list_tracks(root, "train")[0]
    bad = tmp_path / "x.stem.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(track / "mixture.wav"), "-c:a", "alac", str(bad)],
        check=True,
    )
    with pytest.raises(RtsepError, match="1 audio streams"):
        data.read_track(bad)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    augment=st.booleans(),
    seconds=st.floats(0.01, 3.0),
    channels=st.sampled_from([1, 2]),
    dense=st.sampled_from([0.0, 1.0]),
    drum_pitch=st.sampled_from([0.0, 4.0]),
)
def test_sampler_mix_is_sum_of_stems(root, seed, augment, seconds, channels, dense, drum_pitch):
    tracks = data.scan(root, "train")
    n = data.excerpt_frames(seconds)
    sampler = data.ExcerptSampler(tracks, n, augment, seed, channels, dense, drum_pitch)
    mix, stems = sampler.sample(7)
    assert n % HOP == 0 and mix.shape == (channels, n)
    assert stems.shape == (channels, len(SOURCES), n)
    assert mix.dtype == stems.dtype == np.float32
    np.testing.assert_array_equal(mix, stems.sum(1))
    assert np.all(np.isfinite(stems)) and np.abs(mix).max() <= 1.0 + 1e-6


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(64, 20000))
def test_color_reverb_is_a_linear_convolution(seed, n):
    """The FFT size leaves no circular wrap: the room is ``x * ir`` cut to ``len(x)``,
    the same for every channel."""
    x = np.random.default_rng(seed).standard_normal((2, n)).astype(np.float32)
    x[1] *= 0.5
    y = data.color(x, np.random.default_rng(seed), p_eq=0.0, p_reverb=1.0)
    rng = np.random.default_rng(seed)
    rng.random(), rng.random()  # color's two coin flips
    ir = data._reverb_ir(rng)
    want = np.stack([np.convolve(row, ir)[:n] for row in x.astype(np.float64)])
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, want, atol=2e-4 * np.abs(want).max())


def test_stereo_excerpts_are_the_tracks_own_channels(root):
    """Without augmentation a stereo excerpt is a window of the track: left and right in
    order or swapped, never two copies of one channel."""
    tracks = data.scan(root, "train")
    n = data.excerpt_frames(0.5)
    for i in range(6):
        _, stems = data.ExcerptSampler(tracks, n, False, 3, channels=2).sample(i)
        found = False
        for t in tracks:
            x = np.stack([data.read_segment(t, s, 0, t.frames) for s in SOURCES])  # [S, T, 2]
            for order in ([0, 1], [1, 0]):
                for start in np.flatnonzero(x[0, : t.frames - n + 1, order[0]] == stems[0, 0, 0]):
                    window = x[:, start : start + n][..., order].transpose(2, 0, 1)
                    found = found or np.array_equal(stems, window)
        assert found and not np.array_equal(stems[0], stems[1])


def test_dense_draws_windows_where_every_source_sounds(root):
    """Dense sampling raises the share of excerpts in which all four sources sound."""
    tracks = data.scan(root, "train")
    n = data.excerpt_frames(0.5)

    def share(dense: float) -> float:
        sampler = data.ExcerptSampler(tracks, n, False, 0, channels=2, dense=dense)
        full = [
            all(data.sounds_throughout(stems[:, j].T) for j in range(len(SOURCES)))
            for stems in (sampler.sample(i)[1] for i in range(40))
        ]
        return float(np.mean(full))

    assert share(1.0) > share(0.0)


@pytest.mark.parametrize("channels", [1, 2])
def test_make_dataset(root, channels):
    ds = data.make_dataset(
        root, "train", excerpt_seconds=0.5, batch_size=3, seed=1, channels=channels
    )
    n, rows = data.excerpt_frames(0.5), 3 * channels
    batches = list(ds.take(2))
    for mix, stems in batches:
        assert mix.shape == (rows, n) and stems.shape == (rows, len(SOURCES), n)
        np.testing.assert_allclose(mix.numpy(), stems.numpy().sum(1), atol=1e-6)
    again = next(
        iter(
            data.make_dataset(
                root, "train", excerpt_seconds=0.5, batch_size=3, seed=1, channels=channels
            )
        )
    )
    np.testing.assert_array_equal(again[0].numpy(), batches[0][0].numpy())
    assert not np.array_equal(batches[0][0].numpy(), batches[1][0].numpy())
    resumed = data.make_dataset(
        root, "train", excerpt_seconds=0.5, batch_size=3, seed=1, channels=channels, first=3
    )  # a leg resumed after one batch continues the stream instead of replaying it
    np.testing.assert_array_equal(next(iter(resumed))[0].numpy(), batches[1][0].numpy())


def test_fixed_excerpts_are_deterministic(root):
    a = list(data.fixed_excerpts(root, "train", excerpt_seconds=0.5, per_track=2))
    b = list(
        data.make_eval_dataset(root, "train", excerpt_seconds=0.5, batch_size=100, per_track=2)
    )
    assert len(a) == 2 * 2 * 2  # tracks x excerpts x channels
    mix, stems = b[0]
    np.testing.assert_array_equal(mix.numpy(), np.stack([m for m, _ in a]))
    np.testing.assert_array_equal(stems.numpy(), np.stack([s for _, s in a]))


@pytest.fixture(scope="module")
def tone_drums(tmp_path_factory) -> list[data.TrackInfo]:
    """One 4 s track whose drums are a 200 Hz sine and whose other stems are silent."""
    track = tmp_path_factory.mktemp("tone") / "train" / "tone"
    track.mkdir(parents=True)
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    drums = np.repeat(0.5 * np.sin(2 * np.pi * 200.0 * t)[:, None], 2, axis=1)
    for s in STEMS:
        sf.write(track / f"{s}.wav", drums if s in ("mixture", "drums") else 0 * drums, SAMPLE_RATE)
    return data.scan(track.parents[1], "train")


def drum_tone_ratios(tracks: list[data.TrackInfo], drum_pitch: float) -> np.ndarray:
    """The drums' frequency over 200 Hz in 80 augmented 1 s excerpts (where they sound)."""
    n = data.excerpt_frames(1.0)
    sampler = data.ExcerptSampler(tracks, n, True, 11, channels=2, drum_pitch=drum_pitch)
    ratios = []
    for i in range(80):
        drums = sampler.sample(i)[1][0, SOURCES.index("drums")]
        if np.any(drums):
            spectrum = np.abs(np.fft.rfft(drums * np.hanning(n), 16 * n))
            ratios.append(np.argmax(spectrum) * SAMPLE_RATE / (16 * n) / 200.0)
    return np.array(ratios)


def test_drum_pitch_retunes_the_drums_within_its_range(tone_drums):
    """Without it the drums move only with the common speed change (+-6 %); with 4 semitones
    some excerpts move further, and none further than 4 semitones beyond that."""
    plain, retuned = drum_tone_ratios(tone_drums, 0.0), drum_tone_ratios(tone_drums, 4.0)
    tolerance = 1.002  # the spectral peak's resolution
    assert len(plain) > 40 and len(retuned) > 40
    assert np.all((plain > 0.94 / tolerance) & (plain < 1.06 * tolerance))
    assert np.mean((retuned < 0.94 / tolerance) | (retuned > 1.06 * tolerance)) > 0.2
    low, high = 0.94 * 2 ** (-4 / 12), 1.06 * 2 ** (4 / 12)
    assert np.all((retuned > low / tolerance) & (retuned < high * tolerance))
