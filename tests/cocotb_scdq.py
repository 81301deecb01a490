"""SCDQ traffic, expectation and cycle driver; cocotb tests on its Verilog.

The pysim tests (tests/test_scdq.py) import the plan, expectation and driver
from here, so pysim, Icarus and Verilator run the same stimulus.

Expectation, built from the contract (docs/contract.md, hw.reference) and not from a
queue model: at step ``t`` the unit streams ``(i, k)`` for every stored event
``i`` emitted at ``t - d_k`` with ``d_k > 0``, ascending ``k``, within one ``k``
in push order. Occupancy after step ``t`` is
:func:`hw.reference.scdq_occupancy` of the stored events' per-step counts.
Capacity: an event is stored iff fewer than ``C`` stored events were emitted
in ``[t - D, t]`` when it is pushed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import cocotb
import numpy as np

from hdl_util import cocotb_params, cocotb_reset, cocotb_rereset, run_cocotb_driver, unpack
from hw.delay.scdq import out_layout
from hw.reference import scdq_occupancy


@dataclass
class SCDQPlan:
    n_pre: int
    delays: tuple
    capacity: int
    # segments (samples): steps[t] = pre indices pushed during step t, in push order
    segments: list = field(default_factory=list)


def make_scdq_plan(rng: random.Random, n_pre: int, delays, capacity: int, steps: int,
                   max_per_step: int, n_segments: int = 1) -> SCDQPlan:
    """Random traffic: each step a random subset of pre neurons (at most once
    per step) in random order; ``max(delays)`` empty steps close every sample
    so that all due events come out."""
    plan = SCDQPlan(n_pre, tuple(delays), capacity)
    for _ in range(n_segments):
        seg = []
        for _ in range(steps):
            k = rng.randint(0, min(max_per_step, n_pre))
            seg.append(rng.sample(range(n_pre), k))
        seg += [[] for _ in range(max(delays))]
        plan.segments.append(seg)
    return plan


@dataclass
class SegmentExpect:
    streams: list  # per step: [(pre, level), ...]
    occupancy: np.ndarray  # per step, after the step
    peak: int
    dropped: int
    stored: list  # per step: stored events


def scdq_expected(plan: SCDQPlan) -> list[SegmentExpect]:
    D, C = max(plan.delays), plan.capacity
    out = []
    for seg in plan.segments:
        stored = []
        dropped = 0
        for t, evs in enumerate(seg):
            held = sum(len(stored[s]) for s in range(max(0, t - D), t))
            kept = []
            for i in evs:
                if held + len(kept) < C:
                    kept.append(i)
                else:
                    dropped += 1
            stored.append(kept)
        streams = [[(i, k) for k, d in enumerate(plan.delays) if d > 0 and t - d >= 0 for i in stored[t - d]]
                   for t in range(len(seg))]
        occ = scdq_occupancy(np.array([len(s) for s in stored]), D)
        out.append(SegmentExpect(streams, occ, int(occ.max(initial=0)), dropped, stored))
    return out


class SCDQDriver:
    """Cycle driver for SCDQ (see hdl_util.run_pysim_driver)."""

    watch = ("push__ready", "out__valid", "out__payload", "due_done", "occupancy", "peak",
             "overflow", "dropped")

    def __init__(self, plan: SCDQPlan, rng: random.Random, p_idle=0.3, p_stall=0.3, p_join=0.3):
        self.layout = out_layout(plan.n_pre, len(plan.delays))
        self.rng, self.p_idle, self.p_stall = rng, p_idle, p_stall
        self.script = []
        for s, seg in enumerate(plan.segments):
            self.script.append(("clear", s))
            for t, evs in enumerate(seg):
                self.script.append(("start", t))
                join = bool(evs) and rng.random() < p_join  # last push rides on the advance
                body = evs[:-1] if join else evs
                self.script += [("push", i) for i in body]
                self.script.append(("wait", t, not join))
                self.script.append(("advance", evs[-1] if join else None))
            self.script.append(("report", s))
        self.pos = 0
        self.streams = [[[] for _ in seg] for seg in plan.segments]
        self.occupancy = [[None] * len(seg) for seg in plan.segments]
        self.reports = []
        self.seg = self.step = -1
        self.n_out = 0
        self.cycles_streaming = 0
        self._held = False

    @property
    def done(self) -> bool:
        return self.pos >= len(self.script)

    def inputs(self) -> dict:
        rng = self.rng
        ins = {"push__valid": 0, "push__payload": 0, "start": 0, "advance": 0, "clear": 0}
        head = self.script[self.pos]
        self._push = None
        kind = head[0]
        if kind == "clear":
            ins["clear"] = 1
        elif kind == "start":
            ins["start"] = 1
            nxt = self.script[self.pos + 1]
            if nxt[0] == "push" and rng.random() < 0.5:
                self._push = nxt[1]  # a push in the start cycle belongs to the new step
        elif kind == "push":
            if self._held or rng.random() >= self.p_idle:
                self._push = head[1]
        elif kind == "advance":
            ins["advance"] = 1
            self._push = head[1]
        if self._push is not None:
            ins["push__valid"], ins["push__payload"] = 1, self._push
        self._ready = int(rng.random() >= self.p_stall)
        ins["out__ready"] = self._ready
        self._kind = kind
        return ins

    def observe(self, v: dict) -> None:
        if v["out__valid"] and self._ready:
            p = unpack(self.layout, v["out__payload"])
            self.streams[self.seg][self.step].append((p["pre"], p["level"]))
            self.n_out += 1
        if not v["due_done"]:
            self.cycles_streaming += 1
        head = self.script[self.pos]
        fired = self._push is not None and v["push__ready"]
        if self._push is not None and not fired:
            raise AssertionError("push.ready low outside a clear cycle")
        kind = head[0]
        if kind == "clear":
            self.seg, self.step = head[1], -1
            self.pos += 1
        elif kind == "start":
            self.step = head[1]
            self.pos += 1 + int(fired)
        elif kind == "push":
            self.pos += int(fired)
            self._held = self._push is not None and not fired
        elif kind == "wait":
            if v["due_done"]:
                if head[2]:
                    self.occupancy[self.seg][self.step] = v["occupancy"]
                self.pos += 1
        elif kind == "advance":
            self.pos += 1
        elif kind == "report":
            self.reports.append({k: v[k] for k in ("peak", "overflow", "dropped")})
            self.pos += 1


def check_scdq(plan: SCDQPlan, drv: SCDQDriver) -> list[SegmentExpect]:
    exp = scdq_expected(plan)
    for s, e in enumerate(exp):
        for t, want in enumerate(e.streams):
            got = drv.streams[s][t]
            assert got == want, f"sample {s} step {t}: streamed {got}, expected {want}"
        for t, occ in enumerate(drv.occupancy[s]):
            if occ is not None:
                assert occ == e.occupancy[t], f"sample {s} step {t}: occupancy {occ}, expected {e.occupancy[t]}"
        r = drv.reports[s]
        want_peak = plan.capacity if e.dropped else e.peak
        assert r["peak"] == want_peak, f"sample {s}: peak {r['peak']}, expected {want_peak}"
        assert r["dropped"] == e.dropped, f"sample {s}: dropped {r['dropped']}, expected {e.dropped}"
        assert r["overflow"] == int(e.dropped > 0), f"sample {s}: overflow {r['overflow']}"
    return exp


def _plan(p: dict, seed: int, capacity: int) -> tuple[SCDQPlan, random.Random]:
    rng = random.Random(seed)
    plan = make_scdq_plan(rng, p["n_pre"], tuple(p["delays"]), capacity, p["steps"], p["max_per_step"],
                          n_segments=p["segments"])
    return plan, rng


@cocotb.test()
async def scdq_random_differential(dut):
    """A few hundred random events, idle cycles and backpressure, no overflow."""
    p = cocotb_params()
    await cocotb_reset(dut)
    plan, rng = _plan(p, p["seed"], p["capacity"])
    exp = scdq_expected(plan)
    assert all(e.dropped == 0 for e in exp), "capacity too small for the no-overflow test"
    drv = SCDQDriver(plan, rng)
    await run_cocotb_driver(dut, drv)
    check_scdq(plan, drv)
    assert drv.n_out >= 200, drv.n_out


@cocotb.test()
async def scdq_overflow(dut):
    """The same traffic against a capacity limit: exact drops, survivors intact.
    The hardware's capacity is fixed at build time, so the traffic is scaled up
    instead: more events per step than the built capacity can hold."""
    p = cocotb_params()
    await cocotb_reset(dut)
    q = dict(p, max_per_step=p["n_pre"], segments=1)
    plan, rng = _plan(q, p["seed"] + 1, p["capacity"])
    exp = scdq_expected(plan)
    assert exp[0].dropped > 0, "traffic does not overflow"
    drv = SCDQDriver(plan, rng)
    await run_cocotb_driver(dut, drv)
    check_scdq(plan, drv)


@cocotb.test()
async def scdq_backpressure_sweep(dut):
    """Idle cycles on push x backpressure on the due-event output, p_idle in
    {0, 0.3} x p_stall in {0, 0.5}: exact in every combination."""
    p = cocotb_params()
    await cocotb_reset(dut)  # starts the clock
    for n, (p_idle, p_stall) in enumerate((a, b) for a in (0.0, 0.3) for b in (0.0, 0.5)):
        await cocotb_rereset(dut)
        plan, rng = _plan(dict(p, segments=1), p["seed"] + 100 + n, p["capacity"])
        drv = SCDQDriver(plan, rng, p_idle=p_idle, p_stall=p_stall)
        await run_cocotb_driver(dut, drv)
        check_scdq(plan, drv)
        assert drv.n_out > 0
