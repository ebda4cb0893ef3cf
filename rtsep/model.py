"""Loading a model folder: contract checks, provider choice, onnxruntime sessions.

A model folder holds ``step.onnx`` (one hop per call, static shapes), ``sequence.onnx``
(dynamic time axis) and ``model.json``. Everything is checked on load, so that a bad
model fails here with a message naming the problem, never inside an audio callback.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rtsep import contract
from rtsep.errors import ModelError, RtsepError

PROVIDERS = ("auto", "cpu", "cuda")
_ORT_PROVIDER = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
CUDA_OPTIONS = {"use_tf32": "0"}
"""CUDA provider options: full float32 matrix products, so that CUDA gives what the CPU
gives; the per-hop products are far too small for TF32 to save time."""


def default_model_path() -> Path:
    """The model bundled with the package."""
    return Path(str(resources.files("rtsep") / "models" / "default"))


@functools.cache
def cuda_works() -> bool:
    """Whether CUDA runs here, not only whether this onnxruntime was built with it.

    A GPU build lists CUDA on any machine. This loads the CUDA libraries that pip installs
    beside onnxruntime (``onnxruntime-gpu[cuda,cudnn]``), then puts four bytes on the GPU.
    """
    import onnxruntime as ort

    if _ORT_PROVIDER["cuda"] not in ort.get_available_providers():
        return False
    if hasattr(ort, "preload_dlls"):  # onnxruntime 1.21 and later
        with contextlib.redirect_stdout(io.StringIO()):  # it prints each library it misses
            ort.preload_dlls()
    ort.set_default_logger_severity(4)  # a failure is this function's answer, not a log line
    try:
        ort.OrtValue.ortvalue_from_numpy(np.zeros(1, np.float32), "cuda", 0)
    except Exception:  # RuntimeError, or one of onnxruntime's own Exception classes
        return False
    finally:
        ort.set_default_logger_severity(2)
    return True


def providers_here() -> list[str]:
    """The providers that run on this machine: cpu, and cuda where it starts."""
    return ["cpu", "cuda"] if cuda_works() else ["cpu"]


def resolve_provider(provider: str) -> str:
    """``auto`` picks CUDA when it runs here, else CPU; ``cuda`` where it does not is an error."""
    import onnxruntime as ort

    if provider not in PROVIDERS:
        raise RtsepError(f"unknown provider {provider!r}: choose one of {', '.join(PROVIDERS)}")
    if provider == "auto":
        return "cuda" if cuda_works() else "cpu"
    if provider == "cuda" and not cuda_works():
        available = ort.get_available_providers()
        if _ORT_PROVIDER["cuda"] in available:
            raise RtsepError(
                "provider 'cuda' does not start here: onnxruntime-gpu found no NVIDIA GPU, "
                "driver, or the CUDA and cuDNN libraries it was built for "
                "(bash scripts/setup.sh --gpu installs them); or use --provider cpu"
            )
        raise RtsepError(
            "provider 'cuda' is not available in this onnxruntime "
            f"(it offers {', '.join(available)}): on a machine with an NVIDIA GPU, run "
            "bash scripts/setup.sh --gpu (onnxruntime-gpu in place of onnxruntime), "
            "or use --provider cpu"
        )
    return provider


@dataclass(frozen=True)
class Model:
    """A checked model folder; sessions are made on demand with the chosen provider."""

    path: Path
    meta: dict[str, Any]
    provider: str
    states: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    """The step graph's states: name and shape."""
    sequence_states: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    """The sequence graph's states (the step graph's, where model.json names none)."""
    delays: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """The step graph's delay-line states (``rtsep.delays``): each entry's delay in hops."""
    cuda_options: dict[str, str] = field(default_factory=lambda: dict(CUDA_OPTIONS))
    """CUDA provider options for its sessions (``dataclasses.replace`` to try others)."""
    _shared: dict[tuple[str, int], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.path.name))

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.meta["sources"])

    @property
    def sample_rate(self) -> int:
        return int(self.meta["sample_rate"])

    @property
    def hop(self) -> int:
        return int(self.meta["hop"])

    @property
    def channels(self) -> int:
        return int(self.meta["channels"])

    def zero_states(self, graph: str = "step") -> dict[str, np.ndarray]:
        """A fresh set of the ``"step"`` or ``"sequence"`` graph's states (zeros: the reset)."""
        specs = {"step": self.states, "sequence": self.sequence_states}[graph]
        return {name: np.zeros(shape, np.float32) for name, shape in specs}

    def session(self, graph: str, threads: int = 1, cuda_graph: bool = False):
        """An onnxruntime session for ``"step"`` or ``"sequence"``, ``threads`` intra-op threads.

        ``cuda_graph`` lets a CUDA session capture and replay its runs (every input and
        output must then be bound on the GPU, at addresses that never change).
        """
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads == 1:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        file = contract.STEP_FILE if graph == "step" else contract.SEQUENCE_FILE
        providers: list[Any] = [_ORT_PROVIDER["cpu"]]
        if self.provider == "cuda":
            cuda_options = {**self.cuda_options, "enable_cuda_graph": "1" if cuda_graph else "0"}
            providers.insert(0, (_ORT_PROVIDER["cuda"], cuda_options))
        return ort.InferenceSession(str(self.path / file), options, providers=providers)

    def shared_session(self, graph: str, threads: int = 1):
        """``session(graph, threads)``, made once per model and reused by every caller.

        For offline work, which makes many calls (chunks, files, tracks): a new session
        pays its creation and its first two runs' memory allocation again, about a third
        of the time of a 5 s clip. onnxruntime sessions may run from several threads at once.
        """
        key = (graph, threads)
        if key not in self._shared:
            self._shared[key] = self.session(graph, threads)
        return self._shared[key]


def load_model(path: str | Path | None = None, provider: str = "auto") -> Model:
    """Load and check a model folder (None = the bundled default model)."""
    folder = default_model_path() if path is None else Path(path)
    if not folder.is_dir():
        if path is None:
            raise ModelError(f"the bundled default model is missing at {folder}: reinstall rtsep")
        raise ModelError(f"model folder {folder} does not exist: pass a folder with {_files()}")
    for name in (contract.META_FILE, contract.STEP_FILE, contract.SEQUENCE_FILE):
        if not (folder / name).is_file():
            raise ModelError(f"model folder {folder} has no {name}: a model needs {_files()}")
    meta = read_meta(folder)
    states, sequence_states, delays = _check_meta(folder, meta)
    model = Model(folder, meta, resolve_provider(provider), states, sequence_states, delays)
    _check_graphs(model)
    return model


def _files() -> str:
    return f"{contract.STEP_FILE}, {contract.SEQUENCE_FILE} and {contract.META_FILE}"


def read_meta(folder: Path) -> dict[str, Any]:
    """A model folder's model.json as a dict; ModelError (one line) if it is not a JSON object."""
    try:
        meta = json.loads((folder / contract.META_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{folder / contract.META_FILE} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{folder / contract.META_FILE} must hold a JSON object")
    return meta


StateSpecs = list[tuple[str, tuple[int, ...]]]


def _check_meta(
    folder: Path, meta: dict[str, Any]
) -> tuple[StateSpecs, StateSpecs, dict[str, tuple[int, ...]]]:
    """Check model.json against the contract; return the step graph's states (names and
    shapes), the sequence graph's, and the step graph's delay lines."""
    where = folder / contract.META_FILE
    for key in ("format_version", "sources", "sample_rate", "hop", "channels", "states"):
        if key not in meta:
            raise ModelError(f"{where} has no '{key}'")
    if meta["format_version"] != contract.FORMAT_VERSION:
        raise ModelError(
            f"{where} has format_version {meta['format_version']!r}; this rtsep reads version "
            f"{contract.FORMAT_VERSION}: re-export the model or upgrade rtsep"
        )
    if meta["sample_rate"] != contract.SAMPLE_RATE:
        raise ModelError(
            f"{where}: sample_rate {meta['sample_rate']} is not {contract.SAMPLE_RATE}, "
            "the only rate rtsep models run at"
        )
    if meta["hop"] != contract.HOP:
        raise ModelError(f"{where}: hop {meta['hop']} is not {contract.HOP}, the engine's hop")
    if meta["channels"] != contract.CHANNELS:
        raise ModelError(f"{where}: channels {meta['channels']} is not {contract.CHANNELS}")
    sources = meta["sources"]
    if not (isinstance(sources, list) and sources and all(isinstance(s, str) for s in sources)):
        raise ModelError(f"{where}: 'sources' must be a non-empty list of names")
    if len(set(sources)) != len(sources):
        raise ModelError(f"{where}: 'sources' has duplicates: {sources}")
    states = _check_states(where, meta["states"])
    sequence_states = _check_states(where, meta.get("sequence_states", meta["states"]))
    delays = {}
    for entry in meta["states"]:
        if "delays" not in entry:
            continue
        name, shape = str(entry["name"]), tuple(entry["shape"])
        try:
            entry_delays = tuple(int(d) for d in entry["delays"])
        except (TypeError, ValueError):
            raise ModelError(f"{where}: state {name}: 'delays' must be a list of hops") from None
        if len(shape) < 2 or len(entry_delays) != shape[1] or min(entry_delays, default=0) < 1:
            raise ModelError(
                f"{where}: state {name} has {len(entry_delays)} delays for shape {list(shape)}: "
                "one delay of at least 1 hop for each entry of axis 1"
            )
        delays[name] = entry_delays
    return states, sequence_states, delays


def _check_states(where: Path, entries: Any) -> StateSpecs:
    states = []
    for entry in entries:
        try:
            name, shape = str(entry["name"]), tuple(int(n) for n in entry["shape"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{where}: each state needs a 'name' and a 'shape' list") from None
        if not shape or min(shape) < 1:
            raise ModelError(f"{where}: state {name} has shape {list(shape)}; sizes must be >= 1")
        states.append((name, shape))
    return states


def _check_graphs(model: Model) -> None:
    """Both graphs must have exactly the inputs and outputs model.json announces."""
    c, s, h = model.channels, len(model.sources), model.hop
    for graph in ("step", "sequence"):
        file = model.path / (contract.STEP_FILE if graph == "step" else contract.SEQUENCE_FILE)
        try:
            session = model.session(graph)
        except Exception as exc:  # onnxruntime raises several unrelated types here
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{file} cannot be loaded by onnxruntime: {first}") from None
        time: int | str = h if graph == "step" else "dynamic"
        want_in = {contract.AUDIO_INPUT: (c, time)}
        want_out = {contract.SOURCES_OUTPUT: (c, s, time)}
        for name, shape in model.states if graph == "step" else model.sequence_states:
            want_in[name] = shape
            want_out[name + contract.STATE_OUT_SUFFIX] = shape
        _compare(file, "input", {i.name: i.shape for i in session.get_inputs()}, want_in)
        _compare(file, "output", {o.name: o.shape for o in session.get_outputs()}, want_out)
        for i in session.get_inputs() + session.get_outputs():
            if i.type != "tensor(float)":
                raise ModelError(f"{file}: {i.name} is {i.type}; the contract needs float32")


def _compare(file: Path, kind: str, have: dict[str, list], want: dict[str, tuple]) -> None:
    if set(have) != set(want):
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        raise ModelError(
            f"{file}: {kind}s do not match model.json (missing {missing or 'none'}, "
            f"unexpected {extra or 'none'})"
        )
    for name, shape in want.items():
        got = have[name]
        ok = len(got) == len(shape) and all(
            (w == "dynamic" and not isinstance(g, int)) or g == w for g, w in zip(got, shape)
        )
        if not ok:
            wanted = ["T" if w == "dynamic" else w for w in shape]
            raise ModelError(f"{file}: {kind} {name} has shape {got}, expected {wanted}")
