"""Early exit: the rule in the reference, and the HDL (pysim and Verilator) bit-exact with it on.

The rule's expectation here is a plain per-step loop written from the contract
text (top class leads the runner-up by >= m for s consecutive steps); the HDL
runs are compared with the reference on emissions, readout, SOP counters, the
exit step and the early-exit flag, and their cycle counts with the same run
without the rule (the exit must not change any earlier step).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hw import reference as ref
from hw.model_file import Layer, Model
from hw.network import ConfigError, NetworkSpec, config_writes
from hw.pysim import run_network
from test_scdq_capacity import random_model


def rule_by_hand(R: np.ndarray, m: int, s: int, rbits: int) -> tuple[int, bool]:
    """First step closing a run of ``s`` steps whose best sum leads the second best by ``>= m``."""
    T, n = R.shape
    if m == 0 or s == 0:
        return T - 1, False
    run = 0
    for t in range(T):
        vals = sorted(R[t].tolist(), reverse=True)
        second = vals[1] if n > 1 else -(1 << (rbits - 1))
        run = run + 1 if vals[0] - second >= m else 0
        if run >= s:
            return t, True
    return T - 1, False


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 4), T=st.integers(1, 12),
       m=st.integers(0, 9), s=st.integers(0, 4))
def test_rule_follows_the_contract_text(seed, n, T, m, s):
    rng = np.random.default_rng(seed)
    R = rng.integers(-6, 7, (T, n)).cumsum(axis=0)  # ties are common
    e, f = ref.early_exit_step(R, m, s, 32)
    assert (int(e), bool(f)) == rule_by_hand(R, m, s, 32)


def test_exit_truncates_the_sample_and_freezes_the_readout():
    rng = np.random.default_rng(2)
    model = random_model(rng, 2, 14)
    X = rng.random((4, 14, model.n_inputs)) < 0.5
    for mode in ("layered", "async"):
        for unit in ("scdq", "ring"):
            full = ref.simulate(model, X, mode, unit)
            assert (full.exit_step == 13).all() and not full.early_exit.any()
            lead = np.diff(np.sort(full.readout, axis=-1)[..., -2:], axis=-1)[..., 0]
            m = int(np.median(lead[lead > 0])) if (lead > 0).any() else 1
            cut = ref.simulate(model, X, mode, unit, early_exit=(m, 2))
            assert cut.early_exit.any(), "the margin is chosen so that some sample exits"
            for b in range(len(X)):
                e = int(cut[b].exit_step)
                assert (e, bool(cut[b].early_exit)) == rule_by_hand(full[b].readout, m, 2, 32)
                assert np.array_equal(cut[b].readout[: e + 1], full[b].readout[: e + 1])
                assert (cut[b].readout[e:] == full[b].readout[e]).all()
                assert cut[b].prediction == int(np.argmax(full[b].readout[e]))
                for L, F in zip(cut[b].layers, full[b].layers):
                    assert L.emit_t.tolist() == F.emit_t[F.emit_t <= e].tolist()
                    assert L.emit_j.tolist() == F.emit_j[F.emit_t <= e].tolist()
                    assert L.sops == int(F.sops_t[: e + 1].sum()) <= F.sops
                    assert L.peak == int(F.occupancy[: e + 1].max())


def test_sops_at_the_exit_ring_counts_at_emission_scdq_when_due():
    # one input spike at t=0 with a d=3 tap; exit after step 1: the ring buffer wrote (and counted)
    # the tap at t=0, the SCDQ would have applied it at t=3, after the exit
    W = np.zeros((2, 1, 2), np.int8)
    W[0, 0, 0] = 50
    W[1, 0, 1] = 7
    model = Model([Layer(np.array([0, 3]), W, threshold=1, decay=4096, spiking=False)], 1, 6)
    X = np.zeros((6, 1), bool)
    X[0, 0] = True
    for mode in ("layered", "async"):
        ring = ref.simulate(model, X, mode, "ring", early_exit=(10, 2))[0]
        scdq = ref.simulate(model, X, mode, "scdq", early_exit=(10, 2))[0]
        assert ring.exit_step == scdq.exit_step == 1 and ring.early_exit
        assert (ring.sops, scdq.sops) == (2, 1)
        assert ring.readout[-1].tolist() == scdq.readout[-1].tolist() == [100, 0]


def test_early_exit_argument_is_validated():
    model = random_model(np.random.default_rng(1), 1, 5)
    X = np.ones((5, model.n_inputs), bool)
    for bad in ((-1, 2), (2, -1), (1.5, 2), 3, (1, 2, 3), (1 << 32, 1)):
        with pytest.raises(ValueError, match="early_exit"):
            ref.simulate(model, X, early_exit=bad)
    spec = NetworkSpec.for_model(model)
    with pytest.raises(ConfigError, match="early_exit margin"):
        config_writes(spec, model, "async", early_exit=(-4, 1))
    # (0, s) and (m, 0) are off
    base = ref.simulate(model, X)
    for off in ((0, 3), (5, 0)):
        r = ref.simulate(model, X, early_exit=off)
        assert np.array_equal(r.readout, base.readout) and not r.early_exit.any()


def assert_exit_matches(model, X, hdl, hdl_off, exp, unit="scdq"):
    for b, (h, h0, r) in enumerate(zip(hdl, hdl_off, exp)):
        assert (h.exit_step, h.early_exit) == (r.exit_step, r.early_exit), f"sample {b} exit"
        for l in range(len(model.layers) - 1):
            assert h.emissions[l][0].tolist() == r.layers[l].emit_t.tolist(), f"sample {b} layer {l}"
            assert h.emissions[l][1].tolist() == r.layers[l].emit_j.tolist(), f"sample {b} layer {l}"
        assert np.array_equal(h.readout, r.readout), f"sample {b} readout"
        assert [c["sops"] for c in h.counters] == r.sops.tolist(), f"sample {b} SOPs"
        assert [c["spikes"] for c in h.counters[:-1]] == [len(L.emit_t) for L in r.layers[:-1]]
        for l, L in enumerate(model.layers):
            if L.max_delay:
                assert h.counters[l]["peak"] == r.layers[l].peak or h.counters[l]["peak"] == 0
        # the exit changes no earlier step; cycles stop at the end of the exit step. The one
        # difference: after a sample that exited early a ring buffer still holds future slots, and
        # the next sample starts with a full clear, so its step 0 ends later by a constant
        e = r.exit_step
        shift = h.step_cycles[0] - h0.step_cycles[0]
        after_exit = b > 0 and exp[b - 1].exit_step < model.T - 1
        assert shift == 0 or (after_exit and unit == "ring" and shift > 0), f"sample {b} clear"
        assert np.array_equal(h.step_cycles[: e + 1] - shift, h0.step_cycles[: e + 1])
        assert h.cycles - shift == h0.step_cycles[e] + 1
        assert (h.cycles - shift < h0.cycles) == (e < model.T - 1)


def exit_case(seed: int, B: int = 3, n_layers: int = 2):
    """A random model, input and a margin at which some samples exit early and some do not."""
    rng = np.random.default_rng(seed)
    T = int(rng.integers(8, 14))
    model = random_model(rng, n_layers, T)
    X = rng.random((B, T, model.n_inputs)) < rng.uniform(0.3, 0.7)
    full = ref.simulate(model, X, "async")
    lead = np.diff(np.sort(full.readout, axis=-1)[..., -2:], axis=-1)[..., 0]
    m = max(1, int(np.percentile(lead, 70)))
    return model, X, (m, int(rng.integers(1, 4)))


@pytest.mark.parametrize("unit", ["scdq", "ring"])
def test_pysim_network_exits_exactly_like_the_reference(unit):
    for seed in {"scdq": (1,), "ring": (8,)}[unit]:
        model, X, ee = exit_case(seed)
        spec = NetworkSpec.for_model(model, unit)
        for mode in ("layered", "async"):
            exp = ref.simulate(model, X, mode, unit, early_exit=ee)
            assert exp.early_exit.any()
            assert_exit_matches(model, X, run_network(spec, model, X, mode, early_exit=ee),
                                run_network(spec, model, X, mode), exp, unit)


def test_pysim_early_exit_with_one_class_a_wider_build_and_a_full_scdq():
    # a one-class readout (runner-up is the smallest readout value) at a capacity below the peak
    rng = np.random.default_rng(9)
    model = random_model(rng, 2, 10)
    W = model.layers[1].weights[..., :1].copy()
    model = Model([model.layers[0], Layer(model.layers[1].delays, W, 1, 4000, spiking=False)], model.n_inputs, 10)
    X = rng.random((2, 10, model.n_inputs)) < 0.6
    peak = ref.simulate(model, X, "async").occupancy.max(axis=(0, 2))
    caps = [max(1, int(p) // 2) for p in peak]
    full = ref.simulate(model, X, "async", scdq_capacity=caps)
    # the lead of one class is R + 2^31: exit once the sum passes its median over the run
    ee = ((1 << 31) + max(1, int(np.median(full.readout))), 2)
    # a build with 3 readout neurons: its 2 padding classes (sums 0) must take no part in the rule
    from hw.network import LayerSpec
    own = NetworkSpec.for_model(model, "scdq", scdq_capacity=caps)
    spec = NetworkSpec((own.layers[0], LayerSpec(model.layers[1].n_in, 3, own.layers[1].delays,
                                                  own.layers[1].nnz_max, caps[1])), "scdq", T_max=model.T)
    for mode in ("layered", "async"):
        exp = ref.simulate(model, X, mode, scdq_capacity=caps, early_exit=ee)
        assert exp.dropped.sum() > 0 and exp.early_exit.any()
        assert_exit_matches(model, X, run_network(spec, model, X, mode, early_exit=ee),
                            run_network(spec, model, X, mode), exp)


def test_verilator_network_exits_exactly_like_the_reference():
    from cosim.backends.verilator import VerilatorBackend
    model, X, ee = exit_case(4, B=6, n_layers=3)
    spec = NetworkSpec.for_model(model, "scdq", max_events=256, max_spikes=256)
    be = VerilatorBackend(spec, log=None)
    for mode in ("layered", "async"):
        exp = ref.simulate(model, X, mode, early_exit=ee)
        assert exp.early_exit.any() and not exp.early_exit.all()
        assert_exit_matches(model, X, be.run(model, X, mode, early_exit=ee), be.run(model, X, mode), exp)


def test_cosim_early_exit_curve(tmp_path):
    from cosim.run import CosimError, cosimulate
    model, X, ee = exit_case(1)
    y = np.arange(len(X)) % model.n_classes
    out = tmp_path / "out"
    rep = cosimulate(model, X, y, backend="amaranth", modes=("async",), delay_units=("scdq",), progress=False,
                     log=None, out=out, early_exit=[f"{ee[0]},{ee[1]}", "0,0"])
    (run,) = rep["early_exit"]
    off, on = run["points"]
    assert off["off"] and (on["margin"], on["steps"]) == ee
    main = rep["runs"][0]
    assert off["cycles"]["mean"] == main["latency"]["cycles"]["mean"]
    assert off["sops_per_inference"] == pytest.approx(sum(main["throughput"]["sops_per_layer"]))
    exp = ref.simulate(model, X, "async", early_exit=ee)
    assert on["parity"]["bit_exact"] == len(X) and on["parity"]["exit_step_agree"] == len(X)
    assert on["accuracy"]["hdl"] == on["accuracy"]["reference"] == float((exp.predictions == y).mean())
    assert on["exit_step"]["mean"] == pytest.approx(exp.exit_step.mean())
    assert on["sops_per_inference"] == pytest.approx(exp.sops.sum(1).mean())
    assert on["cycles"]["mean"] < off["cycles"]["mean"]
    assert (out / "early_exit.png").stat().st_size > 1000
    for bad in (["5"], ["a,b"], ["-1,2"], ["3,-2"]):
        with pytest.raises(CosimError, match="--early-exit"):
            cosimulate(model, X, y, backend="amaranth", modes=("async",), progress=False, log=None, early_exit=bad)
