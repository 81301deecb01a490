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
from test_fault_localisation import expected_divergence

TINY = {
    "data": {"source": "synthetic", "T": 40, "val_fraction": 0.2,
             "synthetic": {"n_train": 96, "n_test": 32, "n_channels": 6, "n_classes": 4, "gap": 6, "jitter": 1,
                           "noise": 2}},
    "model": {"hidden": [8], "max_delay": 12, "delay_stride": 2, "tau_ms": 10.0, "readout_tau_ms": 10.0, "delay_mode": "fixed",
              "init_gain": 2.0},
    "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "threads": 1},
    "prune": {"method": "synaptic", "k": 2, "max_levels": 4, "steps": 1, "start": 0.0, "end": 0.5},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from sw.trainer import main as train_main
    d = tmp_path_factory.mktemp("cosim")
    cfg = d / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    assert train_main(["--config", str(cfg), "--out", str(d / "build"), "--no-progress"]) == 0
    path = d / "build" / "model.safetensors"
    model = load(path)
    X, y = load_eval_data("synthetic", model, str(path), samples=8)
    return path, model, X, y


def running_argmax_settles(R: np.ndarray) -> int:
    """Time to decision by hand: the first step from which argmax (lowest index on ties) never changes."""
    am = [min(range(R.shape[1]), key=lambda j: (-R[t, j], j)) for t in range(R.shape[0])]
    return next(t for t in range(len(am)) if all(a == am[-1] for a in am[t:]))


def test_cli_end_to_end_verilator_all_modes_and_units(trained, tmp_path, capsys, monkeypatch):
    path, model, X, y = trained
    out = tmp_path / "out"
    import cosim.run as cosim_run
    hdl_runs = {}
    real_report = cosim_run.run_report

    def capture(model_, mode, unit, backend, hdl, *rest, **kw):  # keep the HDL samples the report was made from
        hdl_runs[(mode, unit)] = hdl
        return real_report(model_, mode, unit, backend, hdl, *rest, **kw)

    monkeypatch.setattr(cosim_run, "run_report", capture)
    rc = main(["--model", str(path), "--data", "synthetic", "--samples", "8", "--backend", "verilator",
               "--execution", "layered", "async", "--delay-unit", "scdq", "ring", "--out", str(out), "--no-progress"])
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
        assert r["latency"]["microseconds"]["mean"] == pytest.approx(r["latency"]["cycles"]["mean"] / 100)
        nb = r["neurobench"]  # NeuroBench names (sw.metrics), from the HDL's counters
        assert nb["SynapticOperations"]["Effective_ACs"] == pytest.approx(ref.sops.sum(1).mean())
        assert nb["ClassificationAccuracy"] == r["accuracy"]["hdl"]
        # time to decision from the HDL's own readout and step-cycle counters, computed here
        hdl = hdl_runs[(r["mode"], r["delay_unit"])]
        ttd = [running_argmax_settles(h.readout) for h in hdl]
        assert r["latency"]["time_to_decision_steps"]["mean"] == pytest.approx(np.mean(ttd))
        assert r["latency"]["time_to_decision_cycles"]["mean"] == pytest.approx(
            np.mean([h.step_cycles[t] for h, t in zip(hdl, ttd)]))
        for h in hdl:  # step_cycles[t]: cycles at the end of step t, so increasing and within the total
            assert np.all(np.diff(h.step_cycles) > 0) and 0 < h.step_cycles[-1] <= h.cycles
        assert r["latency"]["cycles"]["mean"] == pytest.approx(np.mean([h.cycles for h in hdl]))
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


def test_two_ring_lanes_change_only_the_ring_build(trained):
    path, model, X, y = trained
    rep = cosimulate(model, X[:2], y[:2], backend="amaranth", modes=("async",), delay_units=("scdq", "ring"),
                     progress=False, log=None, ring_lanes=2)
    assert [r["parity"]["bit_exact"] for r in rep["runs"]] == [2, 2]
    assert [r.get("ring_lanes") for r in rep["runs"]] == [None, 2]  # the report names the ring build


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
    expected = expected_divergence(good, faulty)
    assert expected is not None, "the injected fault must change the reference's behaviour"
    rep = cosimulate(model, X, None, modes=("async",), delay_units=("scdq",), progress=False, log=None, corrupt=fault)
    d = rep["runs"][0]["parity"]["first_divergence"]
    assert rep["runs"][0]["parity"]["bit_exact"] < 3
    assert (d["sample"], d["layer"], d["step"], d["neuron"], d["what"].split(":")[0]) == expected


def test_cli_errors_name_the_problem(trained, tmp_path, capsys):
    path, model, X, y = trained

    def err(*args):  # exit code 2 and one line on stderr, no traceback
        capsys.readouterr()
        rc = main(list(args))
        e = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in e, e
        return e

    assert "no such file" in err("--model", str(tmp_path / "missing.safetensors"), "--data", "synthetic")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    assert "bad.safetensors" in err("--model", str(bad), "--data", "synthetic")
    assert "--samples" in err("--model", str(path), "--data", "synthetic", "--samples", "0")
    assert "--samples" in err("--model", str(path), "--data", "synthetic", "--samples", "many")
    assert "--workers" in err("--model", str(path), "--data", "synthetic", "--workers", "0")
    # a model whose input width does not fit the data
    m2 = load(path)
    m2.layers[0].weights = np.zeros((len(m2.layers[0].delays), 7, m2.layers[0].n_out), dtype=np.int8)
    m2.n_inputs = 7
    other = save(m2, tmp_path / "wide.safetensors")
    assert "n_inputs=7" in err("--model", str(other), "--data", "synthetic")
    assert "--data" in err("--model", str(path), "--data", str(tmp_path / "nowhere"))
    assert main(["--model", str(path), "--backend", "spice"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["--model", str(path), "--ring-lanes", "3"]) == 2
    assert "--ring-lanes" in capsys.readouterr().err


def test_cli_exits_non_zero_and_names_the_divergence_on_a_parity_failure(trained, tmp_path, capsys, monkeypatch):
    """A fault written into the HDL after programming: cosim/run.py must report
    PARITY FAILED with the first divergence and return 1 (0 without the fault)."""
    import functools

    import cosim.run as cosim_run
    path, model, X, y = trained
    args = ["--model", str(path), "--data", "synthetic", "--samples", "3", "--backend", "verilator",
            "--execution", "async", "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 0
    assert "PARITY FAILED" not in capsys.readouterr().out
    # readout threshold is unused, so fault the first hidden layer's threshold register instead: 1 fires on any input
    from hw.core import CFG_REG, REG_THRESHOLD
    fault = [(NetworkSpec.for_model(model).sel_core(0, CFG_REG), REG_THRESHOLD, 1)]
    monkeypatch.setattr(cosim_run, "cosimulate", functools.partial(cosim_run.cosimulate, corrupt=fault))
    assert main(args) == 1
    text = capsys.readouterr().out
    assert "PARITY FAILED" in text and "FIRST DIVERGENCE (async/scdq): sample 0, layer 0" in text
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["runs"][0]["parity"]["bit_exact"] < 3 and rep["runs"][0]["parity"]["first_divergence"]["layer"] == 0


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
    rc = main(["--model", str(path), "--data", str(d), "--backend", "amaranth", "--execution", "layered",
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
    assert main(["--model", str(path), "--data", str(d), "--backend", "amaranth", "--execution", "layered",
                 "--extra-test", str(tmp_path / "missing.h5"), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--extra-test" in err and "missing.h5" in err
