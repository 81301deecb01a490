"""The synthetic delay task: deterministic, and classes differ only in inter-channel timing."""
import numpy as np
import pytest

from sw.data.synthetic import class_orders, make_delay_task


def test_same_seed_same_bits_and_different_seed_differs():
    a = make_delay_task(64, 6, 4, 50, seed=3)
    b = make_delay_task(64, 6, 4, 50, seed=3)
    c = make_delay_task(64, 6, 4, 50, seed=4)
    assert a[0].dtype == np.bool_ and a[1].dtype == np.int64
    assert a[0].shape == (64, 50, 6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_counts_are_class_independent_and_offsets_carry_the_class():
    gap = 5
    X, y = make_delay_task(200, 5, 3, 40, seed=1, gap=gap, jitter=0, noise=0)
    orders = class_orders(5, 3, 1)
    # every channel fires exactly once in every sample, whatever the class
    assert (X.sum(axis=1) == 1).all()
    t = X.argmax(axis=1)  # [N, C] spike step per channel
    rel = t - t.min(axis=1, keepdims=True)
    assert np.array_equal(rel, gap * orders[y])
    # distinct classes have distinct orders
    assert len({tuple(o) for o in orders}) == 3
    assert set(np.unique(y)) == {0, 1, 2}


def test_noise_keeps_count_distribution_class_independent():
    X, y = make_delay_task(3000, 6, 4, 50, seed=2, noise=3)
    counts = X.sum(axis=(1, 2))
    means = [counts[y == c].mean() for c in range(4)]
    assert max(means) - min(means) < 0.1  # same expected count for every class
    per_channel = np.stack([X[y == c].sum(axis=(0, 1)) / (y == c).sum() for c in range(4)])
    assert np.abs(per_channel - per_channel.mean(0)).max() < 0.1


def test_class_seed_shares_classes_between_splits():
    _, _ = make_delay_task(10, 6, 4, 50, seed=5, class_seed=0)
    a = make_delay_task(50, 6, 4, 50, seed=5, class_seed=0, jitter=0, noise=0)
    b = make_delay_task(50, 6, 4, 50, seed=6, class_seed=0, jitter=0, noise=0)
    for X, y in (a, b):
        t = X.argmax(axis=1)
        rel = (t - t.min(axis=1, keepdims=True)) // 6
        assert np.array_equal(rel, class_orders(6, 4, 0)[y])


@pytest.mark.parametrize("kw, field", [({"n_samples": 0}, "n_samples"), ({"jitter": 3}, "jitter"),
                                       ({"T": 20}, "T"), ({"n_classes": 1000, "n_channels": 3}, "n_classes")])
def test_bad_arguments_name_the_field(kw, field):
    args = {"n_samples": 10, "n_channels": 6, "n_classes": 4, "T": 50, "seed": 0}
    args.update(kw)
    with pytest.raises(ValueError, match=field):
        make_delay_task(**args)
