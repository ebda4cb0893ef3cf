"""``rtsep midi-ports``: the MIDI inputs ``rtsep live --midi-port`` can open."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Uses JACK MIDI when a JACK server runs, else the system's default MIDI API. "
        "Pass an index or part of a name to rtsep live --midi-port."
    )


def run(args: argparse.Namespace) -> int:
    from rtsep.midi import input_ports

    api, ports = input_ports()
    print(f"MIDI inputs ({api}):")
    for i, name in enumerate(ports):
        print(f"  {i}: {name}")
    if not ports:
        print("  none (rtsep live --midi-virtual NAME opens a port for other programs)")
    return 0
