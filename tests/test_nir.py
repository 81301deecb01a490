"""NIR with delays: exact round trip, a graph written with the nir API, snnTorch's own export."""
import nir  # a runtime dependency: a missing nir is a broken install, not a skip
import numpy as np
import pytest

from hw.model_file import Layer, Model, Widths, load, save
from hw.reference import simulate
from sw.nir_io import NirError, from_nir, main, to_nir


def _model() -> Model:
    rng = np.random.default_rng(3)
    h1 = Layer(np.array([0, 2, 5]), rng.integers(-60, 61, (3, 10, 7)).astype(np.int8), threshold=40, decay=3500,
               reset="subtract")
    h2 = Layer(np.array([1, 4]), rng.integers(-60, 61, (2, 7, 5)).astype(np.int8), threshold=25, decay=4096)
    ro = Layer(np.array([0, 3]), rng.integers(-60, 61, (2, 5, 3)).astype(np.int8), threshold=1, decay=0,
               spiking=False)
    return Model([h1, h2, ro], n_inputs=10, T=30, dt=0.004, widths=Widths(membrane_bits=12, readout_bits=16),
                 info={"seed": 5, "name": "roundtrip"})


def test_export_import_round_trip_is_exact(tmp_path, capsys):
    m = _model()
    src = save(m, tmp_path / "m.safetensors")
    assert main(["export", str(src), str(tmp_path / "m.nir")]) == 0
    g = nir.read(str(tmp_path / "m.nir"))
    kinds = sorted(type(n).__name__ for n in g.nodes.values())
    assert kinds.count("Delay") == 3 + 2 + 2 and kinds.count("Linear") == 7
    assert kinds.count("LIF") == 2 and kinds.count("LI") == 1
    d = g.nodes["layer0_delay2"].delay
    assert d.shape == (10,) and np.allclose(d, 5 * 0.004)
    assert main(["import", str(tmp_path / "m.nir"), str(tmp_path / "back.safetensors")]) == 0
    b = load(tmp_path / "back.safetensors")
    assert (b.n_inputs, b.T, b.dt, b.widths, b.info) == (m.n_inputs, m.T, m.dt, m.widths, m.info)
    for x, y in zip(m.layers, b.layers):
        assert np.array_equal(x.delays, y.delays) and np.array_equal(x.weights, y.weights)
        assert x.weights.dtype == y.weights.dtype
        assert (x.threshold, x.decay, x.reset, x.spiking) == (y.threshold, y.decay, y.reset, y.spiking)
    X = np.random.default_rng(0).random((6, m.T, m.n_inputs)) < 0.3
    for mode, unit in (("layered", "scdq"), ("async", "scdq"), ("async", "ring")):
        ra, rb = simulate(m, X, mode, unit), simulate(b, X, mode, unit)
        assert np.array_equal(ra.readout, rb.readout)
        assert all(np.array_equal(ra.spikes(l), rb.spikes(l)) for l in range(2))


def test_graph_written_with_the_nir_api_imports(tmp_path):
    dt = 1e-3
    W1 = np.array([[1.0, -0.5, 0.0, 0.25], [0.5, 0.5, -1.0, 0.0], [0.0, 0.25, 0.5, -0.25]])  # [3 out, 4 in]
    W2 = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 1.0]])
    tau = np.full(3, dt / (1 - 0.75))  # beta = 0.75
    nodes = {
        "in": nir.Input(input_type={"input": np.array([4])}),
        # axonal delays: channels 0 and 2 delayed by 2 steps, channel 1 by 0, channel 3 by 5
        "dly": nir.Delay(delay=np.array([2, 0, 2, 5]) * dt),
        "fc1": nir.Linear(weight=W1),
        "lif": nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(3), v_threshold=np.full(3, 0.5), v_reset=np.zeros(3)),
        "fc2": nir.Affine(weight=W2, bias=np.zeros(2)),
        "li": nir.LI(tau=np.full(2, np.inf), r=np.full(2, np.inf), v_leak=np.zeros(2)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("in", "dly"), ("dly", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "li"), ("li", "out")]
    nir.write(str(tmp_path / "g.nir"), nir.NIRGraph(nodes=nodes, edges=edges))
    assert main(["import", str(tmp_path / "g.nir"), str(tmp_path / "g.safetensors"), "--dt", str(dt),
                 "--T", "12"]) == 0
    m = load(tmp_path / "g.safetensors")
    h, r = m.layers
    assert h.delays.tolist() == [0, 2, 5] and r.delays.tolist() == [0]
    # independent expectation: weights / threshold (0.5) scaled so max |w| = 2 maps to 127; threshold 1 / s
    s = 2.0 / 127
    exp = np.zeros((3, 4, 3))
    for i, lvl in enumerate([1, 0, 1, 2]):
        exp[lvl, i] = W1[:, i] / 0.5
    assert np.array_equal(h.weights, np.rint(exp / s).astype(np.int8))
    assert h.threshold == round(1 / s) and h.decay == 3072 and h.spiking and h.reset == "zero"
    assert r.decay == 4096 and not r.spiking
    assert np.array_equal(r.weights[0], np.rint(W2.T / (2.0 / 127)).astype(np.int8))
    simulate(m, np.random.default_rng(1).random((3, 12, 4)) < 0.4, "async", "scdq")  # it runs


def test_unmappable_nodes_are_named(tmp_path):
    dt = 1e-3
    base = {
        "in": nir.Input(input_type={"input": np.array([2])}),
        "fc": nir.Affine(weight=np.ones((2, 2)), bias=np.array([0.0, 0.1])),
        "li": nir.LI(tau=np.full(2, 0.01), r=np.full(2, 10.0), v_leak=np.zeros(2)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    g = nir.NIRGraph(nodes=base, edges=[("in", "fc"), ("fc", "li"), ("li", "out")])
    with pytest.raises(NirError, match="'fc'.*bias"):
        from_nir(g, dt=dt, T=5)
    model, _ = from_nir(g, dt=dt, T=5, drop_bias=True)
    assert model.layers[0].decay == round(4096 * 0.9)
    with pytest.raises(NirError, match="--dt"):
        from_nir(g, T=5, drop_bias=True)
    base2 = dict(base, dly=nir.Delay(delay=np.array([0.5e-3, 0.0])))
    g2 = nir.NIRGraph(nodes=base2, edges=[("in", "dly"), ("dly", "fc"), ("fc", "li"), ("li", "out")])
    with pytest.raises(NirError, match="'dly'.*whole"):
        from_nir(g2, dt=dt, T=5, drop_bias=True)


def test_cli_errors(tmp_path, capsys):
    assert main(["import", str(tmp_path / "none.nir"), str(tmp_path / "x.safetensors")]) == 2
    (tmp_path / "bad.nir").write_bytes(b"junk")
    assert main(["import", str(tmp_path / "bad.nir"), str(tmp_path / "x.safetensors")]) == 2
    assert main(["export", str(tmp_path / "none.safetensors"), str(tmp_path / "x.nir")]) == 2
    err = capsys.readouterr().err
    assert "none.nir" in err and "bad.nir" in err and "none.safetensors" in err and "Traceback" not in err


def test_snntorch_export_imports_and_runs(tmp_path):
    snn = pytest.importorskip("snntorch", reason="snntorch (test extra) is not installed")
    pytest.importorskip("nirtorch", reason="snntorch's NIR export needs nirtorch (test extra)")
    import torch
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    beta1, beta2 = 0.875, 0.75
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 8, bias=False),
        snn.Leaky(beta=torch.full((8,), beta1), threshold=torch.full((8,), 0.5), init_hidden=True,
                  reset_mechanism="zero"),
        torch.nn.Linear(8, 3, bias=False),
        snn.Leaky(beta=torch.full((3,), beta2), threshold=torch.ones(3), init_hidden=True, output=True),
    )
    g = export_to_nir(net, torch.randn(6))  # snnTorch writes dt = 1e-4 into its time constants
    nir.write(str(tmp_path / "snn.nir"), g)
    assert main(["import", str(tmp_path / "snn.nir"), str(tmp_path / "snn.safetensors"), "--dt", "1e-4",
                 "--T", "25"]) == 0
    m = load(tmp_path / "snn.safetensors")
    h, r = m.layers
    assert (h.n_in, h.n_out, r.n_in, r.n_out) == (6, 8, 8, 3)
    assert h.delays.tolist() == [0] and h.spiking and not r.spiking
    assert abs(h.decay - 4096 * beta1) <= 1 and abs(r.decay - 4096 * beta2) <= 1
    W1 = net[0].weight.detach().numpy().T / 0.5  # threshold folded into the weights
    s = np.abs(W1).max() / 127
    assert np.array_equal(h.weights[0], np.rint(W1 / s).astype(np.int8)) and h.threshold == round(0.5 / 0.5 / s)
    X = np.random.default_rng(2).random((4, 25, 6)) < 0.5
    ref = simulate(m, X, "layered")
    assert ref.readout.shape == (4, 25, 3)
    assert np.array_equal(simulate(m, X, "async", "scdq").predictions.shape, (4,))


def test_import_reports_float_and_integer_accuracy_on_user_data(tmp_path, capsys):
    from sw.data.shd import load_rasters, write_shd

    rng = np.random.default_rng(7)
    m = _model()
    m.layers[0].weights = rng.integers(-60, 61, (3, 70, 7)).astype(np.int8)
    m.n_inputs, m.dt = 70, 0.01
    src = save(m, tmp_path / "m.safetensors")
    ts = [np.sort(rng.uniform(0, 0.29, 60)) for _ in range(12)]
    write_shd(tmp_path / "t.h5", ts, [rng.integers(0, 700, 60) for _ in ts], np.arange(12) % 3, np.zeros(12, int))
    assert main(["export", str(src), str(tmp_path / "m.nir")]) == 0
    capsys.readouterr()
    assert main(["import", str(tmp_path / "m.nir"), str(tmp_path / "b.safetensors"), "--data",
                 str(tmp_path / "t.h5")]) == 0
    out = capsys.readouterr().out
    X, y = load_rasters(tmp_path / "t.h5", dt=0.01, T=m.T, pool=10)
    acc_int = (simulate(m, X, "layered").predictions == y).mean()
    assert f"integer model (hw.reference, layered) {100 * acc_int:.2f} %" in out
    assert "float graph" in out and "on 12 samples" in out
