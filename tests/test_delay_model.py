"""Delay model: the synapse computes the delayed sum, delays are learnable where
no-delay models fail, and the hardware-aware float model computes the integers."""
import numpy as np
import pytest
import torch

from hw.reference import trunc0_leak
from sw.data.synthetic import make_delay_task
from sw.models.delay import DelayNet, DelaySynapse, NetConfig, mem_sum_loss
from sw.quantize import decay_int, fake_quant, layer_scale, trunc0_ste


def test_synapse_equals_explicit_delayed_sum():
    torch.manual_seed(0)
    syn = DelaySynapse(7, 5, list(range(0, 13, 3)), quantize=False)
    s = (torch.rand(3, 20, 7) < 0.3).float()
    I = syn(s).detach()
    W = syn.masked_weight().detach()  # [n_out, n_in, K]
    expect = torch.zeros(3, 20, 5)
    for k, d in enumerate(range(0, 13, 3)):  # independent definition: I[t] = sum_k S[t - d_k] @ W_k
        expect[:, d:] += s[:, : 20 - d] @ W[:, :, k].T
    assert torch.allclose(I, expect, atol=1e-5)


def test_quantized_synapse_is_integer_valued_and_within_bits():
    torch.manual_seed(1)
    syn = DelaySynapse(9, 4, [0, 2, 4], weight_bits=6)
    q = syn.int_weight()
    assert q.abs().max() == 31 and q.min() >= -32
    I = syn((torch.rand(2, 15, 9) < 0.5).float()).detach()
    assert torch.equal(I, I.round())


def test_trunc0_and_decay_match_the_reference():
    v = np.arange(-5000, 5000, 7, dtype=np.int64)
    for a in (0, 1, 1507, 3686, 4095, 4096):
        ours = trunc0_ste(torch.tensor(v, dtype=torch.float64) * (a / 4096)).numpy().astype(np.int64)
        assert np.array_equal(ours, trunc0_leak(v, a))
    assert decay_int(0.02, 0.01) == round(4096 * np.exp(-0.5))


def test_straight_through_gradients_reach_the_weights():
    torch.manual_seed(2)
    w = torch.randn(4, 3, 2, requires_grad=True)
    s = layer_scale(w, 8)
    fake_quant(w, s, 8).sum().backward()
    assert torch.allclose(w.grad, torch.full_like(w, 1 / float(s)))
    net = DelayNet(NetConfig(n_inputs=5, hidden=[8], n_classes=3, T=20, max_delay=6, init_gain=3.0))
    x = (torch.rand(4, 20, 5) < 0.3).float()
    mem_sum_loss(net(x)[0], torch.tensor([0, 1, 2, 0])).backward()
    for syn in net.synapses:
        assert syn.weight.grad is not None and syn.weight.grad.abs().sum() > 0


def test_no_delays_keeps_topology_with_a_single_level():
    a = DelayNet(NetConfig(n_inputs=10, hidden=[6, 5], n_classes=3, T=10))
    b = DelayNet(NetConfig(n_inputs=10, hidden=[6, 5], n_classes=3, T=10, no_delays=True))
    assert [(s.n_in, s.n_out) for s in a.synapses] == [(s.n_in, s.n_out) for s in b.synapses]
    assert all(s.K == 1 and s.delays.tolist() == [0] for s in b.synapses)
    assert all(s.K == 31 for s in a.synapses)


def _fit(no_delays: bool, seed: int = 0):
    C, NC, T = 6, 4, 60
    Xtr, ytr = make_delay_task(600, C, NC, T, seed=11, class_seed=0)
    Xte, yte = make_delay_task(300, C, NC, T, seed=12, class_seed=0)
    Xtr, Xte = torch.tensor(Xtr).float(), torch.tensor(Xte).float()
    ytr, yte = torch.tensor(ytr), torch.tensor(yte)
    torch.manual_seed(seed)
    cfg = NetConfig(n_inputs=C, hidden=[16], n_classes=NC, T=T, max_delay=30, delay_stride=2, no_delays=no_delays,
                    tau_ms=10, readout_tau_ms=10, init_gain=2.0)
    net = DelayNet(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(seed)
    for _ in range(8):
        perm = torch.randperm(len(ytr), generator=g)
        for b in range(0, len(ytr), 32):
            idx = perm[b:b + 32]
            loss = mem_sum_loss(net(Xtr[idx])[0], ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float((net(Xte)[0].argmax(1) == yte).float().mean())


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # many tiny ops: two threads on shared cores only wait on each other
    yield
    torch.set_num_threads(n)


def test_delays_solve_the_task_that_no_delays_cannot(one_thread):
    with_delays, without = _fit(False), _fit(True)
    # chance is 0.25; margins are far from the observed figures (about 0.98 and 0.25)
    assert with_delays >= 0.8, with_delays
    assert without <= 0.45, without
    assert with_delays - without >= 0.35


def test_bad_model_config_names_the_field():
    with pytest.raises(ValueError, match="hidden"):
        NetConfig(hidden=[0]).validate()
    with pytest.raises(ValueError, match="tau_ms"):
        NetConfig(tau_ms=-1).validate()


def test_unquantized_context_runs_plain_float_and_restores():
    from sw.models.delay import unquantized

    torch.manual_seed(3)
    net = DelayNet(NetConfig(n_inputs=8, hidden=[6], n_classes=3, T=15, max_delay=4, init_gain=3.0))
    x = (torch.rand(5, 15, 8) < 0.4).float()
    with torch.no_grad():
        q = net(x)[1]["readout"]
        with unquantized(net):
            f = net(x)[1]["readout"]
            assert not torch.equal(f, f.round())  # float currents, not integers
        assert torch.equal(net(x)[1]["readout"], q)
    assert float(net.synapses[-1].scale()) > 0 and net.synapses[0].quantize


def test_pruned_synapse_path_equals_the_dense_path():
    torch.manual_seed(4)
    syn = DelaySynapse(9, 6, list(range(0, 21, 2)))
    s = (torch.rand(3, 25, 9) < 0.3).float()
    with torch.no_grad():
        syn.mask[:, :, 3:] = False  # 3 of 11 levels live: the matmul path
        sparse = syn(s)
        dense_ref = torch.zeros(3, 25, 6)
        W = syn.effective_weight()
        for k in range(3):
            dense_ref[:, 2 * k:] += s[:, : 25 - 2 * k] @ W[:, :, k].T
    assert torch.equal(sparse, dense_ref)  # integer currents: exact in both paths
    syn.mask[:] = True
    with torch.no_grad():
        x = syn(s)
    assert torch.equal(x, x.round())
