"""Scores broken down by what rendered each track: grouping, medians, and user errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsep import evaluate
from rtsep.contract import SOURCES
from training import breakdown

KITS = ("kitA", "kitB", "kitC")


def dataset(root: Path, kits: list[str]) -> list[str]:
    """Track folders with a generator-like meta.json each (no audio: scores are given)."""
    names = []
    for i, kit in enumerate(kits):
        folder = root / "test" / f"t{i:03d}"
        folder.mkdir(parents=True)
        stems = {s: {"library": "sf.sf2", "programs": [i % 2, 7]} for s in SOURCES}
        stems["drums"] = {"library": kit}
        meta = {"style": "rock" if i % 2 else "funk", "stems": stems}
        (folder / "meta.json").write_text(json.dumps(meta))
        names.append(folder.name)
    return names


def scores_file(path: Path, root: Path, name: str, sdrs: dict[str, float | None]) -> None:
    """A scores file as ``rtsep eval --json`` writes it (None: a source silent in the track)."""
    nan = float("nan")
    tracks = {
        track: {
            s: evaluate.SourceScore(nan if sdr is None else sdr, nan, [sdr])
            for s in ("drums", "bass")
        }
        for track, sdr in sdrs.items()
    }
    evaluate.write_json(path, evaluate.report(name, tracks, split="test", root=str(root)))


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(KITS),
            st.one_of(st.none(), st.floats(-30, 30, allow_nan=False)),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_each_group_is_the_median_of_its_scored_tracks(tmp_path_factory, rows):
    root = tmp_path_factory.mktemp("set")
    names = dataset(root, [kit for kit, _ in rows])
    scores_file(root / "m.json", root, "model", dict(zip(names, [s for _, s in rows])))
    table = breakdown.breakdown(breakdown.load_reports(root / "m.json"), "drums")
    scored = [(kit, s) for kit, s in rows if s is not None]
    expected = {kit: [s for k, s in scored if k == kit] for kit, _ in scored}
    if scored:
        expected[breakdown.ALL] = [s for _, s in scored]
    assert set(table) == set(expected)
    for group, values in expected.items():
        median, count = table[group]["model"]
        assert count == len(values)
        assert math.isclose(median, float(np.median(values)), abs_tol=1e-9)


def test_groups_by_a_stem_field_or_a_song_field(tmp_path):
    names = dataset(tmp_path, ["kitA", "kitB", "kitA"])
    scores_file(tmp_path / "m.json", tmp_path, "m", dict(zip(names, [1.0, 2.0, 4.0])))
    reports = breakdown.load_reports(tmp_path / "m.json")
    by_program = breakdown.breakdown(reports, "bass", by="programs")
    assert by_program["0+7"]["m"] == (2.5, 2) and by_program["1+7"]["m"] == (2.0, 1)
    by_style = breakdown.breakdown(reports, "drums", by="style")
    assert by_style["funk"]["m"] == (2.5, 2) and by_style["rock"]["m"] == (2.0, 1)


@settings(max_examples=15, deadline=None)
@given(
    levels=st.lists(
        st.floats(-30, 10).filter(lambda r: abs(r / 3 - round(r / 3)) > 1e-3),
        min_size=1,
        max_size=5,
    )
)
def test_by_level_puts_each_track_in_the_bin_of_its_stems_level(tmp_path_factory, levels):
    """--by level reads the audio: a drums stem r dB under the mixture lands in [low, low+3)."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("set")
    names = dataset(root, ["kitA"] * len(levels))
    drums = (0.1 * np.random.default_rng(0).standard_normal((4410, 2))).astype(np.float32)
    for name, r in zip(names, levels):
        sf.write(root / "test" / name / "drums.wav", drums, 44100, subtype="FLOAT")
        mixture = drums * np.float32(10 ** (-r / 20))
        sf.write(root / "test" / name / "mixture.wav", mixture, 44100, subtype="FLOAT")
    sdrs = [float(i) for i in range(len(levels))]
    scores_file(root / "m.json", root, "m", dict(zip(names, sdrs)))
    table = breakdown.breakdown(breakdown.load_reports(root / "m.json"), "drums", by="level")
    for r in levels:
        group = next(g for g in table if g != breakdown.ALL and _within(g, r))
        members = [s for q, s in zip(levels, sdrs) if _within(group, q)]
        assert table[group]["m"] == (float(np.median(members)), len(members))
    assert sum(n for g, row in table.items() if g != breakdown.ALL for _, n in row.values()) == len(
        levels
    )


def _within(group: str, r: float) -> bool:
    low, high = (float(x) for x in group.removesuffix(" dB").split(" to "))
    return high - low == breakdown.LEVEL_STEP_DB and low <= r < high


def test_baseline_files_give_one_estimate_per_method_and_the_table_lists_them(tmp_path, capsys):
    names = dataset(tmp_path, ["kitA", "kitB"])
    scores_file(tmp_path / "m.json", tmp_path, "model", dict(zip(names, [1.0, 5.0])))
    methods = {
        m: evaluate.report(
            m,
            {t: {"drums": evaluate.SourceScore(v, v, [v])} for t, v in zip(names, values)},
            split="test",
            root=str(tmp_path),
        )
        for m, values in {"hpss": [3.0, 2.0], "mix4": [0.5, 0.25]}.items()
    }
    evaluate.write_json(tmp_path / "b.json", {"command": "x", "methods": methods})
    assert breakdown.main([str(tmp_path / "m.json"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert lines["kitA"].split("│")[2:5] == [" 1.00 (1) ", " 3.00 (1) ", " 0.50 (1) "]
    assert out.index("kitA") < out.index("kitB") < out.index(breakdown.ALL)  # worst first


def test_user_mistakes_give_one_line_and_exit_2(tmp_path, capsys):
    names = dataset(tmp_path, ["kitA"])
    scores_file(tmp_path / "m.json", tmp_path, "m", {names[0]: 1.0})
    (tmp_path / "other.json").write_text('{"hello": 1}')
    cases = [
        ([str(tmp_path / "missing.json")], "cannot read scores"),
        ([str(tmp_path / "other.json")], "not a scores file"),
        ([str(tmp_path / "m.json"), "--by", "tempo"], "no 'tempo' recorded"),
        ([str(tmp_path / "m.json"), "--by", "level"], "mixture.wav: missing"),
        ([str(tmp_path / "m.json"), "--root", str(tmp_path / "nowhere")], "cannot read it"),
    ]
    for argv, message in cases:
        assert breakdown.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_two_files_of_one_model_name_get_a_column_each(tmp_path, capsys):
    names = dataset(tmp_path, ["kitA"])
    scores_file(tmp_path / "a.json", tmp_path, "rt-default", {names[0]: 1.0})
    scores_file(tmp_path / "b.json", tmp_path, "rt-default", {names[0]: 2.0})
    assert breakdown.main([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "kitA" in line)
    assert [cell.strip() for cell in row.split("│")[2:4]] == ["1.00 (1)", "2.00 (1)"]
