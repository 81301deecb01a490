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

    # the default's raster stretch is off since round 7 (data.time_norm normalizes the rate before binning)
    tc = {**load_config()["train"], "augment_stretch": [0.5, 2.0]}
    d = A.Augment.from_train_config(tc)  # every other transform on by default, on part of the samples
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


def _sparse(T=120, C=400, gap=4):
    """One event per channel every ``gap`` bins (phase by channel): no two events of a channel are
    closer than ``gap`` bins, so nothing merges under a stretch by 1/gap or more."""
    x = np.zeros((T, C), dtype=bool)
    for c in range(C):
        x[c % gap::gap, c] = True
    return x


def test_event_stretch_count_follows_the_rate_exponent():
    x = _sparse()
    n = int(x.sum())
    rng = np.random.default_rng(11)
    # r = 1, f = 0.5: every event exactly once, and floor((t + u) / 2) = t // 2 for any u in [0, 1):
    # the result is the OR of bin pairs (events of a channel are 4 bins apart here, so nothing merges)
    t, c = np.nonzero(x)
    half = np.zeros_like(x)
    half[t // 2, c] = True
    assert np.array_equal(A.event_stretch(x, 0.5, 1.0, rng), half) and half.sum() == n
    # r = 1, f = 1.7: one copy per event, inside the image [floor(1.7 t), 1.7 (t + 1)) of its bin
    out = A.event_stretch(x, 1.7, 1.0, rng)
    for ch in (0, 1, 2, 3, 199):
        src, dst = np.nonzero(x[:, ch])[0], np.nonzero(out[:, ch])[0]
        lo, hi = np.floor(src * 1.7), (src + 1) * 1.7
        assert all(((lo <= d) & (d < hi)).sum() == 1 for d in dst)  # each output event in exactly one image
        # images 4 x 1.7 bins apart: no merges; lost only past T (an image across T keeps its copy or not)
        assert (hi <= x.shape[0]).sum() <= dst.size <= (lo < x.shape[0]).sum()
    # r = 0 and f < 1: spikes per second kept, so about f of the events survive (thinning)
    out = A.event_stretch(x, 0.5, 0.0, rng)
    assert abs(out.sum() / n - 0.5) < 0.03  # 12000 events: one standard error about 0.005
    # r = 0.5, f = 0.25: f ** 0.5 = 0.5 of the events (4 input bins per output bin, 1 event among them)
    out = A.event_stretch(x, 0.25, 0.5, rng)
    assert abs(out.sum() / n - 0.5) < 0.03
    # f = 1 with any exponent is the identity (one copy, u in [0, 1) keeps the bin)
    assert np.array_equal(A.event_stretch(x, 1.0, 0.3, rng), x)
    with pytest.raises(ValueError, match="rate"):
        A.event_stretch(x, 1.2, 1.5, rng)
    with pytest.raises(ValueError, match="factor"):
        A.event_stretch(x, -1.0, 0.0, rng)


def test_event_stretch_slower_adds_bernoulli_copies_in_the_image():
    # one event: f = 3, r = 0 gives exactly 3 copies, each uniform over bins 3t..3t+2, merged in the raster;
    # the expected number of distinct bins is 3 * (1 - (2/3) ** 3) = 19/9
    x = np.zeros((40, 1), dtype=bool)
    x[5, 0] = True
    counts = []
    for s in range(400):
        out = A.event_stretch(x, 3.0, 0.0, np.random.default_rng(s))
        (t,) = np.nonzero(out[:, 0])
        assert ((t >= 15) & (t <= 17)).all() and 1 <= t.size <= 3
        counts.append(t.size)
    assert abs(np.mean(counts) - 19 / 9) < 0.1  # one standard error about 0.03
    # f = 2.5, r = 0: 2 copies always, a third with probability 0.5 -> 2.5 copies on average
    x = _sparse(T=100, C=300, gap=8)
    out = A.event_stretch(x[:40], 2.5, 0.0, np.random.default_rng(2))
    assert out.shape == (40, 300)  # same shape, events past the window are lost
    big = np.zeros((400, 300), dtype=bool)
    big[:100] = x
    out = A.event_stretch(big, 2.5, 0.0, np.random.default_rng(3))
    # copies of one event land in a window of 3 or 4 bins; count the distinct cells, compare to a simulation
    # of the same rule from an independent generator (placement uniform in the image, merged per cell)
    sim = np.random.default_rng(4)
    t, c = np.nonzero(big)
    cells = set()
    for tt, cc in zip(t, c):
        k = 2 + (sim.random() < 0.5)
        for _ in range(k):
            cells.add((int(np.floor((tt + sim.random()) * 2.5)), int(cc)))
    assert abs(out.sum() / len(cells) - 1) < 0.02


def test_gain_thins_each_sample_by_one_factor_in_its_range():
    x = _raster(3, T=100, C=200, p=0.3)
    aug = A.Augment(gain=(0.5, 0.8))
    kept = []
    for i in range(60):
        out = A.augment_sample(x, aug, A.sample_rng(0, 0, i))
        assert not (out & ~x).any()  # only deletes
        kept.append(out.sum() / x.sum())
    kept = np.array(kept)
    assert kept.min() > 0.48 and kept.max() < 0.82  # 6000 events: the binomial noise is about 0.006
    assert abs(kept.mean() - 0.65) < 0.03  # uniform on [0.5, 0.8]: sd 0.087, 60 samples -> se 0.011
    assert kept.std() > 0.05  # one factor per sample, not one for all
    assert A.Augment(gain=(0.9, 1.0)).active and not A.Augment(gain=(1.0, 1.0)).active


def test_new_options_off_leave_the_draws_of_the_others_unchanged():
    """With the stretch rate null and the gain [1, 1] the rasters are those of the transforms before
    these options existed: the gain is drawn last, the bin stretch draws nothing."""
    X = np.stack([_raster(i, T=40, C=20, p=0.3) for i in range(8)])
    old = A.Augment((0.7, 1.4), 3, 1, 0.1)
    new = A.Augment((0.7, 1.4), 3, 1, 0.1, 1.0, None, (0.6, 0.9))
    a, b = A.augment_batch(X, range(8), 1, 5, old), A.augment_batch(X, range(8), 1, 5, new)
    assert not (b & ~a).any() and b.sum() < a.sum()  # the gain only deletes events from the same rasters
    ev = A.augment_batch(X, range(8), 1, 5, A.Augment((0.7, 1.4), 3, 1, 0.1, 1.0, 0.0))
    assert not np.array_equal(ev, a) and ev.shape == a.shape


def test_new_config_fields_are_checked_and_named():
    assert A.Augment.from_train_config({"augment_stretch_rate": 0.5, "augment_gain": [0.5, 1.0]}) == \
        A.Augment(stretch_rate=0.5, gain=(0.5, 1.0))
    assert A.Augment.from_train_config({"augment_stretch_rate": None}).stretch_rate is None
    for tc, field in (({"augment_stretch_rate": 1.5}, "train.augment_stretch_rate"),
                      ({"augment_stretch_rate": -0.1}, "train.augment_stretch_rate"),
                      ({"augment_stretch_rate": True}, "train.augment_stretch_rate"),
                      ({"augment_gain": [0.0, 1.0]}, "train.augment_gain"),
                      ({"augment_gain": [0.8, 0.5]}, "train.augment_gain"),
                      ({"augment_gain": [0.5, 1.2]}, "train.augment_gain"),
                      ({"augment_gain": 0.5}, "train.augment_gain")):
        with pytest.raises(A.AugmentError) as e:
            A.Augment.from_train_config(tc)
        assert e.value.field == field


def test_new_fields_through_the_config_and_flag():
    from sw.config import ConfigError, load_config
    from sw.trainer import config_from_args, parse_args

    with pytest.raises(ConfigError, match="train.augment_stretch_rate"):
        load_config(None, {"train": {"augment_stretch_rate": 2}})
    with pytest.raises(ConfigError, match="train.augment_gain"):
        load_config(None, {"train": {"augment_gain": [0.5, 1.5]}})
    cfg = config_from_args(parse_args(["--set", "train.augment_stretch_rate=0.25", "--set",
                                       "train.augment_gain=[0.5, 1.0]", "--augment", "stretch,gain"]))
    aug = A.Augment.from_train_config(cfg["train"])
    assert aug.stretch_rate == 0.25 and aug.gain == (0.5, 1.0) and aug.shift == 0 and aug.dropout == 0
    off = A.Augment.from_train_config(A.keep_only(cfg["train"], "stretch"))
    assert off.gain == (1.0, 1.0) and off.stretch_rate == 0.25


def test_warp_with_one_factor_is_the_uniform_stretch_and_segments_vary():
    x = _raster(4, T=60, C=30, p=0.3)
    for f in (0.5, 1.25, 2.0):  # factors whose running sums are exact in floating point
        assert np.array_equal(A.time_warp(x, np.full(60, f)), A.time_stretch(x, f))
        a = A.event_warp(x, np.full(60, f), 0.0, np.random.default_rng(1))
        assert np.array_equal(a, A.event_stretch(x, f, 0.0, np.random.default_rng(1)))
    w = A.warp_widths(95, 1.5, 0.4, np.random.default_rng(0))
    assert w.shape == (95,)
    seg = w[::A.WARP_BINS]
    assert all(np.all(w[k * A.WARP_BINS:(k + 1) * A.WARP_BINS] == seg[k]) for k in range(len(seg)))
    assert np.unique(seg).size == len(seg)  # one draw per segment
    z = np.log(np.concatenate([A.warp_widths(100, 1.5, 0.4, np.random.default_rng(s))[::A.WARP_BINS]
                               for s in range(300)]) / 1.5)
    assert abs(z.mean()) < 0.05 and abs(z.std() - 0.4) < 0.04  # 3000 segments: se 0.007 and 0.005


def test_time_warp_maps_each_segment_by_its_own_factor():
    # two segments of 10 input bins: the first doubled (20 output bins), the second halved (5 output bins)
    x = np.zeros((40, 20), dtype=bool)
    x[np.arange(20), np.arange(20)] = True  # event of channel c at bin c
    widths = np.concatenate([np.full(10, 2.0), np.full(10, 0.5), np.full(20, 1.0)])
    out = A.time_warp(x, widths)
    for c in range(10):  # bin c covers output [2c, 2c + 2): both bins hold it
        assert np.nonzero(out[:, c])[0].tolist() == [2 * c, 2 * c + 1]
    for c in range(10, 20):  # bin c covers output [20 + (c - 10) / 2, ...): held only if it covers a bin centre
        (t,) = np.nonzero(out[:, c])
        assert t.tolist() == ([20 + (c - 10) // 2] if (c - 10) % 2 == 1 else [])
    ev = A.event_warp(x, widths, 1.0, np.random.default_rng(0))  # r = 1: each event once, in its interval
    for c in range(10):
        assert np.nonzero(ev[:, c])[0][0] in (2 * c, 2 * c + 1) and ev[:, c].sum() == 1
    for c in range(10, 20):
        assert np.nonzero(ev[:, c])[0].tolist() == [20 + (c - 10) // 2]


def test_warp_config_and_keep_only():
    assert A.Augment.from_train_config({"augment_warp": 0.3}) == A.Augment(warp=0.3)
    assert A.Augment(warp=0.3).active
    for v in (-0.1, 2.5, "0.3", True):
        with pytest.raises(A.AugmentError) as e:
            A.Augment.from_train_config({"augment_warp": v})
        assert e.value.field == "train.augment_warp"
    tc = {"augment_stretch": [0.5, 2.0], "augment_warp": 0.3, "augment_shift": 4}
    assert A.keep_only(tc, "shift")["augment_warp"] == 0.0 and A.keep_only(tc, "stretch")["augment_warp"] == 0.3
    x = _raster(5, T=60, C=30, p=0.3)
    a = A.augment_sample(x, A.Augment((0.5, 2.0), warp=0.3), A.sample_rng(1, 2, 3))
    assert np.array_equal(a, A.augment_sample(x, A.Augment((0.5, 2.0), warp=0.3), A.sample_rng(1, 2, 3)))
    assert not np.array_equal(a, A.augment_sample(x, A.Augment((0.5, 2.0)), A.sample_rng(1, 2, 3)))


def test_length_target_sets_the_factor_from_the_word_length():
    x = np.zeros((100, 5), dtype=bool)
    x[[0, 10, 39], [0, 1, 2]] = True  # last event at bin 39: a 40-bin word
    assert A.word_length(x) == 40 and A.word_length(np.zeros((9, 2), dtype=bool)) == 0
    aug = A.Augment((0.25, 4.0), stretch_target=(20.0, 80.0))
    fs = np.array([A.stretch_factor(x, aug, np.random.default_rng(s)) for s in range(500)])
    lengths = fs * 40  # log-uniform on [20, 80]: log-length uniform on [log 20, log 80]
    assert lengths.min() >= 20 - 1e-9 and lengths.max() <= 80 + 1e-9
    u = (np.log(lengths) - np.log(20)) / np.log(4)
    assert abs(u.mean() - 0.5) < 0.04 and abs(u.std() - 12 ** -0.5) < 0.03  # se 0.013 and 0.009
    # the same draw from the same generator as the factor range uses (one uniform), clipped to the range
    clipped = A.Augment((0.8, 1.25), stretch_target=(20.0, 80.0))
    fc = np.array([A.stretch_factor(x, clipped, np.random.default_rng(s)) for s in range(500)])
    assert np.allclose(fc, np.clip(fs, 0.8, 1.25)) and (fc == 0.8).any() and (fc == 1.25).any()
    # two words of different lengths reach the same length distribution
    y = np.zeros((100, 5), dtype=bool)
    y[79, 0] = True
    fy = np.array([A.stretch_factor(y, aug, np.random.default_rng(s)) for s in range(500)])
    assert np.allclose(fy * 80, lengths)
    assert A.stretch_factor(np.zeros((100, 5), dtype=bool), aug, np.random.default_rng(0)) == 1.0
    # through augment_sample: the stretched word ends near its target
    out = A.augment_sample(x, aug, np.random.default_rng(3))
    f = A.stretch_factor(x, aug, np.random.default_rng(3))
    assert abs(A.word_length(out) - 40 * f) <= 1


def test_length_target_config():
    assert A.Augment.from_train_config({"augment_stretch_target": [30, 90]}).stretch_target == (30.0, 90.0)
    for v in ([0, 10], [50, 20], 40, [1, "2"]):
        with pytest.raises(A.AugmentError) as e:
            A.Augment.from_train_config({"augment_stretch_target": v})
        assert e.value.field == "train.augment_stretch_target"
    tc = {"augment_stretch": [0.5, 2.0], "augment_stretch_target": [30, 90]}
    assert A.keep_only(tc, "shift")["augment_stretch_target"] is None


def test_quiet_bins_stretch_by_the_quiet_exponent():
    # 10 quiet bins (1 event), 10 loud bins (20 events), 10 quiet bins: f = 2, q = 0 -> the quiet bins keep
    # their length (factor 1), the loud ones double: output = 10 quiet, 20 loud, 10 quiet bins
    x = np.zeros((60, 20), dtype=bool)
    x[:10, 0] = x[20:30, 1] = True
    x[10:20, :] = True
    assert A.quiet_bins(x)[:10].all() and not A.quiet_bins(x)[10:20].any() and A.quiet_bins(x)[20:].all()
    aug = A.Augment((2.0, 2.0), quiet=0.0)
    out = A.augment_sample(x, aug, np.random.default_rng(0))
    n = out.sum(axis=1)
    assert n[:10].tolist() == [1] * 10 and n[10:30].tolist() == [20] * 20 and n[30:40].tolist() == [1] * 10
    assert not out[40:].any()
    # q = 1 is the uniform stretch
    one = A.augment_sample(x, A.Augment((2.0, 2.0), quiet=1.0), np.random.default_rng(0))
    assert np.array_equal(one, A.time_stretch(x, 2.0))
    # q = 0.5, f = 0.25: quiet bins by 0.5 (output [0, 5) and [7.5, 12.5)), loud ones by 0.25 ([5, 7.5));
    # an output bin takes the input bin under its centre
    half = A.augment_sample(x, A.Augment((0.25, 0.25), quiet=0.5), np.random.default_rng(0))
    nh = half.sum(axis=1)
    assert nh[:12].tolist() == [1] * 5 + [20] * 2 + [1] * 5 and not half[12:].any()
    assert A.Augment.from_train_config({"augment_stretch_quiet": 0.5}).quiet == 0.5
    for v in (1.5, -1, "x"):
        with pytest.raises(A.AugmentError) as e:
            A.Augment.from_train_config({"augment_stretch_quiet": v})
        assert e.value.field == "train.augment_stretch_quiet"


def _word(quiet: int, loud: int, T: int = 60, C: int = 20, start: int = 10) -> np.ndarray:
    """A word at ``start``: ``quiet`` bins with 4 events (a consonant), then ``loud`` bins with all C."""
    x = np.zeros((T, C), dtype=bool)
    x[start:start + quiet, :4] = True
    x[start + quiet:start + quiet + loud, :] = True
    return x


def test_loud_widths_trade_the_loud_bins_against_the_rest_of_the_span():
    # 10 consonant bins (4 of 20 events), then 10 loud bins (all 20).  On the 3-bin envelope the span (above
    # 0.15 x 20 = 3) is bins 11-30: bin 10 has 8/3, bin 11 has 4, bin 30 has 20/3; the loud bins (above 10) are
    # 20-29: bin 19 has 28/3, bin 20 has 44/3.  So 10 loud bins at 0.5, and the span's other 10 share 20 - 5.
    x = _word(10, 10)
    w = A.loud_widths(x, 0.5)
    expect = np.ones(60)
    expect[11:20] = expect[30] = 1.5
    expect[20:30] = 0.5
    assert np.allclose(w, expect)
    assert np.isclose(w[11:31].sum(), 20.0)  # the span keeps its length
    out = A.time_warp(x, w)  # the vowel now takes about half as many bins, the consonant more
    n = out.sum(axis=1)
    assert int((n == 20).sum()) == 5 and int((n == 4).sum()) == 14  # bin 10 kept, 9 x 1.5 = 13.5 more
    assert abs(A.word_length(out) - A.word_length(x)) <= 1  # the span keeps its length, up to the bin centres
    # g = 1 is the identity; a raster without events or a word that is all loud is left alone
    assert np.array_equal(A.time_warp(x, A.loud_widths(x, 1.0)), x)
    assert np.all(A.loud_widths(np.zeros((30, 5), dtype=bool), 0.5) == 1)
    assert np.all(A.loud_widths(np.ones((30, 5), dtype=bool), 0.5) == 1)
    # the rest's factor is clipped: 1 consonant bin against 19 loud ones cannot absorb 19 x 0.5 bins
    assert A.loud_widths(_word(1, 19), 0.5).max() <= A.LOUD_MAX


def test_loud_warp_in_augment_sample_config_and_keep_only():
    x = _word(10, 10)
    aug = A.Augment(loud=(0.5, 0.5))
    assert aug.active
    assert np.array_equal(A.augment_sample(x, aug, np.random.default_rng(0)), A.time_warp(x, A.loud_widths(x, 0.5)))
    # the factor is drawn log-uniformly in [lo, hi]: the generator's first draw
    g = float(np.exp(np.random.default_rng(4).uniform(np.log(0.6), np.log(1.25))))
    assert np.array_equal(A.augment_sample(x, A.Augment(loud=(0.6, 1.25)), np.random.default_rng(4)),
                          A.time_warp(x, A.loud_widths(x, g)))
    assert A.Augment.from_train_config({"augment_loud": [0.6, 1.25]}).loud == (0.6, 1.25)
    assert A.Augment.from_train_config({}).loud is None
    for v in ([0, 1], [1.2, 0.8], 0.8, [0.5, "1"], [0.5, 4.0]):
        with pytest.raises(A.AugmentError) as e:
            A.Augment.from_train_config({"augment_loud": v})
        assert e.value.field == "train.augment_loud"
    tc = {"augment_loud": [0.6, 1.25], "augment_shift": 4}
    assert A.keep_only(tc, "shift")["augment_loud"] is None
    assert A.keep_only(tc, "stretch")["augment_loud"] == [0.6, 1.25]
    # off, it draws nothing: shift, jitter and dropout take the generator's first draws, as before the option
    rng = A.sample_rng(0, 1, 2)
    expect = A.channel_shift(x, int(rng.integers(-4, 5)))
    expect = A.event_dropout(A.time_jitter(expect, 1, rng), 0.1, rng)
    assert np.array_equal(A.augment_sample(x, A.Augment(shift=4, jitter=1, dropout=0.1), A.sample_rng(0, 1, 2)), expect)
    # on, it draws first: the same shift, jitter and dropout then see other draws
    assert not np.array_equal(A.augment_sample(x, A.Augment(shift=4, jitter=1, dropout=0.1, loud=(1.0, 1.0)),
                                               A.sample_rng(0, 1, 2)), expect)
