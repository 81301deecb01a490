"""Optimiser/loss options of sw.trainer: train.label_smoothing and train.decay_weights_only."""
import json

import numpy as np
import pytest
import torch

from sw.checkpoint import build_model
from sw.config import ConfigError, load_config
from sw.models.delay import mem_sum_loss
from sw.prune import schedule
from sw.trainer import main, param_groups, readout_loss, train

TINY = {
    "data": {"source": "synthetic", "T": 30, "val_fraction": 0.2,
             "synthetic": {"n_train": 96, "n_test": 48, "n_channels": 5, "n_classes": 3, "gap": 5, "jitter": 1,
                           "noise": 1}},
    "model": {"hidden": [8], "max_delay": 12, "delay_stride": 4, "tau_ms": 10.0, "readout_tau_ms": 10.0,
              "init_gain": 2.0},  # the default's learnable delays
    "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "threads": 1, "shards": 1},
}


def _cfg(tmp_path, **train) -> dict:
    over = json.loads(json.dumps(TINY))
    over["train"].update(train)
    over["out"] = str(tmp_path)
    return load_config(overrides=over)


def _ce_smoothed(z: np.ndarray, y: np.ndarray, eps: float) -> float:
    """Cross-entropy against targets (1 - eps) one-hot + eps / classes, in numpy."""
    logp = z - z.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    q = np.full(z.shape, eps / z.shape[1])
    q[np.arange(len(y)), y] += 1 - eps
    return float(-(q * logp).sum(-1).mean())


def test_defaults_are_off():
    t = load_config()["train"]
    assert t["label_smoothing"] == 0.0 and t["decay_weights_only"] is False and t["weight_decay"] == 0.0


@pytest.mark.parametrize("field, value, match", [
    ("label_smoothing", 1.0, "train.label_smoothing"), ("label_smoothing", -0.1, "train.label_smoothing"),
    ("label_smoothing", "x", "train.label_smoothing"), ("weight_decay", -1e-4, "train.weight_decay"),
    ("decay_weights_only", 1, "train.decay_weights_only")])
def test_bad_values_name_the_field(field, value, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides={"train": {field: value}})


def test_label_smoothing_matches_an_independent_computation(tmp_path):
    cfg = _cfg(tmp_path)
    model, net = build_model(cfg, 5, 3)
    x = (torch.rand(6, cfg["data"]["T"], 5, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    logits, rec = model(x)
    # 0 is the plain mem_sum loss, bit for bit (the default recipe keeps its bits)
    assert torch.equal(readout_loss(logits, rec["readout"], y, net, 0.0, 0.25, 0.0), mem_sum_loss(logits, y))
    z = logits.detach().double().numpy()
    for eps in (0.1, 0.3):
        got = readout_loss(logits, rec["readout"], y, net, 0.0, 0.25, eps)
        assert float(got.detach()) == pytest.approx(_ce_smoothed(z, y.numpy(), eps), rel=1e-5)
        assert float(got.detach()) > float(mem_sum_loss(logits, y).detach())  # it is not the plain loss
    # with the latency-aware term, the running-readout terms are smoothed too
    v = rec["readout"].detach().double().numpy()
    k = float(net.layers[-1].synapse.scale().detach()) * float(np.exp(float(net.logit_scale.detach())))
    T, eps, w = v.shape[1], 0.2, 0.5
    R = np.cumsum(v, 1)
    early = np.mean([_ce_smoothed(R[:, t] / (t + 1) * k, y.numpy(), eps) for t in range(T // 4, T)])
    want = (1 - w) * _ce_smoothed(z, y.numpy(), eps) + w * early
    got = readout_loss(logits, rec["readout"], y, net, w, 0.25, eps)
    assert float(got.detach()) == pytest.approx(want, rel=1e-5)


def _one_step(net, wd: float, weights_only: bool) -> dict:
    """One Adam step with zero gradients: only the weight decay moves a parameter."""
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = torch.optim.Adam(param_groups(net, wd, weights_only), lr=0.01)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return {n: not torch.equal(before[n], p.detach()) for n, p in net.named_parameters()}


def test_decay_weights_only_spares_delays_and_temperature(tmp_path):
    _, net = build_model(_cfg(tmp_path), 5, 3)
    with torch.no_grad():
        net.logit_scale.fill_(0.5)  # non-zero, so a decay would move it
    names = [n for n, _ in net.named_parameters()]
    assert any(n.endswith("pos_u") for n in names)
    moved_all = _one_step(net, 0.1, False)
    assert all(moved_all.values())  # Adam's L2 term on every parameter, delay positions included
    _, net = build_model(_cfg(tmp_path), 5, 3)
    with torch.no_grad():
        net.logit_scale.fill_(0.5)
    moved = _one_step(net, 0.1, True)
    for n, m in moved.items():
        assert m == n.endswith("synapse.weight"), n
    # no decay: one group, as before the option existed
    assert len(param_groups(net, 0.0, True)) == 1 and len(param_groups(net, 0.1, False)) == 1


def test_training_with_the_options_is_seeded_and_resumes(tmp_path):
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(TINY))
    run = lambda out, *x: main(["--config", str(p), "--out", str(tmp_path / out), "--no-progress", *x])  # noqa: E731
    opts = ["--set", "train.label_smoothing=0.1", "--set", "train.weight_decay=0.001",
            "--set", "train.decay_weights_only=true"]
    assert run("plain") == 0 and run("a", *opts) == 0
    assert run("b", *opts, "--stop-after", "1") == 0 and run("b", *opts, "--resume") == 0
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert (tmp_path / "b" / "model.safetensors").read_bytes() == a
    hist = lambda d: json.loads((tmp_path / d / "train_summary.json").read_text())["history"]  # noqa: E731
    assert [h["loss"] for h in hist("a")] != [h["loss"] for h in hist("plain")]  # the options reach training


# ---------------------------------------------------------------- model.spike_dropout
def _net(tmp_path, p: float, shards: int = 1):
    cfg = _cfg(tmp_path)
    cfg["model"]["spike_dropout"] = p
    cfg["model"]["hidden"] = [8, 6]
    cfg["train"]["shards"] = shards
    return build_model(cfg, 5, 3)[1]


def test_spike_dropout_thins_the_next_layers_input(tmp_path):
    """The training forward equals a layer-by-layer run where each hidden layer's spikes are multiplied by
    keep-masks drawn (from the same generator state) as [B, T, sum(hidden)] before the forward."""
    net = _net(tmp_path, 0.3)
    x = (torch.rand(4, 30, 5, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    torch.manual_seed(7)
    logits, rec = net(x)
    torch.manual_seed(7)
    keep = (torch.rand(4, 30, 14) >= 0.3).float()
    assert 0.55 < float(keep.mean()) < 0.85
    masks = keep.split([8, 6], -1)
    s, fired = x, []
    with torch.no_grad():
        for l, L in enumerate(net.layers):
            s = L(s)
            if l < 2:
                fired.append(s)
                s = s * masks[l]
    for a, b in zip(rec["spikes"], fired):  # the record holds every spike fired
        assert torch.equal(a.detach(), b)
    assert torch.equal(rec["readout"].detach(), s)
    assert float((rec["spikes"][0].detach() * (1 - masks[0])).sum()) > 0  # some fired spikes were dropped
    # switched off: the plain layer-by-layer forward
    net.dropout_on = False
    with torch.no_grad():
        s = x
        for L in net.layers:
            s = L(s)
        plain = net(x)[1]["readout"]
    assert torch.equal(plain, s) and not torch.equal(plain, rec["readout"].detach())
    # eval mode: no dropout, whatever the generator state
    net.dropout_on = True
    net.eval()
    torch.manual_seed(1)
    a = net(x)[0]
    torch.manual_seed(2)
    assert torch.equal(net(x)[0], a)


def test_spike_dropout_bits_do_not_depend_on_threads(tmp_path):
    x = (torch.rand(6, 30, 5, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    outs = []
    for threads in (1, 2):
        net = _net(tmp_path, 0.2, shards=2)
        net.set_threads(threads, 2)
        torch.manual_seed(3)
        logits, _ = net(x)
        logits.sum().backward()
        outs.append((logits.detach(), net.layers[0].synapse.weight.grad.clone()))
    torch.set_num_threads(1)
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_end_of_spike_dropout_restores_the_training_rates(tmp_path):
    from sw.trainer import end_spike_dropout

    net = _net(tmp_path, 0.4)
    x = (torch.rand(64, 30, 5, generator=torch.Generator().manual_seed(4)) < 0.3).float()
    net.calibrate(x, 0.1)
    torch.manual_seed(0)
    train_rates = net.layer_rates(x)  # dropout on (training mode)
    net.dropout_on = False
    undone = net.layer_rates(x)
    net.dropout_on = True
    assert undone[1] > train_rates[1] * 1.1  # without compensation the second layer fires more
    torch.manual_seed(0)
    end_spike_dropout(net, net, x, log=lambda m: None)
    assert not net.dropout_on
    after = net.layer_rates(x)
    assert after == pytest.approx(train_rates, rel=0.05)


def test_spike_dropout_field_is_checked_and_off_by_default():
    assert load_config()["model"]["spike_dropout"] == 0.0
    with pytest.raises(ConfigError, match="spike_dropout"):
        from sw.checkpoint import net_config
        net_config(load_config(overrides={"model": {"spike_dropout": 1.0}}), 700, 20)


def test_training_with_spike_dropout_resumes_to_the_same_bits(tmp_path):
    p = tmp_path / "tiny.json"
    c = json.loads(json.dumps(TINY))
    c["model"]["spike_dropout"] = 0.2
    p.write_text(json.dumps(c))
    run = lambda out, *x: main(["--config", str(p), "--out", str(tmp_path / out), "--no-progress", *x])  # noqa: E731
    assert run("a") == 0 and run("b", "--stop-after", "1") == 0 and run("b", "--resume") == 0
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    s = json.loads((tmp_path / "a" / "train_summary.json").read_text())
    assert s["parity"]["all_bit_exact"]
    assert main(["--config", str(p), "--out", str(tmp_path / "u"), "--no-progress", "--execution", "async"]) == 2


def test_spike_dropout_is_refused_for_the_unlayered_model():
    with pytest.raises(ConfigError, match="model.spike_dropout.*layered"):
        load_config(overrides={"model": {"spike_dropout": 0.1}, "mode": "unlayered"})
    assert load_config(overrides={"model": {"spike_dropout": 0.1}})["model"]["spike_dropout"] == 0.1


# ---------------------------------------------------------------- train.average_from
def _params(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_average_from_averages_the_last_epochs_weights(tmp_path):
    """The averaged model's parameters are the mean of the weights that a plain run (averaging off, the
    same trajectory) has after each averaged epoch, read from its per-epoch checkpoints."""
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps({**TINY, "train": {**TINY["train"], "epochs": 4}}))
    run = lambda out, *x: main(["--config", str(p), "--out", str(tmp_path / out), "--no-progress", *x])  # noqa: E731
    snaps = []
    for k in range(4):  # the plain run, one epoch at a time
        assert run("plain", *(["--resume"] if k else []), "--stop-after", "1") == 0
        snaps.append(_params(tmp_path / "plain" / "checkpoints" / "last.pt"))
    assert run("avg", "--set", "train.average_from=0.5") == 0  # epochs 3 and 4 of 4
    got = _params(tmp_path / "avg" / "checkpoints" / "final.pt")
    _, net = build_model(_cfg(tmp_path), 5, 3)
    names = [n for n, _ in net.named_parameters()]
    assert names and all(n in got for n in names)
    differs = False
    for n in names:
        want = (snaps[2][n].double() + snaps[3][n].double()) / 2
        assert torch.allclose(got[n].double(), want, rtol=1e-6, atol=1e-7), n
        differs |= not torch.equal(got[n], snaps[3][n])
    assert differs  # not simply the last epoch's weights
    s = json.loads((tmp_path / "avg" / "train_summary.json").read_text())
    assert s["weight_average"]["epochs"] == 2 and s["weight_average"]["first_epoch"] == 3
    assert s["parity"]["all_bit_exact"]  # the averaged net exports and matches hw.reference
    # killed mid-average and resumed: the same bits
    assert run("b", "--set", "train.average_from=0.5", "--stop-after", "3") == 0
    assert run("b", "--set", "train.average_from=0.5", "--resume") == 0
    assert ((tmp_path / "b" / "model.safetensors").read_bytes()
            == (tmp_path / "avg" / "model.safetensors").read_bytes())


@pytest.mark.parametrize("value", [1.0, -0.1, "x", True])
def test_average_from_bad_values_name_the_field(value):
    with pytest.raises(ConfigError, match="train.average_from"):
        load_config(overrides={"train": {"average_from": value}})


def test_average_from_starts_after_the_last_pruning_step(tmp_path):
    """On the fixed grid the pruning schedule prunes and rescales the weights at the start of an epoch:
    the average starts after its last step, not across it."""
    over = {**TINY, "model": {**TINY["model"], "delay_mode": "fixed"},
            "train": {**TINY["train"], "epochs": 4, "average_from": 0.25},
            "prune": {"method": "synaptic", "k": 1, "max_levels": 2, "steps": 2, "start": 0.0, "end": 0.75}}
    p = tmp_path / "fixed.json"
    p.write_text(json.dumps(over))
    lines = []
    s = train(load_config(p, overrides={"out": str(tmp_path / "o")}), progress=False, log=lines.append)
    plan = schedule(load_config(p)["prune"], len(build_model(load_config(p), 5, 3)[1].cfg.delays), 4)
    assert max(plan) == 3 and s["weight_average"]["first_epoch"] == 4  # 0.25 x 4 -> epoch 2, moved to 4
    assert any("weight averaging starts at epoch 4, after the last pruning step" in x for x in lines)
