"""UpdatePipeline: the neuron-state update stages of a NeuronCore (issue -> B -> C).

The pipeline owns the layer's synapse memory (``{col, w}`` words), the membrane
memory ``v``, the layered SCDQ core's input accumulator, the readout sums ``R``
(readout variant), the refractory and lazy-leak (``stale``) flags, and the
arithmetic of :mod:`hw.reference`: leak ``trunc0(v·a/4096)``, saturation,
threshold and reset. It applies one operation per cycle::

    issue:  an op is accepted (a synapse pointer first, else a controller op,
            else a background leak); a pointer's synapse word is read
    B:      synapse data -> (col, x); the state memories are read at col
    C:      update v / acc / R, threshold check, spike or record out, ring add

The state memories are written in C and read in B through transparent read
ports, so back-to-back ops on one neuron see each other without a bubble.

Protocol (what a producer and a consumer may rely on)
-----------------------------------------------------
* ``ptrs`` (in): ``{p, kind, k}`` from the row iterator: the op ``kind`` applied
  with synapse word ``p`` (its ``col`` and weight ``w``) at delay level ``k``.
  Every accepted pointer is one SOP (``sop`` strobes as it completes stage C).
* ``ctl`` (in): ``{kind, col, x}`` from the step controller: an op on neuron
  ``col`` with operand ``x`` that uses no synapse word (DRAIN, FIRE, RSUM,
  CLEAR); ``x`` (a drained ring slot) exists in ring builds only. Taken only
  when no pointer is offered in that cycle.
* ``ready`` of ``ptrs`` and ``ctl`` does not depend on their own ``valid``:
  it is the pipeline's advance (``~stall``), and for ``ctl`` no pointer offered.
  Ops complete in acceptance order.
* ``eos`` (in, no payload): the controller's end-of-step token, offered only
  once no op is left before stage C (the row iterator idle, ``b_idle``). It
  passes after stage C's op: with stage C empty, or in the cycle stage C's
  op completes when that op sends nothing on ``out`` and waits on nothing
  (no spike, no ring or record stall). The spiking variant sends it on
  ``out`` then (``eos.ready`` is ``out.ready`` and that condition); the
  readout variant takes it then.
* ``out`` (spiking, out): ``{idx, eos}``: a spike of neuron ``idx`` (from stage
  C, in op order), or the end-of-step token. ``valid`` does not depend on
  ``ready``; a spike waiting for ``ready`` stalls the whole pipeline.
* ``rec`` (readout, out): ``{j, value}``: the new readout sum of neuron ``j``
  after a FIRE or RSUM op; a record waiting for ``ready`` stalls the pipeline.
* ``ring`` (ring unit, out): the :class:`~hw.delay.ring_buffer.RingBufferDelay`
  ``add`` stream: a RING op's ``(col, delays[k], w)``; stalls while not ready.
* ``step_start``: strobe at the start of a step: clears the refractory flags;
  in async mode (``is_async``) marks every neuron stale (lazy leak: the first
  op that touches a stale neuron leaks it first; with ``bg_en`` high, idle issue
  slots leak stale neurons in the background, lowest index first). ``clear``
  clears the refractory and stale flags (the CLEAR ops zero the state).
  Neither strobe may come while ops are in flight (``idle`` low).
* ``idle``: stages B and C are empty. ``b_idle``: stage B is empty.
  ``stale_any``: some neuron is still stale.
  ``stall``: the pipeline did not advance this cycle. ``sop``/``spike``:
  strobes for the core's counters.
* Synapse memory: ``syn_we`` writes ``syn_data`` (``col | w << clog2 n_out``)
  at ``syn_addr``.
* Two ring lanes (``ring_lanes=2``, ring builds only): a ``ptrs`` item may
  carry ``n = 2`` pointers ``p, p + 1`` (two consecutive words of one CSR row,
  so two distinct neurons); this is legal for RING ops only (an
  :class:`~amaranth.hdl.Assert` flags any other kind in simulation). Both words
  are read in the issue cycle, travel through B and C as one op, and leave as
  one ``ring`` item with ``pair`` high (the ring's second add lane); ``sop``
  then strobes 2. Every other op is one per cycle, exactly as with one lane.
  The synapse memory is *banked by parity* (even words in one bank, odd in the
  other; bank addresses ``(p + 1) >> 1`` and ``p >> 1`` serve ``p`` and
  ``p + 1`` for either parity of ``p``), rather than given a second read
  port: two one-read-port banks hold the same bits (at most one spare word)
  and map to plain single-port-read RAM macros, where a second read port
  would double a RAM or need a true dual-port one. ``ring_lanes=1`` builds
  exactly the one-lane pipeline.
"""
from __future__ import annotations

from amaranth import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Assert
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.reference import clog2
from hw.row_iterator import ptr_layout


def _bits(n: int) -> int:
    """Bits to index ``n`` items (at least 1)."""
    return max(1, clog2(n))


def event_layout(n: int) -> data.StructLayout:
    """An inter-core stream item: neuron index, or end-of-step when ``eos``."""
    return data.StructLayout({"idx": unsigned(_bits(n)), "eos": unsigned(1)})


def record_layout(n: int, readout_bits: int) -> data.StructLayout:
    """A readout record: neuron ``j`` and its new readout sum."""
    return data.StructLayout({"j": unsigned(_bits(n)), "value": signed(readout_bits)})


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


def ctl_layout(n_out: int, acc_bits: int, with_x: bool = True) -> data.StructLayout:
    """A controller op: ``kind`` on neuron ``col`` with operand ``x`` (no synapse word). Only a
    ring build has ``x`` (a drained slot); an SCDQ build's ops take no operand."""
    fields = {"kind": Op, "col": unsigned(_bits(n_out))}
    if with_x:
        fields["x"] = signed(acc_bits)
    return data.StructLayout(fields)


def _check(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"UpdatePipeline: {name} must be an int >= {lo}, got {v!r}")
    return v


class UpdatePipeline(wiring.Component):
    """The update stages of one layer of ``n_out`` neurons over ``nnz_max`` synapse words.

    ``delays``: the layer's delay levels (the ring add port carries ``delays[k]``);
    ``spiking``: ``False`` builds the readout variant (``rec`` instead of ``out``);
    ``delay_unit``: ``"ring"`` (a ``ring`` add port) or ``"scdq"`` (an input
    accumulator for layered FIRE); widths as in docs/contract.md.
    """

    def __init__(self, *, n_out, nnz_max, delays, spiking=True, delay_unit="scdq", membrane_bits=24,
                 acc_bits=24, readout_bits=32, weight_bits=8, ring_lanes=1):
        from hw.delay.ring_buffer import check_lanes
        self.lanes = check_lanes("UpdatePipeline", ring_lanes)
        _check("n_out", n_out, 1)
        _check("nnz_max", nnz_max, 1)
        for name, v in (("membrane_bits", membrane_bits), ("acc_bits", acc_bits), ("readout_bits", readout_bits),
                        ("weight_bits", weight_bits)):
            _check(name, v, 2)
        try:
            delays = tuple(delays)
        except TypeError:
            raise ValueError(f"UpdatePipeline: delays must be a sequence of ints, got {delays!r}") from None
        if (not delays or any(isinstance(d, bool) or not isinstance(d, int) for d in delays)
                or list(delays) != sorted(set(delays)) or delays[0] < 0):
            raise ValueError(f"UpdatePipeline: delays must be sorted, distinct ints >= 0, got {delays!r}")
        if delay_unit not in ("ring", "scdq"):
            raise ValueError(f"UpdatePipeline: delay_unit must be 'ring' or 'scdq', got {delay_unit!r}")
        if weight_bits > acc_bits:
            raise ValueError(f"UpdatePipeline: weight_bits ({weight_bits}) must not exceed acc_bits ({acc_bits})")
        if self.lanes == 2 and delay_unit != "ring":
            raise ValueError("UpdatePipeline: ring_lanes=2 needs delay_unit='ring'")
        self.n_out, self.nnz_max, self.delays = n_out, nnz_max, delays
        self.K, self.D = len(delays), delays[-1]
        self.spiking, self.delay_unit = spiking, delay_unit
        self.membrane_bits, self.acc_bits, self.readout_bits, self.weight_bits = (membrane_bits, acc_bits,
                                                                                  readout_bits, weight_bits)
        self.k_bits = _bits(self.K)
        self.syn_layout = data.StructLayout({"col": unsigned(_bits(n_out)), "w": signed(weight_bits)})
        members = {
            "ptrs": In(stream.Signature(ptr_layout(nnz_max, Op, self.k_bits, self.lanes))),
            "ctl": In(stream.Signature(ctl_layout(n_out, acc_bits, with_x=delay_unit == "ring"))),
            "eos": In(stream.Signature(unsigned(1))),
            "step_start": In(1),
            "clear": In(1),
            "is_async": In(1),
            "bg_en": In(1),
            "threshold": In(signed(membrane_bits)),
            "decay": In(13),
            "subtract": In(1),
            "syn_we": In(1),
            "syn_addr": In(_bits(nnz_max)),
            "syn_data": In(self.syn_layout.size),
            "idle": Out(1),
            "b_idle": Out(1),
            "stale_any": Out(1),
            "stall": Out(1),
            "sop": Out(range(self.lanes + 1)),  # SOPs completed this cycle
            "spike": Out(1),
        }
        if spiking:
            members["out"] = Out(stream.Signature(event_layout(n_out)))
        else:
            members["rec"] = Out(stream.Signature(record_layout(n_out, readout_bits)))
        if delay_unit == "ring":
            from hw.delay.ring_buffer import add_layout
            members["ring"] = Out(stream.Signature(add_layout(n_out, self.D, weight_bits, self.lanes)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n_out = self.n_out
        OW, KW = _bits(n_out), self.k_bits
        vb, ab, rb = self.membrane_bits, self.acc_bits, self.readout_bits
        vmax, vmin = (1 << (vb - 1)) - 1, -(1 << (vb - 1))
        rmax, rmin = (1 << (rb - 1)) - 1, -(1 << (rb - 1))
        threshold, decay, subtract = self.threshold, self.decay, self.subtract

        # ---------------- memories
        syn_layout = self.syn_layout
        two = self.lanes == 2
        if two:  # banked by parity: bank 0 holds the even words, bank 1 the odd ones
            nnz = self.nnz_max
            m.submodules.syn_even = syn_e = memory.Memory(shape=syn_layout, depth=nnz // 2 + 1, init=[])
            m.submodules.syn_odd = syn_o = memory.Memory(shape=syn_layout, depth=max(1, nnz // 2), init=[])
            syn_ew, syn_ow = syn_e.write_port(), syn_o.write_port()
            syn_er, syn_or = syn_e.read_port(), syn_o.read_port()
            for wp, par in ((syn_ew, 0), (syn_ow, 1)):
                m.d.comb += [wp.addr.eq(self.syn_addr >> 1), wp.data.eq(self.syn_data),
                             wp.en.eq(self.syn_we & (self.syn_addr[0] == par))]
        else:
            m.submodules.syn = syn = memory.Memory(shape=syn_layout, depth=self.nnz_max, init=[])
            syn_wr = syn.write_port()
            syn_rd = syn.read_port()
        m.submodules.vmem = vmem = memory.Memory(shape=signed(vb), depth=n_out, init=[])
        v_wr = vmem.write_port()
        v_rd = vmem.read_port(transparent_for=(v_wr,))
        if not two:
            m.d.comb += [syn_wr.addr.eq(self.syn_addr), syn_wr.data.eq(self.syn_data), syn_wr.en.eq(self.syn_we)]
        if self.delay_unit == "scdq":
            m.submodules.accmem = accmem = memory.Memory(shape=signed(ab), depth=n_out, init=[])
            a_wr = accmem.write_port()
            a_rd = accmem.read_port(transparent_for=(a_wr,))
        if not self.spiking:
            m.submodules.rmem = rmem = memory.Memory(shape=signed(rb), depth=n_out, init=[])
            r_wr = rmem.write_port()
            r_rd = rmem.read_port(transparent_for=(r_wr,))

        # ---------------- stages: issue (synapse address) -> B (synapse data, state address) -> C (update)
        adv = Signal()  # the pipeline moves this cycle; low only on output backpressure
        op_fields = {"kind": Op, "syn": unsigned(1), "col": unsigned(OW), "x": signed(ab), "k": unsigned(KW)}
        if two:  # the second lane: a pair, the parity of its first pointer, the second word's (col, w)
            op_fields.update({"two": unsigned(1), "par": unsigned(1), "col2": unsigned(OW),
                              "x2": signed(self.weight_bits)})
        op_layout = data.StructLayout(op_fields)
        b_valid = Signal()
        b_op = Signal(op_layout)
        c_valid = Signal()
        c_op = Signal(op_layout)
        b_col = Signal(OW)
        b_x = Signal(signed(ab))
        if two:
            syn_data = syn_layout(Mux(b_op.par, syn_or.data, syn_er.data))   # word p
            syn_data2 = syn_layout(Mux(b_op.par, syn_er.data, syn_or.data))  # word p + 1
            m.d.comb += [syn_er.en.eq(adv), syn_or.en.eq(adv)]
        else:
            syn_data = syn_layout(syn_rd.data)
            m.d.comb += syn_rd.en.eq(adv)
        m.d.comb += [
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
            if two:
                m.d.sync += [c_op.col2.eq(syn_data2.col), c_op.x2.eq(syn_data2.w)]

        # ---------------- lazy leak (async): at step start every neuron becomes ``stale``; the first
        # op that touches a stale neuron in stage B (an update, a drain, a background leak or the
        # readout sum) applies the leak in stage C before its own work and clears the flag. All ops
        # pass stage B in order, so each neuron is leaked exactly once, before its first update of
        # the step, as the contract's leak-all-first. Idle issue slots leak stale neurons in the
        # background (lowest index first).
        stale = Signal(n_out)
        refr = Signal(n_out)
        c_lk = Signal()
        b_touch = (b_op.kind == Op.ADD) | (b_op.kind == Op.DRAIN) | (b_op.kind == Op.LEAK) | (b_op.kind == Op.RSUM)
        b_stale = stale.bit_select(b_col, 1)
        with m.If(adv):
            m.d.sync += c_lk.eq(b_valid & b_touch & b_stale)
        # background pick: the lowest stale neuron not already in stage B
        bg_mask = Signal(n_out)
        m.d.comb += bg_mask.eq(stale & ~Mux(b_valid, 1 << b_col, 0))
        bg_valid, bg_col = Signal(), Signal(OW)
        m.d.comb += bg_valid.eq(bg_mask.any())
        # a balanced tree (depth log2 n): an If chain here is a chain of n dependent selects, which a
        # compiled model evaluates at every clock (17 % of the Verilator time; docs/hardware_results.md)
        def lowest(v, base):  # (any bit of v set, index of its lowest set bit)
            if len(v) == 1:
                return v[0], Const(base, OW)
            h = len(v) // 2
            lo_any, lo_i = lowest(v[:h], base)
            hi_any, hi_i = lowest(v[h:], base + h)
            return lo_any | hi_any, Mux(lo_any, lo_i, hi_i)
        m.d.comb += bg_col.eq(lowest(bg_mask, 0)[1])

        # ---------------- stage C: compute
        v = v_rd.data
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
            # padded to a power of two so that indexing is a complete case in Verilog
            delays = Array(Const(self.delays[k] if k < self.K else 0, unsigned(max(1, self.D.bit_length())))
                           for k in range(1 << KW))
            m.d.comb += [self.ring.payload.neuron.eq(c_op.col), self.ring.payload.delay.eq(delays[c_op.k]),
                         self.ring.payload.weight.eq(c_op.x),
                         self.ring.valid.eq(c_valid & (c_kind == Op.RING)),
                         ring_stall.eq(c_valid & (c_kind == Op.RING) & ~self.ring.ready)]
            if two:
                m.d.comb += [self.ring.payload.pair.eq(c_op.two), self.ring.payload.neuron2.eq(c_op.col2),
                             self.ring.payload.weight2.eq(c_op.x2)]
        out_stall = Signal()
        # the end-of-step token may pass in the cycle stage C's last op leaves, when that op sends
        # nothing on ``out`` and waits on nothing (the producer offers it only with stage B empty)
        c_quiet = Signal()
        m.d.comb += c_quiet.eq(~c_valid | (~fire & ~ring_stall & ~out_stall))
        if self.spiking:
            send_eos = self.eos.valid & c_quiet
            m.d.comb += [self.out.valid.eq(fire | send_eos),
                         self.out.payload.idx.eq(c_op.col),
                         self.out.payload.eos.eq(send_eos),
                         self.eos.ready.eq(self.out.ready & c_quiet),
                         out_stall.eq(fire & ~self.out.ready)]
        else:
            rsum = (c_kind == Op.RSUM) | (c_kind == Op.FIRE)
            newr = Signal(signed(rb))
            m.d.comb += newr.eq(sat(r_rd.data + nv, rmin, rmax))
            m.d.comb += [r_wr.addr.eq(c_op.col), r_wr.data.eq(Mux(c_kind == Op.CLEAR, 0, newr)),
                         r_wr.en.eq(c_valid & adv & (rsum | (c_kind == Op.CLEAR))),
                         self.rec.valid.eq(c_valid & rsum),
                         self.rec.payload.j.eq(c_op.col), self.rec.payload.value.eq(newr),
                         self.eos.ready.eq(c_quiet),
                         out_stall.eq(c_valid & rsum & ~self.rec.ready)]
        m.d.comb += adv.eq(~out_stall & ~ring_stall)

        # ---------------- issue: a synapse pointer first, else a controller op, else a background leak
        p, ctl = self.ptrs, self.ctl
        if two:
            # bank addresses for words p and p + 1 of either parity: even (p + 1) >> 1, odd p >> 1
            m.d.comb += [syn_er.addr.eq((p.payload.p + 1) >> 1), syn_or.addr.eq(p.payload.p >> 1)]
            m.d.sync += Assert(~p.valid | (p.payload.n != 2) | (p.payload.kind == Op.RING),
                               "UpdatePipeline: a pointer pair that is not a RING op")
        else:
            m.d.comb += syn_rd.addr.eq(p.payload.p)
        m.d.comb += [p.ready.eq(adv), ctl.ready.eq(adv & ~p.valid)]
        with m.If(adv):
            m.d.sync += b_valid.eq(0)
            if two:
                m.d.sync += b_op.two.eq(0)
            with m.If(p.valid):
                m.d.sync += [b_valid.eq(1), b_op.kind.eq(p.payload.kind), b_op.syn.eq(1), b_op.k.eq(p.payload.k)]
                if two:
                    m.d.sync += [b_op.two.eq(p.payload.n == 2), b_op.par.eq(p.payload.p[0])]
            with m.Elif(ctl.valid):
                m.d.sync += [b_valid.eq(1), b_op.kind.eq(ctl.payload.kind), b_op.syn.eq(0),
                             b_op.col.eq(ctl.payload.col),
                             b_op.x.eq(ctl.payload.x if self.delay_unit == "ring" else 0)]
            with m.Elif(bg_valid & self.bg_en):
                m.d.sync += [b_valid.eq(1), b_op.kind.eq(Op.LEAK), b_op.syn.eq(0), b_op.col.eq(bg_col)]

        # ---------------- flags and status
        with m.If(self.clear):
            m.d.sync += [refr.eq(0), stale.eq(0)]
        with m.Elif(self.step_start):
            m.d.sync += [refr.eq(0), stale.eq(Mux(self.is_async, (1 << n_out) - 1, 0))]
        with m.Else():
            with m.If(adv & b_valid & b_touch):
                m.d.sync += stale.eq(stale & ~(1 << b_col))
            if self.spiking:
                with m.If(fire & adv):
                    m.d.sync += refr.eq(refr | (1 << c_op.col))
        m.d.comb += [self.idle.eq(~b_valid & ~c_valid), self.b_idle.eq(~b_valid), self.stale_any.eq(stale.any()), self.stall.eq(~adv),
                     self.sop.eq(Mux(c_valid & adv & c_op.syn, 1 + c_op.two, 0) if two
                                 else c_valid & adv & c_op.syn),
                     self.spike.eq(fire & adv)]
        return m
