"""Scores by what rendered a track: which drum kits, instruments or styles a model fails on.

Reads saved scores (``rtsep eval --json``, ``python -m training.baselines --json``) and the
``meta.json`` that ``training.synth`` writes beside each track, groups the tracks by one fact of
it (the library or GM programs that rendered the stem, or the song's style) or by the stem's
level against the mixture (``--by level``, from the audio: any MUSDB18-HQ-layout folder), and
prints the stem's median SDR per group and per estimate. A median over a whole test set hides
where a model fails; on the held-out set the drums fail by kit, and on every set a quiet stem
scores lower.

Usage: ``python -m training.breakdown SCORES.json [SCORES.json ...] --source drums --by library``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rtsep.contract import SOURCES
from rtsep.errors import RtsepError
from rtsep.evaluate import nanmedian, read_track

ALL = "all tracks"
LEVEL = "level"
"""The ``--by`` value that groups by the stem's level against the mixture, not by meta.json."""
LEVEL_STEP_DB = 3


def level(folder: Path, source: str) -> str:
    """The stem's energy against the mixture's over the whole track, as its LEVEL_STEP_DB bin
    (e.g. "-9 to -6 dB")."""
    track = read_track(folder, [source])
    return level_bin(track.stems[source], track.mixture)


def level_bin(stem: np.ndarray, mixture: np.ndarray) -> str:
    """``stem``'s energy against ``mixture``'s as its LEVEL_STEP_DB bin, or "silent"."""
    s, m = (float(np.sum(np.square(x, dtype=np.float64))) for x in (stem, mixture))
    if s == 0.0 or m == 0.0:
        return "silent"
    low = math.floor(10 * math.log10(s / m) / LEVEL_STEP_DB) * LEVEL_STEP_DB
    return f"{low:+d} to {low + LEVEL_STEP_DB:+d} dB"


def load_reports(path: str | Path) -> dict[str, dict[str, Any]]:
    """{estimate name: report} from one scores file: one report from ``rtsep eval``, one per
    method from ``training.baselines``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RtsepError(f"{path}: cannot read scores ({exc})") from exc
    if "methods" in data:
        return dict(data["methods"])
    if "tracks" in data:
        return {data.get("name") or Path(path).stem: data}
    raise RtsepError(f"{path}: not a scores file of rtsep eval or training.baselines")


def fact(folder: Path, source: str, by: str) -> str:
    """The value of ``by`` for ``source`` in the track at ``folder`` (its stem's entry in
    meta.json first, then the song's), as text: a list's items joined with "+"."""
    meta = folder / "meta.json"
    try:
        song = json.loads(meta.read_text())
    except (OSError, ValueError) as exc:
        raise RtsepError(
            f"{meta}: cannot read it; the breakdown needs tracks rendered by training.synth"
        ) from exc
    stem = song.get("stems", {}).get(source, {})
    value = stem[by] if by in stem else song.get(by)
    if value is None:
        raise RtsepError(f"{meta}: no {by!r} recorded for {source} or the song")
    return "+".join(map(str, value)) if isinstance(value, list) else str(value)


def breakdown(
    reports: Mapping[str, Mapping[str, Any]],
    source: str,
    by: str = "library",
    root: str | Path | None = None,
) -> dict[str, dict[str, tuple[float, int]]]:
    """{group: {estimate: (median SDR of ``source``, tracks)}} by ``by``, plus an ALL row.

    The tracks are found under each report's own root and split unless ``root`` is given.
    Tracks without a score for ``source`` (silent there) are left out, as museval leaves them.
    """
    read = level if by == LEVEL else partial(fact, by=by)
    groups: dict[str, dict[str, list[float]]] = {}
    facts: dict[Path, str] = {}  # meta.json read once per track, however many estimates
    for name, report in reports.items():
        folder = Path(root if root is not None else report["root"]) / report["split"]
        for track, scores in report["tracks"].items():
            sdr = (scores.get(source) or {}).get("sdr")
            if sdr is None:
                continue
            if folder / track not in facts:
                facts[folder / track] = read(folder / track, source)
            for group in (facts[folder / track], ALL):
                groups.setdefault(group, {}).setdefault(name, []).append(float(sdr))
    return {
        group: {name: (nanmedian(values), len(values)) for name, values in by_name.items()}
        for group, by_name in groups.items()
    }


def table(
    rows: Mapping[str, Mapping[str, tuple[float, int]]], names: list[str], source: str, by: str
):
    """A rich table, one row per group (worst first for the first estimate), ALL last."""
    from rich.table import Table

    out = Table(title=f"{source}: median SDR in dB (tracks)")
    out.add_column(by)
    for name in names:
        out.add_column(name, justify="right")

    def key(group: str) -> float:
        first = rows[group].get(names[0])
        return first[0] if first else float("inf")

    groups = sorted((g for g in rows if g != ALL), key=key)
    for group in [*groups, ALL] if ALL in rows else groups:
        cells = [rows[group].get(name) for name in names]
        out.add_row(group, *(f"{c[0]:.2f} ({c[1]})" if c else "-" for c in cells))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.breakdown", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("scores", nargs="+", metavar="SCORES.json", help="saved scores")
    parser.add_argument("--source", choices=SOURCES, default="drums", help="stem to break down")
    parser.add_argument(
        "--by",
        default="library",
        help="meta.json field to group by: library, programs, style, ...; or level: the "
        "stem's level against the mixture in 3 dB bins (default library)",
    )
    parser.add_argument("--root", help="dataset folder (default: the one each file records)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        reports: dict[str, dict[str, Any]] = {}
        for path in args.scores:
            for name, report in load_reports(path).items():
                reports[name if name not in reports else f"{name} ({path})"] = report
        rows = breakdown(reports, args.source, args.by, args.root)
    except RtsepError as exc:
        print(f"breakdown: error: {exc}", file=sys.stderr)
        return 2
    from rich.console import Console

    Console().print(table(rows, list(reports), args.source, args.by))
    return 0


if __name__ == "__main__":
    sys.exit(main())
