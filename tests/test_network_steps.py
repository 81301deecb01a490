# amaranth: UnusedElaboratable=no
"""The network without a step barrier (Amaranth pysim): cores run their own steps.

A monitor watches every core's ``step_start`` and the readout core's end of
step. It checks the rule of hw/network.py ("Steps"): a hidden core starts step
``s`` only after the readout finished step ``s - 1 - run_ahead``; and that the
overlap is real (a hidden core starts step ``s`` while the readout has not
finished ``s - run_ahead``: it is ``run_ahead`` steps ahead). Under an early
exit a hidden core is then inside step ``e + 1`` or ``e + 2`` when the exit is
decided, and the result must still equal the reference bit for bit
(counters at the end of step ``e``; the next sample starts clean after the
drain), through ``hw.parity.first_divergence``.
"""
from __future__ import annotations

import numpy as np
import pytest

from hw import reference as ref
from hw.model_file import Layer, Model
from hw.network import NetworkSpec
from hw.parity import first_divergence
from hw.pysim import run_network


def model_and_input(seed, T=10, B=3):
    rng = np.random.default_rng(seed)
    W0 = rng.integers(5, 50, (2, 6, 8)) * (rng.random((2, 6, 8)) < 0.7)
    W1 = rng.integers(-10, 50, (2, 8, 6)) * (rng.random((2, 8, 6)) < 0.7)
    W2 = rng.integers(-40, 40, (1, 6, 8))  # a wide readout: its per-step pass is long
    model = Model([Layer(np.array([0, 2]), W0.astype(np.int8), threshold=30, decay=3000, reset="subtract"),
                   Layer(np.array([0, 3]), W1.astype(np.int8), threshold=30, decay=3500),
                   Layer(np.array([0]), W2.astype(np.int8), threshold=1, decay=3900, spiking=False)], 6, T)
    X = rng.random((B, T, 6)) < 0.4
    return model, X


def exit_case(seed, mode, unit):
    """A case for the early-exit tests: model, input, a rule (margin at the 60th percentile of the
    final leads, 1 step) at which some samples exit, and the reference's results under it."""
    model, X = model_and_input(seed, B=3)
    full = ref.simulate(model, X, mode, unit)
    lead = np.diff(np.sort(full.readout, axis=-1)[..., -2:], axis=-1)[..., 0]
    ee = (max(1, int(np.percentile(lead, 60))), 1)
    return model, X, ee, ref.simulate(model, X, mode, unit, early_exit=ee)


def watch(log):
    """A monitor: per sample, (cycle, 'start', core, step) and (cycle, 'end', step) of the readout."""

    async def monitor(ctx, dut):
        cores = dut.cores
        sig = [dut.start, cores[-1].done] + [c.step_start for c in cores] + [c.t for c in cores]
        cycle, pend, cur = 0, False, 0
        async for _, _, start, rdone, *v in ctx.tick().sample(*sig):
            cycle += 1
            n = len(cores)
            starts, ts = v[:n], v[n:]
            if start:
                log.append([])
                pend = False
            if not log:
                continue
            if pend and rdone:
                log[-1].append((cycle, "end", cur))
                pend = False
            for l in range(n):
                if starts[l]:
                    log[-1].append((cycle, "start", l, int(ts[l])))
                    if l == n - 1:
                        pend, cur = True, int(ts[l])

    return monitor


def analyse(events, L, run_ahead=NetworkSpec.run_ahead):
    """The readout's step ends, and the (core, step, depth) of every hidden core's step start made
    while the readout had not finished ``s - 1``: ``depth`` steps ahead of the readout's last end."""
    end = {e[2]: e[0] for e in events if e[1] == "end"}
    ahead = []
    for e in events:
        if e[1] == "start" and e[2] < L - 1:
            c, _, l, s = e
            r = s - 1 - run_ahead
            if r >= 0:  # the lag rule
                assert r in end and end[r] < c, f"core {l} started step {s} before the readout ended {r}"
            done = max([k for k, ck in end.items() if ck < c], default=-1)  # the readout's last finished step
            if s - 1 > done:
                ahead.append((l, s, s - 1 - done))
    return end, ahead


@pytest.mark.parametrize("mode,unit,run_ahead", [("layered", "scdq", 2), ("async", "ring", 2), ("layered", "ring", 1)])
def test_hidden_cores_run_ahead_within_run_ahead_steps_and_stay_bit_exact(mode, unit, run_ahead):
    model, X = model_and_input(0)
    exp = ref.simulate(model, X, mode, unit)
    log = []
    spec = NetworkSpec.for_model(model, unit, run_ahead=run_ahead)
    hdl = run_network(spec, model, X, mode, monitor=watch(log))
    for b, (h, r) in enumerate(zip(hdl, exp)):
        assert first_divergence(b, h, r, counters=True) is None
    assert len(log) == len(X)
    ahead = [a for ev in log for a in analyse(ev, len(model.layers), run_ahead)[1]]
    assert ahead, "no hidden core ever ran ahead of the readout"
    assert max(d for _, _, d in ahead) == run_ahead, "no hidden core ever used its whole run-ahead"


@pytest.mark.parametrize("unit", ["scdq", "ring"])
def test_early_exit_while_a_hidden_core_is_in_the_next_step(unit):
    """The exit is decided at the end of step e while a hidden core already runs e + 1 (and, in
    other samples, e + 2): its counters and records are reported as of step e, and the next sample
    starts clean."""
    mode = "async"
    found = found2 = False
    for seed in range(6):
        model, X, ee, exp = exit_case(seed, mode, unit)
        if not exp.early_exit[:-1].any():
            continue  # want an exit in a sample that has a successor
        log = []
        hdl = run_network(NetworkSpec.for_model(model, unit), model, X, mode, early_exit=ee, monitor=watch(log))
        for b, (h, r) in enumerate(zip(hdl, exp)):
            assert first_divergence(b, h, r, counters=True) is None, f"seed {seed}"
            assert (h.exit_step, h.early_exit) == (r.exit_step, r.early_exit)
        for b, ev in enumerate(log[:-1]):
            e = exp[b].exit_step
            if exp[b].early_exit and e < model.T - 1:
                _, ahead = analyse(ev, len(model.layers))
                found |= any(s == e + 1 for _, s, _ in ahead)
                found2 |= any(s == e + 2 for _, s, _ in ahead)
        if found and found2:
            break
    assert found, "no case had a hidden core inside the step after an early exit"
    assert found2, "no case had a hidden core two steps past an early exit"


@pytest.mark.parametrize("unit", ["ring", "scdq"])
def test_a_reprogrammed_shorter_model_after_an_early_exit_starts_clean(unit):
    """After an exit the network drains (a hidden core finishes the next step, FIFOs are emptied)
    whatever model the host programs next, also one with T <= exit step + 1 (the fuzz found a
    first version that decided from the next model's T)."""
    from hw.pysim import run_programs
    mode = "async"
    checked = 0
    for seed in range(6):
        model, X, ee, exp = exit_case(seed, mode, unit)
        hits = [b for b in range(len(X)) if exp[b].early_exit and 1 <= exp[b].exit_step < model.T - 1]
        if not hits:
            continue
        b = hits[0]
        e = exp[b].exit_step
        short = Model(model.layers, model.n_inputs, e + 1)  # its T: the exit step + 1
        Xs = X[(b + 1) % len(X):(b + 1) % len(X) + 1, : e + 1]
        log = []
        spec = NetworkSpec.for_model(model, unit)
        first, second = run_programs(spec, [(model, X[b:b + 1], mode, ee, None), (short, Xs, mode, None, None)],
                                     monitor=watch(log))
        assert first_divergence(0, first[0], exp[b], counters=True) is None
        _, ahead = analyse(log[0], len(model.layers))
        if not any(s == e + 1 for _, s, _ in ahead):
            continue  # no hidden core was inside step e + 1: nothing to drain; try another case
        d = first_divergence(0, second[0], ref.simulate(short, Xs, mode, unit)[0], counters=True)
        assert d is None, f"seed {seed}: {d}"
        checked += 1
    assert checked >= 3, f"only {checked} cases left a hidden core inside the step after an early exit"


def test_run_ahead_is_validated():
    from hw.network import Network
    model, _ = model_and_input(0)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="run_ahead"):
            Network(NetworkSpec.for_model(model, "ring", run_ahead=bad))
