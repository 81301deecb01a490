"""Export and the torch integer path, checked against hw.reference (the contract)."""
import numpy as np
import pytest
import torch

from hw.model_file import Layer, Model, ModelFileError, Widths, load, save
from hw.reference import simulate
from sw.export import BudgetError, integer_forward, parity, to_model_file
from sw.models.delay import DelayNet, NetConfig


def _random_model(rng: np.random.Generator) -> Model:
    """A random valid model; small widths so saturation and resets both happen."""
    n_in = int(rng.integers(3, 12))
    sizes = [n_in] + [int(x) for x in rng.integers(2, 10, size=int(rng.integers(1, 3)))] + [int(rng.integers(2, 6))]
    wb = int(rng.integers(3, 9))
    widths = Widths(weight_bits=wb, membrane_bits=int(rng.integers(wb + 1, 14)), acc_bits=20,
                    readout_bits=int(rng.integers(10, 20)), max_delay=15)
    layers = []
    for l in range(len(sizes) - 1):
        K = int(rng.integers(1, 5))
        delays = np.sort(rng.choice(16, size=K, replace=False)).astype(np.int64)
        hi = (1 << (wb - 1)) - 1
        W = rng.integers(-hi - 1, hi + 1, size=(K, sizes[l], sizes[l + 1])) * (rng.random((K, sizes[l], sizes[l + 1])) < 0.6)
        vmax = (1 << (widths.membrane_bits - 1)) - 1
        layers.append(Layer(delays, W.astype(np.int16), int(rng.integers(1, min(vmax, 4 * hi) + 1)),
                            int(rng.integers(0, 4097)), str(rng.choice(["zero", "subtract"])), l < len(sizes) - 2))
    return Model(layers, n_inputs=n_in, T=int(rng.integers(5, 30)), widths=widths)


@pytest.mark.parametrize("seed", range(25))
def test_integer_path_equals_reference_on_random_models(seed):
    rng = np.random.default_rng(seed)
    m = _random_model(rng)
    X = rng.random((6, m.T, m.n_inputs)) < rng.uniform(0.1, 0.6)
    res = parity(m, X)
    assert res["all_bit_exact"], res
    ref = simulate(m, X, "layered")
    ours = integer_forward(m, X)
    assert np.array_equal(ours.predictions, ref.predictions)
    assert np.array_equal(ours.readout, ref.readout)


def test_parity_reports_the_first_divergence():
    m = _random_model(np.random.default_rng(3))
    X = np.random.default_rng(4).random((4, m.T, m.n_inputs)) < 0.4
    ours = integer_forward(m, X)
    ours.readout[2, 5, 1] += 1  # corrupt one readout value
    res = parity(m, X, ours)
    assert not res["all_bit_exact"] and res["bit_exact"] == 3
    assert res["first_divergence"] == {"sample": 2, "layer": len(m.layers) - 1, "step": 5, "neuron": 1}


def _net(seed, **kw):
    torch.manual_seed(seed)
    cfg = dict(n_inputs=30, hidden=[16, 12], n_classes=5, T=40, max_delay=12, delay_stride=3, init_gain=3.0)
    cfg.update(kw)
    return DelayNet(NetConfig(**cfg))


@pytest.mark.parametrize("seed", range(4))
def test_exported_random_net_float_model_integer_path_and_reference_agree(seed):
    net = _net(seed)
    m = to_model_file(net)
    X = np.random.default_rng(seed).random((20, 40, 30)) < 0.25
    ours = integer_forward(m, X)
    assert parity(m, X, ours)["all_bit_exact"]
    with torch.no_grad():
        logits, rec = net(torch.from_numpy(X).float())
    # the hardware-aware float model computes the same integers
    for l, z in enumerate(rec["spikes"]):
        assert np.array_equal(z.numpy().astype(bool), ours.spikes[l])
    assert np.array_equal(rec["readout"].numpy().cumsum(1).astype(np.int64), ours.readout)
    assert np.array_equal(logits.argmax(1).numpy(), ours.predictions)
    assert 0 < np.mean(ours.spikes[0]) < 0.5  # the check is not vacuous: neurons fire


def test_export_keeps_only_used_levels_and_round_trips(tmp_path):
    net = _net(7)
    with torch.no_grad():  # silence every level but delays 0 and 6 in layer 0
        net.synapses[0].mask[:, :, [1, 3, 4]] = False
    m = to_model_file(net, info={"note": "x"})
    assert m.layers[0].delays.tolist() == [0, 6]
    assert m.layers[1].delays.tolist() == [0, 3, 6, 9, 12]
    assert m.layers[0].weights.dtype == np.int8
    assert [L.spiking for L in m.layers] == [True, True, False]
    p = save(m, tmp_path / "m.safetensors")
    back = load(p)
    for a, b in zip(m.layers, back.layers):
        assert np.array_equal(a.weights, b.weights) and np.array_equal(a.delays, b.delays)
        assert (a.threshold, a.decay, a.reset, a.spiking) == (b.threshold, b.decay, b.reset, b.spiking)
    assert back.info == {"note": "x"} and back.T == 40 and back.dt == 0.01
    X = np.random.default_rng(0).random((5, 40, 30)) < 0.3
    assert np.array_equal(integer_forward(back, X).readout, integer_forward(m, X).readout)


def test_budget_error_names_the_layer_field():
    net = _net(1)
    with pytest.raises(BudgetError, match=r"max_taps\[0\]"):
        to_model_file(net, max_taps=[100, None, None])
    with pytest.raises(BudgetError, match="max_taps"):
        to_model_file(net, max_taps=[100])
    to_model_file(net, max_taps=30 * 16 * 5)  # exactly at the budget is fine


def test_unquantized_net_is_refused():
    with pytest.raises(ValueError, match="quantize"):
        to_model_file(_net(0, quantize=False))


def test_oversized_threshold_or_weights_are_caught_by_the_model_file_rules():
    net = _net(2)
    m = to_model_file(net)
    m.layers[0].weights[0, 0, 0] = 0
    m.layers[0].threshold = 1 << 30
    with pytest.raises(ModelFileError, match=r"layers\[0\]\.threshold"):
        save(m, "/tmp/never_written.safetensors")
