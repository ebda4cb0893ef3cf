"""The ship rule: scores before and after a leg, compared per source and test set."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rtsep import evaluate
from rtsep.contract import SOURCES
from training import compare

SETS = ("synth", "heldout")


def report(test_set: str, sdrs: dict[str, list[float]]) -> dict:
    """A report as ``rtsep eval --json`` writes it: track i scores sdrs[source][i]."""
    count = len(next(iter(sdrs.values())))
    tracks = {
        f"{test_set}_{i:03d}": {
            source: evaluate.SourceScore(values[i], values[i], [values[i]])
            for source, values in sdrs.items()
        }
        for i in range(count)
    }
    return json.loads(json.dumps(evaluate.report("m", tracks, split="test", root=test_set)))


def scores(seed: int, tracks: int = 9) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    return {s: list(rng.normal(3, 2, tracks)) for s in SOURCES}


SHIFTS = st.sampled_from([-0.6, -0.35, -0.25, -0.05, 0.05, 0.3])
"""Per-source changes on both sides of each edge of the rule (0 and -0.3 dB)."""


@settings(max_examples=100, deadline=None)
@given(shifts=st.lists(SHIFTS, min_size=8, max_size=8))
@example(shifts=[0.05] * 6 + [-0.25, -0.05])  # 6 of 8 up: ships
@example(shifts=[0.05] * 5 + [-0.25, -0.05, -0.05])  # 5 of 8: does not
@example(shifts=[0.3] * 7 + [-0.35])  # a median down 0.35 dB: does not
def test_a_leg_ships_when_six_of_eight_means_rise_and_no_median_falls_over_0_3_db(shifts):
    # Shifting every track of a source by d moves its median and its mean by exactly d.
    before, after = [], []
    for k, test_set in enumerate(SETS):
        old = scores(k)
        new = {s: [v + shifts[4 * k + i] for v in old[s]] for i, s in enumerate(SOURCES)}
        before.append(report(test_set, old))
        after.append(report(test_set, new))
    verdict = compare.compare(before, after)
    assert [c.source for c in verdict.changes] == list(SOURCES) * 2
    for change, shift in zip(verdict.changes, shifts):
        assert change.median_change == pytest.approx(shift, abs=1e-9)
        assert change.mean_change == pytest.approx(shift, abs=1e-9)
    assert verdict.ships == (sum(s > 0 for s in shifts) >= 6 and min(shifts) >= -0.3)


def test_the_cli_prints_each_change_and_the_verdict(tmp_path, capsys):
    old = scores(1)
    rises = {s: [v + 0.2 for v in values] for s, values in old.items()}
    drums_fall = {**rises, "drums": [v - 0.4 for v in old["drums"]]}
    paths = {}
    for name, sdrs in (("old", old), ("rises", rises), ("drums_fall", drums_fall)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(report("synth", sdrs)))
    for after, verdict in (
        ("rises", "4 of 4 means up, worst median change +0.20 dB: ships"),
        ("drums_fall", "3 of 4 means up, worst median change -0.40 dB: does not ship"),
    ):
        argv = ["--before", str(paths["old"]), "--after", str(paths[after])]
        assert compare.main(argv) == 0
        out = capsys.readouterr().out
        drums = next(line for line in out.splitlines() if "drums" in line)
        assert f"{np.median(old['drums']):.2f} ({np.mean(old['drums']):.2f})" in drums
        assert verdict in " ".join(out.split())


def test_user_mistakes_give_one_line_and_exit_2(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(report("synth", scores(1))))
    b.write_text(json.dumps(report("heldout", scores(2))))
    cases = [
        (["--before", str(a), "--after", str(b)], "score different tracks"),
        (["--before", str(a), str(a), "--after", str(a)], "2 files before and 1 after"),
        (["--before", str(tmp_path / "none.json"), "--after", str(a)], "cannot read scores"),
    ]
    for argv, message in cases:
        assert compare.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
