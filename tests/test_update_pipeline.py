"""UpdatePipeline alone (Amaranth pysim) against a small golden Python model.

The bench plays the row iterator (``ptrs``), the step controller (``ctl``,
``eos``, ``step_start``, ``bg_en``) and the consumers (``out`` / ``rec``,
``ring``), with seeded random idle cycles on every input stream and random
backpressure on every output stream. It logs every handshake; the golden model
applies the accepted ops in acceptance order with the contract's arithmetic
(``hw.reference.trunc0_leak``, ``hw.reference.sat``) and an *eager* leak of
every neuron at the start of an async step, so the pipeline's lazy leak (and
its background leaks, switched on and off at random) must be invisible.
"""
from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from hw.reference import sat, trunc0_leak
from hw.update_pipeline import Op, UpdatePipeline

N_OUT, NNZ = 6, 24
VB, AB, RB, WB = 10, 12, 12, 6  # narrow widths: the membrane and the readout saturate


class Golden:
    """The pipeline's ops on plain ints (one layer of ``N_OUT`` neurons)."""

    def __init__(self, syn, delays, spiking, unit, threshold, decay, subtract):
        self.syn, self.delays, self.spiking, self.unit = syn, delays, spiking, unit
        self.th, self.a, self.sub = threshold, decay, subtract
        self.v = [0] * N_OUT
        self.acc = [0] * N_OUT
        self.R = [0] * N_OUT
        self.refr = [False] * N_OUT
        self.out, self.rec, self.ring = [], [], []
        self.sops = 0
        self.clipped = 0  # saturations (membrane or readout): the narrow widths are exercised

    def _sat(self, x, bits):
        y = int(sat(x, bits))
        self.clipped += y != x
        return y

    def step_start(self, is_async):
        self.refr = [False] * N_OUT
        if is_async:  # the contract: every neuron leaks at the start of an async step
            self.v = [int(trunc0_leak(np.int64(x), self.a)) for x in self.v]

    def _update(self, j, x, check_refr=True):
        nv = self._sat(self.v[j] + x, VB)
        if self.spiking and (not check_refr or not self.refr[j]) and nv >= self.th:
            self.out.append(j)
            self.refr[j] = True
            nv = nv - self.th if self.sub else 0
        self.v[j] = nv

    def ptr(self, p, kind, k):
        col, w = self.syn[p]
        self.sops += 1
        if kind == Op.ADD:
            self._update(col, w)
        elif kind == Op.ACC:
            self.acc[col] += w
        elif kind == Op.RING:
            self.ring.append((col, self.delays[k], w))
        else:
            raise AssertionError(kind)

    def ctl(self, kind, j, x):
        if kind == Op.DRAIN:
            self._update(j, x)
        elif kind == Op.FIRE:
            if self.unit == "scdq":
                x, self.acc[j] = self.acc[j], 0
            nv = self._sat(int(trunc0_leak(np.int64(self.v[j]), self.a)) + x, VB)
            self.v[j] = nv
            if self.spiking:
                self.v[j] = nv
                self._update(j, 0, check_refr=False)
            else:
                self.R[j] = self._sat(self.R[j] + nv, RB)
                self.rec.append((j, self.R[j]))
        elif kind == Op.RSUM:
            self.R[j] = self._sat(self.R[j] + self.v[j], RB)
            self.rec.append((j, self.R[j]))
        elif kind == Op.CLEAR:
            self.v[j] = self.acc[j] = self.R[j] = 0
        else:
            raise AssertionError(kind)

    def eos(self):
        if self.spiking:
            self.out.append("eos")


def make_steps(rng, mode, unit, spiking, syn, n_steps=5):
    """Per step: the pointer ops and controller ops a controller of this build would send."""
    steps = []
    for _ in range(n_steps):
        n_ptr = int(rng.integers(0, 3 * N_OUT))
        ps = [int(p) for p in rng.integers(0, NNZ, n_ptr)]
        ctl = []
        if mode == "async":
            k = [int(x) for x in rng.integers(0, 2, n_ptr)]
            kinds = [Op.RING if (unit == "ring" and kk == 1) else Op.ADD for kk in k]
            if unit == "ring":
                ctl += [(Op.DRAIN, int(j), int(rng.integers(-600, 600))) for j in rng.permutation(N_OUT)[:4]]
            if not spiking:
                ctl += [(Op.RSUM, j, 0) for j in range(N_OUT)]
            order = rng.permutation(len(ctl))
            ctl = [ctl[i] for i in order]
        else:
            k = [int(x) for x in rng.integers(0, 2, n_ptr)]
            kinds = [Op.RING if unit == "ring" else Op.ACC] * n_ptr
            ctl += [(Op.FIRE, j, int(rng.integers(-600, 600)) if unit == "ring" else 0) for j in range(N_OUT)]
        steps.append(([(p, kind, kk) for p, kind, kk in zip(ps, kinds, k)], ctl))
    return steps


def pair_up(rng, steps):
    """Two ring lanes: turn some RING pointers p (p + 1 < NNZ) into pairs (p, n = 2), as the row
    iterator does within a row; every other pointer stays an item of one."""
    out = []
    for ps, ctl in steps:
        items = []
        for p, kind, k in ps:
            n = 2 if kind == Op.RING and p + 1 < NNZ and rng.random() < 0.7 else 1
            items.append((p, kind, k, n))
        out.append((items, ctl))
    return out


def run(mode, unit, spiking, p_idle, p_stall, seed, max_cycles=20_000, lanes=1):
    rng = np.random.default_rng(seed)
    delays = (0, 3)
    dut = UpdatePipeline(n_out=N_OUT, nnz_max=NNZ, delays=delays, spiking=spiking, delay_unit=unit,
                         membrane_bits=VB, acc_bits=AB, readout_bits=RB, weight_bits=WB, ring_lanes=lanes)
    syn = [(int(rng.integers(N_OUT)), int(rng.integers(-(1 << (WB - 1)), 1 << (WB - 1)))) for _ in range(NNZ)]
    if lanes == 2:  # consecutive words of a CSR row target distinct neurons
        for p in range(1, NNZ):
            if syn[p][0] == syn[p - 1][0]:
                syn[p] = ((syn[p][0] + 1 + int(rng.integers(N_OUT - 1))) % N_OUT, syn[p][1])
    threshold, decay, subtract = int(rng.integers(20, 120)), int(rng.integers(2000, 4097)), int(rng.integers(2))
    is_async = mode == "async"
    steps = make_steps(rng, mode, unit, spiking, syn)
    if lanes == 2:
        steps = pair_up(rng, steps)
    else:
        steps = [([(p, kind, k, 1) for p, kind, k in ps], ctl) for ps, ctl in steps]
    gold = Golden(syn, delays, spiking, unit, threshold, decay, subtract)
    got = {"out": [], "rec": [], "ring": [], "sops": 0, "spikes": 0, "eos_with_c": 0}
    ob = max(1, (N_OUT - 1).bit_length())
    out_port = dut.out if spiking else dut.rec

    async def bench(ctx):
        ctx.set(dut.threshold, threshold)
        ctx.set(dut.decay, decay)
        ctx.set(dut.subtract, subtract)
        ctx.set(dut.is_async, is_async)
        for p, (col, w) in enumerate(syn):
            ctx.set(dut.syn_we, 1)
            ctx.set(dut.syn_addr, p)
            ctx.set(dut.syn_data, col | ((w & ((1 << WB) - 1)) << ob))
            await ctx.tick()
        ctx.set(dut.syn_we, 0)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        # a sample starts from zero state: CLEAR ops for every neuron
        plan = [([], [(Op.CLEAR, j, 0) for j in range(N_OUT)], False)]
        plan += [(ps, ctl, True) for ps, ctl in steps]
        cycle = 0
        for si, (ps, ctl, real) in enumerate(plan):
            ps, ctl = list(ps), list(ctl)
            if real:
                gold.step_start(is_async)
                ctx.set(dut.step_start, 1)
                await ctx.tick()
                ctx.set(dut.step_start, 0)
            phase, last_stale = "run", True
            while phase != "done":
                cycle += 1
                assert cycle < max_cycles, f"stuck in step {si} ({phase}): {len(ps)} ptrs, {len(ctl)} ops left"
                pv = bool(ps) and phase == "run" and rng.random() >= p_idle
                cv = bool(ctl) and phase == "run" and rng.random() >= p_idle
                # the token is offered as soon as stage B is empty (the protocol's earliest), so it often
                # meets the step's last op still in stage C
                ev = phase == "eos" and ctx.get(dut.b_idle) and rng.random() >= p_idle
                if pv:
                    p, kind, k, n = ps[0]
                    ctx.set(dut.ptrs.payload, {"p": p, "kind": kind, "k": k, **({"n": n} if lanes == 2 else {})})
                if cv:
                    kind, j, x = ctl[0]
                    ctx.set(dut.ctl.payload, {"kind": kind, "col": j, **({"x": x} if unit == "ring" else {})})
                ctx.set(dut.ptrs.valid, pv)
                ctx.set(dut.ctl.valid, cv)
                ctx.set(dut.eos.valid, ev)
                # background leaks at random while ops run; always on while a spiking async core settles
                bg = (phase == "run" and rng.random() < 0.5) or (phase == "settle" and is_async and spiking
                                                                  and last_stale)
                ctx.set(dut.bg_en, bg)
                o_rdy = rng.random() >= p_stall
                r_rdy = rng.random() >= p_stall
                ctx.set(out_port.ready, o_rdy)
                if unit == "ring":
                    ctx.set(dut.ring.ready, r_rdy)
                sig = [dut.ptrs.ready, dut.ctl.ready, dut.eos.ready, out_port.valid, out_port.payload,
                       dut.idle, dut.stale_any, dut.sop, dut.spike]
                if unit == "ring":
                    sig += [dut.ring.valid, dut.ring.payload]
                _, _, pr, cr, er, ov, opl, idle, stale_any, sop, spike, *ring = await ctx.tick().sample(*sig)
                if pv and pr:
                    p, kind, k, n = ps.pop(0)
                    for q in range(p, p + n):
                        gold.ptr(q, kind, k)
                if cv and cr:
                    gold.ctl(*ctl.pop(0))
                if ov and o_rdy:
                    if spiking:
                        got["out"].append("eos" if opl.eos else int(opl.idx))
                    else:
                        got["rec"].append((int(opl.j), int(opl.value)))
                if unit == "ring" and ring[0] and r_rdy:
                    got["ring"].append((int(ring[1].neuron), int(ring[1].delay), int(ring[1].weight)))
                    if lanes == 2 and ring[1].pair:
                        got["ring"].append((int(ring[1].neuron2), int(ring[1].delay), int(ring[1].weight2)))
                        got["pairs"] = got.get("pairs", 0) + 1
                last_stale = stale_any
                got["sops"] += sop
                got["spikes"] += spike
                if phase == "run" and not ps and not ctl:
                    phase = "settle"
                elif phase == "settle" and not real and not bg and idle:
                    phase = "done"
                elif phase == "settle" and real and not (is_async and spiking and stale_any):
                    phase = "eos"
                elif phase == "eos" and ev and er:
                    gold.eos()
                    got["eos_with_c"] += not idle  # (stage B was empty: the op was in stage C)
                    phase = "done"
        ctx.set(dut.ptrs.valid, 0)
        ctx.set(dut.ctl.valid, 0)
        ctx.set(dut.eos.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return gold, got


CONFIGS = [(mode, unit, spiking) for mode in ("layered", "async") for unit in ("ring", "scdq")
           for spiking in (True, False)]


@pytest.mark.parametrize("p_idle,p_stall", [(0.0, 0.0), (0.3, 0.5)])
@pytest.mark.parametrize("mode,unit,spiking", CONFIGS)
def test_pipeline_matches_the_golden_model_under_idle_and_backpressure(mode, unit, spiking, p_idle, p_stall):
    seed = 1000 + 17 * CONFIGS.index((mode, unit, spiking)) + int(10 * p_idle)
    gold, got = run(mode, unit, spiking, p_idle, p_stall, seed)
    assert got["out"] == gold.out
    assert got["rec"] == gold.rec
    assert got["ring"] == gold.ring
    assert got["sops"] == gold.sops
    assert got["spikes"] == sum(1 for x in gold.out if x != "eos")
    if p_idle == p_stall == 0 and not (mode == "async" and spiking):
        # (under random idle and stalls, or after a spiking async core's leak, the last op may have left C)
        assert got["eos_with_c"] > 0, "the token never met an op in stage C"
    # the bench is not vacuous: the ops do observable work
    assert gold.sops > 0
    if spiking:
        assert gold.out.count("eos") == 5
    else:
        assert len(gold.rec) >= 5 * N_OUT


RING_CONFIGS = [(mode, spiking) for mode in ("layered", "async") for spiking in (True, False)]


@pytest.mark.parametrize("p_idle,p_stall", [(0.0, 0.0), (0.3, 0.5)])
@pytest.mark.parametrize("mode,spiking", RING_CONFIGS)
def test_two_ring_lanes_match_the_golden_model_under_idle_and_backpressure(mode, spiking, p_idle, p_stall):
    """ring_lanes=2: pointer pairs leave as one ring item of two adds; every other op as with one lane."""
    seed = 3000 + 17 * RING_CONFIGS.index((mode, spiking)) + int(10 * p_idle)
    gold, got = run(mode, "ring", spiking, p_idle, p_stall, seed, lanes=2)
    assert got["out"] == gold.out
    assert got["rec"] == gold.rec
    assert got["ring"] == gold.ring
    assert got["sops"] == gold.sops  # sop strobes 2 for a pair
    assert got["spikes"] == sum(1 for x in gold.out if x != "eos")
    assert got.get("pairs", 0) >= 5 and gold.sops > 0


def test_saturation_and_spikes_are_exercised():
    """Over a few seeds the narrow widths saturate and spiking cores fire (the golden model's
    branches are reached, so the comparisons above can fail)."""
    fired = saturated = 0
    for seed in range(3):
        gold, got = run("async", "scdq", True, 0.0, 0.0, seed)
        assert got["out"] == gold.out
        fired += sum(1 for x in gold.out if x != "eos")
        gold, got = run("layered", "ring", False, 0.0, 0.0, seed)
        assert got["rec"] == gold.rec
        saturated += sum(abs(r) == (1 << (RB - 1)) or r == (1 << (RB - 1)) - 1 for _, r in gold.rec)
    assert fired > 0 and saturated > 0


def test_constructor_validates_its_arguments():
    ok = dict(n_out=4, nnz_max=8, delays=(0, 2))
    Fragment.get(UpdatePipeline(**ok), None)  # elaborates
    with warnings.catch_warnings():  # the refused objects were never elaborated: that is the point
        warnings.simplefilter("ignore")
        _refused(ok)
        gc.collect()


def _refused(ok):
    for bad, msg in ((dict(n_out=0), "n_out"), (dict(nnz_max=True), "nnz_max"), (dict(delays=(2, 1)), "delays"),
                     (dict(delays=()), "delays"), (dict(delay_unit="fifo"), "delay_unit"),
                     (dict(membrane_bits=1), "membrane_bits"), (dict(weight_bits=30), "weight_bits"),
                     (dict(ring_lanes=3), "ring_lanes"), (dict(delay_unit="scdq", ring_lanes=2), "ring_lanes")):
        with pytest.raises(ValueError, match=msg):
            UpdatePipeline(**{**ok, **bad})
