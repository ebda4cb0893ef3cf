"""MIDI map files, message parsing and the controller against a real Separator."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtmidi.midiconstants import (
    CONTROL_CHANGE,
    NOTE_OFF,
    NOTE_ON,
    PITCH_BEND,
    SYSTEM_EXCLUSIVE,
    TIMING_CLOCK,
)

import rtsep
from rtsep.errors import RtsepError
from rtsep.midi import Action, MidiController, _find_port, default_map, load_map, parse

SOURCES = ("drums", "bass", "other", "vocals")


@pytest.fixture(scope="module")
def model(toy_model_dir):
    return rtsep.load_model(toy_model_dir, provider="cpu")


@pytest.fixture
def separator(model):
    return rtsep.Separator(model)


@pytest.fixture
def controller(separator):
    return MidiController(separator, default_map(separator.sources))


def test_default_map_parses_notes_and_controllers():
    m = default_map(SOURCES)
    assert parse([NOTE_ON, 36, 100], m) == (Action("toggle", "drums"), 100 / 127)
    assert parse([NOTE_ON | 9, 39, 1], m)[0] == Action("toggle", "vocals")  # any channel
    assert parse([NOTE_ON, 40, 64], m)[0] == Action("all on")
    assert parse([CONTROL_CHANGE, 21, 127], m) == (Action("gain", "bass"), 1.0)
    assert parse([CONTROL_CHANGE, 24, 0], m) == (Action("dry-wet"), 0.0)
    assert parse([NOTE_ON, 36, 0], m) is None  # note-on with velocity 0 is a note-off
    assert parse([NOTE_OFF, 36, 64], m) is None
    assert parse([NOTE_ON, 60, 64], m) is None
    assert parse([PITCH_BEND, 0, 64], m) is None
    assert parse([SYSTEM_EXCLUSIVE, 1, 2, 0xF7], m) == "sysex"
    assert parse([NOTE_ON, 36], m) == "malformed"
    assert parse([NOTE_ON, 200, 1], m) == "malformed"
    assert parse([36, 100], m) == "malformed"


def test_controller_drives_the_separator(controller, separator):
    controller.handle([NOTE_ON, 36, 100])
    assert separator.heard["drums"] is False
    controller.handle([NOTE_ON, 36, 100])
    assert separator.heard["drums"] is True
    controller.handle([CONTROL_CHANGE, 21, 64])
    assert separator.gains["bass"] == pytest.approx(64 / 127)
    controller.handle([NOTE_ON, 37, 1])
    controller.handle([NOTE_ON, 38, 1])
    assert separator.heard == {"drums": True, "bass": False, "other": False, "vocals": True}
    controller.handle([NOTE_ON, 40, 1])
    assert all(separator.heard.values())
    controller.handle([CONTROL_CHANGE, 24, 0])
    assert separator.dry_wet == 0.0
    c = controller.counters
    assert (c.applied, c.unmapped, c.filtered, c.ignored) == (7, 0, 0, 0)


def test_rtmidi_callback_form(controller, separator):
    controller(([NOTE_ON, 39, 90], 0.001), None)
    controller((None, 0.0), None)
    controller("junk", None)
    assert separator.heard["vocals"] is False
    assert controller.counters.received == 3 and controller.counters.ignored == 2
    number, arrival, action, _ = controller.counters.events[-1]
    assert action == Action("toggle", "vocals") and arrival > 0 and number == 1


def test_map_file_changes_the_default(tmp_path, separator):
    path = tmp_path / "map.toml"
    path.write_text(
        'channel = 10\ngain_max = 2.0\n[notes]\n36 = "solo drums"\n41 = "toggle vocals"\n'
        '40 = "none"\n42 = "bypass"\n[cc]\n7 = "gain vocals"\n24 = "none"\n'
    )
    m = load_map(path, SOURCES)
    assert m.channel == 9 and m.gain_max == 2.0
    assert m.notes[36] == Action("solo", "drums") and m.notes[37] == Action("toggle", "bass")
    assert 40 not in m.notes and 24 not in m.cc and m.cc[7] == Action("gain", "vocals")
    assert load_map(path, SOURCES, channel=3).channel == 2  # --midi-channel wins

    control = MidiController(separator, m)
    control.handle([NOTE_ON, 36, 100])  # channel 1: filtered
    assert control.counters.filtered == 1 and all(separator.heard.values())
    control.handle([NOTE_ON | 9, 36, 100])
    assert separator.heard == {"drums": True, "bass": False, "other": False, "vocals": False}
    control.handle([NOTE_ON | 9, 36, 100])
    assert all(separator.heard.values())
    control.handle([CONTROL_CHANGE | 9, 7, 127])
    assert separator.gains["vocals"] == 2.0
    control.handle([NOTE_ON | 9, 42, 100])
    assert separator.dry_wet == 0.0
    control.handle([NOTE_ON | 9, 42, 100])
    assert separator.dry_wet == 1.0


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("channel = [", "not valid TOML"),
        ("chanel = 2", "unknown key(s) chanel"),
        ("channel = 17", "channel from 1 to 16"),
        ("channel = true", "channel from 1 to 16"),
        ("gain_max = 9.0", "gain_max must be"),
        ("notes = 3", "[notes] must be a table"),
        ('[notes]\nkick = "toggle drums"', "key 'kick' is not a number"),
        ('[notes]\n128 = "toggle drums"', "key '128' is not a number"),
        ('[notes]\n36 = "toggle guitar"', "unknown source 'guitar'"),
        ('[notes]\n36 = "gain drums"', "'gain drums' is not an action"),
        ('[cc]\n20 = "toggle drums"', "'toggle drums' is not an action"),
        ("[cc]\n20 = 5", "must be an action string"),
    ],
)
def test_bad_map_files_are_named_clearly(tmp_path, text, complaint):
    path = tmp_path / "map.toml"
    path.write_text(text)
    with pytest.raises(RtsepError, match=r"MIDI map .*map\.toml") as error:
        load_map(path, SOURCES)
    assert complaint in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_map_file_and_bad_channel(tmp_path):
    with pytest.raises(RtsepError, match="cannot read MIDI map"):
        load_map(tmp_path / "missing.toml", SOURCES)
    with pytest.raises(RtsepError, match="--midi-channel must be a MIDI channel from 1 to 16"):
        load_map(None, SOURCES, channel=0)


def test_unknown_port_lists_the_ports():
    ports = ["Midi Through:0", "nanoKONTROL2:0", "nanoKEY2:0"]
    assert _find_port(ports, "KONTROL") == 1
    assert _find_port(ports, "2") == 2  # an index
    with pytest.raises(RtsepError, match=r"no MIDI input port matches 'x'.*1: nanoKONTROL2:0"):
        _find_port(ports, "x")
    with pytest.raises(RtsepError, match="matches several"):
        _find_port(ports, "nano")


messages = st.one_of(
    st.lists(st.integers(0, 255), max_size=8),
    st.lists(st.integers(-(2**70), 2**70), max_size=4),
    st.lists(st.one_of(st.none(), st.text(max_size=3), st.floats()), max_size=3),
    st.sampled_from([None, 3, "abc", b"\x90", [], [TIMING_CLOCK], {"a": 1}]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(messages, max_size=20))
def test_any_bytes_never_raise(model, batch):
    separator = rtsep.Separator(model)
    controller = MidiController(separator, default_map(separator.sources))
    for message in batch:
        controller((message, 0.0), None)
    c = controller.counters
    assert c.received == len(batch) == c.applied + c.unmapped + c.filtered + c.ignored
    assert all(0.0 <= g <= 1.0 for g in separator.gains.values())
