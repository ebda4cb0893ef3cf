"""MIDI control of a ``Separator``: the map (default or TOML), message parsing, rtmidi input.

Messages arrive on rtmidi's own thread, are parsed there (never on the audio thread) and act
through the Separator's lock-free controls, which the engine ramps per sample. Anything that
is not a complete, mapped channel message (sysex, running status, junk bytes, other channels)
is counted and ignored; nothing a MIDI device sends can raise.

Default map (General MIDI drum notes 36-40 and the undefined controllers 20-24):

    note 36, 37, 38, 39  toggle drums, bass, other, vocals   (note-on with velocity > 0)
    note 40              all sources on
    CC 20, 21, 22, 23    gain of drums, bass, other, vocals   (value / 127 * gain_max, linear)
    CC 24                dry/wet                              (value / 127)

A map file (TOML) starts from this map and changes any of it::

    channel = 10           # 1-16: listen to one channel only (default: all)
    gain_max = 2.0         # gain at CC value 127 (default 1.0, at most 4.0)
    [notes]
    36 = "solo drums"      # actions: "toggle SRC", "solo SRC", "all on", "bypass"
    41 = "toggle vocals"
    40 = "none"            # unmap
    [cc]
    7 = "gain vocals"      # actions: "gain SRC", "dry-wet"
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rtmidi.midiconstants import CONTROL_CHANGE, NOTE_ON, SYSTEM_EXCLUSIVE, is_status

from rtsep.engine import MAX_GAIN
from rtsep.errors import RtsepError

MIDI_CHANNELS = 16
"""Channels in a MIDI status byte (its low four bits)."""

DATA_MAX = 127
"""Largest MIDI data byte (velocity, controller value)."""

NOTE_ACTIONS = ("toggle", "solo", "all on", "bypass")
CC_ACTIONS = ("gain", "dry-wet")
_NEEDS_SOURCE = ("toggle", "solo", "gain")
_UNMAP = "none"


@dataclass(frozen=True)
class Action:
    """What a mapped message does: ``kind`` from NOTE_ACTIONS or CC_ACTIONS, on ``source``."""

    kind: str
    source: str | None = None


@dataclass(frozen=True)
class MidiMap:
    """Note and controller numbers to actions, a channel filter (0-based, None = all)."""

    notes: dict[int, Action]
    cc: dict[int, Action]
    channel: int | None = None
    gain_max: float = 1.0


def default_map(sources: tuple[str, ...]) -> MidiMap:
    """The default map for a model's sources (the first four get notes 36.. and CC 20..)."""
    first_note, all_on_note, first_cc = 36, 40, 20
    notes = {first_note + i: Action("toggle", s) for i, s in enumerate(sources[:4])}
    notes[all_on_note] = Action("all on")
    cc = {first_cc + i: Action("gain", s) for i, s in enumerate(sources[:4])}
    cc[first_cc + 4] = Action("dry-wet")
    return MidiMap(notes, cc)


def load_map(
    path: str | Path | None, sources: tuple[str, ...], channel: int | None = None
) -> MidiMap:
    """The default map, changed by the TOML file at ``path`` and a 1-based ``channel`` filter."""
    base = default_map(sources)
    if path is not None:
        base = _apply_file(base, Path(path), sources)
    if channel is not None:
        base = replace(base, channel=_channel(channel, "--midi-channel"))
    return base


def _apply_file(base: MidiMap, path: Path, sources: tuple[str, ...]) -> MidiMap:
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise RtsepError(f"cannot read MIDI map {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RtsepError(f"MIDI map {path} is not valid TOML: {exc}") from None
    where = f"MIDI map {path}"
    unknown = set(doc) - {"channel", "gain_max", "notes", "cc"}
    if unknown:
        raise RtsepError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
            "allowed are channel, gain_max, [notes] and [cc]"
        )
    channel = base.channel
    if "channel" in doc:
        channel = _channel(doc["channel"], f"{where}: channel")
    gain_max = base.gain_max
    if "gain_max" in doc:
        gain_max = doc["gain_max"]
        if (
            isinstance(gain_max, bool)
            or not isinstance(gain_max, (int, float))
            or not (0 < gain_max <= MAX_GAIN)
        ):
            raise RtsepError(f"{where}: gain_max must be a number above 0 and at most {MAX_GAIN}")
    notes = _section(doc, "notes", base.notes, NOTE_ACTIONS, sources, where)
    cc = _section(doc, "cc", base.cc, CC_ACTIONS, sources, where)
    return MidiMap(notes, cc, channel, float(gain_max))


def _channel(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MIDI_CHANNELS:
        raise RtsepError(f"{where} must be a MIDI channel from 1 to {MIDI_CHANNELS}, not {value!r}")
    return value - 1


def _section(
    doc: dict[str, Any],
    name: str,
    base: dict[int, Action],
    allowed: tuple[str, ...],
    sources: tuple[str, ...],
    where: str,
) -> dict[int, Action]:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise RtsepError(f'{where}: [{name}] must be a table of number = "action"')
    merged = dict(base)
    for key, text in table.items():
        if not (key.isdigit() and int(key) <= DATA_MAX):
            raise RtsepError(f"{where}: [{name}] key {key!r} is not a number from 0 to {DATA_MAX}")
        if not isinstance(text, str):
            raise RtsepError(f"{where}: [{name}] {key} must be an action string, not {text!r}")
        if text.strip() == _UNMAP:
            merged.pop(int(key), None)
        else:
            merged[int(key)] = _action(text, allowed, sources, f"{where}: [{name}] {key}")
    return merged


def _action(text: str, allowed: tuple[str, ...], sources: tuple[str, ...], where: str) -> Action:
    words = text.split()
    kind = " ".join(words)
    if kind in allowed and kind not in _NEEDS_SOURCE:
        return Action(kind)
    if len(words) == 2 and words[0] in allowed and words[0] in _NEEDS_SOURCE:
        if words[1] not in sources:
            raise RtsepError(
                f"{where}: unknown source {words[1]!r}; choose from {', '.join(sources)}"
            )
        return Action(words[0], words[1])
    forms = [f"{a} SOURCE" if a in _NEEDS_SOURCE else a for a in allowed]
    raise RtsepError(f"{where}: {text!r} is not an action; use one of: {', '.join(forms)}, none")


def parse(message: Any, midi_map: MidiMap) -> tuple[Action, float] | str | None:
    """Map one raw message to ``(action, value 0..1)``; otherwise a reason string or None.

    None means a valid message that is not mapped (note-off, other notes); a string names why
    the message was ignored: ``"channel"`` (filtered), ``"sysex"`` or ``"malformed"``.
    """
    try:
        status, data = int(message[0]), [int(b) for b in message[1:]]
    except (TypeError, ValueError, LookupError, OverflowError):
        return "malformed"
    if status == SYSTEM_EXCLUSIVE:
        return "sysex"
    if not is_status(status) or any(b < 0 or is_status(b) for b in data):
        return "malformed"
    channel = status % MIDI_CHANNELS
    kind = status - channel
    if kind not in (NOTE_ON, CONTROL_CHANGE):
        return None
    if len(data) != 2:
        return "malformed"
    if midi_map.channel is not None and channel != midi_map.channel:
        return "channel"
    number, value = data
    if kind == NOTE_ON:
        action = midi_map.notes.get(number)
        return (action, value / DATA_MAX) if action and value > 0 else None
    action = midi_map.cc.get(number)
    return (action, value / DATA_MAX) if action else None


@dataclass
class MidiCounters:
    """What the MIDI input has seen (read by the status line; written by the MIDI thread)."""

    received: int = 0
    applied: int = 0
    unmapped: int = 0
    filtered: int = 0
    ignored: int = 0
    events: collections.deque = field(default_factory=lambda: collections.deque(maxlen=256))


class MidiController:
    """Applies MIDI messages to a Separator; usable directly as an rtmidi input callback.

    ``counters.events`` keeps ``(number, perf_counter seconds at arrival, action, value)`` of
    recent applied messages (numbered from 1), so that a caller can relate a change to the
    audio stream's clock.
    """

    def __init__(self, separator: Any, midi_map: MidiMap) -> None:
        self.separator = separator
        self.map = midi_map
        self.counters = MidiCounters()

    def __call__(self, event: Any, data: Any = None) -> None:
        """rtmidi callback: ``event`` is ``(message bytes, delta seconds)``."""
        arrival = time.perf_counter()
        self.counters.received += 1
        try:
            message = event[0]
        except (TypeError, IndexError, KeyError):
            message = None
        self.handle(message, arrival)

    def handle(self, message: Any, arrival: float | None = None) -> None:
        """Parse one raw message and act on it; never raises for any message."""
        result = parse(message, self.map)
        if result is None:
            self.counters.unmapped += 1
        elif result == "channel":
            self.counters.filtered += 1
        elif isinstance(result, str):
            self.counters.ignored += 1
        else:
            action, value = result
            self._apply(action, value)
            number = self.counters.applied + 1
            self.counters.events.append((number, arrival or time.perf_counter(), action, value))
            self.counters.applied = number

    def _apply(self, action: Action, value: float) -> None:
        sep = self.separator
        if action.kind == "toggle":
            sep.toggle(action.source)
        elif action.kind == "solo":
            sep.solo(action.source, action.source not in sep.soloed)
        elif action.kind == "all on":
            sep.only(sep.sources)
        elif action.kind == "bypass":
            sep.bypass(not sep.bypassed)
        elif action.kind == "gain":
            sep.set_gain(action.source, value * self.map.gain_max)
        elif action.kind == "dry-wet":
            sep.set_dry_wet(value)


def _api():
    """JACK MIDI when a JACK server runs (and rtmidi has it), else rtmidi's default API."""
    import rtmidi

    if rtmidi.API_UNIX_JACK in rtmidi.get_compiled_api() and jack_running():
        return rtmidi.API_UNIX_JACK
    return rtmidi.API_UNSPECIFIED


def jack_running() -> bool:
    """Whether a JACK server answers (JACK MIDI with no server would fail to open).

    libjack prints its failed connection attempts on stderr; they are silenced here because
    "no server" is an expected answer, not an error.
    """
    import rtmidi

    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        return False
    with _quiet_stderr():
        try:
            probe = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "rtsep-probe")
        except rtmidi.RtMidiError:
            return False
        try:
            probe.get_port_count()
            return True
        except rtmidi.RtMidiError:
            return False
        finally:
            probe.delete()


@contextlib.contextmanager
def _quiet_stderr():
    """Send file descriptor 2 (what C libraries print to) to /dev/null for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _midi_in():
    """An rtmidi input client named rtsep (the C libraries' complaints silenced)."""
    import rtmidi

    try:
        with _quiet_stderr():
            return rtmidi.MidiIn(_api(), "rtsep")
    except rtmidi.RtMidiError as exc:
        raise RtsepError(
            f"no MIDI system is available (no JACK server, no ALSA sequencer): {exc}"
        ) from None


def input_ports() -> tuple[str, list[str]]:
    """The MIDI API name in use and its input port names."""
    import rtmidi

    midi_in = _midi_in()
    try:
        return rtmidi.get_api_display_name(midi_in.get_current_api()), midi_in.get_ports()
    finally:
        midi_in.delete()


def open_input(controller: MidiController, port: str | None = None, virtual: str | None = None):
    """Open a MIDI input (a port whose name contains ``port``, or a new virtual port
    named ``virtual``) whose messages go to ``controller``; returns the rtmidi MidiIn.
    """
    import rtmidi

    midi_in = _midi_in()
    try:
        if virtual is not None:
            midi_in.open_virtual_port(virtual)
        else:
            midi_in.open_port(_find_port(midi_in.get_ports(), port))
    except rtmidi.RtMidiError as exc:
        midi_in.delete()
        raise RtsepError(f"cannot open MIDI input: {exc}") from None
    except RtsepError:
        midi_in.delete()
        raise
    midi_in.ignore_types(sysex=False, timing=True, active_sense=True)
    midi_in.set_callback(controller)
    return midi_in


def _find_port(ports: list[str], wanted: str | None) -> int:
    matches = [i for i, name in enumerate(ports) if wanted is not None and wanted in name]
    if wanted is not None and wanted.isdigit() and int(wanted) < len(ports):
        return int(wanted)
    if len(matches) == 1:
        return matches[0]
    listing = "; ".join(f"{i}: {name}" for i, name in enumerate(ports)) or "none"
    if matches:
        raise RtsepError(
            f"MIDI port {wanted!r} matches several inputs ({listing}): be more precise"
        )
    raise RtsepError(
        f"no MIDI input port matches {wanted!r}; inputs are: {listing} "
        "(or use --midi-virtual NAME to open a port other programs connect to)"
    )
