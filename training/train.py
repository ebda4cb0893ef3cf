"""The training loop behind ``rtsep train``: tf.distribute, checkpoints, resume, logs.

One code path for every machine: MultiWorkerMirroredStrategy when ``TF_CONFIG`` is set,
MirroredStrategy with more than one GPU, the default strategy otherwise. The output folder
holds a small checkpoint (weights, their moving average, optimizer and step; last one only,
written atomically),
``config.json`` (preset, network config, recipe), TensorBoard logs in ``tb/``, the loss
curves in ``curves.png``, ``history.jsonl`` (one row per validation) and ``train_log.jsonl``
(one row per leg: start, end, wall seconds, steps, machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rtsep import contract
from rtsep.errors import RtsepError
from training.ema import WeightAverage

CHECKPOINT = "checkpoint.npz"
CONFIG = "config.json"
HISTORY = "history.jsonl"
LEGS = "train_log.jsonl"
CURVES = "curves.png"
SILENT_RMS = 1e-3  # -60 dBFS: a source this quiet in an excerpt is left out of its SDR


@dataclass
class TrainConfig:
    """Everything a training leg needs; saved in ``config.json`` (``recipe``)."""

    preset: str = "rt-stereo"
    data: str | None = None
    out: str = "runs/rt-stereo"
    steps: int = 10000
    batch_size: int = 16
    excerpt_seconds: float = 3.0
    lr: float = 1e-3
    loss: str | None = None  # None: the preset's default
    source_weights: dict[str, float] | None = None  # None: the run's it grew from, else equal
    resume: bool = False
    force: bool = False
    val_every: int = 200
    val_batches: int = 4
    dense: float = 0.5  # share of excerpts drawn where every source sounds throughout
    drum_pitch: float = 0.0  # semitones: retune remixed excerpts' drums by up to this much
    max_minutes: float | None = None
    intra_threads: int = 2
    inter_threads: int = 1
    xla: bool = True
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None  # a training output to start from (its step, weights, logs)
    ema: float = 0.999  # decay of the weights' moving average (what ships); 0: none


DEFAULT_LOSS = {"seed": "l1", "rt": "sdr", "rt-stereo": "sdr", "tiny": "sdr"}


def configure_threads(intra: int, inter: int) -> None:
    """Limit TensorFlow's thread pools (must run before TensorFlow starts any op)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # already initialized in this process: keep what is set
        pass


def choose_strategy():
    """MultiWorkerMirrored with TF_CONFIG, Mirrored with >1 GPU, else the default strategy."""
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy) -> bool:
    """Whether this process writes files (the chief, or worker 0 of a multi-worker run)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    task = resolver.task_type
    return task == "chief" or (not has_chief and task == "worker" and resolver.task_id == 0)


def _machine(strategy) -> dict[str, Any]:
    import tensorflow as tf

    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "replicas": strategy.num_replicas_in_sync,
        "strategy": type(strategy).__name__,
        "tensorflow": tf.__version__,
    }


def read_legs(folder: Path) -> list[dict[str, Any]]:
    """The rows of a training folder's leg log (one per leg, oldest first); none if it has none."""
    log = Path(folder) / LEGS
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def save_checkpoint(out: Path, model, optimizer, step: int, average=None) -> None:
    """Weights, optimizer variables, the weights' moving average (``e*``, with its update
    count) and step in one npz, replaced atomically."""
    arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(model.weights)}
    arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
    if average is not None:
        arrays.update({f"e{i}": a for i, a in enumerate(average.arrays())})
        arrays["average_updates"] = np.asarray(average.updates)
    arrays["step"] = np.asarray(step)
    tmp = out / (CHECKPOINT + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out / CHECKPOINT)


def load_weights(
    path: Path,
    model,
    optimizer=None,
    average=None,
    averaged: bool = False,
    grown_from=None,
) -> int:
    """Restore a checkpoint into a built model (and optimizer, and weight average); returns
    its step.

    ``averaged``: the model gets the checkpoint's moving average of the weights where it has
    one (the weights that ship), else its last weights. ``average`` (a ``WeightAverage``) gets
    the checkpoint's, or starts at the weights when it has none.
    ``grown_from``: the network (``models.Net``) the checkpoint was saved from, where ``model``
    grew from it (``--init-from``). Tensors then map by variable path, and a variable the
    checkpoint lacks (a new TCN block's) keeps its value (its initializer; the optimizer's
    zeros). A tensor that is longer along axis 0 in the model gets the checkpoint's rows last
    and zeros before them: for the encoder kernel (rows are taps, oldest first) a longer
    analysis window that computes what the short one did."""
    with np.load(path) as ckpt:
        n = sum(1 for k in ckpt.files if k.startswith("w"))
        grow = grown_from is not None
        saved_weights = grown_from.training_model().weights if grow else model.weights
        if n != len(saved_weights):
            raise RtsepError(
                f"{path} holds {n} weight tensors but the network has {len(saved_weights)}: "
                "it was trained with another preset or config"
            )
        w_rows = _rows(model.weights, saved_weights, grow)
        o_rows = None
        if optimizer is not None:
            saved_opt = optimizer.variables
            if grow:  # the same optimizer, built for the saved network
                saved_opt = type(optimizer)(name=optimizer.name)
                saved_opt.build(grown_from.training_model().trainable_variables)
                saved_opt = saved_opt.variables
            o_rows = _rows(optimizer.variables, saved_opt, grow)

        def tensor(prefix: str, i: int, v) -> np.ndarray:
            return _fit(ckpt[f"{prefix}{i}"], tuple(v.shape), grow, f"{path}: {v.path}")

        def assign(prefix: str, variables, rows) -> None:
            for v, i in zip(variables, rows, strict=True):
                if i is not None:
                    v.assign(tensor(prefix, i, v))

        has_average = "e0" in ckpt.files
        assign("e" if averaged and has_average else "w", model.weights, w_rows)
        if optimizer is not None and "o0" in ckpt.files:
            assign("o", optimizer.variables, o_rows)
        if average is not None and has_average:  # a new variable's average starts at it
            shadows = [
                np.asarray(v) if i is None else tensor("e", i, v)
                for v, i in zip(model.weights, w_rows, strict=True)
            ]
            average.restore(shadows, int(ckpt["average_updates"]))
        elif average is not None:
            average.restore(None, 0)
        return int(ckpt["step"])


def _rows(variables, saved, by_path: bool) -> list[int | None]:
    """For each of ``variables``, the index of its saved tensor: the same index, or (``by_path``)
    that of the saved variable with its path (None: it has none)."""
    if not by_path:
        return list(range(len(variables)))
    where = {v.path: i for i, v in enumerate(saved)}
    return [where.get(v.path) for v in variables]


def _fit(saved: np.ndarray, shape: tuple[int, ...], grow: bool, what: str) -> np.ndarray:
    """``saved`` as ``shape``: unchanged, or (``grow``) zero rows prepended along axis 0."""
    if saved.shape == shape:
        return saved
    if grow and saved.shape[1:] == shape[1:] and saved.ndim and saved.shape[0] < shape[0]:
        pad = np.zeros((shape[0] - saved.shape[0], *shape[1:]), saved.dtype)
        return np.concatenate([pad, saved])
    raise RtsepError(f"{what} has another shape {saved.shape}, not {shape}; wrong preset/config")


def _blocks(config: dict[str, Any]) -> list[int]:
    """The dilation of each TCN block of a config, in order."""
    return list(config["dilations"]) * int(config["repeats"])


def _grows(key: str, before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether changing ``key`` from config ``before`` to ``after`` keeps what was learned: a
    longer analysis window (new, older encoder taps at zero), or blocks added after the trained
    ones (more ``repeats``, ``dilations`` appended; ``models.RtNet.start_as``)."""
    if key == "window_hops":
        return isinstance(after[key], int) and after[key] > before[key]
    if key in ("repeats", "dilations"):
        old, new = _blocks(before), _blocks(after)
        return len(new) > len(old) and new[: len(old)] == old
    return False


def _init_config(cfg: TrainConfig, source: dict[str, Any]) -> dict[str, Any]:
    """The network config of a run started from ``source`` (its config.json) with
    ``cfg.overrides``: only changes that grow the network from what it learned (``_grows``)."""
    before = source["config"]
    config = {**before, **cfg.overrides}
    for key, value in cfg.overrides.items():
        if value != before.get(key) and not _grows(key, before, config):
            raise RtsepError(
                f"--init-from with --set {key}={json.dumps(value)}: only a larger window_hops, "
                f"or blocks after the trained ones (more repeats, dilations appended), keeps "
                f"what {cfg.init_from} learned (it has {json.dumps(before.get(key))})"
            )
    return config


def load_trained(path: str | Path, averaged: bool = True):
    """The network and step of a training output folder (or its checkpoint file), with the
    moving average of its weights where the checkpoint has one (``averaged=False``: the last
    weights)."""
    from training import models

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    ckpt = folder / CHECKPOINT if path.is_dir() else path
    if not (folder / CONFIG).is_file() or not ckpt.is_file():
        raise RtsepError(
            f"{path} is not a training output: it needs {CONFIG} and {CHECKPOINT} "
            "(made by 'rtsep train --out DIR')"
        )
    meta = json.loads((folder / CONFIG).read_text())
    net = models.build(meta["preset"], **meta["config"])
    step = load_weights(ckpt, net.training_model(), averaged=averaged)
    with np.load(ckpt) as saved:
        use_average = averaged and "e0" in saved.files
        updates = int(saved["average_updates"]) if use_average else 0
    decay = meta.get("recipe", {}).get("ema") if use_average else None
    meta["weights"] = {"moving_average": decay, "updates": updates} if decay else "last"
    return net, step, meta


def plot_curves(out: Path) -> None:
    """``curves.png``: training loss (smoothed) and validation loss / SDR against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (out / HISTORY).read_text().splitlines() if line]
    if not rows:
        return
    steps = [r["step"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(steps, [r["loss"] for r in rows], label="train loss")
    ax1.plot(steps, [r["val_loss"] for r in rows], label="validation loss")
    ax1.set_xlabel("step")
    ax1.legend()
    for s in contract.SOURCES:
        (line,) = ax2.plot(steps, [r["val_sdr"][s] for r in rows], label=s)
        full = [(r["step"], r["val_sdr_full"][s]) for r in rows if "val_sdr_full" in r]
        if full:
            ax2.plot(*zip(*full), linestyle="--", color=line.get_color())
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation SDR (dB); dashed: 1 s, all playing")
    ax2.legend()
    fig.tight_layout()
    tmp = out / (CURVES + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, out / CURVES)


def _datasets(cfg: TrainConfig, channels: int, step0: int):
    """Random augmented excerpts of ``train`` (``channels`` rows each), from the first one that
    step ``step0`` has not seen; fixed excerpts of ``valid`` (else ``test``), in batches of whole
    stereo pairs."""
    from training import data

    root = Path(cfg.data) if cfg.data else None
    if root is None or not (root / "train").is_dir():
        raise RtsepError(f"--data {cfg.data}: expected a MUSDB18-HQ folder DIR/train/<track>/")
    val_split = next((s for s in ("valid", "test") if (root / s).is_dir()), None)
    if val_split is None:
        raise RtsepError(f"--data {root}: no valid/ or test/ split to validate on")
    train = data.make_dataset(
        root,
        split="train",
        excerpt_seconds=cfg.excerpt_seconds,
        batch_size=cfg.batch_size,
        augment=True,
        seed=cfg.seed,
        channels=channels,
        dense=cfg.dense,
        first=step0 * cfg.batch_size,
        drum_pitch=cfg.drum_pitch,
    )
    val = data.make_eval_dataset(
        root,
        split=val_split,
        excerpt_seconds=cfg.excerpt_seconds,
        batch_size=cfg.batch_size + cfg.batch_size % 2,
        per_track=2,
    ).take(cfg.val_batches)
    return train, val


def train(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Run one training leg on ``cfg.data``; returns its summary (also appended to
    ``train_log.jsonl``)."""
    configure_threads(cfg.intra_threads, cfg.inter_threads)
    import keras
    import tensorflow as tf

    from training import losses, models

    out = Path(cfg.out)
    has_ckpt = (out / CHECKPOINT).is_file()
    if has_ckpt and not (cfg.resume or cfg.force):
        what = "--force to replace it" if cfg.init_from else "--resume to continue it"
        raise RtsepError(f"{out} already holds a checkpoint: pass {what}")
    if cfg.resume and not has_ckpt:
        raise RtsepError(f"--resume: {out} holds no checkpoint ({CHECKPOINT}) to continue")
    if cfg.preset not in models.PRESETS:
        names = ", ".join(models.PRESETS)
        raise RtsepError(f"unknown preset {cfg.preset!r}: choose one of {names}")
    source = Path(cfg.init_from) if cfg.init_from else None
    if source is not None:
        if cfg.resume:
            raise RtsepError("--init-from starts a new run: leave out --resume")
        if not ((source / CONFIG).is_file() and (source / CHECKPOINT).is_file()):
            raise RtsepError(f"--init-from {source}: not a training output (no {CHECKPOINT})")
        if source.resolve() == out.resolve():
            raise RtsepError(f"--init-from {source} is --out itself: use --resume instead")
    saved_path = out if cfg.resume else source
    saved = json.loads((saved_path / CONFIG).read_text()) if saved_path else {}
    loss_name = cfg.loss or saved.get("recipe", {}).get("loss") or DEFAULT_LOSS[cfg.preset]
    if loss_name not in losses.LOSSES:
        raise RtsepError(f"unknown loss {loss_name!r}: choose one of {', '.join(losses.LOSSES)}")
    named = cfg.source_weights
    if named is None:
        named = saved.get("recipe", {}).get("source_weights") or {}
    try:
        weights = losses.source_weights(named, contract.SOURCES)
    except ValueError as exc:
        raise RtsepError(f"--source-weight: {exc}") from None
    if saved and saved["preset"] != cfg.preset:
        raise RtsepError(
            f"{saved_path} was trained with preset {saved['preset']!r}, not {cfg.preset!r}"
        )
    if cfg.resume:
        overrides = saved["config"]
    elif source is not None:
        overrides = _init_config(cfg, saved)
    else:
        overrides = {**models.PRESETS[cfg.preset], **cfg.overrides}
    loss_fn = losses.LOSSES[losses.VALIDATION[loss_name]]  # the same measure on every leg
    train_loss_fn = losses.weighted(loss_name, weights)
    tf.random.set_seed(cfg.seed)

    strategy = choose_strategy()
    # the network it grows from: its variables' paths, outside the strategy (no replicas)
    saved_from = None if source is None else models.build(cfg.preset, **saved["config"])
    with strategy.scope():
        net = models.build(cfg.preset, **overrides)
        model = net.training_model()
        if saved_from is not None:
            net.start_as(saved_from)
        optimizer = keras.optimizers.Adam(cfg.lr, clipnorm=5.0)
        optimizer.build(model.trainable_variables)
        average = WeightAverage(model.weights, cfg.ema) if cfg.ema else None
    step0 = 0
    if cfg.resume:
        step0 = load_weights(out / CHECKPOINT, model, optimizer, average=average)
    elif source is not None:
        step0 = load_weights(source / CHECKPOINT, model, optimizer, average, grown_from=saved_from)
    train_ds, val_ds = _datasets(cfg, net.channels, step0)  # before anything in --out is touched
    optimizer.learning_rate.assign(cfg.lr)  # this leg's rate, not the checkpoint's: anneal by legs
    if not is_chief(strategy):  # other workers write to a scratch folder (TF's advice)
        out, progress = Path(tempfile.mkdtemp(prefix="rtsep-worker-")), False
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.resume:
        for name in (HISTORY, LEGS, CHECKPOINT, CURVES):
            (out / name).unlink(missing_ok=True)
        for name in (HISTORY, LEGS) if source is not None else ():  # the legs it grew from
            if (source / name).is_file():
                shutil.copyfile(source / name, out / name)
    recipe = {k: v for k, v in asdict(cfg).items() if k not in ("resume", "force", "out")}
    recipe["loss"] = loss_name
    recipe["source_weights"] = {k: v for k, v in named.items() if v != 1.0}
    (out / CONFIG).write_text(
        json.dumps({"preset": cfg.preset, "config": net.config, "recipe": recipe}, indent=2)
    )

    replicas = strategy.num_replicas_in_sync

    replica = training_step(model, optimizer, train_loss_fn, average, replicas)
    replica_step = tf.function(replica, jit_compile=cfg.xla)  # XLA: ~1.6x faster on CPU

    @tf.function
    def train_step(mix, stems):
        per = strategy.run(replica_step, args=(mix, stems))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per, axis=None)

    @tf.function
    def val_step(mix, stems):
        est = model(mix, training=False)
        return loss_fn(stems, est), est

    def validate() -> tuple[float, dict[str, float], dict[str, float]]:
        """Of the weights that ship (the moving average, if any): mean loss; median SDR per
        source over excerpts where that source is not silent; the same over 1 s frames in
        which all sources play (the frames museval scores)."""
        vl, refs, ests = [], [], []
        with average.applied() if average is not None else contextlib.nullcontext():
            for mix, stems in val_ds:
                loss, est = val_step(mix, stems)
                vl.append(float(loss))
                refs.append(stems.numpy())
                ests.append(est.numpy())
        ref, est = np.concatenate(refs), np.concatenate(ests)
        return (
            float(np.mean(vl)),
            _median_sdr(ref, est, ref.shape[-1]),
            _median_sdr(ref, est, min(contract.SAMPLE_RATE, ref.shape[-1]), all_playing=True),
        )

    writer = _tb_writer(out)
    leg = {
        "start": _now(),
        "from_step": step0,
        "machine": _machine(strategy),
        "threads": {"intra": cfg.intra_threads, "inter": cfg.inter_threads},
        "lr": cfg.lr,
        "data": cfg.data,
        "dense": cfg.dense,
        "ema": cfg.ema,
    }
    if recipe["source_weights"]:
        leg["source_weights"] = recipe["source_weights"]
    if cfg.drum_pitch:
        leg["drum_pitch"] = cfg.drum_pitch
    if source is not None:
        leg["init_from"] = {"run": str(source), "config": saved["config"]}
    t0, cpu0 = time.monotonic(), time.process_time()
    step, recent = step0, []
    deadline = None if cfg.max_minutes is None else t0 + 60 * cfg.max_minutes
    dist = iter(strategy.experimental_distribute_dataset(train_ds.repeat()))

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]train {task.fields[preset]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val {task.fields[val]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    )
    last = {"loss": float("nan"), "val_loss": float("nan"), "val_sdr": {}}
    with bar, _stop_on_signals() as stop:
        task = bar.add_task(
            "train", total=cfg.steps, completed=step, preset=cfg.preset, loss="-", val="-"
        )
        while step < cfg.steps and (deadline is None or time.monotonic() < deadline) and not stop:
            mix, stems = next(dist)
            loss = float(train_step(mix, stems))
            step += 1
            recent.append(loss)
            if writer is not None:
                with writer.as_default(step=step):
                    tf.summary.scalar("loss/train", loss)
            bar.update(task, completed=step, loss=f"{np.mean(recent[-50:]):.3f}")
            if step % cfg.val_every == 0 or step == cfg.steps:
                last = _checkpoint(out, model, optimizer, average, step, recent, validate, writer)
                bar.update(task, val=f"{last['val_loss']:.3f}")
        if step % cfg.val_every and step != cfg.steps and step > step0:
            last = _checkpoint(out, model, optimizer, average, step, recent, validate, writer)
    leg.update(
        end=_now(),
        wall_s=round(time.monotonic() - t0, 1),
        cpu_s=round(time.process_time() - cpu0, 1),  # all threads: the budget actually used
        to_step=step,
        steps=step - step0,
        loss=loss_name,
        last=last,
    )
    if stop:
        leg["stopped_by"] = stop["signal"]
    with open(out / LEGS, "a") as f:
        f.write(json.dumps(leg) + "\n")
    return leg


def training_step(model, optimizer, loss_fn, average=None, replicas: int = 1):
    """One replica's step: the loss of ``model`` on (mix, stems), its gradient (divided over
    ``replicas``) applied, the weights' moving average updated; returns the loss. The
    estimate is cast to float32 first, so that a mixed-precision policy scores in float32."""
    import tensorflow as tf

    def step(mix, stems):
        with tf.GradientTape() as tape:
            est = tf.cast(model(mix, training=True), tf.float32)
            loss = loss_fn(stems, est)
            scaled = loss / replicas
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        if average is not None:
            average.update()
        return loss

    return step


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[dict[str, str]]:
    """Ctrl-C or SIGTERM ends the leg after the current step: checkpointed and logged, not lost.

    Yields a dict that gets ``"signal"`` (its name) when one arrives; a second one stops at
    once. Outside the main thread (where handlers cannot be set) it does nothing.
    """
    stop: dict[str, str] = {}

    def handle(signum, frame) -> None:
        if stop:
            raise KeyboardInterrupt
        stop["signal"] = signal.Signals(signum).name

    saved = {}
    if threading.current_thread() is threading.main_thread():
        saved = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _tb_writer(out: Path):
    """A TensorBoard writer for ``out/tb``, or None (with a notice) without tensorboard."""
    import importlib.util

    import tensorflow as tf

    if importlib.util.find_spec("tensorboard") is None:
        print("rtsep: tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
        return None
    return tf.summary.create_file_writer(str(out / "tb"))


def _median_sdr(
    ref: np.ndarray, est: np.ndarray, frame: int, all_playing: bool = False
) -> dict[str, float]:
    """Median plain SDR per source over ``frame``-long pieces of [B, S, T] excerpts, skipping
    pieces where the source (``all_playing``: any source) is silent."""
    n = ref.shape[-1] // frame
    ref = ref[..., : n * frame].reshape(*ref.shape[:2], n, frame)
    est = est[..., : n * frame].reshape(*est.shape[:2], n, frame)
    power = np.sum(np.square(ref, dtype=np.float64), axis=-1)  # [B, S, n]
    noise = np.sum(np.square(ref - est, dtype=np.float64), axis=-1)
    sdr = 10 * np.log10((power + 1e-12) / (noise + 1e-12))
    playing = np.sqrt(power / frame) > SILENT_RMS
    if all_playing:
        playing = np.broadcast_to(playing.all(axis=1, keepdims=True), playing.shape)
    return {
        s: float(np.median(sdr[:, i][playing[:, i]])) if playing[:, i].any() else float("nan")
        for i, s in enumerate(contract.SOURCES)
    }


def _checkpoint(out, model, optimizer, average, step, recent, validate, writer) -> dict[str, Any]:
    import tensorflow as tf

    val_loss, val_sdr, val_sdr_full = validate()
    row = {
        "step": step,
        "loss": float(np.mean(recent[-50:])),
        "val_loss": val_loss,
        "val_sdr": val_sdr,
        "val_sdr_full": val_sdr_full,
    }
    if writer is not None:
        with writer.as_default(step=step):
            tf.summary.scalar("loss/validation", val_loss)
            for s, v in val_sdr.items():
                tf.summary.scalar(f"sdr/{s}", v)
            for s, v in val_sdr_full.items():
                tf.summary.scalar(f"sdr_all_playing/{s}", v)
        writer.flush()
    with open(out / HISTORY, "a") as f:
        f.write(json.dumps(row) + "\n")
    save_checkpoint(out, model, optimizer, step, average)
    plot_curves(out)
    return row
