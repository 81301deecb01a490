"""SHD HDF5 loader: layout, casting, binning, batching and every format error."""
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from sw.data.shd import (ShdFormatError, ShdDataset, bin_events, load_raster_set, load_rasters, make_loader,
                         read_shd, tonic_paths, write_shd)

KEYS = [f"w{i}" for i in range(20)]


def _h5(path, times, units, labels, *, tdtype="float16", udtype="uint16", ldtype="uint8",
        speakers=None, keys=None, skip=()):
    """An SHD-layout file written with h5py directly (not through write_shd)."""
    with h5py.File(path, "w") as f:
        if "spikes/times" not in skip:
            d = f.create_dataset("spikes/times", (len(times),), dtype=h5py.vlen_dtype(np.dtype(tdtype)))
            for i, t in enumerate(times):
                d[i] = np.asarray(t, dtype=tdtype)
        if "spikes/units" not in skip:
            d = f.create_dataset("spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.dtype(udtype)))
            for i, u in enumerate(units):
                d[i] = np.asarray(u, dtype=udtype)
        if "labels" not in skip:
            f.create_dataset("labels", data=np.asarray(labels, dtype=ldtype))
        if speakers is not None:
            f.create_dataset("extra/speaker", data=np.asarray(speakers))
        if keys is not None:
            f.create_dataset("extra/keys", data=np.array([k.encode() for k in keys]))
    return path


def _rand_samples(rng, n):
    times, units = [], []
    for _ in range(n):
        k = int(rng.integers(0, 60))
        times.append(np.sort(rng.uniform(0, 1.2, k)))
        units.append(rng.integers(0, 700, k))
    return times, units


def test_reads_foreign_file_with_int16_units_and_casts(tmp_path):
    times = [[0.0, 0.5, 0.5, 1.0], [0.25]]
    units = [[0, 699, 3, 10], [42]]
    p = _h5(tmp_path / "a.h5", times, units, [3, 19], udtype="int16", ldtype="int32",
            tdtype="float32", speakers=np.array([7, 2], dtype=np.int8), keys=KEYS)
    ev = read_shd(p)
    assert len(ev) == 2
    assert all(t.dtype == np.float64 for t in ev.times) and all(u.dtype == np.int64 for u in ev.units)
    assert ev.labels.dtype == np.int64 and ev.labels.tolist() == [3, 19]
    assert ev.speakers.dtype == np.int64 and ev.speakers.tolist() == [7, 2]
    assert ev.keys == KEYS
    np.testing.assert_array_equal(ev.times[0], [0.0, 0.5, 0.5, 1.0])
    np.testing.assert_array_equal(ev.units[0], [0, 699, 3, 10])


def test_optional_extra_fields_absent(tmp_path):
    ev = read_shd(_h5(tmp_path / "a.h5", [[0.1]], [[1]], [0]))
    assert ev.speakers is None and ev.keys is None


def test_write_shd_exact_layout_and_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    times, units = _rand_samples(rng, 6)
    labels = rng.integers(0, 20, 6)
    spk = rng.integers(0, 12, 6)
    p = tmp_path / "w.h5"
    write_shd(p, times, units, labels, spk, keys=KEYS, meta={"gender": ["male", "female"], "age": [30, 41]})
    with h5py.File(p) as f:
        assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float16
        assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
        assert f["labels"].dtype == np.uint8
        assert f["extra/keys"][()].tolist() == [k.encode() for k in KEYS]
        assert f["extra/meta_info/gender"][()].tolist() == [b"male", b"female"]
        assert f["extra/meta_info/age"][()].tolist() == [30, 41]
    ev = read_shd(p)
    for i in range(6):
        np.testing.assert_array_equal(ev.times[i], times[i].astype(np.float16).astype(np.float64))
        np.testing.assert_array_equal(ev.units[i], units[i])
    np.testing.assert_array_equal(ev.labels, labels)
    np.testing.assert_array_equal(ev.speakers, spk)
    assert not list(tmp_path.glob("*.tmp"))


def test_bin_events_hand_cases():
    # t=0.03 is bin 3 (not 2 via 0.03/0.01 = 2.9999...); t=0.0999 bin 9; t >= T*dt dropped
    x = bin_events([0.0, 0.03, 0.0999, 0.1, 0.35], [5, 6, 7, 8, 9], dt=0.01, T=10, n_channels=10)
    assert x.shape == (10, 10) and x.dtype == bool
    want = np.zeros((10, 10), bool)
    want[0, 5] = want[3, 6] = want[9, 7] = True
    np.testing.assert_array_equal(x, want)
    # duplicates within one bin collapse to a single True
    y = bin_events([0.011, 0.012], [1, 1], dt=0.01, T=3, n_channels=4)
    assert y.sum() == 1 and y[1, 1]


def test_bin_events_pooling_ors_groups():
    x = bin_events([0.0, 0.0, 0.02, 0.02], [0, 1, 2, 5], dt=0.01, T=3, n_channels=6, pool=2)
    want = np.zeros((3, 3), bool)
    want[0, 0] = True  # channels 0 and 1 OR into one
    want[2, 1] = want[2, 2] = True
    np.testing.assert_array_equal(x, want)
    # pooling equals OR over the unpooled raster
    rng = np.random.default_rng(3)
    t, u = np.sort(rng.uniform(0, 1, 300)), rng.integers(0, 700, 300)
    full = bin_events(t, u, 0.01, 100)
    np.testing.assert_array_equal(bin_events(t, u, 0.01, 100, pool=7), full.reshape(100, 100, 7).any(axis=2))


@pytest.mark.parametrize("kw", [dict(pool=3), dict(pool=0), dict(dt=0.0), dict(T=0)])
def test_bin_events_bad_parameters(kw):
    args = dict(dt=0.01, T=10, n_channels=700, pool=1) | kw
    with pytest.raises(ValueError, match=next(iter(kw))):
        bin_events([0.1], [1], **args)


def test_bin_events_bad_unit():
    with pytest.raises(ValueError, match="units"):
        bin_events([0.1], [700], 0.01, 10)


def test_load_rasters_and_dataset_and_loader(tmp_path):
    rng = np.random.default_rng(1)
    times, units = _rand_samples(rng, 10)
    labels = np.arange(10) % 20
    p = tmp_path / "d.h5"
    write_shd(p, times, units, labels, np.arange(10) % 3, keys=KEYS)
    X, y = load_rasters(p, dt=0.02, T=40, pool=2)
    assert X.shape == (10, 40, 350) and X.dtype == bool and y.dtype == np.int64
    for i in range(10):
        t16 = times[i].astype(np.float16).astype(np.float64)
        np.testing.assert_array_equal(X[i], bin_events(t16, units[i], 0.02, 40, pool=2))
    rs = load_raster_set(p, dt=0.02, T=40, pool=2, limit=4)
    assert rs.X.shape[0] == 4 and rs.speakers.tolist() == [0, 1, 2, 0]
    ds = ShdDataset(p, dt=0.02, T=40, pool=2)
    x0, y0 = ds[3]
    assert x0.dtype == torch.float32 and tuple(x0.shape) == (40, 350) and y0 == 3
    np.testing.assert_array_equal(x0.numpy().astype(bool), X[3])

    def order(seed):
        return torch.cat([b[1] for b in make_loader(p, 4, True, seed, dt=0.02, T=40, pool=2)]).tolist()

    assert order(5) == order(5) and sorted(order(5)) == sorted(labels.tolist())
    assert any(order(s) != order(5) for s in range(6, 10))
    batches = list(make_loader(p, 4, False, 0, dt=0.02, T=40, pool=2))
    assert [tuple(b[0].shape) for b in batches] == [(4, 40, 350), (4, 40, 350), (2, 40, 350)]
    assert torch.cat([b[1] for b in batches]).tolist() == labels.tolist()


def test_tonic_paths(tmp_path):
    assert tonic_paths(tmp_path) == (tmp_path / "SHD" / "shd_train.h5", tmp_path / "SHD" / "shd_test.h5")


# ---- every format error names the file and the field ----

def _err(path, field):
    with pytest.raises(ShdFormatError) as ei:
        read_shd(path)
    msg = str(ei.value)
    assert str(path) in msg
    if field is not None:
        assert f"'{field}'" in msg and ei.value.field == field
    return msg


@pytest.mark.parametrize("missing", ["spikes/times", "spikes/units", "labels"])
def test_missing_dataset(tmp_path, missing):
    p = _h5(tmp_path / "m.h5", [[0.1]], [[1]], [0], skip=(missing,))
    assert "missing" in _err(p, missing)


def test_mismatched_lengths(tmp_path):
    _err(_h5(tmp_path / "a.h5", [[0.1], [0.2]], [[1], [2]], [0]), "spikes/times")
    _err(_h5(tmp_path / "b.h5", [[0.1]], [[1], [2]], [0]), "spikes/units")
    _err(_h5(tmp_path / "c.h5", [[0.1, 0.2]], [[1]], [0]), "spikes/units")
    _err(_h5(tmp_path / "d.h5", [[0.1]], [[1]], [0], speakers=[1, 2]), "extra/speaker")


def test_out_of_range_values(tmp_path):
    assert "700" in _err(_h5(tmp_path / "a.h5", [[0.1]], [[700]], [0]), "spikes/units")
    _err(_h5(tmp_path / "b.h5", [[0.1]], [[-1]], [0], udtype="int16"), "spikes/units")
    assert "20" in _err(_h5(tmp_path / "c.h5", [[0.1]], [[1]], [20]), "labels")
    _err(_h5(tmp_path / "d.h5", [[0.1]], [[1]], [-2], ldtype="int8"), "labels")
    _err(_h5(tmp_path / "e.h5", [[0.1]], [[1]], [5], keys=KEYS[:3]), "extra/keys")


def test_bad_times(tmp_path):
    assert "sorted" in _err(_h5(tmp_path / "a.h5", [[0.2, 0.1]], [[1, 2]], [0]), "spikes/times")
    _err(_h5(tmp_path / "b.h5", [[-0.1]], [[1]], [0]), "spikes/times")
    _err(_h5(tmp_path / "c.h5", [[np.nan]], [[1]], [0]), "spikes/times")


def test_truncated_and_non_hdf5_files(tmp_path):
    rng = np.random.default_rng(2)
    times, units = _rand_samples(rng, 30)
    p = tmp_path / "ok.h5"
    write_shd(p, times, units, np.zeros(30, int), np.zeros(30, int), keys=KEYS)
    data = p.read_bytes()
    for frac in (0.9, 0.5, 0.1):
        q = tmp_path / f"cut{frac}.h5"
        q.write_bytes(data[: int(len(data) * frac)])
        _err(q, None)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file at all" * 10)
    _err(junk, None)
    _err(tmp_path / "absent.h5", None)
