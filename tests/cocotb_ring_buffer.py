"""RingBufferDelay traffic, expectation and cycle driver; cocotb tests on its Verilog.

The pysim tests (tests/test_ring_buffer.py) import the plan, expectation and
driver from here, so pysim, Icarus and Verilator run the same stimulus.

Expectation (contract of the ring-buffer unit, hw.reference ``_async_layer``
``ring`` path): an add ``(j, d, w)`` issued during step ``t_e`` lands in the
slot drained for neuron ``j`` at step ``t_e + d``; the drain returns the sum of
exactly those adds and leaves 0. Sums are built directly from the adds here,
with no model of slots or memory addresses.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import cocotb

from hdl_util import cocotb_params, cocotb_reset, cocotb_rereset, pack, run_cocotb_driver
from hw.delay.ring_buffer import add_layout


@dataclass
class RingPlan:
    n: int
    max_delay: int
    weight_bits: int
    # segments: each starts with a clear; steps[s] = ops in issue order,
    # op = ("add", j, d, w) or ("drain", j)
    segments: list = field(default_factory=list)


def make_ring_plan(rng: random.Random, n: int, max_delay: int, weight_bits: int, steps: int,
                   adds_per_step: int, n_segments: int = 1, same_word_bias: float = 0.3,
                   pair_bias: float = 0.0) -> RingPlan:
    """Random traffic: per step, drains of every neuron in ascending order with
    adds interleaved at random. A ``d = 0`` add of neuron ``j`` comes before the
    drain of ``j`` (the layered order: input first, then drain). Every segment
    but the last stops draining early, so the clear must discard pending sums.
    ``pair_bias``: the chance that an add takes the previous add's delay and
    another neuron (what a two-lane driver may issue as one pair)."""
    D = max_delay
    wmax = (1 << (weight_bits - 1)) - 1
    plan = RingPlan(n, D, weight_bits)
    for s in range(n_segments):
        last = s == n_segments - 1
        n_add_steps = steps
        n_steps = steps + D if last else steps  # last segment drains every pending add
        seg = []
        prev = None
        for t in range(n_steps):
            ops = []
            if t < n_add_steps:
                for _ in range(rng.randint(0, adds_per_step)):
                    pair = False
                    if prev is not None and rng.random() < same_word_bias:
                        j, d = prev  # back-to-back hits on one word
                    elif pair_bias and n > 1 and ops and rng.random() < pair_bias:
                        j, d = (prev[0] + rng.randrange(1, n)) % n, prev[1]  # a pair candidate
                        pair = d > 0 or ops[-1][0] <= j  # right after the previous add (d = 0: before drain j)
                    else:
                        j, d = rng.randrange(n), rng.randint(0, D)
                    prev = (j, d)
                    w = rng.randint(-wmax - 1, wmax)
                    if pair:
                        ops.append((ops[-1][0], ops[-1][1] + 1e-9, ("add", j, d, w)))
                        continue
                    pos = rng.randint(0, j) if d == 0 else rng.randint(0, n)  # drains before it
                    ops.append((pos, rng.random(), ("add", j, d, w)))
            ops += [(j, 2.0, ("drain", j)) for j in range(n)]  # sorts after adds with pos <= j
            ops.sort(key=lambda x: (x[0], x[1]))
            seg.append([op for _, _, op in ops])
        plan.segments.append(seg)
    return plan


def ring_expected(plan: RingPlan) -> list[int]:
    """Drained values in request order, straight from the contract."""
    out = []
    for seg in plan.segments:
        due: dict[tuple[int, int], int] = {}
        for t, ops in enumerate(seg):
            for op in ops:
                if op[0] == "add":
                    _, j, d, w = op
                    due[(t + d, j)] = due.get((t + d, j), 0) + w
                else:
                    out.append(due.pop((t, op[1]), 0))
    return out


class RingDriver:
    """Cycle driver for RingBufferDelay (see hdl_util.run_pysim_driver)."""

    watch = ("add__ready", "drain_req__ready", "drain_resp__valid", "drain_resp__payload", "busy")

    def __init__(self, plan: RingPlan, rng: random.Random, acc_bits: int, p_idle=0.3, p_stall=0.3,
                 p_pair=0.5, lanes=1, p_two=0.8):
        # lanes=2: two consecutive adds of one delay and distinct neurons go as one pair with
        # probability p_two (the rest one at a time, as a one-lane producer would)
        self.lanes, self.p_two = lanes, p_two
        self.layout = add_layout(plan.n, plan.max_delay, plan.weight_bits, lanes)
        self.acc_bits = acc_bits
        self.rng, self.p_idle, self.p_stall, self.p_pair = rng, p_idle, p_stall, p_pair
        # flat script: ("clear",), ("op", op), ("advance",)
        self.script = []
        for seg in plan.segments:
            self.script.append(("clear",))
            for ops in seg:
                self.script += [("op", op) for op in ops]
                self.script.append(("advance",))
        self.n_expected = sum(1 for s in self.script if s[0] == "op" and s[1][0] == "drain")
        self.pos = 0
        self.responses: list[int] = []
        self.busy_cycles: list[int] = []
        self.cycles = 0
        self._cur = {}
        self._held = False
        self._clearing = False
        self._adds = self._drains = self._pairs = 0

    @property
    def done(self) -> bool:
        return self.pos >= len(self.script) and len(self.responses) >= self.n_expected

    def _peek(self, i):
        return self.script[i] if i < len(self.script) else None

    def inputs(self) -> dict:
        rng = self.rng
        cur = {"add": None, "add2": None, "drain": None, "advance": 0, "clear": 0}
        head = self._peek(self.pos)
        if self._clearing or head is None:
            pass
        elif head[0] == "clear":
            cur["clear"] = 1
        elif self._held or rng.random() >= self.p_idle:
            # once presented, an op stays presented until accepted (stream rule)
            if head[0] == "advance":
                cur["advance"] = 1
            elif head[1][0] == "add":
                cur["add"] = head[1]
                nxt = self._peek(self.pos + 1)
                if (self.lanes == 2 and nxt and nxt[0] == "op" and nxt[1][0] == "add" and nxt[1][2] == head[1][2]
                        and nxt[1][1] != head[1][1] and rng.random() < self.p_two):
                    cur["add2"] = nxt[1]  # one pair: same delay, distinct neurons
                    nxt = self._peek(self.pos + 2)
                if nxt and rng.random() < self.p_pair:
                    if nxt[0] == "op" and nxt[1][0] == "drain":
                        cur["drain"] = nxt[1]  # add ordered before drain in one cycle
                    elif nxt[0] == "advance":
                        cur["advance"] = 1  # adds are always accepted, so advance may join
            else:
                cur["drain"] = head[1]
        self._cur = cur
        a, a2, d = cur["add"], cur["add2"], cur["drain"]
        self._ready_out = int(rng.random() >= self.p_stall)
        extra = {}
        if self.lanes == 2:
            extra = {"pair": int(a2 is not None), "neuron2": a2[1] if a2 else 0, "weight2": a2[3] if a2 else 0}
        return {
            "add__valid": int(a is not None),
            "add__payload": pack(self.layout, neuron=a[1], delay=a[2], weight=a[3], **extra) if a else 0,
            "drain_req__valid": int(d is not None),
            "drain_req__payload": d[1] if d else 0,
            "drain_resp__ready": self._ready_out,
            "advance": cur["advance"],
            "clear": cur["clear"],
        }

    def observe(self, v: dict) -> None:
        self.cycles += 1
        cur = self._cur
        if v["drain_resp__valid"] and self._ready_out:
            raw = v["drain_resp__payload"] & ((1 << self.acc_bits) - 1)
            self.responses.append(raw - (1 << self.acc_bits) if raw >> (self.acc_bits - 1) else raw)
        if cur["clear"]:
            self.pos += 1
            self._clearing, self._busy = True, 0
            return
        if self._clearing:
            if v["busy"]:
                self._busy += 1
            else:
                self._clearing = False
                self.busy_cycles.append(self._busy)
            return
        a_fire = cur["add"] is not None and bool(v["add__ready"])
        d_fire = cur["drain"] is not None and bool(v["drain_req__ready"])
        if cur["add"] is not None and not a_fire:
            raise AssertionError("add.ready low while not busy")
        a2_fire = a_fire and cur["add2"] is not None
        self._adds += a_fire + a2_fire
        self._pairs += a2_fire
        self._drains += d_fire
        # what fired is a prefix of the presented ops: add (and its pair), then drain or advance
        self.pos += int(a_fire) + int(a2_fire) + int(d_fire) + int(cur["advance"])
        self._held = cur["drain"] is not None and not d_fire


def check_ring(plan: RingPlan, driver: RingDriver) -> None:
    exp = ring_expected(plan)
    got = driver.responses
    assert len(got) == len(exp), f"{len(got)} responses, expected {len(exp)}"
    for i, (g, e) in enumerate(zip(got, exp)):
        assert g == e, f"drain #{i}: got {g}, expected {e}"
    D1 = plan.max_delay + 1
    assert driver.busy_cycles == [plan.n * D1] * len(plan.segments), driver.busy_cycles


def _plan_from_params(p: dict, seed: int) -> tuple[RingPlan, random.Random]:
    rng = random.Random(seed)
    plan = make_ring_plan(rng, p["n"], p["max_delay"], p["weight_bits"], p["steps"],
                          p["adds_per_step"], n_segments=p["segments"], pair_bias=p.get("pair_bias", 0.0))
    return plan, rng


@cocotb.test()
async def ring_random_differential(dut):
    """A few hundred random adds with idle/backpressure, two samples with a clear between."""
    p = cocotb_params()
    await cocotb_reset(dut)
    plan, rng = _plan_from_params(p, p["seed"])
    drv = RingDriver(plan, rng, p["acc_bits"], lanes=p.get("lanes", 1))
    await run_cocotb_driver(dut, drv)
    check_ring(plan, drv)
    assert drv._adds >= 200, drv._adds
    if p.get("lanes", 1) == 2:
        assert drv._pairs >= 20, drv._pairs  # the second lane carries adds


@cocotb.test()
async def ring_back_to_back_same_word(dut):
    """Sustained adds to one word, then a drain: one per cycle, no stalls, exact sum."""
    p = cocotb_params()
    await cocotb_reset(dut)
    rng = random.Random(p["seed"] + 1)
    wmax = (1 << (p["weight_bits"] - 1)) - 1
    ops = [("add", 1, 0, rng.randint(-wmax - 1, wmax)) for _ in range(50)] + [("drain", j) for j in range(p["n"])]
    plan = RingPlan(p["n"], p["max_delay"], p["weight_bits"], [[ops]])
    drv = RingDriver(plan, rng, p["acc_bits"], p_idle=0.0, p_stall=0.0, p_pair=1.0, lanes=p.get("lanes", 1))
    await run_cocotb_driver(dut, drv)
    check_ring(plan, drv)
    assert drv._adds == 50


@cocotb.test()
async def ring_backpressure_sweep(dut):
    """Idle cycles on the add/drain requests x backpressure on the drain responses,
    p_idle in {0, 0.3} x p_stall in {0, 0.5}: exact in every combination."""
    p = cocotb_params()
    await cocotb_reset(dut)  # starts the clock
    for n, (p_idle, p_stall) in enumerate((a, b) for a in (0.0, 0.3) for b in (0.0, 0.5)):
        await cocotb_rereset(dut)
        plan, rng = _plan_from_params(dict(p, segments=1), p["seed"] + 100 + n)
        drv = RingDriver(plan, rng, p["acc_bits"], p_idle=p_idle, p_stall=p_stall, lanes=p.get("lanes", 1))
        await run_cocotb_driver(dut, drv)
        check_ring(plan, drv)
        assert drv._adds > 0
