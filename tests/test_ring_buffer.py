# amaranth: UnusedElaboratable=no
"""RingBufferDelay in Amaranth pysim against the ring-buffer contract (hw.reference).

(The linter line above: some components are built only to read memory_bits or to fail.)
"""
from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cocotb_ring_buffer import RingDriver, RingPlan, check_ring, make_ring_plan, ring_expected
from hdl_util import pack, run_pysim, run_pysim_driver, stream_recv, stream_send
from hw.delay.ring_buffer import RingBufferDelay, add_layout
from hw.reference import ring_buffer_bits
from props import hdl_settings


def _run(plan: RingPlan, acc_bits: int, seed: int, name: str, **drv_kw) -> RingDriver:
    dut = RingBufferDelay(plan.n, plan.max_delay, acc_bits=acc_bits, weight_bits=plan.weight_bits,
                          lanes=drv_kw.get("lanes", 1))
    drv = RingDriver(plan, random.Random(seed), acc_bits, **drv_kw)
    run_pysim_driver(dut, drv, name=name)
    check_ring(plan, drv)
    return drv


@st.composite
def ring_traffic(draw):
    """A ring-buffer plan drawn op by op (so failures shrink): per step, drains of
    every neuron in ascending order with adds interleaved (a ``d = 0`` add of
    ``j`` before the drain of ``j``), back-to-back hits on one word, every slot
    reused; segments before the last stop draining early, so the clear must
    discard pending sums."""
    n = draw(st.integers(1, 48))
    D = draw(st.one_of(st.integers(0, 7), st.integers(8, 63), st.just(63)))
    wb = draw(st.integers(2, 8))
    wmax = (1 << (wb - 1)) - 1
    adds_per_step = draw(st.integers(0, 4))
    plan = RingPlan(n, D, wb)
    n_seg = draw(st.integers(1, 2))
    for s in range(n_seg):
        steps = 2 * (D + 1) + 2
        seg, prev = [], None
        for t in range(steps + (D if s == n_seg - 1 else 0)):
            ops = []
            for _ in range(draw(st.integers(0, adds_per_step)) if t < steps else 0):
                if prev is not None and draw(st.booleans()):
                    j, d = prev  # the same word again, back to back
                else:
                    j, d = draw(st.integers(0, n - 1)), draw(st.integers(0, D))
                prev = (j, d)
                pos = draw(st.integers(0, j)) if d == 0 else draw(st.integers(0, n))  # drains before it
                ops.append((pos, 0, ("add", j, d, draw(st.integers(-wmax - 1, wmax)))))
            ops += [(j, 1, ("drain", j)) for j in range(n)]  # after the adds placed at pos <= j
            ops.sort(key=lambda x: (x[0], x[1]))  # stable: adds at one position keep their order
            seg.append([op for _, _, op in ops])
        plan.segments.append(seg)
    return plan


@hdl_settings(max_examples=20)
@given(plan=ring_traffic(), extra_acc=st.integers(0, 12), seed=st.integers(0, 2**16),
       p_idle=st.sampled_from([0.0, 0.3]), p_stall=st.sampled_from([0.0, 0.4]))
def test_random_traffic_matches_contract(plan, extra_acc, seed, p_idle, p_stall):
    # the narrowest slot that the loader rule would allow: every partial sum fits
    worst = max([sum(abs(op[3]) for op in ops if op[0] == "add") for seg in plan.segments for ops in seg] + [0])
    acc = max(plan.weight_bits + extra_acc, (worst * (plan.max_delay + 1)).bit_length() + 1)
    _run(plan, acc, seed, "ring_random", p_idle=p_idle, p_stall=p_stall)  # seed: idle/stall cycles only


def _one_step_plan(n, D, wb, ops_by_step):
    return RingPlan(n, D, wb, [ops_by_step])


def test_delay_zero_and_max_delay_land_in_the_right_step():
    D, n = 5, 3
    steps = [[("add", 2, 0, 7), ("add", 1, D, -3), ("add", 0, 1, 5)] + [("drain", j) for j in range(n)]]
    steps += [[("drain", j) for j in range(n)] for _ in range(D + 1)]
    plan = _one_step_plan(n, D, 8, steps)
    exp = ring_expected(plan)
    # step 0: only the d=0 add; step 1: the d=1 add; step D: the d=D add
    assert exp[:n] == [0, 0, 7] and exp[n:2 * n] == [5, 0, 0] and exp[D * n:(D + 1) * n] == [0, -3, 0]
    _run(plan, 16, 1, "ring_d0_dmax", p_idle=0.0, p_stall=0.0)


def test_wraparound_many_laps():
    rng = random.Random(7)
    D, n = 3, 2
    plan = make_ring_plan(rng, n, D, 6, steps=6 * (D + 1), adds_per_step=4)
    _run(plan, 16, 7, "ring_wrap", p_idle=0.2, p_stall=0.2)


def test_same_word_back_to_back_adds_one_per_cycle():
    """50 adds to one word on consecutive cycles (forwarding), add+drain pairs in one cycle."""
    rng = random.Random(3)
    n, D = 4, 2
    ops = [("add", 1, 0, rng.randint(-128, 127)) for _ in range(50)] + [("drain", j) for j in range(n)]
    ops += [("add", 2, 0, 9), ("add", 2, 0, -2)]  # after drain 2 -> stays for t + D + 1
    plan = _one_step_plan(n, D, 8, [ops] + [[("drain", j) for j in range(n)] for _ in range(D + 1)])
    drv = RingDriver(plan, rng, 16, p_idle=0.0, p_stall=0.0, p_pair=1.0)
    dut = RingBufferDelay(n, D, 16, 8)
    cycles = run_pysim_driver(dut, drv, name="ring_same_word")
    exp = ring_expected(plan)
    assert exp[1] == sum(op[3] for op in ops[:50])
    # documented rule: a slot-t add accepted after the drain of that word stays
    # in the slot and comes out D + 1 steps later (the contract never does this)
    exp[(D + 1) * n + 2] = 9 - 2
    assert drv.responses == exp
    assert drv._adds == 52
    # 1 add/cycle sustained: clear (1 + n(D+1) + 1) + 52 adds (last drain pair shares a cycle)
    # + per step n drains and an advance, + response latency
    assert cycles <= (2 + n * (D + 1)) + 52 + n + (D + 2) * (n + 1) + 3, cycles


def test_sample_boundary_clear_discards_pending_sums():
    rng = random.Random(11)
    plan = make_ring_plan(rng, 3, 4, 8, steps=5, adds_per_step=5, n_segments=3)
    pending = sum(1 for op in plan.segments[0][-1] if op[0] == "add" and op[2] > 0)
    assert pending > 0  # the first segment really leaves sums behind
    _run(plan, 20, 11, "ring_clear", p_idle=0.3, p_stall=0.3)


def test_stream_helpers_and_interleaved_drain():
    """hdl_util.stream_send/stream_recv as separate testbenches: adds with idle
    cycles and drains with backpressure of a single step (d >= 1 adds only)."""
    n, D = 4, 3
    dut = RingBufferDelay(n, D, 16, 8)
    rng = random.Random(5)
    adds = [{"neuron": rng.randrange(n), "delay": rng.randint(1, D), "weight": rng.randint(-128, 127)}
            for _ in range(40)]
    got = []

    async def adder(ctx):
        await stream_send(ctx, dut.add, adds, random.Random(1), p_idle=0.3)
        for t in range(1, D + 1):  # advance to every step and drain it
            ctx.set(dut.advance, 1)
            await ctx.tick()
            ctx.set(dut.advance, 0)
            await stream_send(ctx, dut.drain_req, list(range(n)), random.Random(t), p_idle=0.3)
        while len(got) < n * D:
            await ctx.tick()

    async def receiver(ctx):
        await stream_recv(ctx, dut.drain_resp, n * D, random.Random(2), p_stall=0.4, sink=got)

    run_pysim(dut, adder, background=[receiver], name="ring_helpers")
    exp = [sum(a["weight"] for a in adds if a["delay"] == t and a["neuron"] == j)
           for t in range(1, D + 1) for j in range(n)]
    assert [int(g) for g in got] == exp


@pytest.mark.parametrize("n,D,acc", [(1, 0, 24), (48, 60, 24), (700, 63, 16), (5, 7, 10)])
def test_memory_bits_equal_reference(n, D, acc):
    assert RingBufferDelay(n, D, acc_bits=acc, weight_bits=8 if acc >= 8 else acc).memory_bits \
        == ring_buffer_bits(n, D, acc)


@pytest.mark.parametrize("kw,field", [
    ({"n_neurons": 0, "max_delay": 3}, "n_neurons"),
    ({"n_neurons": 2.0, "max_delay": 3}, "n_neurons"),
    ({"n_neurons": 2, "max_delay": -1}, "max_delay"),
    ({"n_neurons": 2, "max_delay": 3, "acc_bits": 1}, "acc_bits"),
    ({"n_neurons": 2, "max_delay": 3, "weight_bits": True}, "weight_bits"),
    ({"n_neurons": 2, "max_delay": 3, "acc_bits": 8, "weight_bits": 9}, "weight_bits"),
])
def test_bad_parameters_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        RingBufferDelay(**kw)


def test_delay_above_max_delay_is_flagged_in_simulation():
    n, D = 3, 5  # delay field is 3 bits: 6 and 7 are representable but illegal
    dut = RingBufferDelay(n, D, 16, 8)

    async def tb(ctx):
        ctx.set(dut.add.payload.as_value(), pack(add_layout(n, D, 8), neuron=1, delay=D + 2, weight=3))
        ctx.set(dut.add.valid, 1)
        await ctx.tick()
        await ctx.tick()

    with pytest.raises(AssertionError, match="add.delay > max_delay"):
        run_pysim(dut, tb, name="ring_bad_delay")


def test_realistic_size_48_neurons_max_delay_60():
    """The paper's layer size: wide addresses (neuron * 61 + slot), two laps of t."""
    rng = random.Random(48)
    plan = make_ring_plan(rng, 48, 60, 8, steps=2 * 61 + 2, adds_per_step=6)
    _run(plan, 24, 48, "ring_48x61", p_idle=0.1, p_stall=0.1)


def test_single_word_ring_one_neuron_no_delay():
    """n = 1, D = 0: every add is d = 0 and every drain returns the step's sum."""
    rng = random.Random(2)
    plan = make_ring_plan(rng, 1, 0, 8, steps=6, adds_per_step=5)
    _run(plan, 16, 2, "ring_1x1", p_idle=0.2, p_stall=0.3)


# ---------------- two add lanes (ring_lanes=2): the same contract, two adds per handshake

@pytest.mark.parametrize("n,D,p_idle,p_stall", [(5, 3, a, b) for a in (0.0, 0.3) for b in (0.0, 0.5)]
                         + [(48, 60, 0.3, 0.5), (2, 0, 0.0, 0.0)])
def test_two_lanes_random_traffic_matches_contract(n, D, p_idle, p_stall):
    seed = 31 * n + D + int(10 * p_idle) + int(100 * p_stall)
    rng = random.Random(seed)
    plan = make_ring_plan(rng, n, D, 8, steps=3 * (D + 1) + 10 if D < 8 else D + 4, adds_per_step=6,
                          n_segments=2, pair_bias=0.6)
    drv = _run(plan, 20, seed, "ring2_random", p_idle=p_idle, p_stall=p_stall, lanes=2)
    assert drv._pairs >= 5, drv._pairs  # the second lane really carries adds
    assert drv._adds == sum(1 for seg in plan.segments for ops in seg for op in ops if op[0] == "add")


def test_two_lanes_back_to_back_hits_from_either_lane_and_a_drain_in_the_same_cycle():
    """Pairs that hit the words of the previous cycle's pair in either lane (forwarding across lanes),
    two adds per cycle sustained, and a pair accepted with the drain of one of its words."""
    rng = random.Random(4)
    n, D = 4, 2
    ops = []
    for i in range(40):  # pairs (1, 2) and (2, 1) alternating: every word hit by both lanes back to back
        a, b = (1, 2) if i % 2 else (2, 1)
        ops += [("add", a, 0, rng.randint(-128, 127)), ("add", b, 0, rng.randint(-128, 127))]
    # a pair with the drain of its lane-1 word, then one with the drain of its lane-2 word, in one cycle
    ops += [("drain", 0), ("add", 1, 0, 5), ("add", 3, 0, -7), ("drain", 1), ("add", 3, 0, 11), ("add", 2, 0, 3)]
    ops += [("drain", 2), ("drain", 3)]
    plan = _one_step_plan(n, D, 8, [ops] + [[("drain", j) for j in range(n)] for _ in range(D + 1)])
    drv = RingDriver(plan, rng, 16, p_idle=0.0, p_stall=0.0, p_pair=1.0, lanes=2, p_two=1.0)
    dut = RingBufferDelay(n, D, 16, 8, lanes=2)
    cycles = run_pysim_driver(dut, drv, name="ring2_same_word")
    check_ring(plan, drv)
    exp = ring_expected(plan)
    assert exp[1] == sum(op[3] for op in ops[:80] if op[1] == 1) + 5
    assert exp[2] == sum(op[3] for op in ops[:80] if op[1] == 2) + 3 and exp[3] == 4
    assert drv._pairs == 40 + 2 and drv._adds == 84
    # 2 adds/cycle: 40 pair cycles, not 80; the rest as in the one-lane bound
    assert cycles <= (2 + n * (D + 1)) + 40 + 8 + n + (D + 2) * (n + 1) + 3, cycles


def test_two_lanes_one_lane_traffic_is_unchanged():
    """A two-lane ring driven one add at a time answers exactly as the one-lane one."""
    rng = random.Random(9)
    plan = make_ring_plan(rng, 6, 5, 8, steps=14, adds_per_step=5, n_segments=2)
    _run(plan, 18, 9, "ring2_single", p_idle=0.2, p_stall=0.2, lanes=2, p_two=0.0)


def test_two_lanes_pair_to_one_neuron_is_flagged_in_simulation():
    n, D = 3, 5
    dut = RingBufferDelay(n, D, 16, 8, lanes=2)

    async def tb(ctx):
        ctx.set(dut.add.payload.as_value(), pack(add_layout(n, D, 8, 2), neuron=1, delay=2, weight=3, pair=1,
                                                 neuron2=1, weight2=4))
        ctx.set(dut.add.valid, 1)
        await ctx.tick()
        await ctx.tick()

    with pytest.raises(AssertionError, match="pair of adds to one neuron"):
        run_pysim(dut, tb, name="ring2_bad_pair")


@pytest.mark.parametrize("lanes", [0, 3, 2.0, True, "2"])
def test_bad_lane_count_names_the_field(lanes):
    with pytest.raises(ValueError, match="ring_lanes"):
        RingBufferDelay(3, 2, lanes=lanes)


def test_two_lanes_keep_the_slot_bits():
    assert RingBufferDelay(48, 60, lanes=2).memory_bits == ring_buffer_bits(48, 60, 24)
