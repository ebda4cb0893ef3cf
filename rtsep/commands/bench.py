"""``rtsep bench``: measure latency on this machine and write a shareable report.

Writes ``report.md`` (the table, also printed), ``latency.png`` (per-call histograms with
the budget marked) and ``report.json`` (raw per-call timings and the machine) into a new
folder, made in a temporary sibling and renamed, so that a failed run leaves nothing.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from rtsep import atomic
from rtsep.contract import SAMPLE_RATE
from rtsep.errors import RtsepError

DEFAULT_BLOCKSIZES = "64,128,256,512,1024"
MAX_BLOCK = 16384
FILES = ("report.md", "latency.png", "report.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="DIR", help="model folder (default: the bundled model)")
    parser.add_argument(
        "--provider",
        default="cpu",
        help="onnxruntime provider: cpu (default, as rtsep live), cuda or auto",
    )
    parser.add_argument(
        "--blocksizes",
        default=DEFAULT_BLOCKSIZES,
        help=f"host block sizes in frames, comma-separated (default {DEFAULT_BLOCKSIZES})",
    )
    parser.add_argument(
        "--samplerate",
        type=int,
        default=SAMPLE_RATE,
        metavar="HZ",
        help=f"stream rate of the process rows (default {SAMPLE_RATE}, the model's; other "
        "rates are resampled to it and back in each call, as rtsep live does)",
    )
    parser.add_argument(
        "--seconds", type=str, default="3", help="measuring time per block size (default 3)"
    )
    parser.add_argument(
        "--out", metavar="DIR", help="report folder to create (default ./rtsep-bench-<date>)"
    )
    parser.add_argument(
        "--force", action="store_true", help="write into --out even if it exists (replaces files)"
    )


def parse_blocksizes(text: str) -> list[int]:
    """``"64,128"`` → ``[64, 128]``; anything else is a user error naming the bad part."""
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= MAX_BLOCK:
            raise RtsepError(
                f"--blocksizes: {part!r} is not a block size; give whole numbers of frames from "
                f"1 to {MAX_BLOCK}, comma-separated, e.g. {DEFAULT_BLOCKSIZES}"
            )
        if int(part) not in sizes:
            sizes.append(int(part))
    return sizes


def parse_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0.05 <= seconds <= 3600:
        raise RtsepError(f"--seconds: {text!r} is not a time from 0.05 to 3600 seconds")
    return seconds


def run(args: argparse.Namespace) -> int:
    from rtsep.resample import check_rate

    blocksizes = parse_blocksizes(args.blocksizes)
    seconds = parse_seconds(args.seconds)
    check_rate(args.samplerate, SAMPLE_RATE)
    out = Path(args.out or time.strftime("rtsep-bench-%Y%m%d-%H%M%S"))
    if out.exists() and not out.is_dir():
        raise RtsepError(f"--out {out} is an existing file: choose a folder name that is free")
    if out.exists() and not args.force:
        raise RtsepError(
            f"--out {out} already exists: choose a new folder, or pass --force to replace "
            "the report files in it"
        )
    if not out.parent.is_dir():
        raise RtsepError(f"--out {out}: the folder {out.parent} does not exist")

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from rtsep import bench
    from rtsep.model import load_model

    model = load_model(args.model, args.provider)
    console = Console(stderr=True)
    console.print(
        f"rtsep bench: model [bold]{model.name}[/] ({model.path}), provider "
        f"[bold]{model.provider}[/], blocks {blocksizes} at {args.samplerate} Hz, "
        f"{seconds:g} s each"
    )
    stages = len(blocksizes) + 2  # the block sizes, the bare step call, offline
    with Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        TimeRemainingColumn(),
        console=console,
        auto_refresh=False,  # no drawing thread competing with the timed calls
        transient=True,
    ) as bar:
        task = bar.add_task("measuring", total=stages * seconds)
        done: dict[str, float] = {}

        def progress(stage: str, elapsed: float) -> None:
            done[stage] = min(elapsed, seconds)
            bar.update(task, completed=sum(done.values()), description=stage)
            bar.refresh()

        report = bench.run_report(model, blocksizes, seconds, progress, args.samplerate)
    report["command"] = _command(args, blocksizes, seconds)
    text = bench.markdown(report)
    _write(out, report, text)
    print(text)
    print(f"report written to {out}/ ({', '.join(FILES)})")
    return 0


def _write(out: Path, report: dict, text: str) -> None:
    """Write the three files into a temporary sibling, then move them into place."""
    from rtsep import bench

    tmp = atomic.temp_dir(out)
    try:
        (tmp / "report.md").write_text(text)
        bench.histogram(report, tmp / "latency.png")
        bench.write_json(report, tmp / "report.json")
        if out.exists():  # --force: replace our files only, each by an atomic rename
            for name in FILES:
                (tmp / name).replace(out / name)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _command(args: argparse.Namespace, blocksizes: list[int], seconds: float) -> str:
    """The command line that reproduces this report (the output folder left out)."""
    model = f" --model {args.model}" if args.model else ""
    sizes = ",".join(str(b) for b in blocksizes)
    rate = f" --samplerate {args.samplerate}" if args.samplerate != SAMPLE_RATE else ""
    return (
        f"rtsep bench{model}"
        + f" --provider {args.provider} --blocksizes {sizes}{rate} --seconds {seconds:g}"
    )
