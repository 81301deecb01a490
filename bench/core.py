"""Core and network throughput figures (Verilator C++ harness; pysim for comparison).

    python bench/core.py [--samples B] [--seed S] [--no-pysim] [--model M [--model-samples N] [--defer-sweep]]
                         [--no-synthetic] [--profile N] [--ring-lanes 1,2]

Prints
1. SOP/cycle per core (SOP counter / busy-cycle counter) on a dense stream
   (64 x 64 layer, every tap non-zero at 3 levels, every channel every step,
   plus a 64 x 4 readout) and on an SHD-like stream (below);
2. cycles per inference of a 700-48-48-20 network on SHD-like input against
   the lower bound max over cores of SOPs (a core does at most one SOP per
   cycle), layered and async, ring and scdq; for the ring runs also a
   tighter causal bound (``flow_bound``: a ring core fans out each spike as
   it arrives, so its work of step s waits for the previous core's step s,
   and the cores cannot overlap all their work), and next to it the same
   bound for ring cores that DEFER the fan-out of delayed taps (``defer_bound``:
   by one step, as a FIFO of whole events, by 16 steps, up to the tap's slot);
3. pysim vs Verilator simulated cycles/s on the same design and stimulus,
   measured side by side in this run (pysim on one sample only);
4. with ``--model``, the ratio of 2. for a trained model on the first
   ``--model-samples`` samples of its offline test split (SCDQ capacity: the
   reference's peak on those samples, so nothing is dropped);
   With ``--defer-sweep``, ``defer_bound`` by deferral depth (reference only);
With ``--ring-lanes 1,2`` every ring run is measured once per lane count (the
build parameter ``ring_lanes``: RING adds of one CSR row issued two per cycle),
side by side in one run; the table then also gives the ratio against a
*lane-aware* bound, max over cores of ``ceil(RING SOPs / lanes) + other SOPs``
(the plain bound assumes one SOP per cycle, which two lanes may beat), and a
*pair bound*, the same with ``ceil(n / lanes)`` per (event, level) row of ``n``
RING taps (pairs never span two rows), which is what the hardware can reach.
5. with ``--profile N``, where the cycles go: N samples per (mode, unit) in
   pysim, each core's cycles per sample split by its step controller's phase
   (``hw.step_controller.Phase``), with the cycles in which its update
   pipeline issued a synapse pointer (a SOP) or a controller op, and the INPUT
   cycles with no input event offered (the model of 4., else the SHD-like one).

SHD-like network: random int8 weights with ~5 % of the (level, pre, post) taps
non-zero (a pruned model), 15 delay levels up to 60 (stride 2 grid), T = 100,
input with ~5 % of the 700 channels active per step (channel rates vary as in
SHD), thresholds calibrated on the reference so that hidden layers spike at a
few %. Every HDL sample is also checked against hw.reference.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before bench/ (script dir), which holds a cosim.py of its own

import numpy as np  # noqa: E402

from hw import reference as ref  # noqa: E402
from hw.model_file import Layer, Model  # noqa: E402
from hw.network import NetworkSpec, config_writes, stimulus_writes  # noqa: E402

COMBOS = [(m, u) for m in ("layered", "async") for u in ("ring", "scdq")]


# ---------------------------------------------------------------- harness wrapper (counts clock ticks too)
def harness_run(exe, spec: NetworkSpec, model: Model, mode: str, X: np.ndarray):
    """Run samples through the compiled harness; returns (HdlSamples, clock ticks, wall seconds,
    CPU seconds of the harness process)."""
    import resource
    from cosim.backends.verilator import encode_writes, run_harness, sample_script
    shape = SimpleNamespace(T=model.T, n_classes=spec.n_classes)
    script = encode_writes(config_writes(spec, model, mode)) + b"".join(sample_script(spec, x) for x in X)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    hdl, ticks = run_harness(exe, spec, shape, script)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return hdl, ticks, wall, cpu


def ring_step_work(model, x, res) -> np.ndarray:
    """Issue slots per (core, step) of a layered ring run of one sample: the SOPs a core applies in
    step s (every tap of an input spike of step s whose arrival s + d is before T, at emission) plus
    its FIRE pass (one op per neuron). ``x``: the input raster [T, C]; ``res``: the reference's result."""
    T = model.T
    work = np.zeros((len(model.layers), T), dtype=np.int64)
    for l, L in enumerate(model.layers):
        nnz = (L.weights != 0).sum(axis=2)  # [K, n_in]
        ts, ii = np.nonzero(x) if l == 0 else (res.layers[l - 1].emit_t, res.layers[l - 1].emit_j)
        for k, d in enumerate(L.delays):
            live = ts + d < T
            np.add.at(work[l], ts[live], nnz[k, ii[live]])
        work[l] += L.n_out
    return work


def flow_bound(work: np.ndarray, fire: list[int] | None) -> int:
    """A lower bound on the cycles of a ring run (steps as jobs through the cores in order, a flow shop):
    a core issues at most one op per cycle and runs its steps in order, and a ring core fans each spike
    out when it arrives. ``work``: [cores, T] issue slots of each core's steps.

    * layered (``fire``: the FIRE ops per step of each core, included in ``work``): core l's step-s
      fan-out needs core l-1's step-s spikes, which come from its FIRE pass after its step-s SOPs; its
      own FIRE pass needs core l-1's end of step s;
    * async (``fire=None``, ``work`` = SOPs only): core l's step-s SOPs need a spike core l-1 emits in
      its step s, which starts no earlier than its end of step s - 1; core l ends step s no earlier
      than core l-1 (whose end-of-step token it waits for).

    Returns the last core's earliest end of step T - 1."""
    done_prev = None
    for l, w in enumerate(work):
        done = np.zeros(len(w), dtype=np.int64)
        for s in range(len(w)):
            prev = done[s - 1] if s else 0
            if done_prev is None:
                done[s] = prev + w[s]
            elif fire is None:  # ... and it ends step s only after its input's end-of-step token
                done[s] = max(max(prev, done_prev[s - 1] if s else 0) + w[s], done_prev[s])
            else:
                done[s] = max(max(prev, done_prev[s] - fire[l - 1]) + w[s], done_prev[s] + fire[l])
        done_prev = done
    return int(done_prev[-1])


def ring_level_work(model, x, res) -> list[np.ndarray]:
    """SOPs per (step, level) of each core of a ring run of one sample: ``out[l][s, k]`` is the number
    of non-zero taps at level ``k`` of the input spikes core ``l`` receives in step ``s`` whose arrival
    ``s + d_k`` is before T (the reference's SOPs, by step of emission and level)."""
    T = model.T
    out = []
    for l, L in enumerate(model.layers):
        nnz = (L.weights != 0).sum(axis=2)  # [K, n_in]
        ts, ii = np.nonzero(x) if l == 0 else (res.layers[l - 1].emit_t, res.layers[l - 1].emit_j)
        w = np.zeros((T, len(L.delays)), dtype=np.int64)
        for k, d in enumerate(L.delays):
            live = ts + d < T
            np.add.at(w[:, k], ts[live], nnz[k, ii[live]])
        out.append(w)
    return out


def defer_bound(model, levels: list[np.ndarray], layered: bool, depth) -> int:
    """A lower bound on the cycles of a ring run whose cores may DEFER the fan-out of a spike's
    delayed taps by up to ``depth`` steps (``depth=0``: every tap is fanned out in the step its spike
    arrives, which is :func:`flow_bound`; ``None``: no limit but the tap's own slot; a list: one
    depth per core). ``levels``: :func:`ring_level_work`.

    The model: each core issues at most one op per cycle. The taps of the spikes a core receives in
    step ``s`` are released when they can first arrive: layered, when the previous core starts its
    step-``s`` FIRE pass (its spikes come out of that pass); async, at the previous core's end of
    step ``s - 1`` (step 0 of core 0: at 0). A tap of delay ``d`` must be in ring slot ``s + d``
    before that slot is read, and at most ``depth`` steps after its arrival step:

    * layered: the slot is read by the FIRE pass of step ``s + d``; the tap is due before the FIRE
      pass of step ``s + min(d, depth)``; each core's FIRE pass of step ``s`` (``n_out`` ops) starts
      no earlier than the previous core's end of step ``s`` (its end-of-step token) and ends the step;
    * async: the slot is drained at the start of step ``s + d``; the tap is due by the end of step
      ``s + min(max(d - 1, 0), depth)`` (a ``d = 0`` tap updates the membrane in its own step, a
      ``d = 1`` tap is due before the next step's drain); a core ends step ``s`` no earlier than the
      previous core (its input's end-of-step token); the drain ops are not counted.

    Ops are unit-sized, so a single core is a preemptive one-machine schedule with release times;
    the earliest time at which every op due by a point is done is the max over release steps ``s'``
    of (release of ``s'`` + every op released at ``s'`` or later and due by that point). Chained
    over the cores in order (each core's bound from the previous core's bounds), this returns the
    last core's earliest end of step ``T - 1``."""
    T = model.T
    prev = None  # the previous core's time points (layered: FIRE starts; async: ends of step)
    prev_fire = 0
    for l, (L, w) in enumerate(zip(model.layers, levels)):
        dl = np.asarray(L.delays)
        q = depth[l] if isinstance(depth, (list, tuple)) else depth
        q = dl if q is None else q
        lag = np.minimum(dl, q) if layered else np.minimum(np.maximum(dl - 1, 0), q)
        # due[s', u]: ops released at step s' due by the point of step u
        due = np.zeros((T, T), dtype=np.int64)
        for k in range(len(dl)):
            tgt = np.minimum(np.arange(T) + lag[k], T - 1)
            np.add.at(due, (np.arange(T), tgt), w[:, k])
        if prev is None:
            rel = np.zeros(T, dtype=np.int64)
        elif layered:
            rel = prev.copy()
        else:
            rel = np.concatenate([[0], prev[:-1]])
        F = L.n_out if layered else 0
        cum = np.cumsum(due, axis=1)  # cum[s', u]: released at s', due by u
        X = np.zeros(T, dtype=np.int64)
        for u in range(T):
            if u:  # a core runs its steps in order: step u's input is taken after the end of step u - 1
                rel[u] = max(rel[u], X[u - 1] + F)
            sp = np.arange(u + 1)
            # work released at s' .. u that is due by u, plus the FIRE passes of steps s' .. u - 1
            work = np.cumsum(cum[sp, u][::-1])[::-1] + F * (u - sp)
            X[u] = (rel[sp] + work).max()
            if u:
                X[u] = max(X[u], X[u - 1] + F)
            if prev is not None:  # layered: FIRE after the input's end of step; async: the end of step
                X[u] = max(X[u], prev[u] + prev_fire)
        prev, prev_fire = X, F
    return int(prev[-1] + prev_fire)


def defer_variants(model, layered: bool) -> list[tuple[str, object]]:
    """The deferring ring schedules bench/core.py prints (name, ``depth`` of :func:`defer_bound`):
    one step; a FIFO of whole events (an event's taps are fanned out together, so all are due with
    its earliest delayed level ``d_1``: depth ``d_1`` layered, ``d_1 - 1`` async); 16 steps per tap;
    and up to the tap's own slot (per-level deadlines: an SCDQ-like queue of pending rows)."""
    d1 = [int(L.delays[1]) if len(L.delays) > 1 and L.delays[0] == 0 else int(L.delays[0]) for L in model.layers]
    fifo = [max(0, d - (0 if layered else 1)) for d in d1]
    return [("1 step", 1), (f"event FIFO (d_1 = {'/'.join(map(str, d1))})", fifo), ("16 steps", 16),
            ("to the slot", None)]


def defer_table(model, X, depths=(0, 1, 2, 4, 8, 16, 32, None)) -> None:
    """Reference-only sweep: the deferring ring bound against the SOP bound per deferral depth, and
    how many input events core 0 received in steps ``u - depth .. u`` at any step ``u`` (``depth``
    replaced by the largest delay for "slot"): the most a deferred-event memory of that depth must
    hold never to fall back to fanning out at arrival."""
    print(f"\n== deferring ring schedule, {len(X)} samples: defer_bound / bound by deferral depth "
          "(steps a tap may wait, capped by its own delay; 0 = flow_bound)")
    print(f"{'depth':>8s} {'layered':>8s} {'async':>8s} {'core0 events of steps u-depth..u (peak)':>40s}")
    exps = {mode: ref.simulate(model, X, mode, "ring") for mode in ("layered", "async")}
    levels = {mode: [ring_level_work(model, x, r) for x, r in zip(X, exps[mode])] for mode in exps}
    ev = X.sum(axis=2)
    for q in depths:
        ratio = {}
        for mode, exp in exps.items():
            bound = np.array([max(r.sops) for r in exp])
            b = np.array([defer_bound(model, lv, mode == "layered", q) for lv in levels[mode]])
            ratio[mode] = (b / bound).mean()
        # during step u, the events of steps u - depth .. u may still have taps pending
        w = int(model.layers[0].max_delay) + 1 if q is None else (q + 1 if q else 0)
        peak = max(int(np.convolve(e, np.ones(w, dtype=np.int64))[: len(e)].max()) for e in ev) if w else 0
        print(f"{'slot' if q is None else q:>8} {ratio['layered']:8.3f} {ratio['async']:8.3f} {peak:40d}", flush=True)


def check(model, X, mode, unit, hdl):
    exp = ref.simulate(model, X, mode, unit)
    for b, (h, r) in enumerate(zip(hdl, exp)):
        for l in range(len(model.layers) - 1):
            assert h.emissions[l][0].tolist() == r.layers[l].emit_t.tolist(), f"{mode}/{unit} sample {b} layer {l}"
            assert h.emissions[l][1].tolist() == r.layers[l].emit_j.tolist(), f"{mode}/{unit} sample {b} layer {l}"
        assert np.array_equal(h.readout[:model.T, :model.n_classes], r.readout), f"{mode}/{unit} sample {b} readout"
        assert [c["sops"] for c in h.counters] == r.sops.tolist(), f"{mode}/{unit} sample {b} sops"
    return exp


# ---------------------------------------------------------------- models and streams
def dense_model(n=64, delays=(0, 1, 2), T=16, seed=0) -> Model:
    rng = np.random.default_rng(seed)
    K = len(delays)
    W0 = (rng.integers(1, 4, (K, n, n)) * rng.choice([-1, 1], (K, n, n), p=[0.3, 0.7])).astype(np.int8)
    W1 = rng.integers(-20, 21, (1, n, 4)).astype(np.int8)
    return Model([Layer(np.array(delays), W0, threshold=150, decay=3500, reset="subtract"),
                  Layer(np.array([0]), W1, threshold=1, decay=4000, spiking=False)], n, T)


def shd_input(rng, B, T=100, C=700, activity=0.05) -> np.ndarray:
    """~``activity`` of the channels per step; rates vary per channel (lognormal)
    and slowly in time, like cochlear spike trains."""
    rate = rng.lognormal(0, 1.0, C)
    rate *= activity / rate.mean()
    env = 0.5 + np.abs(np.sin(np.linspace(0, np.pi * rng.uniform(1, 3), T)))[:, None]
    p = np.clip(rate[None, :] * env / env.mean(), 0, 1)
    return rng.random((B, T, C)) < p[None]


def _spike_rate(model, X, upto):
    r = ref.simulate(Model(model.layers[:upto + 1] + [_dummy_readout(model.layers[upto].n_out)], model.n_inputs,
                           model.T), X, "layered")
    return r.spikes(upto).mean()


def _dummy_readout(n):
    return Layer(np.array([0]), np.zeros((1, n, 1), np.int8), 1, 0, spiking=False)


def shd_model(seed=0, sizes=(700, 48, 48, 20), K=15, D=60, density=0.05, T=100, target=0.03) -> Model:
    rng = np.random.default_rng(seed)
    grid = np.arange(0, D + 1, 2)
    layers = []
    for l in range(len(sizes) - 1):
        delays = np.sort(np.concatenate([[0, D], rng.choice(grid[1:-1], K - 2, replace=False)]))
        shape = (K, sizes[l], sizes[l + 1])
        W = np.clip(np.rint(rng.normal(6, 30, shape)), -128, 127) * (rng.random(shape) < density)
        layers.append(Layer(delays, W.astype(np.int8), threshold=1, decay=3800, reset="zero",
                            spiking=l < len(sizes) - 2))
    model = Model(layers, sizes[0], T)
    Xc = shd_input(np.random.default_rng(seed + 1), 4, T, sizes[0])
    for l in range(len(layers) - 1):  # calibrate thresholds layer by layer (bisection on the rate)
        lo, hi = 1, 2 ** 16
        while lo < hi:
            mid = (lo + hi) // 2
            layers[l].threshold = mid
            if _spike_rate(model, Xc, l) > target:
                lo = mid + 1
            else:
                hi = mid
        layers[l].threshold = lo
    layers[-1].threshold = 1
    return model


def row_cycles(layer: Layer, X: np.ndarray, unit: str, T: int) -> tuple[int, int]:
    """(event, level) rows a core walks through for input rasters ``X`` [B, T, n_in], and how many
    of them carry no SOP (an empty row, or for the ring a tap arriving at or after T): each row costs
    at least one cycle."""
    nnz = (layer.weights != 0).sum(axis=2)  # [K, n_in]
    rows = dead = 0
    for x in X:
        for t in range(T):
            for k, d in enumerate(layer.delays):
                src = t - d if unit == "scdq" else t  # scdq: rows come due at t; ring: fan out at emission
                if src < 0:
                    continue
                ev = np.nonzero(x[src])[0]
                rows += len(ev)
                dead += len(ev) if (unit == "ring" and t + d >= T) else int((nnz[k, ev] == 0).sum())
    return rows // len(X), dead // len(X)


# ---------------------------------------------------------------- cycle breakdown (pysim monitor)
def phase_profile(spec: NetworkSpec, model: Model, X: np.ndarray, mode: str):
    """Per core: {phase name: [cycles, pointer issues, ctl issues, input-starved]} summed over the
    samples of ``X``, counted from the network's clear to ``done``; and the HDL samples."""
    from hw.pysim import run_network
    from hw.step_controller import Phase
    L = len(spec.layers)
    prof = [dict() for _ in range(L)]

    async def monitor(ctx, dut):
        sigs = [dut.done, dut.cores[0].clear]
        for c in dut.cores:
            st = c.stages
            port = st["pipe"].out if c.spiking else st["pipe"].rec
            sigs += [st["ctrl"].phase, st["pipe"].ptrs.valid, st["pipe"].ptrs.ready, st["pipe"].ctl.valid,
                     st["pipe"].ctl.ready, c.inp.valid, st["pipe"].stall & port.valid & ~port.ready]
        counting = False
        async for _, _, done, clear, *v in ctx.tick().sample(*sigs):
            if clear:
                counting = True
            elif done:
                counting = False
            if not counting:
                continue
            for l in range(L):
                ph, pv, pr, cv, cr, iv, stall = v[7 * l: 7 * l + 7]
                row = prof[l].setdefault(Phase(ph).name, [0, 0, 0, 0, 0])
                row[0] += 1
                row[1] += bool(pv and pr)
                row[2] += bool(cv and cr and not pv)
                row[3] += bool(Phase(ph) == Phase.INPUT and not iv)
                row[4] += bool(stall)

    hdl = run_network(spec, model, X, mode, monitor=monitor)
    return prof, hdl


def profile_table(model, X, specs, label, combos=COMBOS, lanes=(1,)) -> None:
    B = len(X)
    print(f"\n== where the cycles go ({label}, pysim, {B} sample(s); per sample): per core and step-controller phase, "
          "cycles [pointer issues (SOPs) / controller ops / INPUT cycles with no input event, "
          "pipeline stall cycles on output backpressure]")
    for mode, unit, n in [(m, u, n) for m, u in combos for n in (lanes if u == "ring" else (1,))]:
        t0 = time.perf_counter()
        spec = specs[unit] if n == 1 else dataclasses.replace(specs[unit], ring_lanes=n)
        prof, hdl = phase_profile(spec, model, X, mode)
        check(model, X, mode, unit, hdl)
        cyc = np.mean([h.cycles for h in hdl])
        bound = np.mean([max(c["sops"] for c in h.counters) for h in hdl])
        print(f"{mode}/{unit}" + (f" ({n} ring lanes: a pointer issue is a pair or one)" if n > 1 else "")
              + f": cycles {cyc:.0f}, bound {bound:.0f}, ratio {cyc / bound:.3f} ({time.perf_counter() - t0:.0f} s)")
        for l, p in enumerate(prof):
            parts = []
            for name, (n, ptr, ctl, starve, stall) in sorted(p.items(), key=lambda kv: -kv[1][0]):
                extra = (f" [{ptr / B:.0f}/{ctl / B:.0f}" + (f"/{starve / B:.0f}" if name == "INPUT" else "")
                         + (f", stall {stall / B:.0f}]" if stall else "]"))
                parts.append(f"{name} {n / B:.0f}" + (extra if ptr or ctl or starve or stall else ""))
            print(f"  core{l}: " + ", ".join(parts), flush=True)


# ---------------------------------------------------------------- main
def per_core(hdl) -> list[float]:
    n = len(hdl[0].counters)
    return [sum(h.counters[l]["sops"] for h in hdl) / max(1, sum(h.counters[l]["busy"] for h in hdl)) for l in range(n)]


def lane_bounds(model, x, res, mode: str, lanes: int) -> tuple[int, int]:
    """(lane-aware bound, pair bound) of one sample of a ring run with ``lanes`` ring adds per cycle:
    max over cores of ``ceil(RING SOPs / lanes) + other SOPs``, and the same with the ceiling taken
    per (event, level) row (a pair never spans two rows). RING SOPs: every tap in layered mode, the
    ``d > 0`` taps in async mode (a ``d = 0`` tap is an ADD op, one per cycle). ``x``: the input
    raster [T, C]; ``res``: the reference's result of this sample (same counting as its SOPs)."""
    T = model.T
    lane_b = pair_b = 0
    for l, L in enumerate(model.layers):
        nnz = (L.weights != 0).sum(axis=2)  # [K, n_in]
        ts, ii = np.nonzero(x) if l == 0 else (res.layers[l - 1].emit_t, res.layers[l - 1].emit_j)
        ring = other = pairs = 0
        for k, d in enumerate(L.delays):
            n = nnz[k, ii[ts + d < T]]
            if mode == "async" and d == 0:
                other += int(n.sum())
            else:
                ring += int(n.sum())
                pairs += int(((n + lanes - 1) // lanes).sum())
        assert ring + other == int(res.sops[l])
        lane_b = max(lane_b, -(-ring // lanes) + other)
        pair_b = max(pair_b, pairs + other)
    return lane_b, pair_b


def ratio_table(model, X, specs, exes, combos=COMBOS, lanes=(1,)) -> dict:
    """Cycles per inference against the bound, per (mode, unit[, ring lanes]); every sample checked against the
    reference. ``specs``/``exes``: keyed by unit, and ``("ring", 2)`` for a two-lane ring build."""
    print(f"{'mode':8s} {'unit':5s} {'lanes':>5s} {'SOP/cyc core0':>13s} {'core1':>6s} {'core2':>6s} {'cycles/inf':>10s} "
          f"{'bound':>8s} {'ratio':>6s} {'lane-bnd':>8s} {'ratio':>6s} {'pair-bnd':>8s} {'ratio':>6s} {'Mcyc/s':>7s}")
    speed = {}
    runs = [(mode, unit, n) for mode, unit in combos for n in (lanes if unit == "ring" else (1,))]
    for mode, unit, n_lanes in runs:
        key = unit if n_lanes == 1 else (unit, n_lanes)
        hdl, ticks, wall, _ = harness_run(exes[key], specs[key], model, mode, X)
        exp = check(model, X, mode, unit, hdl)
        r = per_core(hdl) + [float("nan")] * 3
        cyc = np.array([h.cycles for h in hdl])
        bound = np.array([max(c["sops"] for c in h.counters) for h in hdl])
        if unit == "ring":
            lb, pb = np.array([lane_bounds(model, x, res, mode, n_lanes) for x, res in zip(X, exp)]).T
        else:
            lb = pb = bound
        speed[(mode, unit) if n_lanes == 1 else (mode, unit, n_lanes)] = (ticks, wall)
        print(f"{mode:8s} {unit:5s} {n_lanes:5d} {r[0]:13.4f} {r[1]:6.3f} {r[2]:6.3f} {cyc.mean():10.0f} "
              f"{bound.mean():8.0f} {(cyc / bound).mean():6.3f} {lb.mean():8.0f} {(cyc / lb).mean():6.3f} "
              f"{pb.mean():8.0f} {(cyc / pb).mean():6.3f} {ticks / wall / 1e6:7.2f}", flush=True)
        if unit == "ring" and n_lanes == 1:
            fire = [L.n_out for L in model.layers]
            works = [ring_step_work(model, x, res) - (0 if mode == "layered" else np.array(fire)[:, None])
                     for x, res in zip(X, exp)]
            for w, res in zip(works, exp):  # the per-step SOPs add up to the reference's counts
                assert (w.sum(axis=1) - [f * model.T * (mode == "layered") for f in fire]).tolist() \
                    == res.sops.tolist()
            flow = np.array([flow_bound(w, fire if mode == "layered" else None) for w in works])
            print(f"{'':14s} {mode}/ring flow bound (bench.core.flow_bound: a ring core fans out spikes as they "
                  f"arrive{'; FIRE ops count' if mode == 'layered' else ''}): {flow.mean():.0f} = "
                  f"{(flow / bound).mean():.3f} x bound; cycles / flow bound {(cyc / flow).mean():.3f}", flush=True)
            levels = [ring_level_work(model, x, res) for x, res in zip(X, exp)]
            lay = mode == "layered"
            parts = []
            for name, depth in defer_variants(model, lay):
                b = np.array([defer_bound(model, lv, lay, depth) for lv in levels])
                parts.append(f"{name} {(b / bound).mean():.3f}")
            print(f"{'':14s} {mode}/ring deferring bounds (bench.core.defer_bound), x bound: " + ", ".join(parts),
                  flush=True)
    print("(bound = max over cores of the sample's SOPs; ratio = mean of cycles / bound per sample; lane-bnd = max over "
          "cores of ceil(RING SOPs / lanes) + other SOPs; pair-bnd = the same, ceil per (event, level) row)")
    return speed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=8, help="SHD-like samples per combination (Verilator)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-pysim", action="store_true", help="skip the (slow) pysim speed comparison")
    ap.add_argument("--model", help="also measure a trained model (e.g. build/model.safetensors) on its offline "
                                    "test split")
    ap.add_argument("--model-samples", type=int, default=16, help="test samples of --model")
    ap.add_argument("--no-synthetic", action="store_true", help="skip the dense and SHD-like streams (1 and 2)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="cycle breakdown by phase per core, N samples per run in pysim (slow: about a minute "
                         "per sample and run)")
    ap.add_argument("--defer-sweep", action="store_true",
                    help="with --model: the deferring ring bound by deferral depth (reference only)")
    ap.add_argument("--runs", default=",".join(f"{m}/{u}" for m, u in COMBOS),
                    help="the (mode/unit) runs to measure, comma separated (default: all four)")
    ap.add_argument("--ring-lanes", default="1", metavar="1,2",
                    help="ring adds per cycle of the ring builds (ring_lanes), comma separated: each ring run is "
                         "measured once per value, side by side (default: 1)")
    a = ap.parse_args(argv)
    runs = [tuple(r.split("/")) for r in a.runs.split(",")]
    if any(r not in COMBOS for r in runs):
        ap.error(f"--runs: expected mode/unit pairs such as layered/ring, got {a.runs!r}")
    try:
        lanes = tuple(int(v) for v in a.ring_lanes.split(","))
    except ValueError:
        lanes = ()
    if not lanes or any(v not in (1, 2) for v in lanes) or len(set(lanes)) != len(lanes):
        ap.error(f"--ring-lanes: expected distinct values from 1, 2 such as 1,2; got {a.ring_lanes!r}")
    import os
    os.chdir(ROOT)
    sys.path.append(str(ROOT / "bench"))
    from fuzz import fix_verilator_pch
    fix_verilator_pch()
    from cosim.backends.verilator import build
    log = lambda s: print(s, file=sys.stderr, flush=True)

    if not a.no_synthetic:
        # 1. dense stream
        print("== SOP/cycle per core (SOP counter / busy cycles), dense stream: 64x64, 3 levels, all taps, all channels every step, T=16")
        dm = dense_model(seed=a.seed)
        Xd = np.ones((2, dm.T, dm.n_inputs), dtype=bool)
        dspecs = {(u, n): NetworkSpec.for_model(dm, u, ring_lanes=n) for u in ("ring", "scdq")
                  for n in (lanes if u == "ring" else (1,))}
        exes = {k: build(spec, log=log) for k, spec in dspecs.items()}
        print(f"{'mode':8s} {'unit':5s} {'lanes':>5s} {'core0 (64x64)':>14s} {'core1 (readout)':>16s} {'stalls0':>8s}")
        for mode, unit in runs:
            for n in (lanes if unit == "ring" else (1,)):
                hdl, _, _, _ = harness_run(exes[(unit, n)], dspecs[(unit, n)], dm, mode, Xd)
                check(dm, Xd, mode, unit, hdl)
                r = per_core(hdl)
                print(f"{mode:8s} {unit:5s} {n:5d} {r[0]:14.4f} {r[1]:16.4f} {hdl[0].counters[0]['stalls']:8d}")

        # 2. SHD-like network
        t0 = time.perf_counter()
        model = shd_model(seed=a.seed)
        rng = np.random.default_rng(a.seed + 7)
        X = shd_input(rng, a.samples, model.T, model.n_inputs)
        exp = ref.simulate(model, X, "layered")
        dens = [exp.spikes(l).mean() for l in range(2)]
        nnz = [int(np.count_nonzero(L.weights)) for L in model.layers]
        print(f"\n== SHD-like 700-48-48-20, 15 levels up to 60, T=100, {a.samples} samples: input activity "
              f"{X.mean():.3f}/step, hidden spike density (layered ref) {dens[0]:.3f} {dens[1]:.3f}, "
              f"nnz {nnz}, thresholds {[L.threshold for L in model.layers[:-1]]} (setup {time.perf_counter() - t0:.0f} s)")
        specs = {u: NetworkSpec.for_model(model, u, scdq_capacity=[4096, 512, 512]) for u in ("ring", "scdq")}
        if 2 in lanes:
            specs[("ring", 2)] = NetworkSpec.for_model(model, "ring", ring_lanes=2)
        exes = {u: build(spec, log=log) for u, spec in specs.items()}
        vl_speed = ratio_table(model, X, specs, exes, runs, lanes)
        L0 = model.layers[0]
        for unit in ("ring", "scdq"):
            rows, dead = row_cycles(L0, X, unit, model.T)
            print(f"core0 {unit}: per sample {rows} (event, level) rows, {dead} of them without a SOP (no issue slot: "
                  f"the row iterator drops empty rows" + ("; the ring's level mask skips them and taps arriving at or "
                                                           "after T" if unit == "ring" else "") + ")"
                  + (f"; the ring is cleared on drain (a full clear would cost {L0.n_out * (L0.max_delay + 1)} cycles)"
                     if unit == "ring" else ""))
        print("per step, layered: a FIRE pass over every neuron of each core (after its input's end of step); "
              "async: no leak pass (lazy leak), the ring's drain of slot t visits every neuron")

        # 3. pysim vs Verilator, same design (layered, scdq) and stimulus (sample 0)
        if not a.no_pysim:
            from hw.pysim import run_network
            mode, unit = "layered", "scdq"
            spec = specs[unit]
            hv, ticks, wall, vcpu = harness_run(exes[unit], spec, model, mode, X[:1].repeat(8, axis=0))
            t0, c0 = time.perf_counter(), time.process_time()
            hp = run_network(spec, model, X[:1], mode)[0]
            pwall, pcpu = time.perf_counter() - t0, time.process_time() - c0
            assert hp.cycles == hv[0].cycles and np.array_equal(hp.readout, hv[0].readout)
            # every clock pysim ran: config + stimulus writes, start, run to done, result reads
            from hw.network import result_plan
            plan = result_plan(spec, model.T, model.n_classes)  # the reads pysim made: status, records, readout, stamps
            n_reads = sum(r.n for r in plan if r.count_word is None) + sum(len(e[0]) for e in hp.emissions)
            p_ticks = len(config_writes(spec, model, mode)) + len(stimulus_writes(spec, X[0])) + 1 + hp.cycles + n_reads
            print(f"\n== simulated cycles/s, {mode}/{unit} SHD-like design, sample 0 ({hp.cycles} cycles to done; "
                  f"counting config, stimulus, run and readback clocks)")
            print(f"{'':10s} {'cycles':>9s} {'wall s':>8s} {'cycles/s':>12s} {'CPU s':>8s} {'cycles/CPU-s':>13s}")
            print(f"{'pysim':10s} {p_ticks:>9d} {pwall:8.2f} {p_ticks / pwall:12.0f} {pcpu:8.2f} {p_ticks / pcpu:13.0f}")
            print(f"{'verilator':10s} {ticks:>9d} {wall:8.2f} {ticks / wall:12.0f} {vcpu:8.2f} {ticks / vcpu:13.0f}"
                  f"   (same sample x8 in one harness process)")
            print(f"verilator / pysim: {ticks / wall / (p_ticks / pwall):.0f}x wall, {ticks / vcpu / (p_ticks / pcpu):.0f}x CPU"
                  f" (machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

    # 4. a trained model on its offline test split
    if a.model:
        from hw.model_file import load
        from sw.evaluate import load_eval_data
        model = load(a.model)
        Xm, _ = load_eval_data("offline", model, a.model)
        Xm = Xm[: a.model_samples]
        caps = [max(1, int(p)) for p in ref.simulate(model, Xm, "async", "scdq").occupancy.max(axis=(0, 2))]
        caps = [max(c, int(p)) for c, p in zip(caps, ref.simulate(model, Xm, "layered", "scdq").occupancy.max(axis=(0, 2)))]
        print(f"\n== {a.model}: {'-'.join(str(n) for n in [model.n_inputs] + [L.n_out for L in model.layers])}, "
              f"T={model.T}, {len(Xm)} offline test samples, input activity {Xm.mean():.3f}/step, SCDQ capacity "
              f"{caps} (the peak)")
        specs = {u: NetworkSpec.for_model(model, u, scdq_capacity=caps if u == "scdq" else None,
                                          max_events=1 << max(4, int(Xm.sum(axis=(1, 2)).max()).bit_length()),
                                          max_spikes=1 << 14) for u in ("ring", "scdq")}
        if 2 in lanes:
            specs[("ring", 2)] = dataclasses.replace(specs["ring"], ring_lanes=2)
        exes = {u: build(spec, log=log) for u, spec in specs.items()}
        ratio_table(model, Xm, specs, exes, runs, lanes)
        if a.defer_sweep:
            defer_table(model, Xm)
        if a.profile:
            profile_table(model, Xm[:a.profile], specs, a.model, runs, lanes)
    elif a.profile:
        model = shd_model(seed=a.seed)
        X = shd_input(np.random.default_rng(a.seed + 7), a.profile, model.T, model.n_inputs)
        specs = {u: NetworkSpec.for_model(model, u, scdq_capacity=[4096, 512, 512]) for u in ("ring", "scdq")}
        profile_table(model, X, specs, "SHD-like", runs, lanes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
