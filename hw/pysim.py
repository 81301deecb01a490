"""Run a :class:`~hw.network.Network` in Amaranth's built-in simulator.

The test bench does what a host does with the chip: program the configuration
port, load a sample's events, pulse ``start``, wait for ``done`` and read the
result port.
"""
from __future__ import annotations

import os
from contextlib import nullcontext

import numpy as np
from amaranth.sim import Simulator

from hw.model_file import Model
from hw.network import (HdlSample, Network, NetworkSpec, ResultWords, config_writes, decode_results, result_plan,
                        result_reads, stimulus_writes)


def run_network(spec: NetworkSpec, model: Model, X: np.ndarray, mode: str, vcd: str | None = None,
                max_cycles: int = 10_000_000, progress=None, corrupt=None, early_exit=None,
                monitor=None) -> list[HdlSample]:
    """Simulate every sample of ``X`` (``[B, T, C]`` or ``[T, C]``); returns one
    :class:`HdlSample` each. ``vcd``: path of a waveform file (or set
    ``SPIKELINE_WAVES``). ``corrupt``: extra ``(sel, addr, data)`` writes applied
    after programming (fault injection for tests). ``progress(n)`` is called per sample.
    ``early_exit``: ``None`` or ``(margin, steps)`` (:func:`hw.network.config_writes`).
    ``monitor``: ``async fn(ctx, dut)``, run as a background test bench (it may watch any signal)."""
    return run_programs(spec, [(model, X, mode, early_exit, corrupt)], vcd, max_cycles, progress, monitor)[0]


def run_programs(spec: NetworkSpec, programs, vcd: str | None = None, max_cycles: int = 10_000_000, progress=None,
                 monitor=None) -> list[list[HdlSample]]:
    """Several models through one build in one simulation, as a host reprograms a chip between
    runs: ``programs`` is a list of ``(model, X, mode, early_exit, corrupt)``; returns the
    :class:`HdlSample` list of each."""
    dut = Network(spec)
    results: list[list[HdlSample]] = []

    async def bench(ctx):
        async def write(sel, addr, data):
            ctx.set(dut.cfg_we, 1)
            ctx.set(dut.cfg_sel, sel)
            ctx.set(dut.cfg_addr, addr)
            ctx.set(dut.cfg_data, data)
            await ctx.tick()

        async def read(sel, addr):
            ctx.set(dut.res_sel, sel)
            ctx.set(dut.res_addr, addr)
            await ctx.tick()
            return ctx.get(dut.res_data)

        for model, X, mode, early_exit, corrupt in programs:
            X = np.asarray(X, dtype=bool)
            if X.ndim == 2:
                X = X[None]
            results.append([])
            for w in config_writes(spec, model, mode, early_exit) + list(corrupt or []):
                await write(*w)
            for b in range(X.shape[0]):
                for w in stimulus_writes(spec, X[b]):
                    await write(*w)
                ctx.set(dut.cfg_we, 0)
                ctx.set(dut.start, 1)
                await ctx.tick()
                ctx.set(dut.start, 0)
                n = 0
                while not ctx.get(dut.done):
                    await ctx.tick()
                    n += 1
                    if n > max_cycles:
                        raise TimeoutError(f"sample {b}: no done after {max_cycles} cycles")
                # the result port answers one cycle after the address; the status block comes first
                plan = result_plan(spec, model.T, model.n_classes)
                status = [await read(spec.sel_status, a) for a in range(plan[0].n)]
                words = status + [await read(*key) for key in result_reads(plan[1:], status)]
                results[-1].append(decode_results(spec, model, ResultWords(plan, words)))
                if progress:
                    progress(len(results[-1]))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if monitor is not None:
        async def watch(ctx):
            await monitor(ctx, dut)

        sim.add_testbench(watch, background=True)
    vcd = vcd or (os.environ.get("SPIKELINE_WAVES") and "network.vcd")
    with (sim.write_vcd(vcd, gtkw_file=vcd.rsplit(".", 1)[0] + ".gtkw") if vcd else nullcontext()):
        sim.run()
    return results
