"""Compiled (numba) forward and backward of one spiking layer in asynchronous order.

The unlayered model's spiking layer (see :mod:`sw.models.unlayered`) as two
loops over samples and steps, with no per-event tensors: the forward walks
each step's events in scheduler order and updates a membrane vector, the
backward walks them in reverse and accumulates the weight (and spike)
gradient. Work is one weight row per event, like the hardware; memory is the
ordered event list (two int32 per event) plus per-neuron step records.

Semantics (the same as the tensor formulation kept in
``sw.models.unlayered.async_layer_oracle``, the test oracle):

* events of step ``t``: for each delay level in processing phase (delayed
  levels ascending, then ``d = 0``), the previous layer's emissions of step
  ``t - d`` in emission order; ``random`` shuffles them, ``momentum`` sorts
  them by descending pre-spike membrane (stable, so ties keep fifo order);
* events are applied in forward groups of ``F``; at the end of a group every
  neuron the group touched (non-zero weight) and not yet refractory is
  checked: ``v >= theta`` fires, resets (zero or subtract) and marks it
  refractory for the step;
* the surrogate point ``Cu`` is the pre-reset membrane at the firing group,
  else at the touched group where it was highest (first such group), else
  (no touch) the end-of-step membrane.

Gradient (what autograd gives the oracle): with ``gv`` the gradient reaching
the end-of-step membrane and ``dCu`` the surrogate's, the membrane after group
``g`` (before reset) gets ``gv`` (as ``C_last``) plus ``dCu`` at ``g_u`` and
``-gv`` at the firing group (zero reset), so an event in group ``g`` sees
``coef = gv + [g <= g_u] dCu - [g <= g_fire] gv``; the leak passes
``alpha`` (straight through ``trunc0``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

SCHED_CODE = {"fifo": 0, "random": 1, "momentum": 2}
ALL = np.int64(1) << 62  # forward group "all"


_TWO_M53 = 1.0 / (1 << 53)


@njit(cache=True, inline="always")
def _splitmix64(state):
    """One step of SplitMix64 (Steele, Lea and Flood 2014): ``(new state, 64 random bits)``.
    A counter-based generator of a few integer operations, seeded from the torch generator: the
    shuffle needs one draw per event, and numpy's generator costs ~10x more per draw here."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def fill_events(sp_off, sp_idx, sp_mem, B, T, n_in, delays, phase_k, sched, seed, row_live, ev_off, ev_row,
                ev_src):
    """The ordered event list of every (sample, step): row ``k * n_in + i`` and the index of the
    source spike in the spike list; ``ev_off`` (``[B*T+1]``) gets the offsets. Events whose row
    is not ``row_live`` (no synapse: they touch nothing) are left out; the caller passes all
    rows live when forward groups are larger than one event (an event counts in its group)."""
    state = np.uint64(seed)
    K = phase_k.shape[0]
    level_live = np.zeros(K, dtype=np.bool_)
    for k in range(K):
        for i in range(n_in):
            if row_live[k * n_in + i]:
                level_live[k] = True
                break
    p = 0
    ev_off[0] = 0
    for b in range(B):
        for t in range(T):
            bt = b * T + t
            a0 = p
            for q in range(K):
                k = phase_k[q]
                te = t - delays[k]
                if te < 0 or not level_live[k]:
                    continue
                s0 = sp_off[b * T + te]
                s1 = sp_off[b * T + te + 1]
                base = k * n_in
                for s in range(s0, s1):
                    r = base + sp_idx[s]
                    if row_live[r]:
                        ev_row[p] = r
                        ev_src[p] = s
                        p += 1
            ev_off[bt + 1] = p
            n = p - a0
            if n > 1 and sched == 1:
                for x in range(n - 1, 0, -1):  # Fisher-Yates
                    state, u = _splitmix64(state)
                    y = int(np.float64(u >> np.uint64(11)) * _TWO_M53 * (x + 1))  # 53-bit uniform
                    r, s = ev_row[a0 + x], ev_src[a0 + x]
                    ev_row[a0 + x], ev_src[a0 + x] = ev_row[a0 + y], ev_src[a0 + y]
                    ev_row[a0 + y], ev_src[a0 + y] = r, s
            elif n > 1 and sched == 2:
                key = np.empty(n, dtype=np.float64)
                done = True
                for x in range(n):
                    key[x] = -sp_mem[ev_src[a0 + x]]
                    if x > 0 and key[x] < key[x - 1]:
                        done = False
                if done:  # already in order (e.g. input events: no membrane, fifo)
                    continue
                o = np.argsort(key, kind="mergesort")  # stable: ties keep fifo order
                rr = ev_row[a0:p].copy()
                ss = ev_src[a0:p].copy()
                for x in range(n):
                    ev_row[a0 + x] = rr[o[x]]
                    ev_src[a0 + x] = ss[o[x]]


@njit(cache=True, nogil=True)
def _fire(j, g, b, t, bt, v, refr, theta, zero_reset, spikes, rank, mem_out, em_off, em_idx, em_mem, fire_g,
          ne_tot):
    fire_g[b, t, j] = g
    mem_out[b, t, j] = v[j]
    em_idx[ne_tot] = j
    em_mem[ne_tot] = v[j]
    rank[b, t, j] = ne_tot - em_off[bt]
    spikes[b, t, j] = 1
    refr[j] = True
    if zero_reset:
        v[j] = 0
    else:
        v[j] -= theta
    return ne_tot + 1


@njit(cache=True, nogil=True)
def forward(ev_off, ev_row, B, T, W2, F, theta, alpha, integer, zero_reset, sparse, row_ptr, cols, vals, row_work,
            spikes, vout, rank, mem_out, em_off, em_idx, em_mem, fire_g, near_g, cu):
    """Run the layer. Outputs (preallocated): ``spikes, vout, rank, mem_out`` ``[B, T, n]``; the
    emission list ``em_off [B*T+1], em_idx, em_mem`` (the next layer's spike list); for the
    backward ``fire_g`` (firing group or -1), ``near_g`` (surrogate group or -1: no touch) and
    ``cu`` (membrane at the surrogate point).

    The per-event loops over neurons are branch-free (selects) so that they vectorize; the
    firing pass in ascending ``j`` runs only when some neuron crossed. ``sparse``: rows are
    applied from the CSR ``row_ptr, cols, vals`` (ascending ``cols`` within a row; zeros are
    skipped), so an event costs its synapses, as in hardware. ``row_work``: False for rows without
    synapses (an event there still counts in its forward group but applies nothing)."""
    n = W2.shape[1]
    dt = W2.dtype
    v = np.zeros(n, dtype=dt)
    refr = np.zeros(n, dtype=np.bool_)
    touched = np.zeros(n, dtype=np.bool_)
    best = np.zeros(n, dtype=dt)
    cf = np.zeros(n, dtype=dt)
    near = np.zeros(n, dtype=np.int32)
    ninf = dt.type(-np.inf)
    th = dt.type(theta)
    ne_tot = 0
    em_off[0] = 0
    for b in range(B):
        v[:] = 0
        for t in range(T):
            bt = b * T + t
            for j in range(n):
                if integer:
                    v[j] = np.trunc(np.float64(v[j]) * alpha)
                else:
                    v[j] = v[j] * alpha
                refr[j] = False
                touched[j] = False
                best[j] = ninf
                near[j] = -1
                fire_g[b, t, j] = -1
            e0 = ev_off[bt]
            e1 = ev_off[bt + 1]
            g = np.int32(0)
            cnt = 0
            for e in range(e0, e1):
                row = ev_row[e]
                if sparse:
                    for p in range(row_ptr[row], row_ptr[row + 1]):
                        w = vals[p]
                        if w == 0:
                            continue
                        j = cols[p]
                        x = v[j] + w
                        v[j] = x
                        if F != 1:
                            touched[j] = True
                        elif not refr[j]:
                            if x >= th:
                                cf[j] = x
                                ne_tot = _fire(j, g, b, t, bt, v, refr, theta, zero_reset, spikes, rank, mem_out,
                                               em_off, em_idx, em_mem, fire_g, ne_tot)
                            elif x > best[j]:
                                best[j] = x
                                near[j] = g
                    if F == 1:
                        g += np.int32(1)
                        continue
                elif F == 1:
                    hit = False
                    for j in range(n):
                        w = W2[row, j]
                        x = v[j] + w
                        v[j] = x
                        live = (w != 0) & (~refr[j])
                        up = live & (x > best[j])
                        best[j] = x if up else best[j]
                        near[j] = g if up else near[j]
                        hit |= live & (x >= th)
                    if hit:
                        for j in range(n):
                            if W2[row, j] != 0 and not refr[j] and v[j] >= th:
                                cf[j] = v[j]
                                ne_tot = _fire(j, g, b, t, bt, v, refr, theta, zero_reset, spikes, rank, mem_out,
                                               em_off, em_idx, em_mem, fire_g, ne_tot)
                    g += np.int32(1)
                    continue
                if not sparse and row_work[row]:
                    for j in range(n):
                        w = W2[row, j]
                        v[j] += w
                        touched[j] |= w != 0
                cnt += 1
                if cnt == F or e == e1 - 1:  # end of a forward group: check the touched neurons
                    hit = False
                    for j in range(n):
                        x = v[j]
                        live = touched[j] & (~refr[j])
                        up = live & (x > best[j])
                        best[j] = x if up else best[j]
                        near[j] = g if up else near[j]
                        hit |= live & (x >= th)
                    if hit:
                        for j in range(n):
                            if touched[j] and not refr[j] and v[j] >= th:
                                cf[j] = v[j]
                                ne_tot = _fire(j, g, b, t, bt, v, refr, theta, zero_reset, spikes, rank, mem_out,
                                               em_off, em_idx, em_mem, fire_g, ne_tot)
                    for j in range(n):
                        touched[j] = False
                    g += np.int32(1)
                    cnt = 0
            r = ne_tot - em_off[bt]
            for j in range(n):
                vout[b, t, j] = v[j]
                if refr[j]:
                    near_g[b, t, j] = fire_g[b, t, j]
                    cu[b, t, j] = cf[j]
                else:
                    rank[b, t, j] = r
                    r += 1
                    near_g[b, t, j] = near[j]
                    cu[b, t, j] = best[j] if near[j] >= 0 else v[j]
            em_off[bt + 1] = ne_tot


@njit(cache=True, nogil=True)
def backward(ev_off, ev_row, ev_src, B, T, W2, F, alpha, theta, slope, zero_reset, sparse, row_ptr, cols, vals,
             row_work, fire_g, near_g, cu, gs, gv_ext, need_ds, dW2, dvals, dsrc):
    """Accumulate ``dW2`` (``[K*n_in, n]``) and, if ``need_ds``, the gradient of every source
    spike ``dsrc`` (indexed like the spike list), from the gradients ``gs`` (spikes) and
    ``gv_ext`` (end-of-step membrane). ``sparse``: the weight gradient is wanted on the CSR
    entries only (the live taps: the rest are masked out) and goes to ``dvals``."""
    n = W2.shape[1]
    tha = max(abs(theta), 1e-12)
    gv0 = np.zeros(n, dtype=np.float64)
    coef = np.zeros(n, dtype=dW2.dtype)
    dgrp = np.empty(2 * n, dtype=np.int64)
    dj = np.empty(2 * n, dtype=np.int64)
    dval = np.empty(2 * n, dtype=np.float64)
    for b in range(B):
        gv0[:] = 0
        for t in range(T - 1, -1, -1):
            nd = 0
            for j in range(n):
                gv = gv_ext[b, t, j] + alpha * gv0[j]
                u = (np.float64(cu[b, t, j]) - theta) / tha
                dcu = gs[b, t, j] / (1.0 + slope * abs(u)) ** 2 / tha
                c = gv
                tot = gv + dcu
                if near_g[b, t, j] < 0:
                    c += dcu
                else:
                    dgrp[nd] = near_g[b, t, j]
                    dj[nd] = j
                    dval[nd] = dcu
                    nd += 1
                if zero_reset and fire_g[b, t, j] >= 0:
                    dgrp[nd] = fire_g[b, t, j]
                    dj[nd] = j
                    dval[nd] = -gv
                    nd += 1
                    tot -= gv
                coef[j] = c
                gv0[j] = tot
            order = np.argsort(-dgrp[:nd], kind="mergesort")  # descending group
            q = 0
            e0 = ev_off[b * T + t]
            e1 = ev_off[b * T + t + 1]
            for e in range(e1 - 1, e0 - 1, -1):
                g = (e - e0) // F
                while q < nd and dgrp[order[q]] >= g:  # deltas of groups >= g apply to this event
                    o = order[q]
                    coef[dj[o]] += dval[o]
                    q += 1
                row = ev_row[e]
                if not row_work[row]:  # no synapse: no weight to learn, no gradient to the spike
                    continue
                if sparse:
                    acc = 0.0
                    for p in range(row_ptr[row], row_ptr[row + 1]):
                        c = coef[cols[p]]
                        dvals[p] += c
                        acc += vals[p] * c
                    if need_ds:
                        dsrc[ev_src[e]] += acc
                elif need_ds:
                    acc = 0.0
                    for j in range(n):
                        dW2[row, j] += coef[j]
                        acc += W2[row, j] * coef[j]
                    dsrc[ev_src[e]] += acc
                else:
                    for j in range(n):
                        dW2[row, j] += coef[j]
