"""Does a new checkpoint ship? Its saved scores against the default's, by the ship rule.

A leg ships as the default when, over the test sets (synthetic and held-out: 8 source
scores), at least 6 of 8 per-track means rise and no median falls by more than 0.3 dB. Means
decide because a median over 30-40 tracks moves by more than the tracks do; the median
guard keeps a leg from trading the reported figure away.

Usage: ``python -m training.compare --before OLD_SYNTH.json OLD_HELDOUT.json --after
NEW_SYNTH.json NEW_HELDOUT.json`` (``rtsep eval --json`` files, paired by position).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rtsep.contract import SOURCES
from rtsep.errors import RtsepError
from training.breakdown import load_reports

MEANS_UP_SHARE = 0.75
"""Share of the per-track means that must rise (6 of 8)."""
MEDIAN_FALL_DB = 0.3
"""Largest fall of any median a shipped leg may have."""


@dataclass(frozen=True)
class Change:
    """One source on one test set: (median, mean) before and after, in dB."""

    test_set: str
    source: str
    before: tuple[float, float]
    after: tuple[float, float]

    @property
    def median_change(self) -> float:
        return self.after[0] - self.before[0]

    @property
    def mean_change(self) -> float:
        return self.after[1] - self.before[1]


@dataclass(frozen=True)
class Verdict:
    """The ship rule applied to a list of changes."""

    changes: list[Change]

    @property
    def means_up(self) -> int:
        return sum(c.mean_change > 0 for c in self.changes)

    @property
    def worst_median_change(self) -> float:
        return min(c.median_change for c in self.changes)

    @property
    def ships(self) -> bool:
        return (
            self.means_up >= MEANS_UP_SHARE * len(self.changes)
            and self.worst_median_change >= -MEDIAN_FALL_DB
        )


def single_report(path: str) -> dict[str, Any]:
    """The one report in an ``rtsep eval --json`` file."""
    reports = load_reports(path)
    if len(reports) != 1:
        raise RtsepError(f"{path}: holds {len(reports)} methods; pass one rtsep eval file")
    return next(iter(reports.values()))


def compare(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> Verdict:
    """Pair the reports by position; each pair must score the same tracks of one test set."""
    if len(before) != len(after):
        raise RtsepError(f"{len(before)} files before and {len(after)} after: pair them")
    changes = []
    for old, new in zip(before, after):
        name = str(old.get("root") or old.get("name"))
        if set(old["tracks"]) != set(new["tracks"]):
            raise RtsepError(
                f"{name} and {new.get('root') or new.get('name')} score different tracks: "
                "pass the same test set in the same position"
            )
        for source in SOURCES:
            scores = [report["median"].get(source) for report in (old, new)]
            if None in scores:
                continue
            stats = [(s["sdr"], s["sdr_mean"]) for s in scores]
            if any(math.isnan(v) for pair in stats for v in pair):
                continue
            changes.append(Change(name, source, stats[0], stats[1]))
    if not changes:
        raise RtsepError("no source is scored in both: nothing to compare")
    return Verdict(changes)


def table(verdict: Verdict):
    """A rich table: median (mean) before and after, and the changes."""
    from rich.table import Table

    out = Table(title="median SDR (mean), dB", title_justify="left")
    for column in ("test set", "source", "before", "after", "Δ median", "Δ mean"):
        out.add_column(column, justify="left" if column in ("test set", "source") else "right")
    for c in verdict.changes:
        out.add_row(
            c.test_set,
            c.source,
            f"{c.before[0]:.2f} ({c.before[1]:.2f})",
            f"{c.after[0]:.2f} ({c.after[1]:.2f})",
            f"{c.median_change:+.2f}",
            f"{c.mean_change:+.2f}",
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.compare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--before", nargs="+", required=True, metavar="SCORES.json")
    parser.add_argument("--after", nargs="+", required=True, metavar="SCORES.json")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        verdict = compare(
            [single_report(p) for p in args.before], [single_report(p) for p in args.after]
        )
    except RtsepError as exc:
        print(f"compare: error: {exc}", file=sys.stderr)
        return 2
    from rich.console import Console

    console = Console()
    console.print(table(verdict))
    console.print(
        f"{verdict.means_up} of {len(verdict.changes)} means up, worst median change "
        f"{verdict.worst_median_change:+.2f} dB: "
        + ("ships" if verdict.ships else "does not ship")
        + f" (rule: at least {MEANS_UP_SHARE:.0%} of the means up, no median down by more "
        f"than {MEDIAN_FALL_DB} dB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
