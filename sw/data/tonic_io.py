"""tonic's Heidelberg data sets (SHD, SSC) read from local files, and data provenance.

    --data tonic-shd:ROOT     tonic.datasets.SHD(save_to=ROOT): ROOT/SHD/shd_{train,test}.h5
    --data tonic-ssc:ROOT     tonic.datasets.SSC(save_to=ROOT): ROOT/SSC/ssc_{train,test}.h5 (35 classes)

spikeline never downloads: when a file is missing, the error names it (tonic
itself would try to fetch the zip archive). Events come from tonic's own
dataset classes (structured arrays, ``t`` in microseconds, ``x`` the channel)
and are binned by ``sw.data.shd.bin_events``, exactly like SHD files read
directly. The class count is inferred from the data (the files' label keys and
labels), not assumed.

:func:`file_hash` is the data-set fingerprint stored in a model file's
``info.data_hash`` (``sw.trainer``) and checked by ``sw.evaluate``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from sw.errors import InputError

KINDS = {"tonic-shd": ("SHD", {"train": "shd_train.h5", "test": "shd_test.h5"}),
         "tonic-ssc": ("SSC", {"train": "ssc_train.h5", "test": "ssc_test.h5", "valid": "ssc_valid.h5"})}
N_CHANNELS = 700


def parse(source: str) -> tuple[str, Path] | None:
    """``(kind, root)`` of a ``tonic-shd:ROOT`` / ``tonic-ssc:ROOT`` source, else None."""
    kind, sep, root = str(source).partition(":")
    if not sep or kind not in KINDS:
        return None
    if not root:
        raise InputError(f"--data {source}: needs a folder after the colon, e.g. {kind}:~/data")
    return kind, Path(root).expanduser()


def split_file(source: str, split: str) -> Path:
    kind, root = parse(source)
    folder, files = KINDS[kind]
    return root / folder / files[split]


def _dataset(source: str, split: str):
    """tonic's dataset object for one split, reading local files only."""
    import tonic

    kind, root = parse(source)
    folder, files = KINDS[kind]
    path = split_file(source, split)
    if not path.is_file():
        raise InputError(f"--data {source}: no file '{path}' (spikeline reads local files only and does not "
                         f"download; put {files[split]} under {root / folder})")
    base = getattr(tonic.datasets, folder)

    def _check_exists(self):  # tonic also wants the .zip archive; the extracted .h5 is all spikeline reads
        return os.path.isfile(os.path.join(self.location_on_system, self.data_filename))

    def download(self):  # never reached: _check_exists is true (the file was checked above)
        raise InputError(f"--data {source}: '{path}' is missing and spikeline does not download")

    local = type(folder, (base,), {"_check_exists": _check_exists, "download": download})  # same folder name
    try:
        if kind == "tonic-shd":
            return local(save_to=str(root), train=(split == "train"))
        return local(save_to=str(root), split=split)
    except InputError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"--data {source}: '{path}' is not a readable {folder} file ({e})") from None


def load(source: str, split: str, dt: float, T: int, pool: int = 1, limit: int | None = None,
         time_norm: dict | None = None):
    """``(X bool [N, T, 700 // pool], y int64 [N], n_classes, path)`` of one split
    (``time_norm``: see :func:`sw.data.shd.bin_events`)."""
    from sw.data.shd import bin_events

    ds = _dataset(source, split)
    path = split_file(source, split)
    n = len(ds) if limit is None else min(int(limit), len(ds))
    X = np.zeros((n, int(T), N_CHANNELS // int(pool)), dtype=bool)
    y = np.zeros(n, dtype=np.int64)
    for i in range(n):
        try:
            ev, label = ds[i]
            X[i] = bin_events(np.asarray(ev["t"], np.float64) * 1e-6, np.asarray(ev["x"]), dt, T, N_CHANNELS, pool,
                                time_norm)
        except (ValueError, KeyError, OSError) as e:
            raise InputError(f"--data {source}: '{path}' sample {i}: {e}") from None
        y[i] = int(label)
    if n and y.min() < 0:
        raise InputError(f"--data {source}: '{path}' has a negative label {int(y.min())}")
    keys = getattr(ds, "classes", None)
    n_classes = max(len(keys) if keys is not None else 0, int(y.max()) + 1 if n else 0)
    return X, y, n_classes, path


def file_hash(*paths) -> str:
    """``sha256:<hex>`` of the files' bytes, in order (the data-set fingerprint of a model file)."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()
