"""Shipping a leg: the run replaces the kept checkpoint only if it grew from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtsep.errors import RtsepError
from training import ship
from training.train import LEGS


def training_folder(path: Path, legs: list[dict], tag: str, event: str) -> Path:
    """A folder laid out as 'rtsep train --out' leaves it, each file's text naming ``tag``."""
    (path / "tb").mkdir(parents=True)
    for name in ship.COPIED:
        (path / name).write_text(f"{name} of {tag}")
    (path / "tb" / event).write_text(f"events of {tag}")
    (path / LEGS).write_text("".join(json.dumps(leg) + "\n" for leg in legs))
    return path


def leg(to_step: int) -> dict:
    return {"to_step": to_step, "lr": 2e-4, "note": f"leg to {to_step}"}


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def kept(tmp_path: Path) -> Path:
    return training_folder(tmp_path / "kept", [leg(100), leg(200)], "kept", "e1")


def test_a_grown_run_replaces_the_kept_checkpoint_and_notes_its_leg(tmp_path, kept):
    new_leg = {"to_step": 300, "lr": 2e-4}
    run = training_folder(tmp_path / "run", [leg(100), leg(200), new_leg], "run", "e2")

    assert ship.main([str(run), "--into", str(kept), "--note", "leg 3: the command"]) == 0

    for name in ship.COPIED:
        assert (kept / name).read_text() == f"{name} of run"
    assert (kept / "tb" / "e1").read_text() == "events of kept"  # earlier legs' logs stay
    assert (kept / "tb" / "e2").read_text() == "events of run"
    rows = [json.loads(line) for line in (kept / LEGS).read_text().splitlines()]
    assert rows == [leg(100), leg(200), {**new_leg, "note": "leg 3: the command"}]
    assert sorted(p.name for p in kept.parent.iterdir()) == ["kept", "run"]  # no leftovers


@pytest.mark.parametrize(
    ("run_legs", "message"),
    [
        ([leg(100), leg(250), leg(300)], "did not grow from"),  # a branch of an older leg
        ([leg(100), leg(200)], "no leg beyond"),  # nothing new
    ],
)
def test_a_run_that_does_not_extend_the_kept_legs_is_refused_and_nothing_changes(
    tmp_path, kept, run_legs, message, capsys
):
    run = training_folder(tmp_path / "run", run_legs, "run", "e2")
    before = snapshot(kept)
    with pytest.raises(RtsepError, match=message):
        ship.ship(run, kept, "note")
    assert ship.main([str(run), "--into", str(kept), "--note", "n"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ship: error: ") and err.count("\n") == 1
    assert snapshot(kept) == before


def test_an_unfinished_run_is_refused_and_nothing_changes(tmp_path, kept):
    run = training_folder(tmp_path / "run", [leg(100), leg(200), leg(300)], "run", "e2")
    (run / "checkpoint.npz").unlink()
    before = snapshot(kept)
    with pytest.raises(RtsepError, match=r"lacks checkpoint\.npz"):
        ship.ship(run, kept, "note")
    assert snapshot(kept) == before
    assert sorted(p.name for p in kept.parent.iterdir()) == ["kept", "run"]


def test_a_kept_run_leaves_the_default_alone_and_ships_later_as_the_run_would(tmp_path, kept):
    run = training_folder(tmp_path / "run", [leg(100), leg(200), leg(300)], "run", "e2")
    twin = training_folder(tmp_path / "twin" / "kept", [leg(100), leg(200)], "kept", "e1")
    before = snapshot(kept)
    next_ = tmp_path / "next"

    argv = [str(run), "--into", str(kept), "--note", "leg 3", "--keep-as", str(next_)]
    assert ship.main(argv) == 0

    assert snapshot(kept) == before
    assert (next_ / "tb" / "e2").read_text() == "events of run"  # the logs travel with it
    ship.ship(next_, kept, "leg 3: shipped")
    ship.ship(run, twin, "leg 3: shipped")
    assert snapshot(kept) == snapshot(twin)


def test_keeping_over_an_existing_folder_needs_force(tmp_path, kept, capsys):
    run = training_folder(tmp_path / "run", [leg(100), leg(200), leg(300)], "run", "e2")
    older = training_folder(tmp_path / "next", [leg(100), leg(200), leg(250)], "older", "e3")
    before = snapshot(older)
    argv = [str(run), "--into", str(kept), "--note", "n", "--keep-as", str(older)]

    assert ship.main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert snapshot(older) == before

    assert ship.main([*argv, "--force"]) == 0
    assert (older / "checkpoint.npz").read_text() == "checkpoint.npz of run"
    assert not (older / "tb" / "e3").exists()  # replaced whole, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "next", "run"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--keep-as", "KEPT"], "is the run or the kept folder"),  # not 'pass --force'
        (["--force"], "pass --keep-as DIR too"),  # --force alone would be silently ignored
    ],
)
def test_keep_options_that_cannot_mean_anything_are_refused(tmp_path, kept, extra, message, capsys):
    run = training_folder(tmp_path / "run", [leg(100), leg(200), leg(300)], "run", "e2")
    before = snapshot(kept)
    argv = [str(run), "--into", str(kept), "--note", "n"] + [
        str(kept) if a == "KEPT" else a for a in extra
    ]
    try:
        code = ship.main(argv)
    except SystemExit as exc:  # argparse's usage error
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert snapshot(kept) == before


def test_a_run_grown_from_the_kept_as_folder_keeps_its_earlier_legs_logs(tmp_path, kept):
    next_ = training_folder(tmp_path / "next", [leg(100), leg(200), leg(300)], "next", "e2")
    run = training_folder(tmp_path / "run", [leg(100), leg(200), leg(300), leg(400)], "run", "e3")

    ship.keep(run, kept, "leg 4", next_, force=True)

    assert (next_ / "checkpoint.npz").read_text() == "checkpoint.npz of run"
    assert (next_ / "tb" / "e2").read_text() == "events of next"  # leg 3's logs stay
    assert (next_ / "tb" / "e3").read_text() == "events of run"
    ship.ship(next_, kept, "legs 3+4")
    assert sorted(p.name for p in (kept / "tb").iterdir()) == ["e1", "e2", "e3"]
