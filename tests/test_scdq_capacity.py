"""SCDQ at a fixed capacity: the reference drops exactly the events the HDL drops.

The expectations here are built independently of ``hw.reference``'s own
implementation: a per-event queue model written from the contract text (an
event is stored iff fewer than C stored events of steps ``[t - D, t]`` are
held when it is pushed), and then the HDL (pysim and Verilator) run at
capacities below the measured peak, in both modes, compared bit for bit with
the reference: emissions, readout, SOP counters, peak, overflow and dropped
count per layer.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hw import reference as ref
from hw.model_file import Layer, Model
from hw.network import NetworkSpec
from hw.pysim import run_network


def queue_model(events_per_step: list[list[int]], D: int, C: int):
    """Per-event FIFO queue from the contract text: returns (stored per step, dropped, occupancy per step)."""
    stored, dropped, occ = [], 0, []
    for t, evs in enumerate(events_per_step):
        held = sum(len(stored[s]) for s in range(max(0, t - D), t))
        kept = []
        for i in evs:
            if held + len(kept) < C:
                kept.append(i)
            else:
                dropped += 1
        stored.append(kept)
        occ.append(sum(len(stored[s]) for s in range(max(0, t - D), t + 1)))
    return stored, dropped, occ


def random_model(rng, n_layers, T, max_width=6, max_delay=5):
    sizes = [int(rng.integers(2, max_width + 1)) for _ in range(n_layers + 1)]
    layers = []
    for l in range(n_layers):
        K = int(rng.integers(1, 4))
        delays = np.sort(rng.choice(max_delay + 1, K, replace=False))
        if delays[-1] == 0:  # a layer with delays, so that it has a queue
            delays = np.array([0, int(rng.integers(1, max_delay + 1))])
            K = 2
        shape = (K, sizes[l], sizes[l + 1])
        W = rng.integers(-30, 80, shape) * (rng.random(shape) < rng.uniform(0.4, 0.9))
        layers.append(Layer(delays, W.astype(np.int8), threshold=int(rng.integers(1, 60)),
                            decay=int(rng.integers(2000, 4097)), reset=str(rng.choice(["zero", "subtract"])),
                            spiking=l < n_layers - 1))
    return Model(layers, sizes[0], T)


def below_peak(res: ref.BatchResult, model: Model, rng) -> list[int | None]:
    """Capacities strictly below each queued layer's unlimited peak (None where there is no queue)."""
    peak = res.occupancy.max(axis=(0, 2))
    return [None if L.max_delay == 0 or p < 2 else int(rng.integers(1, p)) for L, p in zip(model.layers, peak)]


def test_admitted_counts_follow_the_per_event_queue():
    rng = np.random.default_rng(0)
    for _ in range(200):
        T, D, C = int(rng.integers(1, 20)), int(rng.integers(1, 6)), int(rng.integers(1, 12))
        counts = rng.integers(0, 6, T)
        stored, dropped, occ = queue_model([list(range(n)) for n in counts], D, C)
        kept = ref.scdq_admitted(counts, D, C)
        assert kept.tolist() == [len(s) for s in stored]
        assert int((counts - kept).sum()) == dropped
        assert ref.scdq_occupancy(kept, D).tolist() == occ
    # a batch axis is handled per sample
    counts = rng.integers(0, 6, (4, 15))
    assert np.array_equal(ref.scdq_admitted(counts, 3, 5), np.stack([ref.scdq_admitted(c, 3, 5) for c in counts]))


def test_hand_case_drops_the_new_event_and_keeps_its_zero_delay_taps():
    # 3 inputs, all spiking at t=0; one layer with taps at d=0 (to neuron 0) and d=2 (to neuron 1);
    # capacity 2: inputs 0 and 1 are stored, input 2 is dropped: its d=2 tap never arrives,
    # but its d=0 tap is applied at once (it does not pass through the queue)
    W = np.zeros((2, 3, 2), np.int8)
    W[0, :, 0] = [1, 2, 4]
    W[1, :, 1] = [8, 16, 32]
    model = Model([Layer(np.array([0, 2]), W, threshold=1, decay=4096, spiking=False)], 3, 4)
    X = np.zeros((4, 3), bool)
    X[0] = True
    for mode in ("layered", "async"):
        full = ref.simulate(model, X, mode)[0]
        cut = ref.simulate(model, X, mode, scdq_capacity=[2])[0]
        assert full.readout[-1].tolist() == [7 * 4, 56 * 2]
        assert cut.readout[-1].tolist() == [7 * 4, 24 * 2]
        assert (full.layers[0].dropped, cut.layers[0].dropped) == (0, 1)
        assert (full.layers[0].peak, cut.layers[0].peak) == (3, 2)
        assert cut.layers[0].overflow and not full.layers[0].overflow
        assert (full.layers[0].sops, cut.layers[0].sops) == (6, 5)
        assert cut.layers[0].occupancy.tolist() == [2, 2, 2, 0]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_reference_layers_see_exactly_the_stored_events(seed):
    """Each layer's stored events (the first ones of every step, in emission order) follow
    the per-event queue model; a capacity at or above the peak changes nothing."""
    rng = np.random.default_rng(seed)
    T = int(rng.integers(4, 16))
    model = random_model(rng, 2, T)
    X = rng.random((2, T, model.n_inputs)) < rng.uniform(0.2, 0.7)
    for mode in ("layered", "async"):
        full = ref.simulate(model, X, mode)
        caps = below_peak(full, model, rng)
        cut = ref.simulate(model, X, mode, scdq_capacity=caps)
        same = ref.simulate(model, X, mode, scdq_capacity=[max(1, int(p)) for p in full.occupancy.max(axis=(0, 2))])
        assert np.array_equal(same.readout, full.readout) and not same.dropped.any()
        for b in range(2):
            pre = [ref.events_from_raster(X[b])] + [(L.emit_t, L.emit_j) for L in cut[b].layers[:-1]]
            for l, (L, C) in enumerate(zip(model.layers, caps)):
                if C is None:
                    assert cut[b].layers[l].dropped == 0
                    continue
                pt, pj = pre[l]
                _, dropped, occ = queue_model([pj[pt == t].tolist() for t in range(T)], L.max_delay, C)
                assert cut[b].layers[l].dropped == dropped
                assert cut[b].layers[l].occupancy.tolist() == occ
                assert cut[b].layers[l].peak <= C


def test_capacity_argument_is_validated():
    rng = np.random.default_rng(1)
    model = random_model(rng, 2, 6)
    X = np.ones((6, model.n_inputs), bool)
    with pytest.raises(ValueError, match="scdq_capacity has 1 entries"):
        ref.simulate(model, X, scdq_capacity=[4])
    with pytest.raises(ValueError, match=r"scdq_capacity\[1\]"):
        ref.simulate(model, X, scdq_capacity=[4, 0])
    with pytest.raises(ValueError, match=r"scdq_capacity\[0\]"):
        ref.simulate(model, X, scdq_capacity=[-1, 3])
    with pytest.raises(ValueError, match="delay_unit='scdq' only"):
        ref.simulate(model, X, "async", "ring", scdq_capacity=[4, 4])
    with pytest.raises(ValueError, match="one capacity per layer"):
        ref.simulate(model, X, scdq_capacity=4)
    # None per layer is an unlimited queue
    a = ref.simulate(model, X, scdq_capacity=[None, None])
    assert np.array_equal(a.readout, ref.simulate(model, X).readout)


# ---------------------------------------------------------------- HDL vs reference below the peak
def assert_hdl_matches(model, X, mode, hdl, exp):
    for b, (h, r) in enumerate(zip(hdl, exp)):
        for l in range(len(model.layers) - 1):
            ht, hj = h.emissions[l]
            assert (ht.tolist(), hj.tolist()) == (r.layers[l].emit_t.tolist(), r.layers[l].emit_j.tolist()), \
                f"{mode} sample {b} layer {l} emissions"
        assert np.array_equal(h.readout, r.readout), f"{mode} sample {b} readout"
        assert [c["sops"] for c in h.counters] == r.sops.tolist(), f"{mode} sample {b} SOPs"
        for l, L in enumerate(model.layers):
            if L.max_delay == 0:
                continue
            c = h.counters[l]
            assert (c["dropped"], c["peak"], bool(c["overflow"])) == \
                (r.layers[l].dropped, r.layers[l].peak, r.layers[l].overflow), f"{mode} sample {b} layer {l} queue"


def overflow_case(seed: int, n_layers: int = 2, B: int = 2):
    """A random model and input, and capacities below the unlimited peak that really drop events."""
    rng = np.random.default_rng(seed)
    while True:
        T = int(rng.integers(6, 12))
        model = random_model(rng, n_layers, T)
        X = rng.random((B, T, model.n_inputs)) < rng.uniform(0.3, 0.8)
        full = {m: ref.simulate(model, X, m) for m in ("layered", "async")}
        peak = np.max([full[m].occupancy.max(axis=(0, 2)) for m in full], axis=0)
        caps = [max(1, int(p) // 2) if L.max_delay else 4 for L, p in zip(model.layers, peak)]
        exp = {m: ref.simulate(model, X, m, scdq_capacity=caps) for m in full}
        if all(exp[m].dropped.sum() > 0 for m in exp):
            return model, X, caps, full, exp


@pytest.mark.parametrize("seed", [3, 11])
def test_pysim_network_matches_reference_below_the_peak(seed):
    model, X, caps, full, exp = overflow_case(seed)
    spec = NetworkSpec.for_model(model, "scdq", scdq_capacity=caps)
    for mode in ("layered", "async"):
        assert_hdl_matches(model, X, mode, run_network(spec, model, X, mode), exp[mode])


def test_pysim_capacity_one():
    # C = 1: a 0-bit event-memory address; the queue holds one event at a time
    model, X, _, _, _ = overflow_case(5, n_layers=1, B=1)
    caps = [1]
    spec = NetworkSpec.for_model(model, "scdq", scdq_capacity=caps)
    for mode in ("layered", "async"):
        exp = ref.simulate(model, X, mode, scdq_capacity=caps)
        assert exp.dropped.sum() > 0
        assert_hdl_matches(model, X, mode, run_network(spec, model, X, mode), exp)


def test_verilator_network_matches_reference_below_the_peak(tmp_path):
    from cosim.backends.verilator import VerilatorBackend
    model, X, caps, full, exp = overflow_case(21, n_layers=3, B=4)
    spec = NetworkSpec.for_model(model, "scdq", scdq_capacity=caps, max_events=256, max_spikes=256)
    be = VerilatorBackend(spec, log=None)
    for mode in ("layered", "async"):
        assert_hdl_matches(model, X, mode, be.run(model, X, mode, workers=1), exp[mode])


# ---------------------------------------------------------------- cosim --scdq-capacity
def test_cosim_at_a_forced_capacity_reports_both_accuracies_and_drops():
    from cosim.run import cosimulate
    model, X, caps, full, exp = overflow_case(7, n_layers=2, B=6)
    y = np.arange(len(X)) % model.n_classes
    rep = cosimulate(model, X, y, backend="verilator", modes=("layered", "async"), delay_units=("scdq",),
                     workers=1, scdq_capacity=caps, progress=False, log=None)
    for r in rep["runs"]:
        e, f = exp[r["mode"]], full[r["mode"]]
        assert r["parity"]["bit_exact"] == len(X), r["parity"]
        assert r["accuracy"]["reference"] == float((e.predictions == y).mean())
        assert r["accuracy"]["reference_unlimited_capacity"] == float((f.predictions == y).mean())
        for l, row in enumerate(r["memory"]["layers"]):
            assert row["dropped"] == row["reference_dropped"] == int(e.dropped[:, l].sum())
            if model.layers[l].max_delay:
                assert row["scdq_capacity"] == caps[l]
                assert row["unlimited_peak"] == int(f.occupancy[:, l].max())
        assert sum(row["dropped"] for row in r["memory"]["layers"]) > 0
    # one value means every layer; wrong counts, zero and negatives are errors naming the flag
    from cosim.run import CosimError, capacity_per_layer, parse_args
    assert capacity_per_layer(["5"], model) == [5, 5]
    assert capacity_per_layer(["5", "7"], model) == [5, 7]
    assert parse_args(["--scdq-capacity", "5", "7"]).scdq_capacity == ["5", "7"]
    for bad in (["0"], ["-3"], ["4", "0"], ["x"], ["1", "2", "3"], ["2.5"]):
        with pytest.raises(CosimError, match="--scdq-capacity"):
            capacity_per_layer(bad, model)
    with pytest.raises(CosimError, match="--scdq-capacity"):
        cosimulate(model, X, y, backend="verilator", scdq_capacity=[0], progress=False, log=None)


def test_pysim_model_in_a_larger_build_holds_events_for_the_build_window():
    # the build's queues span levels 0..6 (window 6) while the model uses at most delay 3:
    # events stay queued 7 steps, and the drop rule and peak follow the build's window
    from hw.network import LayerSpec
    rng = np.random.default_rng(12)
    model = random_model(rng, 2, 12, max_delay=3)
    X = rng.random((2, 12, model.n_inputs)) < 0.6
    wins = [6, 6]
    peak = ref.simulate(model, X, "async", scdq_window=wins).occupancy.max(axis=(0, 2))
    caps = [max(1, int(p) * 2 // 3) for p in peak]
    spec = NetworkSpec(tuple(LayerSpec(L.n_in, L.n_out, tuple(range(7)), 7 * L.n_in * L.n_out, c)
                             for L, c in zip(model.layers, caps)), "scdq", T_max=12)
    for mode in ("layered", "async"):
        exp = ref.simulate(model, X, mode, scdq_capacity=caps, scdq_window=wins)
        own = ref.simulate(model, X, mode, scdq_capacity=caps)
        assert exp.dropped.sum() > own.dropped.sum(), "the longer window holds more and drops more"
        assert_hdl_matches(model, X, mode, run_network(spec, model, X, mode), exp)
    with pytest.raises(ValueError, match=r"scdq_window\[0\]"):
        ref.simulate(model, X, scdq_window=[0, 6])
