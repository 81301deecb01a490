# amaranth: UnusedElaboratable=no
"""RowIterator alone (Amaranth pysim) against a small golden model, with random
idle cycles on its input stream and random backpressure on its output stream."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.row_iterator import RowIterator


def golden(row_ptr, rows):
    """Every pointer of every row, in row order, with the row's (kind, k)."""
    return [(p, kind, k) for r, kind, k in rows for p in range(row_ptr[r], row_ptr[r + 1])]


def golden2(row_ptr, rows, pair_kind):
    """Two lanes: a row of ``pair_kind`` as items of two pointers (p, p + 1) and, when its length is
    odd, a last item of one; any other row one pointer per item. Items are (p, n, kind, k)."""
    out = []
    for r, kind, k in rows:
        lo, hi = int(row_ptr[r]), int(row_ptr[r + 1])
        step = 2 if kind == pair_kind else 1
        out += [(p, min(step, hi - p), kind, k) for p in range(lo, hi, step)]
    return out


def run(row_ptr, rows, p_idle, p_stall, seed, max_cycles=20_000, lanes=1, pair_kind=None):
    n_rows = len(row_ptr) - 1
    dut = RowIterator(n_rows, max(1, int(row_ptr[-1])), k_bits=3, lanes=lanes, pair_kind=pair_kind)
    rng = np.random.default_rng(seed)
    got, out_cycles = [], []

    async def producer(ctx):
        for a, p in enumerate(row_ptr):
            ctx.set(dut.cfg_we, 1)
            ctx.set(dut.cfg_addr, a)
            ctx.set(dut.cfg_data, int(p))
            await ctx.tick()
        ctx.set(dut.cfg_we, 0)
        for r, kind, k in rows:
            while rng.random() < p_idle:
                ctx.set(dut.rows.valid, 0)
                await ctx.tick()
            ctx.set(dut.rows.valid, 1)
            ctx.set(dut.rows.payload, {"row": r, "kind": kind, "k": k})
            await ctx.tick().until(dut.rows.ready)
        ctx.set(dut.rows.valid, 0)

    async def consumer(ctx):
        cycle = 0
        want = len(golden(row_ptr, rows) if lanes == 1 else golden2(row_ptr, rows, pair_kind))
        while len(got) < want:
            ready = rng.random() >= p_stall
            ctx.set(dut.ptrs.ready, ready)
            await ctx.delay(1e-9)  # let the comb logic settle before sampling
            if ready and ctx.get(dut.ptrs.valid):
                pl = ctx.get(dut.ptrs.payload)
                got.append((pl.p, pl.kind, pl.k) if lanes == 1 else (pl.p, pl.n, pl.kind, pl.k))
                out_cycles.append(cycle)
            await ctx.tick()
            cycle += 1
            assert cycle < max_cycles, f"stuck: {len(got)} of {want} pointers"
        for _ in range(4):  # nothing more comes out
            await ctx.tick()
            assert not ctx.get(dut.ptrs.valid)
        assert ctx.get(dut.idle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return got, out_cycles


def random_rows(rng, n_rows=12, n_events=30, p_empty=0.35):
    lengths = rng.integers(1, 5, n_rows) * (rng.random(n_rows) >= p_empty)
    row_ptr = np.concatenate([[0], np.cumsum(lengths)])
    if row_ptr[-1] == 0:
        row_ptr[-1] = 1
    rows = [(int(rng.integers(n_rows)), int(rng.integers(8)), int(rng.integers(8))) for _ in range(n_events)]
    return row_ptr, rows


@pytest.mark.parametrize("p_idle", [0.0, 0.3])
@pytest.mark.parametrize("p_stall", [0.0, 0.5])
def test_pointers_match_the_golden_model_under_idle_and_backpressure(p_idle, p_stall):
    for seed in range(3):
        row_ptr, rows = random_rows(np.random.default_rng(seed))
        got, _ = run(row_ptr, rows, p_idle, p_stall, seed=100 + seed)
        assert got == golden(row_ptr, rows), f"seed {seed}"


def test_back_to_back_rows_give_one_pointer_per_cycle_and_hidden_empty_rows_cost_nothing():
    # rows of 1 pointer back to back: one pointer per cycle
    row_ptr = np.arange(9)
    rows = [(r % 8, 1, 2) for r in range(20)]
    got, cycles = run(row_ptr, rows, 0.0, 0.0, seed=1)
    assert got == golden(row_ptr, rows)
    assert cycles[-1] - cycles[0] == len(cycles) - 1, cycles
    # rows of 3-4 pointers, each followed by an empty row: the empty rows are dropped while the
    # previous row is walked, so the output still has no bubble
    lengths = [3, 0, 4, 0, 3, 0, 4, 0]
    row_ptr = np.concatenate([[0], np.cumsum(lengths)])
    rows = [(r % 8, 0, r % 8) for r in range(24)]
    got, cycles = run(row_ptr, rows, 0.0, 0.0, seed=2)
    assert got == golden(row_ptr, rows)
    assert cycles[-1] - cycles[0] == len(cycles) - 1, cycles


def test_rows_of_mixed_lengths_leave_no_bubble():
    # a held row of one pointer right after a longer one: the next row must be accepted in the cycle
    # the held row moves on, else the output idles for a cycle after it
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 4, 16)
    row_ptr = np.concatenate([[0], np.cumsum(lengths)])
    rows = [(int(r), 3, 1) for r in rng.integers(0, 16, 60)]
    got, cycles = run(row_ptr, rows, 0.0, 0.0, seed=3)
    assert got == golden(row_ptr, rows)
    assert cycles[-1] - cycles[0] == len(cycles) - 1, np.flatnonzero(np.diff(cycles) > 1)


# ---------------- two lanes: pointer pairs of one row

@pytest.mark.parametrize("p_idle", [0.0, 0.3])
@pytest.mark.parametrize("p_stall", [0.0, 0.5])
def test_two_lanes_pairs_match_the_golden_model_under_idle_and_backpressure(p_idle, p_stall):
    seen = set()
    for seed in range(3):
        row_ptr, rows = random_rows(np.random.default_rng(50 + seed))
        got, _ = run(row_ptr, rows, p_idle, p_stall, seed=200 + seed, lanes=2, pair_kind=2)
        assert got == golden2(row_ptr, rows, 2), f"seed {seed}"
        seen |= {(n, kind == 2) for _, n, kind, _ in got}
    assert seen == {(2, True), (1, True), (1, False)}  # pairs, odd tails and unpaired kinds all occur


def test_two_lanes_back_to_back_rows_give_one_item_per_cycle():
    # paired rows of 1-5 pointers, other kinds interleaved: one item per cycle. (An empty row still
    # takes its row-pointer read; with items of one cycle nothing hides it, so the ring core's
    # controller sends live rows only, by its level mask.)
    rng = np.random.default_rng(8)
    lengths = [2, 1, 3, 1, 4, 2, 2, 5]
    row_ptr = np.concatenate([[0], np.cumsum(lengths)])
    rows = [(int(r), int(rng.choice([2, 2, 0])), 1) for r in rng.integers(0, 8, 50)]
    got, cycles = run(row_ptr, rows, 0.0, 0.0, seed=4, lanes=2, pair_kind=2)
    assert got == golden2(row_ptr, rows, 2)
    assert cycles[-1] - cycles[0] == len(cycles) - 1, np.flatnonzero(np.diff(cycles) > 1)
    # the pairs halve the items of the paired rows
    assert len(got) < len(golden(row_ptr, rows))


def test_lane_parameters_are_validated():
    for kw, msg in ((dict(lanes=3, pair_kind=2), "lanes"), (dict(lanes=True, pair_kind=2), "lanes"),
                    (dict(lanes=2), "pair_kind")):
        with pytest.raises(ValueError, match=msg):
            RowIterator(4, 8, **kw)
