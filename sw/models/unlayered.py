"""Unlayered (asynchrony-aware) training, after Koopman et al. 2024.

The forward pass reproduces, inside every time step, the asynchronous event
order of the contract (``hw.reference`` async mode, SCDQ delay unit): each
layer first handles delayed events due at ``t`` (ascending delay level, then
the previous layer's emission order), then the same-step ``d = 0`` events in
emission order. A neuron is checked after every update it receives, fires at
once, at most once per step, and resets.

Pending events are applied in *forward groups* of ``F`` events: the group's
weights are summed into the membranes, then every neuron the group touched is
checked. ``F = 1`` is fully event by event (with the ``fifo`` scheduler this is
exactly the hardware order); ``F = None`` ("all") applies the whole step at
once, which with zero reset equals layered execution.

Why layer by layer: a layer's state depends only on its own ordered input
sequence, so each layer runs over all ``T`` steps and hands the next layer its
spikes plus the within-step emission rank (and pre-spike membrane for the
momentum scheduler).

Two implementations of a spiking layer give the same numbers:

* :func:`async_layer` (the default, issue #15): compiled loops
  (:mod:`sw.models.unlayered_kernel`, numba, one thread) over samples, steps
  and each step's events in scheduler order, one weight row per event (events
  on rows without synapses skipped; a CSR of the live taps for very sparse
  layers, :data:`SPARSE_MAX_DENSITY`), wrapped in a
  ``torch.autograd.Function`` with a hand-written backward. The
  readout, whose order does not matter, uses the delay trainer's event-driven
  tap sum and fused leaky integrator. Spike lists (:class:`SpikeList`) pass
  between layers in emission order, so no per-step sort is needed for fifo.
* :func:`async_layer_oracle`: the tensor formulation. Within one step and one
  layer, neurons do not interact (feed-forward), so each neuron's trajectory is
  a prefix sum over the ordered groups; the first group where it is touched
  and crosses threshold is its firing point. Autograd goes through the prefix
  sums with a surrogate gradient at the firing (or closest) point. It
  materializes ``[B, T, events, n_out]`` tensors (30-50 CPU s per batch of 32
  on the default offline set against about 0.2 s compiled: bench/unlayered.py
  --oracle) and is kept as the
  test oracle of the compiled path (``UnlayeredNet.fast = False`` selects it).

Surrogate gradient (both): the spike's gradient enters at the membrane of the
firing group, or, for a neuron that did not fire, of the touched group where
the membrane came closest to threshold (the end-of-step membrane if nothing
touched it); the leak passes its factor straight through ``trunc0``.

Schedulers (order of a step's pending events for one layer):

* ``fifo``: the contract's hardware order (above).
* ``random``: a fresh uniformly random order each forward pass (seeded
  ``torch.Generator``: same seed, same sequence of orders; the compiled path
  draws one seed per layer and forward from it and shuffles each step).
* ``momentum``: events by descending pre-spike membrane of the emitting neuron
  (input events have none and keep fifo order behind any ranked ones; ties keep
  fifo order).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hw.model_file import DECAY_ONE, Model
from sw.models import unlayered_kernel as _k
from sw.models.lif import LIFParams, li_sequence, mem_sum, surrogate
from sw.models.parallel import run_shards
from sw.models.synapse import tap_sum

SCHEDULERS = ("fifo", "random", "momentum")
_INF = float("inf")


class _AsyncSpike(torch.autograd.Function):
    """Forward: the exact fire flag. Backward: SuperSpike surrogate at ``u``."""

    @staticmethod
    def forward(ctx, u, fired, slope):
        ctx.save_for_backward(u)
        ctx.slope = slope
        return fired.to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * surrogate(u, ctx.slope), None, None


def _shift(x: torch.Tensor, d: int, fill: float) -> torch.Tensor:
    """``x[:, t - d]`` along dim 1, ``fill`` where ``t < d``."""
    if d == 0:
        return x
    T = x.shape[1]
    pad = torch.full_like(x[:, : min(d, T)], fill)
    return torch.cat([pad, x[:, : max(T - d, 0)]], 1)


def _phase(delays: list[int]) -> list[int]:
    """Processing phase of each delay level: delayed levels ascending, then d = 0."""
    K = len(delays)
    if delays[0] > 0:
        return list(range(K))
    return [K - 1] + list(range(K - 1))


def _check_forward_group(F) -> int | None:
    if F is None or (isinstance(F, str) and F.lower() == "all"):
        return None
    if isinstance(F, bool) or not isinstance(F, (int, np.integer)) or F < 1:
        raise ValueError(f"forward_group must be a positive int or 'all', got {F!r}")
    return int(F)


# ---------------------------------------------------------------- layer parameter views
class LayerView(nn.Module):
    """What the unlayered forward needs of one layer. Subclasses supply the
    effective (e.g. fake-quantized) weights ``[K, n_in, n_out]``, threshold and
    leak factor as tensors; ``delays``, ``reset`` and ``spiking`` are fixed."""

    delays: list[int]
    reset: str
    spiking: bool

    def weights(self) -> torch.Tensor:
        raise NotImplementedError

    def threshold(self) -> torch.Tensor:
        raise NotImplementedError

    def leak(self) -> torch.Tensor:
        """Multiplicative leak factor in [0, 1] (``decay / 4096`` in the model file)."""
        raise NotImplementedError

    def support(self) -> torch.Tensor | None:
        """Bool ``[K, n_in, n_out]``: the taps that exist (elsewhere the weight is 0 and gets no
        gradient, e.g. pruned), or None: every tap. The compiled path skips the others."""
        return None


class ParamLayer(LayerView):
    """A layer given by explicit tensors (trainable or fixed)."""

    def __init__(self, weights, delays, threshold, leak, reset="zero", spiking=True, trainable=True, support=None):
        super().__init__()
        W = torch.as_tensor(weights)
        if not W.is_floating_point():
            W = W.to(torch.get_default_dtype())
        if W.ndim != 3:
            raise ValueError(f"weights must be [K, n_in, n_out], got shape {tuple(W.shape)}")
        delays = [int(d) for d in delays]
        if len(delays) != W.shape[0] or sorted(set(delays)) != delays or delays[0] < 0:
            raise ValueError(f"delays must be {W.shape[0]} sorted distinct non-negative ints, got {delays}")
        if reset not in ("zero", "subtract"):
            raise ValueError(f"reset must be 'zero' or 'subtract', got {reset!r}")
        self.delays, self.reset, self.spiking = delays, reset, bool(spiking)
        th = torch.as_tensor(threshold, dtype=W.dtype)
        lk = torch.as_tensor(leak, dtype=W.dtype)
        if trainable:
            self.w = nn.Parameter(W.clone())
        else:
            self.register_buffer("w", W.clone())
        self.register_buffer("th", th.clone())
        self.register_buffer("lk", lk.clone())
        if support is not None:
            support = torch.as_tensor(support, dtype=torch.bool)
            if support.shape != W.shape or bool((W[~support] != 0).any()):
                raise ValueError("support must be a bool tensor of the weights' shape covering every non-zero weight")
        self.register_buffer("sup", support)

    def support(self):
        return self.sup

    def weights(self):
        return self.w if self.sup is None else self.w * self.sup  # no tap (and no gradient) off the support

    def threshold(self):
        return self.th

    def leak(self):
        return self.lk


class _DelayLayerView(LayerView):
    """A view of one ``sw.models.delay.DelayLayer`` (integer units, shared parameters)."""

    def __init__(self, layer: nn.Module, decay: int, spiking: bool):
        super().__init__()
        self.src = [layer]  # a list keeps it out of this module's parameters (the net owns them)
        self.delays = [int(d) for d in layer.synapse.delays.tolist()]
        self.reset, self.spiking = "zero", spiking
        self.register_buffer("lk", torch.tensor(decay / DECAY_ONE, dtype=torch.float64), persistent=False)

    def weights(self):
        return self.src[0].synapse.effective_weight().permute(2, 1, 0)  # [n_out,n_in,K] -> [K,n_in,n_out]

    def threshold(self):
        return torch.tensor(float(self.src[0].threshold_int()))

    def support(self):
        return self.src[0].synapse.mask.permute(2, 1, 0)

    def leak(self):
        return self.lk.float()


def _delay_net_output(net):
    """The delay net's output convention: ``(logits, record)`` with mem_sum logits."""

    def out(outs: list["LayerOut"]):
        v = outs[-1].v.to(torch.float64)
        logits = mem_sum(v, net.layers[-1].synapse.scale(), getattr(net, "logit_scale", None))
        return logits, {"spikes": [o.spikes for o in outs[:-1]], "readout": v}

    return out


# ---------------------------------------------------------------- one layer, all steps
@dataclass
class LayerOut:
    spikes: torch.Tensor  # [B, T, n] float 0/1 (surrogate grad); readout: zeros
    rank: torch.Tensor  # [B, T, n] emission rank within the step (meaningful where spiking)
    mem: torch.Tensor  # [B, T, n] pre-spike membrane of each emission (detached)
    v: torch.Tensor  # [B, T, n] membrane at the end of each step


def _leak(v, a, integer):
    """``v * a``; integer mode: ``trunc0(v * a)`` computed in float64 (exact for
    |v| < 2^40 since ``a = decay/4096``), straight-through gradient."""
    if not integer:
        return v * a
    x = v.to(torch.float64) * a.to(torch.float64)
    return v * a + (torch.trunc(x).to(v.dtype) - v * a).detach()


def _order_keys(S, rank, mem, delays, scheduler, gen, keys=None):
    """Sort keys ``[B, T, K*n_in]`` of every candidate event (inf = no event). ``keys``: the
    random scheduler's keys per slot ``k * n_in + i`` (drawn from ``gen`` when None)."""
    B, T, n_in = S.shape
    K = len(delays)
    Sk = torch.stack([_shift(S, d, 0.0) for d in delays], 2)  # [B, T, K, n_in]
    valid = Sk.detach() > 0
    ph = torch.tensor(_phase(delays), dtype=torch.float64).view(1, 1, K, 1)
    rk = torch.stack([_shift(rank, d, 0.0) for d in delays], 2).to(torch.float64)
    fifo = torch.where(valid, ph * n_in + rk, _INF).view(B, T, K * n_in)
    if scheduler == "fifo":
        order = torch.argsort(fifo, dim=-1, stable=True)
    elif scheduler == "random":
        key = torch.rand(B, T, K * n_in, generator=gen, dtype=torch.float64) if keys is None else keys
        order = torch.argsort(torch.where(valid.view(B, T, -1), key, _INF), dim=-1, stable=True)
    elif scheduler == "momentum":
        m = torch.stack([_shift(mem, d, 0.0) for d in delays], 2).to(torch.float64)
        prim = torch.where(valid, -m, _INF).view(B, T, K * n_in)
        o1 = torch.argsort(fifo, dim=-1, stable=True)  # secondary key first (stable sorts)
        o2 = torch.argsort(prim.gather(-1, o1), dim=-1, stable=True)
        order = o1.gather(-1, o2)
    else:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
    return Sk.reshape(B, T, K * n_in), valid.view(B, T, K * n_in), order


def async_layer_oracle(S, rank, mem, layer: LayerView, scheduler="fifo", forward_group=1, gen=None,
                       integer=False, slope=5.0, keys=None) -> LayerOut:
    """Run one layer over all steps on the previous layer's spikes ``S`` [B, T, n_in]
    (with their within-step emission ``rank`` and pre-spike ``mem``): the tensor formulation
    (prefix sums over ``[B, T, events, n_out]``, autograd through them). It is the test oracle
    of the compiled path (:func:`async_layer`); ``keys`` fixes the random scheduler's order."""
    F = _check_forward_group(forward_group)
    W = layer.weights()
    K, n_in, n_out = W.shape
    B, T, _ = S.shape
    theta, a = layer.threshold(), layer.leak()
    if not layer.spiking:  # readout: order does not matter without saturation
        I = sum(_shift(S, d, 0.0) @ W[k] for k, d in enumerate(layer.delays))
        v = S.new_zeros(B, n_out)
        vs = []
        for It in I.unbind(1):
            v = _leak(v, a, integer) + It
            vs.append(v)
        vt = torch.stack(vs, 1)
        z = torch.zeros_like(vt)
        return LayerOut(z, z, z, vt)

    Sflat, valid, order = _order_keys(S, rank, mem, layer.delays, scheduler, gen, keys)
    E = max(int(valid.sum(-1).max()), 1)
    order = order[..., :E]
    ev_valid = valid.gather(-1, order)  # [B, T, E]
    sv = Sflat.gather(-1, order) * ev_valid
    Wg = W.reshape(K * n_in, n_out)[order]  # [B, T, E, n_out]
    G = sv.unsqueeze(-1) * Wg
    touched = ev_valid.unsqueeze(-1) & (Wg.detach() != 0)
    Fe = E if F is None else min(F, E)
    NG = -(-E // Fe)
    if NG * Fe != E:
        pad = NG * Fe - E
        G = torch.cat([G, G.new_zeros(B, T, pad, n_out)], 2)
        touched = torch.cat([touched, touched.new_zeros(B, T, pad, n_out)], 2)
    G = G.view(B, T, NG, Fe, n_out).sum(3)
    touched = touched.view(B, T, NG, Fe, n_out).any(3)
    P = G.cumsum(2).unbind(1)  # membrane offset after each group, per step (unbind: one backward stack)

    j = torch.arange(n_out, dtype=torch.float64)
    v = S.new_zeros(B, n_out)
    spikes, ranks, mems, vs = [], [], [], []
    any_touch = touched.any(2).unbind(1)
    touched = touched.unbind(1)
    for t in range(T):
        v0 = _leak(v, a, integer)
        C = v0.unsqueeze(1) + P[t]  # [B, NG, n_out]
        tg = touched[t]
        Cd = C.detach()
        cand = tg & (Cd >= theta)
        fired = cand.any(1)
        g_fire = cand.to(torch.int8).argmax(1)  # first crossing
        # surrogate point: the firing group, else the touched group closest to threshold
        g_near = torch.where(tg, Cd, -_INF).argmax(1)
        g_u = torch.where(fired, g_fire, g_near)
        C_last = C[:, -1]
        Cu = torch.where(any_touch[t], C.gather(1, g_u.unsqueeze(1)).squeeze(1), C_last)
        s = _AsyncSpike.apply((Cu - theta) / theta.abs().clamp_min(1e-12), fired, slope)
        Cf = C.gather(1, g_fire.unsqueeze(1)).squeeze(1)
        f = fired.to(C.dtype)
        v = C_last - f * (Cf if layer.reset == "zero" else theta)
        spikes.append(s)
        ranks.append(torch.where(fired, g_fire.to(torch.float64) * n_out + j, _INF))
        mems.append(torch.where(fired, Cf.detach(), 0.0))
        vs.append(v)
    key = torch.stack(ranks, 1)
    rank_out = torch.argsort(torch.argsort(key, dim=-1, stable=True), dim=-1).to(S.dtype)
    return LayerOut(torch.stack(spikes, 1), rank_out, torch.stack(mems, 1).to(S.dtype), torch.stack(vs, 1))


# ---------------------------------------------------------------- compiled path (the default)
@dataclass
class SpikeList:
    """A layer's emissions in order: ``off [B*T+1]`` (CSR over ``b * T + t``), neuron ``idx`` and
    pre-spike membrane ``mem`` (the momentum scheduler's key)."""

    off: np.ndarray
    idx: np.ndarray
    mem: np.ndarray

    @classmethod
    def from_raster(cls, x: torch.Tensor) -> "SpikeList":
        """Input events: ascending channel within a step; they carry no membrane."""
        B, T, C = x.shape
        nz = (x.detach() != 0).reshape(B * T, C).nonzero().numpy()
        cnt = np.bincount(nz[:, 0], minlength=B * T)
        off = np.zeros(B * T + 1, dtype=np.int64)
        np.cumsum(cnt, out=off[1:])
        return cls(off, nz[:, 1].astype(np.int32), np.zeros(len(nz), dtype=np.float64))

    def flat_index(self, n: int) -> np.ndarray:
        """Index of every spike into a flattened ``[B, T, n]`` tensor."""
        bt = np.repeat(np.arange(len(self.off) - 1, dtype=np.int64), np.diff(self.off))
        return bt * n + self.idx


def _event_offsets(sp: SpikeList, B: int, T: int, delays: list[int]) -> np.ndarray:
    cnt = np.diff(sp.off).reshape(B, T)
    ev = np.zeros((B, T), dtype=np.int64)
    for d in delays:
        if d < T:
            ev[:, d:] += cnt[:, : T - d]
    off = np.zeros(B * T + 1, dtype=np.int64)
    np.cumsum(ev.reshape(-1), out=off[1:])
    return off


def _layer_tables(W2, sup, F):
    """``(sparse, row_ptr, cols, vals, row_live, row_work)`` of one layer's weight rows."""
    R, n = W2.shape
    dummy = (np.zeros(1, np.int64), np.zeros(1, np.int64), W2[:1, 0].copy())
    if sup is None:
        sparse, row_live = False, np.ones(R, dtype=np.bool_)
        row_ptr, cols, vals = dummy
    else:
        sup2 = sup.reshape(R, n).numpy()
        sparse = float(sup2.mean()) < SPARSE_MAX_DENSITY
        row_live = sup2.any(1)
        if sparse:
            rr, cols = np.nonzero(sup2)  # row-major: ascending cols within a row
            row_ptr = np.zeros(R + 1, dtype=np.int64)
            np.cumsum(np.bincount(rr, minlength=R), out=row_ptr[1:])
            vals = W2[rr, cols]
        else:
            row_ptr, cols, vals = dummy
    row_work = row_live  # rows with synapses (the rest: no update, no gradient)
    if F != 1:  # an event counts in its forward group even if it touches nothing
        row_live = np.ones(R, dtype=np.bool_)
    return sparse, row_ptr, cols, vals, row_live, row_work


def _shard_forward(sp: SpikeList, Bs: int, seed: int, W2, tab, st) -> dict:
    """Events and forward of ``Bs`` samples (one batch shard) whose spikes are ``sp``."""
    T, n = st["T"], W2.shape[1]
    n_in = W2.shape[0] // len(st["delays"])
    sparse, row_ptr, cols, vals, row_live, row_work = tab
    nev = int(_event_offsets(sp, Bs, T, st["delays"])[-1])  # upper bound (every row live)
    ev_off = np.empty(Bs * T + 1, dtype=np.int64)
    ev_row = np.empty(nev, dtype=np.int32)
    ev_src = np.empty(nev, dtype=np.int32)
    _k.fill_events(sp.off, sp.idx, sp.mem, Bs, T, n_in, np.asarray(st["delays"], dtype=np.int64),
                   np.argsort(_phase(st["delays"])).astype(np.int64), _k.SCHED_CODE[st["scheduler"]],
                   seed, row_live, ev_off, ev_row, ev_src)
    ne_ev = int(ev_off[-1])
    r = {"ev_off": ev_off, "ev_row": ev_row[:ne_ev], "ev_src": ev_src[:ne_ev]}
    dt = W2.dtype
    for name, shape, typ, zero in (("spikes", (Bs, T, n), dt, True), ("vout", (Bs, T, n), dt, False),
                                   ("rank", (Bs, T, n), dt, False), ("mem", (Bs, T, n), dt, True),
                                   ("em_off", (Bs * T + 1,), np.int64, False), ("em_idx", (Bs * T * n,), np.int32, False),
                                   ("em_mem", (Bs * T * n,), np.float64, False), ("fire_g", (Bs, T, n), np.int64, False),
                                   ("near_g", (Bs, T, n), np.int64, False), ("cu", (Bs, T, n), dt, False)):
        r[name] = (np.zeros if zero else np.empty)(shape, dtype=typ)
    _k.forward(r["ev_off"], r["ev_row"], Bs, T, W2, st["F"], float(st["theta"]), float(st["alpha"]), st["integer"],
               st["reset"] == "zero", sparse, row_ptr, cols, vals, row_work, r["spikes"], r["vout"], r["rank"],
               r["mem"], r["em_off"], r["em_idx"], r["em_mem"], r["fire_g"], r["near_g"], r["cu"])
    ne = int(r["em_off"][-1])
    r["em_idx"], r["em_mem"] = r["em_idx"][:ne], r["em_mem"][:ne]
    return r


def _shard_backward(r: dict, n_src: int, gs, gv, need_ds, W2, tab, st):
    sparse, row_ptr, cols, vals, _, row_work = tab
    Bs, T, _ = r["fire_g"].shape
    # accumulated in the weights' dtype, as autograd does for the oracle (float32 when training)
    dW2 = np.zeros((1, 1) if sparse else W2.shape, dtype=W2.dtype)
    dvals = np.zeros(len(vals) if sparse else 1, dtype=W2.dtype)
    dsrc = np.zeros(n_src if need_ds else 1, dtype=np.float64)
    _k.backward(r["ev_off"], r["ev_row"], r["ev_src"], Bs, T, W2, st["F"], float(st["alpha"]), float(st["theta"]),
                float(st["slope"]), st["reset"] == "zero", sparse, row_ptr, cols, vals, row_work, r["fire_g"],
                r["near_g"], r["cu"], gs, gv, need_ds, dW2, dvals, dsrc)
    return dvals if sparse else dW2, dsrc


def _sub_list(sp: SpikeList, T: int, b0: int, b1: int) -> SpikeList:
    off = sp.off[b0 * T: b1 * T + 1]
    a, z = int(off[0]), int(off[-1])
    return SpikeList(off - a, sp.idx[a:z], sp.mem[a:z])


def _cat_lists(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """Concatenate CSR pieces ``(off, *columns)`` of consecutive samples."""
    offs, base = [np.zeros(1, dtype=np.int64)], 0
    for p in parts:
        offs.append(p[0][1:] + base)
        base += int(p[0][-1])
    cols = tuple(np.concatenate([p[c] for p in parts]) for c in range(1, len(parts[0])))
    return (np.concatenate(offs), *cols)


class _AsyncLayerFn(torch.autograd.Function):
    """One spiking layer, compiled forward (no graph) and hand-written backward
    (:mod:`sw.models.unlayered_kernel`). Returns ``(spikes, v)``; ``st`` carries the rest.

    With ``st["shards"] > 1`` the batch is cut into that many fixed pieces, run on
    ``st["workers"]`` threads (the kernels release the GIL; :func:`sw.models.parallel.run_shards`);
    the weight gradient is summed in shard order, so the bits depend on the shards only."""

    @staticmethod
    def forward(ctx, S, W, st):
        K, n_in, n = W.shape
        B, T = st["B"], st["T"]
        W2 = W.detach().reshape(K * n_in, n).contiguous().numpy()
        tab = _layer_tables(W2, st["support"], st["F"])
        sp = st["sp"]
        bounds = [(int(c[0]), int(c[-1]) + 1) for c in np.array_split(np.arange(B), st["shards"]) if len(c)]
        items = [(_sub_list(sp, T, b0, b1), b1 - b0, seed, W2, tab, st) for (b0, b1), seed in zip(bounds, st["seeds"])]
        res = run_shards(_shard_forward, items, st["workers"])
        cat = {k: np.concatenate([r[k] for r in res]) for k in ("spikes", "vout", "rank", "mem", "fire_g", "near_g",
                                                                 "cu")}
        em_off, em_idx, em_mem = _cat_lists([(r["em_off"], r["em_idx"], r["em_mem"]) for r in res])
        ev_off, ev_row = _cat_lists([(r["ev_off"], r["ev_row"]) for r in res])
        st["out"] = SpikeList(em_off, em_idx, em_mem)
        st["rank"], st["mem"] = torch.from_numpy(cat["rank"]), torch.from_numpy(cat["mem"])
        st["ev_row"], st["ev_off"] = ev_row, ev_off  # the order actually used (tests: the oracle's random keys)
        ctx.st, ctx.res, ctx.bounds, ctx.W2, ctx.tab = st, res, bounds, W2, tab
        ctx.shape = (B, T, n)
        return torch.from_numpy(cat["spikes"]).to(S.dtype), torch.from_numpy(cat["vout"]).to(S.dtype)

    @staticmethod
    def backward(ctx, gs, gv):
        st, res, W2, tab = ctx.st, ctx.res, ctx.W2, ctx.tab
        B, T, n = ctx.shape
        gs = np.zeros((B, T, n)) if gs is None else gs.detach().to(torch.float64).contiguous().numpy()
        gv = np.zeros((B, T, n)) if gv is None else gv.detach().to(torch.float64).contiguous().numpy()
        need_ds = bool(ctx.needs_input_grad[0])
        sp = st["sp"]
        items = [(r, int(sp.off[b1 * T] - sp.off[b0 * T]), gs[b0:b1], gv[b0:b1], need_ds, W2, tab, st)
                 for r, (b0, b1) in zip(res, ctx.bounds)]
        per = run_shards(_shard_backward, items, st["workers"])
        ctx.res = None
        acc = per[0][0]
        for p in per[1:]:  # shard order: the sum's rounding does not depend on the threads
            acc = acc + p[0]
        sparse, row_ptr, cols = tab[:3]
        if sparse:
            dW2 = np.zeros(W2.shape, dtype=W2.dtype)
            rows = np.repeat(np.arange(W2.shape[0]), np.diff(row_ptr))
            dW2[rows, cols] = acc
        else:
            dW2 = acc
        K, n_in = len(st["delays"]), W2.shape[0] // len(st["delays"])
        dW = torch.from_numpy(dW2).view(K, n_in, n).to(st["wdtype"])
        dS = None
        if need_ds:
            dsrc = np.concatenate([p[1] for p in per])
            B_, T_, n_src = st["S_shape"]
            flat = np.zeros(B_ * T_ * n_src, dtype=np.float64)
            flat[sp.flat_index(n_src)] = dsrc
            dS = torch.from_numpy(flat).view(B_, T_, n_src).to(st["S_dtype"])
        return dS, dW, None


# below this fraction of live taps a row is applied from its CSR (cost per synapse, not per neuron).
# Measured (build/prof: default 700-48-48-20 net pruned to one tap per synapse, density 1/31 = 0.032,
# one thread): the vectorized dense row loop 0.116 CPU s per batch of 32, the CSR loop 0.180 s (its
# per-synapse branches cost more than 48 SIMD lanes); the CSR pays only for sparser or wider layers.
SPARSE_MAX_DENSITY = 0.02


def _support(layer: LayerView):
    sup = layer.support()
    return None if sup is None else sup.detach().to(torch.bool).contiguous()


def readout_layer(S, layer: LayerView, integer=False) -> LayerOut:
    """The non-spiking readout (no threshold, so the event order does not matter): the
    event-driven tap sum of :mod:`sw.models.synapse` and the fused leaky integrator of
    :mod:`sw.models.lif`, unsaturated like the oracle."""
    W = layer.weights()
    I = tap_sum(S, W.permute(1, 0, 2), layer.delays)
    a = float(layer.leak())
    decay = a * DECAY_ONE
    if decay != int(decay):  # not a model-file leak: the step loop
        return async_layer_oracle(S, None, None, layer, integer=integer)
    v = li_sequence(I, LIFParams(1.0, int(decay), membrane_bits=_NO_SAT_BITS, exact=bool(integer))).to(S.dtype)
    z = torch.zeros_like(v)
    return LayerOut(z, z, z, v)


_NO_SAT_BITS = 1024  # a membrane width that never saturates (qmax far beyond any float sum)


def async_layer(S, sp: SpikeList, layer: LayerView, scheduler="fifo", forward_group=1, gen=None,
                integer=False, slope=5.0, W=None, shards=1, workers=1) -> tuple[LayerOut, SpikeList, dict]:
    """Run one spiking layer over all steps (compiled). ``S`` [B, T, n_in] are the previous
    layer's spikes (the gradient goes back to them), ``sp`` the same spikes as an ordered
    :class:`SpikeList`. Returns the layer's :class:`LayerOut`, its own spike list and the
    run's state (event order, for tests)."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
    F = _check_forward_group(forward_group)
    W = layer.weights() if W is None else W
    B, T, _ = S.shape
    shards = max(1, min(int(shards), B))
    seeds = [int(torch.randint(0, 1 << 62, (1,), generator=gen)) if scheduler == "random" else 0
             for _ in range(shards)]  # drawn here, in shard order: the bits do not depend on the threads
    st = {"B": B, "T": T, "sp": sp, "delays": list(layer.delays), "scheduler": scheduler, "seeds": seeds,
          "shards": shards, "workers": int(workers),
          "F": _k.ALL if F is None else F, "theta": float(layer.threshold()), "alpha": float(layer.leak()),
          "integer": bool(integer), "reset": layer.reset, "slope": float(slope), "wdtype": W.dtype,
          "S_shape": tuple(S.shape), "S_dtype": S.dtype, "support": _support(layer)}
    spikes, v = _AsyncLayerFn.apply(S, W, st)
    return LayerOut(spikes, st["rank"].to(S.dtype), st["mem"].to(S.dtype), v), st["out"], st


# ---------------------------------------------------------------- the network
class UnlayeredNet(nn.Module):
    """A feed-forward delay network run in asynchronous order.

    ``forward(x)`` takes spikes ``[B, T, n_in]`` and returns the readout
    membrane trace ``[B, T, n_classes]`` (the contract's ``R`` is its cumulative
    sum over ``t``). :attr:`last` keeps every layer's :class:`LayerOut` of the
    last call, for inspection.
    """

    def __init__(self, layers: list[LayerView], scheduler="fifo", forward_group=1, seed=0,
                 integer=False, slope=5.0, net: nn.Module | None = None, output=None):
        super().__init__()
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
        if not layers or layers[-1].spiking or any(not L.spiking for L in layers[:-1]):
            raise ValueError("layers: hidden layers must be spiking and the last one a non-spiking readout")
        self.layers = nn.ModuleList(layers)
        self.scheduler = scheduler
        self.forward_group = _check_forward_group(forward_group)
        self.seed = int(seed)
        self.gen = torch.Generator().manual_seed(self.seed)
        self.integer = integer
        self.slope = slope
        self.net = net  # the wrapped delay network (shares parameters), if any
        self._output = output
        self.last: list[LayerOut] = []
        self.fast = True  # compiled spiking layers (False: the tensor oracle, async_layer_oracle)
        # batch shards of the compiled layers (None: those of the wrapped net, DelayNet.set_threads; else 1)
        self.shards: int | None = None
        self.states: list[dict] = []

    # -- constructors
    @classmethod
    def from_model(cls, model: Model, scheduler="fifo", forward_group=1, seed=0,
                   dtype=torch.float64) -> "UnlayeredNet":
        """The integer model of a model file, run in integer arithmetic
        (trunc0 leak); float64 keeps every sum exact."""
        layers = [
            ParamLayer(torch.as_tensor(L.weights.astype(np.float64), dtype=dtype), L.delays.tolist(),
                       float(L.threshold), L.decay / DECAY_ONE, L.reset, bool(L.spiking), trainable=False)
            for L in model.layers
        ]
        return cls(layers, scheduler, forward_group, seed, integer=True)

    @classmethod
    def from_delay_net(cls, net: nn.Module, scheduler="fifo", forward_group=1, seed=0) -> "UnlayeredNet":
        """Wrap a :class:`sw.models.delay.DelayNet`: the same parameters (training
        this trains ``net``; export ``net``), asynchronous forward with the
        contract's LIF (hidden neurons of another kind, e.g. PSU, are not used),
        and the same output ``(logits, record)``."""
        if not hasattr(net, "layers") or not all(hasattr(L, "synapse") for L in net.layers):
            raise TypeError(f"from_delay_net needs a sw.models.delay.DelayNet, got {type(net).__name__}")
        views = [_DelayLayerView(L, d, l < len(net.layers) - 1) for l, (L, d) in enumerate(zip(net.layers, net.decays))]
        integer = bool(getattr(net.cfg, "quantize", True))
        return cls(views, scheduler, forward_group, seed, integer=integer, slope=float(net.cfg.slope), net=net,
                   output=_delay_net_output(net))

    # -- running
    def reseed(self, seed: int | None = None) -> None:
        self.gen.manual_seed(self.seed if seed is None else int(seed))

    def run(self, x: torch.Tensor) -> list[LayerOut]:
        if x.ndim != 3:
            raise ValueError(f"input must be spikes [B, T, n_in], got shape {tuple(x.shape)}")
        W0 = self.layers[0].weights()
        n_in = W0.shape[1]
        if x.shape[2] != n_in:
            raise ValueError(f"input has {x.shape[2]} channels but the first layer has n_in={n_in}")
        dt = W0.dtype
        S = x.to(dt)
        B, T, C = S.shape
        rank = torch.arange(C, dtype=dt).expand(B, T, C)  # input layer: ascending channel
        mem = torch.zeros_like(S)
        if self.fast and bool(((S != 0) & (S != 1)).any()):
            raise ValueError("input must be a binary spike raster (0/1 values): the compiled path applies "
                             "one weight row per event")
        sp = SpikeList.from_raster(S) if self.fast else None
        outs, self.states = [], []
        shards = self.shards if self.shards is not None else int(getattr(self.net, "shards", 1) or 1)
        workers = getattr(self.net, "workers", None) or torch.get_num_threads()
        for l, L in enumerate(self.layers):
            if self.fast and L.spiking:
                o, sp, st = async_layer(S, sp, L, self.scheduler, self.forward_group, self.gen, self.integer,
                                        self.slope, W0 if l == 0 else None, shards, workers)
                self.states.append(st)
            elif self.fast:
                o = readout_layer(S, L, self.integer)
            else:
                o = async_layer_oracle(S, rank, mem, L, self.scheduler, self.forward_group, self.gen,
                                       self.integer, self.slope)
            outs.append(o)
            S, rank, mem = o.spikes, o.rank, o.mem
        self.last = outs
        return outs

    def forward(self, x: torch.Tensor):
        outs = self.run(x)
        if self._output is not None:
            return self._output(outs)
        return outs[-1].v

    @staticmethod
    def emissions(o: LayerOut, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Emission list ``(t, j)`` of sample ``b``, in emission order."""
        S = o.spikes[b].detach().numpy() > 0
        t, j = np.nonzero(S)
        r = o.rank[b].detach().numpy()[t, j]
        idx = np.lexsort((r, t))
        return t[idx].astype(np.int32), j[idx].astype(np.int32)


__all__ = ["SCHEDULERS", "UnlayeredNet", "LayerView", "ParamLayer", "LayerOut", "SpikeList", "async_layer",
           "async_layer_oracle"]
