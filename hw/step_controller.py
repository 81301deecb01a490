"""StepController: the per-step sequencing of a NeuronCore, as its own component.

The controller turns a core's inputs -- the previous layer's event stream, the
delay unit's due events or drained slots -- into the work of one step, in the
order :mod:`hw.reference` prescribes, and hands that work to the row iterator
(``rows``: ``(event, level)`` rows, one synapse pointer per tap follows) and
to the update pipeline (``ctl``: ops without a synapse word). Per step::

    layered: [DELAYED] -> INPUT -> FIRE -> EOS -> DONE
    async:    DELAYED -> INPUT -> SETTLE -> [RSUM (readout)] -> EOS -> DONE

(DELAYED only when it has work: an SCDQ build, or an async ring build.)

* DELAYED: SCDQ: every due event ``(pre, level)`` becomes a row (async ADD,
  layered ACC). Async ring: ``drain_req`` for ``j = 0..n-1``; each non-zero
  slot becomes a DRAIN op (a zero slot is no update). Meanwhile the input
  events' RING rows (levels ``d > 0``) are already sent, an event at a time;
  an event with a live ``d = 0`` row (ADD) waits there for INPUT, because its
  membrane update must follow the drain's. Ring adds go to slots ``t + d``,
  never to slot ``t``, and touch no membrane, so only the order of the ADD
  rows among themselves and after the DRAIN ops is the contract's. Layered
  ring: nothing.
* INPUT: each input event until the input's end-of-step token. SCDQ build:
  a ``d = 0`` row (when level 0 has delay 0) and a ``push`` into the queue,
  both in the same cycle. Ring build: one row per live level not yet sent,
  lowest first (live: the level mask says the row holds synapses and
  ``t + d_k < T``), kind ADD for an async ``d = 0`` tap, else RING.
* SETTLE (async): wait until the pipeline and the row iterator are empty (and,
  in a spiking core, until no neuron is stale: the pipeline leaks them in the
  background, ``bg_en``).
* FIRE (layered, straight from INPUT): a FIRE op per neuron, with the drained
  ring slot as operand (ring) or 0 (SCDQ: the pipeline uses its accumulator).
  The pass waits for the pipeline with its first op only, not with a phase:
  SCDQ, the first FIRE op once the row iterator is idle (every ACC pointer has
  been issued; ops complete in order and stage B reads the accumulator through
  to stage C's write); ring, the first drain request once the iterator is
  idle and stage B is empty (``rows_idle & b_idle``): the step's last RING add
  is then in stage C at most, and the ring accepts it in the same cycle as
  the drain or earlier and orders it before the drain (its "Timing and
  ordering rules"), so slot ``t`` holds every add of the step when it is read.
  RSUM (async readout): an RSUM op per neuron.
* EOS: offer the end-of-step token (``eos``) once the iterator is idle and
  stage B is empty; the pipeline passes it after stage C's last op (in the same
  cycle when that op sends no spike). The delay unit's ``advance`` strobes as
  it is taken; DONE until the next ``step_start`` (with ``t``) or ``clear``.
* ``clear``: CLEAR ops for every neuron, then wait for the pipeline (and a
  ring clear), then DONE.

Protocol (what the neighbours may rely on)
------------------------------------------
* Every stream honours ``valid``/``ready``; every output ``valid`` may wait
  any number of cycles for ``ready``; inputs may be idle any number of cycles.
* ``inp`` (in): ``{idx, eos}``. Not taken outside INPUT. ``ready`` depends on
  ``valid`` (a SCDQ build takes an event only together with its row and push).
* ``rows`` (out): ``{row, kind, k}``, ``row = k * n_in + i``. ``ctl`` (out):
  ``{kind, col, x}``. ``eos`` (out): the end-of-step token.
* SCDQ build: ``due`` (in) ``{pre, level}``, ``due_done`` (in), ``push`` (out),
  and the strobes ``unit_start`` (first DELAYED cycle), ``unit_advance`` (the
  EOS token taken), ``unit_clear`` (= ``clear``).
* Ring build: ``drain_req`` (out) / ``drain_resp`` (in) in request order,
  ``unit_busy`` (in), ``unit_advance``, ``unit_clear``: the ring is cleared on
  drain, so ``unit_clear`` strobes only when a sample did not run all ``T``
  steps (after reset or an early exit). The level mask is written through
  ``lm_we``/``lm_addr``/``lm_data`` (bit ``k`` of word ``i``: row ``(k, i)``
  holds synapses).
* ``pipe_idle`` (in): the pipeline and the row iterator hold no work;
  ``rows_idle`` (in): the row iterator holds no work (no pointer will follow);
  ``b_idle`` (in): the pipeline's stage B is empty (an op issued earlier is in
  stage C or done); ``stale_any`` (in): the pipeline still has a stale neuron.
* ``done`` (out): the step (or clear) is finished; ``busy`` (out): not idle
  and not done; ``bg_en`` (out): the phases in which the pipeline may leak in
  the background.
* ``step_start`` and ``clear`` are strobes from the network; ``t`` is sampled
  with ``step_start``. ``T`` and ``is_async`` are run-time registers.
"""
from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.reference import clog2
from hw.row_iterator import row_layout
from hw.update_pipeline import Op, _bits, ctl_layout, event_layout


class Phase(enum.Enum, shape=4):
    """The step controller's phase (a step: [DELAYED] -> INPUT -> [SETTLE] -> [FIRE | RSUM] -> EOS -> DONE)."""

    IDLE = 0
    CLEAR = 1      # zero every neuron's state
    CLEARWAIT = 2  # wait for the pipeline (and a ring clear)
    DELAYED = 3    # delayed events due at t (SCDQ stream, or async ring drain)
    INPUT = 4      # same-step input events until the input's end-of-step token
    SETTLE = 5     # async: wait for the pipeline (a spiking core also leaks its stale neurons)
    FIRE = 6       # layered: the neuron pass
    RSUM = 7       # async readout: the readout sums
    # 8 (FLUSH, a wait for the pipeline before EOS) is gone: EOS waits for stage B itself
    EOS = 9        # send the end-of-step token
    DONE = 10      # step (or clear) finished: wait for the next step_start or clear


class StepController(wiring.Component):
    """Sequencing of one layer (``n_in`` inputs, ``n_out`` neurons, sorted ``delays``)
    with a ``"ring"`` or ``"scdq"`` delay unit; ``T_max`` sizes the step counter."""

    def __init__(self, *, n_in, n_out, delays, delay_unit="scdq", spiking=True, T_max=256, acc_bits=24):
        for name, v, lo in (("n_in", n_in, 1), ("n_out", n_out, 1), ("T_max", T_max, 1), ("acc_bits", acc_bits, 2)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"StepController: {name} must be an int >= {lo}, got {v!r}")
        try:
            delays = tuple(delays)
        except TypeError:
            raise ValueError(f"StepController: delays must be a sequence of ints, got {delays!r}") from None
        if (not delays or any(isinstance(d, bool) or not isinstance(d, int) for d in delays)
                or list(delays) != sorted(set(delays)) or delays[0] < 0):
            raise ValueError(f"StepController: delays must be sorted, distinct ints >= 0, got {delays!r}")
        if delay_unit not in ("ring", "scdq"):
            raise ValueError(f"StepController: delay_unit must be 'ring' or 'scdq', got {delay_unit!r}")
        self.n_in, self.n_out, self.delays = n_in, n_out, delays
        self.K, self.D = len(delays), delays[-1]
        self.delay_unit, self.spiking, self.T_max, self.acc_bits = delay_unit, spiking, T_max, acc_bits
        self.uses_scdq = delay_unit == "scdq" and self.D > 0
        self.tw = clog2(T_max + 1) + 1
        self.k_bits = _bits(self.K)
        self.n_rows = self.K * n_in
        members = {
            "inp": In(stream.Signature(event_layout(n_in))),
            "rows": Out(stream.Signature(row_layout(self.n_rows, Op, self.k_bits))),
            "ctl": Out(stream.Signature(ctl_layout(n_out, acc_bits, with_x=delay_unit == "ring"))),
            "eos": Out(stream.Signature(unsigned(1))),
            "step_start": In(1),
            "clear": In(1),
            "t": In(self.tw),
            "T": In(self.tw),
            "is_async": In(1),
            "pipe_idle": In(1),
            "rows_idle": In(1),
            "b_idle": In(1),
            "stale_any": In(1),
            "done": Out(1),
            "busy": Out(1),
            "bg_en": Out(1),
            "unit_advance": Out(1),
            "unit_clear": Out(1),
        }
        if self.uses_scdq:
            from hw.delay.scdq import out_layout
            members.update({
                "due": In(stream.Signature(out_layout(n_in, self.K))),
                "due_done": In(1),
                "push": Out(stream.Signature(unsigned(_bits(n_in)))),
                "unit_start": Out(1),
            })
        if delay_unit == "ring":
            members.update({
                "drain_req": Out(stream.Signature(unsigned(_bits(n_out)))),
                "drain_resp": In(stream.Signature(signed(acc_bits))),
                "unit_busy": In(1),
                "lm_we": In(1),
                "lm_addr": In(_bits(n_in)),
                "lm_data": In(self.K),
            })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n_in, n_out, K = self.n_in, self.n_out, self.K
        OW, KW = _bits(n_out), self.k_bits
        # padded to a power of two so that indexing is a complete case in Verilog
        delays = Array(Const(self.delays[k] if k < K else 0, unsigned(max(1, self.D.bit_length())))
                       for k in range(1 << KW))
        has_d0 = self.delays[0] == 0
        T, is_async = self.T, self.is_async
        t = Signal(self.tw)

        rows, ctl = self.rows, self.ctl
        ev_valid, ev_ready = rows.valid, rows.ready
        ev_row, ev_kind, ev_k = rows.payload.row, rows.payload.kind, rows.payload.k
        ctl_valid, ctl_kind, ctl_col = ctl.valid, ctl.payload.kind, ctl.payload.col
        ctl_x = ctl.payload.x if self.delay_unit == "ring" else None  # only a ring build has an operand
        ctl_taken = ctl.valid & ctl.ready
        pipe_empty = self.pipe_idle & ~ev_valid

        if self.delay_unit == "ring":
            from amaranth.lib import memory
            # level mask: bit k of word i is set when row (k, i) holds synapses
            m.submodules.lvmask = lvmask = memory.Memory(shape=unsigned(K), depth=n_in, init=[])
            lm_wr = lvmask.write_port()
            lm_rd = lvmask.read_port(domain="comb")
            m.d.comb += [lm_wr.addr.eq(self.lm_addr), lm_wr.data.eq(self.lm_data), lm_wr.en.eq(self.lm_we)]
            lv_done = Signal(K)  # levels of the current input event already sent
            in_time_mask = Signal(K)  # levels whose arrival t + d_k is before T
            m.d.comb += in_time_mask.eq(Cat(*[(t + self.delays[k]) < T for k in range(K)]))
            drain_req, drain_resp = self.drain_req, self.drain_resp

        def ring_rows(allowed):
            """Ring build: the rows of the input event at the head of ``inp``, one per cycle, lowest
            level first, over the live levels in ``allowed``: a level is live when the event's row
            there holds synapses (the level mask) and its arrival t + d < T; other levels cost no
            cycle. The event is taken with its last live row (or at once when it has none); a live
            level outside ``allowed`` holds it."""
            i = inp.payload.idx
            m.d.comb += lm_rd.addr.eq(i)
            live, go = Signal(K), Signal(K)
            m.d.comb += [live.eq(lm_rd.data & in_time_mask & ~lv_done), go.eq(live & allowed)]
            kk = Signal(KW)
            for k in reversed(range(K)):
                with m.If(go[k]):
                    m.d.comb += kk.eq(k)
            direct = is_async & (delays[kk] == 0)
            m.d.comb += [ev_valid.eq(go.any()), ev_row.eq(kk * n_in + i), ev_k.eq(kk),
                         ev_kind.eq(Mux(direct, Op.ADD, Op.RING))]
            last_level = (live & ~(1 << kk)[:K]) == 0
            with m.If(~live.any() | (go.any() & ev_ready & last_level)):
                m.d.comb += inp.ready.eq(1)
                m.d.sync += lv_done.eq(0)
            with m.Elif(go.any() & ev_ready):
                m.d.sync += lv_done.eq(lv_done | (1 << kk)[:K])

        phase = self.phase = Signal(Phase)  # (an attribute too: test benches may watch it)
        scdq_started = Signal()  # due_done is only meaningful from the cycle after start
        drain_j = Signal(OW)
        fire_j = Signal(OW)
        j = Signal(OW + 1)
        m.d.comb += [self.done.eq(phase == Phase.DONE), self.busy.eq((phase != Phase.IDLE) & (phase != Phase.DONE)),
                     self.bg_en.eq((phase == Phase.DELAYED) | (phase == Phase.INPUT)
                                   | ((phase == Phase.SETTLE) if self.spiking else Const(0)))]
        inp = self.inp
        last_j = j == n_out - 1

        with m.If(self.clear):
            m.d.sync += [phase.eq(Phase.CLEAR), j.eq(0)]
        with m.Elif(self.step_start):
            if self.delay_unit == "ring":
                m.d.sync += lv_done.eq(0)
            # DELAYED has work only with an SCDQ (its due events) or an async ring (its drain)
            if self.uses_scdq:
                first = Phase.DELAYED
            elif self.delay_unit == "ring":
                first = Mux(is_async, Phase.DELAYED, Phase.INPUT)
            else:
                first = Phase.INPUT
            m.d.sync += [t.eq(self.t), j.eq(0), phase.eq(first)]
        # an If chain, not a Switch: Verilator lints incomplete cases
        with m.Elif(phase == Phase.CLEAR):
            m.d.comb += [ctl_valid.eq(1), ctl_kind.eq(Op.CLEAR), ctl_col.eq(j)]
            with m.If(ctl_taken):
                m.d.sync += j.eq(j + 1)
                with m.If(last_j):
                    m.d.sync += phase.eq(Phase.CLEARWAIT)
        with m.Elif(phase == Phase.CLEARWAIT):
            ready = pipe_empty & ~self.unit_busy if self.delay_unit == "ring" else pipe_empty
            with m.If(ready):
                m.d.sync += phase.eq(Phase.DONE)
        with m.Elif(phase == Phase.DELAYED):
            if self.uses_scdq:
                due = self.due
                m.d.comb += [ev_valid.eq(due.valid), due.ready.eq(ev_ready),
                             ev_row.eq(due.payload.level * n_in + due.payload.pre),
                             ev_kind.eq(Mux(is_async, Op.ADD, Op.ACC)), ev_k.eq(due.payload.level)]
                with m.If(scdq_started & self.due_done & ~due.valid):
                    m.d.sync += phase.eq(Phase.INPUT)
            elif self.delay_unit == "ring":
                with m.If(is_async):
                    # drain slot t of every neuron; a zero slot is no update
                    m.d.comb += [drain_req.valid.eq(j < n_out), drain_req.payload.eq(j)]
                    with m.If(drain_req.valid & drain_req.ready):
                        m.d.sync += j.eq(j + 1)
                    m.d.comb += [ctl_valid.eq(drain_resp.valid & (drain_resp.payload != 0)),
                                 ctl_kind.eq(Op.DRAIN), ctl_x.eq(drain_resp.payload), ctl_col.eq(drain_j)]
                    m.d.comb += drain_resp.ready.eq(ctl_taken | (drain_resp.payload == 0))
                    with m.If(drain_resp.valid & drain_resp.ready):
                        m.d.sync += drain_j.eq(drain_j + 1)
                        with m.If(drain_j == n_out - 1):
                            m.d.sync += [phase.eq(Phase.INPUT), drain_j.eq(0), j.eq(0)]
                    # meanwhile the input events' ring rows (d > 0: adds into slots t + d, never
                    # slot t, and no membrane update) go ahead; a d = 0 row (ADD) updates the
                    # membrane and waits for the drain's updates (the contract's order)
                    with m.If(inp.valid & ~inp.payload.eos):
                        ring_rows(Const((1 << K) - 1 - int(has_d0), K))
                with m.Else():
                    m.d.sync += phase.eq(Phase.INPUT)
            else:
                m.d.sync += phase.eq(Phase.INPUT)
        with m.Elif(phase == Phase.INPUT):
            with m.If(inp.valid & inp.payload.eos):
                m.d.comb += inp.ready.eq(1)
                # layered: the FIRE pass waits for the pipeline itself (its first op, below)
                m.d.sync += [j.eq(0), phase.eq(Mux(is_async, Phase.SETTLE, Phase.FIRE))]
            with m.Elif(inp.valid):
                i = inp.payload.idx
                if self.delay_unit == "ring":
                    ring_rows(Const((1 << K) - 1, K))
                else:
                    push_ok = Const(1)
                    if self.uses_scdq:
                        push_ok = self.push.ready
                    m.d.comb += [ev_valid.eq(Const(int(has_d0)) & push_ok), ev_row.eq(i), ev_k.eq(0),
                                 ev_kind.eq(Mux(is_async, Op.ADD, Op.ACC))]
                    go = push_ok & (ev_ready | Const(int(not has_d0)))
                    if self.uses_scdq:
                        m.d.comb += [self.push.valid.eq(ev_ready | Const(int(not has_d0))),
                                     self.push.payload.eq(i)]
                    m.d.comb += inp.ready.eq(go)
        with m.Elif(phase == Phase.SETTLE):
            # a spiking core leaks its remaining stale neurons (background issue) first
            with m.If(pipe_empty & (~self.stale_any if self.spiking else Const(1))):
                m.d.sync += [j.eq(0), phase.eq(Mux(is_async, Phase.RSUM if not self.spiking else Phase.EOS,
                                                   Phase.FIRE))]
        with m.Elif(phase == Phase.FIRE):
            if self.delay_unit == "ring":
                # the first drain only once every RING add of the step is in the ring or in stage C
                # (no row left in the iterator, stage B empty): an add in C is accepted in the same
                # cycle as the drain or before it, and the ring orders it before the drain
                m.d.comb += [drain_req.valid.eq((j < n_out) & ((j != 0) | (self.rows_idle & self.b_idle))),
                             drain_req.payload.eq(j)]
                with m.If(drain_req.valid & drain_req.ready):
                    m.d.sync += j.eq(j + 1)
                m.d.comb += [ctl_valid.eq(drain_resp.valid), ctl_kind.eq(Op.FIRE),
                             ctl_x.eq(drain_resp.payload), ctl_col.eq(fire_j),
                             drain_resp.ready.eq(ctl_taken)]
                with m.If(ctl_taken):
                    m.d.sync += fire_j.eq(fire_j + 1)
                    with m.If(fire_j == n_out - 1):
                        m.d.sync += [phase.eq(Phase.EOS), fire_j.eq(0)]
            else:
                # the first FIRE op only once the iterator has issued every ACC pointer of the step:
                # ops complete in order, and stage B reads the accumulator through to C's write
                m.d.comb += [ctl_valid.eq((j != 0) | self.rows_idle), ctl_kind.eq(Op.FIRE), ctl_col.eq(j)]
                with m.If(ctl_taken):
                    m.d.sync += j.eq(j + 1)
                    with m.If(last_j):
                        m.d.sync += phase.eq(Phase.EOS)
        with m.Elif(phase == Phase.RSUM):
            m.d.comb += [ctl_valid.eq(1), ctl_kind.eq(Op.RSUM), ctl_col.eq(j)]
            with m.If(ctl_taken):
                m.d.sync += j.eq(j + 1)
                with m.If(last_j):
                    m.d.sync += phase.eq(Phase.EOS)
        with m.Elif(phase == Phase.EOS):
            # every op of the step has left stage B (the pipeline orders the token after stage C)
            m.d.comb += self.eos.valid.eq(self.rows_idle & self.b_idle)
            with m.If(self.eos.valid & self.eos.ready):
                m.d.sync += phase.eq(Phase.DONE)
        with m.Elif((phase == Phase.IDLE) | (phase == Phase.DONE)):
            pass
        with m.Else():  # unused encodings: back to idle
            m.d.sync += phase.eq(Phase.IDLE)

        # delay-unit strobes: start of the delayed phase, advance at end of step, clear with the core
        eos_sent = self.eos.valid & self.eos.ready
        m.d.comb += self.unit_advance.eq(eos_sent)
        if self.delay_unit == "ring":
            # clear on drain: every slot a sample writes (arrival t + d < T) is drained and zeroed at
            # its arrival step, so after a sample that ran all T steps the ring is all zero and
            # needs no n * (D + 1)-cycle clear; after reset or an unfinished sample it is cleared
            ring_dirty = Signal(init=1)
            m.d.comb += self.unit_clear.eq(self.clear & ring_dirty)
            with m.If(self.clear):
                m.d.sync += ring_dirty.eq(0)
            with m.Elif(self.step_start):
                m.d.sync += ring_dirty.eq(1)
            with m.Elif(eos_sent & (t + 1 >= T)):
                m.d.sync += ring_dirty.eq(0)
        else:
            m.d.comb += self.unit_clear.eq(self.clear)
        if self.uses_scdq:
            m.d.comb += self.unit_start.eq((phase == Phase.DELAYED) & ~scdq_started)
            m.d.sync += scdq_started.eq(phase == Phase.DELAYED)
        return m
