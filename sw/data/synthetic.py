"""Synthetic temporal task where the class depends only on inter-channel delays.

Each class is a firing order of the channels: in one sample every channel fires
exactly once in the pattern, consecutive channels ``gap`` steps apart, at a
random onset, with +-``jitter`` steps of timing noise, plus ``noise`` random
spikes. Spike counts per channel and the set of local (within ``gap``) spike
patterns are the same for every class, so a network whose neurons forget within
a few steps (short membrane time constant) and has no delays sees only a bag of
isolated spikes and stays near chance; delays can bring the pattern's spikes
into coincidence and solve it.
"""
from __future__ import annotations

import numpy as np


def class_orders(n_channels: int, n_classes: int, seed: int) -> np.ndarray:
    """``[n_classes, n_channels]`` distinct firing orders (position of each channel)."""
    import math

    if n_classes > math.factorial(n_channels):
        raise ValueError(f"n_classes={n_classes} exceeds the {math.factorial(n_channels)} orders of n_channels={n_channels}")
    rng = np.random.default_rng([seed, 1])  # class definitions do not depend on n_samples
    seen, orders = set(), []
    while len(orders) < n_classes:
        p = tuple(int(x) for x in rng.permutation(n_channels))
        if p not in seen:
            seen.add(p)
            orders.append(p)
    return np.array(orders, dtype=np.int64)


def make_delay_task(n_samples: int, n_channels: int = 6, n_classes: int = 4, T: int = 50, seed: int = 0,
                    gap: int = 6, jitter: int = 1, noise: int = 2, class_seed: int | None = None):
    """Return ``(X bool [N, T, C], y int64 [N])``; deterministic per ``seed``.

    ``class_seed`` (default ``seed``) fixes the class orders, so a train and a
    test set drawn with different ``seed`` share the same classes.
    """
    for name, v, lo in (("n_samples", n_samples, 1), ("n_channels", n_channels, 2), ("n_classes", n_classes, 2),
                        ("T", T, 1), ("gap", gap, 1), ("jitter", jitter, 0), ("noise", noise, 0)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"make_delay_task: {name} must be an int >= {lo}, got {v!r}")
    if 2 * jitter >= gap:
        raise ValueError(f"make_delay_task: jitter={jitter} must be < gap/2={gap / 2} so pattern spikes stay isolated")
    span = gap * (n_channels - 1) + 2 * jitter + 1
    if span >= T:
        raise ValueError(f"make_delay_task: T={T} too short for the pattern span {span}")
    orders = class_orders(n_channels, n_classes, seed if class_seed is None else class_seed)
    rng = np.random.default_rng([seed, 2])
    y = rng.integers(0, n_classes, size=n_samples).astype(np.int64)
    onset = rng.integers(jitter, T - span + jitter + 1, size=n_samples)
    jit = rng.integers(-jitter, jitter + 1, size=(n_samples, n_channels))
    t = onset[:, None] + gap * orders[y] + jit  # [N, C]
    X = np.zeros((n_samples, T, n_channels), dtype=bool)
    n_idx = np.arange(n_samples)[:, None]
    X[n_idx, t, np.arange(n_channels)[None, :]] = True
    if noise:
        X[n_idx, rng.integers(0, T, size=(n_samples, noise)), rng.integers(0, n_channels, size=(n_samples, noise))] = True
    return X, y
