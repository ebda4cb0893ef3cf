"""Ship a training leg: make a run grown from the kept checkpoint the new kept checkpoint.

A leg runs in a folder of its own (``rtsep train --init-from training/checkpoints/rt-stereo
--out runs/legN``), so that the kept checkpoint stays as it was until the leg's scores pass
the ship rule (``python -m training.compare``). Shipping then copies the run's checkpoint,
config, curves, validation history and TensorBoard logs over the kept ones, and its leg log
with the last row annotated (``--note``: the leg's exact command and how it stopped), as
the README's reproduce list cites it. The run must have grown from the kept checkpoint: its
leg log starts with every leg the kept one records. The folder is replaced whole (built
beside it, then renamed), so an error leaves it as it was.

A leg that is not to ship yet (its scores are to be committed before the default changes,
or it is too short to tell and the next leg is to grow from it) is kept instead: ``--keep-as
DIR`` writes the same files, TensorBoard logs and annotated leg log into a new folder ``DIR``,
checked the same way, and leaves the kept checkpoint alone; shipping ``DIR`` later gives the
same result as shipping the run. A run grown from ``DIR`` itself (``--init-from DIR``) is laid
over it with ``--force``, so the TensorBoard logs of every kept leg stay; any other ``DIR`` is
replaced whole.

Usage: ``python -m training.ship runs/legN --into training/checkpoints/rt-stereo --note TEXT
[--keep-as training/checkpoints/rt-stereo-next [--force]]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from rtsep.atomic import temp_dir
from rtsep.errors import RtsepError
from training.train import CHECKPOINT, CONFIG, CURVES, HISTORY, LEGS, read_legs

COPIED = (CHECKPOINT, CONFIG, CURVES, HISTORY)
"""Files of the run that replace the kept ones as they are."""
TENSORBOARD = "tb"


def new_legs(run: Path, kept: Path) -> list[dict]:
    """The run's legs, after checking that they extend the kept checkpoint's by at least one."""
    for folder in (run, kept):
        if not (folder / LEGS).is_file():
            raise RtsepError(f"{folder} has no {LEGS}: pass a folder made by 'rtsep train --out'")
    run_legs, kept_legs = read_legs(run), read_legs(kept)
    if run_legs[: len(kept_legs)] != kept_legs:
        raise RtsepError(
            f"{run} did not grow from {kept}: its {LEGS} does not start with the kept legs "
            f"(train it with --init-from {kept})"
        )
    if len(run_legs) == len(kept_legs):
        raise RtsepError(f"{run} has no leg beyond {kept}'s {len(kept_legs)}: nothing to ship")
    return run_legs


def _staged(run: Path, kept: Path, note: str, beside: Path, base: Path | None) -> tuple[Path, int]:
    """A hidden folder beside ``beside`` holding ``base``'s files (if given) under the run's
    files, TensorBoard logs and noted leg log, and the run's last step."""
    legs = new_legs(run, kept)
    missing = [name for name in COPIED if not (run / name).is_file()]
    if missing:
        raise RtsepError(f"{run} lacks {', '.join(missing)}: is its leg finished?")
    legs[-1] = {**legs[-1], "note": note}
    staged = temp_dir(beside)
    try:
        if base is not None:
            shutil.copytree(base, staged, dirs_exist_ok=True)
        for name in COPIED:
            shutil.copy2(run / name, staged / name)
        if (run / TENSORBOARD).is_dir():
            shutil.copytree(run / TENSORBOARD, staged / TENSORBOARD, dirs_exist_ok=True)
        (staged / LEGS).write_text("".join(json.dumps(leg) + "\n" for leg in legs))
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return staged, int(legs[-1]["to_step"])


def _replace(folder: Path, staged: Path) -> None:
    """Put ``staged`` in ``folder``'s place, removing the old folder only once it is."""
    if not folder.exists():
        staged.rename(folder)
        return
    old = folder.with_name(f".{folder.name}.old")
    folder.rename(old)
    staged.rename(folder)
    shutil.rmtree(old)


def ship(run: Path, kept: Path, note: str) -> int:
    """Replace ``kept`` by ``run`` (see the module docstring); returns the shipped step."""
    staged, step = _staged(run, kept, note, kept, base=kept)
    _replace(kept, staged)
    return step


def _ancestor(folder: Path, run: Path) -> Path | None:
    """``folder`` if ``run`` grew from it (a kept leg the run continues), else None: the run
    then lays its files over it, so the earlier kept legs' TensorBoard logs are not lost."""
    if not (folder / LEGS).is_file():
        return None
    earlier = read_legs(folder)
    return folder if read_legs(run)[: len(earlier)] == earlier else None


def keep(run: Path, kept: Path, note: str, keep_as: Path, force: bool = False) -> int:
    """Write ``run`` as a new folder ``keep_as`` that ships into ``kept`` later; returns its
    step. An existing ``keep_as`` is replaced only with ``force``."""
    if keep_as.resolve() in (run.resolve(), kept.resolve()):
        raise RtsepError(f"--keep-as {keep_as} is the run or the kept folder: name a new one")
    if keep_as.exists() and not force:
        raise RtsepError(f"{keep_as} exists: pass --force to replace it")
    staged, step = _staged(run, kept, note, keep_as, base=_ancestor(keep_as, run))
    _replace(keep_as, staged)
    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.ship", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run", type=Path, help="the leg's output folder (rtsep train --out)")
    parser.add_argument("--into", type=Path, required=True, help="the kept checkpoint folder")
    parser.add_argument("--note", required=True, help="the leg's command and how it stopped")
    parser.add_argument(
        "--keep-as", type=Path, help="keep the run in this new folder instead of shipping it"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing --keep-as")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.force and args.keep_as is None:
        parser.error("--force replaces an existing --keep-as folder: pass --keep-as DIR too")
    try:
        if args.keep_as is None:
            step = ship(args.run, args.into, args.note)
        else:
            step = keep(args.run, args.into, args.note, args.keep_as, args.force)
    except RtsepError as exc:
        print(f"ship: error: {exc}", file=sys.stderr)
        return 2
    if args.keep_as is None:
        print(f"shipped {args.run} (step {step}) into {args.into}")
    else:
        print(f"kept {args.run} (step {step}) as {args.keep_as}, to ship into {args.into}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
