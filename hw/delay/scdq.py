"""Shared Circular Delay Queue (SCDQ, Meijer et al. 2025).

One circular event memory of ``capacity`` pre-synaptic indices is shared by
all delay levels: each spike is written once, at emission. A table of
``D + 1`` per-step start pointers (index plus one wrap bit) marks where each
of the last ``D + 1`` steps begins. At the start of step ``t`` the unit streams
``(pre, level)`` for every stored event emitted at ``t - d_k`` with
``d_k > 0``: ascending ``k``, and within one ``k`` in push order -- the async
SCDQ order of :mod:`hw.reference`.

Protocol (what a controller may rely on)
----------------------------------------
* ``push``: an event of the current step ``t``. ``ready`` is high except in a
  ``clear`` cycle. When ``occupancy == capacity`` the event is dropped:
  ``dropped += 1`` (saturating, 32 bits) and the sticky ``overflow`` is set;
  nothing stored is touched. A push in the same cycle as ``advance`` belongs to
  the step that is ending.
* ``start``: strobe at the start of step ``t``, in a cycle after the
  ``advance`` into it (an ``Assert`` flags a start in the advance cycle).
  ``due_done`` falls in the cycle after the strobe and rises once the last due
  event has been accepted on ``out``. Pushes of step ``t`` may arrive while it
  streams; they are not streamed in step ``t``. ``out`` honours backpressure;
  with ``out.ready`` high it sustains one event per cycle within a level, and an
  empty or not-yet-due level ``d_k > 0`` costs one cycle (``d = 0`` is skipped).
* ``advance``: end of step ``t``; give it only while ``due_done`` is high (an
  ``Assert`` flags misuse in simulation). The events of step ``t - D`` are
  retired and their space is reused.
* ``occupancy`` (combinational) counts the held events: during step ``t``
  those emitted at ``t - D .. t``, i.e. :func:`hw.reference.scdq_occupancy`
  after step ``t`` when read just before ``advance``. ``peak`` is the largest
  occupancy reached (including a push in the cycle of an ``advance``).
* ``clear``: one-cycle strobe that empties the queue and zeroes ``t``,
  occupancy, ``peak``, ``overflow`` and ``dropped`` -- the counters are per
  sample; read them before clearing. It aborts any streaming. Reset gives the
  same state.
* Port widths: ``pre`` and ``level`` are ``max(1, clog2 n)`` bits (no
  zero-width vectors in the Verilog). With ``capacity == 1`` the event memory
  has a 0-bit address, which ``verilator --lint-only`` reports (ASCRANGE).
* ``max(delays) == 0`` is refused with ``ValueError``: such a layer needs no
  queue (the reference charges it 0 bits); the core applies ``d = 0`` taps at
  once.
"""
from __future__ import annotations

from amaranth.hdl import Array, Assert, Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hw.reference import scdq_bits

DROPPED_BITS = 32


def out_layout(n_pre: int, n_levels: int) -> data.StructLayout:
    # fields are >= 1 bit: zero-width vectors are a verilator lint warning (ASCRANGE)
    return data.StructLayout({"pre": unsigned(max(1, ceil_log2(n_pre))),
                              "level": unsigned(max(1, ceil_log2(n_levels)))})


class SCDQ(wiring.Component):
    """Shared circular delay queue for one layer with sorted delay levels ``delays``."""

    def __init__(self, n_pre: int, delays, capacity: int):
        if isinstance(n_pre, bool) or not isinstance(n_pre, int) or n_pre < 1:
            raise ValueError(f"n_pre must be an int >= 1, got {n_pre!r}")
        try:
            delays = tuple(delays)
        except TypeError:
            raise ValueError(f"delays must be a sequence of ints, got {delays!r}") from None
        if not delays:
            raise ValueError("delays must hold at least one delay level")
        for d in delays:
            if isinstance(d, bool) or not isinstance(d, int) or d < 0:
                raise ValueError(f"delays must be ints >= 0, got {delays!r}")
        if any(b <= a for a, b in zip(delays, delays[1:])):
            raise ValueError(f"delays must be sorted and distinct, got {delays!r}")
        if delays[-1] == 0:
            raise ValueError("delays: max(delays) is 0; a layer without delayed taps needs no SCDQ")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        self.n_pre = n_pre
        self.delays = delays
        self.capacity = capacity
        self.max_delay = D = delays[-1]
        self.n_levels = K = len(delays)
        self.ptr_layout = data.StructLayout({"idx": unsigned(ceil_log2(capacity)), "wrap": unsigned(1)})
        super().__init__({
            "push": In(stream.Signature(unsigned(max(1, ceil_log2(n_pre))))),
            "start": In(1),
            "out": Out(stream.Signature(out_layout(n_pre, K))),
            "due_done": Out(1),
            "advance": In(1),
            "clear": In(1),
            "occupancy": Out(range(capacity + 1)),
            "peak": Out(range(capacity + 1)),
            "overflow": Out(1),
            "dropped": Out(DROPPED_BITS),
        })
        # the Memories are built from these in elaborate()
        self.event_shape = unsigned(max(1, ceil_log2(n_pre)))  # 1 bit even for n_pre == 1

    @property
    def memory_bits(self) -> int:
        """Bits of the event memory plus the start-pointer table (depth x width of each Memory)."""
        return (self.capacity * self.event_shape.width
                + (self.max_delay + 1) * Shape.cast(self.ptr_layout).width)

    @staticmethod
    def reference_bits(n_pre: int, max_delay: int, capacity: int) -> int:
        return scdq_bits(n_pre, max_delay, capacity)

    # pointer arithmetic: index in [0, C) plus a wrap bit, so that full and empty differ
    # (idx is the low field of ptr_layout, so Cat(idx, wrap) packs a pointer)
    def _inc(self, p):
        C = self.capacity
        last = p.idx == C - 1
        w = len(p.idx)  # slice back: Mux/+1 widen, and Cat must see exactly w index bits
        return Mux(last, 0, p.idx + 1)[:w], Mux(last, ~p.wrap, p.wrap)[:1]

    def _dist(self, a, b):
        return a.idx - b.idx + Mux(a.wrap != b.wrap, self.capacity, 0)

    def elaborate(self, platform):
        m = Module()
        C, D, K = self.capacity, self.max_delay, self.n_levels
        m.submodules.events = ev = Memory(shape=self.event_shape, depth=C, init=[])
        m.submodules.starts = st = Memory(shape=self.ptr_layout, depth=D + 1, init=[])
        ev_w = ev.write_port()
        ev_r = ev.read_port()
        st_w = st.write_port()
        st_b = st.read_port(domain="comb")  # begin of a level's step
        st_e = st.read_port(domain="comb")  # end of a level's step (begin of the next)
        st_t = st.read_port(domain="comb")  # new tail at advance

        def ptr():
            return Signal(self.ptr_layout)

        def mod(x, neg=True, over=True):  # x in (-(D+1), 2(D+1)) -> x mod (D+1)
            # only the needed comparisons: a constant one is a verilator lint warning
            if over:
                x = Mux(x > D, x - (D + 1), x)
            return Mux(x < 0, x + (D + 1), x) if neg else x

        t_mod = Signal(range(D + 1))   # t mod (D+1): this step's table entry (D >= 1)
        age = Signal(range(D + 1))     # min(t, D): steps before 0 hold nothing
        wr, tail = ptr(), ptr()
        occ = Signal(range(C + 1))
        m.d.comb += [occ.eq(self._dist(wr, tail)), self.occupancy.eq(occ)]

        # ---- push
        m.d.comb += self.push.ready.eq(~self.clear)
        push_fire = self.push.valid & self.push.ready
        store = push_fire & (occ != C)
        drop = push_fire & (occ == C)
        wr_next = ptr()
        nidx, nwrap = self._inc(wr)
        m.d.comb += [
            ev_w.addr.eq(wr.idx), ev_w.data.eq(self.push.payload), ev_w.en.eq(store),
            wr_next.eq(Mux(store, Cat(nidx, nwrap), wr.as_value())),
        ]
        peak, overflow, dropped = Signal.like(self.peak), Signal(), Signal(DROPPED_BITS)
        m.d.comb += [self.peak.eq(peak), self.overflow.eq(overflow), self.dropped.eq(dropped)]
        occ_now = occ + store
        with m.If(occ_now > peak):
            m.d.sync += peak.eq(occ_now)
        with m.If(drop):
            m.d.sync += overflow.eq(1)
            with m.If(dropped != (1 << DROPPED_BITS) - 1):
                m.d.sync += dropped.eq(dropped + 1)
        m.d.sync += wr.eq(wr_next)

        # ---- streaming of due events
        run = Signal()
        k = Signal(range(max(2, K)))
        rd, end = ptr(), ptr()
        out_valid = Signal()
        can_issue = ~out_valid | self.out.ready  # output register free this cycle
        m.d.comb += self.due_done.eq(~run & ~out_valid)

        # next level to load: the first delayed level at start, else k + 1
        # (a d = 0 level is never streamed, so it is not visited)
        k0 = 1 if self.delays[0] == 0 else 0
        k_sel = Signal(range(max(2, K)))
        m.d.comb += k_sel.eq(Mux(self.start, k0, Mux(k == K - 1, k, k + 1)))
        d_sel = Signal(range(D + 1))
        # padded to a power of two: any other Array length is an incomplete case for verilator
        n_sel = 1 << len(k_sel)
        table = list(self.delays) + [self.delays[-1]] * (n_sel - K)
        m.d.comb += d_sel.eq(Array(table)[k_sel] if K > 1 else self.delays[0])
        due = (d_sel != 0) & (d_sel <= age)
        m.d.comb += [st_b.addr.eq(mod(t_mod - d_sel, over=False)), st_e.addr.eq(mod(t_mod - d_sel + 1))]
        ld_rd, ld_end = ptr(), ptr()
        m.d.comb += [ld_rd.eq(Mux(due, st_b.data, 0)), ld_end.eq(Mux(due, st_e.data, 0))]

        have = run & (rd != end)
        take = have & can_issue
        ridx, rwrap = self._inc(rd)
        rd_next = Signal(self.ptr_layout)
        m.d.comb += rd_next.eq(Cat(ridx, rwrap))
        level_over = run & ((rd == end) | (take & (rd_next == end)))
        m.d.comb += [ev_r.addr.eq(rd.idx), ev_r.en.eq(can_issue),
                     self.out.valid.eq(out_valid), self.out.payload.pre.eq(ev_r.data)]
        out_level = Signal.like(k)
        m.d.comb += self.out.payload.level.eq(out_level)
        with m.If(can_issue):
            m.d.sync += [out_valid.eq(take), out_level.eq(k)]

        # ---- step bookkeeping
        with m.If(self.clear):
            m.d.sync += [run.eq(0), out_valid.eq(0), t_mod.eq(0), age.eq(0), wr.eq(0), tail.eq(0),
                         peak.eq(0), overflow.eq(0), dropped.eq(0)]
            m.d.comb += [st_w.addr.eq(0), st_w.data.eq(0), st_w.en.eq(1)]
        with m.Else():
            with m.If(self.start):
                m.d.sync += [run.eq(1), k.eq(k0), rd.eq(ld_rd), end.eq(ld_end)]
            with m.Elif(level_over):
                with m.If(k == K - 1):
                    m.d.sync += run.eq(0)
                with m.Else():
                    m.d.sync += [k.eq(k + 1), rd.eq(ld_rd), end.eq(ld_end)]
            with m.Elif(take):
                m.d.sync += rd.eq(rd_next)
            with m.If(self.advance):
                t_next = Mux(t_mod == D, 0, t_mod + 1)
                m.d.sync += [t_mod.eq(t_next), age.eq(Mux(age == D, D, age + 1))]
                m.d.comb += [st_w.addr.eq(t_next), st_w.data.eq(wr_next), st_w.en.eq(1)]
                # retire step t - D: the tail moves to the start of step t - D + 1
                m.d.comb += st_t.addr.eq(mod(t_mod + 2, neg=False))
                with m.If(age == D):
                    m.d.sync += tail.eq(st_t.data)
        m.d.sync += Assert(~self.advance | self.clear | (~run & ~out_valid),
                           "SCDQ: advance while due events are still streaming")
        # invariants, checked at every clock edge in simulation
        m.d.sync += Assert(occ <= C, "SCDQ: occupancy above the capacity")
        m.d.sync += Assert(peak >= occ, "SCDQ: peak below the occupancy")
        m.d.sync += Assert(~self.advance | ~self.start | self.clear,
                           "SCDQ: start in the advance cycle (start the step in a later cycle)")
        return m

