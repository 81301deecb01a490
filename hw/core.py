"""NeuronCore: one layer of the event-driven SNN accelerator (Amaranth 0.5).

The core implements the contract of :mod:`hw.reference` for one layer, in
``layered`` or ``async`` mode (a run-time register), with one delay unit chosen
at build time: ``ring`` (post-synaptic :class:`~hw.delay.ring_buffer.RingBufferDelay`)
or ``scdq`` (pre-synaptic :class:`~hw.delay.scdq.SCDQ`).

Pipeline (one synaptic operation per cycle, no bubbles on back-to-back events)::

    event (i, k) -> row fetch (CSR row_ptr) -> synapse read (col, w)
                 -> state read (v, acc, R) -> update / threshold -> spike out

The state memories are read in stage B and written in stage C through
transparent read ports, so back-to-back updates of one neuron see each other
without stalls. A stall happens only when the spike output or the ring
buffer's add port is not ready.

Stages: the row iterator (:class:`hw.row_iterator.RowIterator`, its own
component: ``(event, level)`` rows in, synapse pointers out; empty CSR rows
cost no issue slot), the update pipeline (issue -> B -> C below) and the step
controller (:class:`Phase`).

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

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.reference import clog2
from hw.row_iterator import RowIterator


def _bits(n: int) -> int:
    """Bits to index ``n`` items (at least 1)."""
    return max(1, clog2(n))


def event_layout(n: int) -> data.StructLayout:
    """An inter-core stream item: neuron index, or end-of-step when ``eos``."""
    return data.StructLayout({"idx": unsigned(_bits(n)), "eos": unsigned(1)})


class Op(enum.Enum, shape=3):
    """What an operation does in the update stage (C)."""

    ADD = 0    # async update v <- sat(v + w), then the threshold check
    ACC = 1    # layered SCDQ: input accumulator += w
    RING = 2   # ring buffer: add w into slot t + d
    LEAK = 3   # async: leak a neuron that is still stale this step (else nothing)
    FIRE = 4   # layered: v <- sat(leak(v) + x), threshold, reset; readout R += v
    DRAIN = 5  # async ring: the pre-summed slot of step t as one update
    RSUM = 6   # async readout: R += v (leaking a stale neuron first)
    CLEAR = 7  # start of a sample: v, accumulator, R <- 0


class Phase(enum.Enum, shape=4):
    """The step controller's phase (one step: DELAYED -> INPUT -> SETTLE -> [FIRE | RSUM] -> FLUSH -> EOS)."""

    IDLE = 0
    CLEAR = 1      # zero every neuron's state
    CLEARWAIT = 2  # wait for the pipeline (and a ring clear)
    DELAYED = 3    # delayed events due at t (SCDQ stream, or async ring drain)
    INPUT = 4      # same-step input events until the input's end-of-step token
    SETTLE = 5     # wait for the pipeline (a spiking async core also leaks its stale neurons)
    FIRE = 6       # layered: the neuron pass
    RSUM = 7       # async readout: the readout sums
    FLUSH = 8      # wait for the pipeline
    EOS = 9        # send the end-of-step token
    DONE = 10      # step (or clear) finished: wait for the next step_start or clear


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
    """

    def __init__(self, *, n_in, n_out, delays, nnz_max, spiking=True, delay_unit="scdq",
                 scdq_capacity=256, T_max=256, membrane_bits=24, acc_bits=24, readout_bits=32,
                 weight_bits=8):
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
            members["rec"] = Out(stream.Signature(data.StructLayout({"j": unsigned(_bits(n_out)), "value": signed(readout_bits)})))
        super().__init__(members)

    @property
    def uses_scdq(self) -> bool:
        return self.delay_unit == "scdq" and self.D > 0

    def elaborate(self, platform):
        m = Module()
        n_out, K = self.n_out, self.K
        OW, KW = _bits(n_out), _bits(K)
        PW = clog2(self.nnz_max + 1)
        SW = _bits(self.nnz_max)
        vb, ab, rb = self.membrane_bits, self.acc_bits, self.readout_bits
        vmax, vmin = (1 << (vb - 1)) - 1, -(1 << (vb - 1))
        rmax, rmin = (1 << (rb - 1)) - 1, -(1 << (rb - 1))
        # padded to a power of two so that indexing is a complete case in Verilog
        delays = Array(Const(self.delays[k] if k < self.K else 0, unsigned(max(1, self.D.bit_length())))
                       for k in range(1 << _bits(self.K)))
        has_d0 = self.delays[0] == 0

        # ---------------- run-time registers
        threshold = Signal(signed(vb))
        decay = Signal(13)
        subtract = Signal()
        is_async = Signal()
        T = Signal(self.tw)
        t = Signal(self.tw)

        # ---------------- memories
        syn_layout = data.StructLayout({"col": unsigned(OW), "w": signed(self.weight_bits)})
        m.submodules.syn = syn = memory.Memory(shape=syn_layout, depth=self.nnz_max, init=[])
        m.submodules.vmem = vmem = memory.Memory(shape=signed(vb), depth=n_out, init=[])
        syn_wr = syn.write_port()
        syn_rd = syn.read_port()
        v_wr = vmem.write_port()
        v_rd = vmem.read_port(transparent_for=(v_wr,))
        if self.delay_unit == "scdq":
            m.submodules.accmem = accmem = memory.Memory(shape=signed(ab), depth=n_out, init=[])
            a_wr = accmem.write_port()
            a_rd = accmem.read_port(transparent_for=(a_wr,))
        if not self.spiking:
            m.submodules.rmem = rmem = memory.Memory(shape=signed(rb), depth=n_out, init=[])
            r_wr = rmem.write_port()
            r_rd = rmem.read_port(transparent_for=(r_wr,))

        # ---------------- configuration port
        # (If chains rather than Switch: Verilator lints incomplete case statements)
        cfg_reg = self.cfg_we & (self.cfg_sel == CFG_REG)
        m.d.comb += [syn_wr.addr.eq(self.cfg_addr), syn_wr.data.eq(self.cfg_data),
                     syn_wr.en.eq(self.cfg_we & (self.cfg_sel == CFG_SYN))]
        for reg, sig in ((REG_THRESHOLD, threshold), (REG_DECAY, decay), (REG_SUBTRACT, subtract),
                         (REG_ASYNC, is_async), (REG_T, T)):
            with m.If(cfg_reg & (self.cfg_addr == reg)):
                m.d.sync += sig.eq(self.cfg_data)

        # ---------------- delay unit
        if self.delay_unit == "ring":
            # level mask: bit k of word i is set when row (k, i) holds synapses (cfg_sel CFG_LEVELS)
            m.submodules.lvmask = lvmask = memory.Memory(shape=unsigned(K), depth=self.n_in, init=[])
            lm_wr = lvmask.write_port()
            lm_rd = lvmask.read_port(domain="comb")
            m.d.comb += [lm_wr.addr.eq(self.cfg_addr), lm_wr.data.eq(self.cfg_data),
                         lm_wr.en.eq(self.cfg_we & (self.cfg_sel == CFG_LEVELS))]
            lv_done = Signal(K)  # levels of the current input event already sent
            in_time_mask = Signal(K)  # levels whose arrival t + d_k is before T
            m.d.comb += in_time_mask.eq(Cat(*[(t + self.delays[k]) < T for k in range(K)]))
            from hw.delay.ring_buffer import RingBufferDelay
            m.submodules.delay = dunit = RingBufferDelay(n_out, self.D, acc_bits=ab, weight_bits=self.weight_bits)
        elif self.uses_scdq:
            from hw.delay.scdq import SCDQ
            m.submodules.delay = dunit = SCDQ(self.n_in, self.delays, self.scdq_capacity)
            m.d.comb += [self.occupancy.eq(dunit.occupancy), self.peak.eq(dunit.peak),
                         self.overflow.eq(dunit.overflow), self.dropped.eq(dunit.dropped)]

        # ---------------- pipeline: issue (synapse address) -> B (synapse data, state address) -> C (update)
        adv = Signal()  # the pipeline moves this cycle; low only on output backpressure
        op_layout = data.StructLayout({"kind": Op, "syn": unsigned(1),
                                       "col": unsigned(OW), "x": signed(ab), "k": unsigned(KW)})
        b_valid = Signal()
        b_op = Signal(op_layout)
        c_valid = Signal()
        c_op = Signal(op_layout)
        b_col = Signal(OW)
        b_x = Signal(signed(ab))
        syn_data = syn_layout(syn_rd.data)
        m.d.comb += [
            syn_rd.en.eq(adv),
            b_col.eq(Mux(b_op.syn, syn_data.col, b_op.col)),
            b_x.eq(Mux(b_op.syn, syn_data.w, b_op.x)),
            v_rd.addr.eq(b_col), v_rd.en.eq(adv),
        ]
        if self.delay_unit == "scdq":
            m.d.comb += [a_rd.addr.eq(b_col), a_rd.en.eq(adv)]
        if not self.spiking:
            m.d.comb += [r_rd.addr.eq(b_col), r_rd.en.eq(adv)]
        with m.If(adv):
            m.d.sync += [c_valid.eq(b_valid), c_op.eq(b_op), c_op.col.eq(b_col), c_op.x.eq(b_x)]

        # ---------------- lazy leak (async): at step start every neuron becomes ``stale``; the first
        # op that touches a stale neuron in stage B (an update, a drain, a background leak or the
        # readout sum) applies the leak in stage C before its own work and clears the flag. All ops
        # pass stage B in order, so each neuron is leaked exactly once, before its first update of
        # the step, as the contract's leak-all-first. Idle issue slots leak stale neurons in the
        # background (lowest index first); a spiking core leaks the rest before its end of step.
        stale = Signal(n_out)
        c_lk = Signal()
        b_touch = (b_op.kind == Op.ADD) | (b_op.kind == Op.DRAIN) | (b_op.kind == Op.LEAK) | (b_op.kind == Op.RSUM)
        b_stale = stale.bit_select(b_col, 1)
        with m.If(adv):
            m.d.sync += c_lk.eq(b_valid & b_touch & b_stale)
            with m.If(b_valid & b_touch):
                m.d.sync += stale.eq(stale & ~(1 << b_col))
        # background pick: the lowest stale neuron not already in stage B
        bg_mask = Signal(n_out)
        m.d.comb += bg_mask.eq(stale & ~Mux(b_valid, 1 << b_col, 0))
        bg_valid, bg_col = Signal(), Signal(OW)
        bg_phase = Signal()  # phases in which idle issue slots leak stale neurons (set by the controller)
        m.d.comb += bg_valid.eq(bg_mask.any())
        for jj in reversed(range(n_out)):
            with m.If(bg_mask[jj]):
                m.d.comb += bg_col.eq(jj)

        # stage C: compute
        v = v_rd.data
        refr = Signal(n_out)
        c_kind = c_op.kind
        av = Signal(vb + 1)
        m.d.comb += av.eq(Mux(v < 0, -v, v))
        q = Signal(vb + 1)
        m.d.comb += q.eq((av * decay) >> 12)
        leaked = Signal(signed(vb + 1))
        m.d.comb += leaked.eq(Mux(v < 0, -q, q))

        def sat(x, lo, hi):
            return Mux(x > hi, hi, Mux(x < lo, lo, x))

        base = Signal(signed(vb))  # the membrane an async op starts from: leaked first if stale
        m.d.comb += base.eq(Mux(c_lk, leaked, v))
        drive_x = Signal(signed(ab))
        if self.delay_unit == "scdq":
            m.d.comb += drive_x.eq(Mux(c_kind == Op.FIRE, a_rd.data, c_op.x))
        else:
            m.d.comb += drive_x.eq(c_op.x)
        nv = Signal(signed(vb))
        with m.Switch(c_kind):
            with m.Case(Op.LEAK):
                m.d.comb += nv.eq(base)
            with m.Case(Op.FIRE):
                m.d.comb += nv.eq(sat(leaked + drive_x, vmin, vmax))
            with m.Case(Op.RSUM, Op.CLEAR):
                m.d.comb += nv.eq(Mux(c_kind == Op.CLEAR, 0, base))
            with m.Default():  # Op.ADD, Op.DRAIN
                m.d.comb += nv.eq(sat(base + drive_x, vmin, vmax))
        is_refr = refr.bit_select(c_op.col, 1)
        checks = Signal()
        m.d.comb += checks.eq(((c_kind == Op.ADD) | (c_kind == Op.DRAIN)) & ~is_refr | (c_kind == Op.FIRE))
        fire = Signal()
        if self.spiking:
            m.d.comb += fire.eq(c_valid & checks & (nv >= threshold))
        reset_v = Mux(subtract, nv - threshold, 0)
        writes_v = ((c_kind == Op.ADD) | (c_kind == Op.DRAIN) | (c_kind == Op.LEAK) | (c_kind == Op.FIRE)
                    | (c_kind == Op.CLEAR) | ((c_kind == Op.RSUM) & c_lk))
        m.d.comb += [v_wr.addr.eq(c_op.col), v_wr.data.eq(Mux(fire, reset_v, nv)),
                     v_wr.en.eq(c_valid & adv & writes_v)]
        if self.delay_unit == "scdq":
            m.d.comb += [a_wr.addr.eq(c_op.col),
                         a_wr.data.eq(Mux(c_kind == Op.ACC, a_rd.data + c_op.x, 0)),
                         a_wr.en.eq(c_valid & adv & ((c_kind == Op.ACC) | (c_kind == Op.FIRE) | (c_kind == Op.CLEAR)))]
        ring_stall = Signal()
        if self.delay_unit == "ring":
            m.d.comb += [dunit.add.payload.neuron.eq(c_op.col), dunit.add.payload.delay.eq(delays[c_op.k]),
                         dunit.add.payload.weight.eq(c_op.x),
                         dunit.add.valid.eq(c_valid & (c_kind == Op.RING)),
                         ring_stall.eq(c_valid & (c_kind == Op.RING) & ~dunit.add.ready)]
        out_stall = Signal()
        ctrl_eos = Signal()
        if self.spiking:
            m.d.comb += [self.out.valid.eq(fire | ctrl_eos),
                         self.out.payload.idx.eq(c_op.col),
                         self.out.payload.eos.eq(ctrl_eos),
                         out_stall.eq(fire & ~self.out.ready)]
            with m.If(fire & adv):
                m.d.sync += refr.eq(refr | (1 << c_op.col))
        else:
            rsum = (c_kind == Op.RSUM) | (c_kind == Op.FIRE)
            newr = Signal(signed(rb))
            m.d.comb += newr.eq(sat(r_rd.data + nv, rmin, rmax))
            m.d.comb += [r_wr.addr.eq(c_op.col), r_wr.data.eq(Mux(c_kind == Op.CLEAR, 0, newr)),
                         r_wr.en.eq(c_valid & adv & (rsum | (c_kind == Op.CLEAR))),
                         self.rec.valid.eq(c_valid & adv & rsum),
                         self.rec.payload.j.eq(c_op.col), self.rec.payload.value.eq(newr)]
        m.d.comb += adv.eq(~out_stall & ~ring_stall)

        # ---------------- row iterator (hw.row_iterator): (event, level) rows -> synapse pointers
        m.submodules.rows = it = RowIterator(self.n_rows, self.nnz_max, Op, KW)
        m.d.comb += [it.cfg_we.eq(self.cfg_we & (self.cfg_sel == CFG_ROWPTR)), it.cfg_addr.eq(self.cfg_addr),
                     it.cfg_data.eq(self.cfg_data)]
        ev_valid, ev_ready = it.rows.valid, it.rows.ready
        ev_row, ev_kind, ev_k = it.rows.payload.row, it.rows.payload.kind, it.rows.payload.k
        cur_valid, cur_p, cur_kind, cur_k = it.ptrs.valid, it.ptrs.payload.p, it.ptrs.payload.kind, it.ptrs.payload.k
        syn_issue = Signal()  # a synapse op enters stage B this cycle
        m.d.comb += it.ptrs.ready.eq(adv)  # taken whenever the pipeline moves: rows go first
        iter_idle = it.idle & ~ev_valid

        # ---------------- issue: the row iterator first, else the controller
        ctl_valid = Signal()
        ctl_kind = Signal(Op)
        ctl_col = Signal(OW)
        ctl_x = Signal(signed(ab))
        m.d.comb += syn_rd.addr.eq(cur_p)
        with m.If(adv):
            m.d.sync += b_valid.eq(0)
            with m.If(cur_valid):
                m.d.comb += syn_issue.eq(1)
                m.d.sync += [b_valid.eq(1), b_op.kind.eq(cur_kind), b_op.syn.eq(1), b_op.k.eq(cur_k)]
            with m.Elif(ctl_valid):
                m.d.sync += [b_valid.eq(1), b_op.kind.eq(ctl_kind), b_op.syn.eq(0), b_op.col.eq(ctl_col),
                             b_op.x.eq(ctl_x)]
            with m.Elif(bg_valid & bg_phase):
                m.d.sync += [b_valid.eq(1), b_op.kind.eq(Op.LEAK), b_op.syn.eq(0), b_op.col.eq(bg_col)]
        ctl_taken = adv & ~cur_valid & ctl_valid
        pipe_empty = ~b_valid & ~c_valid & iter_idle

        # ---------------- counters
        busy = Signal()
        with m.If(busy):
            m.d.sync += self.cnt_busy.eq(self.cnt_busy + 1)
        with m.If(busy & ~adv):
            m.d.sync += self.cnt_stall.eq(self.cnt_stall + 1)
        with m.If(c_valid & adv & c_op.syn):
            m.d.sync += self.cnt_sop.eq(self.cnt_sop + 1)
        with m.If(fire & adv):
            m.d.sync += self.cnt_spike.eq(self.cnt_spike + 1)

        # ---------------- controller
        phase = Signal(Phase)
        scdq_started = Signal()  # due_done is only meaningful from the cycle after start
        drain_j = Signal(OW)
        fire_j = Signal(OW)
        j = Signal(OW + 1)
        m.d.comb += [self.done.eq(phase == Phase.DONE), busy.eq((phase != Phase.IDLE) & (phase != Phase.DONE)),
                     bg_phase.eq((phase == Phase.DELAYED) | (phase == Phase.INPUT)
                                 | ((phase == Phase.SETTLE) if self.spiking else Const(0)))]
        inp = self.inp
        last_j = j == n_out - 1

        with m.If(self.clear):
            m.d.sync += [phase.eq(Phase.CLEAR), j.eq(0), refr.eq(0), stale.eq(0), self.cnt_busy.eq(0), self.cnt_sop.eq(0),
                         self.cnt_stall.eq(0), self.cnt_spike.eq(0)]
        with m.Elif(self.step_start):
            if self.delay_unit == "ring":
                m.d.sync += lv_done.eq(0)
            m.d.sync += [t.eq(self.t), j.eq(0), refr.eq(0), phase.eq(Phase.DELAYED),
                         stale.eq(Mux(is_async, (1 << n_out) - 1, 0))]
        with m.Else():
            if True:  # an If chain, not a Switch: Verilator lints incomplete cases
                with m.If((phase == Phase.CLEAR)):
                    m.d.comb += [ctl_valid.eq(1), ctl_kind.eq(Op.CLEAR), ctl_col.eq(j)]
                    with m.If(ctl_taken):
                        m.d.sync += j.eq(j + 1)
                        with m.If(last_j):
                            m.d.sync += phase.eq(Phase.CLEARWAIT)
                with m.Elif((phase == Phase.CLEARWAIT)):
                    if self.delay_unit == "ring":
                        ready = pipe_empty & ~dunit.busy
                    else:
                        ready = pipe_empty
                    with m.If(ready):
                        m.d.sync += phase.eq(Phase.DONE)
                with m.Elif((phase == Phase.DELAYED)):
                    if self.uses_scdq:
                        m.d.comb += [ev_valid.eq(dunit.out.valid), dunit.out.ready.eq(ev_ready),
                                     ev_row.eq(dunit.out.payload.level * self.n_in + dunit.out.payload.pre),
                                     ev_kind.eq(Mux(is_async, Op.ADD, Op.ACC)), ev_k.eq(dunit.out.payload.level)]
                        with m.If(scdq_started & dunit.due_done & ~dunit.out.valid):
                            m.d.sync += phase.eq(Phase.INPUT)
                    elif self.delay_unit == "ring":
                        with m.If(is_async):
                            # drain slot t of every neuron; a zero slot is no update
                            m.d.comb += [dunit.drain_req.valid.eq(j < n_out), dunit.drain_req.payload.eq(j)]
                            with m.If(dunit.drain_req.valid & dunit.drain_req.ready):
                                m.d.sync += j.eq(j + 1)
                            m.d.comb += [ctl_valid.eq(dunit.drain_resp.valid & (dunit.drain_resp.payload != 0)),
                                         ctl_kind.eq(Op.DRAIN), ctl_x.eq(dunit.drain_resp.payload), ctl_col.eq(drain_j)]
                            m.d.comb += dunit.drain_resp.ready.eq(ctl_taken | (dunit.drain_resp.payload == 0))
                            with m.If(dunit.drain_resp.valid & dunit.drain_resp.ready):
                                m.d.sync += drain_j.eq(drain_j + 1)
                                with m.If(drain_j == n_out - 1):
                                    m.d.sync += [phase.eq(Phase.INPUT), drain_j.eq(0), j.eq(0)]
                        with m.Else():
                            m.d.sync += phase.eq(Phase.INPUT)
                    else:
                        m.d.sync += phase.eq(Phase.INPUT)
                with m.Elif((phase == Phase.INPUT)):
                    with m.If(inp.valid & inp.payload.eos):
                        m.d.comb += inp.ready.eq(1)
                        m.d.sync += phase.eq(Phase.SETTLE)
                    with m.Elif(inp.valid):
                        i = inp.payload.idx
                        if self.delay_unit == "ring":
                            # one row per live level, lowest first: a level is live when the event's
                            # row there holds synapses (the level mask) and its arrival t + d < T;
                            # other levels cost no cycle
                            m.d.comb += lm_rd.addr.eq(i)
                            live = Signal(K)
                            m.d.comb += live.eq(lm_rd.data & in_time_mask & ~lv_done)
                            kk = Signal(KW)
                            for k in reversed(range(K)):
                                with m.If(live[k]):
                                    m.d.comb += kk.eq(k)
                            direct = is_async & (delays[kk] == 0)
                            m.d.comb += [ev_valid.eq(live.any()), ev_row.eq(kk * self.n_in + i), ev_k.eq(kk),
                                         ev_kind.eq(Mux(direct, Op.ADD, Op.RING))]
                            last_level = (live & ~(1 << kk)[:K]) == 0
                            with m.If(~live.any() | (ev_ready & last_level)):
                                m.d.comb += inp.ready.eq(1)
                                m.d.sync += lv_done.eq(0)
                            with m.Elif(ev_ready):
                                m.d.sync += lv_done.eq(lv_done | (1 << kk)[:K])
                        else:
                            push_ok = Const(1)
                            if self.uses_scdq:
                                push_ok = dunit.push.ready
                            m.d.comb += [ev_valid.eq(Const(int(has_d0)) & push_ok), ev_row.eq(i), ev_k.eq(0),
                                         ev_kind.eq(Mux(is_async, Op.ADD, Op.ACC))]
                            go = push_ok & (ev_ready | Const(int(not has_d0)))
                            if self.uses_scdq:
                                m.d.comb += [dunit.push.valid.eq(ev_ready | Const(int(not has_d0))), dunit.push.payload.eq(i)]
                            m.d.comb += inp.ready.eq(go)
                with m.Elif((phase == Phase.SETTLE)):
                    # a spiking core leaks its remaining stale neurons (background issue) first
                    with m.If(pipe_empty & (~stale.any() if self.spiking else Const(1))):
                        m.d.sync += [j.eq(0), phase.eq(Mux(is_async, Phase.RSUM if not self.spiking else Phase.EOS, Phase.FIRE))]
                with m.Elif((phase == Phase.FIRE)):
                    if self.delay_unit == "ring":
                        m.d.comb += [dunit.drain_req.valid.eq(j < n_out), dunit.drain_req.payload.eq(j)]
                        with m.If(dunit.drain_req.valid & dunit.drain_req.ready):
                            m.d.sync += j.eq(j + 1)
                        m.d.comb += [ctl_valid.eq(dunit.drain_resp.valid), ctl_kind.eq(Op.FIRE),
                                     ctl_x.eq(dunit.drain_resp.payload), ctl_col.eq(fire_j),
                                     dunit.drain_resp.ready.eq(ctl_taken)]
                        with m.If(ctl_taken):
                            m.d.sync += fire_j.eq(fire_j + 1)
                            with m.If(fire_j == n_out - 1):
                                m.d.sync += [phase.eq(Phase.FLUSH), fire_j.eq(0)]
                    else:
                        m.d.comb += [ctl_valid.eq(1), ctl_kind.eq(Op.FIRE), ctl_col.eq(j)]
                        with m.If(ctl_taken):
                            m.d.sync += j.eq(j + 1)
                            with m.If(last_j):
                                m.d.sync += phase.eq(Phase.FLUSH)
                with m.Elif((phase == Phase.RSUM)):
                    m.d.comb += [ctl_valid.eq(1), ctl_kind.eq(Op.RSUM), ctl_col.eq(j)]
                    with m.If(ctl_taken):
                        m.d.sync += j.eq(j + 1)
                        with m.If(last_j):
                            m.d.sync += phase.eq(Phase.FLUSH)
                with m.Elif((phase == Phase.FLUSH)):
                    with m.If(pipe_empty):
                        m.d.sync += phase.eq(Phase.EOS)
                with m.Elif((phase == Phase.EOS)):
                    if self.spiking:
                        m.d.comb += ctrl_eos.eq(~c_valid)
                        with m.If(self.out.ready & ~c_valid):
                            m.d.sync += phase.eq(Phase.DONE)
                    else:
                        m.d.sync += phase.eq(Phase.DONE)
                with m.Elif((phase == Phase.IDLE) | (phase == Phase.DONE)):
                    pass
                with m.Else():  # unused encodings: back to idle
                    m.d.sync += phase.eq(Phase.IDLE)
        # delay-unit strobes: start of the delayed phase, advance at end of step, clear with the core
        eos_sent = (phase == Phase.EOS) & ((self.out.ready & ~c_valid) if self.spiking else Const(1))
        if self.delay_unit == "ring":
            # clear on drain: every slot a sample writes (arrival t + d < T) is drained and zeroed at
            # its arrival step, so after a sample that ran all T steps the ring is all zero and
            # needs no n * (D + 1)-cycle clear; after reset or an unfinished sample it is cleared
            ring_dirty = Signal(init=1)
            m.d.comb += [dunit.clear.eq(self.clear & ring_dirty), dunit.advance.eq(eos_sent)]
            with m.If(self.clear):
                m.d.sync += ring_dirty.eq(0)
            with m.Elif(self.step_start):
                m.d.sync += ring_dirty.eq(1)
            with m.Elif(eos_sent & (t + 1 >= T)):
                m.d.sync += ring_dirty.eq(0)
        elif self.uses_scdq:
            m.d.comb += [dunit.clear.eq(self.clear), dunit.start.eq((phase == Phase.DELAYED) & ~scdq_started),
                         dunit.advance.eq(eos_sent)]
            m.d.sync += scdq_started.eq(phase == Phase.DELAYED)
        return m
