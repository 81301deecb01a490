"""The NeuroBench block against brute-force counts done here, independently of the reference's counters."""
import json

import numpy as np

from hw.model_file import Layer, Model, save
from hw.reference import simulate
from sw.metrics import neurobench


def _model():
    rng = np.random.default_rng(4)
    W1 = rng.integers(-30, 31, (2, 5, 4)).astype(np.int8)
    W1[rng.random(W1.shape) < 0.5] = 0
    W2 = rng.integers(-30, 31, (1, 4, 3)).astype(np.int16)
    return Model([Layer(np.array([0, 3]), W1, threshold=20, decay=3000),
                  Layer(np.array([1]), W2, threshold=1, decay=4000, spiking=False)], n_inputs=5, T=15, dt=0.01)


def _brute_sops(model, X, ref):
    """Every (spike, non-zero weight) pair whose arrival step is before T, by loops."""
    total = np.zeros(len(X))
    for b in range(len(X)):
        S = X[b]
        for l, L in enumerate(model.layers):
            for t, i in zip(*np.nonzero(S)):
                for k, d in enumerate(L.delays):
                    if t + d < model.T:
                        total[b] += np.count_nonzero(L.weights[k, i])
            S = ref.spikes(l)[b] if L.spiking else None
    return total


def test_block_matches_brute_force_counts():
    m = _model()
    X = np.random.default_rng(5).random((6, m.T, m.n_inputs)) < 0.3
    y = np.arange(6) % 3
    ref = simulate(m, X, "layered")
    nb = neurobench(m, ref.sops, ref.spikes(0).sum(axis=(1, 2))[:, None], ref.predictions, y)
    W1, W2 = m.layers[0].weights, m.layers[1].weights
    assert nb["Footprint"] == W1.size * 1 + W2.size * 2 + 4 * (2 + 2) + 4 * (1 + 2)
    assert nb["ConnectionSparsity"] == ((W1 == 0).sum() + (W2 == 0).sum()) / (W1.size + W2.size)
    spk = ref.spikes(0)
    assert nb["ActivationSparsity"] == 1 - spk.sum() / spk.size
    so = nb["SynapticOperations"]
    assert so["Effective_MACs"] == 0 and so["Effective_ACs"] == _brute_sops(m, X, ref).mean()
    assert so["Dense"] == m.T * (5 * 4 * 2 + 4 * 3 * 1)
    assert nb["MembraneUpdates"] == m.T * (4 + 3)
    assert nb["ClassificationAccuracy"] == (ref.predictions == y).mean()
    json.dumps(nb, allow_nan=False)


def test_eval_json_carries_the_block(tmp_path, capsys):
    from sw.data.shd import write_shd
    from sw.evaluate import main

    rng = np.random.default_rng(6)
    m = _model()
    m.layers[0].weights = rng.integers(-30, 31, (2, 70, 4)).astype(np.int8)
    m.n_inputs = 70
    path = save(m, tmp_path / "m.safetensors")
    ts = [np.sort(rng.uniform(0, 0.14, 40)) for _ in range(4)]
    write_shd(tmp_path / "t.h5", ts, [rng.integers(0, 700, 40) for _ in ts], [0, 1, 2, 0], np.zeros(4, int))
    assert main(["--model", str(path), "--data", str(tmp_path / "t.h5"), "--json", str(tmp_path / "r.json"),
                 "--no-progress"]) == 0
    row = json.loads((tmp_path / "r.json").read_text())[0]
    nb = row["neurobench"]
    assert set(nb) == {"Footprint", "ConnectionSparsity", "ActivationSparsity", "SynapticOperations",
                       "MembraneUpdates", "ClassificationAccuracy"}
    assert nb["ClassificationAccuracy"] == row["accuracy"]
    assert nb["SynapticOperations"]["Effective_ACs"] == row["sops_per_inference"]
