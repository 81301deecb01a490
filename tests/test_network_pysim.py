"""Network (Amaranth pysim) vs the reference: random networks, all four mode x unit combinations."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from hw import reference as ref
from hw.model_file import Layer, Model, Widths
from hw.parity import first_divergence
from hw.network import ConfigError, NetworkSpec, config_writes, stimulus_writes
from hw.pysim import run_network
from props import hdl_settings, hidden_fired, model_and_inputs


def random_model(rng, n_layers, T, max_width=5, max_delay=6, widths=Widths()):
    sizes = [int(rng.integers(1, max_width + 1)) for _ in range(n_layers + 1)]
    layers = []
    for l in range(n_layers):
        K = int(rng.integers(1, 4))
        delays = np.sort(rng.choice(max_delay + 1, K, replace=False))
        shape = (K, sizes[l], sizes[l + 1])
        W = rng.integers(-40, 70, shape) * (rng.random(shape) < rng.uniform(0.3, 0.9))
        layers.append(Layer(delays, W.astype(np.int8), threshold=int(rng.integers(1, 90)),
                            decay=int(rng.integers(0, 4097)), reset=str(rng.choice(["zero", "subtract"])),
                            spiking=l < n_layers - 1))
    return Model(layers, sizes[0], T, widths=widths)


def assert_matches(model, X, mode, unit, hdl):
    """Every sample bit-exact with the reference, counters included; a failure
    names the sample, layer, step and neuron (hw.parity.first_divergence)."""
    exp = ref.simulate(model, X, mode, unit)
    assert len(hdl) == len(exp)
    for b, (h, r) in enumerate(zip(hdl, exp)):
        d = first_divergence(b, h, r, counters=True)
        assert d is None, f"{mode}/{unit}: {d}"
        assert not any(c["overflow"] or c["dropped"] for c in h.counters), f"sample {b}: SCDQ overflow"


COMBOS = [(m, u) for m in ("layered", "async") for u in ("ring", "scdq")]


@pytest.mark.parametrize("mode,unit", COMBOS)
@hdl_settings(max_examples=6)
@given(mx=model_and_inputs(max_width=12, max_layers=3, extra_T=4))
def test_random_networks_match_reference(mode, unit, mx):
    """Structure from strategies (so failures shrink): widths (narrow saturating
    ones included), delays up to 63 with T > D + 1, up to 3 layers."""
    model, X = mx
    exp = ref.simulate(model, X, mode, unit)
    if len(model.layers) > 1:
        assume(hidden_fired(model, exp))  # the example must exercise firing, not only the readout
    # an SCDQ as large as the reference's peak occupancy (as cosim builds it): exactly full, never dropping
    caps = [max(2, int(p)) for p in exp.occupancy.max(axis=(0, 2))]
    spec = NetworkSpec.for_model(model, unit, scdq_capacity=caps)
    assert_matches(model, X, mode, unit, run_network(spec, model, X, mode))


@pytest.mark.parametrize("mode", ["layered", "async"])
@hdl_settings(max_examples=3)
@given(mx=model_and_inputs(max_width=12, max_layers=3, extra_T=4))
def test_two_ring_lanes_match_reference(mode, mx):
    """ring_lanes=2 (RING adds of one CSR row in pairs): spikes, readout and SOP counters bit-exact."""
    model, X = mx
    exp = ref.simulate(model, X, mode, "ring")
    if len(model.layers) > 1:
        assume(hidden_fired(model, exp))
    spec = NetworkSpec.for_model(model, "ring", ring_lanes=2)
    assert_matches(model, X, mode, "ring", run_network(spec, model, X, mode))


@pytest.mark.parametrize("mode", ["layered", "async"])
def test_two_ring_lanes_dense_network_bit_exact_and_pairs_taken(mode):
    """A dense 8-10-4 network with delays: bit-exact with two lanes, and the second lane carries
    adds (the two-lane run takes fewer cycles than the one-lane build on the same samples)."""
    rng = np.random.default_rng(22)
    T = 14
    W0 = rng.integers(-30, 60, (3, 8, 10)) * (rng.random((3, 8, 10)) < 0.7)
    W1 = rng.integers(-50, 50, (2, 10, 4)) * (rng.random((2, 10, 4)) < 0.8)
    model = Model([Layer(np.array([0, 2, 5]), W0.astype(np.int8), threshold=70, decay=3000, reset="subtract"),
                   Layer(np.array([0, 3]), W1.astype(np.int8), threshold=1, decay=3900, spiking=False)], 8, T)
    X = rng.random((2, T, 8)) < 0.35
    one = run_network(NetworkSpec.for_model(model, "ring"), model, X, mode)
    two = run_network(NetworkSpec.for_model(model, "ring", ring_lanes=2), model, X, mode)
    assert_matches(model, X, mode, "ring", one)
    assert_matches(model, X, mode, "ring", two)
    assert sum(h.cycles for h in two) < sum(h.cycles for h in one)


@pytest.mark.slow
@pytest.mark.parametrize("mode,unit", [("async", "scdq"), ("layered", "ring")])
def test_wide_network_max_delay_63(mode, unit):
    """The default maximum delay on a 48-wide network: 48-48-10, levels up to 63, T = 66."""
    rng = np.random.default_rng(63)
    T = 66
    d0, d1 = np.array([0, 7, 30, 63]), np.array([1, 63])
    W0 = rng.integers(-20, 60, (4, 48, 48)) * (rng.random((4, 48, 48)) < 0.04)
    W1 = rng.integers(-60, 60, (2, 48, 10)) * (rng.random((2, 48, 10)) < 0.2)
    model = Model([Layer(d0, W0.astype(np.int8), threshold=60, decay=3500, reset="subtract"),
                   Layer(d1, W1.astype(np.int8), threshold=1, decay=4000, spiking=False)], 48, T)
    X = rng.random((1, T, 48)) < 0.08
    exp = ref.simulate(model, X, mode, unit)
    late = exp[0].layers[0].emit_t
    assert len(late) > 20 and (late >= 63).any()  # spikes also after a full D = 63 window
    caps = [max(2, int(p)) for p in exp.occupancy.max(axis=(0, 2))]  # the measured peak, as cosim builds it
    spec = NetworkSpec.for_model(model, unit, scdq_capacity=caps)
    assert_matches(model, X, mode, unit, run_network(spec, model, X, mode))


@pytest.mark.parametrize("unit", ["ring", "scdq"])
def test_saturation_subtract_reset_and_narrow_widths(unit):
    # narrow membrane: sums reach both bounds; subtract reset keeps firing in layered mode
    w = Widths(weight_bits=8, membrane_bits=9, acc_bits=12, readout_bits=10)
    rng = np.random.default_rng(5)
    W0 = np.full((2, 3, 2), 120, dtype=np.int8)
    W0[1, :, 1] = -128
    W1 = np.array([[[127, -128], [-128, 127]]], dtype=np.int8)
    model = Model([Layer(np.array([0, 2]), W0, threshold=100, decay=4000, reset="subtract"),
                   Layer(np.array([1]), W1, threshold=1, decay=4096, spiking=False)], 3, 10, widths=w)
    X = rng.random((2, 10, 3)) < 0.6
    spec = NetworkSpec.for_model(model, unit)
    for mode in ("layered", "async"):
        assert_matches(model, X, mode, unit, run_network(spec, model, X, mode))
    # the bounds were really exercised: the 10-bit readout saturates
    r = ref.simulate(model, X, "layered")
    assert r.readout.max() == 511 and r.readout.min() == -512


@pytest.mark.parametrize("mode", ["layered", "async"])
def test_membrane_saturates_at_both_bounds_in_hdl(mode):
    # readout-only, 9-bit membrane, 20-bit readout, no leak: R[t] - R[t-1] is v itself.
    # Three inputs of +120 (column 0) and -120 (column 1) every step: v would be 360, 720, ...
    # but saturates at 255 and -256 (hand-computed, not from the reference)
    w = Widths(weight_bits=8, membrane_bits=9, acc_bits=12, readout_bits=20)
    W = np.array([[[120, -120]] * 3], dtype=np.int8)
    model = Model([Layer(np.array([0]), W, threshold=1, decay=4096, spiking=False)], 3, 4, widths=w)
    X = np.ones((1, 4, 3), dtype=bool)
    h = run_network(NetworkSpec.for_model(model, "scdq"), model, X, mode)[0]
    v = np.diff(np.r_[[[0, 0]], h.readout], axis=0)
    assert v[:, 0].tolist() == [255] * 4 and v[:, 1].tolist() == [-256] * 4


def test_one_build_serves_smaller_models_with_a_subset_of_levels():
    from hw.network import LayerSpec
    levels = (0, 1, 2, 3, 4, 5, 6)
    spec = NetworkSpec((LayerSpec(5, 5, levels, 80), LayerSpec(5, 4, levels, 80)), "scdq", T_max=16)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        model = random_model(rng, 2, int(rng.integers(1, 16)), max_width=4)
        X = rng.random((1, model.T, model.n_inputs)) < 0.5
        for mode in ("layered", "async"):
            assert_matches(model, X, mode, "scdq", run_network(spec, model, X, mode))


def test_config_refuses_models_that_do_not_fit():
    rng = np.random.default_rng(3)
    model = random_model(rng, 2, 6)
    spec = NetworkSpec.for_model(model)
    other = random_model(np.random.default_rng(4), 3, 6)
    with pytest.raises(ConfigError, match="layers"):
        config_writes(spec, other, "async")
    with pytest.raises(ConfigError, match="mode"):
        config_writes(spec, model, "sync")
    import dataclasses
    small = dataclasses.replace(spec, layers=(dataclasses.replace(spec.layers[0], delays=(7,)),) + spec.layers[1:])
    with pytest.raises(ConfigError, match=r"layers\[0\].delays"):
        config_writes(small, model, "layered")
    tiny = dataclasses.replace(spec, max_events=1)
    with pytest.raises(ConfigError, match="max_events"):
        stimulus_writes(tiny, np.ones((6, model.n_inputs), bool))


def test_corrupted_weight_in_hdl_memory_is_caught():
    # fault injection: overwrite synapse 0 (row 0 -> neuron 0) with -128 after programming
    from hw.core import CFG_SYN, _bits
    model = Model([Layer(np.array([0]), np.full((1, 3, 2), 30, np.int8), threshold=50, decay=4096),
                   Layer(np.array([0]), np.array([[[20, 0], [0, 10]]], np.int8), threshold=1, decay=4096, spiking=False)], 3, 6)
    X = np.ones((1, 6, 3), dtype=bool)
    spec = NetworkSpec.for_model(model, "scdq")
    exp = ref.simulate(model, X, "layered")[0]
    good = run_network(spec, model, X, "layered")[0]
    assert np.array_equal(good.readout, exp.readout)
    fault = (spec.sel_core(0, CFG_SYN), 0, 0 | ((-128 & 0xFF) << _bits(2)))
    bad = run_network(spec, model, X, "layered", corrupt=[fault])[0]
    assert 0 not in bad.emissions[0][1].tolist() and 0 in exp.layers[0].emit_j.tolist()
    assert not np.array_equal(bad.readout, exp.readout)
