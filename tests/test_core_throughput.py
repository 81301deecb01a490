"""Throughput of a NeuronCore on a dense back-to-back event stream (Amaranth pysim).

One spiking layer N x N with every tap non-zero at every delay level and every
input channel active at every step, plus a small readout. The figure is the
dense core's SOP counter divided by its busy-cycle counter (``cnt_busy``): a
ratio of two hardware counters, not a time. The NeuronCore is specified to sustain one SOP per
cycle with no bubbles on back-to-back events; what is left is the fixed work
per step (leak / fire / drain passes over the N neurons, pipeline settle,
end-of-step token), so the bound holds once a step carries enough SOPs.
The SOP and spike counters are also checked against hw.reference.
"""
from __future__ import annotations

import numpy as np
import pytest

from hw import reference as ref
from hw.model_file import Layer, Model
from hw.network import NetworkSpec
from hw.pysim import run_network

N = 32  # dense layer N x N
DELAYS = (0, 1, 2)  # every tap non-zero at all three levels: 3 N^2 SOPs per full step
T = 4
BOUND = 0.95


def dense_model(seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    K = len(DELAYS)
    mag = rng.integers(1, 5, (K, N, N))
    W0 = (mag * rng.choice([-1, 1], (K, N, N), p=[0.3, 0.7])).astype(np.int8)
    assert np.count_nonzero(W0) == W0.size
    W1 = rng.integers(-20, 21, (1, N, 2)).astype(np.int8)
    # threshold: the layer spikes now and then, so its output stream is not idle
    return Model([Layer(np.array(DELAYS), W0, threshold=120, decay=3500, reset="subtract"),
                  Layer(np.array([0]), W1, threshold=1, decay=4000, spiking=False)], N, T)


def sop_per_cycle(unit: str, mode: str):
    model = dense_model()
    X = np.ones((1, T, N), dtype=bool)  # every channel, every step
    spec = NetworkSpec.for_model(model, unit)
    hdl = run_network(spec, model, X, mode)[0]
    exp = ref.simulate(model, X, mode, unit)[0]
    return hdl, exp


@pytest.mark.parametrize("unit", ["ring", "scdq"])
@pytest.mark.parametrize("mode", ["layered", "async"])
def test_dense_layer_sustains_one_sop_per_cycle(mode, unit):
    hdl, exp = sop_per_cycle(unit, mode)
    c = hdl.counters[0]
    # the counters count real work: the reference's SOPs and spikes
    assert [k["sops"] for k in hdl.counters] == exp.sops.tolist()
    assert c["spikes"] == len(exp.layers[0].emit_t) > 0
    assert c["sops"] == N * N * sum(T - d for d in DELAYS)
    ratio = c["sops"] / c["busy"]
    per_step = (c["busy"] - c["sops"]) / T
    print(f"\n{mode:8s} {unit:5s} dense {N}x{N}, K={len(DELAYS)}, T={T}: sops={c['sops']} busy={c['busy']} "
          f"stalls={c['stalls']} -> {ratio:.4f} SOP/cycle; non-SOP cycles per step {per_step:.1f} "
          f"(N={N}); network cycles {hdl.cycles}")
    assert ratio >= BOUND, (f"{mode}/{unit}: {ratio:.4f} SOP/cycle < {BOUND} "
                            f"(busy {c['busy']}, sops {c['sops']}, stalls {c['stalls']})")
