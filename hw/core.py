"""NeuronCore: one layer of the event-driven SNN accelerator (Amaranth 0.5).

The core implements the contract of :mod:`hw.reference` for one layer, in
``layered`` or ``async`` mode (a run-time register), with one delay unit chosen
at build time: ``ring`` (post-synaptic :class:`~hw.delay.ring_buffer.RingBufferDelay`)
or ``scdq`` (pre-synaptic :class:`~hw.delay.scdq.SCDQ`).

The core is three stream components joined with ``wiring.connect``, plus its
delay unit (one synaptic operation per cycle, no bubbles on back-to-back events;
with ``ring_lanes=2`` a ring core issues the RING adds of one CSR row two per cycle)::

    inp --> StepController --rows--> RowIterator --ptrs--> UpdatePipeline --> out / rec
               |   |  ^                                       ^  ^   |
               |   |  +---- due (SCDQ) / drain_resp (ring) ---+--+   +--ring--> RingBufferDelay
               |   +--ctl (DRAIN, FIRE, RSUM, CLEAR) ---------+  |
               +------eos (end-of-step token) -------------------+

* :class:`hw.step_controller.StepController`: the step phases (:class:`Phase`),
  the order of the contract's inputs, the delay unit's strobes;
* :class:`hw.row_iterator.RowIterator`: ``(event, level)`` rows in, synapse
  pointers out (empty CSR rows cost no issue slot);
* :class:`hw.update_pipeline.UpdatePipeline`: issue -> B -> C, synapse and
  state memories, leak, saturation, threshold, reset, refractory flags.

Each component's docstring states its protocol; each has its own test bench
(tests/test_step_controller.py, tests/test_row_iterator.py,
tests/test_update_pipeline.py). The core itself holds the run-time registers,
the configuration decode, the delay unit and the counters.

Per step the controller runs these phases (see hw/reference.py for the rules):

* async:   delayed events (SCDQ stream, or ring drain of slot t)
           -> same-step input events until end-of-step -> readout sum (readout core).
           The leak of every neuron at the start of the step is lazy: each
           neuron is marked stale, and the first op that touches it in stage B
           (update, drain, readout sum or a background leak issued in an idle
           slot) leaks it first. A neuron is unobservable until it is touched,
           so this equals leak-all-first; a spiking core leaks the neurons it
           has not touched before its end of step.
* layered: delayed events (SCDQ -> input accumulator) -> same-step input events
           (into the accumulator, or every tap into the ring) -> FIRE pass
           ``v = sat(leak(v) + x)``, threshold, reset, readout sum

The ring buffer is cleared on drain: every slot a sample writes (arrival
``t + d < T``) is drained and zeroed at its arrival step, so after a sample
that ran all ``T`` steps it is all zero; the ``n (D + 1)``-cycle clear runs only
after reset or an unfinished (early-exit) sample.

End of step is signalled downstream by an ``eos`` token on the output stream,
so the next core can run concurrently (async) or hold the layer barrier
(layered: it fires only after the ``eos`` of its input).

Synapses are programmed at run time through the configuration port
(``cfg_sel``: 0 row pointers, 1 synapses ``{col, weight}``, 2 registers:
0 threshold, 1 decay, 2 reset-subtract, 3 mode-async, 4 T).
"""
from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.reference import clog2
from hw.row_iterator import RowIterator
from hw.step_controller import Phase, StepController
from hw.update_pipeline import Op, UpdatePipeline, _bits, event_layout, record_layout

__all__ = ["NeuronCore", "Op", "Phase", "event_layout", "record_layout", "CFG_ROWPTR", "CFG_SYN", "CFG_REG",
           "CFG_LEVELS", "REG_THRESHOLD", "REG_DECAY", "REG_SUBTRACT", "REG_ASYNC", "REG_T"]


CFG_ROWPTR, CFG_SYN, CFG_REG, CFG_LEVELS = 0, 1, 2, 3
REG_THRESHOLD, REG_DECAY, REG_SUBTRACT, REG_ASYNC, REG_T = range(5)


class NeuronCore(wiring.Component):
    """One layer: CSR synapse memory, neuron state, one delay unit, counters.

    Parameters
    ----------
    n_in, n_out : layer shape (build time).
    delays : sorted distinct delay levels of the layer (build time).
    nnz_max : synapse memory depth (non-zero taps).
    spiking : ``False`` builds the readout variant (wide ``R`` accumulators,
        readout records instead of spikes).
    delay_unit : ``"ring"`` or ``"scdq"``.
    scdq_capacity : event capacity ``C`` of the SCDQ.
    T_max : the largest number of steps a sample may have.
    membrane_bits, acc_bits, readout_bits, weight_bits : widths (docs/contract.md).
    ring_lanes : 1 or 2 ring adds per cycle in a ring build (RING ops of one CSR
        row issued in pairs; hw/row_iterator.py, hw/update_pipeline.py,
        hw/delay/ring_buffer.py). An SCDQ build has no RING ops: it is built
        with one lane whatever is asked (``self.ring_lanes`` says what was built).
    """

    def __init__(self, *, n_in, n_out, delays, nnz_max, spiking=True, delay_unit="scdq",
                 scdq_capacity=256, T_max=256, membrane_bits=24, acc_bits=24, readout_bits=32,
                 weight_bits=8, ring_lanes=1):
        from hw.delay.ring_buffer import check_lanes
        check_lanes("NeuronCore", ring_lanes)
        delays = tuple(int(d) for d in delays)
        for name, v, lo in (("n_in", n_in, 1), ("n_out", n_out, 1), ("nnz_max", nnz_max, 1),
                            ("T_max", T_max, 1), ("scdq_capacity", scdq_capacity, 1)):
            if not isinstance(v, int) or v < lo:
                raise ValueError(f"NeuronCore: {name} must be an int >= {lo}, got {v!r}")
        if not delays or list(delays) != sorted(set(delays)) or delays[0] < 0:
            raise ValueError(f"NeuronCore: delays must be sorted, distinct and >= 0, got {delays}")
        if delay_unit not in ("ring", "scdq"):
            raise ValueError(f"NeuronCore: delay_unit must be 'ring' or 'scdq', got {delay_unit!r}")
        self.n_in, self.n_out, self.delays, self.nnz_max = n_in, n_out, delays, nnz_max
        self.K, self.D = len(delays), delays[-1]
        self.spiking, self.delay_unit, self.scdq_capacity, self.T_max = spiking, delay_unit, scdq_capacity, T_max
        self.membrane_bits, self.acc_bits, self.readout_bits, self.weight_bits = membrane_bits, acc_bits, readout_bits, weight_bits
        self.ring_lanes = ring_lanes if delay_unit == "ring" else 1
        self.n_rows = self.K * n_in
        self.tw = clog2(T_max + 1) + 1
        self.cfg_data_bits = max(32, _bits(n_out) + weight_bits, clog2(nnz_max + 1), self.K)
        members = {
            "inp": In(stream.Signature(event_layout(n_in))),
            "step_start": In(1),
            "t": In(self.tw),
            "clear": In(1),
            "done": Out(1),
            "cfg_we": In(1),
            "cfg_sel": In(2),
            "cfg_addr": In(max(_bits(self.n_rows + 1), _bits(nnz_max), 3)),
            "cfg_data": In(self.cfg_data_bits),
            "cnt_busy": Out(32),
            "cnt_sop": Out(32),
            "cnt_stall": Out(32),
            "cnt_spike": Out(32),
            "occupancy": Out(32),
            "peak": Out(32),
            "overflow": Out(1),
            "dropped": Out(32),
        }
        if spiking:
            members["out"] = Out(stream.Signature(event_layout(n_out)))
        else:
            members["rec"] = Out(stream.Signature(record_layout(n_out, readout_bits)))
        super().__init__(members)

    @property
    def uses_scdq(self) -> bool:
        return self.delay_unit == "scdq" and self.D > 0

    def elaborate(self, platform):
        m = Module()
        K = self.K
        KW = _bits(K)

        # ---------------- run-time registers (configuration port, cfg_sel CFG_REG)
        threshold = Signal(signed(self.membrane_bits))
        decay = Signal(13)
        subtract = Signal()
        is_async = Signal()
        T = Signal(self.tw)
        # (If chains rather than Switch: Verilator lints incomplete case statements)
        cfg_reg = self.cfg_we & (self.cfg_sel == CFG_REG)
        for reg, sig in ((REG_THRESHOLD, threshold), (REG_DECAY, decay), (REG_SUBTRACT, subtract),
                         (REG_ASYNC, is_async), (REG_T, T)):
            with m.If(cfg_reg & (self.cfg_addr == reg)):
                m.d.sync += sig.eq(self.cfg_data)

        # ---------------- the stages, each its own component
        lanes = self.ring_lanes
        it = RowIterator(self.n_rows, self.nnz_max, Op, KW, lanes=lanes, pair_kind=Op.RING if lanes == 2 else None)
        pipe = UpdatePipeline(
            n_out=self.n_out, nnz_max=self.nnz_max, delays=self.delays, spiking=self.spiking,
            delay_unit=self.delay_unit, membrane_bits=self.membrane_bits, acc_bits=self.acc_bits,
            readout_bits=self.readout_bits, weight_bits=self.weight_bits, ring_lanes=lanes)
        ctrl = StepController(
            n_in=self.n_in, n_out=self.n_out, delays=self.delays, delay_unit=self.delay_unit,
            spiking=self.spiking, T_max=self.T_max, acc_bits=self.acc_bits)
        m.submodules.rows, m.submodules.pipe, m.submodules.ctrl = it, pipe, ctrl
        self.stages = {"rows": it, "pipe": pipe, "ctrl": ctrl}  # for test-bench monitors (bench/core.py --profile)
        # controller -> row iterator -> pipeline; controller -> pipeline (ops without a synapse, end of step)
        wiring.connect(m, ctrl.rows, it.rows)
        wiring.connect(m, it.ptrs, pipe.ptrs)
        wiring.connect(m, ctrl.ctl, pipe.ctl)
        wiring.connect(m, ctrl.eos, pipe.eos)
        wiring.connect(m, wiring.flipped(self.inp), ctrl.inp)
        if self.spiking:
            wiring.connect(m, pipe.out, wiring.flipped(self.out))
        else:
            wiring.connect(m, pipe.rec, wiring.flipped(self.rec))
        m.d.comb += [
            it.cfg_we.eq(self.cfg_we & (self.cfg_sel == CFG_ROWPTR)), it.cfg_addr.eq(self.cfg_addr),
            it.cfg_data.eq(self.cfg_data),
            pipe.syn_we.eq(self.cfg_we & (self.cfg_sel == CFG_SYN)), pipe.syn_addr.eq(self.cfg_addr),
            pipe.syn_data.eq(self.cfg_data),
            pipe.threshold.eq(threshold), pipe.decay.eq(decay), pipe.subtract.eq(subtract),
            pipe.is_async.eq(is_async), pipe.step_start.eq(self.step_start), pipe.clear.eq(self.clear),
            pipe.bg_en.eq(ctrl.bg_en),
            ctrl.step_start.eq(self.step_start), ctrl.clear.eq(self.clear), ctrl.t.eq(self.t), ctrl.T.eq(T),
            ctrl.is_async.eq(is_async), ctrl.pipe_idle.eq(pipe.idle & it.idle),
            ctrl.rows_idle.eq(it.idle), ctrl.b_idle.eq(pipe.b_idle), ctrl.stale_any.eq(pipe.stale_any),
            self.done.eq(ctrl.done),
        ]

        # ---------------- delay unit
        if self.delay_unit == "ring":
            from hw.delay.ring_buffer import RingBufferDelay
            dunit = RingBufferDelay(self.n_out, self.D, acc_bits=self.acc_bits, weight_bits=self.weight_bits,
                                    lanes=lanes)
            m.submodules.delay = dunit
            wiring.connect(m, pipe.ring, dunit.add)
            wiring.connect(m, ctrl.drain_req, dunit.drain_req)
            wiring.connect(m, dunit.drain_resp, ctrl.drain_resp)
            m.d.comb += [ctrl.unit_busy.eq(dunit.busy), dunit.clear.eq(ctrl.unit_clear),
                         dunit.advance.eq(ctrl.unit_advance),
                         ctrl.lm_we.eq(self.cfg_we & (self.cfg_sel == CFG_LEVELS)), ctrl.lm_addr.eq(self.cfg_addr),
                         ctrl.lm_data.eq(self.cfg_data)]
        elif self.uses_scdq:
            from hw.delay.scdq import SCDQ
            dunit = SCDQ(self.n_in, self.delays, self.scdq_capacity)
            m.submodules.delay = dunit
            wiring.connect(m, dunit.out, ctrl.due)
            wiring.connect(m, ctrl.push, dunit.push)
            m.d.comb += [ctrl.due_done.eq(dunit.due_done), dunit.start.eq(ctrl.unit_start),
                         dunit.advance.eq(ctrl.unit_advance), dunit.clear.eq(ctrl.unit_clear),
                         self.occupancy.eq(dunit.occupancy), self.peak.eq(dunit.peak),
                         self.overflow.eq(dunit.overflow), self.dropped.eq(dunit.dropped)]

        # ---------------- counters (cleared with the core)
        with m.If(self.clear):
            m.d.sync += [self.cnt_busy.eq(0), self.cnt_sop.eq(0), self.cnt_stall.eq(0), self.cnt_spike.eq(0)]
        with m.Else():
            with m.If(ctrl.busy):
                m.d.sync += self.cnt_busy.eq(self.cnt_busy + 1)
            with m.If(ctrl.busy & pipe.stall):
                m.d.sync += self.cnt_stall.eq(self.cnt_stall + 1)
            if lanes == 2:  # a pointer pair completes 2 SOPs in one cycle
                m.d.sync += self.cnt_sop.eq(self.cnt_sop + pipe.sop)
            else:
                with m.If(pipe.sop):
                    m.d.sync += self.cnt_sop.eq(self.cnt_sop + 1)
            with m.If(pipe.spike):
                m.d.sync += self.cnt_spike.eq(self.cnt_spike + 1)
        return m
