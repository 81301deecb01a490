"""The bit-exact behavioural reference of the spikeline hardware (numpy + numba).

This module *is* the contract of docs/contract.md in executable form. The Amaranth
components, the generated Verilog and the integer inference of trained models
are all tested against it; nothing else restates these rules.

Arithmetic (all integers)
-------------------------
* leak:       ``v <- trunc0(v * a / 4096)``, truncation toward zero
* saturation: membrane to signed ``membrane_bits``, readout sum to signed
  ``readout_bits``; synaptic sums never wrap (the model loader forbids it)
* fire:       spiking layer and ``v >= threshold``; reset ``zero`` (v <- 0) or
  ``subtract`` (v <- v - threshold)
* readout:    ``R[j] += v[j]`` once per step; prediction = argmax R, lowest
  index on ties

Layered execution: per step, ``v = sat(leak(v) + I)``, with
``I[j] = sum_k sum_i W[k,i,j] * S_prev[t - d_k, i]``; every spiking neuron is
checked every step; emission order within a step is ascending ``j``.

Asynchronous execution: at the start of each step every layer leaks and clears
its refractory flags. A layer then handles (1) delayed events due at ``t``,
(2) the ``d=0`` taps of spikes the previous layer emits during ``t``, in
emission order (the input layer emits in ascending channel order). Each update
``v[j] = sat(v[j] + w)`` is followed by a threshold check; a neuron fires at
most once per step and keeps integrating while refractory.

* SCDQ: delayed events ``(i, k)`` (``d_k > 0``) emitted at ``t - d_k`` go by
  ascending ``k``, and within one ``k`` in the previous layer's emission order.
* Ring buffer: each neuron ``j`` in ascending order drains its pre-summed slot
  for ``t`` as one update; a slot holding 0 is no update.

Readings chosen where the contract is silent (real-hardware readings):
* Ring buffer in async mode: ``d = 0`` taps do not pass through the ring; they
  are applied to the membrane at once as same-step events (phase 2), exactly
  like the SCDQ, since a slot for the current step has already been drained.
* A layer whose largest delay is 0 needs no delay queue: its SCDQ stores
  nothing and costs 0 bits (:func:`scdq_bits`); its occupancy is 0.
* The readout layer leaks and sums ``R += v`` at every step, including steps
  in which it receives no event.
* SOP counts: a tap whose arrival ``t_emit + d_k >= T`` is neither applied nor
  counted; counts are therefore the same for both delay units and both modes
  given the same input spikes.
* SCDQ occupancy counts events by emission step only; events whose every tap
  arrives at or after ``T`` are still held (the queue does not know T).

SCDQ at a fixed capacity (``simulate(..., scdq_capacity=[C per layer])``)
--------------------------------------------------------------------------
The SCDQ of layer ``l`` holds the events of layer ``l-1`` emitted in the last
``D_l + 1`` steps. An event emitted at step ``t`` is pushed when it arrives,
in the previous layer's emission order (ascending ``j`` in layered mode,
ascending channel for the input). It is *stored* iff the queue then holds
fewer than ``C`` events, i.e. iff (stored events emitted in ``[t - D_l, t - 1]``)
+ (events of step ``t`` stored before it) ``< C``; otherwise the new event is
dropped (nothing stored is touched), the layer's dropped-event count grows by
one and its sticky overflow flag is set. So in every step the first
``min(n_t, C - held)`` events are stored and the rest are dropped
(:func:`scdq_admitted`). The events of step ``t - D_l`` are retired only at the
end of step ``t``, after they have been read.

* A dropped event loses its delayed taps (``d_k > 0``) only: its ``d = 0`` taps
  do not pass through the queue and are applied (and counted as SOPs) as
  usual.
* The same rule holds in both modes: the layered core also writes each input
  spike into its SCDQ once, at emission, and sums the due events into its input
  accumulator; a fixed capacity is a property of the chip, not of the mode.
* Occupancy, peak and SOPs count stored events only; the peak at a capacity
  below the unlimited peak is therefore ``C`` (when it overflows).
* The capacity is per layer; ``None`` (for the whole list or one layer) is an
  unlimited queue. A layer whose largest delay is 0 has no queue and ignores
  its capacity.
* The queue's window is the build's largest delay level ``D_q`` (its table of
  ``D_q + 1`` step pointers), not the programmed model's: a model with fewer
  levels in a larger build keeps its events ``D_q + 1`` steps. ``scdq_window``
  gives ``D_q`` per layer (default: the layer's own ``max(delays)``, which is
  the build ``NetworkSpec.for_model`` makes); it also sets the occupancy. The ring buffer has no event capacity: a capacity with
  ``delay_unit='ring'`` is refused.

Early exit (``simulate(..., early_exit=(m, s))``)
-------------------------------------------------
A run-time rule on the readout may end a sample before ``T``. After the readout
sum of step ``t`` (``R[t]``), let ``lead_t = R[t][top] - R[t][runner-up]``: the
largest sum minus the second largest (equal sums give ``lead 0``; a one-class
readout's runner-up is the smallest readout value ``-2^(readout_bits-1)``).
Step ``t`` is a *hit* when ``lead_t >= m``. The sample exits at the first step
``t`` that ends a run of ``s`` consecutive hits (:func:`early_exit_step`).
``m = 0`` or ``s = 0`` turns the rule off; ``m`` and ``s`` are run-time
configuration (``0 <= m < 2^readout_bits``).

* ``exit_step`` is the last step run (``T - 1`` when the rule never fires) and
  ``early_exit`` says whether the rule fired; the prediction is the argmax of
  ``R[exit_step]`` (lowest index on ties).
* No step after ``exit_step`` runs in any layer: no spikes, no SOPs, no
  queue traffic; the readout keeps its exit value (``readout`` rows after the
  exit repeat ``R[exit_step]``) and the time to decision is computed on that
  frozen readout. Occupancy after the exit is 0; peak and dropped counts cover
  steps ``0..exit_step``.
* Which SOPs count: exactly those the hardware's counters saw in steps
  ``0..exit_step`` of every layer. The network starts each step in all cores
  together and ends it when every core is done, so no core runs ahead into a
  later step, in either mode; in async mode the hidden cores may finish step
  ``t`` before the readout does, but they have done only step ``t``'s work. A
  ring buffer counts a delayed tap when it is written into the ring, at
  emission: taps written before the exit for arrival after it were spent and
  count. An SCDQ counts a tap when the event is due, so events still queued at
  the exit do not count. (Without an exit both units count the same total.)
* Cycles stop at the end of ``exit_step`` (the HDL's cycle counter).

Because each layer's state depends only on its own ordered input sequence, the
reference runs one layer over all ``T`` steps, then the next layer on the
emission list it produced. The HDL interleaves the layers in time and must
still match exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from hw.model_file import DECAY_ONE, Layer, Model, validate

try:  # numba makes the event-by-event async path fast; the semantics do not depend on it
    from numba import njit
except ImportError:  # pragma: no cover - numba is a pinned dependency
    def njit(*a, **k):
        return (lambda f: f) if not a or not callable(a[0]) else a[0]

MODES = ("layered", "async")
DELAY_UNITS = ("ring", "scdq")


# ---------------------------------------------------------------- arithmetic
def trunc0_leak(v: np.ndarray, decay: int) -> np.ndarray:
    """``trunc0(v * a / 4096)`` for an int64 array (rounds toward zero)."""
    q = (np.abs(v) * decay) >> 12
    return np.where(v < 0, -q, q)


def sat(v: np.ndarray | int, bits: int):
    """Saturate to the signed range of ``bits``."""
    hi = (1 << (bits - 1)) - 1
    return np.clip(v, -hi - 1, hi)


def argmax_lowest(R: np.ndarray) -> np.ndarray:
    """argmax over the last axis; numpy already returns the lowest index on ties."""
    return np.argmax(R, axis=-1)


def time_to_decision(R: np.ndarray) -> np.ndarray:
    """Smallest step ``t`` at which the running argmax equals the final
    prediction at ``t`` and at every later step. ``R``: ``[..., T, n]``."""
    am = argmax_lowest(R)  # [..., T]
    final = am[..., -1:]
    wrong = am != final
    T = am.shape[-1]
    # last wrong step + 1; 0 if never wrong
    idx = np.where(wrong, np.arange(T), -1).max(axis=-1)
    return idx + 1


# ---------------------------------------------------------------- results
@dataclass
class LayerTrace:
    """What one layer did over one sample."""

    spikes: np.ndarray  # bool [T, n_out]; all False for the readout
    emit_t: np.ndarray  # int32 [n_spikes], step of each emission, in emission order
    emit_j: np.ndarray  # int32 [n_spikes], neuron of each emission
    sops: int  # synaptic operations applied in this layer
    occupancy: np.ndarray  # int64 [T], SCDQ occupancy (stored events) after each step
    dropped: int = 0  # events the layer's fixed-capacity SCDQ dropped (0 when unlimited)
    sops_t: np.ndarray | None = None  # int64 [T], SOPs by the step in which the hardware counts them
    dropped_t: np.ndarray | None = None  # int64 [T], dropped events by emission step

    @property
    def peak(self) -> int:
        """Largest SCDQ occupancy over the sample (the HDL's peak register)."""
        return int(self.occupancy.max(initial=0))

    @property
    def overflow(self) -> bool:
        """The HDL's sticky overflow flag: some event was dropped."""
        return self.dropped > 0


@dataclass
class SampleResult:
    """Everything the reference says about one sample."""

    layers: list[LayerTrace]
    readout: np.ndarray  # int64 [T, n_classes], R after each step (frozen after an early exit)
    prediction: int
    time_to_decision: int
    exit_step: int = -1  # the last step run: T - 1, or the step at which the early-exit rule fired
    early_exit: bool = False  # the early-exit rule fired (at exit_step)

    @property
    def sops(self) -> np.ndarray:
        return np.array([L.sops for L in self.layers], dtype=np.int64)


@dataclass
class BatchResult:
    """Per-sample results of a batch, with a few convenient stacked views."""

    samples: list[SampleResult]

    @property
    def predictions(self) -> np.ndarray:
        return np.array([s.prediction for s in self.samples], dtype=np.int64)

    @property
    def sops(self) -> np.ndarray:  # [B, L]
        return np.stack([s.sops for s in self.samples])

    @property
    def occupancy(self) -> np.ndarray:  # [B, L, T]
        return np.stack([np.stack([L.occupancy for L in s.layers]) for s in self.samples])

    @property
    def dropped(self) -> np.ndarray:  # [B, L]
        return np.array([[L.dropped for L in s.layers] for s in self.samples], dtype=np.int64)

    @property
    def readout(self) -> np.ndarray:  # [B, T, n_classes]
        return np.stack([s.readout for s in self.samples])

    @property
    def time_to_decision(self) -> np.ndarray:
        return np.array([s.time_to_decision for s in self.samples], dtype=np.int64)

    @property
    def exit_step(self) -> np.ndarray:
        return np.array([s.exit_step for s in self.samples], dtype=np.int64)

    @property
    def early_exit(self) -> np.ndarray:
        return np.array([s.early_exit for s in self.samples], dtype=bool)

    def spikes(self, layer: int) -> np.ndarray:  # [B, T, n_out]
        return np.stack([s.layers[layer].spikes for s in self.samples])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, b: int) -> SampleResult:
        return self.samples[b]


# ---------------------------------------------------------------- helpers shared by both modes
def _check_input(model: Model, X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim == 2:
        X = X[None]
    if X.ndim != 3:
        raise ValueError(f"input raster must be [T, C] or [B, T, C], got shape {X.shape}")
    if X.shape[1] != model.T:
        raise ValueError(f"input raster has T={X.shape[1]} steps but the model has T={model.T}")
    if X.shape[2] != model.n_inputs:
        raise ValueError(f"input raster has {X.shape[2]} channels but the model has n_inputs={model.n_inputs}")
    if X.dtype != np.bool_:
        if not np.isin(X, (0, 1)).all():
            raise ValueError("input raster must be binary (at most one event per (t, c))")
        X = X.astype(bool)
    return X


def raster_from_events(t: np.ndarray, c: np.ndarray, T: int, n_channels: int) -> np.ndarray:
    """Binary raster ``[T, C]`` from event arrays; rejects out-of-range events."""
    t = np.asarray(t, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    if t.size and (t.min() < 0 or t.max() >= T):
        raise ValueError(f"event step outside [0, {T})")
    if c.size and (c.min() < 0 or c.max() >= n_channels):
        raise ValueError(f"event channel outside [0, {n_channels})")
    X = np.zeros((T, n_channels), dtype=bool)
    X[t, c] = True
    return X


def events_from_raster(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Events ``(t, c)`` of a ``[T, C]`` raster, sorted by t then c."""
    t, c = np.nonzero(X)
    return t.astype(np.int32), c.astype(np.int32)


def scdq_occupancy(counts: np.ndarray, max_delay: int) -> np.ndarray:
    """Occupancy after each step from the previous layer's per-step spike
    counts ``[..., T]``: events emitted in ``[t - D, t]``; 0 when ``D == 0``."""
    counts = np.asarray(counts, dtype=np.int64)
    if max_delay == 0:
        return np.zeros_like(counts)
    c = np.cumsum(counts, axis=-1)
    shifted = np.zeros_like(c)
    n = c.shape[-1] - max_delay - 1
    if n > 0:
        shifted[..., max_delay + 1:] = c[..., :n]
    return c - shifted


def scdq_admitted(counts: np.ndarray, max_delay: int, capacity: int | None) -> np.ndarray:
    """Events per step that an SCDQ of ``capacity`` stores, from the previous
    layer's per-step spike counts ``[..., T]`` (the rule of "SCDQ at a fixed
    capacity" above): the first ``min(n_t, C - held_t)`` events of step ``t``,
    where ``held_t`` counts the stored events emitted in ``[t - D, t - 1]``.
    ``capacity=None`` or ``max_delay == 0``: everything (no queue limit)."""
    counts = np.asarray(counts, dtype=np.int64)
    if capacity is None or max_delay == 0:
        return counts.copy()
    kept = np.zeros_like(counts)
    held = np.zeros(counts.shape[:-1], dtype=np.int64)  # stored events of [t - D, t - 1]
    for t in range(counts.shape[-1]):
        kept[..., t] = np.minimum(counts[..., t], capacity - held)
        held = held + kept[..., t]
        if t - max_delay >= 0:
            held = held - kept[..., t - max_delay]
    return kept


def _check_early_exit(early_exit, readout_bits: int) -> tuple[int, int]:
    """``(m, s)`` from the ``early_exit`` argument (``None``: off)."""
    if early_exit is None:
        return 0, 0
    try:
        m, s = early_exit
    except (TypeError, ValueError):
        raise ValueError(f"early_exit must be (margin, steps), got {early_exit!r}") from None
    for name, v, hi in (("margin", m, (1 << readout_bits) - 1), ("steps", s, None)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0 or (hi and v > hi):
            raise ValueError(f"early_exit {name} must be an int in [0, {hi or 'T'}], got {v!r}")
    return int(m), int(s)


def early_exit_step(R: np.ndarray, margin: int, steps: int, readout_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The early-exit rule on readout histories ``R[..., T, n]``: returns
    ``(exit_step, fired)``; ``exit_step`` is ``T - 1`` where the rule does not
    fire (and whenever ``margin == 0`` or ``steps == 0``: the rule is off)."""
    R = np.asarray(R, dtype=np.int64)
    T = R.shape[-2]
    exit_step = np.full(R.shape[:-2], T - 1, dtype=np.int64)
    fired = np.zeros(R.shape[:-2], dtype=bool)
    if margin == 0 or steps == 0 or T == 0:
        return exit_step, fired
    if R.shape[-1] == 1:
        second = np.full(R.shape[:-1], -(1 << (readout_bits - 1)), dtype=np.int64)
    else:
        second = np.sort(R, axis=-1)[..., -2]
    hit = R.max(axis=-1) - second >= margin  # [..., T]
    run = np.zeros(R.shape[:-2], dtype=np.int64)
    for t in range(T):
        run = np.where(hit[..., t], run + 1, 0)
        now = (run >= steps) & ~fired
        exit_step = np.where(now, t, exit_step)
        fired |= now
    return exit_step, fired


def _apply_exit(r: SampleResult, exit_step: int, fired: bool) -> SampleResult:
    """The sample as the hardware ends it at ``exit_step`` (module docstring, "Early exit")."""
    e = int(exit_step)
    if e == r.readout.shape[0] - 1:
        r.early_exit = bool(fired)
        return r
    for L in r.layers:
        keep = L.emit_t <= e
        L.emit_t, L.emit_j = L.emit_t[keep], L.emit_j[keep]
        L.spikes = L.spikes.copy()
        L.spikes[e + 1:] = False
        L.sops_t = L.sops_t.copy()
        L.sops_t[e + 1:] = 0
        L.sops = int(L.sops_t.sum())
        L.occupancy = L.occupancy.copy()
        L.occupancy[e + 1:] = 0
        L.dropped_t = L.dropped_t.copy()
        L.dropped_t[e + 1:] = 0
        L.dropped = int(L.dropped_t.sum())
    R = r.readout.copy()
    R[e + 1:] = R[e]
    return SampleResult(r.layers, R, int(argmax_lowest(R[e])), int(time_to_decision(R)), e, bool(fired))


def apply_early_exit(result: BatchResult, early_exit, readout_bits: int) -> BatchResult:
    """``result`` (a run without early exit) as the early-exit rule ``(m, s)`` ends it: one full
    run gives every setting, because the rule only reads the readout and nothing after the exit
    step runs (module docstring, "Early exit"). ``result`` itself is not changed."""
    margin, steps = _check_early_exit(early_exit, readout_bits)
    if not (margin and steps and result.samples):
        return result
    if any(r.early_exit for r in result.samples):
        raise ValueError("apply_early_exit needs a run without early exit")
    ex, fired = early_exit_step(result.readout, margin, steps, readout_bits)
    return BatchResult([_apply_exit(replace(r, layers=[replace(L) for L in r.layers]), e, f)
                        for r, e, f in zip(result.samples, ex, fired)])


def _check_window(model: Model, scdq_window) -> list[int]:
    """Per-layer SCDQ windows ``D_q >= max(delays)`` (default: the layer's own largest delay)."""
    if scdq_window is None:
        return [int(L.max_delay) for L in model.layers]
    try:
        wins = list(scdq_window)
    except TypeError:
        raise ValueError(f"scdq_window must be a list of one window per layer, got {scdq_window!r}") from None
    if len(wins) != len(model.layers):
        raise ValueError(f"scdq_window has {len(wins)} entries but the model has {len(model.layers)} layers")
    for l, (w, L) in enumerate(zip(wins, model.layers)):
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, (int, np.integer)) or w < L.max_delay:
            raise ValueError(f"scdq_window[{l}] must be an int >= the layer's largest delay {L.max_delay}, got {w!r}")
    return [int(w) for w in wins]


def _check_capacity(model: Model, scdq_capacity, delay_unit: str) -> list:
    """Per-layer capacities (int >= 1, or None for unlimited) from the ``scdq_capacity`` argument."""
    L = len(model.layers)
    if scdq_capacity is None:
        return [None] * L
    if delay_unit != "scdq":
        raise ValueError(f"scdq_capacity applies to delay_unit='scdq' only (the ring buffer has no event "
                         f"capacity), got delay_unit={delay_unit!r}")
    try:
        caps = list(scdq_capacity)
    except TypeError:
        raise ValueError(f"scdq_capacity must be a list of one capacity per layer, got {scdq_capacity!r}") from None
    if len(caps) != L:
        raise ValueError(f"scdq_capacity has {len(caps)} entries but the model has {L} layers")
    for l, c in enumerate(caps):
        if c is None:
            continue
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or c < 1:
            raise ValueError(f"scdq_capacity[{l}] must be an int >= 1 (or None: unlimited), got {c!r}")
    return [None if c is None else int(c) for c in caps]


def _kept_raster(S_prev: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The events of ``S_prev[B, T, n]`` a fixed-capacity SCDQ stores: in every step the
    first ``kept[b, t]`` in emission order (ascending index in layered mode)."""
    return S_prev & (np.cumsum(S_prev, axis=2) <= kept[..., None])


def _sop_steps(S_prev: np.ndarray, layer: Layer, ring: bool, S_delayed: np.ndarray | None = None) -> np.ndarray:
    """SOPs per sample and step ``[B, T]``: every spike's non-zero taps that arrive before T,
    counted when the hardware counts them: the ring buffer at emission, the SCDQ
    when the event is due (``d = 0`` taps at emission in both). ``S_prev``: [B, T, n_in];
    ``S_delayed``: the spikes whose delayed taps (``d > 0``) are applied (default ``S_prev``)."""
    B, T, n_in = S_prev.shape
    nnz = (layer.weights != 0).sum(axis=2).T.astype(np.float64)  # [n_in, K]; per-step sums are exact

    def taps(S):
        return np.rint(S.reshape(B * T, n_in).astype(np.float32) @ nnz).astype(np.int64).reshape(B, T, -1)

    P = taps(S_prev)
    P_del = P if S_delayed is None else taps(S_delayed)
    out = np.zeros((B, T), dtype=np.int64)
    for k, d in enumerate(layer.delays):
        if d < T:
            per = (P if d == 0 else P_del)[:, : T - d, k]
            if ring:
                out[:, : T - d] += per
            else:
                out[:, d:] += per
    return out


# ---------------------------------------------------------------- layered (vectorized over the batch)
def _layer_input_layered(S_prev: np.ndarray, layer: Layer, acc_bits: int,
                         S_delayed: np.ndarray | None = None) -> np.ndarray:
    """``I[b, t, j]`` for all steps at once. Floating-point matmul is exact here:
    every partial sum is bounded by sum|W| < 2^(acc_bits-1) (loader rule).
    ``S_delayed``: the spikes whose ``d > 0`` taps apply (the SCDQ's stored events)."""
    B, T, n_in = S_prev.shape
    dtype = np.float32 if acc_bits <= 25 else np.float64
    K = len(layer.delays)
    Wcat = layer.weights.astype(dtype).transpose(1, 0, 2).reshape(n_in, K * layer.n_out)

    def taps(S):
        return (S.reshape(B * T, n_in).astype(dtype) @ Wcat).reshape(B, T, K, layer.n_out)

    P = taps(S_prev)
    P_del = P if S_delayed is None else taps(S_delayed)
    I = np.zeros((B, T, layer.n_out), dtype=np.int64)
    for k, d in enumerate(layer.delays):
        if d < T:
            I[:, d:, :] += np.rint((P if d == 0 else P_del)[:, : T - d, k, :]).astype(np.int64)
    return I


def _run_layered_chunk(model: Model, X: np.ndarray, caps: list, wins: list, ring: bool) -> list[SampleResult]:
    w = model.widths
    B, T, _ = X.shape
    S_prev = X
    traces: list[list[LayerTrace]] = [[] for _ in range(B)]
    R_hist = None
    for layer, cap, win in zip(model.layers, caps, wins):
        counts = S_prev.sum(axis=2, dtype=np.int64)
        kept = scdq_admitted(counts, win, cap)
        S_del = None if cap is None or win == 0 else _kept_raster(S_prev, kept)
        I = _layer_input_layered(S_prev, layer, w.acc_bits, S_del)
        v = np.zeros((B, layer.n_out), dtype=np.int64)
        S = np.zeros((B, T, layer.n_out), dtype=bool)
        if not layer.spiking:
            R = np.zeros((B, layer.n_out), dtype=np.int64)
            R_hist = np.zeros((B, T, layer.n_out), dtype=np.int64)
        for t in range(T):
            v = sat(trunc0_leak(v, layer.decay) + I[:, t], w.membrane_bits)
            if layer.spiking:
                fire = v >= layer.threshold
                S[:, t] = fire
                if layer.reset == "zero":
                    v = np.where(fire, 0, v)
                else:
                    v = np.where(fire, v - layer.threshold, v)
            else:
                R = sat(R + v, w.readout_bits)
                R_hist[:, t] = R
        sops_t = _sop_steps(S_prev, layer, ring, S_del)
        occ = scdq_occupancy(kept, win)
        dropped_t = counts - kept
        for b in range(B):
            et, ej = events_from_raster(S[b])
            traces[b].append(LayerTrace(S[b], et, ej, int(sops_t[b].sum()), occ[b], int(dropped_t[b].sum()),
                                        sops_t[b], dropped_t[b]))
        S_prev = S
    preds = argmax_lowest(R_hist[:, -1])
    ttd = time_to_decision(R_hist)
    return [SampleResult(traces[b], R_hist[b], int(preds[b]), int(ttd[b]), T - 1) for b in range(B)]


# ---------------------------------------------------------------- async (event by event, one layer at a time)
@njit(cache=True, inline="always")
def _update(v, refr, j, x, vmin, vmax, threshold, subtract, spiking, t, out_t, out_j, n):  # pragma: no cover
    """One async update of neuron ``j`` by ``x``: saturate, then fire at most once
    per step (refractory), reset and append to the emission list. Returns the
    new emission count."""
    v[j] = min(max(v[j] + x, vmin), vmax)
    if spiking and not refr[j] and v[j] >= threshold:
        v[j] = v[j] - threshold if subtract else 0
        refr[j] = True
        out_t[n] = t
        out_j[n] = j
        n += 1
    return n


@njit(cache=True)
def _async_layer(pre_t, pre_i, kept, T, delays, row_ptr, cols, vals, n_out, threshold, decay,
                 subtract, spiking, vbits, rbits, ring):  # pragma: no cover - compiled
    """One layer over all steps. Inputs: the previous layer's emissions in
    order, ``kept[t]``: how many of step ``t``'s emissions the SCDQ stored
    (the first ones; SCDQ only), and the synapses in CSR per row
    ``k * n_in + i``. Returns the layer's emissions, the readout history and
    the SOPs per step (counted where the hardware counts them)."""
    vmax = (1 << (vbits - 1)) - 1
    vmin = -vmax - 1
    rmax = (1 << (rbits - 1)) - 1
    rmin = -rmax - 1
    K = delays.shape[0]
    n_in = (row_ptr.shape[0] - 1) // K
    D = delays[K - 1]
    # first emission index of every step
    step_start = np.zeros(T + 1, dtype=np.int64)
    for e in range(pre_t.shape[0]):
        step_start[pre_t[e] + 1] += 1
    for t in range(T):
        step_start[t + 1] += step_start[t]
    v = np.zeros(n_out, dtype=np.int64)
    refr = np.zeros(n_out, dtype=np.bool_)
    R = np.zeros(n_out, dtype=np.int64)
    R_hist = np.zeros((T, n_out), dtype=np.int64)
    slots = np.zeros((D + 1, n_out), dtype=np.int64)
    out_t = np.empty(T * n_out, dtype=np.int32)
    out_j = np.empty(T * n_out, dtype=np.int32)
    n_out_ev = 0
    sops_t = np.zeros(T, dtype=np.int64)
    for t in range(T):
        for j in range(n_out):
            q = (abs(v[j]) * decay) >> 12
            v[j] = -q if v[j] < 0 else q
            refr[j] = False
        # phase 1: delayed input due now
        if ring:
            s = t % (D + 1)
            for j in range(n_out):
                x = slots[s, j]
                if x != 0:
                    slots[s, j] = 0
                    n_out_ev = _update(v, refr, j, x, vmin, vmax, threshold, subtract, spiking, t,
                                       out_t, out_j, n_out_ev)
        else:
            for k in range(K):
                d = delays[k]
                if d == 0 or t - d < 0:
                    continue
                for e in range(step_start[t - d], step_start[t - d] + kept[t - d]):
                    r = k * n_in + pre_i[e]
                    for p in range(row_ptr[r], row_ptr[r + 1]):
                        sops_t[t] += 1
                        n_out_ev = _update(v, refr, cols[p], vals[p], vmin, vmax, threshold, subtract, spiking,
                                           t, out_t, out_j, n_out_ev)
        # phase 2: this step's emissions of the previous layer, in order
        for e in range(step_start[t], step_start[t + 1]):
            i = pre_i[e]
            if ring:  # delayed taps go into the ring at emission
                for k in range(K):
                    d = delays[k]
                    if d == 0 or t + d >= T:
                        continue
                    r = k * n_in + i
                    s = (t + d) % (D + 1)
                    for p in range(row_ptr[r], row_ptr[r + 1]):
                        slots[s, cols[p]] += vals[p]
                        sops_t[t] += 1
            if delays[0] == 0:
                r = i  # k = 0
                for p in range(row_ptr[r], row_ptr[r + 1]):
                    sops_t[t] += 1
                    n_out_ev = _update(v, refr, cols[p], vals[p], vmin, vmax, threshold, subtract, spiking,
                                       t, out_t, out_j, n_out_ev)
        if not spiking:
            for j in range(n_out):
                R[j] = min(max(R[j] + v[j], rmin), rmax)
                R_hist[t, j] = R[j]
    return out_t[:n_out_ev].copy(), out_j[:n_out_ev].copy(), R_hist, sops_t


def csr_rows(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compress ``weights[K, n_in, n_out]`` per row ``r = k * n_in + i``:
    ``row_ptr[K*n_in + 1]``, ``cols`` (ascending within a row) and ``vals``."""
    K, n_in, n_out = weights.shape
    flat = weights.reshape(K * n_in, n_out)
    rows, cols = np.nonzero(flat)
    row_ptr = np.zeros(K * n_in + 1, dtype=np.int64)
    np.add.at(row_ptr, rows + 1, 1)
    return np.cumsum(row_ptr), cols.astype(np.int64), flat[rows, cols].astype(np.int64)


def _async_sample(model: Model, X: np.ndarray, csr, ring: bool, caps: list, wins: list) -> SampleResult:
    w = model.widths
    T = model.T
    pre_t, pre_i = events_from_raster(X)
    traces = []
    R_hist = None
    for layer, (row_ptr, cols, vals), cap, win in zip(model.layers, csr, caps, wins):
        counts = np.bincount(pre_t, minlength=T).astype(np.int64)
        kept = scdq_admitted(counts, win, cap)
        et, ej, Rh, sops_t = _async_layer(
            pre_t, pre_i, kept, T, layer.delays.astype(np.int64), row_ptr, cols, vals, layer.n_out,
            int(layer.threshold), int(layer.decay), layer.reset == "subtract", bool(layer.spiking),
            w.membrane_bits, w.readout_bits, ring,
        )
        S = np.zeros((T, layer.n_out), dtype=bool)
        S[et, ej] = True
        traces.append(LayerTrace(S, et, ej, int(sops_t.sum()), scdq_occupancy(kept, win),
                                 int((counts - kept).sum()), sops_t, counts - kept))
        if not layer.spiking:
            R_hist = Rh
        pre_t, pre_i = et, ej
    return SampleResult(traces, R_hist, int(argmax_lowest(R_hist[-1])), int(time_to_decision(R_hist)), T - 1)


# ---------------------------------------------------------------- public entry point
def simulate(model: Model, X: np.ndarray, mode: str = "layered", delay_unit: str = "scdq",
             chunk: int = 256, progress=None, scdq_capacity=None, early_exit=None,
             scdq_window=None) -> BatchResult:
    """Run the reference on binary input rasters ``X`` (``[T, C]`` or ``[B, T, C]``).

    ``mode``: ``layered`` or ``async``. ``delay_unit``: ``ring`` or ``scdq``
    (changes only the async event order). ``progress``: optional callable
    ``progress(n_done)`` called as samples finish. ``scdq_capacity``: ``None``
    (unlimited queues) or one capacity per layer (int >= 1, or ``None`` for an
    unlimited layer); events that arrive at a full SCDQ are dropped exactly as
    the HDL drops them (module docstring, "SCDQ at a fixed capacity").
    ``early_exit``: ``None`` (off) or ``(margin, steps)``, the run-time rule of
    the module docstring, "Early exit". ``scdq_window``: the SCDQ's window
    ``D_q`` per layer when the build's largest delay exceeds the model's
    (default: the model's own; it sets occupancy, peak and the drop rule).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if delay_unit not in DELAY_UNITS:
        raise ValueError(f"delay_unit must be one of {DELAY_UNITS}, got {delay_unit!r}")
    validate(model)
    caps = _check_capacity(model, scdq_capacity, delay_unit)
    wins = _check_window(model, scdq_window)
    margin, steps = _check_early_exit(early_exit, model.widths.readout_bits)
    X = _check_input(model, X)
    out: list[SampleResult] = []
    if mode == "layered":
        for s in range(0, X.shape[0], chunk):
            out.extend(_run_layered_chunk(model, X[s:s + chunk], caps, wins, delay_unit == "ring"))
            if progress:
                progress(len(out))
    else:
        csr = [csr_rows(L.weights) for L in model.layers]
        for b in range(X.shape[0]):
            out.append(_async_sample(model, X[b], csr, delay_unit == "ring", caps, wins))
            if progress:
                progress(len(out))
    return apply_early_exit(BatchResult(out), (margin, steps), model.widths.readout_bits)


# ---------------------------------------------------------------- memory accounting (docs/contract.md)
def clog2(n: int) -> int:
    """``ceil(log2 n)`` for ``n >= 1`` (``clog2(1) == 0``)."""
    if n < 1:
        raise ValueError(f"clog2 needs n >= 1, got {n}")
    return (int(n) - 1).bit_length()


def ring_buffer_bits(n_out: int, max_delay: int, acc_bits: int) -> int:
    """Ring buffer of one layer: ``n_out * (D + 1) * acc_bits``."""
    return n_out * (max_delay + 1) * acc_bits


def scdq_bits(n_in: int, max_delay: int, capacity: int) -> int:
    """SCDQ of one layer: ``C * max(1, clog2 n_in) + (D + 1) * (clog2 C + 1)``;
    0 for a layer whose only delay is 0 (it needs no queue)."""
    if max_delay == 0:
        return 0
    if capacity < 1:
        raise ValueError(f"SCDQ capacity must be >= 1, got {capacity}")
    return capacity * max(1, clog2(n_in)) + (max_delay + 1) * (clog2(capacity) + 1)


def scdq_layered_accumulator_bits(n_out: int, acc_bits: int) -> int:
    """Extra input accumulator an SCDQ core needs in layered mode."""
    return n_out * acc_bits


def synapse_bits(weights: np.ndarray, weight_bits: int) -> int:
    """CSR synapse memory per ``(i, k)`` row:
    ``nnz * (wb + max(1, clog2 n_out)) + (K * n_in + 1) * clog2(nnz + 1)``."""
    K, n_in, n_out = weights.shape
    nnz = int(np.count_nonzero(weights))
    return nnz * (weight_bits + max(1, clog2(n_out))) + (K * n_in + 1) * clog2(nnz + 1)


def dense_synapse_bits(weights: np.ndarray, weight_bits: int) -> int:
    K, n_in, n_out = weights.shape
    return K * n_in * n_out * weight_bits


def state_bits(n_out: int, membrane_bits: int) -> int:
    return n_out * membrane_bits


def memory_report(model: Model, scdq_capacity: list[int] | None = None) -> list[dict]:
    """Per-layer memory bits. ``scdq_capacity``: measured ``C`` per layer
    (e.g. peak occupancy); ``None`` leaves the SCDQ figures out."""
    w = model.widths
    rows = []
    for l, L in enumerate(model.layers):
        row = {
            "layer": l,
            "ring_bits": ring_buffer_bits(L.n_out, L.max_delay, w.acc_bits),
            "synapse_bits": synapse_bits(L.weights, w.weight_bits),
            "dense_synapse_bits": dense_synapse_bits(L.weights, w.weight_bits),
            "state_bits": state_bits(L.n_out, w.membrane_bits),
            "layered_accumulator_bits": scdq_layered_accumulator_bits(L.n_out, w.acc_bits),
        }
        if scdq_capacity is not None:
            C = max(1, int(scdq_capacity[l]))
            row["scdq_capacity"] = C
            row["scdq_bits"] = scdq_bits(L.n_in, L.max_delay, C)
        rows.append(row)
    return rows


__all__ = [
    "DECAY_ONE", "MODES", "DELAY_UNITS", "LayerTrace", "SampleResult", "BatchResult", "simulate",
    "trunc0_leak", "sat", "argmax_lowest", "time_to_decision", "raster_from_events", "events_from_raster",
    "scdq_occupancy", "scdq_admitted", "early_exit_step", "apply_early_exit", "csr_rows", "clog2", "ring_buffer_bits", "scdq_bits", "scdq_layered_accumulator_bits",
    "synapse_bits", "dense_synapse_bits", "state_bits", "memory_report",
]
