"""The network under output backpressure: inter-core FIFOs of depth 1, 2 and 16.

A shallow FIFO makes a spiking core stall (its spike output is not ready), and
the stall counter says so; the result must stay bit-exact with the reference in
every case (hw.parity.first_divergence). The SCDQ's invariants (occupancy <= C,
peak >= occupancy) are Asserts inside the unit, checked at every clock edge of
these simulations.
"""
import dataclasses

import numpy as np
import pytest

from hw import reference as ref
from hw.model_file import Layer, Model
from hw.network import NetworkSpec
from hw.parity import first_divergence
from hw.pysim import run_network


def bursty_model(seed=0, T=6) -> Model:
    """Two hidden layers that fire in bursts (strong excitatory weights, low thresholds)."""
    rng = np.random.default_rng(seed)
    W0 = rng.integers(20, 60, (2, 6, 8)) * (rng.random((2, 6, 8)) < 0.8)
    W1 = rng.integers(10, 50, (2, 8, 6)) * (rng.random((2, 8, 6)) < 0.8)
    W2 = rng.integers(-30, 40, (1, 6, 3))
    return Model([Layer(np.array([0, 2]), W0.astype(np.int8), threshold=25, decay=3000, reset="subtract"),
                  Layer(np.array([0, 3]), W1.astype(np.int8), threshold=30, decay=3500),
                  Layer(np.array([0]), W2.astype(np.int8), threshold=1, decay=4000, spiking=False)], 6, T)


@pytest.mark.parametrize("mode,unit", [("layered", "ring"), ("async", "scdq")])
def test_fifo_depths_stay_bit_exact_and_shallow_fifos_stall(mode, unit):
    model = bursty_model()
    X = np.random.default_rng(1).random((1, model.T, model.n_inputs)) < 0.6
    exp = ref.simulate(model, X, mode, unit)
    assert sum(len(L.emit_t) for L in exp[0].layers[:-1]) > 2 * model.T  # bursts: the check is not vacuous
    stalls = {}
    for depth in (1, 2, 16):
        spec = dataclasses.replace(NetworkSpec.for_model(model, unit), fifo_depth=depth)
        hdl = run_network(spec, model, X, mode)
        for b, (h, r) in enumerate(zip(hdl, exp)):
            d = first_divergence(b, h, r, counters=True)
            assert d is None, f"fifo_depth={depth}: {d}"
        stalls[depth] = sum(c["stalls"] for h in hdl for c in h.counters)
    print(f"\n{mode}/{unit} stall cycles by FIFO depth: {stalls}")
    assert stalls[1] > 0, f"no run stalled: {stalls}"
    assert stalls[1] >= stalls[16]
