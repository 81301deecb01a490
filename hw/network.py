"""Network: neuron cores chained by stream FIFOs, with stimulus and result memories.

A test bench (pysim, cocotb or the Verilator C++ harness) only programs the
configuration port, loads a sample's input events, pulses ``start`` and waits
for ``done``; then it reads spike records, readout sums and counters through
the result port. One build (a :class:`NetworkSpec`: the largest shape, the
delay levels per layer and the delay unit) serves every model that fits it:
weights, thresholds, decays, resets, mode and ``T`` are run-time configuration.

Result port (``res_sel``, ``res_addr`` -> ``res_data`` one cycle later):

* ``res_sel = l`` (``l < L``): spike record ``l`` in emission order,
  word ``t << idx_bits | j``
* ``res_sel = L``: readout sums, word ``t * n_classes + j``
* ``res_sel = L + 1``: status: word 0 cycles, 1 record overflow, 2 the last
  step run (the exit step), 3 early exit fired, then per core ``l`` the words
  ``STATUS_BASE + 8 l + i`` for ``CORE_STATUS[i]``

Early exit (the rule of :mod:`hw.reference`, "Early exit"): network registers
``2`` (margin ``m``), ``3`` (steps ``s``) and ``4`` (the model's class count:
a build's padding classes take no part) of the configuration port; the
sequencer tracks the top two readout sums as the readout core writes them and
ends the sample after a step that closes a run of ``s`` steps with a lead
``>= m``. Readout rows after the exit step are not written; the host reads
rows ``0..exit``.
* ``res_sel = L + 2``: cycle count at the end of each step ``t``

Steps: there is no network-wide barrier. Each core starts its next step as
soon as it is done with the last one; its input stream's end-of-step tokens
keep it in order (layered: a core fires step ``t`` only after its input's
token for ``t``). The readout core's end of step is the network's: it writes
the step's cycle stamp and takes the early-exit decision. A hidden core runs
at most ``run_ahead`` steps ahead of that decision (a :class:`NetworkSpec`
field, default 2: it starts step ``s`` only after the readout finished
``s - 1 - run_ahead``), and keeps its counters (SOPs, spikes, records, SCDQ
peak, overflow, dropped) as they were at the end of its last
``run_ahead + 1`` steps; the status block reports them at the end of the exit
step, so work a core did in the steps after an early exit is not counted
(docs/contract.md, "Early exit"). The host reads spike records only up to
that count. After an exit the network drains before it raises ``done``: a
hidden core inside a later step finishes it, and the FIFOs of cores that are not running a step are
emptied, so the next sample starts from quiet cores and empty FIFOs (the
drain cycles are not counted).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.core import (CFG_LEVELS, CFG_REG, CFG_ROWPTR, CFG_SYN, REG_ASYNC, REG_DECAY, REG_SUBTRACT, REG_T,
                     REG_THRESHOLD, NeuronCore, _bits, event_layout)
from hw.model_file import Model, Widths
from hw.reference import _check_early_exit, clog2, csr_rows, events_from_raster

CORE_STATUS = ("busy", "sops", "stalls", "spikes", "records", "peak", "overflow", "dropped")
STATUS_BASE = 8  # status word 0: cycles, 1: record overflow; core l: STATUS_BASE + 8 l + field


@dataclass(frozen=True)
class LayerSpec:
    n_in: int
    n_out: int
    delays: tuple[int, ...]
    nnz_max: int
    scdq_capacity: int = 256


@dataclass(frozen=True)
class NetworkSpec:
    """The build-time shape of a :class:`Network`."""

    layers: tuple[LayerSpec, ...]
    delay_unit: str = "scdq"
    widths: Widths = field(default_factory=Widths)
    T_max: int = 128
    max_events: int = 4096
    max_spikes: int = 4096
    fifo_depth: int = 16  # 64 (a FIRE pass never waits) gained <= 0.2 % cycles but cost ~45 % Verilator speed
    ring_lanes: int = 1  # ring builds: RING adds per cycle (1 or 2); an SCDQ build ignores it
    run_ahead: int = 2  # steps a hidden core may run ahead of the exit decision (>= 1; see "Steps")

    @classmethod
    def for_model(cls, model: Model, delay_unit: str = "scdq", scdq_capacity=None, **kw) -> "NetworkSpec":
        """The exact spec of one model (its own delays, shape and synapse count)."""
        caps = scdq_capacity if isinstance(scdq_capacity, (list, tuple)) else [scdq_capacity or 256] * len(model.layers)
        layers = tuple(LayerSpec(L.n_in, L.n_out, tuple(int(d) for d in L.delays),
                                 max(1, int(np.count_nonzero(L.weights))), max(1, int(c)))
                       for L, c in zip(model.layers, caps))
        kw.setdefault("T_max", model.T)
        return cls(layers, delay_unit, model.widths, **kw)

    @property
    def n_classes(self) -> int:
        return self.layers[-1].n_out

    def sel_core(self, l: int, what: int) -> int:
        return 4 * l + what

    @property
    def sel_stimulus(self) -> int:
        return 4 * len(self.layers)

    @property
    def sel_net(self) -> int:
        return 4 * len(self.layers) + 1

    @property
    def sel_readout(self) -> int:
        return len(self.layers)

    @property
    def sel_status(self) -> int:
        return len(self.layers) + 1

    @property
    def sel_step_cycles(self) -> int:
        return len(self.layers) + 2

    def idx_bits(self, l: int) -> int:
        return _bits(self.layers[l].n_out)

    def status_addr(self, l: int, name: str) -> int:
        return STATUS_BASE + 8 * l + CORE_STATUS.index(name)


class ConfigError(ValueError):
    """A model or sample does not fit a network build; the message names the field."""


def config_writes(spec: NetworkSpec, model: Model, mode: str, early_exit=None) -> list[tuple[int, int, int]]:
    """Configuration-port writes ``(sel, addr, data)`` that program ``model`` into a build.
    ``early_exit``: ``None`` (off) or ``(margin, steps)``."""
    if mode not in ("layered", "async"):
        raise ConfigError(f"mode must be 'layered' or 'async', got {mode!r}")
    try:
        margin, steps = _check_early_exit(early_exit, spec.widths.readout_bits)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if len(model.layers) != len(spec.layers):
        raise ConfigError(f"layers: the model has {len(model.layers)}, the build {len(spec.layers)}")
    if model.T > spec.T_max:
        raise ConfigError(f"T: the model has T={model.T}, the build at most {spec.T_max}")
    if model.widths != spec.widths:
        raise ConfigError(f"widths: the model has {model.widths}, the build {spec.widths}")
    writes = []
    for l, (L, S) in enumerate(zip(model.layers, spec.layers)):
        f = f"layers[{l}]"
        if L.n_in > S.n_in or L.n_out > S.n_out:
            raise ConfigError(f"{f}: shape {L.n_in}x{L.n_out} exceeds the build's {S.n_in}x{S.n_out}")
        missing = set(int(d) for d in L.delays) - set(S.delays)
        if missing:
            raise ConfigError(f"{f}.delays: {sorted(missing)} are not delay levels of the build {S.delays}")
        # place the model's taps at the build's levels and shape; empty rows cost nothing
        W = np.zeros((len(S.delays), S.n_in, S.n_out), dtype=np.int64)
        for k, d in enumerate(L.delays):
            W[S.delays.index(int(d)), :L.n_in, :L.n_out] = L.weights[k]
        row_ptr, cols, vals = csr_rows(W)
        if len(cols) > S.nnz_max:
            raise ConfigError(f"{f}.weights: {len(cols)} non-zero taps exceed the build's nnz_max={S.nnz_max}")
        writes += [(spec.sel_core(l, CFG_ROWPTR), r, int(p)) for r, p in enumerate(row_ptr)]
        if spec.delay_unit == "ring":  # the ring core's level mask: which rows (k, i) hold synapses
            full = (np.diff(np.asarray(row_ptr)) > 0).reshape(len(S.delays), S.n_in)
            writes += [(spec.sel_core(l, CFG_LEVELS), i, int(sum(1 << k for k in np.flatnonzero(full[:, i]))))
                       for i in range(S.n_in)]
        wb = spec.widths.weight_bits
        ob = _bits(S.n_out)
        writes += [(spec.sel_core(l, CFG_SYN), p, int(c) | ((int(w) & ((1 << wb) - 1)) << ob))
                   for p, (c, w) in enumerate(zip(cols, vals))]
        vb = spec.widths.membrane_bits
        writes += [
            (spec.sel_core(l, CFG_REG), REG_THRESHOLD, int(L.threshold) & ((1 << vb) - 1)),
            (spec.sel_core(l, CFG_REG), REG_DECAY, int(L.decay)),
            (spec.sel_core(l, CFG_REG), REG_SUBTRACT, int(L.reset == "subtract")),
            (spec.sel_core(l, CFG_REG), REG_ASYNC, int(mode == "async")),
            (spec.sel_core(l, CFG_REG), REG_T, int(model.T)),
        ]
    writes += [(spec.sel_net, 0, int(model.T)), (spec.sel_net, 2, margin), (spec.sel_net, 3, steps),
               (spec.sel_net, 4, int(model.n_classes))]
    return writes


def stimulus_array(spec: NetworkSpec, X: np.ndarray) -> np.ndarray:
    """The writes of :func:`stimulus_writes` as a ``[n, 3]`` int64 array ``(sel, addr, data)``."""
    X = np.asarray(X, dtype=bool)
    t, c = events_from_raster(X)
    if len(t) > spec.max_events:
        raise ConfigError(f"input: {len(t)} events exceed the build's max_events={spec.max_events}")
    if X.shape[1] > spec.layers[0].n_in:
        raise ConfigError(f"input: {X.shape[1]} channels exceed the build's n_in={spec.layers[0].n_in}")
    ib = _bits(spec.layers[0].n_in)
    out = np.empty((len(t) + 1, 3), dtype=np.int64)
    out[:-1, 0] = spec.sel_stimulus
    out[:-1, 1] = np.arange(len(t))
    out[:-1, 2] = np.asarray(c, dtype=np.int64) | (np.asarray(t, dtype=np.int64) << ib)
    out[-1] = (spec.sel_net, 1, len(t))
    return out


def stimulus_writes(spec: NetworkSpec, X: np.ndarray) -> list[tuple[int, int, int]]:
    """Writes that load one sample's binary raster ``X[T, C]`` as events sorted by (t, c)."""
    return [tuple(w) for w in stimulus_array(spec, X).tolist()]


@dataclass
class HdlSample:
    """What the hardware reported for one sample."""

    emissions: list[tuple[np.ndarray, np.ndarray]]  # per spiking layer: (t, j) in emission order
    readout: np.ndarray  # [T, n_classes]
    cycles: int
    counters: list[dict[str, int]]  # per core
    record_overflow: bool
    step_cycles: np.ndarray  # [T] cycle count when each step ended (the exit step's after it)
    exit_step: int = -1  # the last step run
    early_exit: bool = False  # the early-exit rule fired


# ---------------------------------------------------------------- the result-port protocol
@dataclass(frozen=True)
class ReadRun:
    """``n`` consecutive result-port reads ``(sel, start + a)``. With ``count_word``
    set, only ``min(n, status[count_word])`` of them are read, where ``status`` is
    the first run's words (the status block, always read first)."""

    sel: int
    start: int
    n: int
    count_word: int | None = None

    def count(self, status) -> int:
        return self.n if self.count_word is None else min(self.n, int(status[self.count_word]))


def result_plan(spec: NetworkSpec, T: int, n_classes: int) -> list[ReadRun]:
    """The reads for one finished sample, in order: the status block, the spike
    records of each spiking layer (as many as its record counter says), the
    readout sums of ``T`` steps and the per-step cycle stamps. pysim, cocotb and
    the Verilator harness all read exactly this list (:func:`result_reads`) and
    decode the words with :func:`decode_words`."""
    L = len(spec.layers)
    nc = spec.n_classes
    plan = [ReadRun(spec.sel_status, 0, STATUS_BASE + 8 * L)]
    plan += [ReadRun(l, 0, spec.max_spikes, spec.status_addr(l, "records")) for l in range(L - 1)]
    # readout words are laid out t * nc + j: one run covers the T steps of the build's nc classes
    plan += [ReadRun(spec.sel_readout, 0, T * nc), ReadRun(spec.sel_step_cycles, 0, T)]
    return plan


def result_reads(plan: list[ReadRun], status) -> list[tuple[int, int]]:
    """Every ``(sel, addr)`` of ``plan`` once the status block ``status`` is known."""
    return [(r.sel, r.start + a) for r in plan for a in range(r.count(status))]


class ResultWords:
    """The words of one sample read in :func:`result_plan` order, addressable as
    ``read(sel, addr)`` and in blocks (``block(sel, start, n)``)."""

    def __init__(self, plan: list[ReadRun], words):
        self.words = np.asarray(words, dtype=np.uint64)
        self.base: dict[int, tuple[int, int, int]] = {}
        status = self.words[:plan[0].n]
        pos = 0
        for r in plan:
            n = r.count(status)
            self.base[r.sel] = (pos, r.start, n)
            pos += n
        if pos != len(self.words):
            raise ValueError(f"result words: the plan reads {pos}, got {len(self.words)}")

    def block(self, sel: int, start: int, n: int) -> np.ndarray:
        pos, s0, have = self.base[sel]
        if start < s0 or start + n > s0 + have:
            raise KeyError(f"result port: sel {sel} addresses {start}..{start + n - 1} were not read")
        return self.words[pos + start - s0: pos + start - s0 + n].astype(np.int64)

    def __call__(self, sel: int, addr: int) -> int:
        return int(self.block(sel, addr, 1)[0])


def _block(read, sel: int, start: int, n: int) -> np.ndarray:
    if hasattr(read, "block"):
        return read.block(sel, start, n)
    return np.array([read(sel, start + a) for a in range(n)], dtype=np.int64)


def decode_results(spec: NetworkSpec, model: Model, read) -> HdlSample:
    """Decode a finished sample through ``read(sel, addr) -> int`` (or a :class:`ResultWords`)."""
    status = lambda a: int(read(spec.sel_status, a))
    counters = [{n: status(spec.status_addr(l, n)) for n in CORE_STATUS} for l in range(len(spec.layers))]
    emissions = []
    for l in range(len(spec.layers) - 1):
        n = min(counters[l]["records"], spec.max_spikes)
        ib = spec.idx_bits(l)
        words = _block(read, l, 0, n)
        emissions.append((words >> ib, words & ((1 << ib) - 1)))
    nc = spec.n_classes
    rb = spec.widths.readout_bits
    # rows after the exit step were never written: the readout keeps its exit value
    last = min(status(2), model.T - 1)
    R = _block(read, spec.sel_readout, 0, (last + 1) * nc).reshape(last + 1, nc)[:, :model.n_classes]
    R = np.where(R >> (rb - 1) & 1, R - (1 << rb), R).astype(np.int64)
    R = np.concatenate([R, np.repeat(R[-1:], model.T - last - 1, axis=0)])
    steps = _block(read, spec.sel_step_cycles, 0, last + 1)
    steps = np.concatenate([steps, np.full(model.T - last - 1, steps[-1], dtype=np.int64)])
    return HdlSample(emissions, R, status(0), counters, bool(status(1)), steps, last, bool(status(3)))


def decode_words(spec: NetworkSpec, model: Model, words) -> HdlSample:
    """Decode the words of one sample read in :func:`result_plan` order."""
    return decode_results(spec, model, ResultWords(result_plan(spec, model.T, model.n_classes), words))


class Network(wiring.Component):
    """All cores of a model, FIFOs between them, stimulus and result memories."""

    def __init__(self, spec: NetworkSpec):
        if not spec.layers:
            raise ValueError("Network: spec.layers is empty")
        for l in range(1, len(spec.layers)):
            if spec.layers[l].n_in != spec.layers[l - 1].n_out:
                raise ValueError(f"Network: layers[{l}].n_in={spec.layers[l].n_in} != layers[{l-1}].n_out")
        ra = spec.run_ahead
        if isinstance(ra, bool) or not isinstance(ra, int) or ra < 1:
            raise ValueError(f"Network: run_ahead must be an int >= 1, got {ra!r}")
        self.spec = spec
        L = len(spec.layers)
        w = spec.widths
        self.cores = [
            NeuronCore(n_in=S.n_in, n_out=S.n_out, delays=S.delays, nnz_max=S.nnz_max, spiking=l < L - 1,
                       delay_unit=spec.delay_unit, scdq_capacity=S.scdq_capacity, T_max=spec.T_max,
                       membrane_bits=w.membrane_bits, acc_bits=w.acc_bits, readout_bits=w.readout_bits,
                       weight_bits=w.weight_bits, ring_lanes=spec.ring_lanes)
            for l, S in enumerate(spec.layers)
        ]
        self.tw = self.cores[0].tw
        addr_bits = max(max(c.cfg_addr.shape().width for c in self.cores), _bits(spec.max_events), 2)
        data_bits = max(max(c.cfg_data_bits for c in self.cores), 32)
        res_addr_bits = max(_bits(spec.max_spikes), _bits(spec.T_max * spec.n_classes), 8 + 8 * L).bit_length() + 1
        super().__init__({
            "cfg_we": In(1), "cfg_sel": In(8), "cfg_addr": In(addr_bits), "cfg_data": In(data_bits),
            "start": In(1), "done": Out(1), "busy": Out(1),
            "res_sel": In(8), "res_addr": In(max(res_addr_bits, 16)), "res_data": Out(max(64, w.readout_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        L = len(spec.layers)
        cores = self.cores
        tw = self.tw
        # host inputs are registered once: no logic depends on a top-level input combinationally,
        # which keeps a compiled model's input-change evaluation small (and eases timing)
        cfg_we, cfg_sel = Signal.like(self.cfg_we), Signal.like(self.cfg_sel)
        cfg_addr, cfg_data, start = Signal.like(self.cfg_addr), Signal.like(self.cfg_data), Signal()
        m.d.sync += [cfg_we.eq(self.cfg_we), cfg_sel.eq(self.cfg_sel), cfg_addr.eq(self.cfg_addr),
                     cfg_data.eq(self.cfg_data), start.eq(self.start)]
        for l, c in enumerate(cores):
            m.submodules[f"core{l}"] = c
            m.d.comb += [c.cfg_we.eq(cfg_we & (cfg_sel[2:] == l)), c.cfg_sel.eq(cfg_sel[:2]),
                         c.cfg_addr.eq(cfg_addr), c.cfg_data.eq(cfg_data)]

        # network registers
        rb = spec.widths.readout_bits
        T = Signal(tw)
        n_events = Signal(_bits(spec.max_events + 1) + 1)
        ee_margin, ee_steps = Signal(rb), Signal(tw)  # early exit: 0 in either is off
        ee_classes = Signal(range(spec.n_classes + 1))  # the model's classes; the build may have more
        net_we = cfg_we & (cfg_sel == spec.sel_net)
        for a, reg in enumerate((T, n_events, ee_margin, ee_steps, ee_classes)):
            with m.If(net_we & (cfg_addr == a)):
                m.d.sync += reg.eq(cfg_data)

        # stimulus memory: {c, t}
        ib = _bits(spec.layers[0].n_in)
        stim_layout = data.StructLayout({"c": unsigned(ib), "t": unsigned(tw)})
        m.submodules.stim = stim = memory.Memory(shape=stim_layout, depth=spec.max_events, init=[])
        st_wr = stim.write_port()
        st_rd = stim.read_port(domain="comb")
        m.d.comb += [st_wr.addr.eq(cfg_addr), st_wr.data.eq(cfg_data),
                     st_wr.en.eq(cfg_we & (cfg_sel == spec.sel_stimulus))]

        # per-core step sequencing (see "Steps" in the class docstring): core l runs its own steps,
        # cur_t[l] is the step it runs (or last ran), next_t[l] the next one it may start
        draining = Signal()  # after an early exit: FIFOs of cores not running a step are emptied
        cur_t = [Signal(tw, name=f"cur_t{l}") for l in range(L)]
        next_t = [Signal(tw, name=f"next_t{l}") for l in range(L)]
        pending = [Signal(name=f"pending{l}") for l in range(L)]  # a step started and not yet finished
        finishing = [Signal(name=f"finishing{l}") for l in range(L)]
        for l, c in enumerate(cores):
            m.d.comb += [finishing[l].eq(pending[l] & c.done), c.t.eq(next_t[l])]
        t = cur_t[-1]  # the readout core's step: the network's step

        # FIFOs: feeder -> core0 -> core1 -> ...
        fifos = []
        for l, c in enumerate(cores):
            width = event_layout(spec.layers[l].n_in).size
            f = fifo.SyncFIFOBuffered(width=width, depth=spec.fifo_depth)
            m.submodules[f"fifo{l}"] = f
            fifos.append(f)
            m.d.comb += [c.inp.payload.eq(f.r_data), c.inp.valid.eq(f.r_rdy),
                         f.r_en.eq(c.inp.ready | (draining & c.done & ~pending[l]))]
        for l in range(L - 1):
            c, f = cores[l], fifos[l + 1]
            m.d.comb += [f.w_data.eq(c.out.payload), f.w_en.eq(c.out.valid), c.out.ready.eq(f.w_rdy)]

        # result memories
        rec_mems, rec_rds, rec_counts = [], [], []
        for l in range(L - 1):
            ob = _bits(spec.layers[l].n_out)
            mem = memory.Memory(shape=unsigned(tw + ob), depth=spec.max_spikes, init=[])
            m.submodules[f"rec{l}"] = mem
            wr = mem.write_port()
            rd = mem.read_port()
            cnt = Signal(32)
            c = cores[l]
            spike = c.out.valid & c.out.ready & ~c.out.payload.eos
            m.d.comb += [wr.addr.eq(cnt), wr.data.eq(Cat(c.out.payload.idx, cur_t[l])),
                         wr.en.eq(spike & (cnt < spec.max_spikes))]
            with m.If(spike & (cnt != (1 << 32) - 1)):
                m.d.sync += cnt.eq(cnt + 1)
            rec_rds.append(rd)
            rec_counts.append(cnt)
        nc = spec.n_classes
        m.submodules.readout = rmem = memory.Memory(shape=signed(spec.widths.readout_bits), depth=spec.T_max * nc, init=[])
        r_wr = rmem.write_port()
        r_rd = rmem.read_port()
        last = cores[-1]
        m.d.comb += [r_wr.addr.eq(t * nc + last.rec.payload.j), r_wr.data.eq(last.rec.payload.value),
                     r_wr.en.eq(last.rec.valid), last.rec.ready.eq(1)]
        # early exit: the top two readout sums of this step (records come in ascending j, j = 0 first)
        best, second = Signal(signed(rb)), Signal(signed(rb))
        value = last.rec.payload.value
        with m.If(last.rec.valid & (last.rec.payload.j < ee_classes)):
            with m.If(last.rec.payload.j == 0):
                m.d.sync += [best.eq(value), second.eq(-(1 << (rb - 1)))]
            with m.Elif(value > best):
                m.d.sync += [best.eq(value), second.eq(best)]
            with m.Elif(value > second):
                m.d.sync += second.eq(value)
        lead = Signal(signed(rb + 2))
        m.d.comb += lead.eq(best - second)
        streak = Signal(tw)
        streak_next = Signal(tw + 1)
        m.d.comb += streak_next.eq(Mux(lead >= ee_margin, streak + 1, 0))
        exit_now = Signal()
        m.d.comb += exit_now.eq((ee_margin != 0) & (ee_steps != 0) & (streak_next >= ee_steps))
        exit_step, exited = Signal(tw), Signal()

        # what a hidden core had counted at the end of its last run_ahead + 1 steps: a core may run
        # run_ahead steps ahead of the exit decision, and the status reports its counters at the end
        # of the exit step
        n_snap = spec.run_ahead + 1
        snap_fields = ("sops", "spikes", "records", "peak", "overflow", "dropped")
        snaps = []  # per hidden core: [(tag, {field: value}) newest first, ...]
        for l in range(L - 1):
            c = cores[l]
            live = {"sops": c.cnt_sop, "spikes": c.cnt_spike, "records": rec_counts[l], "peak": c.peak,
                    "overflow": c.overflow, "dropped": c.dropped}
            hist = []
            for h in range(n_snap):
                tag = Signal(tw, name=f"snap{l}_{h}_t")
                vals = {f: Signal(len(live[f]), name=f"snap{l}_{h}_{f}") for f in snap_fields}
                hist.append((tag, vals))
            with m.If(finishing[l]):
                for (tn, vn), (to, vo) in zip(hist[1:], hist[:-1]):  # shift: older <- newer
                    m.d.sync += [tn.eq(to)] + [vn[f].eq(vo[f]) for f in snap_fields]
                t0, v0 = hist[0]
                m.d.sync += [t0.eq(cur_t[l])] + [v0[f].eq(live[f]) for f in snap_fields]
            snaps.append(hist)

        def snap_at(l, f, step):
            """Hidden core l's counter f at the end of ``step`` (the newest snapshot tagged so)."""
            v = snaps[l][-1][1][f]
            for tag, vals in reversed(snaps[l][:-1]):
                v = Mux(tag == step, vals[f], v)
            return v

        # latched at the readout's last step (the snapshot of that step is taken by then: a hidden
        # core ends a step several cycles before the readout can), so that the status block reads
        # plain registers (a mux in the status path costs every clock in a compiled model)
        rep = {(l, f): Signal.like(snaps[l][0][1][f], name=f"rep{l}_{f}") for l in range(L - 1) for f in snap_fields}
        rep_ovf = Signal()

        def at_exit(l, f):
            return rep[l, f]

        # sequencer
        cycles = Signal(32)
        m.submodules.stepcyc = scmem = memory.Memory(shape=unsigned(32), depth=spec.T_max, init=[])
        sc_wr = scmem.write_port()
        sc_rd = scmem.read_port()
        m.d.comb += [sc_wr.addr.eq(t), sc_wr.data.eq(cycles)]
        ev_ptr = Signal(n_events.shape())
        all_done = Signal()
        m.d.comb += all_done.eq(Cat(*[c.done for c in cores]).all())
        feeding = Signal()
        feed_t = Signal(tw)
        f0 = fifos[0]
        stim_ev = stim_layout(st_rd.data)
        m.d.comb += st_rd.addr.eq(ev_ptr)
        has_ev = (ev_ptr < n_events) & (stim_ev.t == feed_t)
        m.d.comb += [f0.w_en.eq(feeding),
                     f0.w_data.eq(Mux(has_ev, stim_ev.c, 1 << ib))]  # eos bit sits above idx
        with m.If(feeding & f0.w_rdy):
            with m.If(has_ev):
                m.d.sync += ev_ptr.eq(ev_ptr + 1)
            with m.Else():
                m.d.sync += feeding.eq(0)

        # sequencer states (a plain state register: Verilator lints the incomplete case of an FSM)
        S_IDLE, S_CLEAR, S_RUN, S_DONE, S_DRAIN = range(5)
        state = Signal(3)
        decided = Signal(tw)  # steps the readout finished without an exit
        restart = [cycles.eq(0), ev_ptr.eq(0), streak.eq(0), exit_step.eq(0), exited.eq(0), feeding.eq(0),
                   decided.eq(0)] + [cnt.eq(0) for cnt in rec_counts]
        restart += [x.eq(0) for x in cur_t + next_t + pending]
        restart += [s.eq(0) for hist in snaps for tag, vals in hist for s in [tag, *vals.values()]]
        restart += [*[r.eq(0) for r in rep.values()], rep_ovf.eq(0)]
        run = state == S_RUN
        # the readout's end of step: the exit decision, the step's cycle stamp
        r_fin = finishing[-1]
        halt = r_fin & ((t + 1 >= T) | exit_now)
        for l, c in enumerate(cores):
            # a core starts its next step when it is done with the last one, and a hidden core at most
            # run_ahead steps ahead of the exit decision: step s only after the readout finished step
            # s - 1 - run_ahead (a core never starts a step before the core upstream of it has)
            lag_ok = Const(1) if l == L - 1 else (next_t[l] <= decided + spec.run_ahead)
            go = Signal(name=f"go{l}")
            m.d.comb += go.eq(run & c.done & (next_t[l] < T) & lag_ok & ~halt)
            m.d.comb += c.step_start.eq(go)
            with m.If(go):
                m.d.sync += [cur_t[l].eq(next_t[l]), next_t[l].eq(next_t[l] + 1), pending[l].eq(1)]
            with m.Elif(finishing[l]):
                m.d.sync += pending[l].eq(0)
        with m.If(cores[0].step_start):
            m.d.sync += [feeding.eq(1), feed_t.eq(next_t[0])]
        quiet = Signal()  # no core runs a step, no FIFO holds anything, the feeder is idle
        m.d.comb += quiet.eq(all_done & ~Cat(*pending).any() & ~Cat(*[f.r_level != 0 for f in fifos]).any() & ~feeding)
        with m.If(state == S_DRAIN):
            m.d.comb += draining.eq(1)
            with m.If(quiet):
                m.d.sync += state.eq(S_DONE)
        with m.Elif(state == S_CLEAR):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(all_done):
                m.d.sync += state.eq(S_RUN)
        with m.Elif(state == S_RUN):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(r_fin):
                m.d.comb += sc_wr.en.eq(1)
                m.d.sync += [streak.eq(streak_next), exit_step.eq(t), exited.eq(exit_now), decided.eq(t + 1)]
                with m.If(halt):
                    # after an exit a hidden core may be inside the next step: drain first
                    m.d.sync += state.eq(Mux(exit_now, S_DRAIN, S_DONE))
                    for l in range(L - 1):
                        m.d.sync += [rep[l, f].eq(snap_at(l, f, t)) for f in snap_fields]
                    m.d.sync += rep_ovf.eq(Cat(*[snap_at(l, "records", t) > spec.max_spikes
                                                 for l in range(L - 1)] or [Const(0)]).any())
        with m.Elif((state == S_IDLE) | (state == S_DONE)):
            m.d.comb += self.done.eq((state == S_DONE) & ~start)  # a new start clears done at once
            with m.If(start):
                m.d.sync += restart + [state.eq(S_CLEAR)]
                m.d.comb += [c.clear.eq(1) for c in cores]
        with m.Else():
            m.d.sync += state.eq(S_IDLE)
        m.d.comb += self.busy.eq(~self.done)

        # result port
        rec_overflow = rep_ovf
        status = [cycles, rec_overflow, exit_step, exited] + [Const(0, 1)] * (8 - 4)
        for l, c in enumerate(cores):
            if l < L - 1:
                status += [c.cnt_busy, at_exit(l, "sops"), c.cnt_stall, at_exit(l, "spikes"), at_exit(l, "records"),
                           at_exit(l, "peak"), at_exit(l, "overflow"), at_exit(l, "dropped")]
            else:
                status += [c.cnt_busy, c.cnt_sop, c.cnt_stall, c.cnt_spike, Const(0, 1), c.peak, c.overflow, c.dropped]
        status_arr = Array(status)
        status_q = Signal(32)
        sel_q = Signal(8)
        m.d.sync += sel_q.eq(self.res_sel)
        # the status mux only while the host reads the status block: a compiled model then skips it
        # in the other clocks (it holds the last word read, which nothing reads)
        with m.If(self.res_sel == spec.sel_status):
            m.d.sync += status_q.eq(Mux(self.res_addr < len(status), status_arr[self.res_addr[:clog2(len(status)) or 1]], 0))
        for rd in rec_rds:
            m.d.comb += rd.addr.eq(self.res_addr)
        m.d.comb += [r_rd.addr.eq(self.res_addr), sc_rd.addr.eq(self.res_addr)]
        with m.Switch(sel_q):
            for l, rd in enumerate(rec_rds):
                with m.Case(l):
                    m.d.comb += self.res_data.eq(rd.data)
            with m.Case(spec.sel_readout):
                m.d.comb += self.res_data.eq(r_rd.data.as_unsigned())
            with m.Case(spec.sel_status):
                m.d.comb += self.res_data.eq(status_q)
            with m.Case(spec.sel_step_cycles):
                m.d.comb += self.res_data.eq(sc_rd.data)
            with m.Default():
                m.d.comb += self.res_data.eq(0)
        return m
