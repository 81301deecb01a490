"""Training augmentation (sw.data.augment): each transform against an independent
expectation, determinism per (seed, epoch, sample), config and flag checks."""
import numpy as np
import pytest

from sw.data import augment as A


def _raster(seed=0, T=30, C=12, p=0.2):
    return np.random.default_rng(seed).random((T, C)) < p


def test_time_stretch_maps_bins_by_the_inverse_rule():
    x = np.zeros((10, 3), dtype=bool)
    x[np.arange(10), np.arange(10) % 3] = True
    assert np.array_equal(A.time_stretch(x, 1.0), x)
    slow = A.time_stretch(x, 2.0)  # bin t holds input bin t // 2
    for t in range(10):
        assert np.array_equal(slow[t], x[t // 2])
    fast = A.time_stretch(x, 0.5)  # bin t holds input bin 2t + 1 while it exists
    for t in range(10):
        expect = x[2 * t + 1] if 2 * t + 1 < 10 else np.zeros(3, dtype=bool)
        assert np.array_equal(fast[t], expect)
    with pytest.raises(ValueError, match="factor"):
        A.time_stretch(x, 0.0)


def test_channel_shift_moves_and_zero_fills():
    x = _raster(1)
    assert np.array_equal(A.channel_shift(x, 0), x)
    r = A.channel_shift(x, 2)
    assert np.array_equal(r[:, 2:], x[:, :-2]) and not r[:, :2].any()
    l_ = A.channel_shift(x, -3)
    assert np.array_equal(l_[:, :-3], x[:, 3:]) and not l_[:, -3:].any()
    assert not A.channel_shift(x, 12).any() and not A.channel_shift(x, -40).any()


def test_jitter_moves_each_event_at_most_max_steps_and_keeps_channels():
    x = np.zeros((50, 4), dtype=bool)
    x[[10, 20, 30, 40], [0, 1, 2, 3]] = True  # far apart: nothing merges or leaves
    out = A.time_jitter(x, 2, np.random.default_rng(3))
    assert out.sum() == 4
    for t0, c in zip([10, 20, 30, 40], range(4)):
        (t,) = np.nonzero(out[:, c])
        assert abs(int(t[0]) - t0) <= 2
    assert np.array_equal(A.time_jitter(x, 0, np.random.default_rng(0)), x)


def test_dropout_removes_only_existing_events_at_about_the_rate():
    x = _raster(2, T=200, C=100, p=0.3)
    out = A.event_dropout(x, 0.25, np.random.default_rng(5))
    assert not (out & ~x).any()
    kept = out.sum() / x.sum()
    assert 0.72 < kept < 0.78  # 6000 events: one standard error is about 0.006
    assert np.array_equal(A.event_dropout(x, 0.0, np.random.default_rng(5)), x)


def test_batch_depends_only_on_seed_epoch_and_sample_index():
    X = np.stack([_raster(i) for i in range(6)])
    aug = A.Augment((0.7, 1.4), 3, 1, 0.1)
    idx = np.array([5, 0, 3, 1, 4, 2])
    full = A.augment_batch(X[idx], idx, epoch=2, seed=7, aug=aug)
    # the same samples in other batches and another order give the same rasters
    part = A.augment_batch(X[[3, 5]], [3, 5], epoch=2, seed=7, aug=aug)
    assert np.array_equal(part[0], full[2]) and np.array_equal(part[1], full[0])
    assert not np.array_equal(A.augment_batch(X[idx], idx, epoch=3, seed=7, aug=aug), full)
    assert not np.array_equal(A.augment_batch(X[idx], idx, epoch=2, seed=8, aug=aug), full)
    assert full.dtype == bool and full.shape == X.shape
    assert np.array_equal(A.augment_batch(X, range(6), 0, 0, A.Augment()), X)  # all off: unchanged


def test_fraction_passes_the_others_through_and_keeps_the_augmented_draws():
    X = np.stack([_raster(i, T=40, C=20, p=0.3) for i in range(200)])
    idx = np.arange(200)
    full = A.Augment((0.7, 1.4), 3, 1, 0.1)
    part = A.Augment((0.7, 1.4), 3, 1, 0.1, fraction=0.4)
    a, b = A.augment_batch(X, idx, 1, 5, full), A.augment_batch(X, idx, 1, 5, part)
    same = np.array([np.array_equal(b[i], X[i]) for i in idx])
    assert 0.45 < same.mean() < 0.75  # about 60 % pass through (one standard error 0.035)
    for i in idx[~same]:  # the augmented ones are exactly what fraction 1 gives them
        assert np.array_equal(b[i], a[i])
    gate = np.array([A.is_augmented(part, 5, 1, int(i)) for i in idx])
    assert np.array_equal(gate, ~same)  # with p = 0.3 over 800 bins an augmented raster never equals its input
    assert not A.Augment((0.7, 1.4), 3, 1, 0.1, fraction=0.0).active


def test_config_fields_are_checked_and_named():
    assert A.Augment.from_train_config({}) == A.Augment()
    assert not A.Augment().active
    assert A.Augment.from_train_config({"augment_stretch": [0.8, 1.2]}).active
    for tc, field in (({"augment_stretch": [1.4, 0.7]}, "train.augment_stretch"),
                      ({"augment_stretch": 1.2}, "train.augment_stretch"),
                      ({"augment_shift": -1}, "train.augment_shift"),
                      ({"augment_jitter": 1.5}, "train.augment_jitter"),
                      ({"augment_dropout": 1.0}, "train.augment_dropout"),
                      ({"augment_fraction": 1.5}, "train.augment_fraction")):
        with pytest.raises(A.AugmentError) as e:
            A.Augment.from_train_config(tc)
        assert e.value.field == field


def test_keep_only_switches_the_others_off():
    from sw.config import load_config

    tc = load_config()["train"]
    d = A.Augment.from_train_config(tc)  # every transform on by default, on part of the samples
    assert d.stretch[0] < 1 < d.stretch[1] and d.shift > 0 and d.jitter > 0 and d.dropout > 0 and 0 < d.fraction < 1
    none = A.Augment.from_train_config(A.keep_only(tc, "none"))
    assert not none.active
    only = A.Augment.from_train_config(A.keep_only(tc, "stretch,dropout"))
    assert only == A.Augment(d.stretch, 0, 0, d.dropout, d.fraction)  # the fraction is kept
    assert A.keep_only(tc, "all") == tc
    with pytest.raises(A.AugmentError, match="--augment"):
        A.keep_only(tc, "stretch,warp")


def test_train_flag_and_config_errors(tmp_path):
    from sw.config import ConfigError, load_config
    from sw.trainer import config_from_args, parse_args

    d = A.Augment.from_train_config(load_config()["train"])
    cfg = config_from_args(parse_args(["--augment", "shift"]))
    assert A.Augment.from_train_config(cfg["train"]) == A.Augment((1.0, 1.0), d.shift, 0, 0.0, d.fraction)
    with pytest.raises(ConfigError, match="--augment"):
        config_from_args(parse_args(["--augment", "bogus"]))
    with pytest.raises(ConfigError, match="train.augment_dropout"):
        load_config(None, {"train": {"augment_dropout": 2.0}})
