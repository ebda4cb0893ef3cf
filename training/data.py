"""Training data: MUSDB18(-HQ) loaders and a tf.data pipeline of random, augmented mono excerpts.

Tracks are folders ``<root>/<split>/<track>/{mixture,drums,bass,other,vocals}.wav`` (MUSDB18-HQ
and the synthetic generator) or files ``<root>/<split>/<track>.stem.mp4`` (MUSDB18, decoded by
ffmpeg: stream 0 mixture, 1 drums, 2 bass, 3 other, 4 vocals). Excerpts are read from disk with
seeks and partial reads, so memory does not grow with the size of the data set.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft
import soundfile as sf
import soxr

from rtsep.contract import HOP, SAMPLE_RATE, SOURCES
from rtsep.errors import RtsepError

STEMS = ("mixture", *SOURCES)
STEM_MP4 = ".stem.mp4"


@dataclass(frozen=True)
class TrackInfo:
    """A track on disk and its length in frames (checked: all stems agree, 44.1 kHz)."""

    path: Path
    frames: int

    @property
    def is_mp4(self) -> bool:
        return self.path.name.endswith(STEM_MP4)


def list_tracks(root: str | Path, split: str = "train") -> list[Path]:
    """Track folders and .stem.mp4 files under root/split, sorted by name."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise RtsepError(f"no {split} split at {folder}: expected <root>/{split}/<track>/")
    tracks = sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".")
        and ((p.is_dir() and (p / "mixture.wav").is_file()) or p.name.endswith(STEM_MP4))
    )
    if not tracks:
        raise RtsepError(f"no tracks in {folder}: expected <track>/mixture.wav or *.stem.mp4")
    return tracks


def _ffprobe(path: Path) -> list[dict]:
    cmd = [
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "a",
        "-show_entries",
        "stream=index,sample_rate,channels",
        "-of",
        "json",
        str(path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RtsepError(f"cannot read {path}: {proc.stderr.strip()[:200] or 'ffprobe failed'}")
    streams = json.loads(proc.stdout).get("streams", [])
    if len(streams) < len(STEMS):
        raise RtsepError(f"{path} has {len(streams)} audio streams, a .stem.mp4 needs 5")
    for s in streams[: len(STEMS)]:
        if int(s["sample_rate"]) != SAMPLE_RATE:
            raise RtsepError(
                f"{path} stream {s['index']} is at {s['sample_rate']} Hz, expected {SAMPLE_RATE}"
            )
    return streams


def _decode_mp4(path: Path, stream: int, start: int = 0, frames: int | None = None) -> np.ndarray:
    """Decode one audio stream of a .stem.mp4 to float32 stereo (frames, 2) through ffmpeg."""
    cmd = ["ffmpeg", "-v", "error", "-nostdin"]
    if start:
        cmd += ["-ss", f"{start / SAMPLE_RATE:.6f}"]
    cmd += ["-i", str(path), "-map", f"0:a:{stream}"]
    if frames is not None:
        cmd += ["-t", f"{frames / SAMPLE_RATE:.6f}"]
    cmd += ["-f", "f32le", "-acodec", "pcm_f32le", "-ac", "2", "-ar", str(SAMPLE_RATE), "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RtsepError(f"ffmpeg cannot decode {path}: {proc.stderr.decode()[:200].strip()}")
    data = np.frombuffer(proc.stdout, np.float32).reshape(-1, 2)
    if frames is not None:
        data = data[:frames]
    return data


def track_info(track: str | Path) -> TrackInfo:
    """Check a track (every stem present, same length, 44.1 kHz) without reading its audio."""
    path = Path(track)
    info_mp4 = path.name.endswith(STEM_MP4)
    if info_mp4:
        _ffprobe(path)
        lengths = {s: len(_decode_mp4(path, i)) for i, s in enumerate(STEMS)}
    else:
        lengths = {}
        for s in STEMS:
            f = path / f"{s}.wav"
            if not f.is_file():
                raise RtsepError(f"missing stem {f}: a track needs {', '.join(STEMS)} (.wav)")
            try:
                info = sf.info(str(f))
            except RuntimeError as e:
                raise RtsepError(f"cannot read {f}: {e}") from None
            if info.samplerate != SAMPLE_RATE:
                raise RtsepError(f"{f} is at {info.samplerate} Hz, expected {SAMPLE_RATE}")
            lengths[s] = info.frames
    if len(set(lengths.values())) != 1:
        n = lengths["mixture"]
        bad = next(s for s, v in lengths.items() if v != n)
        where = f"{path} stream {STEMS.index(bad)} ({bad})" if info_mp4 else path / f"{bad}.wav"
        raise RtsepError(
            f"stem {where} has {lengths[bad]} frames but the mixture has {n}: truncated file?"
        )
    return TrackInfo(path, lengths["mixture"])


def read_track(track_dir: str | Path) -> dict[str, np.ndarray]:
    """All stems of a track as float32 (frames, 2) arrays: mixture, drums, bass, other, vocals."""
    info = track_info(track_dir)
    return {s: read_segment(info, s, 0, info.frames) for s in STEMS}


def read_segment(info: TrackInfo, stem: str, start: int, frames: int) -> np.ndarray:
    """Frames [start, start+frames) of one stem as float32 (frames, 2), zero-padded at the end."""
    if info.is_mp4:
        data = _decode_mp4(info.path, STEMS.index(stem), start, frames)
    else:
        data = sf.read(
            str(info.path / f"{stem}.wav"),
            start=start,
            frames=frames,
            dtype="float32",
            always_2d=True,
        )[0]
    if data.shape[1] == 1:
        data = np.repeat(data, 2, axis=1)
    data = data[:, :2]
    if len(data) < frames:
        data = np.concatenate([data, np.zeros((frames - len(data), 2), np.float32)])
    return data


def excerpt_frames(excerpt_seconds: float) -> int:
    """Excerpt length in frames, a multiple of the hop (at least one hop)."""
    return max(HOP, round(excerpt_seconds * SAMPLE_RATE / HOP) * HOP)


# --- augmentation ----------------------------------------------------------------------------


def _eq_curve(f: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random smooth EQ magnitude: tilt, maybe one bell, maybe low and high cuts."""
    octs = np.log2(np.maximum(f, 20.0) / 1000.0)
    db = rng.uniform(-3, 3) * octs  # tilt, dB per octave around 1 kHz
    if rng.random() < 0.4:  # bell
        c, w = rng.uniform(-3, 3.5), rng.uniform(0.3, 1.5)
        db += rng.uniform(-9, 9) * np.exp(-0.5 * ((octs - c) / w) ** 2)
    gain = 10 ** (np.clip(db, -30, 15) / 20)
    if rng.random() < 0.3:  # high cut
        gain /= np.sqrt(1 + (f / rng.uniform(2000, 16000)) ** (2 * rng.integers(1, 4)))
    if rng.random() < 0.3:  # low cut
        fc = rng.uniform(30, 300)
        gain /= np.sqrt(1 + (fc / np.maximum(f, 1.0)) ** (2 * rng.integers(1, 3)))
    return gain.astype(np.float32)


def _reverb_ir(rng: np.random.Generator) -> np.ndarray:
    """An exponentially decaying noise tail (RT60 0.2-1.5 s), unit energy, plus the dry path."""
    rt60 = rng.uniform(0.2, 1.5)
    m = int(rt60 * SAMPLE_RATE)
    ir = rng.standard_normal(m, np.float32) * np.exp(-6.9 / m * np.arange(m, dtype=np.float32))
    ir *= rng.uniform(0.05, 0.4) / np.sqrt(np.sum(ir**2))
    ir[0] += 1.0
    return ir


def color(
    x: np.ndarray, rng: np.random.Generator, p_eq: float = 0.5, p_reverb: float = 0.25
) -> np.ndarray:
    """Random EQ and/or light reverb against the domain gap, in one FFT round trip.

    ``x`` is ``[..., time]``: every channel gets the same EQ and room."""
    eq, reverb = rng.random() < p_eq, rng.random() < p_reverb
    if not (eq or reverb):
        return x
    n = x.shape[-1]
    ir = _reverb_ir(rng) if reverb else None
    size = scipy.fft.next_fast_len(n + (len(ir) if reverb else 4096), real=True)
    spec = scipy.fft.rfft(np.asarray(x, np.float32), size)  # float32 FFTs: 3-4x numpy's
    if eq:
        spec *= _eq_curve(scipy.fft.rfftfreq(size, 1 / SAMPLE_RATE).astype(np.float32), rng)
    if reverb:
        spec *= scipy.fft.rfft(ir, size)
    return scipy.fft.irfft(spec, size)[..., :n].astype(np.float32)


DENSE_TRIES = 8
"""Windows a dense draw tries before it takes what it has."""


def sounds_throughout(x: np.ndarray) -> bool:
    """Whether a stem segment (frames, channels) sounds in each third of it (> -60 dBFS RMS)."""
    return all(float(np.mean(np.square(part))) > 1e-6 for part in np.array_split(x, 3))


def _read_frames(frames: int, speed: float) -> int:
    """Source frames to read for ``frames`` output frames played ``speed`` times faster."""
    return int(np.ceil(frames * speed)) + 16


class ExcerptSampler:
    """Draws random (mix [k, T], stems [k, S, T]) excerpts, augmented, with mix == sum(stems).

    ``channels`` k is 1 (one random channel) or 2 (both, left and right swapped half the time,
    folded to mono one time in ten). ``dense`` is the share of draws that look for windows in
    which every source sounds throughout: the dense sections that BSSEval scores.
    ``drum_pitch`` (semitones) retunes the drums of remixed excerpts, whose stems come from
    different tracks and need not keep time together, by a uniform draw in +-``drum_pitch``
    (pitch and tempo together), so that kits tuned unlike the training kits still read as drums.
    Excerpt i of a seed is a pure function of (seed, i), so parallel workers stay deterministic;
    with ``drum_pitch`` 0 the stream is the one drawn before the option existed.
    """

    def __init__(
        self,
        tracks: list[TrackInfo],
        frames: int,
        augment: bool,
        seed: int,
        channels: int = 1,
        dense: float = 0.0,
        drum_pitch: float = 0.0,
    ) -> None:
        self.tracks = tracks
        self.frames = frames
        self.augment = augment
        self.seed = seed
        self.channels = channels
        self.dense = dense
        self.drum_pitch = drum_pitch

    def _draw(self, rng: np.random.Generator, stems, read_n: int, dense: bool) -> list[np.ndarray]:
        """Segments (read_n, 2) of ``stems`` from one random track at one random start."""
        for _ in range(DENSE_TRIES if dense else 1):
            track = self.tracks[int(rng.integers(len(self.tracks)))]
            start = int(rng.integers(0, max(1, track.frames - read_n + 1)))
            segments = [read_segment(track, s, start, read_n) for s in stems]
            if not dense or all(sounds_throughout(x) for x in segments):
                break
        return segments

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng, n, k = np.random.default_rng([self.seed, index]), self.frames, self.channels
        speed = 1.0
        if self.augment and rng.random() < 0.3:
            speed = float(rng.uniform(0.94, 1.06))  # pitch and tempo together
        speeds = [speed] * len(SOURCES)
        dense = rng.random() < self.dense
        if self.augment and rng.random() < 0.5:  # remix: every stem from its own track
            if self.drum_pitch:
                semitones = rng.uniform(-self.drum_pitch, self.drum_pitch)
                speeds[SOURCES.index("drums")] *= float(2 ** (semitones / 12))
            segments = [
                self._draw(rng, [s], _read_frames(n, v), dense)[0] for s, v in zip(SOURCES, speeds)
            ]
        else:
            segments = self._draw(rng, SOURCES, _read_frames(n, speed), dense)
        columns = [int(rng.integers(2))] if k == 1 else [1, 0] if rng.random() < 0.5 else [0, 1]
        stems = np.zeros((k, len(SOURCES), n), np.float32)
        for i, x in enumerate(segments):
            x = x[:, columns]
            if speeds[i] != 1.0:
                x = soxr.resample(x, SAMPLE_RATE * speeds[i], SAMPLE_RATE)
            x = np.asarray(x[:n], np.float32).T
            if x.shape[1] < n:
                x = np.pad(x, ((0, 0), (0, n - x.shape[1])))
            if self.augment:
                x = color(x, rng) * np.float32(10 ** (rng.uniform(-9, 3) / 20))
            stems[:, i] = x
        if self.augment:
            if rng.random() < 0.15:  # silence one stem, so "source absent" is learned
                stems[:, int(rng.integers(len(SOURCES)))] = 0.0
            if k == 2 and rng.random() < 0.1:  # mono sources play centred in both channels
                stems[:] = stems.mean(axis=0)
            stems *= np.float32(10 ** (rng.uniform(-12, 3) / 20))  # overall level
            peak = float(np.max(np.abs(stems.sum(1))))
            if peak > 1.0:
                stems /= np.float32(peak)
        return stems.sum(1), stems


def scan(root: str | Path, split: str) -> list[TrackInfo]:
    """Checked TrackInfo of every track in a split."""
    return [track_info(t) for t in list_tracks(root, split)]


def make_dataset(
    root: str | Path,
    split: str = "train",
    excerpt_seconds: float = 3.0,
    batch_size: int = 16,
    augment: bool = True,
    seed: int = 0,
    parallel: int = 2,
    channels: int = 1,
    dense: float = 0.0,
    first: int = 0,
    drum_pitch: float = 0.0,
):
    """An endless tf.data.Dataset of (mix [B*k, T], stems [B*k, 4, T]) float32 random excerpts,
    ``B = batch_size`` excerpts of ``k = channels`` rows each (a stereo excerpt: left, right).

    Excerpt i is drawn by ``ExcerptSampler.sample(i)`` for i = first, first+1, ... in
    ``parallel`` calls at a time (numpy, soundfile and soxr release the GIL), in a fixed order:
    the stream depends on the seed only, and a resumed leg that starts at the next unseen index
    continues it instead of replaying it.
    Keep its iterators in function scope: a live iterator held by a module global at interpreter
    exit deadlocks TensorFlow's shutdown (its worker threads wait for the GIL).
    """
    import tensorflow as tf

    sampler = ExcerptSampler(
        scan(root, split),
        excerpt_frames(excerpt_seconds),
        augment,
        seed,
        channels,
        dense,
        drum_pitch,
    )
    n, s, k = sampler.frames, len(SOURCES), channels

    def draw(i):
        mix, stems = tf.numpy_function(
            lambda j: sampler.sample(int(j)), [i], (tf.float32, tf.float32), stateful=False
        )
        return tf.ensure_shape(mix, (k, n)), tf.ensure_shape(stems, (k, s, n))

    def rows(mix, stems):
        return tf.reshape(mix, (-1, n)), tf.reshape(stems, (-1, s, n))

    ds = tf.data.Dataset.counter(first).map(
        draw, num_parallel_calls=max(1, parallel), deterministic=True
    )
    return ds.batch(batch_size, drop_remainder=True).map(rows).prefetch(2)


def fixed_excerpts(
    root: str | Path, split: str = "test", excerpt_seconds: float = 3.0, per_track: int = 4
):
    """Deterministic validation excerpts: evenly spaced, both channels, no augmentation.

    Yields (mix [T], stems [4, T]) float32, left then right of each excerpt (so that batches of
    an even size hold whole stereo pairs); the same excerpts on every call.
    """
    n = excerpt_frames(excerpt_seconds)
    for track in scan(root, split):
        starts = np.linspace(0, max(0, track.frames - n), per_track).astype(int)
        for start in sorted(set(starts.tolist())):
            stems = np.stack([read_segment(track, s, start, n) for s in SOURCES])  # [S, T, 2]
            for ch in range(2):
                x = np.ascontiguousarray(stems[:, :, ch])
                yield x.sum(0), x


def make_eval_dataset(
    root: str | Path,
    split: str = "test",
    excerpt_seconds: float = 3.0,
    batch_size: int = 16,
    per_track: int = 4,
):
    """A finite tf.data.Dataset over ``fixed_excerpts`` (same batches every epoch)."""
    import tensorflow as tf

    n = excerpt_frames(excerpt_seconds)
    sig = (tf.TensorSpec((n,), tf.float32), tf.TensorSpec((len(SOURCES), n), tf.float32))
    ds = tf.data.Dataset.from_generator(
        lambda: fixed_excerpts(root, split, excerpt_seconds, per_track), output_signature=sig
    )
    return ds.batch(batch_size)
