"""sw.evaluate: metrics of exported models under hw.reference, data checks, CLI."""
import json

import numpy as np
import pytest
import torch

from hw.model_file import Layer, Model, save, validate
from sw.evaluate import DataMismatch, check_fit, evaluate_model, main


def _export(tmp_path, name, n_inputs=6, T=50, seed=0):
    from sw.export import to_model_file
    from sw.models.delay import DelayNet, NetConfig

    torch.manual_seed(seed)
    net = DelayNet(NetConfig(n_inputs=n_inputs, hidden=[12], n_classes=4, T=T, max_delay=20, delay_stride=2,
                             init_gain=3.0))
    m = to_model_file(net, info={"seed": 0})
    return save(m, tmp_path / name), m


def test_cli_compares_models_and_matches_integer_path(tmp_path, capsys):
    from sw.export import integer_forward
    from sw.config import load_config
    from sw.data.splits import load_data

    p1, m1 = _export(tmp_path, "a.safetensors", seed=1)
    p2, m2 = _export(tmp_path, "b.safetensors", seed=2)
    out = tmp_path / "eval.json"
    rc = main(["--model", str(p1), "--model", str(p2), "--data", "synthetic", "--execution", "layered", "async",
               "--delay-unit", "scdq", "ring", "--samples", "40", "--json", str(out), "--no-progress"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "a.safetensors" in table and "b.safetensors" in table
    rows = json.loads(out.read_text())
    assert [(r["model"][-13:], r["execution"], r["delay_unit"]) for r in rows] == [
        (n, e, u) for n in ("a.safetensors", "b.safetensors") for e, u in
        (("layered", "-"), ("async", "scdq"), ("async", "ring"))]
    # layered rows against the independent torch integer path on the same test split
    cfg = load_config(overrides={"data": {"source": "synthetic", "T": 50}})
    split = load_data(cfg)
    X, y = split.Xte, split.yte
    X, y = X[:40], y[:40]
    for r, m in ((rows[0], m1), (rows[3], m2)):
        ours = integer_forward(m, X)
        assert r["accuracy"] == pytest.approx(float((ours.predictions == y).mean()))
        assert r["spike_density"] == pytest.approx([float(ours.spikes[0].mean())])
        assert r["predictions"] == ours.predictions.tolist()
        assert r["samples"] == 40


def _hand_model():
    # 2 channels -> 1 hidden neuron (threshold 2) -> 2 classes; no leak
    L0 = Layer(np.array([0, 3]), np.array([[[1], [1]], [[0], [2]]], dtype=np.int8), 2, 4096, "zero", True)
    L1 = Layer(np.array([0]), np.array([[[-1, 1]]], dtype=np.int8), 1, 4096, "zero", False)
    return validate(Model([L0, L1], 2, 8))


def test_hand_counts_sops_density_and_time_to_decision():
    m = _hand_model()
    X = np.zeros((1, 8, 2), bool)
    X[0, 1, 0] = True  # 1 SOP (tap d=0 of channel 0)
    X[0, 2, 1] = True  # 2 SOPs (d=0 and d=3 of channel 1); d=3 arrives at t=5 < 8
    X[0, 6, 1] = True  # 1 SOP: its d=3 tap would arrive at t=9 >= T and is not counted
    # hidden v: t1 1, t2 2 -> spike (reset), t5 +2 -> spike, t6 +1 -> 1 ; 2 spikes, 2 readout SOPs each
    for ex, du in (("layered", "scdq"), ("async", "scdq"), ("async", "ring")):
        r = evaluate_model(m, X, np.array([1]), ex, du, progress=False)
        assert r["sops_per_layer"] == [4.0, 4.0]
        assert r["sops_per_inference"] == 8.0
        assert r["spikes_per_inference"] == [2.0]
        assert r["spike_density"] == [2 / 8]
        # readout: R = (0,0) until t2 -> (-1,1); argmax is class 1 from t=2 on (t0,t1 tie -> class 0)
        assert r["time_to_decision_mean"] == 2.0
        assert r["accuracy"] == 1.0


def test_mismatches_are_named(tmp_path, capsys):
    p, m = _export(tmp_path, "five.safetensors", n_inputs=5)
    assert main(["--model", str(p), "--data", "synthetic", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "n_inputs=5" in err and "5" in err and "channels" in err
    m6 = _hand_model()
    with pytest.raises(DataMismatch, match="T=8"):
        check_fit(m6, np.zeros((2, 9, 2), bool), np.zeros(2, int))
    with pytest.raises(DataMismatch, match="n_inputs=2"):
        check_fit(m6, np.zeros((2, 8, 3), bool), np.zeros(2, int))
    with pytest.raises(DataMismatch, match="classes"):
        check_fit(m6, np.zeros((2, 8, 2), bool), np.array([0, 5]))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    assert main(["--model", str(bad), "--data", "synthetic", "--no-progress"]) == 2
    assert "field 'file'" in capsys.readouterr().err
    assert main(["--model", str(p), "--data", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_shd_file_with_inferred_pooling(tmp_path, capsys):
    from sw.data.shd import write_shd

    rng = np.random.default_rng(0)
    n = 6
    times = [np.sort(rng.uniform(0, 0.5, 300)) for _ in range(n)]
    units = [rng.integers(0, 700, 300) for _ in range(n)]
    write_shd(tmp_path / "shd_test.h5", times, units, rng.integers(0, 4, n), None)
    p, m = _export(tmp_path, "pooled.safetensors", n_inputs=70, T=50)  # pool 10
    out = tmp_path / "r.json"
    assert main(["--model", str(p), "--data", str(tmp_path), "--json", str(out), "--no-progress"]) == 0
    rows = json.loads(out.read_text())
    assert rows[0]["samples"] == n and rows[0]["T"] == 50
    p2, _ = _export(tmp_path, "odd.safetensors", n_inputs=33, T=50)
    assert main(["--model", str(p2), "--data", str(tmp_path / "shd_test.h5"), "--no-progress"]) == 2
    assert "n_inputs=33" in capsys.readouterr().err


def _write_split(path, seed, n=8, labels=None):
    from sw.data.shd import write_shd

    rng = np.random.default_rng(seed)
    times = [np.sort(rng.uniform(0, 0.5, 300)) for _ in range(n)]
    units = [rng.integers(0, 700, 300) for _ in range(n)]
    write_shd(path, times, units, rng.integers(0, 4, n) if labels is None else labels, None)


def test_shifted_splits_and_extra_test_are_reported_per_split(tmp_path, capsys):
    """Shifted splits next to the test split and --extra-test files each get rows whose
    accuracy is the reference's on that file alone; the mean row averages the models."""
    from hw.reference import simulate
    from sw.data.shd import load_rasters

    d = tmp_path / "set"
    d.mkdir()
    _write_split(d / "shd_test.h5", 0)
    _write_split(d / "shd_test_slow.h5", 1)
    _write_split(d / "shd_test_noisy.h5", 2, n=5)
    _write_split(tmp_path / "other.h5", 3, n=7)
    p1, m1 = _export(tmp_path, "s1.safetensors", n_inputs=70, T=50, seed=1)
    p2, m2 = _export(tmp_path, "s2.safetensors", n_inputs=70, T=50, seed=2)
    out = tmp_path / "g.json"
    assert main(["--model", str(p1), "--model", str(p2), "--data", str(d), "--extra-test", str(tmp_path / "other.h5"),
                 "--json", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "accuracy % per split" in text and "mean of 2" in text
    rows = json.loads(out.read_text())
    extra = f"extra:{tmp_path / 'other.h5'}"
    assert [(r["model"][-14:], r["split"]) for r in rows] == [
        (n, s) for n in ("s1.safetensors", "s2.safetensors") for s in ("test", "slow", "noisy", extra)]
    files = {"test": d / "shd_test.h5", "slow": d / "shd_test_slow.h5", "noisy": d / "shd_test_noisy.h5",
             extra: tmp_path / "other.h5"}
    for r in rows:
        m = m1 if r["model"].endswith("s1.safetensors") else m2
        X, y = load_rasters(files[r["split"]], dt=m.dt, T=m.T, pool=10)
        assert r["samples"] == len(y)
        assert r["accuracy"] == pytest.approx(float((simulate(m, X, "layered").predictions == y).mean()))
    from sw.evaluate import generalization

    gen = generalization(rows)
    mean = gen[-1]
    assert mean["model"] == "mean of 2"
    for s in ("test", "slow", "noisy", extra):
        assert mean["accuracy"][s] == pytest.approx(np.mean([r["accuracy"] for r in rows if r["split"] == s]))
        if s != "test":
            assert mean["gap_points"][s] == pytest.approx(100 * (mean["accuracy"][s] - mean["accuracy"]["test"]))
    # --no-shifted leaves only the test split
    assert main(["--model", str(p1), "--data", str(d), "--no-shifted", "--json", str(out), "--no-progress"]) == 0
    assert [r["split"] for r in json.loads(out.read_text())] == ["test"]


def test_extra_test_errors_name_the_flag_and_file(tmp_path, capsys):
    d = tmp_path / "set"
    d.mkdir()
    _write_split(d / "shd_test.h5", 0)
    p, _ = _export(tmp_path, "m.safetensors", n_inputs=70, T=50)
    assert main(["--model", str(p), "--data", str(d), "--extra-test", str(tmp_path / "missing.h5"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--extra-test" in err and "missing.h5" in err
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    assert main(["--model", str(p), "--data", str(d), "--extra-test", str(tmp_path / "junk.h5"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--extra-test" in err and "junk.h5" in err
    _write_split(tmp_path / "many.h5", 4, labels=np.arange(8) % 8)  # labels 4..7 exceed the model's 4 classes
    assert main(["--model", str(p), "--data", str(d), "--extra-test", str(tmp_path / "many.h5"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--extra-test" in err and "many.h5" in err and "classes" in err


def test_same_speaker_gap_reweights_the_test_split():
    """A split holding only the easy speaker must not look better than the test split for that reason."""
    from sw.evaluate import generalization, same_speaker_accuracy

    test = {"0": {"n": 10, "accuracy": 1.0}, "1": {"n": 10, "accuracy": 0.0}}
    assert same_speaker_accuracy(test, {"0": {"n": 5, "accuracy": 0.8}}) == 1.0
    assert same_speaker_accuracy(test, {"0": {"n": 3, "accuracy": 0.8}, "1": {"n": 1, "accuracy": 0.0}}) == 0.75
    assert same_speaker_accuracy(test, {"2": {"n": 4, "accuracy": 0.5}}) is None  # a speaker the test split lacks
    rows = [{"model": "m", "execution": "layered", "delay_unit": "-", "split": "test", "accuracy": 0.5,
             "speakers": test},
            {"model": "m", "execution": "layered", "delay_unit": "-", "split": "slow", "accuracy": 0.8,
             "speakers": {"0": {"n": 5, "accuracy": 0.8}}},
            {"model": "m", "execution": "layered", "delay_unit": "-", "split": "extra:x", "accuracy": 0.4,
             "speakers": {"7": {"n": 5, "accuracy": 0.4}}}]
    g = generalization(rows)[0]
    assert g["gap_points"]["slow"] == pytest.approx(30.0)  # against the whole test split
    assert g["gap_same_speakers_points"] == {"slow": pytest.approx(-20.0)}  # against speaker 0's 100 %
    assert "extra:x" not in g["test_same_speakers"]


def test_per_speaker_rows_and_speaker_matched_gap_through_the_cli(tmp_path, capsys):
    from hw.reference import simulate
    from sw.data.shd import load_rasters, write_shd

    d = tmp_path / "set"
    d.mkdir()
    rng = np.random.default_rng(0)

    def split(path, spk):
        n = len(spk)
        write_shd(path, [np.sort(rng.uniform(0, 0.5, 300)) for _ in range(n)],
                  [rng.integers(0, 700, 300) for _ in range(n)], rng.integers(0, 4, n), np.array(spk))

    split(d / "shd_test.h5", [3, 3, 3, 3, 5, 5, 5, 5])
    split(d / "shd_test_fast.h5", [5, 5, 5])  # only one of the test speakers
    p, m = _export(tmp_path, "s.safetensors", n_inputs=70, T=50, seed=1)
    out = tmp_path / "r.json"
    assert main(["--model", str(p), "--data", str(d), "--per-speaker", "--json", str(out), "--no-progress"]) == 0
    assert "accuracy % per speaker" in capsys.readouterr().out
    rows = {r["split"]: r for r in json.loads(out.read_text())}
    for name, spk in (("test", [3, 3, 3, 3, 5, 5, 5, 5]), ("fast", [5, 5, 5])):
        X, y = load_rasters(d / f"shd_{name if name == 'test' else 'test_' + name}.h5", dt=m.dt, T=m.T, pool=10)
        ok = simulate(m, X, "layered").predictions == y
        spk = np.array(spk)
        assert rows[name]["speakers"] == {str(k): {"n": int((spk == k).sum()), "accuracy": float(ok[spk == k].mean())}
                                          for k in np.unique(spk)}
    from sw.evaluate import generalization

    g = generalization(list(rows.values()))[0]
    assert g["test_same_speakers"]["fast"] == rows["test"]["speakers"]["5"]["accuracy"]
