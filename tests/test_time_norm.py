"""Word-duration normalization (sw.data.time_norm): the span estimator, linearity, the option
off giving the plain rasters' bits, the model-file field and its one-line errors."""
import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from hw import model_file as mf
from hw.model_file import TIME_NORM_DEFAULTS, ModelFileError, check_time_norm
from sw.config import ConfigError, load_config
from sw.data.shd import bin_events, load_rasters, write_shd
from sw.data.time_norm import normalize_times, scale_factor, word_span

TN = check_time_norm({})  # the complete default setting


def synthetic_word(onset, offset, rng, lead=0.0, noise_rate=0.0, length=None, n=3000):
    """Events of a 'word' on ``[onset, offset]`` (each channel fires at its own place in the
    word: a timing pattern), plus uniform background events over ``[0, length]``."""
    length = offset + 0.3 if length is None else length
    units = rng.integers(0, 700, n)
    frac = (units / 700 + 0.15 * rng.standard_normal(n)) % 1.0  # channel c fires near c/700 of the word
    t = onset + frac * (offset - onset)
    nb = rng.poisson(noise_rate * length)
    t = np.concatenate([t, rng.uniform(0, length, nb)])
    units = np.concatenate([units, rng.integers(0, 700, nb)])
    order = np.argsort(t, kind="stable")
    return t[order], units[order]


@pytest.mark.parametrize("onset,offset,noise", [(0.3, 0.6, 0.0), (0.25, 0.5, 600.0), (0.5, 1.4, 1500.0),
                                                (0.05, 0.15, 300.0)])
def test_estimator_recovers_the_span_through_silence_and_noise(onset, offset, noise):
    rng = np.random.default_rng(3)
    # word: 3000 events; background: up to 1500 events/s over the clip and its silences (0.5 s after the word)
    t, u = synthetic_word(onset, offset, rng, noise_rate=noise, length=offset + 0.5)
    lo, hi = word_span(t, TN["smooth"], TN["quantile"])
    dur = offset - onset
    assert abs(lo - onset) < 0.05 * dur + 0.01 and abs(hi - offset) < 0.05 * dur + 0.01, (lo, hi)


def test_estimator_ignores_a_stray_burst_outside_the_word():
    rng = np.random.default_rng(4)
    t, u = synthetic_word(0.3, 0.7, rng, noise_rate=200.0, length=1.2)
    t = np.sort(np.concatenate([t, rng.uniform(1.0, 1.01, 30)]))  # a click 0.3 s after the word
    lo, hi = word_span(t)
    assert abs(lo - 0.3) < 0.03 and abs(hi - 0.7) < 0.03


def test_normalization_maps_the_span_onto_start_and_span():
    rng = np.random.default_rng(5)
    for onset, offset in ((0.2, 0.35), (0.3, 1.3)):  # a fast word is stretched, a slow one compressed
        t, u = synthetic_word(onset, offset, rng, noise_rate=300.0)
        t2, u2 = normalize_times(t, u, TN)
        lo, hi = word_span(t2)
        assert abs(lo - TN["start"]) < 0.01 and abs(hi - (TN["start"] + TN["span"])) < 0.01
        assert np.all(np.diff(t2) >= 0) and t2.min() >= 0 and len(t2) == len(u2)


def _dilated(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[1:] |= x[:-1]
    out[:-1] |= x[1:]
    return out


@pytest.mark.parametrize("k", [0.5, 2.0])
def test_a_word_stretched_by_k_normalizes_to_the_same_raster_up_to_binning(k):
    rng = np.random.default_rng(6)
    t, u = synthetic_word(0.2, 0.55, rng, noise_rate=100.0, length=0.8)
    a = bin_events(t, u, 0.01, 100, time_norm=TN)
    b = bin_events(t * k, u, 0.01, 100, time_norm=TN)
    assert a.sum() > 1000
    # every event of one lies within one bin of an event of the other, in the same channel
    assert np.all(_dilated(a)[b]) and np.all(_dilated(b)[a])
    # while without normalization the stretched word is a different raster
    plain_a, plain_b = bin_events(t, u, 0.01, 100), bin_events(t * k, u, 0.01, 100)
    assert (plain_a & plain_b).sum() < 0.5 * min(plain_a.sum(), plain_b.sum())


def test_fit_mode_only_compresses_words_longer_than_span():
    fit = check_time_norm({"mode": "fit", "span": 0.6})
    assert scale_factor(0.1, 0.4, fit) == 1.0  # short: rate kept, only moved to start
    assert scale_factor(0.2, 1.4, fit) == pytest.approx(0.5)
    assert scale_factor(0.1, 0.4, {**fit, "mode": "always"}) == pytest.approx(2.0)
    assert scale_factor(0.0, 0.01, TN) == TN["max_factor"]  # clipped
    rng = np.random.default_rng(7)
    t, u = synthetic_word(0.3, 0.5, rng)
    t2, _ = normalize_times(t, u, fit)
    lo, hi = word_span(t)
    assert np.allclose(t2, t - lo + fit["start"])  # a pure shift


def test_empty_word_and_off_pass_through():
    t, u = np.zeros(0), np.zeros(0, np.int64)
    assert bin_events(t, u, 0.01, 100, time_norm=TN).sum() == 0
    rng = np.random.default_rng(8)
    t, u = synthetic_word(0.3, 0.6, rng)
    assert np.array_equal(bin_events(t, u, 0.01, 100, time_norm=None), bin_events(t, u, 0.01, 100))
    # deterministic: same events, same bits
    assert np.array_equal(bin_events(t, u, 0.01, 100, time_norm=TN), bin_events(t.copy(), u.copy(), 0.01, 100,
                                                                                time_norm=TN))


def test_events_mapped_before_zero_are_dropped():
    t = np.array([0.0, 0.5, 0.55, 0.6, 0.65, 0.7] + [0.6] * 50)
    u = np.arange(len(t)) % 700
    order = np.argsort(t, kind="stable")
    t2, u2 = normalize_times(t[order], u[order], TN)
    assert t2.min() >= 0 and len(t2) < len(t)  # the event at 0.0 lay 0.5 s before the onset


@pytest.fixture
def shd_file(tmp_path):
    rng = np.random.default_rng(9)
    times, units = [], []
    for i in range(6):
        t, u = synthetic_word(0.1 + 0.05 * i, 0.4 + 0.15 * i, rng, noise_rate=200.0)
        times.append(t)
        units.append(u)
    p = tmp_path / "shd_test.h5"
    write_shd(p, times, units, np.arange(6) % 20, np.zeros(6, np.int64))
    return p


def test_load_rasters_off_is_the_default_and_on_differs(shd_file):
    X0, y0 = load_rasters(shd_file)
    X1, y1 = load_rasters(shd_file, time_norm=None)
    assert np.array_equal(X0, X1) and np.array_equal(y0, y1)
    X2, _ = load_rasters(shd_file, time_norm=TN)
    assert X2.shape == X0.shape and not np.array_equal(X0, X2)
    assert np.array_equal(X2, load_rasters(shd_file, time_norm=TN)[0])


def make_model(time_norm=None):
    rng = np.random.default_rng(1)
    L0 = mf.Layer(np.array([0, 2]), rng.integers(-8, 8, (2, 700, 3)).astype(np.int8), threshold=50, decay=3000)
    L1 = mf.Layer(np.array([0]), rng.integers(-8, 8, (1, 3, 20)).astype(np.int8), threshold=1, decay=4096,
                  spiking=False)
    return mf.Model(layers=[L0, L1], n_inputs=700, T=100, dt=0.01, time_norm=time_norm)


def test_model_file_round_trip_and_old_files(tmp_path):
    p = mf.save(make_model({"mode": "fit", "span": 0.6}), tmp_path / "m.safetensors")
    back = mf.load(p)
    assert back.time_norm == {**TIME_NORM_DEFAULTS, "mode": "fit", "span": 0.6}
    assert mf.save(back, tmp_path / "m2.safetensors").read_bytes() == p.read_bytes()
    # a file without the field (as written before it existed, or with it off) loads as off
    old = mf.save(make_model(None), tmp_path / "old.safetensors")
    assert mf.load(old).time_norm is None
    assert "time_norm" not in json.loads(_header(old))


def _header(path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as fh:
        return fh.metadata()[mf.HEADER_KEY]


@pytest.mark.parametrize("value,field", [({"mode": "slow"}, "time_norm.mode"), ({"span": 0}, "time_norm.span"),
                                         ({"start": 0.8, "span": 0.3}, "time_norm.span"),
                                         ({"quantile": 0.5}, "time_norm.quantile"),
                                         ({"max_factor": 0.5}, "time_norm.max_factor"),
                                         ({"smooth": "x"}, "time_norm.smooth"), ({"spam": 1}, "time_norm.spam"),
                                         ([0.3], "time_norm")])
def test_model_file_rejects_bad_time_norm_naming_the_field(tmp_path, value, field):
    good = mf.save(make_model(), tmp_path / "m.safetensors")
    h = json.loads(_header(good))
    h["time_norm"] = value
    from safetensors import safe_open

    with safe_open(str(good), framework="np") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={mf.HEADER_KEY: json.dumps(h)})
    with pytest.raises(ModelFileError) as e:
        mf.load(bad)
    assert e.value.field == field and f"field '{field}'" in str(e.value) and "bad.safetensors" in str(e.value)


def test_config_field_default_on_and_errors_name_the_field():
    assert load_config()["data"]["time_norm"] == TIME_NORM_DEFAULTS  # the default model normalizes
    cfg = load_config(overrides={"data": {"time_norm": {"mode": "fit"}}})
    assert cfg["data"]["time_norm"] == {**TIME_NORM_DEFAULTS, "mode": "fit"}
    cfg = load_config(overrides={"data": {"time_norm": None}})
    assert cfg["data"]["time_norm"] is None
    for value, field in (({"mode": 1}, "data.time_norm.mode"), ({"span": 2.0}, "data.time_norm.span"),
                         ("on", "data.time_norm"), ({"x": 1}, "data.time_norm.x")):
        with pytest.raises(ConfigError, match=f"config field '{field}'"):
            load_config(overrides={"data": {"time_norm": value}})
    # the synthetic task has no event times: the front-end is off there, as its augmentation is
    assert load_config(overrides={"data": {"source": "synthetic"}})["data"]["time_norm"] is None
    assert load_config(overrides={"data": {"source": "synthetic", "time_norm": None}})["data"]["time_norm"] is None
    # ...but one asked for explicitly is refused, not silently dropped
    for value in ({}, {"mode": "fit"}):
        with pytest.raises(ConfigError, match="config field 'data.time_norm': the synthetic source"):
            load_config(overrides={"data": {"source": "synthetic", "time_norm": value}})


def test_evaluate_bins_with_the_models_time_norm(shd_file, tmp_path):
    from sw.evaluate import load_eval_data, load_split

    tn = check_time_norm({"mode": "always", "span": 0.4})
    m = make_model(tn)
    X, _ = load_split(shd_file, m)
    assert np.array_equal(X, load_rasters(shd_file, time_norm=tn)[0])
    X_test, _ = load_eval_data(str(shd_file), m)
    assert np.array_equal(X_test, X)
    assert np.array_equal(load_split(shd_file, make_model(None))[0], load_rasters(shd_file)[0])


def test_training_carries_time_norm_to_the_model_file_and_evaluate_bins_alike(tmp_path):
    """End to end: a tiny training on SHD files with data.time_norm writes it into the model file,
    and sw.evaluate, told nothing, reproduces the trainer's own integer test accuracy."""
    from hw.model_file import load
    from sw.evaluate import run
    from sw.trainer import main

    rng = np.random.default_rng(10)
    data = tmp_path / "data"
    for split, n in (("train", 40), ("test", 20)):
        times, units, labels = [], [], []
        for i in range(n):
            c = i % 2
            on = rng.uniform(0.05, 0.3)
            t, u = synthetic_word(on, on + rng.uniform(0.1, 0.6), rng, noise_rate=100.0, n=400)
            units.append((u % 350) + 350 * c)  # class = which half of the channels fires
            times.append(t)
            labels.append(c)
        write_shd(data / f"shd_{split}.h5", times, units, np.array(labels), np.zeros(n, np.int64))
    out = tmp_path / "run"
    tn = {"mode": "always", "span": 0.4}
    assert main(["--data", str(data), "--out", str(out), "--epochs", "1", "--threads", "1", "--no-progress",
                 "--set", 'model.hidden=[4]', "--set", "train.shards=1",
                 "--set", "data.time_norm=" + json.dumps(tn)]) == 0
    m = load(out / "model.safetensors")
    assert m.time_norm == {**TIME_NORM_DEFAULTS, **tn}
    summary = json.loads((out / "train_summary.json").read_text())
    rows = run([str(out / "model.safetensors")], str(data), progress=False, shifted=False)
    assert rows[0]["samples"] == 20 and rows[0]["accuracy"] == summary["integer_acc"]
