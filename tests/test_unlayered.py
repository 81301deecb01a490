"""Unlayered (asynchronous-order) forward pass, tested against hw.reference."""
import numpy as np
import pytest
import torch

from hw.model_file import Layer, Model, validate
from hw.reference import simulate
from sw.models.unlayered import ParamLayer, UnlayeredNet


def rand_model(rng, n_in=6, hidden=(5, 4), n_cls=3, T=12, reset="zero", max_d=5, no_delays=False):
    layers, prev = [], n_in
    sizes = list(hidden) + [n_cls]
    for l, n in enumerate(sizes):
        if no_delays:
            delays = np.array([0], dtype=np.int64)
        else:
            K = int(rng.integers(1, 4))
            delays = np.sort(rng.choice(np.arange(0, max_d + 1), K, replace=False)).astype(np.int64)
        W = rng.integers(-6, 12, (len(delays), prev, n))
        W[rng.random(W.shape) < 0.4] = 0
        layers.append(Layer(delays, W.astype(np.int8), int(rng.integers(4, 15)), int(rng.integers(0, 4097)),
                            reset, l < len(sizes) - 1))
        prev = n
    return validate(Model(layers, n_in, T))


def assert_matches_reference(model, X, outs, ref):
    np.testing.assert_array_equal(outs[-1].v.cumsum(1).numpy(), ref.readout)
    for l in range(len(model.layers) - 1):
        np.testing.assert_array_equal(outs[l].spikes.numpy() > 0, ref.spikes(l))
        for b in range(X.shape[0]):
            et, ej = UnlayeredNet.emissions(outs[l], b)
            np.testing.assert_array_equal(et, ref[b].layers[l].emit_t, err_msg=f"layer {l} sample {b} times")
            np.testing.assert_array_equal(ej, ref[b].layers[l].emit_j, err_msg=f"layer {l} sample {b} order")
    np.testing.assert_array_equal(outs[-1].v.cumsum(1)[:, -1].argmax(-1).numpy(), ref.predictions)


@pytest.mark.parametrize("seed", range(12))
def test_fifo_f1_equals_reference_async_scdq(seed):
    rng = np.random.default_rng(seed)
    model = rand_model(rng, reset=("zero", "subtract")[seed % 2], no_delays=seed % 4 == 3)
    X = rng.random((4, model.T, model.n_inputs)) < 0.4
    ref = simulate(model, X, "async", "scdq")
    assert sum(ref.spikes(l).sum() for l in range(2)) > 0  # the case exercises firing
    outs = UnlayeredNet.from_model(model, "fifo", 1).run(torch.as_tensor(X))
    assert_matches_reference(model, X, outs, ref)


@pytest.mark.parametrize("seed", range(4))
def test_forward_group_all_equals_layered_with_zero_reset(seed):
    rng = np.random.default_rng(100 + seed)
    model = rand_model(rng, reset="zero")
    X = rng.random((3, model.T, model.n_inputs)) < 0.4
    ref = simulate(model, X, "layered")
    outs = UnlayeredNet.from_model(model, "fifo", "all").run(torch.as_tensor(X))
    np.testing.assert_array_equal(outs[-1].v.cumsum(1).numpy(), ref.readout)
    for l in range(len(model.layers) - 1):
        np.testing.assert_array_equal(outs[l].spikes.numpy() > 0, ref.spikes(l))


def _hand_model(W1, d1, th1, W2=None, d2=(0,), th2=1, decay=4096, reset="zero", extra=None):
    """Input -> hidden (W1) -> [extra hidden] -> readout (identity-ish)."""
    layers = [Layer(np.array(d1, dtype=np.int64), np.array(W1, dtype=np.int8), th1, decay, reset, True)]
    prev = layers[0].n_out
    if extra is not None:
        layers.append(Layer(np.array([0], dtype=np.int64), np.array(extra, dtype=np.int8), 5, decay, reset, True))
        prev = layers[-1].n_out
    if W2 is None:
        W2 = np.ones((1, prev, 1), dtype=np.int8)
    layers.append(Layer(np.array(d2, dtype=np.int64), np.array(W2, dtype=np.int8), th2, decay, "zero", False))
    return validate(Model(layers, layers[0].n_in, 6))


def _emits(model, X, scheduler="fifo", F=1, seed=0, layer=0):
    outs = UnlayeredNet.from_model(model, scheduler, F, seed).run(torch.as_tensor(X[None]))
    return [(int(t), int(j)) for t, j in zip(*UnlayeredNet.emissions(outs[layer], 0))]


def test_same_step_events_follow_input_channel_order():
    # neuron 0 listens to channel 1, neuron 1 to channel 0: channel 0 is handled first
    W1 = [[[0, 5], [5, 0]]]
    model = _hand_model(W1, [0], 5)
    X = np.zeros((6, 2), bool)
    X[0, :] = True
    assert _emits(model, X) == [(0, 1), (0, 0)]


def test_delayed_events_come_before_same_step_events():
    # channel 0 reaches neuron 0 with delay 2; channel 1 reaches neuron 1 at once; both due at t = 2
    W1 = np.zeros((2, 2, 2), np.int8)
    W1[1, 0, 0] = 5  # d = 2
    W1[0, 1, 1] = 5  # d = 0
    model = _hand_model(W1, [0, 2], 5)
    X = np.zeros((6, 2), bool)
    X[0, 0] = True
    X[2, 1] = True
    assert _emits(model, X) == [(2, 0), (2, 1)]


def test_refractory_once_per_step_and_checked_only_on_update():
    # two +5 events in one step, threshold 5: one spike; zero reset then +5 leaves v = 5 (no leak)
    W1 = [[[5], [5], [1]]]
    model = _hand_model(W1, [0], 5)
    X = np.zeros((6, 3), bool)
    X[0, 0] = X[0, 1] = True  # fires once at t=0, ends with v = 5 >= threshold (refractory)
    # t=1: no update -> no spike although v = 5 >= 5; t=2: +1 update -> fires
    X[2, 2] = True
    assert _emits(model, X) == [(0, 0), (2, 0)]
    ref = simulate(model, X, "async", "scdq")
    assert ref[0].layers[0].emit_t.tolist() == [0, 2]


def test_forward_group_sums_before_checking():
    # +5 then -5 in one step: event by event the neuron fires, a group of 2 nets to 0
    W1 = [[[5], [-5]]]
    model = _hand_model(W1, [0], 5)
    X = np.zeros((6, 2), bool)
    X[1, :] = True
    assert _emits(model, X, F=1) == [(1, 0)]
    assert _emits(model, X, F=2) == []
    assert _emits(model, X, F="all") == []


def test_random_scheduler_is_seeded_and_varies_the_order():
    W1 = [[[0, 5], [5, 0]]]
    model = _hand_model(W1, [0], 5)
    X = np.zeros((6, 2), bool)
    X[0, :] = True
    orders = {tuple(_emits(model, X, "random", 1, seed)) for seed in range(16)}
    assert orders == {((0, 1), (0, 0)), ((0, 0), (0, 1))}
    assert _emits(model, X, "random", 1, 7) == _emits(model, X, "random", 1, 7)
    # one network draws a fresh order per call, and reseeding replays the sequence
    net = UnlayeredNet.from_model(model, "random", 1, seed=3)
    x = torch.as_tensor(np.repeat(X[None], 8, 0))
    a = [net.run(x)[0].rank.clone() for _ in range(3)]
    net.reseed()
    b = [net.run(x)[0].rank.clone() for _ in range(3)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_momentum_orders_by_pre_spike_membrane():
    # hidden: h0 fires first with membrane 6, h1 second with membrane 9 (fifo order h0, h1)
    W1 = [[[6, 0], [0, 9]]]
    # second hidden layer: g0 listens to h1, g1 to h0
    extra = [[[0, 5], [5, 0]]]
    model = _hand_model(W1, [0], 5, extra=extra)
    X = np.zeros((6, 2), bool)
    X[0, :] = True
    assert _emits(model, X, "fifo", layer=0) == [(0, 0), (0, 1)]
    assert _emits(model, X, "fifo", layer=1) == [(0, 1), (0, 0)]  # h0's event first
    assert _emits(model, X, "momentum", layer=1) == [(0, 0), (0, 1)]  # h1 (membrane 9) first
    outs = UnlayeredNet.from_model(model, "momentum").run(torch.as_tensor(X[None]))
    assert outs[0].mem[0, 0].tolist() == [6.0, 9.0]


def test_bad_arguments_are_named():
    model = _hand_model([[[5]]], [0], 5)
    with pytest.raises(ValueError, match="scheduler"):
        UnlayeredNet.from_model(model, "lifo")
    with pytest.raises(ValueError, match="forward_group"):
        UnlayeredNet.from_model(model, "fifo", 0)
    with pytest.raises(ValueError, match="channels"):
        UnlayeredNet.from_model(model).run(torch.zeros(1, 6, 3))


# ---------------------------------------------------------------- with the delay model
def _small_delay_net(seed=0, **kw):
    from sw.models.delay import DelayNet, NetConfig

    torch.manual_seed(seed)
    cfg = NetConfig(n_inputs=8, hidden=[10, 8], n_classes=3, T=24, max_delay=6, delay_stride=2, init_gain=3.0, **kw)
    return DelayNet(cfg)


def test_delay_net_wrapper_matches_reference_async_and_layered():
    from sw.export import to_model_file

    net = _small_delay_net()
    model = to_model_file(net)
    rng = np.random.default_rng(0)
    X = rng.random((5, 24, 8)) < 0.3
    x = torch.as_tensor(X).float()
    ul = UnlayeredNet.from_delay_net(net, "fifo", 1)
    with torch.no_grad():
        logits, rec = ul(x)
    ref = simulate(model, X, "async", "scdq")
    assert sum(ref.spikes(l).sum() for l in range(2)) > 0
    np.testing.assert_array_equal(rec["readout"].cumsum(1).numpy(), ref.readout)
    assert_matches_reference(model, X, ul.last, ref)
    # F = all is layered, so it equals the delay network's own forward
    with torch.no_grad():
        lo_l, rec_l = net(x)
        lo_a, rec_a = UnlayeredNet.from_delay_net(net, "fifo", "all")(x)
    assert torch.equal(rec_l["readout"], rec_a["readout"])
    assert torch.allclose(lo_l, lo_a)


@pytest.mark.parametrize("scheduler", ["fifo", "random", "momentum"])
def test_unlayered_training_reduces_loss(scheduler):
    from sw.data.synthetic import make_delay_task

    X, y = make_delay_task(48, n_channels=4, n_classes=3, T=30, seed=1, gap=4)
    from sw.models.delay import DelayNet, NetConfig

    torch.manual_seed(0)
    net = DelayNet(NetConfig(n_inputs=4, hidden=[12], n_classes=3, T=30, max_delay=12, delay_stride=2,
                             init_gain=3.0, tau_ms=10.0))
    ul = UnlayeredNet.from_delay_net(net, scheduler, 1, seed=0)
    x, yt = torch.as_tensor(X).float(), torch.as_tensor(y)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)

    def loss_now():
        ul.reseed()
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(ul(x)[0], yt).item()

    before = loss_now()
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(ul(x)[0], yt)
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
        opt.step()
    assert loss_now() < 0.9 * before


# ---------------------------------------------------------------- compiled path vs the tensor oracle
def _oracle_keys(st, B, T, K, n_in):
    """The compiled run's event order of one layer as the oracle's random keys (slot k * n_in + i)."""
    keys = torch.full((B * T, K * n_in), float("inf"), dtype=torch.float64)
    off, row = st["ev_off"], st["ev_row"]
    for bt in range(B * T):
        r = torch.as_tensor(row[off[bt]:off[bt + 1]].astype(np.int64))
        keys[bt, r] = torch.arange(len(r), dtype=torch.float64)
    return keys.view(B, T, K * n_in)


def _run_oracle(orac, X, T, states, scheduler, F, empty_rows_last=False):
    """The oracle, layer by layer, fed the compiled run's event order (``states``) where it has a choice
    (random); ``empty_rows_last``: events the compiled run skipped get keys after the others."""
    from sw.models.unlayered import async_layer_oracle

    B = X.shape[0]
    S = X.to(torch.float64)
    rank = torch.arange(X.shape[2], dtype=S.dtype).expand_as(S)
    mem = torch.zeros_like(S)
    oo = []
    for l, L in enumerate(orac.layers):
        keys = None
        if scheduler == "random" and L.spiking:
            K, n_in = L.weights().shape[:2]
            keys = _oracle_keys(states[l], B, T, K, n_in)
            if empty_rows_last:
                keys = torch.where(torch.isinf(keys), torch.full_like(keys, 1e9), keys)
        o = async_layer_oracle(S, rank, mem, L, scheduler, F, orac.gen, True, orac.slope, keys)
        oo.append(o)
        S, rank, mem = o.spikes, o.rank, o.mem
    return oo


def _trainable_layers(model, dtype):
    return [ParamLayer(torch.as_tensor(L.weights.astype(np.float64), dtype=dtype), L.delays.tolist(), float(L.threshold),
                       L.decay / 4096, L.reset, bool(L.spiking), trainable=True) for L in model.layers]


def _loss(outs, B):
    g = torch.Generator().manual_seed(1)
    loss = 0
    for o in outs:  # random linear functionals of every differentiable output
        loss = loss + (o.v * torch.randn(o.v.shape, generator=g, dtype=o.v.dtype)).sum() * 1e-2
        loss = loss + (o.spikes * torch.randn(o.spikes.shape, generator=g, dtype=o.spikes.dtype)).sum()
    return loss


@pytest.mark.parametrize("scheduler", ["fifo", "random", "momentum"])
@pytest.mark.parametrize("F", [1, 2, "all"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_compiled_path_equals_oracle_forward_and_gradient(scheduler, F, reset):
    rng = np.random.default_rng(7 + len(str(F)) + (reset == "zero"))
    model = rand_model(rng, n_in=7, hidden=(6, 5), T=14, reset=reset)
    B = 3
    X = torch.as_tensor(rng.random((B, model.T, model.n_inputs)) < 0.4)
    dtype = torch.float64
    fast = UnlayeredNet(_trainable_layers(model, dtype), scheduler, F, seed=5, integer=True)
    orac = UnlayeredNet(_trainable_layers(model, dtype), scheduler, F, seed=5, integer=True)
    outs = fast.run(X)
    assert sum(float(o.spikes.detach().sum()) for o in outs[:-1]) > 0
    _loss(outs, B).backward()
    # the oracle, layer by layer, with the compiled run's event order (random) where it has a choice
    oo = _run_oracle(orac, X, model.T, fast.states, scheduler, F)
    _loss(oo, B).backward()
    for l, (a, b) in enumerate(zip(outs, oo)):
        for f in ("spikes", "v", "mem"):
            assert torch.equal(getattr(a, f).detach(), getattr(b, f).detach()), (l, f)
        fired = b.spikes.detach() > 0
        assert torch.equal(a.rank[fired], b.rank[fired]), l
    for l, (p, q) in enumerate(zip(fast.layers, orac.layers)):
        assert q.w.grad.abs().sum() > 0
        torch.testing.assert_close(p.w.grad, q.w.grad, rtol=1e-9, atol=1e-12, msg=f"layer {l} weight gradient")


def test_compiled_path_gradient_of_the_delay_net_equals_oracle():
    net = _small_delay_net(3)
    rng = np.random.default_rng(3)
    x = torch.as_tensor(rng.random((4, 24, 8)) < 0.3).float()
    y = torch.as_tensor([0, 1, 2, 1])
    grads = []
    for fast in (True, False):
        ul = UnlayeredNet.from_delay_net(net, "momentum", 1, seed=0)
        ul.fast = fast
        net.zero_grad()
        logits, rec = ul(x)
        loss = torch.nn.functional.cross_entropy(logits, y) + sum(s.mean() for s in rec["spikes"])
        loss.backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert all(g.abs().sum() > 0 for g in grads[0])


@pytest.mark.parametrize("scheduler", ["fifo", "random", "momentum"])
@pytest.mark.parametrize("F", [1, 3])
@pytest.mark.parametrize("csr", [True, False])
def test_compiled_sparse_rows_equal_oracle(scheduler, F, csr, monkeypatch):
    """Layers with a tap support (pruned): rows applied from their CSR (or dense rows), empty rows
    skipped (F = 1); forward identical and the weight gradient identical on the support."""
    from sw.models import unlayered

    monkeypatch.setattr(unlayered, "SPARSE_MAX_DENSITY", 1.01 if csr else 0.0)  # every layer on one path

    rng = np.random.default_rng(11 + F)
    model = rand_model(rng, n_in=9, hidden=(7, 6), T=14, reset="zero")
    B = 3
    X = torch.as_tensor(rng.random((B, model.T, model.n_inputs)) < 0.45)
    sups = []
    for L in model.layers:  # one tap per synapse (a random level), plus a few live zero taps
        K, n_in, n_out = L.weights.shape
        lvl = rng.integers(0, K, (n_in, n_out))
        sup = np.zeros(L.weights.shape, bool)
        sup[lvl, np.arange(n_in)[:, None], np.arange(n_out)[None, :]] = True
        sup &= rng.random(sup.shape) < 0.8
        L.weights[~sup] = 0
        sups.append(sup)
    assert any(not s.any(2).all() for s in sups)  # some rows are empty (skipped with F = 1)

    def layers():
        return [ParamLayer(torch.as_tensor(L.weights.astype(np.float64)), L.delays.tolist(), float(L.threshold),
                           L.decay / 4096, L.reset, bool(L.spiking), support=torch.as_tensor(s))
                for L, s in zip(model.layers, sups)]

    fast = UnlayeredNet(layers(), scheduler, F, seed=2, integer=True)
    orac = UnlayeredNet(layers(), scheduler, F, seed=2, integer=True)
    outs = fast.run(X)
    assert sum(float(o.spikes.detach().sum()) for o in outs[:-1]) > 0
    _loss(outs, B).backward()
    # events on empty rows were skipped (F = 1): the oracle gives them any keys after the others
    oo = _run_oracle(orac, X, model.T, fast.states, scheduler, F, empty_rows_last=F == 1)
    _loss(oo, B).backward()
    for l, (a, b) in enumerate(zip(outs, oo)):
        for f in ("spikes", "v", "mem"):
            assert torch.equal(getattr(a, f).detach(), getattr(b, f).detach()), (l, f)
    for l, (p, q, s) in enumerate(zip(fast.layers, orac.layers, sups)):
        s = torch.as_tensor(s)
        assert q.w.grad[s].abs().sum() > 0
        torch.testing.assert_close(p.w.grad * s, q.w.grad * s, rtol=1e-9, atol=1e-12, msg=f"layer {l}")


def test_compiled_path_refuses_a_non_binary_raster():
    model = _hand_model([[[5]]], [0], 5)
    x = torch.zeros(1, 6, 1)
    x[0, 2, 0] = 2.0
    with pytest.raises(ValueError, match="binary"):
        UnlayeredNet.from_model(model).run(x)


def test_compiled_random_training_is_seeded():
    """Same seed, same bits: two trainings with the random scheduler end with identical weights;
    another seed draws other orders."""
    rng = np.random.default_rng(5)
    x = torch.as_tensor(rng.random((6, 24, 8)) < 0.3).float()
    y = torch.as_tensor([0, 1, 2, 0, 1, 2])

    def train(seed):
        net = _small_delay_net(1)
        ul = UnlayeredNet.from_delay_net(net, "random", 1, seed=seed)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        orders = []
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(ul(x)[0], y).backward()
            opt.step()
            orders.append(ul.states[0]["ev_row"].copy())
        return [p.detach().clone() for p in net.parameters()], orders

    a, oa = train(0)
    b, ob = train(0)
    c, oc = train(1)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert all(np.array_equal(p, q) for p, q in zip(oa, ob))
    assert not all(np.array_equal(p, q) for p, q in zip(oa, oc))


@pytest.mark.parametrize("scheduler", ["fifo", "random", "momentum"])
def test_compiled_batch_shards(scheduler):
    """Batch shards on threads: the oracle's numbers (fifo/momentum: those of one shard), and the
    same bits on one thread or two."""

    rng = np.random.default_rng(21)
    model = rand_model(rng, n_in=7, hidden=(6, 5), T=14, reset="zero")
    B = 5
    X = torch.as_tensor(rng.random((B, model.T, model.n_inputs)) < 0.4)

    def run(shards, workers):
        net = UnlayeredNet(_trainable_layers(model, torch.float64), scheduler, 1, seed=4, integer=True)
        net.shards = shards
        if workers > 1:
            net.net = type("N", (), {"shards": shards, "workers": workers})()
        outs = net.run(X)
        _loss(outs, B).backward()
        return net, outs, [L.w.grad.clone() for L in net.layers]

    one, o1, g1 = run(1, 1)
    a, oa, ga = run(3, 1)
    b, ob, gb = run(3, 2)
    for x, y in zip(oa, ob):
        assert torch.equal(x.spikes, y.spikes) and torch.equal(x.v, y.v)
    assert all(torch.equal(x, y) for x, y in zip(ga, gb))  # thread count: same bits
    if scheduler != "random":
        for x, y in zip(o1, oa):
            assert torch.equal(x.spikes, y.spikes) and torch.equal(x.v, y.v) and torch.equal(x.rank, y.rank)
        for x, y in zip(g1, ga):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    # the sharded run equals the oracle given its event order
    orac = UnlayeredNet(_trainable_layers(model, torch.float64), scheduler, 1, seed=4, integer=True)
    oo = _run_oracle(orac, X, model.T, a.states, scheduler, 1)
    _loss(oo, B).backward()
    for x, y in zip(oa, oo):
        assert torch.equal(x.spikes.detach(), y.spikes.detach()) and torch.equal(x.v.detach(), y.v.detach())
    for x, L in zip(ga, orac.layers):
        torch.testing.assert_close(x, L.w.grad, rtol=1e-9, atol=1e-12)
