"""Fault localisation: faults written into the programmed HDL (Amaranth pysim) must
be located exactly by cosim.parity.

Matrix: a weight in a deeper hidden layer, a readout weight, a threshold register,
a decay register and the emission order (two synapse-memory words of one row
swapped), under both modes and both delay units. For the first four the
independent expectation is the reference run on the *faulty model* (the same
change made to the model file): the HDL must equal it bit for bit, and the
divergence from the good reference, found here by a plain step-by-step scan,
is asserted in full (sample, layer, step, neuron, kind).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

from cosim.parity import first_divergence
from hw import reference as ref
from hw.core import CFG_REG, CFG_SYN, REG_DECAY, REG_THRESHOLD, _bits
from hw.model_file import Layer, Model
from hw.network import NetworkSpec
from hw.pysim import run_network
from test_network_pysim import assert_matches

COMBOS = [(m, u) for m in ("layered", "async") for u in ("ring", "scdq")]


def three_layer_model() -> Model:
    rng = np.random.default_rng(16)
    W0 = rng.integers(-10, 40, (2, 4, 5)) * (rng.random((2, 4, 5)) < 0.7)
    W1 = rng.integers(-10, 40, (2, 5, 4)) * (rng.random((2, 5, 4)) < 0.7)
    W2 = rng.integers(-30, 30, (1, 4, 3))
    return Model([Layer(np.array([0, 2]), W0.astype(np.int8), threshold=30, decay=3000),
                  Layer(np.array([0, 3]), W1.astype(np.int8), threshold=30, decay=3500, reset="subtract"),
                  Layer(np.array([1]), W2.astype(np.int8), threshold=1, decay=4000, spiking=False)], 4, 12)


def inputs(model: Model) -> np.ndarray:
    return np.random.default_rng(5).random((2, model.T, model.n_inputs)) < 0.5


def csr_entry(model: Model, l: int, nth: int):
    """(p, k, i, j) of the nth non-zero tap of layer l in synapse-memory order."""
    row_ptr, cols, vals = ref.csr_rows(model.layers[l].weights)
    n_in = model.layers[l].n_in
    r = int(np.searchsorted(row_ptr, nth, side="right") - 1)
    return nth, r // n_in, r % n_in, int(cols[nth])


def syn_word(spec: NetworkSpec, l: int, j: int, w: int) -> int:
    return j | ((w & ((1 << spec.widths.weight_bits) - 1)) << _bits(spec.layers[l].n_out))


def expected_divergence(good: ref.BatchResult, faulty: ref.BatchResult):
    """First (sample, step, layer, neuron) where the faulty run departs from the good one."""
    L = len(good[0].layers)
    for b in range(len(good)):
        g, f = good[b], faulty[b]
        for t in range(g.readout.shape[0]):
            for l in range(L - 1):
                a = f.layers[l].emit_j[f.layers[l].emit_t == t].tolist()
                c = g.layers[l].emit_j[g.layers[l].emit_t == t].tolist()
                if a != c:
                    p = next((p for p, (x, y) in enumerate(zip(a, c)) if x != y), min(len(a), len(c)))
                    if p < min(len(a), len(c)):
                        neuron = min(a[p], c[p])  # the earlier of the two neurons named at that position
                    else:
                        neuron = (a if len(a) > len(c) else c)[p]  # the extra spike
                    return b, l, t, neuron, "spike order" if sorted(a) == sorted(c) else "spikes"
            js = np.nonzero(f.readout[t] != g.readout[t])[0]
            if len(js):
                return b, L - 1, t, int(js[0]), "readout sum"
    return None


def _weight_fault(l, bad):
    """Overwrite the first tap of layer ``l`` (synapse-memory order) whose change
    alters the reference run; the faulty model has the same change."""
    def make(model, spec, X, mode, unit):
        good = ref.simulate(model, X, mode, unit)
        for nth in range(int(np.count_nonzero(model.layers[l].weights))):
            p, k, i, j = csr_entry(model, l, nth)
            w = bad if model.layers[l].weights[k, i, j] != bad else -bad
            faulty = copy.deepcopy(model)
            faulty.layers[l].weights = faulty.layers[l].weights.copy()
            faulty.layers[l].weights[k, i, j] = w
            if expected_divergence(good, ref.simulate(faulty, X, mode, unit)) is not None:
                return [(spec.sel_core(l, CFG_SYN), p, syn_word(spec, l, j, w))], faulty
        raise AssertionError(f"no tap of layer {l} changes the run")
    return make


def _register_fault(l, reg, field, value):
    def make(model, spec, X, mode, unit):
        faulty = copy.deepcopy(model)
        setattr(faulty.layers[l], field, value)
        return [(spec.sel_core(l, CFG_REG), reg, value)], faulty
    return make


FAULTS = {
    "layer-1 weight": _weight_fault(1, -128),
    "readout weight": _weight_fault(2, 127),
    "layer-1 threshold": _register_fault(1, REG_THRESHOLD, "threshold", 3),
    "layer-0 decay": _register_fault(0, REG_DECAY, "decay", 0),
}


@pytest.mark.parametrize("mode,unit", COMBOS)
def test_fault_matrix_is_located_exactly(mode, unit):
    model = three_layer_model()
    X = inputs(model)
    good = ref.simulate(model, X, mode, unit)
    assert all(len(s.layers[l].emit_t) for s in good for l in (0, 1))  # both hidden layers fire
    spec = NetworkSpec.for_model(model, unit)
    seen_layers = set()
    for name, make in FAULTS.items():
        corrupt, faulty_model = make(model, spec, X, mode, unit)
        faulty = ref.simulate(faulty_model, X, mode, unit)
        want = expected_divergence(good, faulty)
        assert want is not None, f"{name}: the fault must change the reference's behaviour"
        hdl = run_network(spec, model, X, mode, corrupt=corrupt)
        assert_matches(faulty_model, X, mode, unit, hdl)  # the fault is exactly the faulty model
        divs = [first_divergence(b, h, r) for b, (h, r) in enumerate(zip(hdl, good.samples))]
        d = next(d for d in divs if d is not None)
        got = (d.sample, d.layer, d.step, d.neuron, d.what.split(":")[0])
        assert got == want, f"{name} ({mode}/{unit}): located {got}, expected {want}"
        seen_layers.add(d.layer)
    assert seen_layers >= {1, 2}  # the matrix reaches deeper layers, not only layer 0


def order_model() -> Model:
    """Channel 0 drives hidden neurons 0 and 1 over threshold with one event."""
    W0 = np.zeros((1, 2, 3), dtype=np.int8)
    W0[0, 0, :] = [50, 50, 0]
    W0[0, 1, 2] = 50
    W1 = np.array([[[5, 0], [0, 7], [1, 1]]], dtype=np.int8)
    return Model([Layer(np.array([0]), W0, threshold=40, decay=4096),
                  Layer(np.array([0]), W1, threshold=1, decay=4096, spiking=False)], 2, 4)


@pytest.mark.parametrize("unit", ["ring", "scdq"])
def test_swapped_synapse_order_is_a_spike_order_divergence_in_async_only(unit):
    model = order_model()
    X = np.zeros((1, 4, 2), dtype=bool)
    X[0, 1, 0] = X[0, 2, 1] = True  # channel 0 at step 1
    spec = NetworkSpec.for_model(model, unit)
    # synapse memory of row 0 holds (0, 50), (1, 50): store them as (1, 50), (0, 50)
    swap = [(spec.sel_core(0, CFG_SYN), 0, syn_word(spec, 0, 1, 50)),
            (spec.sel_core(0, CFG_SYN), 1, syn_word(spec, 0, 0, 50))]
    good = ref.simulate(model, X, "async", unit)
    assert good[0].layers[0].emit_j.tolist() == [0, 1, 2]
    hdl = run_network(spec, model, X, "async", corrupt=swap)[0]
    assert hdl.emissions[0][1].tolist() == [1, 0, 2]  # hand-computed: updates in memory order
    d = first_divergence(0, hdl, good[0])
    assert (d.sample, d.layer, d.step, d.neuron) == (0, 0, 1, 0)
    assert d.what.startswith("spike order")
    # layered mode emits in ascending j after the sums: the swap is invisible there
    lay = run_network(spec, model, X, "layered", corrupt=swap)[0]
    assert first_divergence(0, lay, ref.simulate(model, X, "layered", unit)[0]) is None
