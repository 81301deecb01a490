# amaranth: UnusedElaboratable=no
"""SCDQ in Amaranth pysim against the contract (hw.reference's async SCDQ order,
scdq_occupancy, scdq_bits).

(The linter line above: some components are built only to read memory_bits or to fail.)
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cocotb_scdq import SCDQDriver, SCDQPlan, check_scdq, make_scdq_plan
from hdl_util import run_pysim, run_pysim_driver
from props import hdl_settings
from hw.delay.scdq import SCDQ
from hw.model_file import Layer, Model
from hw.reference import scdq_bits, scdq_occupancy, simulate


def _run(plan: SCDQPlan, seed: int, name: str, **kw) -> tuple[SCDQDriver, list]:
    dut = SCDQ(plan.n_pre, plan.delays, plan.capacity)
    drv = SCDQDriver(plan, random.Random(seed), **kw)
    run_pysim_driver(dut, drv, name=name)
    return drv, check_scdq(plan, drv)


def _peak(plan: SCDQPlan, seg: int = 0) -> int:
    counts = np.array([len(s) for s in plan.segments[seg]])
    return int(scdq_occupancy(counts, max(plan.delays)).max())


@st.composite
def delay_sets(draw):
    D = draw(st.one_of(st.integers(1, 7), st.integers(8, 63), st.just(63)))
    inner = draw(st.sets(st.integers(0, D - 1), max_size=4))
    return tuple(sorted(inner | {D}))


@st.composite
def traffic(draw):
    """An SCDQ plan drawn step by step (so failures shrink to short, sparse traffic):
    each step pushes distinct pre indices in a drawn order; every slot of the
    pointer table is reused (at least 2 (D + 1) + 2 steps) and D empty steps
    close each sample so that all due events come out."""
    n_pre = draw(st.integers(1, 48))
    delays = draw(delay_sets())
    D = max(delays)
    per_step = min(draw(st.integers(1, 5)), n_pre)
    segs = []
    for _ in range(draw(st.integers(1, 2))):
        seg = []
        for _ in range(2 * (D + 1) + 2):
            n = draw(st.integers(0, per_step))
            seg.append(draw(st.lists(st.integers(0, n_pre - 1), unique=True, min_size=n, max_size=n)))
        segs.append(seg + [[] for _ in range(D)])
    return SCDQPlan(n_pre, delays, 1, segs)


@hdl_settings(max_examples=30)
@given(plan=traffic(), slack=st.integers(0, 3), seed=st.integers(0, 2**16),
       p_idle=st.sampled_from([0.0, 0.3]), p_stall=st.sampled_from([0.0, 0.5]))
def test_random_traffic_matches_contract(plan, slack, seed, p_idle, p_stall):
    segments = len(plan.segments)
    peak = max(_peak(plan, s) for s in range(segments))
    plan.capacity = max(1, peak + slack)  # slack 0: exactly full at the peak, never dropping
    drv, exp = _run(plan, seed, "scdq_random", p_idle=p_idle, p_stall=p_stall)  # seed: idle/stall cycles only
    # capacity >= the contract's peak: the HDL itself must report no drop and no overflow
    assert all(r["dropped"] == 0 and r["overflow"] == 0 for r in drv.reports)
    # the HDL peak is the reference's peak occupancy (check_scdq compared it per sample)
    assert [r["peak"] for r in drv.reports] == [_peak(plan, s) for s in range(segments)]


def test_order_levels_ascending_push_order_within_level():
    """Hand case: delays (0, 1, 3); the d = 0 level is never streamed."""
    plan = SCDQPlan(8, (0, 1, 3), 16, [[[5, 2, 7], [1], [], [6, 0]] + [[]] * 3])
    drv, exp = _run(plan, 0, "scdq_hand", p_idle=0.0, p_stall=0.0, p_join=0.0)
    assert drv.streams[0][1] == [(5, 1), (2, 1), (7, 1)]
    assert drv.streams[0][3] == [(5, 2), (2, 2), (7, 2)]  # t=3: d=1 -> step 2 is empty
    assert drv.streams[0][4] == [(6, 1), (0, 1), (1, 2)]
    assert drv.streams[0][6] == [(6, 2), (0, 2)]
    assert list(exp[0].occupancy[:5]) == [3, 4, 4, 6, 3]
    # levels 1 and 2 cost max(1, events) cycles each, +1 when level 2's last event
    # sits in the output register; level 0 (d = 0) is skipped: steps 0..6
    assert drv.cycles_streaming == 2 + 4 + 2 + 5 + 4 + 2 + 4


def test_max_delay_only_level_and_single_input():
    """K = 1 (level field 0 bits) and n_pre = 1 (pre field 0 bits), capacity 1."""
    plan = SCDQPlan(1, (4,), 1, [[[0], [], [], [], [], [0], [0]] + [[]] * 4])
    drv, exp = _run(plan, 1, "scdq_k1", p_idle=0.0, p_stall=0.3)
    assert exp[0].dropped == 1  # the step-6 push meets the step-5 event still held
    assert drv.streams[0][4] == [(0, 0)] and drv.streams[0][9] == [(0, 0)] and drv.streams[0][10] == []


def test_wraparound_of_event_memory_and_pointer_table():
    rng = random.Random(4)
    D = 3
    plan = make_scdq_plan(rng, 6, (1, 2, D), 1, 8 * (D + 1), 4)
    plan.capacity = _peak(plan)
    n_events = sum(len(s) for s in plan.segments[0])
    assert n_events > 2 * plan.capacity and len(plan.segments[0]) > 2 * (D + 1)
    _run(plan, 4, "scdq_wrap", p_idle=0.2, p_stall=0.3)


def test_non_power_of_two_capacity_wraps():
    rng = random.Random(9)
    plan = make_scdq_plan(rng, 5, (0, 2, 5), 1, 30, 3)
    plan.capacity = _peak(plan) + 1
    assert plan.capacity & (plan.capacity - 1)  # not a power of two
    _run(plan, 9, "scdq_npot")


def test_sample_boundary_clear_resets_counters():
    rng = random.Random(12)
    plan = make_scdq_plan(rng, 10, (0, 3, 4), 1, 9, 6, n_segments=3)
    plan.capacity = max(_peak(plan, s) for s in range(3)) - 2  # samples overflow, and clear resets
    drv, exp = _run(plan, 12, "scdq_clear", p_idle=0.2, p_stall=0.2)
    assert any(e.dropped for e in exp)
    assert [r["dropped"] for r in drv.reports] == [e.dropped for e in exp]


def test_overflow_exact_drops_and_intact_survivors():
    rng = random.Random(21)
    plan = make_scdq_plan(rng, 9, (1, 2, 6), 1, 20, 9)
    plan.capacity = 11
    drv, exp = _run(plan, 21, "scdq_overflow", p_idle=0.1, p_stall=0.4)
    e = exp[0]
    assert e.dropped > 5 and drv.reports[0] == {"peak": 11, "overflow": 1, "dropped": e.dropped}
    assert sum(len(s) for s in drv.streams[0]) == sum(len(s) for s in e.streams) > 0


def test_back_to_back_streaming_one_event_per_cycle():
    """With ready always high, a step's stream takes (events + levels) cycles at most."""
    D = 2
    evs = list(range(40))
    plan = SCDQPlan(64, (1, D), 128, [[evs, [], [], []]])
    drv, _ = _run(plan, 0, "scdq_b2b", p_idle=0.0, p_stall=0.0, p_join=0.0)
    assert drv.streams[0][1] == [(i, 0) for i in evs] and drv.streams[0][2] == [(i, 1) for i in evs]
    # 1 event/cycle: a level costs max(1, events) cycles, plus 1 when the last
    # level's final event still sits in the output register. Steps 0..3:
    # 1+1, 40+1, 1+40+1, 1+1 cycles with due_done low.
    assert drv.cycles_streaming == 2 + 41 + 42 + 2


@pytest.mark.parametrize("n_pre,delays,C", [(700, tuple(range(0, 61, 4)), 300), (1, (1,), 1), (48, (0, 63), 1000),
                                            (5, (2, 3), 7)])
def test_memory_bits_equal_reference(n_pre, delays, C):
    assert SCDQ(n_pre, delays, C).memory_bits == scdq_bits(n_pre, max(delays), C)


@pytest.mark.parametrize("args,field", [
    ((0, (1,), 4), "n_pre"),
    ((4, (), 4), "delays"),
    ((4, (0,), 4), "delays"),
    ((4, (2, 1), 4), "delays"),
    ((4, (1, 1), 4), "delays"),
    ((4, (-1, 2), 4), "delays"),
    ((4, (1, 2.5), 4), "delays"),
    ((4, (1,), 0), "capacity"),
    ((4, 7, 4), "delays"),
])
def test_bad_parameters_name_the_field(args, field):
    with pytest.raises(ValueError, match=field):
        SCDQ(*args)


def test_advance_while_streaming_is_flagged_in_simulation():
    dut = SCDQ(4, (1,), 8)

    async def tb(ctx):
        ctx.set(dut.push.payload, 2)
        ctx.set(dut.push.valid, 1)
        await ctx.tick()
        ctx.set(dut.push.valid, 0)
        ctx.set(dut.advance, 1)  # step 0 -> 1
        await ctx.tick()
        ctx.set(dut.advance, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        assert not ctx.get(dut.due_done)  # one due event is streaming (out.ready low)
        ctx.set(dut.advance, 1)
        await ctx.tick()
        await ctx.tick()

    with pytest.raises(AssertionError, match="advance while due events"):
        run_pysim(dut, tb, name="scdq_bad_advance")


@pytest.mark.parametrize("seed", [0, 1])
def test_reference_emissions_give_reference_occupancy(seed):
    """Push a hidden layer's async emissions (hw.reference.simulate, in emission
    order) into the next layer's SCDQ: its occupancy after every step and its peak
    are the reference's LayerTrace.occupancy of that layer, with capacity = peak."""
    rng = np.random.default_rng(seed)
    T, n_in, n_hid = 20, 6, 10
    delays1 = (0, 2, 5)
    W0 = rng.integers(-20, 61, size=(1, n_in, n_hid), dtype=np.int32)
    W1 = rng.integers(-5, 6, size=(len(delays1), n_hid, 3), dtype=np.int32)
    model = Model([Layer(np.array([0]), W0, threshold=40, decay=3000, spiking=True),
                   Layer(np.array(delays1), W1, threshold=1, decay=4096, spiking=False)], n_in, T)
    X = rng.random((T, n_in)) < 0.4
    res = simulate(model, X, mode="async", delay_unit="scdq")[0]
    hid, occ_ref = res.layers[0], res.layers[1].occupancy
    steps = [[int(j) for tt, j in zip(hid.emit_t, hid.emit_j) if tt == t] for t in range(T)]
    assert sum(map(len, steps)) > 20
    plan = SCDQPlan(n_hid, delays1, int(occ_ref.max()), [steps + [[]] * max(delays1)])
    drv, _ = _run(plan, seed, "scdq_ref_emissions", p_join=0.0)
    assert drv.occupancy[0][:T] == [int(x) for x in occ_ref]
    assert drv.reports[0] == {"peak": int(occ_ref.max()), "overflow": 0, "dropped": 0}


def test_realistic_size_700_inputs_15_levels():
    """700 inputs, delays 4..60 step 4, capacity = reference peak; two laps of the table."""
    rng = random.Random(700)
    delays = tuple(range(4, 61, 4))
    plan = make_scdq_plan(rng, 700, delays, 1, 2 * 61 + 2, 3)
    plan.capacity = _peak(plan)
    drv, exp = _run(plan, 700, "scdq_700", p_idle=0.1, p_stall=0.1)
    assert exp[0].dropped == 0 and sum(map(len, drv.streams[0])) > 1000
