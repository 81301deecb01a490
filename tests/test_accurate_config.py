"""sw/configs/accurate.json: the named higher-accuracy recipe (docs/results.md, round 4b).

It is a partial config merged over the default: 700 cochlear channels ORed in groups of 5 (140 inputs),
two hidden layers of 128, and the channel shift in pooled channels (4 x 5 = the default's 20 channels)."""
import json
from pathlib import Path

import numpy as np

from hw.model_file import load
from sw.config import load_config
from sw.evaluate import run as evaluate_run
from sw.trainer import main

ACCURATE = Path(__file__).resolve().parents[1] / "sw" / "configs" / "accurate.json"


def _diff(a: dict, b: dict, prefix: str = "") -> dict:
    out = {}
    for k in a:
        if isinstance(a[k], dict) and isinstance(b[k], dict):
            out.update(_diff(a[k], b[k], f"{prefix}{k}."))
        elif a[k] != b[k]:
            out[prefix + k] = b[k]
    return out


def test_it_validates_and_differs_from_the_default_in_three_fields_and_its_input_recipe():
    default, acc = load_config(), load_config(ACCURATE)
    # three fields of its own, and the input recipe it was measured with (before round 7's time_norm default)
    assert _diff(default, acc) == {"data.pool": 5, "model.hidden": [128, 128], "train.augment_shift": 4,
                                   "data.time_norm": None, "train.augment_stretch": [0.5, 2.0]}
    # the shift covers the same cochlear range as the default's, in pooled channels
    assert acc["train"]["augment_shift"] * acc["data"]["pool"] == default["train"]["augment_shift"]


def test_it_trains_exports_and_evaluates_with_pooled_inputs(tmp_path):
    from sw.data.shd import write_shd

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 20)):
        labels = np.arange(n) % 20
        # class c fires around channel 30 c: pooled by 5 it stays separable
        units = [np.clip(30 * c + rng.integers(0, 25, 80), 0, 699) for c in labels]
        times = [np.sort(rng.uniform(0, 0.8, 80)) for _ in labels]
        write_shd(tmp_path / "shd" / f"shd_{split}.h5", times, units, labels, None)
    out = tmp_path / "out"
    args = ["--config", str(ACCURATE), "--data", str(tmp_path / "shd"), "--epochs", "2", "--threads", "1",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    m = load(out / "model.safetensors")
    assert [(L.n_in, L.n_out) for L in m.layers] == [(140, 128), (128, 128), (128, 20)]
    s = json.loads((out / "train_summary.json").read_text())
    assert s["parity"]["all_bit_exact"] and s["config"]["data"]["pool"] == 5
    # sw.evaluate infers the pooling from the model's 140 inputs and gives the training run's figure
    rows = evaluate_run([str(out / "model.safetensors")], str(tmp_path / "shd"), ["layered"], ["scdq"], None, None,
                        None, progress=False)
    test_row = [r for r in rows if r["split"] == "test"][0]
    assert test_row["accuracy"] == s["integer_acc"]
