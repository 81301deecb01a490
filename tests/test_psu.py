"""PSU / IPSU / RPSU: closed form, causality, the delay-net hook and LIF conversion."""
import math

import numpy as np
import pytest
import torch

from sw.models.psu import KINDS, PSUNeuron, convert_to_lif, finetune, make_neuron, neuron_factory, psu_matrices


def psu_loops(I: np.ndarray, tau: float, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Independent expectation: the paper's sums written as explicit loops. I: [T, n]."""
    T, n = I.shape
    AI = np.zeros((T, n))
    for t in range(T):
        for s in range(t + 1):
            AI[t] += tau ** -(t - s + 1) * I[s]
    sig = 1.0 / (1.0 + np.exp(-AI))
    V = AI.copy()
    for t in range(T):
        for s in range(t):
            V[t] -= theta * tau ** -(t - s) * sig[s]
    return V, (V >= theta).astype(np.float64)


@pytest.mark.parametrize("tau", [2.0, 1.3])
def test_psu_equals_closed_form(tau):
    rng = np.random.default_rng(0)
    T, n = 9, 5
    I = rng.normal(0.8, 1.5, (T, n))
    neuron = PSUNeuron("psu", n, T, tau=tau, lif_units=False).double()
    V = neuron.membrane(torch.as_tensor(I[None]), 1.0)[0].numpy()
    Vx, Sx = psu_loops(I, tau, 1.0)
    np.testing.assert_allclose(V, Vx, rtol=1e-12, atol=1e-12)
    S = neuron(torch.as_tensor(I[None]), 1.0)[0].numpy()
    np.testing.assert_array_equal(S, Sx)
    assert 0 < S.sum() < S.size  # the case has both spikes and silences


def test_threshold_scaling():
    # integer-unit currents with threshold th behave like normalised currents with threshold 1
    rng = np.random.default_rng(1)
    I = torch.as_tensor(rng.normal(0.5, 1.0, (2, 7, 3)))
    neuron = PSUNeuron("psu", 3, 7, tau=2.0, lif_units=False).double()
    Vx, _ = psu_loops(I[0].numpy(), 2.0, 1.0)
    np.testing.assert_allclose(neuron.membrane(I * 37.0, 37.0)[0].numpy(), Vx, rtol=1e-12, atol=1e-12)


def test_matrices():
    A, B = psu_matrices(4, 2.0, torch.float64)
    assert A[3, 1].item() == 2.0 ** -3 and A[1, 1].item() == 0.5 and A[1, 2].item() == 0.0
    assert B[3, 1].item() == -(2.0 ** -2) and B[1, 1].item() == 0.0 and B[1, 2].item() == 0.0
    with pytest.raises(ValueError, match="tau"):
        psu_matrices(4, 0.5)


@pytest.mark.parametrize("kind", ["ipsu", "rpsu"])
def test_learnable_variants_start_as_psu_and_stay_causal(kind):
    rng = np.random.default_rng(2)
    T, n = 12, 4
    I = torch.as_tensor(rng.normal(0.5, 1.0, (3, T, n)))
    ref = PSUNeuron("psu", n, T, tau=2.0).double()
    neu = PSUNeuron(kind, n, T, tau=2.0).double()
    torch.testing.assert_close(neu.membrane(I), ref.membrane(I))
    # train the matrix a bit, then check causality: input at t0 never changes outputs before t0
    with torch.no_grad():
        neu.M.add_(torch.as_tensor(rng.normal(0, 0.3, (T, T))))
    t0 = 7
    J = I.clone()
    J[:, t0:] += 5.0
    a, b = neu.membrane(I), neu.membrane(J)
    torch.testing.assert_close(a[:, :t0], b[:, :t0])
    assert not torch.allclose(a[:, t0:], b[:, t0:])
    # upper triangle gets no gradient
    neu.membrane(I).sum().backward()
    assert torch.count_nonzero(torch.triu(neu.M.grad, 1)) == 0
    assert torch.count_nonzero(torch.tril(neu.M.grad)) > 0


def test_make_neuron_hook_and_errors():
    m = make_neuron("psu", 5, 10, decay=2048, spiking=True, membrane_bits=24, slope=5.0, exact=True)
    assert isinstance(m, PSUNeuron) and m.tau == 2.0
    assert m(torch.ones(2, 10, 5) * 3, 2).shape == (2, 10, 5)
    with pytest.raises(ValueError, match="neuron"):
        make_neuron("gru", 5, 10)
    with pytest.raises(ValueError, match="decay"):
        make_neuron("psu", 5, 10, decay=0)
    with pytest.raises(ValueError, match="T=10"):
        m(torch.ones(2, 11, 5), 1)


def _task():
    from sw.data.synthetic import make_delay_task

    return make_delay_task(64, n_channels=4, n_classes=3, T=30, seed=3, gap=4)


def _net(kind, seed=0):
    from sw.models.delay import DelayNet, NetConfig

    torch.manual_seed(seed)
    cfg = NetConfig(n_inputs=4, hidden=[16], n_classes=3, T=30, max_delay=12, delay_stride=2, init_gain=3.0,
                    tau_ms=10.0)
    return DelayNet(cfg, neuron_factory=neuron_factory(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_training_with_psu_reduces_loss(kind):
    X, y = _task()
    net = _net(kind)
    losses = finetune(net, X, y, epochs=6, lr=5e-3, batch_size=16, progress=False)
    assert losses[-1] < 0.95 * losses[0]


def test_convert_to_lif_then_export_runs_on_reference():
    from hw.reference import simulate
    from sw.export import integer_forward, to_model_file
    from sw.models.delay import LIFNeuron

    X, y = _task()
    net = _net("psu")
    theta0 = net.layers[0].theta
    assert convert_to_lif(net) == [0]
    assert isinstance(net.layers[0].neuron, LIFNeuron)
    assert net.layers[0].theta == theta0  # lif_units: PSU and LIF share the threshold
    assert convert_to_lif(net) == []  # nothing left to convert
    model = to_model_file(net)
    ref = simulate(model, X[:8], "layered")
    ours = integer_forward(model, X[:8])
    np.testing.assert_array_equal(ours.readout, ref.readout)
    with torch.no_grad():
        logits, _ = net(torch.as_tensor(X[:8]).float())
    np.testing.assert_array_equal(logits.argmax(1).numpy(), ref.predictions)


def test_lif_units_integration_term_is_the_lif_membrane():
    # A @ (tau * current / th) is the contract LIF's reset-free membrane v = beta v + current, over th
    from sw.models.delay import LIFNeuron

    T, n, th = 20, 6, 10.0
    rng = np.random.default_rng(4)
    cur = torch.as_tensor(rng.integers(-3, 6, (2, T, n)).astype(np.float64))
    neu = make_neuron("psu", n, T, decay=2458)
    A = neu.A.double()
    lif_v = LIFNeuron(n, decay=2458, spiking=False, exact=False)(cur, th)
    torch.testing.assert_close(A @ (cur * neu.tau / th), lif_v / th)
    # and in paper units the threshold must be rescaled by tau on conversion
    net = _net("psu")
    net.layers[0].neuron = PSUNeuron("psu", 16, 30, tau=net.layers[0].neuron.tau, lif_units=False)
    theta0, tau = net.layers[0].theta, net.layers[0].neuron.tau
    convert_to_lif(net)
    assert net.layers[0].theta == pytest.approx(theta0 * tau)
