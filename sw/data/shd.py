"""Spiking Heidelberg Digits (SHD) HDF5: read, write, bin, batch.

File layout (as the published ``shd_train.h5`` / ``shd_test.h5``)::

    spikes/times   vlen float16, seconds, ascending within a sample
    spikes/units   vlen uint16 (some copies: int16), channel 0..699
    labels         uint8, 0..19 (0-9 English zero..nine, 10-19 German null..neun)
    extra/speaker  speaker id per sample
    extra/keys     20 byte strings, the word of each label
    extra/meta_info/{gender, age, body_height}   per speaker

The reader casts every field with ``astype`` and checks it, so it reads files it
did not write.  Any problem raises :class:`ShdFormatError` naming file and field.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sw.errors import InputError

N_CHANNELS = 700
N_CLASSES = 20


class ShdFormatError(InputError):
    """An SHD file is unreadable or breaks the layout; names the file and the field."""

    def __init__(self, path: str | os.PathLike, field: str | None, message: str):
        self.path = str(path)
        self.field = field
        where = f"SHD file '{self.path}'" + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")


@dataclass
class ShdEvents:
    """Events of one SHD file, one entry per sample."""

    times: list[np.ndarray]  # float64 seconds, non-decreasing
    units: list[np.ndarray]  # int64 channels in [0, 700)
    labels: np.ndarray  # int64 [N] in [0, 20)
    speakers: np.ndarray | None = None  # int64 [N]
    keys: list[str] | None = None  # word of each label

    def __len__(self) -> int:
        return len(self.labels)


def _dataset(f: h5py.File, path, name: str) -> h5py.Dataset:
    if name not in f:
        raise ShdFormatError(path, name, "missing dataset")
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise ShdFormatError(path, name, "is a group, expected a dataset")
    return obj


def _as_int(arr, path, field: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            pass  # integral floats are accepted
        else:
            raise ShdFormatError(path, field, f"expected integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def read_shd(path: str | os.PathLike) -> ShdEvents:
    """Read and validate an SHD-layout HDF5 file."""
    path = Path(path)
    if not path.is_file():
        raise ShdFormatError(path, None, "no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ShdFormatError(path, None, f"not a readable HDF5 file (truncated or corrupt?): {e}") from e
    try:
        with f:
            return _read_open(f, path)
    except ShdFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        # h5py raises these for damaged chunks or heaps found only while reading
        raise ShdFormatError(path, None, f"corrupt HDF5 content: {e}") from e


def _read_open(f: h5py.File, path: Path) -> ShdEvents:
    raw_t = _dataset(f, path, "spikes/times")[()]
    raw_u = _dataset(f, path, "spikes/units")[()]
    labels = _as_int(_dataset(f, path, "labels")[()], path, "labels").reshape(-1)
    n = len(labels)
    if len(raw_t) != n:
        raise ShdFormatError(path, "spikes/times", f"has {len(raw_t)} samples but 'labels' has {n}")
    if len(raw_u) != n:
        raise ShdFormatError(path, "spikes/units", f"has {len(raw_u)} samples but 'labels' has {n}")
    times, units = [], []
    for i in range(n):
        t = np.asarray(raw_t[i])
        if t.dtype.kind not in "fiu":
            raise ShdFormatError(path, "spikes/times", f"sample {i}: expected numbers, got dtype {t.dtype}")
        t = t.astype(np.float64).reshape(-1)
        u = _as_int(raw_u[i], path, "spikes/units").reshape(-1)
        if len(t) != len(u):
            raise ShdFormatError(path, "spikes/units",
                                 f"sample {i}: {len(u)} units but {len(t)} times in 'spikes/times'")
        if len(t):
            if not np.all(np.isfinite(t)):
                raise ShdFormatError(path, "spikes/times", f"sample {i}: NaN or infinite time")
            if t.min() < 0:
                raise ShdFormatError(path, "spikes/times", f"sample {i}: negative time {t.min()}")
            if np.any(np.diff(t) < 0):
                raise ShdFormatError(path, "spikes/times", f"sample {i}: times are not sorted ascending")
            if u.min() < 0 or u.max() >= N_CHANNELS:
                bad = u[(u < 0) | (u >= N_CHANNELS)][0]
                raise ShdFormatError(path, "spikes/units", f"sample {i}: unit {bad} outside [0, {N_CHANNELS})")
        times.append(t)
        units.append(u)
    if n and (labels.min() < 0 or labels.max() >= N_CLASSES):
        bad = labels[(labels < 0) | (labels >= N_CLASSES)][0]
        raise ShdFormatError(path, "labels", f"label {bad} outside [0, {N_CLASSES})")

    speakers = None
    if "extra/speaker" in f:
        speakers = _as_int(_dataset(f, path, "extra/speaker")[()], path, "extra/speaker").reshape(-1)
        if len(speakers) != n:
            raise ShdFormatError(path, "extra/speaker", f"has {len(speakers)} entries but 'labels' has {n}")
    keys = None
    if "extra/keys" in f:
        raw_k = np.asarray(_dataset(f, path, "extra/keys")[()]).reshape(-1)
        keys = [k.decode("utf-8") if isinstance(k, bytes) else str(k) for k in raw_k]
        if n and labels.max() >= len(keys):
            raise ShdFormatError(path, "extra/keys",
                                 f"has {len(keys)} keys but a label is {labels.max()}; every label needs a key")
    return ShdEvents(times=times, units=units, labels=labels, speakers=speakers, keys=keys)


def write_shd(path: str | os.PathLike, times, units, labels, speakers, keys=None, meta=None) -> None:
    """Write samples in exactly the SHD layout (vlen float16 times, vlen uint16
    units, uint8 labels, ``extra/speaker``, ``extra/keys``, ``extra/meta_info/*``).

    ``meta`` maps names (e.g. ``gender``, ``age``, ``body_height``) to per-speaker
    arrays stored under ``extra/meta_info``.  Written to a temporary file, then
    renamed, so readers never see half a file.
    """
    path = Path(path)
    n = len(labels)
    if len(times) != n or len(units) != n:
        raise ValueError(f"times ({len(times)}), units ({len(units)}) and labels ({n}) differ in length")
    labels = np.asarray(labels)
    if n and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise ValueError(f"labels: values must lie in [0, {N_CLASSES})")
    speakers = np.asarray(speakers if speakers is not None else np.zeros(n, np.int64))
    if len(speakers) != n:
        raise ValueError(f"speakers: {len(speakers)} entries for {n} samples")
    vt = h5py.vlen_dtype(np.dtype("float16"))
    vu = h5py.vlen_dtype(np.dtype("uint16"))
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with h5py.File(tmp, "w") as f:
            dt = f.create_dataset("spikes/times", (n,), dtype=vt)
            du = f.create_dataset("spikes/units", (n,), dtype=vu)
            for i in range(n):
                t = np.asarray(times[i], dtype=np.float64)
                u = np.asarray(units[i])
                if len(t) != len(u):
                    raise ValueError(f"sample {i}: {len(t)} times but {len(u)} units")
                if len(u) and (u.min() < 0 or u.max() >= N_CHANNELS):
                    raise ValueError(f"units: sample {i} has a unit outside [0, {N_CHANNELS})")
                dt[i] = t.astype(np.float16)
                du[i] = u.astype(np.uint16)
            f.create_dataset("labels", data=labels.astype(np.uint8))
            f.create_dataset("extra/speaker", data=speakers.astype(np.uint16))
            if keys is not None:
                f.create_dataset("extra/keys", data=np.array([str(k).encode("utf-8") for k in keys]))
            for name, values in (meta or {}).items():
                arr = np.asarray(values)
                if arr.dtype.kind == "U":
                    arr = np.char.encode(arr, "utf-8")
                f.create_dataset(f"extra/meta_info/{name}", data=arr)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def bin_events(times, units, dt: float, T: int, n_channels: int = N_CHANNELS, pool: int = 1,
               time_norm: dict | None = None) -> np.ndarray:
    """Binary raster ``bool [T, n_channels // pool]`` of one sample.

    ``time_norm`` (``None`` = off): the word-duration normalization of
    :mod:`sw.data.time_norm`, applied to the event times before binning (a
    complete setting, as :func:`hw.model_file.check_time_norm` returns it).

    Bin ``k`` holds events with ``k*dt <= t < (k+1)*dt``; ``t/dt`` is rounded to
    1e-9 first so that e.g. t = 0.03, dt = 0.01 lands in bin 3 despite decimal
    representation error.  Events at or beyond ``T*dt`` are dropped (this is how
    samples are truncated to ``T``; shorter samples are zero-padded).  Pooling
    ORs each group of ``pool`` adjacent channels: output column ``c // pool``.
    """
    if not dt > 0:
        raise ValueError(f"dt: must be positive, got {dt!r}")
    if int(T) != T or T <= 0:
        raise ValueError(f"T: must be a positive int, got {T!r}")
    if int(pool) != pool or pool <= 0 or n_channels % pool:
        raise ValueError(f"pool: must be a positive divisor of n_channels={n_channels}, got {pool!r}")
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    u = np.asarray(units).astype(np.int64).reshape(-1)
    if t.shape != u.shape:
        raise ValueError(f"times and units: lengths differ ({t.size} vs {u.size})")
    if u.size and (u.min() < 0 or u.max() >= n_channels):
        raise ValueError(f"units: a channel lies outside [0, {n_channels})")
    if t.size and (not np.all(np.isfinite(t)) or t.min() < 0):
        raise ValueError("times: must be finite and non-negative")
    if time_norm is not None:
        from sw.data.time_norm import normalize_times

        t, u = normalize_times(t, u, time_norm)
    with np.errstate(over="ignore"):  # t/dt may overflow to inf (t = 1e30, dt = 1e-300): such events lie beyond T
        kf = np.floor(np.round(t / dt, 9))
    keep = kf < T  # decided in float, before the cast, so huge times never wrap to a negative bin
    out = np.zeros((int(T), n_channels // int(pool)), dtype=bool)
    out[kf[keep].astype(np.int64), u[keep] // int(pool)] = True
    return out


@dataclass
class RasterSet:
    """Binned samples of one file."""

    X: np.ndarray  # bool [N, T, C]
    y: np.ndarray  # int64 [N]
    speakers: np.ndarray | None  # int64 [N]


def load_raster_set(path, dt: float = 0.01, T: int = 100, pool: int = 1, limit: int | None = None,
                    time_norm: dict | None = None) -> RasterSet:
    """Read an SHD file and bin every sample (the first ``limit`` if given; ``time_norm``: see :func:`bin_events`)."""
    ev = read_shd(path)
    n = len(ev) if limit is None else min(int(limit), len(ev))
    X = np.zeros((n, int(T), N_CHANNELS // int(pool)), dtype=bool)
    for i in range(n):
        X[i] = bin_events(ev.times[i], ev.units[i], dt, T, N_CHANNELS, pool, time_norm)
    spk = None if ev.speakers is None else ev.speakers[:n].copy()
    return RasterSet(X=X, y=ev.labels[:n].copy(), speakers=spk)


def load_rasters(path, dt: float = 0.01, T: int = 100, pool: int = 1,
                 limit: int | None = None, time_norm: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(X bool [N, T, 700 // pool], y int64 [N])`` of an SHD file (``time_norm``: see :func:`bin_events`)."""
    rs = load_raster_set(path, dt, T, pool, limit, time_norm)
    return rs.X, rs.y


def tonic_paths(root: str | os.PathLike) -> tuple[Path, Path]:
    """Where tonic 1.7 keeps SHD under ``save_to=root``: ``root/SHD/shd_{train,test}.h5``."""
    root = Path(root)
    return root / "SHD" / "shd_train.h5", root / "SHD" / "shd_test.h5"


class ShdDataset(Dataset):
    """Samples of an SHD file as ``(float32 [T, 700 // pool] raster, int64 label)``.

    Events are read once; each sample is binned on access, padded or truncated to ``T``.
    """

    def __init__(self, path, dt: float = 0.01, T: int = 100, pool: int = 1, limit: int | None = None,
                 time_norm: dict | None = None):
        self.events = read_shd(path)
        self.dt, self.T, self.pool, self.time_norm = float(dt), int(T), int(pool), time_norm
        bin_events([], [], self.dt, self.T, N_CHANNELS, self.pool)  # validate parameters now
        self.n = len(self.events) if limit is None else min(int(limit), len(self.events))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not -self.n <= i < self.n:
            raise IndexError(f"sample {i} out of range for {self.n} samples")
        i %= self.n
        x = bin_events(self.events.times[i], self.events.units[i], self.dt, self.T, N_CHANNELS, self.pool,
                       self.time_norm)
        return torch.from_numpy(x.astype(np.float32)), int(self.events.labels[i])


def make_loader(path, batch_size: int, shuffle: bool, seed: int = 0, dt: float = 0.01, T: int = 100,
                pool: int = 1, limit: int | None = None, time_norm: dict | None = None) -> DataLoader:
    """A DataLoader of ``(x float32 [B, T, C], y int64 [B])``; ``seed`` fixes the shuffle order."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return DataLoader(ShdDataset(path, dt, T, pool, limit, time_norm), batch_size=int(batch_size), shuffle=bool(shuffle),
                      generator=g, num_workers=0)
