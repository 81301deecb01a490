"""Optimiser/loss options of sw.trainer: train.label_smoothing and train.decay_weights_only."""
import json

import numpy as np
import pytest
import torch

from sw.checkpoint import build_model
from sw.config import ConfigError, load_config
from sw.models.delay import mem_sum_loss
from sw.trainer import main, param_groups, readout_loss

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
