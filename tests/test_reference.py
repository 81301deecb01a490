"""Hand-computed cases and properties of the bit-exact reference (hw/reference.py)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

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
    # layered is the same for both units
    assert np.array_equal(ref.simulate(m, X, "layered", "ring")[0].readout, ref.simulate(m, X, "layered", "scdq")[0].readout)


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


# ------------------------------------------------------------------ properties
@st.composite
def small_models(draw, max_layers=3, max_T=12, force_delays=None):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_layers = draw(st.integers(1, max_layers))
    sizes = [draw(st.integers(1, 6)) for _ in range(n_layers + 1)]
    T = draw(st.integers(1, max_T))
    layers = []
    for l in range(n_layers):
        if force_delays is not None:
            delays = np.array(force_delays)
        else:
            K = int(rng.integers(1, 4))
            delays = np.sort(rng.choice(8, K, replace=False))
        W = rng.integers(-40, 60, size=(len(delays), sizes[l], sizes[l + 1])) * (rng.random((len(delays), sizes[l], sizes[l + 1])) < 0.6)
        layers.append(Layer(delays, W.astype(np.int16), threshold=int(rng.integers(1, 80)), decay=int(rng.integers(0, 4097)),
                            reset=str(rng.choice(["zero", "subtract"])), spiking=l < n_layers - 1))
    m = Model(layers, sizes[0], T)
    X = rng.random((3, T, sizes[0])) < rng.uniform(0.05, 0.6)
    return m, X


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_models(max_layers=1))
def test_layered_equals_async_when_no_threshold_or_bound_is_reached(mx):
    # A readout-only network never fires and (with wide widths) never saturates:
    # integer sums do not depend on order, so every mode and unit agrees.
    m, X = mx
    base = ref.simulate(m, X, "layered")
    for unit in ref.DELAY_UNITS:
        a = ref.simulate(m, X, "async", unit)
        assert np.array_equal(a.readout, base.readout)
        assert np.array_equal(a.sops, base.sops)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_models(force_delays=(0,)))
def test_single_delay_zero_equals_plain_lif_recurrence(mx):
    m, X = mx
    res = ref.simulate(m, X, "layered")
    vmax, vmin = 2**23 - 1, -2**23
    for b in range(X.shape[0]):
        S = X[b].astype(int).tolist()
        for l, L in enumerate(m.layers):
            W = L.weights[0].astype(int).tolist()
            v = [0] * L.n_out
            out = []
            R = [0] * L.n_out
            for t in range(m.T):
                row = []
                for j in range(L.n_out):
                    x = v[j] * L.decay
                    leak = -((-x) // 4096) if x < 0 else x // 4096
                    v[j] = min(max(leak + sum(W[i][j] * S[t][i] for i in range(L.n_in)), vmin), vmax)
                    s = L.spiking and v[j] >= L.threshold
                    if s:
                        v[j] = 0 if L.reset == "zero" else v[j] - L.threshold
                    row.append(int(s))
                    R[j] += v[j]
                out.append(row)
                if not L.spiking:
                    assert res[b].readout[t].tolist() == R
            assert np.array_equal(res[b].layers[l].spikes, np.array(out, dtype=bool).reshape(m.T, L.n_out))
            S = out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_models(force_delays=(0,)))
def test_ring_and_scdq_agree_in_async_without_delayed_taps(mx):
    m, X = mx
    a, b = ref.simulate(m, X, "async", "ring"), ref.simulate(m, X, "async", "scdq")
    for sa, sb in zip(a, b):
        assert np.array_equal(sa.readout, sb.readout)
        for la, lb in zip(sa.layers, sb.layers):
            assert la.emit_t.tolist() == lb.emit_t.tolist() and la.emit_j.tolist() == lb.emit_j.tolist()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_models())
def test_batch_and_single_sample_runs_agree_and_first_layer_sops_match(mx):
    m, X = mx
    for mode in ref.MODES:
        batch = ref.simulate(m, X, mode, chunk=2)
        for b in range(X.shape[0]):
            one = ref.simulate(m, X[b], mode)[0]
            assert np.array_equal(one.readout, batch[b].readout)
            assert one.time_to_decision == batch[b].time_to_decision
    # layer 0 sees the same input in every mode, so its SOP count and occupancy agree
    runs = [ref.simulate(m, X, mode, unit) for mode in ref.MODES for unit in ref.DELAY_UNITS]
    for r in runs[1:]:
        assert np.array_equal(r.sops[:, 0], runs[0].sops[:, 0])
        assert np.array_equal(r.occupancy[:, 0], runs[0].occupancy[:, 0])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_models())
def test_layered_emissions_are_ascending_and_match_rasters(mx):
    m, X = mx
    for mode in ref.MODES:
        for s in ref.simulate(m, X, mode):
            for L in s.layers:
                S = np.zeros_like(L.spikes)
                S[L.emit_t, L.emit_j] = True
                assert np.array_equal(S, L.spikes)
                assert len(L.emit_t) == L.spikes.sum()  # at most once per step
                assert np.all(np.diff(L.emit_t) >= 0)
