"""Live separation: a sounddevice stream through a ``Separator``, a file player, a recorder.

The audio callback only moves preallocated buffers: it reads the input (or the file player's
ring), calls ``Separator.process(block, out=outdata)``, pushes what is heard into the
recorder's ring and writes a few counters. File reading, file writing, MIDI and the status line
run on other threads; they meet the callback through single-producer single-consumer rings
that need no locks (one side only ever advances its own counter).

A model that cannot keep up (OVERLOAD_MISSES deadline misses in a row) is rested for
OVERLOAD_REST_S: the input passes through dry (``Separator.pass_dry``, still delayed by the
latency) instead of the device playing silence, the counters show it, and the model is then
tried again from zero states, ramping from dry back to the separated mix.

sounddevice is imported inside functions: PortAudio lists host APIs when it is first
imported, so it must not be imported before a JACK server is started.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtsep.errors import RtsepError

FILE_AHEAD_S = 2.0
"""Seconds of a played file read ahead of the callback."""

RECORD_AHEAD_S = 4.0
"""Seconds of recording the writer thread may fall behind before frames are dropped."""

STATUS_HZ = 10.0
"""Status line updates per second."""

STALL_S = 1.0
"""A stream that calls back no more for this long has failed (3x this before its first call)."""

CLOSE_WAIT_S = 2.0
"""How long closing a failed stream may take before it is abandoned."""

OVERLOAD_MISSES = 4
"""Deadline misses in a row that mean the model cannot keep up: the input passes dry."""

OVERLOAD_REST_S = 1.0
"""Seconds of dry signal after an overload before the model is tried again."""

LOG_CALLBACKS = 16384
"""Callbacks kept in the timing log (about 47 s at 128 frames)."""

METER_WIDTH = 6
"""Characters of a level meter."""

METER_FLOOR_DB = -48.0
"""Level shown as an empty meter."""

DEFAULT_MAX_BLOCK = 8192
"""Largest host block prepared for when the block size is left to the host (JACK's largest
period)."""


class Ring:
    """Single-producer single-consumer ring of float32 frames, lock-free.

    The producer only advances ``_written``, the consumer only ``_read``; each copies its data
    before it advances, so the other side never sees a half-written frame. ``closed`` is set by
    the producer after its last write.
    """

    def __init__(self, frames: int, channels: int) -> None:
        self._buf = np.zeros((frames, channels), np.float32)
        self._written = 0
        self._read = 0
        self.closed = False

    @property
    def available(self) -> int:
        """Frames ready to read."""
        return self._written - self._read

    @property
    def space(self) -> int:
        """Frames that can be written now."""
        return len(self._buf) - self.available

    def write(self, data: np.ndarray) -> int:
        """Copy as much of ``data`` as fits; returns the frames written."""
        n = min(len(data), self.space)
        start = self._written % len(self._buf)
        first = min(n, len(self._buf) - start)
        self._buf[start : start + first] = data[:first]
        self._buf[: n - first] = data[first:n]
        self._written += n
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Fill the start of ``out`` with what is available; returns the frames read."""
        n = min(len(out), self.available)
        start = self._read % len(self._buf)
        first = min(n, len(self._buf) - start)
        out[:first] = self._buf[start : start + first]
        out[first:n] = self._buf[: n - first]
        self._read += n
        return n


def fit_channels(block: np.ndarray, channels: int) -> np.ndarray:
    """A (frames, c) block as (frames, channels): mono is copied, stereo to mono is averaged."""
    have = block.shape[1]
    if have == channels:
        return block
    if have == 1:
        return np.repeat(block, channels, axis=1)
    if channels == 1:
        return block.mean(axis=1, keepdims=True)
    return block[:, :channels]


class FilePlayer:
    """Reads an audio file ahead into a Ring on a thread, at the stream's rate and channels."""

    def __init__(self, path: str | Path, sample_rate: int, channels: int, block: int = 4096):
        import soundfile as sf

        self.path = Path(path)
        try:
            self._file = sf.SoundFile(str(self.path))
        except (sf.LibsndfileError, OSError) as exc:
            raise RtsepError(f"cannot read audio file {self.path}: {exc}") from None
        self.sample_rate, self.channels, self._block = sample_rate, channels, block
        self.ring = Ring(int(FILE_AHEAD_S * sample_rate), channels)
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtsep-file", daemon=True)

    def start(self) -> None:
        """Start reading and wait until the ring is full or the file is read."""
        self._thread.start()
        while self.ring.space > self._block and not self.ring.closed:
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._file.close()

    def _run(self) -> None:
        import soxr

        resampler = None
        if self._file.samplerate != self.sample_rate:
            resampler = soxr.ResampleStream(
                self._file.samplerate, self.sample_rate, self._file.channels, dtype="float32"
            )
        try:
            while not self._stop.is_set():
                data = self._file.read(self._block, dtype="float32", always_2d=True)
                last = len(data) < self._block
                if resampler is not None:
                    data = resampler.resample_chunk(data, last=last)
                self._push(fit_channels(data, self.channels))
                if last:
                    break
        except Exception as exc:  # a file that fails mid-read ends the playback, with a reason
            self.error = f"reading {self.path} failed: {exc}"
        self.ring.closed = True

    def _push(self, data: np.ndarray) -> None:
        pos = 0
        while pos < len(data) and not self._stop.is_set():
            pos += self.ring.write(data[pos:])
            if pos < len(data):
                time.sleep(0.01)


def record_format(path: Path) -> str:
    """The soundfile format for a recording path, from its extension."""
    import soundfile as sf

    fmt = path.suffix.lstrip(".").upper()
    if fmt not in sf.available_formats():
        known = ", ".join(f".{f.lower()}" for f in ("WAV", "FLAC", "AIFF", "OGG"))
        raise RtsepError(f"cannot record to {path}: unknown extension; use one of {known}")
    return fmt


class Recorder:
    """Writes frames pushed into its ring to a file from a thread.

    The file is written under a temporary name in the same folder and renamed when the
    recording finishes, so that an interrupted or failed run never leaves half a file
    under the requested name.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int, force: bool = False):
        import soundfile as sf

        self.path = Path(path)
        if self.path.exists() and not force:
            raise RtsepError(f"{self.path} exists: choose another name or pass --force")
        if not self.path.parent.is_dir():
            raise RtsepError(
                f"cannot record to {self.path}: folder {self.path.parent} does not exist"
            )
        fmt = record_format(self.path)
        self._tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.part{self.path.suffix}")
        try:
            self._file = sf.SoundFile(
                str(self._tmp),
                "w",
                sample_rate,
                channels,
                subtype="FLOAT" if fmt == "WAV" else None,
                format=fmt,
            )
        except (sf.LibsndfileError, OSError) as exc:
            raise RtsepError(f"cannot record to {self.path}: {exc}") from None
        self.ring = Ring(int(RECORD_AHEAD_S * sample_rate), channels)
        self._chunk = np.zeros((sample_rate // 10, channels), np.float32)
        self.frames = 0
        self.dropped = 0  # frames the callback could not push (the writer fell behind)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtsep-record", daemon=True)
        self._thread.start()

    def push(self, block: np.ndarray) -> None:
        """From the audio callback: queue frames; never blocks."""
        self.dropped += len(block) - self.ring.write(block)

    def finish(self) -> Path:
        """Write what is queued, close the file and give it its name."""
        self._stop.set()
        self._thread.join()
        self._file.close()
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Stop without keeping anything (the run failed before it started)."""
        self._stop.set()
        self._thread.join()
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            n = self.ring.read_into(self._chunk)
            if n:
                self._file.write(self._chunk[:n])
                self.frames += n
            elif stopping:
                return
            else:
                time.sleep(0.02)


@dataclass
class LiveOptions:
    """What ``rtsep live`` was asked for (see its --help)."""

    device: str | None = None
    samplerate: int | None = None
    blocksize: int = 128
    channels: int | None = None
    sources: list[str] | None = None
    file: Path | None = None
    record: Path | None = None
    duration: float | None = None
    force: bool = False


@dataclass
class Counters:
    """Read by the main thread, written by the audio callback only."""

    callbacks: int = 0
    frames: int = 0
    xruns: int = 0
    misses: int = 0
    errors: int = 0
    underruns: int = 0
    dry: int = 0  # callbacks passed through dry because the model could not keep up
    load_sum: float = 0.0
    load_max: float = 0.0


@dataclass
class MidiEvent:
    """An applied MIDI message placed on the stream's timeline."""

    arrival: float
    frame: float
    text: str


@dataclass
class Summary:
    """What a run did, for the final report."""

    seconds: float
    counters: Counters
    latency_s: float
    engine_latency: int
    device_latency_s: float
    failure: str | None = None
    recorded: Path | None = None
    recorded_frames: int = 0
    dropped: int = 0
    midi_events: list[MidiEvent] = field(default_factory=list)
    midi: Any = None
    abandoned: bool = False
    engine: dict[str, int] = field(default_factory=dict)


def split_devices(spec: str | None) -> tuple[str | None, str | None]:
    """``IN[,OUT]`` → (IN, OUT); one name is used for both."""
    if spec is None:
        return None, None
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) > 2 or not all(parts):
        raise RtsepError(f"--device takes IN or IN,OUT (an index or part of a name), not {spec!r}")
    return parts[0], parts[-1]


def resolve_device(spec: str | None, kind: str) -> int:
    """Index of the ``kind`` ("input"/"output") device named by index or name part."""
    import sounddevice as sd

    devices = sd.query_devices()
    apis = sd.query_hostapis()
    key = f"max_{kind}_channels"
    usable = [i for i, d in enumerate(devices) if d[key] > 0]
    listing = (
        "; ".join(
            f"{i}: {devices[i]['name']} ({apis[devices[i]['hostapi']]['name']})" for i in usable
        )
        or "none (is an audio server such as JACK running?)"
    )
    if spec is None:
        default = sd.default.device[0 if kind == "input" else 1]
        if default is not None and default >= 0 and default in usable:
            return int(default)
        raise RtsepError(f"there is no default audio {kind} device; {kind}s are: {listing}")
    if spec.isdigit():
        if int(spec) in usable:
            return int(spec)
        raise RtsepError(f"audio device {spec} is not an {kind}; {kind}s are: {listing}")
    exact = [i for i in usable if devices[i]["name"] == spec]
    matches = exact or [i for i in usable if spec.lower() in devices[i]["name"].lower()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise RtsepError(f"audio {kind} {spec!r} matches several devices; {kind}s are: {listing}")
    raise RtsepError(f"no audio {kind} device matches {spec!r}; {kind}s are: {listing}")


class Live:
    """A live run: stream, separator, optional file player, recorder and MIDI controller."""

    def __init__(self, separator: Any, options: LiveOptions, midi: Any = None) -> None:
        self.separator = separator
        self.options = options
        self.midi = midi
        self.counters = Counters()
        self.sample_rate = options.samplerate or separator.model.sample_rate
        self.done = False
        self.player: FilePlayer | None = None
        self.recorder: Recorder | None = None
        self._end = sys.maxsize  # stream frame at which the run ends
        self._missed_in_a_row = 0
        self.overloaded_until = 0  # stream frame until which the model rests (overload)
        self._log_start = np.zeros(LOG_CALLBACKS, np.float64)
        self._log_frame = np.zeros(LOG_CALLBACKS, np.int64)
        self._log_load = np.zeros(LOG_CALLBACKS, np.float64)
        self._midi_seen = 0
        self.device_latency_s = 0.0
        self.abandoned = False  # a failed stream that could not be closed (see _close)
        self.midi_events: list[MidiEvent] = []

    # ---- set-up ---------------------------------------------------------------------------

    def open(self) -> None:
        """Find the devices, check their settings, prepare buffers; raises RtsepError."""
        import sounddevice as sd

        opts = self.options
        dev_in, dev_out = split_devices(opts.device)
        playing = opts.file is not None
        self._in = None if playing else resolve_device(dev_in, "input")
        self._out = resolve_device(dev_out, "output")
        most = sd.query_devices(self._out)["max_output_channels"]
        if self._in is not None:
            most = min(most, sd.query_devices(self._in)["max_input_channels"])
        channels = opts.channels or min(2, most)
        if not 1 <= channels <= most:
            raise RtsepError(f"--channels {channels}: the device has {most}; use 1 to {most}")
        if opts.samplerate is None:
            self.sample_rate = self._device_rate(channels)
        self._check_settings(channels)
        self.prepare(channels)

    def prepare(self, channels: int) -> None:
        """Everything the callback needs, made before the stream starts (no device needed):
        the prepared separator, the block buffer, the file player and the recorder."""
        opts = self.options
        if opts.duration is not None and not opts.duration > 0:
            raise RtsepError(f"--duration must be above 0 seconds, not {opts.duration}")
        self.channels = channels
        self._max_block = opts.blocksize or DEFAULT_MAX_BLOCK
        if opts.sources:
            self.separator.only(opts.sources)  # before prepare: no ramp at the start
        self.separator.prepare(self.sample_rate, self._max_block, channels)
        self._dry = np.zeros((self._max_block, channels), np.float32)
        if opts.duration is not None:
            self._end = round(opts.duration * self.sample_rate)
        if opts.file is not None:
            self.player = FilePlayer(opts.file, self.sample_rate, channels)
        if opts.record is not None:
            self.recorder = Recorder(opts.record, self.sample_rate, channels, opts.force)

    def _device_rate(self, channels: int) -> int:
        """The model's rate where the devices take it (nothing to resample), else the output
        device's own rate (a JACK server runs at one rate only)."""
        import sounddevice as sd

        try:
            self._try_settings(channels, self.sample_rate)
        except sd.PortAudioError:
            return round(sd.query_devices(self._out)["default_samplerate"])
        return self.sample_rate

    def _try_settings(self, channels: int, rate: int) -> None:
        import sounddevice as sd

        if self._in is not None:
            sd.check_input_settings(self._in, channels=channels, samplerate=rate)
        sd.check_output_settings(self._out, channels=channels, samplerate=rate)

    def _check_settings(self, channels: int) -> None:
        import sounddevice as sd

        try:
            self._try_settings(channels, self.sample_rate)
        except sd.PortAudioError as exc:
            rate = sd.query_devices(self._out)["default_samplerate"]
            raise RtsepError(
                f"the audio device cannot run {channels} channel(s) at {self.sample_rate} Hz "
                f"({exc}; its default rate is {rate:g} Hz): leave out --samplerate, or pass "
                "one the device supports"
            ) from None

    def _stream(self):
        import sounddevice as sd

        common = dict(
            samplerate=self.sample_rate,
            blocksize=self.options.blocksize,
            channels=self.channels,
            dtype="float32",
            latency="low",
        )
        if self._in is None:
            return sd.OutputStream(device=self._out, callback=self._output_callback, **common)
        return sd.Stream(device=(self._in, self._out), callback=self._duplex_callback, **common)

    # ---- the audio callback (real-time) ----------------------------------------------------

    def _duplex_callback(self, indata, outdata, frames, time_info, status) -> None:
        self._tick(indata, outdata, frames, status)

    def _output_callback(self, outdata, frames, time_info, status) -> None:
        self._tick(None, outdata, frames, status)

    def _tick(self, indata, outdata, frames: int, status) -> None:
        start = time.perf_counter()
        c = self.counters
        if status:
            c.xruns += 1
        i = c.callbacks % LOG_CALLBACKS
        self._log_start[i] = start
        self._log_frame[i] = c.frames
        try:
            if self.done:
                outdata.fill(0.0)
            else:
                self._fill(indata, outdata, frames)
        except Exception:  # e.g. a host block larger than prepared for: never stop the stream
            c.errors += 1
            if indata is None:
                outdata.fill(0.0)
            else:
                outdata[:] = indata
        load = (time.perf_counter() - start) * self.sample_rate / frames
        self._log_load[i] = load
        c.load_sum += load
        if load > c.load_max:
            c.load_max = load
        if load > 1.0:
            c.misses += 1
            self._missed_in_a_row += 1
            if self._missed_in_a_row >= OVERLOAD_MISSES:
                self._missed_in_a_row = 0
                self.overloaded_until = c.frames + round(OVERLOAD_REST_S * self.sample_rate)
        else:
            self._missed_in_a_row = 0
        c.callbacks += 1

    def _fill(self, indata, outdata, frames: int) -> None:
        c = self.counters
        dry = self._dry[:frames]
        if self.player is None:
            dry[:] = indata
        else:
            closed = self.player.ring.closed
            n = self.player.ring.read_into(dry)
            if n < frames:
                dry[n:] = 0.0
                if closed:  # the file ended: play on for the latency, then stop
                    self._end = min(self._end, c.frames + n + self.separator.latency_samples)
                else:
                    c.underruns += 1
        if c.frames < self.overloaded_until:  # overloaded: the input is heard, the model rests
            self.separator.pass_dry(dry, out=outdata)
            c.dry += 1
        else:
            self._separate(dry, outdata, frames)
        keep = min(frames, self._end - c.frames)
        if self.recorder is not None:
            self.recorder.push(outdata[:keep])
        c.frames += frames
        if c.frames >= self._end:
            self.done = True

    def _separate(self, dry, outdata, frames: int) -> None:
        self.overloaded_until = 0  # the engine restarts a rested model by itself
        try:
            self.separator.process(dry, out=outdata)
        except Exception:  # the callback must go on: pass the dry input through, counted
            self.counters.errors += 1
            outdata[:] = dry

    # ---- the main thread --------------------------------------------------------------------

    def run(self, show: Any = None, on_start: Any = None) -> Summary:
        """Stream until the duration or the file ends, Ctrl-C, or the device fails.

        ``on_start()`` is called once the stream runs; ``show(live)`` about STATUS_HZ times a
        second from this thread (the status line). The recording is finished in every case.
        """
        import sounddevice as sd

        failure = None
        started = time.perf_counter()
        try:
            if self.player is not None:
                self.player.start()
            try:
                stream = self._stream()
            except sd.PortAudioError as exc:
                raise RtsepError(f"cannot open the audio stream: {exc}") from None
            self.device_latency_s = _latency(stream.latency, self._in is not None)
            stream.start()
            try:
                started = time.perf_counter()
                if on_start is not None:
                    on_start()
                failure = self._wait(stream, show)
            finally:
                self.abandoned = not _close(stream, failed=failure is not None)
        except KeyboardInterrupt:
            failure = None
        finally:
            seconds = time.perf_counter() - started
            if self.player is not None:
                self.player.stop()
                failure = failure or self.player.error
            recorded = self.recorder.finish() if self.recorder is not None else None
        self._place_midi_events()
        return Summary(
            seconds=seconds,
            counters=self.counters,
            latency_s=self.separator.latency_samples / self.sample_rate + self.device_latency_s,
            engine_latency=self.separator.latency_samples,
            device_latency_s=self.device_latency_s,
            failure=failure,
            recorded=recorded,
            recorded_frames=self.recorder.frames if self.recorder else 0,
            dropped=self.recorder.dropped if self.recorder else 0,
            midi_events=self.midi_events,
            midi=self.midi.counters if self.midi is not None else None,
            abandoned=self.abandoned,
            engine=self.separator.stats,
        )

    def close(self) -> None:
        """Release what ``open`` made if ``run`` is never called."""
        if self.recorder is not None:
            self.recorder.discard()

    def _wait(self, stream, show) -> str | None:
        """Poll until done; returns a failure message if the stream stopped by itself."""
        last_count, last_change = 0, time.perf_counter()
        while not self.done:
            time.sleep(1.0 / STATUS_HZ)
            self._place_midi_events()
            if show is not None:
                show(self)
            now = time.perf_counter()
            count = self.counters.callbacks
            if count != last_count:
                last_count, last_change = count, now
            stalled = now - last_change > (STALL_S if count else 3 * STALL_S)
            if not stream.active or stalled:
                return "the audio device stopped (disconnected, or its audio server ended)"
        return None

    def recent_load(self) -> tuple[float, float]:
        """Mean and max callback load (time used / time available) over the last 0.5 s."""
        count = self.counters.callbacks
        per_half_second = int(0.5 * self.sample_rate / self._max_block) + 1
        window = max(1, min(count, LOG_CALLBACKS, per_half_second))
        idx = (np.arange(count - window, count) % LOG_CALLBACKS) if count else np.zeros(0, int)
        loads = self._log_load[idx]
        return (float(loads.mean()), float(loads.max())) if len(loads) else (0.0, 0.0)

    def _place_midi_events(self) -> None:
        """Put newly applied MIDI messages on the stream timeline (frame at arrival)."""
        if self.midi is None:
            return
        new = [e for e in list(self.midi.counters.events) if e[0] > self._midi_seen]
        if not new:
            return
        self._midi_seen = new[-1][0]
        count = self.counters.callbacks
        n = min(count, LOG_CALLBACKS - 1)  # the oldest slot may be the running callback's
        idx = np.arange(count - n, count) % LOG_CALLBACKS
        starts, frames = self._log_start[idx], self._log_frame[idx]
        for _, arrival, action, value in new:
            k = int(np.searchsorted(starts, arrival, side="right")) - 1
            if k < 0:
                frame = float(frames[0]) if n else 0.0
            else:
                frame = frames[k] + (arrival - starts[k]) * self.sample_rate
            text = action.kind + (f" {action.source}" if action.source else "")
            if action.kind in ("gain", "dry-wet"):
                text += f" {value:.3f}"
            self.midi_events.append(MidiEvent(arrival, float(frame), text))


def status_text(live: Live):
    """The status: sources with gain and meter; then load, xruns, misses, latency."""
    from rich.text import Text

    sep = live.separator
    text = Text()
    levels = sep.levels
    for i, (name, gain) in enumerate(sep.targets.items()):
        on = gain > 0
        bars = min(METER_WIDTH, round(METER_WIDTH * _meter(float(levels[i]))))
        text.append(f"{name} ", style="bold green" if on else "dim")
        text.append(f"{gain:.2f} " if on else "off  ", style="green" if on else "dim")
        text.append("▮" * bars + "▯" * (METER_WIDTH - bars), style="cyan" if on else "dim")
        text.append("  ")
    mean, peak = live.recent_load()
    c = live.counters
    text.append(f"\nload {100 * mean:3.0f}% max {100 * peak:3.0f}% ")
    text.append(f"| xruns {c.xruns} ", style="red" if c.xruns else "")
    text.append(f"| misses {c.misses} ", style="red" if c.misses else "")
    if c.frames < live.overloaded_until:
        text.append("| OVERLOAD: dry ", style="bold red")
    latency = 1e3 * (sep.latency_samples / live.sample_rate + live.device_latency_s)
    text.append(f"| latency {latency:.1f} ms")
    if sep.dry_wet < 1.0:
        text.append(f" | wet {sep.dry_wet:.2f}")
    if live.midi is not None:
        text.append(f" | midi {live.midi.counters.applied}")
    return text


def _meter(peak: float) -> float:
    """Peak → 0..1 on a dB scale from METER_FLOOR_DB to 0 dBFS."""
    if peak <= 0.0:
        return 0.0
    return max(0.0, 1.0 - 20.0 * math.log10(peak) / METER_FLOOR_DB)


def _close(stream: Any, failed: bool) -> bool:
    """Stop and close a stream; returns whether it closed.

    After a device failure PortAudio can wait for a dead server forever, so the close then
    runs on a thread that gets CLOSE_WAIT_S; a stream left behind is reported as abandoned.
    """
    if not failed:
        stream.stop()
        stream.close()
        return True
    closer = threading.Thread(target=stream.close, kwargs={"ignore_errors": True}, daemon=True)
    closer.start()
    closer.join(CLOSE_WAIT_S)
    return not closer.is_alive()


def _latency(latency: Any, duplex: bool) -> float:
    """Device latency in seconds from a stream's ``latency`` (input + output when duplex)."""
    if isinstance(latency, (tuple, list)):
        return float(sum(latency)) if duplex else float(latency[-1])
    return float(latency)


def summary_lines(summary: Summary, sample_rate: int) -> list[str]:
    """The final report: a few plain lines that scripts can read."""
    c = summary.counters
    mean = c.load_sum / c.callbacks if c.callbacks else 0.0
    lines = [
        f"played {c.frames / sample_rate:.3f} s ({c.frames} frames, {c.callbacks} callbacks) "
        f"in {summary.seconds:.3f} s; xruns {c.xruns}; deadline misses {c.misses}; "
        f"callback load mean {100 * mean:.1f}% max {100 * c.load_max:.1f}%; "
        f"callback errors {c.errors}; engine errors {summary.engine['errors']}; "
        f"non-finite inputs {summary.engine['nonfinite']}; overload dry callbacks {c.dry}; "
        f"file underruns {c.underruns}",
        f"latency {1e3 * summary.latency_s:.2f} ms (engine {summary.engine_latency} samples "
        f"at {sample_rate} Hz + device {1e3 * summary.device_latency_s:.2f} ms)",
    ]
    for e in summary.midi_events:
        lines.append(f"midi {e.text} at frame {e.frame:.1f} ({e.frame / sample_rate:.4f} s)")
    if summary.midi is not None:
        m = summary.midi
        lines.append(
            f"midi messages {m.received}: applied {m.applied}, unmapped {m.unmapped}, "
            f"other channel {m.filtered}, ignored {m.ignored}"
        )
    if summary.recorded is not None:
        lines.append(
            f"recorded {summary.recorded} ({summary.recorded_frames} frames, "
            f"dropped {summary.dropped})"
        )
    return lines
