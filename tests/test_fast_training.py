"""Fast training paths against their oracles: the fused LIF against the step
functions looped with autograd (same numbers, same gradients), the event-driven
and dense synapse against an explicit delayed sum, and the training features
built on them (rate regulariser, low-bit weights, per-layer max delay, devices)."""
import math

import numpy as np
import pytest
import torch

from sw.models.lif import LIFParams, li_sequence, lif_sequence, lif_sequence_reference
from sw.models.synapse import exact_dtype, tap_sum


def _current(seed, B=3, T=30, n=5, scale=40.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, T, n, generator=g, dtype=torch.float64) * scale + 10).round()


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("spiking", [True, False])
def test_fused_lif_equals_step_functions_values_and_gradients(reset, exact, spiking):
    p = LIFParams(threshold=60.0, decay=2484, membrane_bits=10, slope=5.0, exact=exact, reset=reset)
    cur = _current(0, scale=200.0)  # large enough to hit the 10-bit saturation
    g = torch.Generator().manual_seed(1)
    w_out = torch.randn(cur.shape, generator=g, dtype=torch.float64)
    x1 = cur.clone().requires_grad_(True)
    x2 = cur.clone().requires_grad_(True)
    y1 = (lif_sequence(x1, p) if spiking else li_sequence(x1, p))
    y2 = lif_sequence_reference(x2, p, spiking)
    assert torch.equal(y1.detach(), y2.detach().to(y1.dtype))
    if not spiking:
        assert y1.abs().max() >= 511  # saturation was exercised
    (y1 * w_out).sum().backward()
    (y2 * w_out).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)
    assert x1.grad.abs().sum() > 0


def test_fused_lif_gradcheck_readout():
    # the readout is piecewise linear away from rounding points: the hand BPTT is the true gradient
    p = LIFParams(decay=3000, membrane_bits=24, exact=False)
    x = torch.randn(2, 12, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: li_sequence(c, p), (x,))


def _explicit(S, W, delays):
    B, T, _ = S.shape
    I = torch.zeros(B, T, W.shape[2], dtype=W.dtype)
    for l, d in enumerate(delays):
        if d < T:
            I[:, d:] += S[:, : T - d].to(W.dtype) @ W[:, l]
    return I


@pytest.mark.parametrize("int8", [False, True])
@pytest.mark.parametrize("mode", ["event", "dense", "auto"])
def test_tap_sum_equals_explicit_sum_and_its_gradients(mode, int8):
    g = torch.Generator().manual_seed(3)
    S = (torch.rand(4, 25, 11, generator=g) < 0.2).float().requires_grad_(True)
    W = torch.randint(-128, 128, (11, 4, 6), generator=g).float().requires_grad_(True)
    delays = [0, 2, 7, 30]  # one delay beyond T
    I = tap_sum(S, W, delays, mode, int8)
    S2, W2 = S.detach().clone().requires_grad_(True), W.detach().clone().requires_grad_(True)
    ref = _explicit(S2, W2, delays)
    assert torch.equal(I, ref)  # integers: exact in float32
    gI = torch.randn(I.shape, generator=g)
    (I * gI).sum().backward()
    (ref * gI).sum().backward()
    assert torch.allclose(W.grad, W2.grad, atol=1e-4)
    assert torch.allclose(S.grad, S2.grad, atol=1e-4)


def test_exact_dtype_bound():
    assert exact_dtype(8, 700, 31) == torch.float32  # 128 * 700 * 31 < 2^24
    assert exact_dtype(16, 700, 31) == torch.float64


def _net(**kw):
    from sw.models.delay import DelayNet, NetConfig

    torch.manual_seed(0)
    cfg = dict(n_inputs=20, hidden=[12, 10], n_classes=4, T=30, max_delay=12, delay_stride=2, init_gain=3.0)
    cfg.update(kw)
    return DelayNet(NetConfig(**cfg))


def test_fused_net_gradients_equal_the_unfused_oracle():
    from sw.models.delay import mem_sum_loss

    x = (torch.rand(6, 30, 20, generator=torch.Generator().manual_seed(4)) < 0.15).float()
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    grads = []
    for fused, mode in ((True, "event"), (True, "dense"), (False, "dense")):
        net = _net()
        for L in net.layers:
            L.neuron.fused = fused
            L.synapse.mode = mode
        logits, rec = net(x)
        mem_sum_loss(logits, y).backward()
        grads.append((logits.detach(), [s.weight.grad.clone() for s in net.synapses]))
    for logits, gs in grads[1:]:
        assert torch.equal(logits, grads[0][0])
        for a, b in zip(gs, grads[0][1]):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_layer_max_delay_limits_each_grid_and_exports():
    from sw.export import integer_forward, to_model_file
    from hw.reference import simulate

    net = _net(layer_max_delay=[12, 4, 0])
    assert [s.delays.tolist() for s in net.synapses] == [[0, 2, 4, 6, 8, 10, 12], [0, 2, 4], [0]]
    m = to_model_file(net.eval())
    assert [int(L.delays.max()) for L in m.layers] == [12, 4, 0]
    X = (np.random.default_rng(0).random((5, 30, 20)) < 0.2)
    ours, ref = integer_forward(m, X), simulate(m, X, "layered")
    assert np.array_equal(ours.readout, ref.readout)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_low_bit_weights_use_the_range_and_stay_bit_exact(bits):
    from hw.reference import simulate
    from sw.export import integer_forward, to_model_file

    net = _net(weight_bits=bits)
    q = torch.cat([s.int_weight().flatten() for s in net.synapses])
    lim = (1 << (bits - 1)) - 1
    assert int(q.max()) == lim and int(q.min()) == -lim  # symmetric, saturating scale
    # not collapsed to zero: a useful share of the taps is non-zero
    assert float((q != 0).float().mean()) > 0.3
    m = to_model_file(net.eval())
    X = (np.random.default_rng(1).random((5, 30, 20)) < 0.2)
    x = torch.from_numpy(X).float()
    logits, rec = net(x)
    ref = simulate(m, X, "layered")
    assert np.array_equal(integer_forward(m, X).readout, ref.readout)
    assert np.array_equal(rec["spikes"][0].detach().numpy().astype(bool), ref.spikes(0))


def test_rate_regulariser_moves_rates_towards_target():
    from sw.trainer import rate_loss

    net = _net()
    x = (torch.rand(16, 30, 20, generator=torch.Generator().manual_seed(5)) < 0.3).float()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    r0 = [float(z.detach().mean()) for z in net(x)[1]["spikes"]]
    for _ in range(30):
        loss = rate_loss(net(x)[1]["spikes"], [0.01, 0.01], [1.0, 1.0])
        opt.zero_grad()
        loss.backward()
        opt.step()
    r1 = [float(z.detach().mean()) for z in net(x)[1]["spikes"]]
    assert all(b < a for a, b in zip(r0, r1) if a > 0.02), (r0, r1)
    assert rate_loss(net(x)[1]["spikes"], [0.5, 0.5], [0.0, 0.0]).item() == 0.0


def test_device_choice():
    from sw.trainer import pick_device
    from sw.config import ConfigError

    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="train.device"):
            pick_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_forward_equals_cpu():
    net = _net()
    x = (torch.rand(4, 30, 20, generator=torch.Generator().manual_seed(6)) < 0.2).float()
    a = net(x)[0]
    b = net.to("cuda")(x.cuda())[0].cpu()
    assert torch.equal(a.detach(), b.detach())


def test_learnable_delays_train_positions_and_export_bit_exact():
    from hw.reference import simulate
    from sw.export import integer_forward, to_model_file
    from sw.models.delay import mem_sum_loss

    net = _net(delay_mode="learnable", sigma_init=2.0, sigma_final=0.2)
    x = (torch.rand(8, 30, 20, generator=torch.Generator().manual_seed(7)) < 0.2).float()
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    net.train()
    net.set_delay_width(0, 5)
    mem_sum_loss(net(x)[0], y).backward()
    syn = net.synapses[0]
    assert syn.pos_u.grad is not None and syn.pos_u.grad.abs().sum() > 0  # the position learns
    assert float(syn.sigma) == 2.0 and net.set_delay_width(4, 5) == pytest.approx(0.2)
    net.eval()
    q = syn.int_weight()
    assert int(((q != 0).sum(-1) > 1).sum()) == 0  # one tap per synapse
    lv = syn.level()
    nz = q.abs().sum(-1) != 0
    assert torch.equal(q.abs().argmax(-1)[nz], lv[nz])  # at the rounded position
    m = to_model_file(net)
    X = (np.random.default_rng(2).random((6, 30, 20)) < 0.2)
    logits, rec = net(torch.from_numpy(X).float())
    ref = simulate(m, X, "layered")
    assert np.array_equal(integer_forward(m, X).readout, ref.readout)
    assert np.array_equal(rec["spikes"][0].detach().numpy().astype(bool), ref.spikes(0))
    assert np.array_equal(logits.argmax(1).numpy(), ref.predictions)


@pytest.mark.parametrize("sigma", [4.0, 0.5, 0.2])
def test_learnable_delay_kernel_is_the_gaussian_without_subnormals(sigma):
    from sw.models.delay import KERNEL_LOG_FLOOR

    syn = _net(delay_mode="learnable").synapses[0]
    syn.train()
    syn.sigma.fill_(sigma)
    g = syn._kernel().detach()
    # the normalized Gaussian in float64, independent of the module's arithmetic
    k = np.arange(syn.K)
    z = -0.5 * ((k - syn.pos.detach().clamp(0, syn.K - 1).double().numpy()[..., None]) / sigma) ** 2
    want = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    tiny = torch.finfo(torch.float32).tiny
    assert not bool(((g != 0) & (g.abs() < tiny)).any())  # no subnormal tap
    assert np.allclose(g.numpy(), want, rtol=1e-5, atol=2 * math.exp(KERNEL_LOG_FLOOR))
    assert np.array_equal(g.numpy() == 0, z <= KERNEL_LOG_FLOOR)  # zero exactly below the floor


@pytest.mark.parametrize("sigma", [0.04, 1e-3])
def test_learnable_delay_kernel_narrower_than_the_floor_is_the_rounded_tap(sigma):
    # every tap of so narrow a Gaussian underflows; the nearest one is kept (it was 0 / 0 = nan)
    syn = _net(delay_mode="learnable").synapses[0]
    with torch.no_grad():
        syn.pos_u.copy_(torch.rand(syn.pos_u.shape, generator=torch.Generator().manual_seed(3)))
    syn.train()
    syn.sigma.fill_(sigma)
    g = syn._kernel()
    assert torch.isfinite(g).all()
    assert torch.equal(g.detach(), torch.nn.functional.one_hot(syn.level(), syn.K).to(g.dtype))
    g.sum().backward()  # finite gradients
    assert torch.isfinite(syn.pos_u.grad).all()


def test_cli_flags_reach_the_config_and_train(tmp_path):
    import json

    from sw.config import ConfigError, load_config
    from sw.trainer import config_from_args, main, parse_args

    cfg = config_from_args(parse_args(["--rate-target", "0.05,0.1", "--rate-weight", "2", "--weight-bits", "4",
                                       "--delays", "learnable", "--threads", "1", "--device", "cpu",
                                       "--synapse", "event", "--set", "model.hidden=[8, 8]"]))
    assert cfg["reg"] == {"rate_target": [0.05, 0.1], "rate_weight": 2.0}
    assert (cfg["model"]["weight_bits"], cfg["model"]["delay_mode"], cfg["train"]["synapse"]) == (4, "learnable", "event")
    with pytest.raises(ConfigError, match="reg.rate_target"):
        load_config(overrides={"reg": {"rate_target": [0.1, 0.2, 0.3]}})
    with pytest.raises(ConfigError, match="--rate-weight"):
        config_from_args(parse_args(["--rate-weight", "x"]))
    with pytest.raises(ConfigError, match="layer_max_delay"):
        load_config(overrides={"model": {"layer_max_delay": [60, 70, 0]}})
    tiny = {"data": {"source": "synthetic", "T": 40, "val_fraction": 0.2,
                     "synthetic": {"n_train": 96, "n_test": 48, "n_channels": 5, "n_classes": 3, "gap": 5,
                                   "jitter": 1, "noise": 1}},
            "model": {"hidden": [10], "max_delay": 20, "delay_stride": 2, "tau_ms": 10.0, "readout_tau_ms": 10.0,
                      "init_gain": 2.0},
            "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "threads": 1}}
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(tiny))
    for extra in (["--delays", "learnable", "--weight-bits", "3", "--set", "budget.max_taps=100"], ["--rate-target", "0.02", "--rate-weight", "5",
                                                                     "--set", "model.layer_max_delay=[8, 0]"]):
        out = tmp_path / extra[1]
        assert main(["--config", str(p), "--out", str(out), "--no-progress", *extra]) == 0  # 0 = bit-exact parity
        s = json.loads((out / "train_summary.json").read_text())
        assert s["parity"]["all_bit_exact"] and s["seconds_training"] > 0
    # learnable delays: the tap budget never prunes the per-level masks (one tap per synapse by construction)
    ck = torch.load(tmp_path / "learnable" / "checkpoints" / "final.pt", weights_only=True)
    assert all(bool(v.all()) for k, v in ck["model"].items() if k.endswith("synapse.mask"))


def test_batch_shards_give_the_unsharded_gradients_and_the_same_bits_on_any_thread_count():
    from sw.models.delay import mem_sum_loss

    x = (torch.rand(7, 30, 20, generator=torch.Generator().manual_seed(8)) < 0.15).float()
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    saved = torch.get_num_threads()
    res = []
    try:
        for shards, workers in ((1, None), (3, 1), (3, 2), (3, 3)):
            net = _net()
            net.shards, net.workers = shards, workers
            torch.set_num_threads(1)
            logits, rec = net(x)
            # a loss on every output: CE on the readout and a rate term on each hidden layer
            loss = mem_sum_loss(logits, y) + sum((z.mean() - 0.05) ** 2 for z in rec["spikes"])
            loss.backward()
            res.append((logits.detach(), [z.detach() for z in rec["spikes"]], [p.grad.clone() for p in net.parameters()]))
    finally:
        torch.set_num_threads(saved)
    ref = res[0]
    assert all(g.abs().sum() > 0 for g in ref[2])
    for logits, spikes, grads in res[1:]:
        assert torch.equal(logits, ref[0]) and all(torch.equal(a, b) for a, b in zip(spikes, ref[1]))
        for a, b in zip(grads, ref[2]):  # the same gradient, summed in another order
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    for _, _, grads in res[2:]:  # 3 shards: bit-identical whatever the number of worker threads
        assert all(torch.equal(a, b) for a, b in zip(grads, res[1][2]))


def test_training_bits_do_not_depend_on_the_thread_count(tmp_path):
    import json

    from sw.trainer import main

    tiny = {"data": {"source": "synthetic", "T": 40, "val_fraction": 0.2,
                     "synthetic": {"n_train": 96, "n_test": 32, "n_channels": 5, "n_classes": 3, "gap": 5,
                                   "jitter": 1, "noise": 1}},
            "model": {"hidden": [10, 8], "max_delay": 20, "delay_stride": 2, "tau_ms": 10.0, "readout_tau_ms": 10.0,
                      "init_gain": 2.0},
            "train": {"epochs": 1, "batch_size": 32, "lr": 0.01, "shards": 2},
            "reg": {"rate_target": 0.05, "rate_weight": 1.0}}
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(tiny))
    saved = torch.get_num_threads()
    states = []
    try:
        for threads in (1, 2):
            out = tmp_path / f"t{threads}"
            assert main(["--config", str(p), "--out", str(out), "--no-progress", "--threads", str(threads)]) == 0
            states.append(torch.load(out / "checkpoints" / "last.pt", weights_only=True)["model"])
    finally:
        torch.set_num_threads(saved)
    assert states[0].keys() == states[1].keys()
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_low_bit_warm_start_switches_once_and_resumes_to_the_same_bits(tmp_path):
    import json

    from sw.trainer import main

    net = _net(weight_bits=2)
    assert [net.weight_bits_at(e, 6, 0.5) for e in range(6)] == [8, 8, 8, 2, 2, 2]
    assert [_net(weight_bits=8).weight_bits_at(e, 6, 0.5) for e in (0, 5)] == [8, 8]
    assert [_net(weight_bits=3).weight_bits_at(e, 6, 0.0) for e in (0, 5)] == [3, 3]
    tiny = {"data": {"source": "synthetic", "T": 40, "val_fraction": 0.2,
                     "synthetic": {"n_train": 96, "n_test": 32, "n_channels": 5, "n_classes": 3, "gap": 5,
                                   "jitter": 1, "noise": 1}},
            "model": {"hidden": [10], "max_delay": 20, "delay_stride": 2, "tau_ms": 10.0, "readout_tau_ms": 10.0,
                      "init_gain": 2.0, "weight_bits": 2},
            "train": {"epochs": 4, "batch_size": 32, "lr": 0.01, "threads": 1, "low_bit_warmup": 0.5}}
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(tiny))
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["--config", str(p), "--out", str(a), "--no-progress"]) == 0  # bit-exact export at 2 bits
    assert main(["--config", str(p), "--out", str(b), "--no-progress", "--stop-after", "2"]) == 0  # stops at the switch
    assert main(["--config", str(p), "--out", str(b), "--no-progress", "--resume"]) == 0
    sa = torch.load(a / "checkpoints" / "last.pt", weights_only=True)["model"]
    sb = torch.load(b / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    q = json.loads((a / "train_summary.json").read_text())
    assert q["parity"]["all_bit_exact"]
    from hw.model_file import load

    m = load(q["model_path"])
    w = np.concatenate([L.weights.ravel() for L in m.layers])
    assert m.widths.weight_bits == 2 and set(np.unique(w)) <= {-1, 0, 1}
