"""Separating audio files, streamed: read, resampled, separated and written in blocks.

Memory stays flat however long the file is: only a block of input, the resamplers' and the
chunked separator's buffers and a block of each output are held. Every output of a track is
written under a hidden temporary name in the track's folder and renamed only when the whole
track is done, so that a failure or an interruption never leaves a partial file behind.

At the model's rate (44.1 kHz) the sources are the model's own, which sum to the input. At
other rates soxr resamples to 44.1 kHz and back; the round trip loses what lies above the
lower rate's band edge, so that residual (input minus the sum of the sources) is spread evenly
over the sources: the written sources then still sum to the input.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtsep.errors import RtsepError

if TYPE_CHECKING:
    import soundfile

    from rtsep.model import Model

BLOCK = 65536
"""Frames read, separated and written per step (about 1.5 s at 44.1 kHz)."""

FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "FLOAT"),
    "flac": ("FLAC", "PCM_24"),
    "ogg": ("OGG", "VORBIS"),
}
"""Output format → (libsndfile format, subtype). WAV is 32-bit float: exact and never clips;
FLAC is 24-bit (rounding error ≤ 2^-24 per source, clips above full scale); Ogg is lossy."""

WAV_DATA_LIMIT = 2**32 - 2**20
"""Bytes of audio a plain WAV can hold (its sizes are 32-bit), less a margin for the header."""

QUALITY = "HQ"
"""soxr quality for the round trip to the model's rate (passband flat to 91% of Nyquist)."""


class Cancelled(Exception):
    """The run was interrupted (Ctrl-C, SIGTERM); the track's outputs were removed."""


@dataclass(frozen=True)
class Output:
    """One file written per track: a weighted sum of the model's sources."""

    name: str
    """File name without extension: a source name, or ``mix-...`` for a chosen mix."""
    weights: tuple[float, ...]
    """One gain per model source, in the model's order (one-hot for a single source)."""


@dataclass(frozen=True)
class Track:
    """One input file and the paths its outputs will have."""

    input: Path
    folder: Path
    paths: dict[str, Path]


@dataclass
class Result:
    """What was written for one track, and how fast."""

    track: Track
    frames: int
    sample_rate: int
    channels: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def realtime(self) -> float:
        """Audio seconds per wall-clock second."""
        return self.frames / self.sample_rate / max(self.seconds, 1e-9)


def source_outputs(names: Sequence[str], sources: Sequence[str]) -> list[Output]:
    """One output per named source."""
    return [Output(name, tuple(1.0 if s == name else 0.0 for s in sources)) for name in names]


def parse_sources(text: str, sources: Sequence[str]) -> list[str]:
    """``"drums,bass"`` → ``["drums", "bass"]``, checked against the model's sources."""
    return _names(text, sources, "--sources")


def parse_mix(text: str, sources: Sequence[str]) -> Output:
    """``"drums=0,bass=0.5"`` → a mix; sources not named keep gain 1."""
    gains = dict.fromkeys(sources, 1.0)
    for item in (i.strip() for i in text.split(",")):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise RtsepError(f"--mix item {item!r} is not SOURCE=GAIN (e.g. drums=0,bass=0.5)")
        _names(name, sources, "--mix")
        try:
            gain = float(value)
        except ValueError:
            gain = math.nan
        if not (math.isfinite(gain) and gain >= 0):
            raise RtsepError(f"--mix gain {value.strip()!r} for {name} is not a number >= 0")
        gains[name] = gain
    return _mix(gains)


def parse_without(text: str, sources: Sequence[str]) -> Output:
    """``"drums"`` → the mix of every other source (gain 1), e.g. for practising along."""
    names = _names(text, sources, "--without")
    return _mix({s: 0.0 if s in names else 1.0 for s in sources})


def _names(text: str, sources: Sequence[str], flag: str) -> list[str]:
    """Comma-separated source names, each checked against the model's, duplicates dropped."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise RtsepError(f"{flag} is empty: name some of {', '.join(sources)}")
    for name in names:
        if name not in sources:
            raise RtsepError(
                f"unknown source {name!r} in {flag}: this model has {', '.join(sources)}"
            )
    return list(dict.fromkeys(names))


def _mix(gains: dict[str, float]) -> Output:
    """Name a mix: ``mix-without-drums`` when gains are 0 or 1, else ``mix-drums0.5-bass0``."""
    changed = {s: g for s, g in gains.items() if g != 1.0}
    if not changed:
        name = "mix"
    elif all(g == 0.0 for g in changed.values()):
        name = "mix-without-" + "-".join(changed)
    else:
        name = "mix-" + "-".join(f"{s}{g:g}" for s, g in changed.items())
    return Output(name, tuple(gains.values()))


def plan(inputs: Sequence[Path], outdir: Path, outputs: Sequence[Output], fmt: str) -> list[Track]:
    """Where each input's outputs go: ``outdir/<input stem>/<output name>.<fmt>``."""
    tracks = []
    for path in inputs:
        folder = outdir / path.stem
        paths = {o.name: folder / f"{o.name}.{fmt}" for o in outputs}
        tracks.append(Track(path, folder, paths))
    return tracks


def describe_input(path: Path) -> soundfile.SoundFile:
    """Open ``path`` for reading, or raise one clear line naming it and the problem."""
    import soundfile as sf

    if not path.exists():
        raise RtsepError(f"{path}: no such file")
    if path.is_dir():
        raise RtsepError(f"{path}: is a directory, not an audio file")
    try:
        if path.stat().st_size == 0:
            raise RtsepError(f"{path}: is empty (0 bytes)")
        handle = sf.SoundFile(path)
    except RtsepError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        detail = getattr(exc, "error_string", None) or str(exc)
        raise RtsepError(
            f"{path}: not an audio file libsndfile can read ({detail.strip().rstrip('.')})"
        ) from None
    if handle.channels > 2:
        handle.close()
        raise RtsepError(
            f"{path}: {handle.channels} channels: rtsep separates mono or stereo; downmix to 2 "
            "channels first (e.g. ffmpeg -i IN -ac 2 OUT.wav)"
        )
    if handle.frames == 0:
        handle.close()
        raise RtsepError(f"{path}: has no audio (0 frames)")
    return handle


def separate_file(
    track: Track,
    model: Model,
    outputs: Sequence[Output],
    fmt: str = "wav",
    *,
    force: bool = False,
    threads: int = 1,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Result:
    """Separate one file into ``track.paths``; all outputs appear at once, or none do.

    ``on_start(frames)`` is called once the input is open, ``on_progress(frames)`` after each
    block; setting ``cancel`` stops at the next block with ``Cancelled``.
    """
    start = time.perf_counter()
    with describe_input(track.input) as source:
        if track.input.resolve() in {p.resolve() for p in track.paths.values()}:
            raise RtsepError(f"{track.input}: an output would overwrite it: choose another -o")
        if not force:
            existing = [p for p in track.paths.values() if p.exists()]
            if existing:
                raise RtsepError(
                    f"{track.input}: {existing[0]} exists"
                    + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else "")
                    + ": pass --force to overwrite"
                )
        if on_start is not None:
            on_start(source.frames)
        with _Outputs(track, source.samplerate, source.channels, fmt, source.frames) as sink:
            warnings = _stream(source, model, outputs, sink, threads, on_progress, cancel)
            frames = sink.frames
            sink.commit()
        return Result(
            track,
            frames,
            source.samplerate,
            source.channels,
            time.perf_counter() - start,
            warnings,
        )


def _stream(
    source: soundfile.SoundFile,
    model: Model,
    outputs: Sequence[Output],
    sink: _Outputs,
    threads: int,
    on_progress: Callable[[int], None] | None,
    cancel: threading.Event | None,
) -> list[str]:
    """Read ``source`` block by block through the separator into ``sink``; return warnings."""
    from rtsep.offline import ChunkedSeparator

    rate, channels = source.samplerate, source.channels
    n_sources = len(model.sources)
    separator = ChunkedSeparator(model, threads=threads)
    resample = rate != model.sample_rate
    if resample:
        import soxr

        down = soxr.ResampleStream(rate, model.sample_rate, channels, "float32", QUALITY)
        up = soxr.ResampleStream(model.sample_rate, rate, n_sources * channels, "float32", QUALITY)
    pending = _Fifo(channels)  # input not yet matched by output (only to fix the residual)
    total = nonfinite = 0

    def emit(sources: np.ndarray, last: bool = False) -> None:
        if resample:
            flat = np.ascontiguousarray(sources.reshape(len(sources), n_sources * channels))
            sources = up.resample_chunk(flat, last=last).reshape(-1, n_sources, channels)
            missing = total - sink.frames
            sources = sources[:missing]
            if last and len(sources) < missing:
                pad = np.zeros((missing - len(sources), n_sources, channels), np.float32)
                sources = np.concatenate([sources, pad])
            residual = pending.pop(len(sources))
            for i in range(n_sources):
                residual -= sources[:, i]
            residual /= n_sources
            sources += residual[:, None, :]
        if len(sources):
            sink.write([_weighted_sum(sources, o.weights) for o in outputs])

    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"{source.name}: interrupted")
            block = source.read(BLOCK, dtype="float32", always_2d=True)
            if not len(block):
                break
            bad = ~np.isfinite(block)
            if bad.any():
                nonfinite += int(bad.sum())
                block[bad] = 0.0
            total += len(block)
            read = len(block)
            if resample:
                pending.push(block)
                block = down.resample_chunk(block)
            emit(separator.process(block))
            if on_progress is not None:
                on_progress(read)
        if resample:
            tail = separator.process(down.resample_chunk(np.zeros((0, channels), np.float32), True))
            emit(np.concatenate([tail, separator.flush()]), last=True)
        else:
            emit(separator.flush())
    except (RuntimeError, OSError) as exc:
        raise RtsepError(f"{source.name}: failed at frame {total}: {exc}") from None
    if sink.frames != total:
        raise RtsepError(f"{source.name}: wrote {sink.frames} frames for {total} read (a bug)")
    warnings = sink.clip_warnings()
    if nonfinite:
        warnings.append(f"{source.name}: {nonfinite} NaN/inf samples in the input were set to 0")
    return warnings


def _weighted_sum(sources: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Σ weight · source over (frames, sources, channels), skipping zero weights."""
    out = np.zeros((len(sources), sources.shape[2]), np.float32)
    for i, w in enumerate(weights):
        if w == 1.0:
            out += sources[:, i]
        elif w != 0.0:
            out += np.float32(w) * sources[:, i]
    return out


class _Fifo:
    """A queue of frames: push blocks, pop any number (zero-padded past the end)."""

    def __init__(self, channels: int) -> None:
        self._parts: deque[np.ndarray] = deque()
        self._channels = channels

    def push(self, block: np.ndarray) -> None:
        self._parts.append(block)

    def pop(self, frames: int) -> np.ndarray:
        out = np.zeros((frames, self._channels), np.float32)
        pos = 0
        while pos < frames and self._parts:
            part = self._parts[0]
            take = min(len(part), frames - pos)
            out[pos : pos + take] = part[:take]
            pos += take
            if take == len(part):
                self._parts.popleft()
            else:
                self._parts[0] = part[take:]
        return out


def container(fmt: str, frames: int, channels: int) -> tuple[str, str]:
    """libsndfile (format, subtype) for ``fmt``; WAV over 4 GB becomes RF64, which tools read."""
    kind, subtype = FORMATS[fmt]
    if kind == "WAV" and frames * channels * 4 > WAV_DATA_LIMIT:
        kind = "RF64"
    return kind, subtype


class _Outputs:
    """The track's output files, open under temporary names until ``commit`` renames them."""

    def __init__(self, track: Track, rate: int, channels: int, fmt: str, frames: int) -> None:
        self.track, self.rate, self.channels, self.fmt = track, rate, channels, fmt
        self._expected = frames
        self.frames = 0
        self._files: list[soundfile.SoundFile] = []
        self._temps: list[Path] = []
        self._made_folder = False
        self._clipped = [0] * len(track.paths)

    def __enter__(self) -> _Outputs:
        import soundfile as sf

        folder = self.track.folder
        try:
            self._made_folder = not folder.is_dir()
            folder.mkdir(parents=True, exist_ok=True)
            fmt, subtype = container(self.fmt, self._expected, self.channels)
            for final in self.track.paths.values():
                temp = folder / f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.part"
                temp.open("xb").close()  # a clear OSError if the folder is not writable
                self._temps.append(temp)
                self._files.append(
                    sf.SoundFile(temp, "w", self.rate, self.channels, subtype, format=fmt)
                )
        except BaseException as exc:
            self._discard()
            if isinstance(exc, OSError):
                raise RtsepError(
                    f"{self.track.input}: cannot write to {folder}: {exc.strerror or exc}"
                ) from None
            if isinstance(exc, (sf.LibsndfileError, RuntimeError)):
                raise RtsepError(f"{self.track.input}: cannot write {self.fmt}: {exc}") from None
            raise
        return self

    def write(self, blocks: Sequence[np.ndarray]) -> None:
        """Append one (frames, channels) block to each output."""
        pcm = self.fmt == "flac"
        for i, (file, block) in enumerate(zip(self._files, blocks)):
            if pcm:
                self._clipped[i] += int(np.count_nonzero(np.abs(block) > 1.0))
            file.write(block)
        self.frames += len(blocks[0])

    def clip_warnings(self) -> list[str]:
        return [
            f"{path}: {n} samples above full scale were clipped (use --format wav to keep them)"
            for path, n in zip(self.track.paths.values(), self._clipped)
            if n
        ]

    def commit(self) -> None:
        """Close every file and rename them all to their final names."""
        for file in self._files:
            file.close()
        for temp, final in zip(self._temps, self.track.paths.values()):
            os.replace(temp, final)
        self._temps = []

    def __exit__(self, *exc_info) -> None:
        self._discard()

    def _discard(self) -> None:
        """Close and delete whatever was not committed; drop the folder if we made it."""
        for file in self._files:
            with contextlib.suppress(Exception):
                file.close()
        for temp in self._temps:
            with contextlib.suppress(OSError):
                temp.unlink()
        if self._made_folder:
            with contextlib.suppress(OSError):
                self.track.folder.rmdir()
        self._files, self._temps = [], []
