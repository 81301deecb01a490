"""The causal cycle bounds of bench/core.py for ring cores: ``flow_bound`` (fan out at arrival)
and ``defer_bound`` (delayed taps may be deferred), on hand-worked cases and on reference runs
of small random models (no HDL: these are models of a schedule, checked against each other,
against hand arithmetic and against the per-core work they must cover)."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.core import defer_bound, flow_bound, ring_level_work, ring_step_work  # noqa: E402
from hw import reference as ref  # noqa: E402
from hw.model_file import Layer, Model  # noqa: E402


def fake_model(T, layers):
    """Only what the bounds read: T, and per layer its delays and n_out."""
    return SimpleNamespace(T=T, layers=[SimpleNamespace(delays=np.array(d), n_out=n) for d, n in layers])


def test_async_hand_worked():
    # two cores, delays (0, 2), T = 3; core 0 gets a spike at step 0 with 1 tap at d = 0 and 5 at
    # d = 2 (arrival 2 < T), then 1 d = 0 tap per step; core 1 gets 2 d = 0 taps in steps 1 and 2
    m = fake_model(3, [((0, 2), 1), ((0, 2), 1)])
    lv = [np.array([[1, 5], [1, 0], [1, 0]]), np.array([[0, 0], [2, 0], [2, 0]])]
    # fan out at arrival: core 0 ends its steps at 6, 7, 8; core 1 ends step 0 with core 0 (6),
    # step 1 at 6 + 2 = 8 (its taps need core 0's end of step 0), step 2 at max(7, 8) + 2 = 10
    assert defer_bound(m, lv, False, 0) == 10
    # one step of deferral: the 5 d = 2 taps are due by the end of step 1 (slot 2 is drained at
    # the start of step 2), so core 0 ends step 0 at 1 and step 1 at 1 + 5 + 1 = 7; core 1 ends
    # step 0 at 1, step 1 at max(1 + 2, 7) = 7 (core 0's end-of-step token), step 2 at 7 + 2 = 9
    assert defer_bound(m, lv, False, 1) == 9
    # up to the slot: slot 2 is drained at the start of step 2, so the d = 2 taps are still due by
    # the end of step 1, the same as one step of deferral
    assert defer_bound(m, lv, False, None) == 9
    # the flow shop of bench.core.flow_bound, with the same work, is the depth-0 case
    work = np.array([w.sum(axis=1) for w in lv])
    assert flow_bound(work, None) == 10


def test_layered_hand_worked():
    # two cores of one neuron (FIRE pass 1 op), delays (0, 1), T = 2
    m = fake_model(2, [((0, 1), 1), ((0, 1), 1)])
    lv = [np.array([[2, 3], [1, 0]]), np.array([[1, 0], [1, 0]])]
    # core 0: FIRE(0) after its 5 taps (5..6), step 1: 1 tap, FIRE(1) 7..8; core 1: fan-out of
    # step 0 from core 0's FIRE start (5), FIRE(0) after core 0's end of step (6..7); step 1: its
    # tap at 7, FIRE(1) after core 0's end of step 1 (8..9)
    assert defer_bound(m, lv, True, 0) == 9
    work = np.array([w.sum(axis=1) + 1 for w in lv])
    assert flow_bound(work, [1, 1]) == 9
    # deferring the 3 d = 1 taps of step 0 lets core 0 fire step 0 at 2, but they are due before
    # its FIRE(1): core 0 still ends at 8, and so does the chain
    assert defer_bound(m, lv, True, 1) == 9


def test_layered_steps_run_in_order():
    # as above, but core 0 has no taps in step 1 and core 1 none in step 0: core 0 fires step 0 at
    # 5..6 and step 1 at 6..7, so its step-1 spikes exist from 6; core 1 fires step 0 only after core
    # 0's end of step 0 (6..7) and takes step 1's input after that: its tap at 7, FIRE(1) at 8..9
    m = fake_model(2, [((0, 1), 1), ((0, 1), 1)])
    lv = [np.array([[2, 3], [0, 0]]), np.array([[0, 0], [1, 0]])]
    assert defer_bound(m, lv, True, 0) == 9
    assert flow_bound(np.array([w.sum(axis=1) + 1 for w in lv]), [1, 1]) == 9


def random_model(seed, T=24):
    rng = np.random.default_rng(seed)
    sizes = [12, 8, 6, 3]
    layers = []
    for l in range(3):
        delays = np.array(sorted({0, *rng.choice(np.arange(1, 9), 3, replace=False).tolist()}))
        shape = (len(delays), sizes[l], sizes[l + 1])
        W = (rng.integers(-20, 40, shape) * (rng.random(shape) < 0.5)).astype(np.int8)
        layers.append(Layer(delays, W, threshold=30, decay=3000, reset="zero", spiking=l < 2))
    model = Model(layers, sizes[0], T)
    X = rng.random((3, T, sizes[0])) < 0.3
    return model, X


@pytest.mark.parametrize("mode", ["layered", "async"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defer_bound_on_reference_runs(mode, seed):
    model, X = random_model(seed)
    exp = ref.simulate(model, X, mode, "ring")
    lay = mode == "layered"
    fire = [L.n_out for L in model.layers]
    for x, r in zip(X, exp):
        lv = ring_level_work(model, x, r)
        # the per-level work adds up to the reference's SOPs, and to ring_step_work per step
        assert [int(w.sum()) for w in lv] == r.sops.tolist()
        step = ring_step_work(model, x, r)
        assert np.array_equal(np.array([w.sum(axis=1) for w in lv]) + np.array(fire)[:, None], step)
        b = {q: defer_bound(model, lv, lay, q) for q in (0, 1, 2, 4, None)}
        assert b[0] == flow_bound(step - (0 if lay else np.array(fire)[:, None]), fire if lay else None)
        # more deferral never costs, and no schedule beats any core's own work
        assert b[0] >= b[1] >= b[2] >= b[4] >= b[None]
        own = [int(w.sum()) + (L.n_out * model.T if lay else 0) for w, L in zip(lv, model.layers)]
        assert b[None] >= max(own)
        # one depth per core: the same as a scalar when all are equal
        assert defer_bound(model, lv, lay, [2, 2, 2]) == b[2]
