"""Hand-computed cases and properties of the bit-exact reference (hw/reference.py)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from props import model_and_inputs, ref_settings, widths

from hw import reference as ref
from hw.model_file import Layer, Model, Widths


def readout_only(W, decay=4096, delays=(0,), T=6, widths=Widths()):
    W = np.asarray(W, dtype=np.int32)
    return Model([Layer(np.array(delays), W, threshold=1, decay=decay, spiking=False)], W.shape[1], T, widths=widths)


def two_layer(W0, W1, theta, decay=4096, reset="zero", delays0=(0,), delays1=(0,), T=6, widths=Widths()):
    W0 = np.asarray(W0, dtype=np.int32)
    W1 = np.asarray(W1, dtype=np.int32)
    return Model([
        Layer(np.array(delays0), W0, threshold=theta, decay=decay, reset=reset, spiking=True),
        Layer(np.array(delays1), W1, threshold=1, decay=4096, spiking=False),
    ], W0.shape[1], T, widths=widths)


def raster(T, C, events):
    X = np.zeros((T, C), dtype=bool)
    for t, c in events:
        X[t, c] = True
    return X


# ------------------------------------------------------------------ arithmetic
def test_trunc0_rounds_toward_zero_for_negative_membranes():
    v = np.array([-5, 5, -1, 1, -4097, 0])
    assert ref.trunc0_leak(v, 2048).tolist() == [-2, 2, 0, 0, -2048, 0]


@pytest.mark.parametrize("mode", ref.MODES)
def test_negative_leak_truncates_toward_zero_in_readout(mode):
    # v: -5, trunc0(-2.5)=-2, trunc0(-1)=-1, trunc0(-0.5)=0 ; floor would give -3, -2, -1, -1
    m = readout_only([[[-5]]], decay=2048, T=4)
    r = ref.simulate(m, raster(4, 1, [(0, 0)]), mode)[0]
    assert r.readout[:, 0].tolist() == [-5, -7, -8, -8]


@pytest.mark.parametrize("mode", ref.MODES)
def test_membrane_saturates_at_both_bounds(mode):
    w = Widths(membrane_bits=8, acc_bits=10, readout_bits=16)
    m = readout_only([[[100, -100], [100, -100], [100, -100]]], widths=w, T=3)
    X = np.ones((3, 3), dtype=bool)
    r = ref.simulate(m, X, mode)[0]
    assert r.readout[:, 0].tolist() == [127, 254, 381]
    assert r.readout[:, 1].tolist() == [-128, -256, -384]


@pytest.mark.parametrize("mode", ref.MODES)
def test_readout_saturates(mode):
    w = Widths(membrane_bits=8, acc_bits=10, readout_bits=9)
    m = readout_only([[[100, -100], [100, -100], [100, -100]]], widths=w, T=3)
    r = ref.simulate(m, np.ones((3, 3), dtype=bool), mode)[0]
    assert r.readout[:, 0].tolist() == [127, 254, 255]
    assert r.readout[:, 1].tolist() == [-128, -256, -256]


@pytest.mark.parametrize("mode", ref.MODES)
@pytest.mark.parametrize("unit", ref.DELAY_UNITS)
def test_delay_reaching_before_t0_contributes_nothing(mode, unit):
    # one tap at d=3: input at t=0 lands at t=3, input at t=4 lands at t=7 >= T and is dropped
    m = readout_only([[[7]]], delays=(3,), T=6)
    r = ref.simulate(m, raster(6, 1, [(0, 0), (4, 0)]), mode, unit)[0]
    assert r.readout[:, 0].tolist() == [0, 0, 0, 7, 14, 21]
    assert r.layers[0].sops == 1  # the t=4 spike's tap arrives at 7 >= T: not counted


def test_multiple_taps_on_one_synapse():
    W = np.zeros((2, 1, 1), dtype=np.int32)
    W[0, 0, 0], W[1, 0, 0] = 2, 5  # taps at d=0 and d=2
    m = readout_only(W, delays=(0, 2), T=4, decay=0)  # decay 0: v holds only this step's input
    r = ref.simulate(m, raster(4, 1, [(0, 0)]), "layered")[0]
    assert np.diff(np.r_[0, r.readout[:, 0]]).tolist() == [2, 0, 5, 0]


def test_argmax_lowest_index_on_ties_and_time_to_decision():
    R = np.array([[0, 1], [2, 1], [0, 3], [0, 5]])
    assert ref.time_to_decision(R) == 2
    assert ref.time_to_decision(np.array([[3, 3], [4, 4]])) == 0
    assert ref.argmax_lowest(np.array([4, 4, 1])) == 0
    m = readout_only([[[3, 3]]], T=2)
    assert ref.simulate(m, raster(2, 1, [(0, 0)]))[0].prediction == 0


# ------------------------------------------------------------------ firing rules
def test_layered_subtract_reset_fires_on_consecutive_steps_without_input():
    m = two_layer([[[35]]], [[[1]]], theta=10, reset="subtract", T=5)
    r = ref.simulate(m, raster(5, 1, [(0, 0)]), "layered")[0]
    assert np.nonzero(r.layers[0].spikes[:, 0])[0].tolist() == [0, 1, 2]


def test_async_checks_only_on_update_so_subtract_reset_fires_once():
    m = two_layer([[[35]]], [[[1]]], theta=10, reset="subtract", T=5)
    r = ref.simulate(m, raster(5, 1, [(0, 0)]), "async")[0]
    assert np.nonzero(r.layers[0].spikes[:, 0])[0].tolist() == [0]


def test_refractory_neuron_integrates_but_cannot_fire_again_and_differs_from_layered():
    # two same-step events of +10 each, threshold 10, zero reset.
    # async: first update fires (v->0, refractory), second gives v=10 but no spike;
    # at t=2 a +1 update gives v=11 -> fires. layered: v=20 fires at t=0 (v->0), t=2 v=1, no spike.
    W0 = np.array([[[10], [10], [1]]])
    m = two_layer(W0, [[[1]]], theta=10, T=4)
    X = raster(4, 3, [(0, 0), (0, 1), (2, 2)])
    a = ref.simulate(m, X, "async")[0]
    l = ref.simulate(m, X, "layered")[0]
    assert list(zip(a.layers[0].emit_t, a.layers[0].emit_j)) == [(0, 0), (2, 0)]
    assert list(zip(l.layers[0].emit_t, l.layers[0].emit_j)) == [(0, 0)]


def test_async_emission_order_follows_update_order():
    # input channel 0 drives neuron 1 over threshold before channel 1 drives neuron 0
    W0 = np.array([[[0, 20], [20, 0]]])
    m = two_layer(W0, [[[1], [1]]], theta=10, T=2)
    X = raster(2, 2, [(0, 0), (0, 1)])
    a = ref.simulate(m, X, "async")[0].layers[0]
    l = ref.simulate(m, X, "layered")[0].layers[0]
    assert a.emit_j.tolist() == [1, 0]
    assert l.emit_j.tolist() == [0, 1]  # layered: ascending j


def test_ring_and_scdq_async_order_differ():
    # +10 and -10 both delayed by 1: the SCDQ applies +10 first (fires), the ring lumps them to 0 (no update)
    W0 = np.array([[[10], [-10]]])
    m = two_layer(W0, [[[1]]], theta=10, delays0=(1,), T=3)
    X = raster(3, 2, [(0, 0), (0, 1)])
    s = ref.simulate(m, X, "async", "scdq")[0]
    r = ref.simulate(m, X, "async", "ring")[0]
    assert s.layers[0].emit_t.tolist() == [1]
    assert r.layers[0].emit_t.tolist() == []
    assert s.layers[0].sops == r.layers[0].sops == 2
    # layered (by hand): I = +10 - 10 = 0 at t=1, so the hidden neuron never fires and R stays 0
    lay = ref.simulate(m, X, "layered")[0]
    assert lay.layers[0].emit_t.tolist() == [] and lay.readout[:, 0].tolist() == [0, 0, 0]


def test_scdq_delayed_events_go_by_ascending_level_then_emission_order():
    # neuron 0 gets +6 via level d=2 from ch1 and +6 via d=1 from ch0 (emitted one step later);
    # both due at t=2. Ascending k: level 0 (d=1) first: ch0 event, then level 1 (d=2): ch1.
    W0 = np.zeros((2, 2, 2), dtype=np.int32)
    W0[0, 0, 1] = 10  # d=1: ch0 -> neuron1 (+10 fires)
    W0[1, 1, 0] = 10  # d=2: ch1 -> neuron0
    m = two_layer(W0, np.ones((1, 2, 1), dtype=np.int32), theta=10, delays0=(1, 2), T=4)
    X = raster(4, 2, [(0, 1), (1, 0)])
    a = ref.simulate(m, X, "async", "scdq")[0].layers[0]
    assert list(zip(a.emit_t.tolist(), a.emit_j.tolist())) == [(2, 1), (2, 0)]
    r = ref.simulate(m, X, "async", "ring")[0].layers[0]  # ring drains by ascending j
    assert list(zip(r.emit_t.tolist(), r.emit_j.tolist())) == [(2, 0), (2, 1)]


def test_sop_counts_and_occupancy_hand_case():
    W0 = np.zeros((2, 2, 3), dtype=np.int32)
    W0[0, 0, :] = [1, 0, 2]  # d=0: 2 taps from ch0
    W0[1, 1, :] = [1, 1, 1]  # d=2: 3 taps from ch1
    m = two_layer(W0, np.zeros((1, 3, 1), dtype=np.int32), theta=1000, delays0=(0, 2), T=4)
    X = raster(4, 2, [(0, 0), (1, 1), (2, 1), (3, 0), (3, 1)])
    for mode in ref.MODES:
        for unit in ref.DELAY_UNITS:
            L0 = ref.simulate(m, X, mode, unit)[0].layers[0]
            # ch0 spikes at 0,3 -> 2+2; ch1 at 1 (arr 3 ok), 2 (arr 4 >= T), 3 (arr 5) -> 3
            assert L0.sops == 7
            # events per step [1,1,1,2], D=2 -> window sums
            assert L0.occupancy.tolist() == [1, 2, 3, 4]


def test_scdq_occupancy_function():
    assert ref.scdq_occupancy(np.array([1, 2, 0, 3]), 1).tolist() == [1, 3, 2, 3]
    assert ref.scdq_occupancy(np.array([1, 2, 0, 3]), 0).tolist() == [0, 0, 0, 0]
    assert ref.scdq_occupancy(np.array([[1, 1, 1]]), 5).tolist() == [[1, 2, 3]]


# ------------------------------------------------------------------ memory accounting
def test_memory_accounting_formulas():
    assert [ref.clog2(n) for n in (1, 2, 3, 4, 5, 700)] == [0, 1, 2, 2, 3, 10]
    assert ref.ring_buffer_bits(48, 60, 24) == 48 * 61 * 24
    assert ref.scdq_bits(700, 60, 100) == 100 * 10 + 61 * 8
    assert ref.scdq_bits(1, 3, 1) == 1 * 1 + 4 * 1
    assert ref.scdq_bits(700, 0, 50) == 0
    W = np.zeros((1, 2, 4), dtype=np.int8)
    W[0, 0, 1] = W[0, 1, 2] = W[0, 1, 3] = 5
    assert ref.synapse_bits(W, 8) == 3 * (8 + 2) + 3 * 2
    assert ref.dense_synapse_bits(W, 8) == 64
    assert ref.state_bits(48, 24) == 1152
    with pytest.raises(ValueError, match="capacity"):
        ref.scdq_bits(10, 4, 0)


def test_bad_inputs_are_refused():
    m = readout_only([[[1]]], T=4)
    with pytest.raises(ValueError, match="T=3"):
        ref.simulate(m, np.zeros((3, 1), bool))
    with pytest.raises(ValueError, match="channels"):
        ref.simulate(m, np.zeros((4, 2), bool))
    with pytest.raises(ValueError, match="binary"):
        ref.simulate(m, np.full((4, 1), 2))
    with pytest.raises(ValueError, match="mode"):
        ref.simulate(m, np.zeros((4, 1), bool), mode="sync")
    with pytest.raises(ValueError, match="channel"):
        ref.raster_from_events([0], [5], 4, 1)


# ------------------------------------------------------------------ independent oracles
# Written from docs/contract.md in plain Python/numpy, sharing no code with hw.reference:
# the reference must agree with them bit for bit.
def _sat(x, bits):
    hi = (1 << (bits - 1)) - 1
    return min(max(x, -hi - 1), hi)


def _leak(v, a):
    return int(np.trunc(v * a / 4096))  # exact in float64: |v * a| < 2^53, division by 2^12


def oracle_layered(m, X):
    """Per sample: (emissions per layer [(t, j)...], readout [T][n])."""
    w = m.widths
    S = X.astype(np.int64)
    ems, R_hist = [], None
    for L in m.layers:
        T, n = m.T, L.n_out
        v = [0] * n
        R = [0] * n
        out = np.zeros((T, n), dtype=np.int64)
        em, R_hist_l = [], []
        for t in range(T):
            I = np.zeros(n, dtype=np.int64)
            for k, d in enumerate(L.delays):
                if t - d >= 0:
                    I += S[t - d] @ L.weights[k].astype(np.int64)
            for j in range(n):
                v[j] = _sat(_leak(v[j], L.decay) + int(I[j]), w.membrane_bits)
                if L.spiking and v[j] >= L.threshold:
                    v[j] = 0 if L.reset == "zero" else v[j] - L.threshold
                    out[t, j] = 1
                    em.append((t, j))
                R[j] = _sat(R[j] + v[j], w.readout_bits)
            R_hist_l.append(list(R))
        ems.append(em)
        R_hist = R_hist_l
        S = out
    return ems, R_hist


def oracle_async(m, X, unit):
    """The async rules of docs/contract.md event by event: (emissions, readout, sops per layer)."""
    w = m.widths
    pre = [(int(t), int(c)) for t, c in zip(*np.nonzero(X))]  # ascending t, then channel
    ems, sops, R_hist = [], [], None
    for L in m.layers:
        T, n = m.T, L.n_out
        v, R = [0] * n, [0] * n
        slots = {}  # (arrival step, j) -> lumped sum (ring)
        em, R_hist_l, sop = [], [], 0
        by_step = [[i for tt, i in pre if tt == t] for t in range(T)]

        def update(j, x, t, refr):
            v[j] = _sat(v[j] + x, w.membrane_bits)
            if L.spiking and j not in refr and v[j] >= L.threshold:
                v[j] = 0 if L.reset == "zero" else v[j] - L.threshold
                refr.add(j)
                em.append((t, j))

        for t in range(T):
            for j in range(n):
                v[j] = _leak(v[j], L.decay)
            refr = set()
            if unit == "scdq":
                for k, d in enumerate(L.delays):
                    if d > 0 and t - d >= 0:
                        for i in by_step[t - d]:
                            for j in range(n):
                                if L.weights[k, i, j]:
                                    sop += 1
                                    update(j, int(L.weights[k, i, j]), t, refr)
            else:
                for j in range(n):
                    x = slots.pop((t, j), 0)
                    if x:
                        update(j, x, t, refr)
            for i in by_step[t]:
                for k, d in enumerate(L.delays):
                    if unit == "ring" and 0 < d and t + d < T:
                        for j in range(n):
                            if L.weights[k, i, j]:
                                sop += 1
                                slots[(t + d, j)] = slots.get((t + d, j), 0) + int(L.weights[k, i, j])
                if L.delays[0] == 0:
                    for j in range(n):
                        if L.weights[0, i, j]:
                            sop += 1
                            update(j, int(L.weights[0, i, j]), t, refr)
            if not L.spiking:
                for j in range(n):
                    R[j] = _sat(R[j] + v[j], w.readout_bits)
            R_hist_l.append(list(R))
        ems.append(em)
        sops.append(sop)
        R_hist = R_hist_l
        pre = em
    return ems, R_hist, sops


def oracle_sops_and_occupancy(L, S_prev, T):
    """SOPs of a layer fed by raster S_prev [T, n_in] and its SCDQ occupancy, by counting."""
    sops = sum(int(np.count_nonzero(L.weights[k, i])) for t, i in zip(*np.nonzero(S_prev))
               for k, d in enumerate(L.delays) if t + d < T)
    D = L.max_delay
    occ = [0 if D == 0 else int(S_prev[max(0, t - D):t + 1].sum()) for t in range(T)]
    return sops, occ


# ------------------------------------------------------------------ properties
@ref_settings(max_examples=40)
@given(model_and_inputs(max_layers=1, w=st.just(Widths())))
def test_readout_only_networks_agree_in_every_mode_and_unit(mx):
    # A readout-only network never fires and, at the default widths, never saturates:
    # integer sums do not depend on order, so both modes and units agree with the layered oracle.
    m, X = mx
    for mode in ref.MODES:
        for unit in ref.DELAY_UNITS:
            res = ref.simulate(m, X, mode, unit)
            for b in range(X.shape[0]):
                assert res[b].readout.tolist() == oracle_layered(m, X[b])[1]


@ref_settings(max_examples=40)
@given(model_and_inputs(max_width=24))
def test_layered_mode_equals_the_layered_oracle(mx):
    m, X = mx
    res = ref.simulate(m, X, "layered")
    for b in range(X.shape[0]):
        ems, R = oracle_layered(m, X[b])
        for l in range(len(m.layers) - 1):
            L = res[b].layers[l]
            assert list(zip(L.emit_t.tolist(), L.emit_j.tolist())) == ems[l], f"sample {b} layer {l}"
        assert res[b].readout.tolist() == R


@ref_settings(max_examples=40)
@given(model_and_inputs(max_width=16), st.sampled_from(ref.DELAY_UNITS))
def test_async_mode_equals_the_event_by_event_oracle(mx, unit):
    m, X = mx
    res = ref.simulate(m, X, "async", unit)
    for b in range(X.shape[0]):
        ems, R, sops = oracle_async(m, X[b], unit)
        for l in range(len(m.layers) - 1):
            L = res[b].layers[l]
            assert list(zip(L.emit_t.tolist(), L.emit_j.tolist())) == ems[l], f"sample {b} layer {l}"
        assert res[b].readout.tolist() == R
        assert res[b].sops.tolist() == sops


@ref_settings(max_examples=30)
@given(model_and_inputs(batch=3))
def test_batch_and_single_sample_runs_agree_and_first_layer_sops_match(mx):
    m, X = mx
    for mode in ref.MODES:
        batch = ref.simulate(m, X, mode, chunk=2)
        for b in range(X.shape[0]):
            one = ref.simulate(m, X[b], mode)[0]
            assert np.array_equal(one.readout, batch[b].readout)
            assert one.time_to_decision == batch[b].time_to_decision
            # layer 0 sees the input raster: SOPs and occupancy by plain counting
            sops, occ = oracle_sops_and_occupancy(m.layers[0], X[b], m.T)
            assert batch[b].layers[0].sops == sops
            assert batch[b].layers[0].occupancy.tolist() == occ


@ref_settings(max_examples=30)
@given(model_and_inputs())
def test_emissions_match_rasters_and_layered_order_is_ascending(mx):
    m, X = mx
    for mode in ref.MODES:
        for s in ref.simulate(m, X, mode):
            for L in s.layers:
                S = np.zeros_like(L.spikes)
                S[L.emit_t, L.emit_j] = True
                assert np.array_equal(S, L.spikes)
                assert len(L.emit_t) == L.spikes.sum()  # at most once per step
                assert np.all(np.diff(L.emit_t) >= 0)
                if mode == "layered":  # ascending j within a step
                    key = L.emit_t.astype(np.int64) * (L.spikes.shape[1] + 1) + L.emit_j
                    assert np.all(np.diff(key) > 0)


@ref_settings(max_examples=25)
@given(st.data())
def test_time_to_decision_is_the_last_change_of_the_running_argmax(data):
    T = data.draw(st.integers(1, 30))
    n = data.draw(st.integers(1, 5))
    R = np.array(data.draw(st.lists(st.lists(st.integers(-3, 3), min_size=n, max_size=n), min_size=T, max_size=T)))
    am = [max(range(n), key=lambda j: (R[t, j], -j)) for t in range(T)]  # lowest index on ties
    want = next(t for t in range(T) if all(a == am[-1] for a in am[t:]))
    assert ref.time_to_decision(R) == want
    assert ref.argmax_lowest(R[-1]) == am[-1]
