"""RowIterator: (event, level) rows in, one synapse pointer per cycle out (a NeuronCore stage).

A layer's synapses are stored compressed per ``(i, k)`` row (CSR): row ``r``
holds the synapse pointers ``row_ptr[r] .. row_ptr[r + 1] - 1``. The iterator
owns the ``row_ptr`` memory and turns a stream of rows into the stream of their
pointers, which the core uses as synapse-memory read addresses.

Protocol (what a producer and a consumer may rely on)
-----------------------------------------------------
* ``rows`` (in): ``{row, kind, k}``; ``kind`` and ``k`` are carried to every
  pointer of the row. ``ready`` does not depend on ``valid`` (it may depend on
  ``ptrs.ready``: a row is taken when the held slot frees up). The row's
  ``row_ptr`` pair is read in the acceptance cycle and returns one cycle later.
* ``ptrs`` (out): ``{p, kind, k}``, every pointer of every accepted row in
  acceptance order, then ascending ``p``. ``valid`` does not depend on
  ``ready``; a pointer is taken in a cycle with ``valid & ready``.
* Rows with no synapse (``row_ptr[r] == row_ptr[r + 1]``) produce nothing and
  take no output cycle: they are dropped as their read returns.
* Throughput: with ``ptrs.ready`` high and rows arriving back to back, one
  pointer per cycle, with no bubble between consecutive non-empty rows of any
  lengths (one row is walked, the next one's range is held, a third one's
  read is in flight; a row is accepted in the cycle the held one moves on).
* Two lanes (``lanes=2``, build time, with ``pair_kind``): ``ptrs`` carries
  ``n`` (1 or 2) pointers ``{p, p + 1}`` of one row per item. A row of kind
  ``pair_kind`` is walked two pointers per item while at least two remain
  (a row of odd length ends with an item of one); every other row is walked
  one pointer per item. Pointers of different rows are never paired, so the
  two of an item are consecutive synapse words of one ``(i, k)`` row
  (distinct target neurons in a CSR row). The order is unchanged (``p``
  first, then ``p + 1``). Throughput: one item per cycle, and at most one row
  accepted per cycle, so rows of one or two pointers come out one per cycle
  and an empty row among them costs a cycle (the ring core's controller sends
  only rows that hold synapses, by its level mask). ``lanes=1`` builds exactly
  the one-lane iterator (no ``n`` field).
* ``idle``: no accepted row is left to walk (nothing read, held or walked).
* Configuration: ``cfg_we`` writes ``cfg_data`` into ``row_ptr[cfg_addr]``
  (``n_rows + 1`` words of ``clog2(nnz_max + 1)`` bits).
"""
from __future__ import annotations

from amaranth import Mux, Module, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.reference import clog2


def _bits(n: int) -> int:
    return max(1, clog2(n))


def row_layout(n_rows: int, kind_shape, k_bits: int) -> data.StructLayout:
    return data.StructLayout({"row": unsigned(_bits(n_rows + 1)), "kind": kind_shape, "k": unsigned(k_bits)})


def ptr_layout(nnz_max: int, kind_shape, k_bits: int, lanes: int = 1) -> data.StructLayout:
    fields = {"p": unsigned(clog2(nnz_max + 1)), "kind": kind_shape, "k": unsigned(k_bits)}
    if lanes == 2:
        fields["n"] = unsigned(2)  # pointers in this item: p, or p and p + 1
    return data.StructLayout(fields)


class RowIterator(wiring.Component):
    """``n_rows`` CSR rows over a synapse memory of ``nnz_max`` words; ``kind_shape``
    (e.g. an ``amaranth.lib.enum`` shape) and ``k_bits`` size the carried fields;
    ``lanes=2`` pairs the pointers of rows whose kind is ``pair_kind``."""

    def __init__(self, n_rows: int, nnz_max: int, kind_shape=unsigned(3), k_bits: int = 1, lanes: int = 1,
                 pair_kind=None):
        for name, v in (("n_rows", n_rows), ("nnz_max", nnz_max), ("k_bits", k_bits)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"RowIterator: {name} must be an int >= 1, got {v!r}")
        if isinstance(lanes, bool) or lanes not in (1, 2):
            raise ValueError(f"RowIterator: lanes must be 1 or 2, got {lanes!r}")
        if lanes == 2 and pair_kind is None:
            raise ValueError("RowIterator: pair_kind is required with lanes=2")
        self.lanes, self.pair_kind = lanes, pair_kind
        self.n_rows, self.nnz_max = n_rows, nnz_max
        self.pw = clog2(nnz_max + 1)
        super().__init__({
            "rows": In(stream.Signature(row_layout(n_rows, kind_shape, k_bits))),
            "ptrs": Out(stream.Signature(ptr_layout(nnz_max, kind_shape, k_bits, lanes))),
            "idle": Out(1),
            "cfg_we": In(1),
            "cfg_addr": In(_bits(n_rows + 1)),
            "cfg_data": In(self.pw),
        })

    def elaborate(self, platform):
        m = Module()
        PW = self.pw
        m.submodules.row_ptr = mem = memory.Memory(shape=unsigned(PW), depth=self.n_rows + 1, init=[])
        wr = mem.write_port()
        rd_lo, rd_hi = mem.read_port(), mem.read_port()
        m.d.comb += [wr.addr.eq(self.cfg_addr), wr.data.eq(self.cfg_data), wr.en.eq(self.cfg_we)]

        ev, out = self.rows, self.ptrs
        rd_pend = Signal()  # a row_ptr read was issued last cycle
        rd = Signal.like(ev.payload)
        nx_valid = Signal()  # the next range, held
        nx_lo, nx_hi = Signal(PW), Signal(PW)
        nx = Signal.like(ev.payload)
        cur_valid = Signal()  # the range being walked
        cur_p, cur_hi = Signal(PW), Signal(PW)
        cur = Signal.like(ev.payload)

        m.d.comb += [rd_lo.addr.eq(ev.payload.row), rd_hi.addr.eq(ev.payload.row + 1),
                     rd_lo.en.eq(ev.ready), rd_hi.en.eq(ev.ready)]
        rd_ok = Signal()  # the read that returned is a non-empty row
        m.d.comb += rd_ok.eq(rd_pend & (rd_lo.data != rd_hi.data))
        # the next range for cur: the held one first, else the read just returned
        cand_valid = nx_valid | rd_ok
        cand_lo = Mux(nx_valid, nx_lo, rd_lo.data)
        cand_hi = Mux(nx_valid, nx_hi, rd_hi.data)
        cand = Mux(nx_valid, nx.as_value(), rd.as_value())
        take = out.valid & out.ready
        if self.lanes == 2:
            # two pointers when the row is of the paired kind and p + 1 is still in it
            two = Signal()
            m.d.comb += [two.eq((cur.kind == self.pair_kind) & (cur_p + 1 != cur_hi)),
                         out.payload.n.eq(Mux(two, 2, 1))]
            step = Mux(two, 2, 1)
        else:
            step = 1
        cur_last = cur_p + step == cur_hi
        load = Signal()
        m.d.comb += load.eq((~cur_valid | (cur_last & take)) & cand_valid)
        # accept a row when its read result will have a place to go: the held slot is empty next
        # cycle (so a result that cannot go straight into cur is held). The held row moving into cur
        # this cycle frees the slot at once: waiting for it to be empty first would leave a bubble
        # after every held row of one pointer.
        nx_valid_next = Signal()
        m.d.comb += nx_valid_next.eq(Mux(rd_ok & ~load, 1, Mux(load & nx_valid, rd_ok, nx_valid)))
        m.d.comb += ev.ready.eq(~nx_valid_next)
        m.d.sync += rd_pend.eq(ev.valid & ev.ready)
        with m.If(ev.valid & ev.ready):
            m.d.sync += rd.eq(ev.payload)
        with m.If(rd_ok & ~load):
            m.d.sync += [nx_valid.eq(1), nx_lo.eq(rd_lo.data), nx_hi.eq(rd_hi.data), nx.eq(rd)]
        with m.Elif(load & nx_valid):
            m.d.sync += nx_valid.eq(rd_ok)
            with m.If(rd_ok):
                m.d.sync += [nx_lo.eq(rd_lo.data), nx_hi.eq(rd_hi.data), nx.eq(rd)]
        with m.If(take):
            m.d.sync += cur_p.eq(cur_p + step)
            with m.If(cur_last):
                m.d.sync += cur_valid.eq(0)
        with m.If(load):
            m.d.sync += [cur_valid.eq(1), cur_p.eq(cand_lo), cur_hi.eq(cand_hi), cur.eq(cand)]
        m.d.comb += [out.valid.eq(cur_valid), out.payload.p.eq(cur_p), out.payload.kind.eq(cur.kind),
                     out.payload.k.eq(cur.k), self.idle.eq(~cur_valid & ~nx_valid & ~rd_pend)]
        return m
