# amaranth: UnusedElaboratable=no
"""Delay-unit benchmark: throughput, simulator speed, and ring vs SCDQ memory.

Prints three tables, each measured side by side in this one run:
1. adds/cycle, drains/cycle and streamed events/cycle on back-to-back traffic (pysim);
2. simulated cycles/s of Amaranth pysim, Icarus and Verilator (both via cocotb,
   Python driving every cycle) on the same stimulus and driver;
3. ring-buffer vs SCDQ bits for a 700-input / 48-neuron layer, max_delay 60,
   15 delay levels, input activity 1 %, 5 %, 20 %. The SCDQ capacity is the peak
   of hw.reference.scdq_occupancy over Bernoulli input rasters (T = 100).

    .venv/bin/python bench/delay_units.py [--seed 0] [--quick]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT / "tests"), str(ROOT)):  # helpers and cocotb modules live in tests/
    if p not in sys.path:
        sys.path.insert(0, p)

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from cocotb_ring_buffer import RingDriver, RingPlan, _plan_from_params  # noqa: E402
from hdl_util import build_verilog, run_cocotb, run_pysim_driver  # noqa: E402
from cocotb_scdq import SCDQDriver, SCDQPlan  # noqa: E402
from hw.delay import SCDQ, RingBufferDelay  # noqa: E402
from hw.reference import ring_buffer_bits, scdq_bits, scdq_layered_accumulator_bits, scdq_occupancy  # noqa: E402


class _Counting:
    """Wraps a driver and counts cycles in which given ports fired."""

    def __init__(self, drv, fires):
        self.drv, self.fires = drv, fires
        self.watch = tuple(sorted(set(drv.watch) | {n for pair in fires.values() for n in pair}))
        self.count = {k: 0 for k in fires}
        self.active = 0  # cycles from the first fire to the last
        self._first = self._last = None
        self.cycle = 0

    @property
    def done(self):
        return self.drv.done

    def inputs(self):
        self._ins = self.drv.inputs()
        return self._ins

    def observe(self, v):
        for k, (valid, ready) in self.fires.items():
            vv = self._ins.get(valid, v.get(valid))
            rr = self._ins.get(ready, v.get(ready))
            if vv and rr:
                self.count[k] += 1
                self._first = self.cycle if self._first is None else self._first
                self._last = self.cycle
        self.cycle += 1
        self.drv.observe(v)

    @property
    def span(self):
        return 0 if self._first is None else self._last - self._first + 1


def throughput(seed: int) -> list[tuple[str, int, int]]:
    rng = random.Random(seed)
    rows = []
    n, D = 48, 60

    def ring_case(label, ops, fire_key):
        plan = RingPlan(n, D, 8, [[ops]])
        drv = _Counting(RingDriver(plan, random.Random(seed), 24, p_idle=0.0, p_stall=0.0, p_pair=1.0),
                        {"add": ("add__valid", "add__ready"), "drain": ("drain_req__valid", "drain_req__ready")})
        run_pysim_driver(RingBufferDelay(n, D), drv, name="bench_ring")
        # span of the phase of interest only: ops are all of one kind except a drain tail
        rows.append((label, drv.count[fire_key], drv.span))

    N = 2000
    ring_case("ring: adds, random words", [("add", rng.randrange(n), rng.randint(1, D), rng.randint(-128, 127))
                                           for _ in range(N)], "add")
    ring_case("ring: adds, one word (forwarding)", [("add", 7, 3, rng.randint(-128, 127)) for _ in range(N)],
              "add")
    ring_case("ring: drains", [("drain", j % n) for j in range(N)], "drain")
    pairs = []
    for j in range(N // 2):
        pairs += [("add", j % n, 0, 1), ("drain", j % n)]  # add + drain accepted in one cycle
    ring_case("ring: add+drain pairs (ops)", pairs, "add")
    rows[-1] = (rows[-1][0], 2 * rows[-1][1], rows[-1][2])

    # SCDQ: events pushed in step 0, streamed back to back at steps d_k
    for label, delays, n_ev in (("scdq: 1 level, 600 events", (1,), 600),
                                ("scdq: 15 levels, 600 events", tuple(range(4, 61, 4)), 600),
                                ("scdq: 15 levels, 5 events", tuple(range(4, 61, 4)), 5)):
        D = max(delays)
        plan = SCDQPlan(700, delays, 1024, [[rng.sample(range(700), n_ev)] + [[] for _ in range(D)]])
        drv = _Counting(SCDQDriver(plan, random.Random(seed), p_idle=0.0, p_stall=0.0, p_join=0.0),
                        {"out": ("out__valid", "out__ready")})
        run_pysim_driver(SCDQ(700, delays, 1024), drv, name="bench_scdq")
        rows.append((label + " (per streaming cycle)", drv.count["out"], drv.drv.cycles_streaming))
    return rows


def sim_speed(seed: int, quick: bool) -> list[tuple[str, int, float]]:
    """Same RingBufferDelay plan and driver in pysim, Icarus and Verilator."""
    p = {"n": 8, "max_delay": 15, "acc_bits": 24, "weight_bits": 8, "steps": 40 if quick else 400,
         "adds_per_step": 16, "segments": 1, "seed": seed}
    rows = []
    # the plan and the driver's random choices as cocotb_ring_buffer builds them
    plan, rng = _plan_from_params(p, seed)
    dut = RingBufferDelay(p["n"], p["max_delay"], p["acc_bits"], p["weight_bits"])
    drv = RingDriver(plan, rng, p["acc_bits"])
    t0 = time.perf_counter()
    cycles = run_pysim_driver(dut, drv, name="bench_speed", max_cycles=10**7)
    rows.append(("Amaranth pysim", cycles, time.perf_counter() - t0))
    build = ROOT / "build" / "bench" / "ring_speed"
    v = build_verilog(RingBufferDelay(p["n"], p["max_delay"], p["acc_bits"], p["weight_bits"]), "ring_buffer", build)
    for sim in tqdm(("icarus", "verilator"), desc="cocotb", leave=False):
        res = run_cocotb(sim, v, "ring_buffer", "cocotb_ring_buffer", build, params=p,
                         testcase="ring_random_differential", quiet=True)
        case = ET.parse(res).getroot().find(".//testcase")
        props = {q.get("name"): q.get("value") for q in case.iter("property")}
        sim_ns, wall = float(props["sim_time_duration"]), float(case.get("time"))
        rows.append((f"{sim} (cocotb)", int(sim_ns / 10) - 2, wall))  # minus the 2 reset cycles
    return rows


def memory(seed: int, samples: int) -> list[dict]:
    n_in, n_out, D, acc = 700, 48, 60, 24
    delays = tuple(range(4, 61, 4))  # 15 levels, max 60
    assert len(delays) == 15 and max(delays) == D
    rng = np.random.default_rng(seed)
    rows = []
    for p in tqdm((0.01, 0.05, 0.20), desc="memory", leave=False):
        X = rng.random((samples, 100, n_in)) < p
        C = int(scdq_occupancy(X.sum(axis=2), D).max())
        hw_bits = SCDQ(n_in, delays, C).memory_bits
        ref = scdq_bits(n_in, D, C)
        assert hw_bits == ref, (hw_bits, ref)
        rows.append({"activity": p, "C": C, "ring": ring_buffer_bits(n_out, D, acc), "scdq": ref,
                     "acc": scdq_layered_accumulator_bits(n_out, acc)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=20, help="Bernoulli rasters per activity level")
    ap.add_argument("--quick", action="store_true", help="shorter simulator-speed stimulus")
    a = ap.parse_args(argv)

    print("== 1. throughput on back-to-back traffic (pysim, ready always high, no idle)")
    print(f"{'case':48s} {'ops':>7s} {'cycles':>7s} {'ops/cycle':>9s}")
    for label, ops, cyc in throughput(a.seed):
        print(f"{label:48s} {ops:7d} {cyc:7d} {ops / max(cyc, 1):9.3f}")

    print("\n== 2. simulated cycles/s, same RingBufferDelay stimulus, Python drives every cycle")
    rows = sim_speed(a.seed, a.quick)
    base = rows[0][1] / rows[0][2]
    print(f"{'simulator':20s} {'cycles':>8s} {'wall s':>8s} {'cycles/s':>10s} {'vs pysim':>9s}")
    for name, cyc, wall in rows:
        print(f"{name:20s} {cyc:8d} {wall:8.2f} {cyc / wall:10.0f} {cyc / wall / base:8.2f}x")

    print(f"\n== 3. delay memory, 700-in / 48-neuron layer, max_delay 60, 15 levels (4..60 step 4), acc 24 bit")
    print(f"   SCDQ capacity C = peak hw.reference.scdq_occupancy over {a.samples} Bernoulli rasters, T = 100")
    print(f"{'activity':>8s} {'C':>6s} {'ring bits':>10s} {'SCDQ bits':>10s} {'ring/SCDQ':>9s} "
          f"{'SCDQ+layered acc':>16s} {'ring/(SCDQ+acc)':>15s}")
    for r in memory(a.seed, a.samples):
        tot = r["scdq"] + r["acc"]
        print(f"{r['activity']:8.0%} {r['C']:6d} {r['ring']:10d} {r['scdq']:10d} {r['ring'] / r['scdq']:9.2f} "
              f"{tot:16d} {r['ring'] / tot:15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
