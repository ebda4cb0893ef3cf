"""``rtsep live``: separate an audio input, or play a file, in real time, MIDI-controlled.

The stream runs until --duration, the end of --file, Ctrl-C, or a device failure; the
recording (--record) is finished in every case. A status line shows the sources, their
meters, the callback load, xruns, deadline misses and the latency; a plain report follows.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rtsep.errors import RtsepError

EPILOG = """\
MIDI default map: notes 36-39 toggle drums, bass, other, vocals; note 40 turns all on;
CC 20-23 set their gains (value/127, linear); CC 24 sets dry/wet. A --midi-map file
(TOML) changes any of it, e.g.:
  channel = 10          # 1-16
  gain_max = 2.0        # gain at CC value 127
  [notes]
  41 = "solo vocals"    # toggle SRC | solo SRC | all on | bypass | none
  [cc]
  7 = "gain vocals"     # gain SRC | dry-wet | none
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--device",
        metavar="IN[,OUT]",
        help="audio device(s): index or part of a name "
        "(see rtsep devices; default: the system default)",
    )
    parser.add_argument(
        "--samplerate",
        type=int,
        metavar="HZ",
        help="stream rate (default: 44100, the model's, where the device takes it, else the "
        "device's own); other rates are resampled on the way, which adds about 3 ms of latency",
    )
    parser.add_argument(
        "--blocksize",
        type=_block,
        metavar="N",
        default=128,
        help="frames per callback; 0 lets the host choose (default 128)",
    )
    parser.add_argument(
        "--channels", type=int, metavar="N", help="1 or 2 (default: 2 if the device has them)"
    )
    parser.add_argument(
        "--sources", metavar="S1,S2", help="only these sources are on at the start (default: all)"
    )
    parser.add_argument("--model", metavar="DIR", help="model folder (default: the bundled model)")
    parser.add_argument(
        "--provider",
        default="cpu",
        help="onnxruntime provider: cpu (default), cuda or auto; cuda pays where one CPU core "
        "is slow (README, CUDA)",
    )
    midi = parser.add_mutually_exclusive_group()
    midi.add_argument("--midi-port", metavar="NAME", help="MIDI input: index or part of a name")
    midi.add_argument(
        "--midi-virtual", metavar="NAME", help="open a virtual MIDI input named NAME instead"
    )
    parser.add_argument(
        "--midi-map", metavar="FILE", type=Path, help="TOML file that changes the default map"
    )
    parser.add_argument("--midi-channel", type=int, metavar="N", help="listen to channel N only")
    parser.add_argument(
        "--file", type=Path, metavar="PATH", help="play this file through the separator"
    )
    parser.add_argument(
        "--record", type=Path, metavar="PATH", help="record what is heard (.wav, .flac, ...)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite the --record file")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")


def _block(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number of frames, not {text!r}")
    return int(text)


def run(args: argparse.Namespace) -> int:
    from rtsep.engine import Separator
    from rtsep.live import Live, LiveOptions, status_text, summary_lines

    if args.file is not None and not args.file.is_file():
        raise RtsepError(f"--file {args.file} does not exist")
    sep = Separator.load(args.model, args.provider)
    sources = _sources(args.sources, sep.sources)
    controller = _midi(args, sep)
    options = LiveOptions(
        device=args.device,
        samplerate=args.samplerate,
        blocksize=args.blocksize,
        channels=args.channels,
        sources=sources,
        file=args.file,
        record=args.record,
        duration=args.duration,
        force=args.force,
    )
    live = Live(sep, options, controller)
    midi_in = None
    try:
        live.open()
        if controller is not None:
            from rtsep.midi import open_input

            midi_in = open_input(controller, args.midi_port, args.midi_virtual)
    except BaseException:
        live.close()
        raise
    try:
        summary = _run(live, status_text)
    finally:
        if midi_in is not None:
            midi_in.close_port()
            midi_in.delete()
    for line in summary_lines(summary, live.sample_rate):
        print(f"rtsep live: {line}")
    if summary.failure:
        kept = f"; recording kept in {summary.recorded}" if summary.recorded else ""
        print(f"rtsep: error: {summary.failure}{kept}", file=sys.stderr)
        if summary.abandoned:  # PortAudio would hang at exit on the dead stream
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        return 1
    return 0


def _run(live, status_text):
    """Run with a live status line on a terminal, or a start line when piped."""
    from rich.console import Console
    from rich.live import Live as RichLive

    console = Console()
    if not console.is_terminal:  # scripts wait for this line: the stream and its ports exist
        return live.run(on_start=lambda: print("rtsep live: streaming", flush=True))
    with RichLive(console=console, auto_refresh=False, transient=False) as display:
        return live.run(lambda lv: display.update(status_text(lv), refresh=True))


def _sources(text: str | None, known: tuple[str, ...]) -> list[str] | None:
    if text is None:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in known]
    if unknown or not names:
        raise RtsepError(
            f"--sources {text!r}: unknown source(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(known)}"
        )
    return names


def _midi(args: argparse.Namespace, sep):
    """A MIDI controller when a MIDI input was asked for, else None."""
    from rtsep.midi import MidiController, load_map

    if args.midi_port is None and args.midi_virtual is None:
        if args.midi_map is not None or args.midi_channel is not None:
            raise RtsepError("--midi-map and --midi-channel need --midi-port or --midi-virtual")
        return None
    return MidiController(sep, load_map(args.midi_map, sep.sources, args.midi_channel))
