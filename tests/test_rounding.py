"""Rounding of the software side, pinned by hand: fake-quant ties, the exported
threshold and the exported weights. Training and export share these functions,
so parity between them cannot see a change; only hand values can."""
import math

import numpy as np
import pytest
import torch

from sw.export import to_model_file
from sw.models.delay import DelayNet, NetConfig
from sw.quantize import fake_quant, threshold_int


def test_fake_quant_rounds_ties_half_to_even_and_clamps_both_ends():
    w = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 2.51, 126.5, 127.6, 300.0, -128.4, -128.6, -300.0])
    got = fake_quant(w, torch.tensor(1.0), 8).tolist()
    assert got == [0, 2, 2, 0, -2, -2, 0, 3, 126, 127, 127, -128, -128, -128]
    # the scale divides first: 3 * 0.25 / 0.5 = 1.5 -> 2, 5 * 0.25 / 0.5 = 2.5 -> 2
    assert fake_quant(torch.tensor([0.75, 1.25]), torch.tensor(0.5), 4).tolist() == [2, 2]
    # the contract's range is two's complement [-q - 1, q]; symmetric=True gives [-q, q] (2 bits: ternary)
    assert fake_quant(torch.tensor([20.0, -20.0, -16.4]), torch.tensor(1.0), 5).tolist() == [15, -16, -16]
    assert fake_quant(torch.tensor([9.0, -9.0]), torch.tensor(1.0), 4).tolist() == [7, -8]
    assert fake_quant(torch.tensor([9.0, -9.0]), torch.tensor(1.0), 4, symmetric=True).tolist() == [7, -7]
    assert fake_quant(torch.tensor([0.5, 1.5, -3.0, -0.5]), torch.tensor(1.0), 2, symmetric=True).tolist() \
        == [0, 1, -1, 0]


def test_fake_quant_gradient_is_straight_through_inside_the_range():
    w = torch.tensor([0.3, 1.7, -2.5], requires_grad=True)
    fake_quant(w, torch.tensor(1.0), 8).sum().backward()
    assert w.grad.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("theta,scale,want", [
    (2.5, 1.0, 2), (3.5, 1.0, 4), (2.4, 1.0, 2), (2.6, 1.0, 3),  # round half to even, not floor/ceil
    (10.0, 0.25, 40), (1.0, 0.4, 2),
    (0.2, 1.0, 1), (0.0, 1.0, 1),  # clamped to 1: a threshold must be positive
    (1e9, 1.0, 2**23 - 1), (2**23 - 1, 1.0, 2**23 - 1), (2**23 - 0.5, 1.0, 2**23 - 1),  # membrane maximum
])
def test_threshold_int_by_hand(theta, scale, want):
    assert threshold_int(theta, scale, 24) == want
    assert threshold_int(theta, torch.tensor(scale), 24) == want


def test_threshold_int_respects_narrow_membranes():
    assert threshold_int(1000.0, 1.0, 8) == 127
    assert threshold_int(127.0, 1.0, 8) == 127 and threshold_int(126.0, 1.0, 8) == 126


def _net(theta):
    torch.manual_seed(0)
    cfg = NetConfig(n_inputs=5, hidden=[4], n_classes=3, T=10, max_delay=4, delay_stride=2, theta=theta)
    return DelayNet(cfg)


@pytest.mark.parametrize("frac", [0.3, 0.7])
def test_exported_threshold_and_weights_are_rounded_by_hand(frac):
    net = _net(1.0)
    with torch.no_grad():
        w = (net.layers[0].synapse.weight * net.layers[0].synapse.wscale).numpy().astype(np.float64)
    scale = np.abs(w).max() / 127  # the largest |w| maps to 127
    k = 17
    theta = (k + frac) * scale  # integer units k + frac: rounds to k (0.3) or k + 1 (0.7)
    for L in net.layers:
        L.theta = theta
    m = to_model_file(net)
    assert m.layers[0].threshold == (k if frac < 0.5 else k + 1)
    # weights: w / scale, half to even, stored [K, n_in, n_out]
    want = np.round(w / scale).astype(np.int64).transpose(2, 1, 0)
    used = [net.cfg.delays.index(int(d)) for d in m.layers[0].delays]
    assert np.array_equal(m.layers[0].weights.astype(np.int64), want[used])
    assert np.abs(m.layers[0].weights).max() == 127
    assert math.isclose(float(net.layers[0].synapse.scale()), scale, rel_tol=1e-6)
