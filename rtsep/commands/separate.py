"""``rtsep separate``: audio files in, one file per source (or a chosen mix) out.

Each input is streamed (flat memory for any length) and written to
``OUTDIR/<input stem>/<source>.<format>`` at the input's sample rate, channel count and exact
length, sample-aligned with it. A bad input is reported in one line and the others still run.
Jobs are threads: onnxruntime, soundfile and soxr release the GIL, and threads share one
progress display and one Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING

from rtsep.errors import RtsepError

if TYPE_CHECKING:
    from rich.console import Console

    from rtsep.files import Output, Result, Track
    from rtsep.model import Model

PROVIDERS = ("auto", "cpu", "cuda")
FORMAT_NAMES = ("wav", "flac", "ogg")


EPILOG = """\
Each output has the input's sample rate, channel count and length, and is sample-aligned with
it. The written sources sum to the input (to 1e-4 in wav; within 2^-24 per source in flac,
unless a source clips). At rates other than 44.1 kHz the audio goes through soxr to 44.1 kHz and
back; what that round trip drops (above 20 kHz, or the top edge of a lower rate's band) is spread
evenly over the sources so that they still sum to the input. Outputs appear only when a file is
complete: an error or Ctrl-C leaves none behind. Exit status: 0 if every input was separated, 2 if
any failed (one line each), 130 when interrupted.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="audio files, any format libsndfile reads (wav, flac, ogg, mp3, aiff, ...), "
        "any sample rate, mono or stereo",
    )
    parser.add_argument(
        "-o",
        "--outdir",
        type=Path,
        default=Path("separated"),
        help="where OUTDIR/<input name>/<source>.<format> go (default: ./separated)",
    )
    parser.add_argument(
        "--sources",
        metavar="NAME,...",
        help="write only these sources (default: all; with --mix or --without: none)",
    )
    mix = parser.add_mutually_exclusive_group()
    mix.add_argument(
        "--mix",
        metavar="NAME=GAIN,...",
        help="write one file mixing the sources with these linear gains (sources not named "
        "keep gain 1), e.g. --mix vocals=0.3 writes mix-vocals0.3.<format>",
    )
    mix.add_argument(
        "--without",
        metavar="NAME,...",
        help="write one file with every source but these, for practising along, e.g. "
        "--without drums writes mix-without-drums.<format> (the same as --mix drums=0)",
    )
    parser.add_argument("--model", type=Path, help="model folder (default: the bundled model)")
    parser.add_argument("--provider", choices=PROVIDERS, default="auto", help="default: auto")
    parser.add_argument(
        "--format",
        choices=FORMAT_NAMES,
        default="wav",
        help="wav (32-bit float, exact; default), flac (24-bit), ogg (Vorbis, lossy)",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        help="files separated at once, one thread each (default: 1)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from rtsep import files
    from rtsep.model import load_model

    if args.jobs < 1:
        raise RtsepError(f"--jobs must be at least 1, not {args.jobs}")
    model = load_model(args.model, args.provider)
    outputs = _outputs(args, model.sources)
    tracks = files.plan(args.inputs, args.outdir, outputs, args.format)
    console = Console(stderr=True)
    failed = 0
    claimed: dict[Path, Path] = {}
    todo: list[Track] = []
    for track in tracks:
        first = claimed.setdefault(track.folder.resolve(), track.input)
        if first != track.input:
            _error(
                console,
                f"{track.input}: writes to {track.folder}, as {first} does: "
                "rename one of them or separate them in two runs",
            )
            failed += 1
        else:
            todo.append(track)
    jobs = min(args.jobs, max(1, len(todo)))
    failed += _run_all(todo, model, outputs, args, jobs, console)
    return 2 if failed else 0


def _outputs(args: argparse.Namespace, sources: tuple[str, ...]) -> list[Output]:
    """The outputs asked for: the sources (all by default), plus the mix if any."""
    from rtsep import files

    mix = None
    if args.mix is not None:
        mix = files.parse_mix(args.mix, sources)
    elif args.without is not None:
        mix = files.parse_without(args.without, sources)
    if args.sources is not None:
        names = files.parse_sources(args.sources, sources)
    else:
        names = [] if mix is not None else list(sources)
    outputs = files.source_outputs(names, sources)
    return [*outputs, mix] if mix is not None else outputs


def _run_all(
    tracks: list[Track],
    model: Model,
    outputs: list[Output],
    args: argparse.Namespace,
    jobs: int,
    console: Console,
) -> int:
    """Separate every track with ``jobs`` threads; return how many failed.

    Ctrl-C and SIGTERM set a cancel flag: each job removes its temporary files at its next
    block, and the command then exits with KeyboardInterrupt (status 130). Both handlers are
    installed here, since a shell starts background jobs with SIGINT ignored, and ``kill -INT``
    must still stop the run cleanly.
    """
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from rtsep import files

    cancel = threading.Event()
    failed = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    )
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Progress(*columns, console=console) as progress, ThreadPoolExecutor(jobs) as pool:

            def job(track: Track) -> Result:
                task = progress.add_task(track.input.name, total=None, visible=False)

                def start(frames: int) -> None:
                    progress.update(task, total=frames, visible=True)

                def advance(frames: int) -> None:
                    progress.advance(task, frames)

                try:
                    return files.separate_file(
                        track,
                        model,
                        outputs,
                        args.format,
                        force=args.force,
                        on_start=start,
                        on_progress=advance,
                        cancel=cancel,
                    )
                finally:
                    progress.remove_task(task)  # its summary line replaces it

            futures: list[Future[Result]] = []
            try:
                for track in tracks:
                    futures.append(pool.submit(job, track))
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.2)
                    for future in done:
                        failed += _report(future, console)
            except KeyboardInterrupt:
                cancel.set()
                for future in futures:
                    future.cancel()
                wait(futures)
                raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return failed


def _report(future: Future[Result], console: Console) -> int:
    """Print one line for a finished track; return 1 if it failed."""
    from rtsep import files

    try:
        result = future.result()
    except RtsepError as exc:
        _error(console, str(exc))
        return 1
    except files.Cancelled:
        return 1
    for warning in result.warnings:
        console.print(f"rtsep: warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    names = ", ".join(result.track.paths)
    print(
        f"{result.track.input} -> {result.track.folder}{os.sep} ({names}): "
        f"{result.frames / result.sample_rate:.1f} s in {result.seconds:.1f} s, "
        f"{result.realtime:.1f}x real time",
        flush=True,
    )
    return 0


def _error(console: Console, message: str) -> None:
    console.print(f"rtsep: error: {message}", markup=False, highlight=False, soft_wrap=True)


def _interrupt(signum: int, frame: object) -> None:
    """SIGINT and SIGTERM stop the run as Ctrl-C does: clean up, then exit."""
    raise KeyboardInterrupt
