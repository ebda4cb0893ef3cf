"""The ``rtsep`` command line: one subcommand per module in ``rtsep.commands``.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int``
and is imported only when its command runs, so that ``rtsep --help`` stays fast
and ``rtsep separate`` never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rtsep.errors import RtsepError

COMMANDS: dict[str, str] = {
    "separate": "Separate audio files into one file per source.",
    "live": "Separate a live input or a file in real time, MIDI-controlled.",
    "devices": "List audio devices.",
    "midi-ports": "List MIDI input ports.",
    "bench": "Measure latency on this machine and write a report.",
    "eval": "Score a model on a MUSDB18(-HQ)-layout folder (SDR, SI-SDR).",
    "train": "Train a model (needs: pip install 'rtsep[train]').",
    "export": "Export a trained checkpoint to an rtsep model folder (needs rtsep[train]).",
}


def _module(command: str):
    return importlib.import_module("rtsep.commands." + command.replace("-", "_"))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (all of them when None)."""
    parser = argparse.ArgumentParser(prog="rtsep", description="Real-time music source separation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary)
        if command is None or command == name:
            _module(name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes print one line ``rtsep: error: ...`` and exit 2."""
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        return int(_module(args.command).run(args) or 0)
    except RtsepError as exc:
        print(f"rtsep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rtsep: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
