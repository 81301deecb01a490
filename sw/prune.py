"""Delay pruning and the per-core tap budget.

Masks are ``[n_out, n_in, K]`` bools over a layer's delay grid. Every pruning
step first keeps the ``max_levels`` most important delay levels of the layer
(so at most that many distinct delays survive), then, by method:

* ``synaptic``: the top-``k`` taps of each synapse ``(i, j)``;
* ``axonal``:   the top-``k`` delay levels of each input ``i`` (shared by all its targets);
* ``layer``:    the top-``k`` delay levels of the whole layer.

Importance is ``|w|`` of live taps (summed for levels). Pruning only ever
removes taps. The schedule shrinks ``k`` and ``max_levels`` geometrically from
the full grid to the targets over ``steps`` epochs in ``[start, end]`` (fractions
of the run), then training continues on the final masks.
"""
from __future__ import annotations

import math

import torch

METHODS = ("synaptic", "axonal", "layer")


def _topk_mask(score: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Bool mask of the ``k`` largest entries of ``score`` along ``dim`` (entries at -inf never kept)."""
    k = min(k, score.shape[dim])
    idx = torch.topk(score, k, dim=dim, sorted=False).indices
    keep = torch.zeros_like(score, dtype=torch.bool).scatter_(dim, idx, True)
    return keep & torch.isfinite(score)


def prune_mask(weight: torch.Tensor, mask: torch.Tensor, method: str, k: int, max_levels: int) -> torch.Tensor:
    """New mask (subset of ``mask``) honouring ``method``/``k`` and ``max_levels`` distinct delays."""
    if method not in METHODS:
        raise ValueError(f"prune field 'method': must be one of {METHODS}, got {method!r}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"prune field 'k': must be a positive int, got {k!r}")
    if not isinstance(max_levels, int) or max_levels < 1:
        raise ValueError(f"prune field 'max_levels': must be a positive int, got {max_levels!r}")
    mag = weight.detach().abs() * mask
    level_score = torch.where(mask.any(0).any(0), mag.sum((0, 1)), -math.inf)  # [K]
    levels = max_levels if method != "layer" else min(max_levels, k)
    new = mask & _topk_mask(level_score, levels, 0)[None, None, :]
    score = torch.where(new, weight.detach().abs(), -math.inf)
    if method == "synaptic":
        new = new & _topk_mask(score, k, 2)
    elif method == "axonal":
        axon = torch.where(new.any(0), (weight.detach().abs() * new).sum(0), -math.inf)  # [n_in, K]
        new = new & _topk_mask(axon, k, 1)[None]
    return new


def budget_mask(weight: torch.Tensor, mask: torch.Tensor, max_taps: int) -> torch.Tensor:
    """Keep at most ``max_taps`` live taps of the layer (largest ``|w|``)."""
    if int(mask.sum()) <= max_taps:
        return mask.clone()
    score = torch.where(mask, weight.detach().abs(), -math.inf).flatten()
    return mask & _topk_mask(score, max_taps, 0).view_as(mask)


def schedule(cfg: dict, n_levels: int, n_epochs: int) -> dict[int, tuple[int, int]]:
    """``{epoch: (k, max_levels)}``: the epochs at whose start pruning runs, with their limits."""
    if not cfg or cfg.get("method") in (None, "none"):
        return {}
    steps = int(cfg.get("steps", 3))
    start, end = float(cfg.get("start", 0.2)), float(cfg.get("end", 0.6))
    if steps < 1:
        raise ValueError(f"prune field 'steps': must be >= 1, got {steps}")
    if not 0 <= start <= end <= 1:
        raise ValueError(f"prune fields 'start'/'end': need 0 <= start <= end <= 1, got {start}, {end}")
    k_t, l_t = int(cfg.get("k", 1)), int(cfg.get("max_levels", 15))
    out = {}
    for s in range(steps):
        frac = (s + 1) / steps
        e = int(round((start + (end - start) * (s / max(1, steps - 1)) if steps > 1 else end) * n_epochs))
        e = min(max(e, 0), max(n_epochs - 1, 0))
        geo = lambda full, tgt: max(tgt, int(round(full * (tgt / full) ** frac))) if tgt < full else tgt
        out[e] = (geo(n_levels, k_t), geo(n_levels, l_t))
    out[max(out)] = (k_t, l_t)  # the last step always reaches the targets
    return out


def prune_net(net, method: str, k: int, max_levels: int) -> None:
    with torch.no_grad():
        for syn in net.synapses:
            syn.mask.copy_(prune_mask(syn.weight, syn.mask, method, k, max_levels))


def enforce_budget(net, max_taps, on_exceed: str = "prune") -> None:
    """Apply the per-layer tap budget: prune to it, or raise naming ``max_taps[l]``."""
    from sw.export import BudgetError, _max_taps_list

    if on_exceed not in ("prune", "error"):
        raise ValueError(f"budget field 'on_exceed': must be 'prune' or 'error', got {on_exceed!r}")
    with torch.no_grad():
        for l, (syn, cap) in enumerate(zip(net.synapses, _max_taps_list(max_taps, len(net.synapses)))):
            if cap is None:
                continue
            n = int(syn.mask.sum())
            if n > cap:
                if on_exceed == "error":
                    raise BudgetError(f"budget field 'max_taps[{l}]': layer {l} has {n} live taps, budget is {cap}")
                syn.mask.copy_(budget_mask(syn.weight, syn.mask, cap))


def mask_stats(mask: torch.Tensor, delays: torch.Tensor) -> dict:
    """Live taps, distinct delays used, and the largest taps per synapse / levels per axon."""
    used = mask.any(0).any(0)
    return {"taps": int(mask.sum()), "levels": int(used.sum()), "delays": delays[used].tolist(),
            "max_taps_per_synapse": int(mask.sum(2).max()), "max_levels_per_axon": int(mask.any(0).sum(1).max())}
