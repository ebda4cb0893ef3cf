"""How often training excerpts hold a stem at each level against the mixture, beside a split.

Quiet stems score low (``training.breakdown --by level``). This says whether they are also
rare in what training sees: it draws excerpts as ``rtsep train`` does (the same sampler,
augmentation, channels and dense share), bins the stem's energy against the mixture's in
the same 3 dB bins, and puts the tracks of a test split beside them.

Usage: ``python -m training.levels data/synth --source drums --excerpts 400 [--against
data/heldout]``
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from rtsep.contract import SOURCES
from rtsep.errors import RtsepError
from training.breakdown import level, level_bin
from training.data import ExcerptSampler, excerpt_frames, list_tracks, scan


def excerpt_levels(
    root: str | Path,
    source: str,
    count: int,
    dense: float = 0.5,
    channels: int = 2,
    seed: int = 0,
) -> Counter[str]:
    """{level bin: excerpts} over ``count`` augmented 3 s training excerpts of ``root``."""
    sampler = ExcerptSampler(scan(root, "train"), excerpt_frames(3.0), True, seed, channels, dense)
    k = SOURCES.index(source)
    bins: Counter[str] = Counter()
    for i in range(count):
        mix, stems = sampler.sample(i)
        bins[level_bin(stems[:, k], mix)] += 1
    return bins


def track_levels(root: str | Path, split: str, source: str) -> Counter[str]:
    """{level bin: tracks} over a split's whole tracks."""
    return Counter(level(folder, source) for folder in list_tracks(root, split))


def table(excerpts: Counter[str], tracks: Counter[str], source: str, split: str):
    """A rich table: each bin's share of training excerpts and of the split's tracks."""
    from rich.table import Table

    out = Table(title=f"{source} against the mixture: share (count)")
    out.add_column("level")
    out.add_column("training excerpts", justify="right")
    out.add_column(f"{split} tracks", justify="right")

    def low(group: str) -> float:
        return -999.0 if group == "silent" else float(group.split(" to ")[0])

    for group in sorted(set(excerpts) | set(tracks), key=low):
        cells = [
            f"{100 * c[group] / max(1, sum(c.values())):.0f} % ({c[group]})"
            for c in (excerpts, tracks)
        ]
        out.add_row(group, *cells)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.levels", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("root", help="dataset folder (MUSDB18-HQ layout, with a train split)")
    parser.add_argument("--source", choices=SOURCES, default="drums", help="stem to measure")
    parser.add_argument("--excerpts", type=int, default=400, help="training excerpts to draw")
    parser.add_argument("--split", default="test", help="split to put beside them (test)")
    parser.add_argument(
        "--against", metavar="DIR", help="dataset folder of that split (default: root)"
    )
    parser.add_argument("--dense", type=float, default=0.5, help="as rtsep train --dense (0.5)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.excerpts < 1:
            raise RtsepError(f"--excerpts must be at least 1, not {args.excerpts}")
        excerpts = excerpt_levels(args.root, args.source, args.excerpts, args.dense)
        tracks = track_levels(args.against or args.root, args.split, args.source)
    except RtsepError as exc:
        print(f"levels: error: {exc}", file=sys.stderr)
        return 2
    from rich.console import Console

    Console().print(table(excerpts, tracks, args.source, args.split))
    return 0


if __name__ == "__main__":
    sys.exit(main())
