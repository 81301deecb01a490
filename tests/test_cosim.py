"""Co-simulation end to end: a small trained model through both backends, parity,
fault localisation and CLI errors."""
import json
import sys

import numpy as np
import pytest

from hw.core import CFG_SYN, _bits
from hw.model_file import load, save
from hw.network import NetworkSpec
from hw.reference import simulate
from sw.evaluate import load_eval_data

from cosim.run import cosimulate, main

TINY = {
    "data": {"source": "synthetic", "T": 40, "val_fraction": 0.2,
             "synthetic": {"n_train": 96, "n_test": 32, "n_channels": 6, "n_classes": 4, "gap": 6, "jitter": 1,
                           "noise": 2}},
    "model": {"hidden": [8], "max_delay": 12, "delay_stride": 2, "tau_ms": 10.0, "readout_tau_ms": 10.0,
              "init_gain": 2.0},
    "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "threads": 1},
    "prune": {"method": "synaptic", "k": 2, "max_levels": 4, "steps": 1, "start": 0.0, "end": 0.5},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from sw.train import main as train_main
    d = tmp_path_factory.mktemp("cosim")
    cfg = d / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    assert train_main(["--config", str(cfg), "--out", str(d / "build"), "--no-progress"]) == 0
    path = d / "build" / "model.safetensors"
    model = load(path)
    X, y = load_eval_data("synthetic", model, str(path), samples=8)
    return path, model, X, y


def test_cli_end_to_end_verilator_all_modes_and_units(trained, tmp_path, capsys):
    path, model, X, y = trained
    out = tmp_path / "out"
    rc = main(["--model", str(path), "--data", "synthetic", "--samples", "8", "--backend", "verilator",
               "--mode", "layered", "async", "--delay-unit", "scdq", "ring", "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    rep = json.loads((out / "report.json").read_text())
    assert len(rep["runs"]) == 4
    for r in rep["runs"]:
        assert r["parity"] == {"samples": 8, "bit_exact": 8, "predictions_agree": 8, "first_divergence": None}
        assert r["accuracy"]["hdl"] == r["accuracy"]["reference"]
        assert r["accuracy"]["float"] is not None
        ref = simulate(model, X, r["mode"], r["delay_unit"])
        assert r["throughput"]["sops_per_layer"] == pytest.approx(ref.sops.mean(0).tolist())
        assert r["latency"]["time_to_decision_steps"]["mean"] == pytest.approx(ref.time_to_decision.mean())
        for row, peak in zip(r["memory"]["layers"], ref.occupancy.max(axis=(0, 2))):
            if r["delay_unit"] == "scdq" and model.layers[row["layer"]].max_delay > 0:
                assert row["hdl_peak"] == peak and not row["overflow"]
    for png in ("raster_sample0.png", "memory.png", "cycles.png"):
        assert (out / png).stat().st_size > 1000
    assert "bit-exact samples" in text and "8/8" in text


def test_amaranth_backend_matches_reference(trained):
    path, model, X, y = trained
    rep = cosimulate(model, X[:2], y[:2], backend="amaranth", modes=("layered", "async"),
                     delay_units=("scdq", "ring"), progress=False, log=None)
    assert [r["parity"]["bit_exact"] for r in rep["runs"]] == [2, 2, 2, 2]


def test_corrupted_weight_is_caught_and_located(trained):
    path, model, X, y = trained
    X = X[:3].copy()
    W = model.layers[0].weights
    k, i, j = (int(a) for a in np.argwhere(W != 0)[0])  # CSR entry 0 of core 0
    X[:, 0, i] = True  # make sure the tap is used
    bad_w = -128 if W[k, i, j] > 0 else 127
    word = j | ((bad_w & 0xFF) << _bits(model.layers[0].n_out))
    fault = [(NetworkSpec.for_model(model).sel_core(0, CFG_SYN), 0, word)]
    # independent expectation: the reference run on the model with that weight changed
    broken = load(path)
    broken.layers[0].weights = broken.layers[0].weights.copy()
    broken.layers[0].weights[k, i, j] = bad_w
    good, faulty = simulate(model, X, "async", "scdq"), simulate(broken, X, "async", "scdq")
    expected = None
    for b in range(len(X)):
        g, f = good[b].layers[0], faulty[b].layers[0]
        steps = [t for t in range(model.T) if g.emit_j[g.emit_t == t].tolist() != f.emit_j[f.emit_t == t].tolist()]
        if steps:
            expected = (b, 0, steps[0])
            break
        rdiff = np.argwhere(good[b].readout != faulty[b].readout)
        if len(rdiff):
            expected = (b, len(model.layers) - 1, int(rdiff[0][0]))
            break
    assert expected is not None, "the injected fault must change the reference's behaviour"
    rep = cosimulate(model, X, None, modes=("async",), delay_units=("scdq",), progress=False, log=None, corrupt=fault)
    d = rep["runs"][0]["parity"]["first_divergence"]
    assert rep["runs"][0]["parity"]["bit_exact"] < 3
    assert (d["sample"], d["layer"], d["step"]) == expected


def test_cli_errors_name_the_problem(trained, tmp_path, capsys):
    path, model, X, y = trained
    with pytest.raises(SystemExit, match="no such file"):
        main(["--model", str(tmp_path / "missing.safetensors"), "--data", "synthetic"])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(SystemExit, match="bad.safetensors"):
        main(["--model", str(bad), "--data", "synthetic"])
    with pytest.raises(SystemExit, match="--samples"):
        main(["--model", str(path), "--data", "synthetic", "--samples", "0"])
    with pytest.raises(SystemExit, match="--samples"):
        main(["--model", str(path), "--data", "synthetic", "--samples", "many"])
    with pytest.raises(SystemExit, match="--workers"):
        main(["--model", str(path), "--data", "synthetic", "--workers", "0"])
    # a model whose input width does not fit the data
    m2 = load(path)
    m2.layers[0].weights = np.zeros((len(m2.layers[0].delays), 7, m2.layers[0].n_out), dtype=np.int8)
    m2.n_inputs = 7
    other = save(m2, tmp_path / "wide.safetensors")
    with pytest.raises(SystemExit, match="n_inputs=7"):
        main(["--model", str(other), "--data", "synthetic"])
    with pytest.raises(SystemExit, match="--data"):
        main(["--model", str(path), "--data", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit):
        main(["--model", str(path), "--backend", "spice"])
    assert "invalid choice" in capsys.readouterr().err


def test_report_shows_shifted_splits_and_extra_test_accuracy(tmp_path, capsys):
    """Shifted splits next to the test split and --extra-test files run through the HDL
    (pysim here) and the report gives their accuracy, equal to hw.reference's on that file."""
    import torch

    from sw.data.shd import load_rasters, write_shd
    from sw.export import to_model_file
    from sw.models.delay import DelayNet, NetConfig

    rng = np.random.default_rng(0)
    d = tmp_path / "set"
    for f, n in ((d / "shd_test.h5", 3), (d / "shd_test_fast.h5", 3), (tmp_path / "other.h5", 2)):
        times = [np.sort(rng.uniform(0, 0.3, 60)) for _ in range(n)]
        write_shd(f, times, [rng.integers(0, 700, 60) for _ in range(n)], rng.integers(0, 3, n), None)
    torch.manual_seed(0)
    net = DelayNet(NetConfig(n_inputs=35, hidden=[6], n_classes=3, T=30, max_delay=6, delay_stride=2, init_gain=3.0))
    path = save(to_model_file(net, info={"seed": 0}), tmp_path / "m.safetensors")
    model = load(path)
    out = tmp_path / "cosim"
    rc = main(["--model", str(path), "--data", str(d), "--backend", "amaranth", "--mode", "layered",
               "--extra-test", str(tmp_path / "other.h5"), "--out", str(out), "--no-progress"])
    assert rc == 0
    assert "accuracy on other test sets" in capsys.readouterr().out
    extras = json.loads((out / "report.json").read_text())["extra_tests"]
    assert [x["name"] for x in extras] == ["fast", str(tmp_path / "other.h5")]
    for x in extras:
        X, y = load_rasters(x["file"], dt=model.dt, T=model.T, pool=20)
        assert x["samples"] == len(y) and x["parity"]["bit_exact"] == len(y)
        ref = float((simulate(model, X, "layered").predictions == y).mean())
        assert x["accuracy"]["reference"] == pytest.approx(ref) and x["accuracy"]["hdl"] == pytest.approx(ref)
    with pytest.raises(SystemExit, match="--extra-test.*missing.h5"):
        main(["--model", str(path), "--data", str(d), "--backend", "amaranth", "--mode", "layered",
              "--extra-test", str(tmp_path / "missing.h5"), "--out", str(out), "--no-progress"])
