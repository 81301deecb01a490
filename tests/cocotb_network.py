"""cocotb bench for the generated Verilog of a whole :class:`hw.network.Network`.

Driven from tests/test_network_cocotb.py through ``hdl_util.run_cocotb``. The
parameters (``$SPIKELINE_COCOTB_PARAMS``) name a JSON file that holds the
build's :class:`~hw.network.NetworkSpec` and a list of cases. A case is one
random model programmed into the build: its configuration-port writes
(``config_writes``), and per sample the stimulus writes (``stimulus_writes``)
and what :mod:`hw.reference` expects (emissions per layer in order, readout
sums after every step, SOPs per layer). The expectation is computed by the
pytest side from the reference alone; this module only drives the chip like a
host does (program, load, pulse ``start``, wait for ``done``, read the result
port), decodes with ``decode_results`` and compares bit for bit. It also writes
every decoded sample to ``out`` so that pytest can run its own differential
check (``assert_matches``) on the same data.
"""
from __future__ import annotations

import json
from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge

from hdl_util import cocotb_params, cocotb_reset
from hw.model_file import Layer, Model, Widths
from hw.network import LayerSpec, NetworkSpec, ResultWords, decode_results, result_plan, result_reads

MAX_CYCLES = 2_000_000


def spec_from_dict(d: dict) -> NetworkSpec:
    layers = tuple(LayerSpec(L["n_in"], L["n_out"], tuple(L["delays"]), L["nnz_max"], L["scdq_capacity"])
                   for L in d["layers"])
    return NetworkSpec(layers, d["delay_unit"], Widths(**d["widths"]), d["T_max"], d["max_events"],
                       d["max_spikes"], d["fifo_depth"], d.get("ring_lanes", 1),
                       d.get("run_ahead", NetworkSpec.run_ahead))


def shape_model(T: int, n_classes: int) -> Model:
    """decode_results needs only ``T`` and ``n_classes`` of the model."""
    import numpy as np
    return Model([Layer(np.array([0]), np.zeros((1, 1, n_classes), np.int8), 1, 0, spiking=False)], 1, T)


async def write_all(dut, writes) -> None:
    """One configuration-port write per clock cycle (inputs change at the falling edge)."""
    for sel, addr, data in writes:
        await FallingEdge(dut.clk)
        dut.cfg_we.value = 1
        dut.cfg_sel.value = sel
        dut.cfg_addr.value = addr
        dut.cfg_data.value = data
    await FallingEdge(dut.clk)
    dut.cfg_we.value = 0


async def read_many(dut, keys) -> dict:
    """Read ``(sel, addr)`` pairs through the result port, pipelined: the data
    of an address comes one clock edge after it is presented."""
    out = {}
    prev = None
    for key in list(keys) + [None]:
        await FallingEdge(dut.clk)
        if prev is not None:
            out[prev] = int(dut.res_data.value)
        if key is not None:
            dut.res_sel.value, dut.res_addr.value = key
        prev = key
    return out


async def read_sample(dut, spec: NetworkSpec, model: Model):
    """Decode one finished sample: the reads of ``result_plan`` (the status block
    first, whose record counts decide how many record words follow)."""
    plan = result_plan(spec, model.T, model.n_classes)
    status = await read_many(dut, [(spec.sel_status, a) for a in range(plan[0].n)])
    status = [status[(spec.sel_status, a)] for a in range(plan[0].n)]
    keys = result_reads(plan[1:], status)
    rest = await read_many(dut, keys)
    return decode_results(spec, model, ResultWords(plan, status + [rest[k] for k in keys]))


def check_sample(tag: str, got, exp: dict) -> None:
    for l, (et, ej) in enumerate(exp["emissions"]):
        gt, gj = got.emissions[l]
        assert gt.tolist() == et, f"{tag} layer {l}: emission steps {gt.tolist()} != reference {et}"
        assert gj.tolist() == ej, f"{tag} layer {l}: emission order {gj.tolist()} != reference {ej}"
    assert got.readout.tolist() == exp["readout"], f"{tag}: readout {got.readout.tolist()} != reference {exp['readout']}"
    sops = [c["sops"] for c in got.counters]
    assert sops == exp["sops"], f"{tag}: SOP counters {sops} != reference {exp['sops']}"
    spikes = [c["spikes"] for c in got.counters[:-1]]
    assert spikes == [len(e[0]) for e in exp["emissions"]], f"{tag}: spike counters {spikes}"
    assert not got.record_overflow, f"{tag}: record overflow"
    for l, c in enumerate(got.counters):
        assert c["overflow"] == 0 and c["dropped"] == 0, f"{tag} core {l}: SCDQ overflow {c}"
        # the core is busy for at least one cycle per SOP
        assert c["busy"] >= c["sops"], f"{tag} core {l}: busy {c['busy']} < sops {c['sops']}"


def kick_initial_triggers(dut) -> int:
    """Emulate yosys' time-0 evaluation of combinational processes.

    Amaranth's Verilog (yosys ``write_verilog``) gives every module a
    ``reg \\$auto$verilog_backend...dump_module$N = 0`` that each ``always @*``
    reads, so that the processes run once at time 0. Icarus 11 produces no
    event for a declaration initializer, so a process whose inputs keep their
    initial values stays X (seen: ``delays[c_op.k]`` of a ring core stays X
    until ``k`` first changes, and the first ring add of the first sample is
    lost). Toggling the trigger register through VPI runs every such process
    once, which is what the generated code intends. Returns how many were found."""
    n = 0

    def walk(h, depth):
        nonlocal n
        for c in h:
            name = c._name
            if "verilog_backend" in name and "dump_module" in name:
                c.value = 1
                n += 1
            elif depth < 8 and not name.startswith("$") and "[" not in name:
                try:
                    walk(c, depth + 1)
                except TypeError:  # not iterable: a plain signal
                    pass

    walk(dut, 0)
    return n


@cocotb.test()
async def network_random_models(dut):
    """Random models programmed into one build, both modes, several samples each."""
    p = cocotb_params()
    blob = json.loads(Path(p["cases"]).read_text())
    spec = spec_from_dict(blob["spec"])
    # the time-0 kick works around an Icarus-only issue; Verilator evaluates
    # every process at time 0 itself, so it runs there as built
    if p.get("t0_kick", True) and "icarus" in cocotb.SIM_NAME.lower():
        dut._log.info(f"kicked {kick_initial_triggers(dut)} time-0 process triggers")
    await cocotb_reset(dut)
    dut.cfg_we.value = 0
    dut.start.value = 0
    dut.res_sel.value = 0
    dut.res_addr.value = 0
    results, failures = [], []
    for ci, case in enumerate(blob["cases"]):
        await write_all(dut, case["config"])
        model = shape_model(case["T"], case["n_classes"])
        for b, sample in enumerate(case["samples"]):
            tag = f"case {ci} (seed {case['seed']}, {case['mode']}) sample {b}"
            await write_all(dut, sample["stimulus"])
            await FallingEdge(dut.clk)
            dut.start.value = 1
            await FallingEdge(dut.clk)
            dut.start.value = 0
            # the host inputs may be registered: give start time to take ``done`` down
            # (a sample runs far longer than this: the clear pass alone visits every neuron)
            await ClockCycles(dut.clk, 4)
            waited = 4
            while not int(dut.done.value):
                await ClockCycles(dut.clk, 16)
                waited += 16
                assert waited < MAX_CYCLES, f"{tag}: no done after {waited} cycles"
            got = await read_sample(dut, spec, model)
            results.append({
                "case": ci, "sample": b, "cycles": got.cycles, "counters": got.counters,
                "record_overflow": got.record_overflow, "readout": got.readout.tolist(),
                "emissions": [[t.tolist(), j.tolist()] for t, j in got.emissions],
            })
            try:
                check_sample(tag, got, sample["expect"])
            except AssertionError as e:  # keep going: the list of failing samples tells more than the first
                dut._log.error(str(e))
                failures.append(tag)
    Path(p["out"]).write_text(json.dumps(results))
    assert not failures, f"{len(failures)} samples differ from the reference: {failures}"
