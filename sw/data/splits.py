"""The train / validation / test split of a config's data set (library code).

:func:`load_data` returns a :class:`DataSplits`; the validation split is held
out of train with a generator seeded by ``(seed, 7)``, so model selection never
sees the test split.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sw.config import ConfigError


@dataclass
class DataSplits:
    """Binary rasters ``X [N, T, C]`` (bool) and labels ``y [N]`` (int64) of each split."""

    Xtr: np.ndarray
    ytr: np.ndarray
    Xval: np.ndarray
    yval: np.ndarray
    Xte: np.ndarray
    yte: np.ndarray
    n_classes: int
    source: str = ""  # provenance recorded in the model file (info.data_source)
    files: tuple = ()  # (train file, test file) when the data comes from files (info.data_hash)

    @property
    def n_inputs(self) -> int:
        return int(self.Xtr.shape[2])


def shd_files(root) -> tuple[Path, Path] | None:
    """``(train, test)`` SHD files of a data directory: ``root/shd_{train,test}.h5`` (sw.data.generate's
    layout) or ``root/SHD/...`` (tonic's), the first layout holding both; ``None`` if neither does."""
    root = Path(root)
    for tr, te in ((root / "shd_train.h5", root / "shd_test.h5"),
                   (root / "SHD" / "shd_train.h5", root / "SHD" / "shd_test.h5")):
        if tr.is_file() and te.is_file():
            return tr, te
    return None


def load_data(cfg: dict) -> DataSplits:
    """The splits of ``cfg["data"]`` (synthetic task, offline set, or an SHD directory)."""
    d, seed = cfg["data"], cfg["seed"]
    src = d["source"]
    files: tuple = ()
    from sw.data import tonic_io

    tn = time_norm(cfg)
    if tonic_io.parse(src) is not None:  # tonic's SHD / SSC classes on local files; classes inferred
        Xtr, ytr, c_tr, f_tr = tonic_io.load(src, "train", d["dt"], d["T"], d["pool"], d["limit"], tn)
        Xte, yte, c_te, f_te = tonic_io.load(src, "test", d["dt"], d["T"], d["pool"], d["limit"], tn)
        n_classes, files = max(c_tr, c_te), (f_tr, f_te)
    elif src == "synthetic":
        from sw.data.synthetic import make_delay_task

        s = d["synthetic"]
        kw = dict(n_channels=s["n_channels"], n_classes=s["n_classes"], T=d["T"], gap=s["gap"], jitter=s["jitter"],
                  noise=s["noise"], class_seed=seed)
        Xtr, ytr = make_delay_task(s["n_train"], seed=seed * 2 + 1, **kw)
        Xte, yte = make_delay_task(s["n_test"], seed=seed * 2 + 2, **kw)
        n_classes = s["n_classes"]
    else:
        from sw.data.shd import load_rasters

        if src == "offline":
            from sw.data.generate import ensure_default_dataset

            tr, te = ensure_default_dataset(root=d["root"], seed=0, workers=2)  # processes, not torch threads
        else:
            found = shd_files(src)
            if found is None:
                raise ConfigError("data.source", f"'{src}' is neither 'synthetic', 'offline' nor a directory "
                                                 "holding shd_train.h5 and shd_test.h5")
            tr, te = found
        files = (Path(tr), Path(te))
        Xtr, ytr = load_rasters(tr, dt=d["dt"], T=d["T"], pool=d["pool"], limit=d["limit"], time_norm=tn)
        Xte, yte = load_rasters(te, dt=d["dt"], T=d["T"], pool=d["pool"], limit=d["limit"], time_norm=tn)
        n_classes = 20
    for split, yy in (("train", ytr), ("test", yte)):
        if len(yy) == 0:
            raise ConfigError("data.source", f"the {split} split of '{src}' holds 0 samples")
    # validation split held out of train (model selection never sees test)
    perm = np.random.default_rng([seed, 7]).permutation(len(ytr))
    n_val = int(round(d["val_fraction"] * len(ytr)))
    val, tr_idx = perm[:n_val], np.sort(perm[n_val:])
    return DataSplits(Xtr[tr_idx], ytr[tr_idx], Xtr[np.sort(val)], ytr[np.sort(val)], Xte, yte, n_classes,
                      source=data_source_name(src), files=files)


def time_norm(cfg: dict) -> dict | None:
    """The complete ``data.time_norm`` setting of a checked config (``None`` = off; ``sw.data.time_norm``)."""
    from hw.model_file import check_time_norm

    return check_time_norm(cfg["data"].get("time_norm"))


def data_source_name(src: str) -> str:
    """The data source as recorded in a model file: ``synthetic``, ``offline``, ``tonic-shd:ROOT``,
    ``tonic-ssc:ROOT`` or ``shd:DIR``."""
    from sw.data import tonic_io

    if src in ("synthetic", "offline") or tonic_io.parse(src) is not None:
        return src
    return f"shd:{src}"
