"""The rate-consistency loss of sw.trainer (train.consistency_weight, train.consistency_stretch)."""
import json

import numpy as np
import pytest
import torch

from sw.config import ConfigError, load_config
from sw.data import augment
from sw.trainer import consistency_loss, main

from test_train_options import TINY as _BASE

# test_train_options' tiny synthetic task and model, with the consistency loss on
TINY = json.loads(json.dumps(_BASE))
TINY["train"].update({"consistency_weight": 1.0, "consistency_stretch": [0.5, 2.0]})


def _kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    """Batch mean of KL(softmax(p) || softmax(q)), in numpy."""
    lp = p_logits - np.log(np.exp(p_logits).sum(1, keepdims=True))
    lq = q_logits - np.log(np.exp(q_logits).sum(1, keepdims=True))
    return float((np.exp(lp) * (lp - lq)).sum(1).mean())


def test_default_is_off():
    t = load_config()["train"]
    assert t["consistency_weight"] == 0.0


def test_loss_is_zero_for_identical_outputs_and_the_kl_otherwise():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 4, generator=g), torch.randn(7, 4, generator=g)
    assert consistency_loss(a, a.clone()).item() == 0.0
    got = consistency_loss(a, b).item()
    assert got > 0 and got == pytest.approx(_kl(a.numpy().astype(np.float64), b.numpy().astype(np.float64)), rel=1e-5)
    # the anchor is a fixed target: only the stretched copy gets a gradient
    a.requires_grad_(True), b.requires_grad_(True)
    consistency_loss(a, b).backward()
    assert a.grad is None and b.grad is not None and b.grad.abs().sum() > 0


def test_second_copy_is_a_seeded_time_stretch():
    rng = np.random.default_rng(3)
    X = rng.random((4, 30, 6)) < 0.3
    idx = np.array([5, 9, 2, 40])
    same = augment.consistency_batch(X, idx, epoch=1, seed=0, stretch=(1.0, 1.0))
    assert np.array_equal(same, X)
    twice = augment.consistency_batch(X, idx, 1, 0, (2.0, 2.0))
    assert np.array_equal(twice, np.stack([augment.time_stretch(x, 2.0) for x in X]))
    a = augment.consistency_batch(X, idx, 1, 0, (0.5, 2.0))
    assert np.array_equal(a, augment.consistency_batch(X, idx, 1, 0, (0.5, 2.0)))  # same (seed, epoch, index)
    # one sample's draw depends on its own index, not on its batch
    assert np.array_equal(a[1:2], augment.consistency_batch(X[1:2], idx[1:2], 1, 0, (0.5, 2.0)))
    assert not np.array_equal(a, augment.consistency_batch(X, idx, 2, 0, (0.5, 2.0)))  # another epoch
    assert X.dtype == bool and not np.array_equal(a, X)


@pytest.mark.parametrize("field, value", [
    ("consistency_weight", -0.5), ("consistency_weight", float("inf")), ("consistency_weight", "x"),
    ("consistency_stretch", [0.0, 1.0]), ("consistency_stretch", [2.0, 1.0]), ("consistency_stretch", [1.0]),
    ("consistency_stretch", [1.0, "a"]), ("consistency_stretch", 1.5)])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"train.{field}"):
        load_config(overrides={"train": {field: value}})


def _run(tmp_path, name, *extra, **train):
    over = json.loads(json.dumps(TINY))
    over["train"].update(train)
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(over))
    out = tmp_path / name
    assert main(["--config", str(p), "--out", str(out), "--no-progress", *extra]) == 0
    return out


def _history(out):
    return json.loads((out / "train_summary.json").read_text())["history"]


def test_training_is_deterministic_and_resumes_bit_exactly(tmp_path):
    a = _run(tmp_path, "a")
    bits = (a / "model.safetensors").read_bytes()
    assert all(h["consistency"] > 0 for h in _history(a))
    assert (_run(tmp_path, "a2") / "model.safetensors").read_bytes() == bits
    _run(tmp_path, "b", "--stop-after", "1")
    b = _run(tmp_path, "b", "--resume")
    assert (b / "model.safetensors").read_bytes() == bits
    # off (weight 0): other bits and no consistency record
    off = _run(tmp_path, "off", consistency_weight=0.0)
    assert (off / "model.safetensors").read_bytes() != bits
    assert all("consistency" not in h for h in _history(off))


def test_identical_copies_give_a_zero_term_in_training(tmp_path):
    """Stretch [1, 1]: the second copy is the batch itself, so the term is exactly 0 in every epoch."""
    out = _run(tmp_path, "id", consistency_stretch=[1.0, 1.0])
    assert [h["consistency"] for h in _history(out)] == [0.0, 0.0]
