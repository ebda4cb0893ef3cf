"""Scoring separations: BSSEval v4 SDR (as museval computes it for MUSDB18) and SI-SDR.

SDR follows ``museval.evaluate`` with its MUSDB18 defaults (1 s windows and hops, 512-tap
distortion filters, images mode, no permutation). In that mode the SDR of a window is
``10 log10(Σ s² / Σ (ŝ - s)²)``: BSSEval splits the error ``ŝ - s`` into spatial,
interference and artifact parts with the filters, but the SDR's denominator is their sum,
which is ``ŝ - s`` again, so the filters cancel out. Computing that directly is exact (a test
holds it to museval within 0.01 dB) and thousands of times faster. museval's other rules are
kept: estimates are cut or zero-padded to the reference length, the last partial window is
dropped, and a window in which any reference or any estimate of the evaluated set is silent
scores NaN for every source. A track's score per source is the median over its windows
ignoring NaN; a data set's is the median over tracks (again ignoring NaN).

SI-SDR (Le Roux et al., 2019) is computed over the whole track, with one scale for all channels.

The same reader, scorer, table and JSON writer serve ``rtsep eval`` and
``training/baselines.py``, so that the model and the baselines are measured one way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtsep import atomic
from rtsep.contract import SOURCES
from rtsep.errors import RtsepError

WINDOW_SECONDS = 1.0
"""museval's default window and hop for MUSDB18 (``eval_mus_track``: win=hop=1 s)."""

MIXTURE = "mixture"


# --- metrics ---------------------------------------------------------------------------------


def bsseval_sdr(
    references: np.ndarray, estimates: np.ndarray, window: int, hop: int | None = None
) -> np.ndarray:
    """Framewise SDR (nsrc, nwin) of ``estimates`` against ``references``, both (nsrc, n, nchan).

    Matches ``museval.evaluate(references, estimates, win=window, hop=hop)[0]``.
    """
    hop = window if hop is None else hop
    references = np.asarray(references, np.float64)
    estimates = _pad_or_truncate(np.asarray(estimates, np.float64), references.shape[1])
    if references.ndim != 3 or references.shape != estimates.shape:
        raise ValueError(
            f"references {references.shape} and estimates {estimates.shape} must both be "
            "shaped (sources, frames, channels)"
        )
    n = references.shape[1]
    nwin = (n - window + hop) // hop if window < n else 1
    sdr = np.full((references.shape[0], nwin), np.nan)
    for t in range(nwin):
        win = slice(t * hop, min(t * hop + window, n))
        ref, est = references[:, win], estimates[:, win]
        if _any_silent(ref) or _any_silent(est):
            continue
        signal = np.sum(ref**2, axis=(1, 2))
        error = np.sum((est - ref) ** 2, axis=(1, 2))
        sdr[:, t] = [_db(s, e) for s, e in zip(signal, error)]
    return sdr


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB over the whole signal (any shape; channels share one scale).

    +inf for an estimate that is an exact multiple of the reference, -inf for a silent estimate
    of a sounding reference, NaN for a silent reference (undefined; medians skip it).
    """
    s = np.asarray(reference, np.float64).ravel()
    e = np.asarray(estimate, np.float64).ravel()
    if s.shape != e.shape:
        raise ValueError(f"reference {s.shape} and estimate {e.shape} differ in size")
    power = float(np.dot(s, s))
    if power == 0.0:
        return math.nan
    if not np.any(e):
        return -math.inf
    target = (float(np.dot(e, s)) / power) * s
    return _db(float(np.dot(target, target)), float(np.sum((e - target) ** 2)))


def _db(num: float, den: float) -> float:
    """10 log10(num / den) with museval's convention: a zero error gives +inf."""
    if den == 0.0:
        return math.inf
    if num == 0.0:
        return -math.inf
    return 10.0 * math.log10(num / den)


def _any_silent(sources: np.ndarray) -> bool:
    """museval's test: some source whose channel sum is zero at every sample."""
    return bool(np.any(np.all(np.sum(sources, axis=2) == 0, axis=1)))


def _pad_or_truncate(estimates: np.ndarray, frames: int) -> np.ndarray:
    if estimates.shape[1] >= frames:
        return estimates[:, :frames]
    pad = [(0, 0), (0, frames - estimates.shape[1])] + [(0, 0)] * (estimates.ndim - 2)
    return np.pad(estimates, pad)


def nanmedian(values: Iterable[float]) -> float:
    """Median ignoring NaN (as museval/pandas aggregate); NaN when nothing is left."""
    return _skipping_nan(np.median, values)


def nanmean(values: Iterable[float]) -> float:
    """Mean ignoring NaN; NaN when nothing is left."""
    return _skipping_nan(np.mean, values)


def _skipping_nan(statistic: Callable[[list[float]], Any], values: Iterable[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(statistic(kept)) if kept else math.nan


# --- scoring tracks --------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceScore:
    """One source of one track: median framewise SDR, SI-SDR, and the framewise SDRs."""

    sdr: float
    si_sdr: float
    sdr_frames: list[float]


def score_track(
    references: Mapping[str, np.ndarray], estimates: Mapping[str, np.ndarray], sample_rate: int
) -> dict[str, SourceScore]:
    """Score the sources present in ``estimates`` (as museval's ``eval_mus_track`` does).

    Arrays are (frames,) or (frames, channels). The evaluated sources form one set for the
    silence rule, so leave out a source that was not estimated rather than passing zeros.
    """
    names = [name for name in references if name in estimates]
    if not names:
        raise ValueError("no estimated source matches a reference")
    refs = np.stack([_as_2d(references[name]) for name in names])
    ests = _pad_or_truncate(np.stack([_as_2d(estimates[name]) for name in names]), refs.shape[1])
    frames = bsseval_sdr(refs, ests, window=int(WINDOW_SECONDS * sample_rate))
    return {
        name: SourceScore(
            sdr=nanmedian(frames[i]),
            si_sdr=si_sdr(refs[i], ests[i]),
            sdr_frames=[float(v) for v in frames[i]],
        )
        for i, name in enumerate(names)
    }


def _as_2d(signal: np.ndarray) -> np.ndarray:
    signal = np.asarray(signal, np.float64)
    return signal[:, None] if signal.ndim == 1 else signal


def summarize(tracks: Mapping[str, Mapping[str, SourceScore]]) -> dict[str, dict[str, float]]:
    """Median over tracks per source: {source: {"sdr": dB, "si_sdr": dB, "sdr_mean": dB,
    "tracks": n}}. ``sdr_mean`` is the mean of the tracks' SDRs: two models' medians can
    swap on a few tracks near the middle, so compare them on the mean too."""
    names = [s for s in SOURCES if any(s in t for t in tracks.values())]
    names += sorted({s for t in tracks.values() for s in t} - set(names))
    summary = {}
    for name in names:
        scores = [t[name] for t in tracks.values() if name in t]
        summary[name] = {
            "sdr": nanmedian(s.sdr for s in scores),
            "si_sdr": nanmedian(s.si_sdr for s in scores),
            "sdr_mean": nanmean(s.sdr for s in scores),
            "tracks": sum(not math.isnan(s.sdr) for s in scores),
        }
    return summary


def report(
    name: str, tracks: Mapping[str, Mapping[str, SourceScore]], **extra: Any
) -> dict[str, Any]:
    """The JSON-ready record of one evaluated method: medians and every track's scores."""
    return {
        "name": name,
        **extra,
        "median": summarize(tracks),
        "tracks": {
            track: {
                source: {"sdr": s.sdr, "si_sdr": s.si_sdr, "sdr_frames": s.sdr_frames}
                for source, s in scores.items()
            }
            for track, scores in tracks.items()
        },
    }


# --- reading a MUSDB18-HQ-layout folder ------------------------------------------------------


@dataclass(frozen=True)
class Track:
    """One track: the mixture and its stems, (frames, channels) float32 at ``sample_rate``."""

    name: str
    sample_rate: int
    mixture: np.ndarray
    stems: dict[str, np.ndarray]


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every scoring command shares: the folder, split, JSON output, track limit."""
    parser.add_argument(
        "root", metavar="ROOT", help="folder laid out as ROOT/<split>/<track>/*.wav"
    )
    parser.add_argument(
        "--split", default="test", help="subfolder of ROOT to score (default: test)"
    )
    parser.add_argument("--json", metavar="FILE", help="write per-track scores and medians here")
    parser.add_argument("--force", action="store_true", help="overwrite the --json file")
    parser.add_argument("--tracks", type=int, metavar="N", help="score only the first N tracks")


def find_tracks(root: str | Path, split: str = "test", limit: int | None = None) -> list[Path]:
    """The track folders of ``root/split`` (sorted by name; the first ``limit`` of them).

    Hidden folders (a writer's temp folders, for one) are not tracks.
    """
    folder = Path(root) / split
    if not Path(root).is_dir():
        raise RtsepError(f"{root}: no such folder (expected a MUSDB18-HQ layout ROOT/{split}/…)")
    if not folder.is_dir():
        raise RtsepError(f"{folder}: no such folder: is --split {split!r} right for {root}?")
    tracks = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not tracks:
        raise RtsepError(f"{folder}: no track folders in it (expected {folder}/<track>/*.wav)")
    if limit is not None:
        if limit < 1:
            raise RtsepError(f"--tracks must be at least 1, not {limit}")
        tracks = tracks[:limit]
    return tracks


def read_track(folder: str | Path, sources: Iterable[str] = SOURCES) -> Track:
    """Read ``folder/{mixture,<sources>}.wav``; all must match the mixture's shape and rate."""
    import soundfile as sf

    folder = Path(folder)
    audio, rates = {}, {}
    for name in (MIXTURE, *sources):
        path = folder / f"{name}.wav"
        if not path.is_file():
            raise RtsepError(
                f"{path}: missing (each track needs mixture.wav and one file per source)"
            )
        try:
            audio[name], rates[name] = sf.read(path, dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise RtsepError(f"{path}: unreadable audio ({exc})") from exc
        if len(audio[name]) == 0:
            raise RtsepError(f"{path}: empty audio file")
    mixture = audio.pop(MIXTURE)
    rate = rates.pop(MIXTURE)
    for name, signal in audio.items():
        path = folder / f"{name}.wav"
        if rates[name] != rate:
            raise RtsepError(f"{path}: {rates[name]} Hz, but the mixture is {rate} Hz")
        if signal.shape[1] != mixture.shape[1]:
            raise RtsepError(
                f"{path}: {signal.shape[1]} channels, but the mixture has {mixture.shape[1]}"
            )
        if len(signal) != len(mixture):
            raise RtsepError(
                f"{path}: {len(signal)} frames, but the mixture has {len(mixture)} "
                "(truncated stem?)"
            )
    return Track(folder.name, int(rate), mixture, audio)


# --- output ------------------------------------------------------------------------------------


def check_output(path: str | Path | None, force: bool) -> None:
    """Fail before any work when ``path`` exists (without ``force``) or its folder does not."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not force:
        raise RtsepError(f"{path} exists: use --force to overwrite it")
    if not path.parent.is_dir():
        raise RtsepError(f"{path.parent}: no such folder for the JSON output")


def write_json(path: str | Path, data: Any) -> None:
    """Write strict JSON atomically (temp file in the same folder, then rename).

    NaN becomes null and ±inf the strings "inf"/"-inf", since JSON has no such numbers.
    """
    path = Path(path)
    text = json.dumps(_jsonable(data), indent=1, allow_nan=False)
    fd, tmp = atomic.temp_file(path)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def table(
    reports: Mapping[str, Mapping[str, Mapping[str, float]]],
    title: str | None = None,
    means: bool = False,
):
    """A rich table of median SDR and SI-SDR per source, one column pair per method (and,
    with ``means``, the mean SDR over tracks beside them).

    ``reports`` maps a method's name to its ``summarize`` result; a source a method did not
    estimate shows as a dash.
    """
    from rich.table import Table

    keys = ("sdr", "si_sdr", "sdr_mean") if means else ("sdr", "si_sdr")
    heads = {"sdr": "SDR", "si_sdr": "SI-SDR", "sdr_mean": "SDR mean"}
    out = Table(title=title)
    out.add_column("source")
    for name in reports:
        for key in keys:
            out.add_column(f"{name} {heads[key]}", justify="right")
    names = [s for s in SOURCES if any(s in r for r in reports.values())]
    names += sorted({s for r in reports.values() for s in r} - set(names))
    for source in names:
        row = [source]
        for summary in reports.values():
            scores = summary.get(source)
            row += [_cell(scores, key) for key in keys]
        out.add_row(*row)
    return out


def _cell(scores: Mapping[str, float] | None, key: str) -> str:
    if scores is None:
        return "-"
    value = scores[key]
    return "nan" if math.isnan(value) else f"{value:.2f}"


def progress():
    """The progress bar used over tracks (rich, to stderr)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
