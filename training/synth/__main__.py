"""CLI: ``python -m training.synth --out DIR --tracks N --seconds S --seed K --split train``.

--varied-drums gives the train split procedural and re-voiced drum kits (``render.render_song``);
--hand-percussion P gives a share P of its songs hand percussion in the drums (congas, bongos,
shakers, bells; ``music.add_hand_percussion``); --sung-leads P gives a share P of its leads a
singer's vibrato, scoops, glides and swells (``music.sing``); --voiced-leads P gives a share
P of its leads a singer's formants, a vowel per note (``voice``). Valid and test splits always stay
as they are. Tracks render in parallel processes (--jobs); each is written to a temp folder and
renamed, and tracks already present are skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from rich.progress import Progress

from rtsep.errors import RtsepError
from training.synth.render import make_track


def generate(
    out: Path,
    tracks: int,
    seconds: float,
    seed: int,
    split: str,
    libraries: str = "train",
    jobs: int = 2,
    progress: bool = True,
    varied_drums: bool = False,
    hand_percussion: float = 0.0,
    sung_leads: float = 0.0,
    voiced_leads: float = 0.0,
) -> list[Path]:
    """Render `tracks` tracks into out/split/; returns their folders in index order."""
    folder = out / split
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{libraries}_s{seed}_{i:04d}" for i in range(tracks)]
    train = split == "train" and libraries == "train"
    varied = varied_drums and train
    shares = (hand_percussion, sung_leads, voiced_leads) if train else (0.0, 0.0, 0.0)
    args = [(folder, n, seconds, seed, i, libraries, varied, *shares) for i, n in enumerate(names)]
    if jobs <= 1:
        return [make_track(*a) for a in args]
    with ProcessPoolExecutor(jobs) as pool, Progress(disable=not progress) as bar:
        task = bar.add_task(f"rendering {split}", total=tracks)
        futures = [pool.submit(make_track, *a) for a in args]
        for f in as_completed(futures):
            f.result()
            bar.advance(task)
    return [folder / n for n in names]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.synth", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="dataset root (gets <split>/<track>/)")
    p.add_argument("--tracks", type=int, default=10)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=("train", "valid", "test"), default="train")
    p.add_argument(
        "--libraries",
        choices=("train", "heldout"),
        default="train",
        help="train: the allowed sound libraries; heldout: only libraries kept out",
    )
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--varied-drums",
        action="store_true",
        help="train split: a third procedural kits, a third re-voiced Hydrogen kits (not a gain "
        "on held-out drums in the one measured run, see training/comparisons)",
    )
    p.add_argument(
        "--hand-percussion",
        type=float,
        default=0.0,
        metavar="P",
        help="train split: the share of songs whose drums get hand percussion, layered or "
        "alone (default 0)",
    )
    p.add_argument(
        "--sung-leads",
        type=float,
        default=0.0,
        metavar="P",
        help="train split: the share of songs whose lead gets vibrato, scoops, glides and swells "
        "(default 0)",
    )
    p.add_argument(
        "--voiced-leads",
        type=float,
        default=0.0,
        metavar="P",
        help="train split: the share of songs whose lead goes through a singer's formants, a "
        "vowel per note (default 0)",
    )
    args = p.parse_args(argv)
    for flag in ("hand_percussion", "sung_leads", "voiced_leads"):
        if not 0.0 <= getattr(args, flag) <= 1.0:
            p.error(f"--{flag.replace('_', '-')} must be a share between 0 and 1")
    try:
        generate(
            args.out,
            args.tracks,
            args.seconds,
            args.seed,
            args.split,
            args.libraries,
            args.jobs,
            varied_drums=args.varied_drums,
            hand_percussion=args.hand_percussion,
            sung_leads=args.sung_leads,
            voiced_leads=args.voiced_leads,
        )
    except RtsepError as e:
        print(f"rtsep: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
