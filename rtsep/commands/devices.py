"""``rtsep devices``: the audio devices PortAudio sees, to pick one for ``rtsep live``."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Pass an index or part of a name to rtsep live --device IN[,OUT]. "
        "Start your audio server (e.g. JACK) before listing: devices are scanned once per run."
    )


def run(args: argparse.Namespace) -> int:
    import sounddevice as sd

    devices = sd.query_devices()
    apis = sd.query_hostapis()
    default_in, default_out = sd.default.device
    if not devices:
        print("No audio devices found (is an audio server such as JACK running?).")
        return 0
    rows = [("index", "name", "host API", "in", "out", "default rate", "default for")]
    for i, d in enumerate(devices):
        default = [k for k, j in (("input", default_in), ("output", default_out)) if j == i]
        rows.append(
            (
                str(i),
                d["name"],
                apis[d["hostapi"]]["name"],
                str(d["max_input_channels"]),
                str(d["max_output_channels"]),
                f"{d['default_samplerate']:g} Hz",
                ", ".join(default),
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0
