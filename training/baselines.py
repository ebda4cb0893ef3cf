"""Reference points for the README's quality table, scored exactly as ``rtsep eval`` scores.

- ``hpss``: librosa's harmonic/percussive separation of the mixture STFT; the percussive part
  estimates drums, the harmonic part "other" (bass and vocals are not estimated, so museval's
  rule scores the two as one set). Its drums SDR is the number to beat.
- ``irm``: the oracle ideal ratio mask, |S_j| / Σ_k |S_k| from the true stems, applied to the
  mixture STFT: an upper bound for any mask-based method at this STFT size.
- ``mix4``: the mixture divided by four for every source: the floor a model must clear.

Usage: ``python -m training.baselines ROOT --split test --json FILE``
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Mapping

import numpy as np

from rtsep import evaluate
from rtsep.contract import SOURCES
from rtsep.errors import RtsepError

N_FFT = 4096
HOP = 1024
"""STFT for HPSS and the oracle mask: 93 ms windows, 75 % overlap (the usual MUSDB oracle)."""


def _stft(signal: np.ndarray) -> np.ndarray:
    """(frames, channels) → (channels, bins, stft frames)."""
    import librosa

    return librosa.stft(np.ascontiguousarray(signal.T), n_fft=N_FFT, hop_length=HOP)


def _istft(spec: np.ndarray, frames: int) -> np.ndarray:
    """(channels, bins, stft frames) → (frames, channels)."""
    import librosa

    return librosa.istft(spec, hop_length=HOP, n_fft=N_FFT, length=frames).T.astype(np.float32)


def hpss(track: evaluate.Track) -> dict[str, np.ndarray]:
    """Percussive part as drums, harmonic part as other."""
    import librosa

    harmonic, percussive = librosa.decompose.hpss(_stft(track.mixture))
    n = len(track.mixture)
    return {"drums": _istft(percussive, n), "other": _istft(harmonic, n)}


def ideal_ratio_mask(track: evaluate.Track) -> dict[str, np.ndarray]:
    """Magnitude ratio masks from the true stems, applied to the mixture STFT."""
    mix = _stft(track.mixture)
    magnitudes = {name: np.abs(_stft(stem)) for name, stem in track.stems.items()}
    total = sum(magnitudes.values()) + np.finfo(np.float32).eps
    n = len(track.mixture)
    return {name: _istft(mix * (mag / total), n) for name, mag in magnitudes.items()}


def mixture_quarter(track: evaluate.Track) -> dict[str, np.ndarray]:
    """The mixture / 4 as every source's estimate."""
    return {name: track.mixture / 4.0 for name in track.stems}


METHODS: dict[str, Callable[[evaluate.Track], dict[str, np.ndarray]]] = {
    "hpss": hpss,
    "irm": ideal_ratio_mask,
    "mix4": mixture_quarter,
}


def score(
    folders: list, methods: Mapping[str, Callable], split: str
) -> dict[str, dict[str, dict[str, evaluate.SourceScore]]]:
    """{method: {track: {source: score}}} over ``folders``, with a progress bar over tracks."""
    scores: dict[str, dict] = {name: {} for name in methods}
    with evaluate.progress() as bar:
        task = bar.add_task(f"baselines on {split}", total=len(folders))
        for folder in folders:
            track = evaluate.read_track(folder, SOURCES)
            for name, method in methods.items():
                estimates = method(track)
                scores[name][track.name] = evaluate.score_track(
                    track.stems, estimates, track.sample_rate
                )
            bar.advance(task)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.baselines", description=__doc__.split("\n\n")[0]
    )
    evaluate.add_dataset_arguments(parser)
    parser.add_argument(
        "--methods", nargs="+", choices=list(METHODS), default=list(METHODS), help="which baselines"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        evaluate.check_output(args.json, args.force)
        folders = evaluate.find_tracks(args.root, args.split, args.tracks)
        scores = score(folders, {m: METHODS[m] for m in args.methods}, args.split)
    except RtsepError as exc:
        print(f"baselines: error: {exc}", file=sys.stderr)
        return 2
    command = shlex.join(
        ["python", "-m", "training.baselines", *(sys.argv[1:] if argv is None else argv)]
    )
    reports = {
        name: evaluate.report(name, tracks, split=args.split, root=str(args.root), command=command)
        for name, tracks in scores.items()
    }
    from rich.console import Console

    Console().print(
        evaluate.table(
            {name: r["median"] for name, r in reports.items()},
            title=f"{args.split}: median over {len(folders)} tracks (dB)",
        )
    )
    if args.json:
        evaluate.write_json(args.json, {"command": command, "methods": reports})
    return 0


if __name__ == "__main__":
    sys.exit(main())
