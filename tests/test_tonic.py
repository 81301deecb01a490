"""tonic's SHD / SSC dataset classes on local files: no download, classes inferred,
provenance recorded in the model file and checked at evaluation."""
import json

import h5py
import numpy as np
import pytest
import tonic  # noqa: F401  (a runtime dependency: missing is a broken install, not a skip)

from hw.model_file import load
from sw.data import tonic_io
from sw.data.shd import bin_events  # noqa: E402
from sw.errors import InputError  # noqa: E402


def _write_hsd(path, n, n_classes, seed):
    """A file in the Heidelberg layout written with h5py directly (SSC labels go up to 34)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = np.arange(n) % n_classes
    times, units = [], []
    with h5py.File(path, "w") as f:
        dt = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float16))
        du = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(n):
            c = labels[i]
            t = np.sort(np.concatenate([rng.uniform(0, 0.1, 10), [0.01 * (c % 7) + 0.002]]))
            u = np.concatenate([rng.integers(0, 700, 10), [c * 20]])[np.argsort(np.argsort(t))]
            dt[i], du[i] = t.astype(np.float16), u.astype(np.uint16)
            times.append(t.astype(np.float16).astype(np.float64))
            units.append(u)
        f.create_dataset("labels", data=labels.astype(np.uint16))
        f.create_dataset("extra/speaker", data=np.zeros(n, np.uint16))
        f.create_dataset("extra/keys", data=np.array([f"w{k}".encode() for k in range(n_classes)]))
    return times, units, labels


def test_tonic_ssc_reads_local_files_and_infers_35_classes(tmp_path, monkeypatch):
    import tonic.dataset

    def no_network(*a, **k):
        raise AssertionError("tonic tried to download")
    monkeypatch.setattr(tonic.dataset.Dataset, "download", no_network)
    times, units, labels = _write_hsd(tmp_path / "SSC" / "ssc_test.h5", 40, 35, 1)
    X, y, n_classes, path = tonic_io.load(f"tonic-ssc:{tmp_path}", "test", dt=0.01, T=12, pool=10)
    assert n_classes == 35 and path == tmp_path / "SSC" / "ssc_test.h5"
    assert np.array_equal(y, labels)
    # independent expectation: the same events binned from the h5py arrays directly
    for i in range(len(y)):
        assert np.array_equal(X[i], bin_events(times[i], units[i], 0.01, 12, 700, 10))


def test_missing_files_are_named_never_downloaded(tmp_path):
    with pytest.raises(InputError, match="shd_train.h5.*does not\\s+download"):
        tonic_io.load(f"tonic-shd:{tmp_path}", "train", dt=0.01, T=5)
    with pytest.raises(InputError, match="needs a folder"):
        tonic_io.parse("tonic-ssc:")
    assert tonic_io.parse("offline") is None and tonic_io.parse("/some/dir") is None


def test_train_on_tonic_records_provenance_and_eval_checks_it(tmp_path, capsys):
    from sw.evaluate import main as eval_main
    from sw.trainer import main as train_main

    _write_hsd(tmp_path / "SSC" / "ssc_train.h5", 70, 35, 2)
    _write_hsd(tmp_path / "SSC" / "ssc_test.h5", 35, 35, 3)
    cfg = {"data": {"T": 12, "pool": 35, "val_fraction": 0.0,  # the default's time_norm, fitted to a 0.12 s window
                    "time_norm": {"start": 0.01, "span": 0.08}},
           "model": {"hidden": [6], "max_delay": 4, "delay_stride": 2},
           "train": {"epochs": 1, "batch_size": 35, "threads": 1, "augment_shift": 0},
           "prune": {"method": "none"}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    rc = train_main(["--config", str(tmp_path / "c.json"), "--data", f"tonic-ssc:{tmp_path}",
                     "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc in (0, 1), capsys.readouterr().err
    m = load(tmp_path / "o" / "model.safetensors")
    assert m.n_classes == 35 and m.n_inputs == 20
    assert m.info["data_source"] == f"tonic-ssc:{tmp_path}"
    assert m.info["data_hash"] == tonic_io.file_hash(tmp_path / "SSC" / "ssc_test.h5")
    capsys.readouterr()
    assert eval_main(["--model", str(tmp_path / "o" / "model.safetensors"), "--data", f"tonic-ssc:{tmp_path}",
                      "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().err
    # the same model on another set with fitting shapes: it runs, but not silently
    other = tmp_path / "other"
    _write_hsd(other / "SSC" / "ssc_test.h5", 35, 35, 9)
    assert eval_main(["--model", str(tmp_path / "o" / "model.safetensors"), "--data", f"tonic-ssc:{other}",
                      "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "trained on" in err and str(other) in err
