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
    from rich.console import Console
    from rich.table import Table

    devices = sd.query_devices()
    apis = sd.query_hostapis()
    default_in, default_out = sd.default.device
    table = Table(title="Audio devices")
    for column in ("index", "name", "host API", "in", "out", "default rate", "default for"):
        table.add_column(column, justify="right" if column in ("index", "in", "out") else "left")
    for i, d in enumerate(devices):
        default = [k for k, d_i in (("input", default_in), ("output", default_out)) if d_i == i]
        table.add_row(
            str(i),
            d["name"],
            apis[d["hostapi"]]["name"],
            str(d["max_input_channels"]),
            str(d["max_output_channels"]),
            f"{d['default_samplerate']:g} Hz",
            ", ".join(default),
        )
    console = Console()
    if devices:
        console.print(table)
    else:
        console.print("No audio devices found (is an audio server such as JACK running?).")
    return 0
