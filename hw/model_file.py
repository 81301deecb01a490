"""The spikeline model file: integer tensors in safetensors plus a JSON header.

This module owns the format. Every producer (``sw.export``) and consumer
(``hw.reference``, the HDL network, ``cosim``) goes through :func:`save`,
:func:`load` and :func:`validate`, so the rules are written once.

File layout (schema version 1)
------------------------------
* tensors ``layers.<l>.weights``: signed integer ``[K, n_in, n_out]``
* metadata key ``spikeline``: JSON object::

    {"schema_version": 1, "n_inputs": 700, "dt": 0.01, "T": 100,
     "widths": {"weight_bits": 8, "membrane_bits": 24, "acc_bits": 24,
                "readout_bits": 32, "max_delay": 63},
     "layers": [{"n_in": 700, "n_out": 48, "delays": [0, 2, ...],
                 "threshold": 64, "decay": 3686, "reset": "zero",
                 "spiking": true}, ...],
     "info": {...free-form; the keys in INFO_TYPES are type-checked...}}

No pickle is involved anywhere: safetensors stores raw little-endian arrays.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
HEADER_KEY = "spikeline"
RESETS = ("zero", "subtract")
DECAY_ONE = 4096  # decay a means v <- trunc0(v * a / 4096)
MAX_T = 65535  # steps per sample: a chosen bound, so a header cannot demand unbounded per-step memories
# (the HDL sizes its step counter and result memory, T x n_classes readout words, from the model's T)
MIN_DT = 1e-6  # seconds per step: event times have microsecond resolution at best
# ``info`` is free-form, but these keys, when present, are read by the tools and must have these types
INFO_TYPES = {"seed": (int,), "float_checkpoint": (str,), "name": (str,), "no_delays": (bool,),
              "data_source": (str,), "data_hash": (str,)}
# the optional input front-end ``time_norm`` (word-duration normalization before binning; its semantics are
# sw.data.time_norm's): absent or null = off. Its rules live here, once: the training config
# (``data.time_norm``) and the loader both check with :func:`check_time_norm`.
TIME_NORM_MODES = ("always", "fit")
# (the defaults are round 7's best screened setting, docs/results.md section 4)
TIME_NORM_DEFAULTS = {"mode": "always", "start": 0.15, "span": 0.4, "quantile": 0.02, "smooth": 0.02,
                      "max_factor": 8.0}


class ModelFileError(ValueError):
    """A model (file or in memory) breaks the contract.

    ``field`` names the offending field, e.g. ``layers[1].delays``.
    """

    def __init__(self, field: str, message: str, path: str | os.PathLike | None = None):
        self.field, self.message = field, message
        self.path = None if path is None else str(path)
        where = f"model file '{self.path}': " if path is not None else ""
        super().__init__(f"{where}field '{field}': {message}")


@dataclass(frozen=True)
class Widths:
    """Hardware word widths; the defaults are docs/contract.md's."""

    weight_bits: int = 8
    membrane_bits: int = 24
    acc_bits: int = 24
    readout_bits: int = 32
    max_delay: int = 63

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("weight_bits", "membrane_bits", "acc_bits", "readout_bits", "max_delay")}


@dataclass
class Layer:
    """One feed-forward layer; ``weights[k, i, j]`` is the tap i -> j at ``delays[k]``."""

    delays: np.ndarray  # int64 [K], sorted, distinct
    weights: np.ndarray  # signed int [K, n_in, n_out]
    threshold: int
    decay: int
    reset: str = "zero"
    spiking: bool = True

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[2])

    @property
    def max_delay(self) -> int:
        return int(self.delays[-1])


@dataclass
class Model:
    """A stack of layers; the last one is the non-spiking readout."""

    layers: list[Layer]
    n_inputs: int
    T: int
    dt: float = 0.01
    widths: Widths = field(default_factory=Widths)
    info: dict[str, Any] = field(default_factory=dict)
    time_norm: dict[str, Any] | None = None  # input front-end (check_time_norm); None = off

    @property
    def n_classes(self) -> int:
        return self.layers[-1].n_out


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_time_norm(tn: Any, window: float | None = None, fld: str = "time_norm",
                    path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The complete ``time_norm`` setting (missing keys take :data:`TIME_NORM_DEFAULTS`) or ``None`` (off).

    ``window``: the input window ``T * dt`` in seconds, which ``start + span`` must not exceed.
    Raises :class:`ModelFileError` naming the sub-field (``<fld>.span``, ...)."""
    if tn is None:
        return None
    if not isinstance(tn, dict):
        raise ModelFileError(fld, f"must be null (off) or an object with keys {sorted(TIME_NORM_DEFAULTS)}, "
                                  f"got {tn!r}", path)
    unknown = sorted(set(tn) - set(TIME_NORM_DEFAULTS))
    if unknown:
        raise ModelFileError(f"{fld}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(TIME_NORM_DEFAULTS))})",
                             path)
    out = {**TIME_NORM_DEFAULTS, **tn}
    if out["mode"] not in TIME_NORM_MODES:
        raise ModelFileError(f"{fld}.mode", f"must be one of {list(TIME_NORM_MODES)}, got {out['mode']!r}", path)
    for key, ok, rule in (("start", lambda v: v >= 0, ">= 0 seconds"), ("span", lambda v: v > 0, "> 0 seconds"),
                          ("quantile", lambda v: 0 <= v < 0.5, "in [0, 0.5)"),
                          ("smooth", lambda v: 0 <= v <= 1, "in [0, 1] seconds"),
                          ("max_factor", lambda v: v >= 1, ">= 1")):
        v = out[key]
        if not _number(v) or not ok(v):
            raise ModelFileError(f"{fld}.{key}", f"must be a finite number {rule}, got {v!r}", path)
        out[key] = float(v)
    if window is not None and out["start"] + out["span"] > window * (1 + 1e-9):
        raise ModelFileError(f"{fld}.span", f"start + span = {out['start'] + out['span']:g} s exceeds the input "
                                            f"window T * dt = {window:g} s (shorten start and span, or set it to null: off)", path)
    return out


def validate(model: Model, path: str | os.PathLike | None = None) -> Model:
    """Check every rule of docs/contract.md "The model file and what the loader refuses"; return the model.

    Raises :class:`ModelFileError` naming the field.
    """

    def err(fld: str, msg: str) -> ModelFileError:
        return ModelFileError(fld, msg, path)

    w = model.widths
    for name, lo, hi in (("weight_bits", 2, 32), ("membrane_bits", 2, 48), ("acc_bits", 2, 48),
                         ("readout_bits", 2, 62), ("max_delay", 0, 4095)):
        v = getattr(w, name)
        if not _is_int(v) or not lo <= v <= hi:
            raise err(f"widths.{name}", f"must be an int in [{lo}, {hi}], got {v!r}")
    if not _is_int(model.n_inputs) or model.n_inputs < 1:
        raise err("n_inputs", f"must be a positive int, got {model.n_inputs!r}")
    if not _is_int(model.T) or not 1 <= model.T <= MAX_T:
        raise err("T", f"must be an int in [1, {MAX_T}], got {model.T!r}")
    if (not isinstance(model.dt, (float, int)) or isinstance(model.dt, bool) or not math.isfinite(model.dt)
            or not MIN_DT <= model.dt):
        raise err("dt", f"must be a finite number of seconds >= {MIN_DT}, got {model.dt!r}")
    check_time_norm(model.time_norm, model.T * model.dt, "time_norm", path)
    if not isinstance(model.info, dict):
        raise err("info", f"must be a JSON object, got {type(model.info).__name__}")
    for key, types in INFO_TYPES.items():
        v = model.info.get(key)
        if key in model.info and (not isinstance(v, types) or (types == (int,) and isinstance(v, bool))):
            raise err(f"info.{key}", f"must be of type {types[0].__name__}, got {v!r}")
    if not model.layers:
        raise err("layers", "a model needs at least one layer")
    wmin, wmax = -(1 << (w.weight_bits - 1)), (1 << (w.weight_bits - 1)) - 1
    vmax = (1 << (w.membrane_bits - 1)) - 1
    acc_limit = 1 << (w.acc_bits - 1)
    n_prev = model.n_inputs
    for l, layer in enumerate(model.layers):
        f = f"layers[{l}]"
        d = np.asarray(layer.delays)
        if d.ndim != 1 or d.size == 0:
            raise err(f"{f}.delays", "needs at least one delay level")
        if not np.issubdtype(d.dtype, np.integer):
            raise err(f"{f}.delays", f"must be integers, got dtype {d.dtype}")
        if np.any(np.diff(d) <= 0):
            raise err(f"{f}.delays", f"must be sorted and distinct, got {d.tolist()}")
        if d[0] < 0 or d[-1] > w.max_delay:
            raise err(f"{f}.delays", f"must lie in [0, max_delay={w.max_delay}], got {d.tolist()}")
        W = layer.weights
        if not isinstance(W, np.ndarray) or W.ndim != 3:
            raise err(f"{f}.weights", "must be a 3-d array [K, n_in, n_out]")
        if not np.issubdtype(W.dtype, np.integer):
            raise err(f"{f}.weights", f"must have an integer dtype, got {W.dtype}")
        if W.shape[0] != d.size:
            raise err(f"{f}.weights", f"has K={W.shape[0]} delay levels but delays has {d.size}")
        if W.shape[1] != n_prev:
            src = "n_inputs" if l == 0 else f"layers[{l - 1}].n_out"
            raise err(f"{f}.weights", f"n_in={W.shape[1]} differs from {src}={n_prev}")
        if W.shape[2] < 1:
            raise err(f"{f}.weights", "n_out must be at least 1")
        if W.size and (W.min() < wmin or W.max() > wmax):
            raise err(f"{f}.weights", f"value outside weight_bits={w.weight_bits} range [{wmin}, {wmax}]")
        worst = np.abs(W.astype(np.int64)).sum(axis=(0, 1)).max(initial=0)
        if worst >= acc_limit:
            raise err(f"{f}.weights", f"worst-case sum {int(worst)} could overflow acc_bits={w.acc_bits} (limit {acc_limit - 1})")
        if not _is_int(layer.threshold) or layer.threshold < 1:
            raise err(f"{f}.threshold", f"must be a positive int, got {layer.threshold!r}")
        if layer.threshold > vmax:
            raise err(f"{f}.threshold", f"{layer.threshold} exceeds the membrane maximum {vmax} (membrane_bits={w.membrane_bits})")
        if not _is_int(layer.decay) or not 0 <= layer.decay <= DECAY_ONE:
            raise err(f"{f}.decay", f"must be an int in [0, {DECAY_ONE}], got {layer.decay!r}")
        if layer.reset not in RESETS:
            raise err(f"{f}.reset", f"must be one of {RESETS}, got {layer.reset!r}")
        last = l == len(model.layers) - 1
        if not isinstance(layer.spiking, (bool, np.bool_)):
            raise err(f"{f}.spiking", f"must be a bool, got {layer.spiking!r}")
        if last and layer.spiking:
            raise err(f"{f}.spiking", "the last layer is the readout and must be non-spiking")
        if not last and not layer.spiking:
            raise err(f"{f}.spiking", "hidden layers must be spiking")
        n_prev = W.shape[2]
    return model


def _header(model: Model) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "n_inputs": int(model.n_inputs),
        "T": int(model.T),
        "dt": float(model.dt),
        "widths": model.widths.as_dict(),
        "layers": [
            {
                "n_in": L.n_in,
                "n_out": L.n_out,
                "delays": [int(x) for x in L.delays],
                "threshold": int(L.threshold),
                "decay": int(L.decay),
                "reset": L.reset,
                "spiking": bool(L.spiking),
            }
            for L in model.layers
        ],
        "info": model.info,
        **({} if model.time_norm is None else {"time_norm": check_time_norm(model.time_norm)}),
    }


def save(model: Model, path: str | os.PathLike) -> Path:
    """Validate and write ``model`` to ``path`` (atomically: temp file + rename)."""
    from safetensors.numpy import save_file

    validate(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"layers.{l}.weights": np.ascontiguousarray(L.weights) for l, L in enumerate(model.layers)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={HEADER_KEY: json.dumps(_header(model))}))
    return path


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_name)`` on a uniquely named temp file beside ``path``, then
    rename it over ``path``; on any failure the temp file is removed and ``path``
    is untouched. Readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _get(d: dict, key: str, fld: str, path, kind=None):
    if not isinstance(d, dict) or key not in d:
        raise ModelFileError(fld, "missing field", path)
    v = d[key]
    if kind is not None and not isinstance(v, kind):
        raise ModelFileError(fld, f"has the wrong type {type(v).__name__}", path)
    return v


def load(path: str | os.PathLike) -> Model:
    """Read and validate a model file; raise :class:`ModelFileError` on any fault."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError("file", "no such file", path)
    try:
        with safe_open(str(path), framework="np") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as e:  # safetensors raises its own error types for truncation/garbage
        raise ModelFileError("file", f"not a readable safetensors file ({e})", path) from None
    if HEADER_KEY not in meta:
        raise ModelFileError(HEADER_KEY, "missing header (not a spikeline model file)", path)
    try:
        h = json.loads(meta[HEADER_KEY])
    except json.JSONDecodeError as e:
        raise ModelFileError(HEADER_KEY, f"header is not valid JSON ({e})", path) from None
    if not isinstance(h, dict):
        raise ModelFileError(HEADER_KEY, "header must be a JSON object", path)
    ver = _get(h, "schema_version", "schema_version", path)
    if ver != SCHEMA_VERSION:
        raise ModelFileError("schema_version", f"unknown schema version {ver!r} (this build reads {SCHEMA_VERSION})", path)
    wd = _get(h, "widths", "widths", path, dict)
    widths = Widths(**{k: _get(wd, k, f"widths.{k}", path) for k in Widths().as_dict()})
    layers_h = _get(h, "layers", "layers", path, list)
    layers = []
    for l, lh in enumerate(layers_h):
        f = f"layers[{l}]"
        key = f"layers.{l}.weights"
        if key not in tensors:
            raise ModelFileError(f"{f}.weights", f"missing tensor '{key}'", path)
        W = tensors[key]
        delays = _get(lh, "delays", f"{f}.delays", path, list)
        if not all(_is_int(x) for x in delays):
            raise ModelFileError(f"{f}.delays", f"must be a list of ints, got {delays!r}", path)
        for dim, name in ((1, "n_in"), (2, "n_out")):
            n = _get(lh, name, f"{f}.{name}", path)
            if W.ndim == 3 and n != W.shape[dim]:
                raise ModelFileError(f"{f}.{name}", f"header says {n} but weights have shape {list(W.shape)}", path)
        layers.append(
            Layer(
                delays=np.asarray(delays, dtype=np.int64),
                weights=W,
                threshold=_get(lh, "threshold", f"{f}.threshold", path),
                decay=_get(lh, "decay", f"{f}.decay", path),
                reset=_get(lh, "reset", f"{f}.reset", path),
                spiking=_get(lh, "spiking", f"{f}.spiking", path),
            )
        )
    extra = set(tensors) - {f"layers.{l}.weights" for l in range(len(layers))}
    if extra:
        raise ModelFileError("layers", f"tensors {sorted(extra)} belong to no layer in the header", path)
    model = Model(
        layers=layers,
        n_inputs=_get(h, "n_inputs", "n_inputs", path),
        T=_get(h, "T", "T", path),
        dt=_get(h, "dt", "dt", path),
        widths=widths,
        info={} if h.get("info") is None else h["info"],
        time_norm=h.get("time_norm"),  # absent (files written before it existed) or null: off
    )
    model = validate(model, path)
    model.time_norm = check_time_norm(model.time_norm)  # every key present
    return model
