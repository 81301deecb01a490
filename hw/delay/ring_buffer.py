"""Ring-buffer delay unit: per-neuron circular accumulators, ``n * (D + 1)`` words.

``add(j, d, w)`` accumulates ``w`` into slot ``(t + d) mod (D + 1)`` of neuron ``j``;
``drain(j)`` returns slot ``t`` of ``j`` and clears it; ``advance`` moves ``t``.
The semantics it serves are those of :mod:`hw.reference` (ring-buffer unit).

Timing and ordering rules (what a controller may rely on)
--------------------------------------------------------
* ``add`` and ``drain_req`` are each accepted at up to one per cycle, both in
  the same cycle. ``add.ready`` is high whenever ``busy`` and ``clear`` are low.
  ``drain_req.ready`` also drops while the 3-entry response FIFO could fill up
  (only under backpressure on ``drain_resp``).
* Operations take effect in the order they are accepted (the cycle they
  fire). Within one cycle an add is ordered *before* a drain: an add of slot
  ``t`` (``delay == 0``) accepted in the same cycle as, or before, the drain of
  that word is included in the drained value; an add of slot ``t`` accepted
  after the drain stays in the slot (it would be read at ``t + D + 1``). Adds to
  other slots never interact with a drain. Nothing is lost in any case.
* Slots are computed from ``t`` in the acceptance cycle; ``advance`` in that
  same cycle affects only later operations.
* Responses come in request order, 2 cycles after acceptance at the earliest.
  Responses still queued when ``clear`` is strobed are delivered (they answer
  accepted requests).
* ``clear`` zeroes all words and ``t``; it takes ``n * (D + 1)`` cycles with
  ``busy`` high (from the cycle after the strobe). ``add``/``drain_req`` are
  refused in the strobe cycle and while busy; ``advance`` is ignored then.
* ``delay > max_delay`` must never be presented: it would alias another slot.
  An :class:`~amaranth.hdl.Assert` flags it in simulation.
* Two add lanes (``lanes=2``, a build-time parameter): an ``add`` item may
  carry a second add ``(neuron2, delay, weight2)`` with ``pair`` high: both
  adds share the delay, so the slot, and are accepted together in one
  handshake (one cycle). They must target distinct neurons (so distinct
  words; an :class:`~amaranth.hdl.Assert` flags ``neuron2 == neuron`` in
  simulation). Each lane is its own read-modify-write path (its own read port
  and write port), so two adds per cycle are sustained. Adds commute (the
  loader rules out any wrap of the sum), so the order of the two lanes
  within a cycle is unobservable; both are ordered before a drain accepted
  in the same cycle, exactly like a single add, and back-to-back hits on one
  word from either lane, in either order and in any lane of the next cycle,
  are forwarded. ``lanes=1`` builds exactly the one-lane design (no ``pair``
  fields).

Port widths: ``neuron`` and the drain index are ``max(1, clog2 n)`` bits (no
zero-width vectors in the Verilog); ``t`` is an extra output showing the
current slot index.

Read-modify-write is a 2-stage pipeline per path (read at acceptance, write
one cycle later). Read ports are transparent to every write port, which is the
forwarding that makes back-to-back hits on one word correct. In stage 1 an add
whose word is the word drained in that stage is not written: its weight joins
the drained value and the drain writes the 0 (with two lanes at most one of
them can match, the lanes' words being distinct). So no two write ports ever
write one word in one cycle.

Memory: the slot bits are the same for one or two lanes; two lanes need a RAM
with three write ports and three read ports (one lane: two and two) -- on an
FPGA or in an ASIC macro, a multi-ported (or banked and replicated) RAM, an
area cost the bit count does not show (docs/contract.md, memory section).
"""
from __future__ import annotations

from amaranth.hdl import Assert, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

from hw.reference import ring_buffer_bits

RESP_FIFO_DEPTH = 3  # 1 in flight + 2 queued keeps 1 drain/cycle with ready high


def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {rng}, got {value}")
    return value


def add_layout(n_neurons: int, max_delay: int, weight_bits: int, lanes: int = 1) -> data.StructLayout:
    """One add, or with ``lanes=2`` an add plus an optional second one (``pair``) of the same delay."""
    # fields are >= 1 bit: zero-width vectors are a verilator lint warning (ASCRANGE)
    fields = {
        "neuron": unsigned(max(1, ceil_log2(n_neurons))),
        "delay": unsigned(bits_for(max_delay)),
        "weight": signed(weight_bits),
    }
    if lanes == 2:
        fields.update({"pair": unsigned(1), "neuron2": fields["neuron"], "weight2": signed(weight_bits)})
    return data.StructLayout(fields)


def check_lanes(owner: str, lanes) -> int:
    """The ring-lane count of a build: 1 or 2 (a clear error naming ``ring_lanes`` otherwise)."""
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes not in (1, 2):
        raise ValueError(f"{owner}: ring_lanes must be 1 or 2, got {lanes!r}")
    return lanes


class RingBufferDelay(wiring.Component):
    """Per-neuron ring buffer of ``max_delay + 1`` signed ``acc_bits`` slots."""

    def __init__(self, n_neurons: int, max_delay: int, acc_bits: int = 24, weight_bits: int = 8,
                 lanes: int = 1):
        self.lanes = check_lanes("RingBufferDelay", lanes)
        self.n_neurons = _check_int("n_neurons", n_neurons, 1)
        self.max_delay = _check_int("max_delay", max_delay, 0)
        self.acc_bits = _check_int("acc_bits", acc_bits, 2)
        self.weight_bits = _check_int("weight_bits", weight_bits, 2)
        if weight_bits > acc_bits:
            raise ValueError(f"weight_bits ({weight_bits}) must not exceed acc_bits ({acc_bits})")
        self.slots = max_delay + 1
        self.depth = n_neurons * self.slots
        super().__init__({
            "add": In(stream.Signature(add_layout(n_neurons, max_delay, weight_bits, lanes))),
            "drain_req": In(stream.Signature(unsigned(max(1, ceil_log2(n_neurons))))),
            "drain_resp": Out(stream.Signature(signed(acc_bits))),
            "advance": In(1),
            "clear": In(1),
            "busy": Out(1),
            "t": Out(range(max(2, self.slots))),  # current slot index, for observation
        })
        self.mem_shape = signed(acc_bits)  # the slot Memory is built from these in elaborate()

    @property
    def memory_bits(self) -> int:
        """Bits of the slot memory (depth x word width of the Memory it builds;
        a 1-word memory is padded to 2 words, the spare one never addressed)."""
        return self.depth * self.mem_shape.width

    @staticmethod
    def reference_bits(n_neurons: int, max_delay: int, acc_bits: int = 24) -> int:
        return ring_buffer_bits(n_neurons, max_delay, acc_bits)

    def elaborate(self, platform):
        m = Module()
        S = self.slots
        # depth 1 (n = 1, D = 0) would give a 0-bit address (a verilator lint
        # warning): pad to 2; the spare word is never addressed and not counted
        m.submodules.mem = mem = Memory(shape=self.mem_shape, depth=max(2, self.depth), init=[])
        m.submodules.resp_fifo = fifo = SyncFIFO(width=self.acc_bits, depth=RESP_FIFO_DEPTH)

        wp_add = mem.write_port()
        wp_drain = mem.write_port()  # also writes zeros while clearing
        two = self.lanes == 2
        if two:
            wp_add2 = mem.write_port()  # the second add lane
            wps = (wp_add, wp_drain, wp_add2)
        else:
            wps = (wp_add, wp_drain)
        rp_add = mem.read_port(transparent_for=wps)
        rp_drain = mem.read_port(transparent_for=wps)
        if two:
            rp_add2 = mem.read_port(transparent_for=wps)

        t = Signal(range(max(2, S)))
        busy = Signal()
        depth = max(2, self.depth)  # address signals of >= 1 bit (see the Memory)
        clr_addr = Signal(range(depth))
        m.d.comb += [self.busy.eq(busy), self.t.eq(t)]
        idle = ~busy & ~self.clear

        # ---- stage 0: accept and read
        m.d.comb += self.add.ready.eq(idle)
        add_fire = self.add.valid & self.add.ready
        p = self.add.payload
        if self.max_delay < (1 << len(p.delay)) - 1:  # else no bad value is representable
            # sampled at the clock edge, so comb glitches in event-driven simulators don't trip it
            m.d.sync += Assert(~self.add.valid | (p.delay <= self.max_delay),
                               "RingBufferDelay: add.delay > max_delay")
        slot_sum = Signal(range(2 * S))
        m.d.comb += slot_sum.eq(t + p.delay)
        slot = Mux(slot_sum >= S, slot_sum - S, slot_sum)
        a_addr = Signal(range(depth))
        m.d.comb += [a_addr.eq(p.neuron * S + slot), rp_add.addr.eq(a_addr), rp_add.en.eq(1)]
        if two:
            b_addr = Signal(range(depth))
            m.d.comb += [b_addr.eq(p.neuron2 * S + slot), rp_add2.addr.eq(b_addr), rp_add2.en.eq(1)]
            m.d.sync += Assert(~self.add.valid | ~p.pair | (p.neuron2 != p.neuron),
                               "RingBufferDelay: a pair of adds to one neuron")

        # In-flight drain (stage 1) plus queued responses must fit the FIFO.
        d1_valid = Signal()
        room = (fifo.level + d1_valid) < RESP_FIFO_DEPTH
        m.d.comb += self.drain_req.ready.eq(idle & room)
        drain_fire = self.drain_req.valid & self.drain_req.ready
        d_addr = Signal(range(depth))
        m.d.comb += [d_addr.eq(self.drain_req.payload * S + t), rp_drain.addr.eq(d_addr),
                     rp_drain.en.eq(1)]

        # ---- stage 1: modify and write
        a1_valid = Signal()
        a1_addr = Signal.like(a_addr)
        a1_w = Signal(signed(self.weight_bits))
        d1_addr = Signal.like(d_addr)
        m.d.sync += [a1_valid.eq(add_fire), a1_addr.eq(a_addr), a1_w.eq(p.weight),
                     d1_valid.eq(drain_fire), d1_addr.eq(d_addr)]
        same = a1_valid & d1_valid & (a1_addr == d1_addr)  # add ordered before the drain
        m.d.comb += [
            wp_add.addr.eq(a1_addr),
            wp_add.data.eq(rp_add.data + a1_w),
            wp_add.en.eq(a1_valid & ~same),
            fifo.w_en.eq(d1_valid),
        ]
        if two:
            b1_valid = Signal()
            b1_addr = Signal.like(b_addr)
            b1_w = Signal(signed(self.weight_bits))
            m.d.sync += [b1_valid.eq(add_fire & p.pair), b1_addr.eq(b_addr), b1_w.eq(p.weight2)]
            same2 = b1_valid & d1_valid & (b1_addr == d1_addr)  # lane 2 also ordered before the drain
            m.d.comb += [
                wp_add2.addr.eq(b1_addr),
                wp_add2.data.eq(rp_add2.data + b1_w),
                wp_add2.en.eq(b1_valid & ~same2),
                # the lanes' words differ, so at most one of same / same2 holds
                fifo.w_data.eq(rp_drain.data + Mux(same, a1_w, 0) + Mux(same2, b1_w, 0)),
            ]
        else:
            m.d.comb += fifo.w_data.eq(rp_drain.data + Mux(same, a1_w, 0))
        with m.If(busy):
            m.d.comb += [wp_drain.addr.eq(clr_addr), wp_drain.data.eq(0), wp_drain.en.eq(1)]
        with m.Else():
            m.d.comb += [wp_drain.addr.eq(d1_addr), wp_drain.data.eq(0), wp_drain.en.eq(d1_valid)]

        # ---- responses
        m.d.comb += [
            self.drain_resp.payload.eq(fifo.r_data),
            self.drain_resp.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.drain_resp.ready),
        ]

        # ---- time and clearing
        with m.If(busy):
            m.d.sync += clr_addr.eq(clr_addr + 1)
            with m.If(clr_addr == self.depth - 1):
                m.d.sync += busy.eq(0)
        with m.Elif(self.clear):
            m.d.sync += [busy.eq(1), clr_addr.eq(0), t.eq(0)]
        with m.Elif(self.advance):
            m.d.sync += t.eq(Mux(t == S - 1, 0, t + 1))
        return m
