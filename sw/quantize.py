"""Fake quantization onto the integer contract of hw.reference (straight-through).

The float model runs in *integer units*: a layer's weights are ``w / s`` rounded
to ``weight_bits`` (per-layer scale ``s = max|w| / qmax``), its threshold is
``round(theta / s)`` and its leak is ``trunc0(v * a / 4096)``. The forward pass
therefore computes exactly the integers the hardware computes; gradients pass
straight through every rounding.
"""
from __future__ import annotations

import math

import torch

from hw.model_file import DECAY_ONE  # noqa: F401 - the contract's constant, re-exported for the torch side


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


class _TruncSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.trunc(x)

    @staticmethod
    def backward(ctx, g):
        return g


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half to even (torch.round) forward, identity backward."""
    return _RoundSTE.apply(x)


def trunc0_ste(x: torch.Tensor) -> torch.Tensor:
    """Truncation toward zero forward, identity backward."""
    return _TruncSTE.apply(x)


def qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


# Low-bit weights (2..4 bits) clip at this many standard deviations of the live weights
# (near the MSE-optimal clip of a Gaussian), or at max|w| if that is smaller; their
# range is symmetric, [-qmax, qmax] (2 bits = ternary).
LOW_BITS = 4
WARM_BITS = 8  # low-bit training warms up at this width (sw.models.delay.DelayNet.weight_bits_at)
LOW_BIT_CLIP = {2: 1.2, 3: 2.2, 4: 2.6}


def layer_scale(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-layer scale. Above 4 bits the largest |w| maps to ``qmax``; at 2..4 bits the
    clip is ``min(max|w|, LOW_BIT_CLIP[bits] * rms of the non-zero weights)``, so that
    a few large weights do not round all others to 0. Detached (a statistic)."""
    w = w.detach()
    m = w.abs().max()
    if bits <= LOW_BITS:
        nnz = (w != 0).sum().clamp_min(1)
        rms = ((w * w).sum() / nnz).sqrt()
        m = torch.minimum(m, LOW_BIT_CLIP[bits] * rms)
    return torch.clamp(m, min=1e-8) / qmax(bits)


def fake_quant(w: torch.Tensor, scale: torch.Tensor, bits: int, symmetric: bool = False) -> torch.Tensor:
    """Integer-valued float tensor ``round(clamp(w / scale))`` with a straight-through gradient.
    The clamp is the contract's range ``[-qmax - 1, qmax]``, or ``[-qmax, qmax]`` if ``symmetric``
    (the delay model's low-bit weights: 2 bits = ternary; gradient straight through the clip too)."""
    q = qmax(bits)
    if symmetric:
        # low-bit: straight through the clip as well, so clipped weights keep learning (the rms-based
        # scale moves with them); a plain clamp would freeze every weight beyond the clip
        x = w / scale
        return x + (torch.round(torch.clamp(x, -q, q)) - x).detach()
    return round_ste(torch.clamp(w / scale, -q - 1, q))


def threshold_int(theta: float, scale: torch.Tensor | float, membrane_bits: int) -> int:
    """Integer threshold for a float threshold ``theta`` at weight scale ``scale``; in [1, vmax]."""
    t = int(round(float(theta) / float(scale)))
    return max(1, min(t, qmax(membrane_bits)))


def decay_int(tau: float, dt: float) -> int:
    """Leak factor ``a`` (``v <- v * a / 4096``) of a membrane time constant ``tau`` at step ``dt``."""
    if not tau > 0 or not dt > 0:
        raise ValueError(f"tau and dt must be positive, got tau={tau!r}, dt={dt!r}")
    return int(round(DECAY_ONE * math.exp(-dt / tau)))


def int_dtype(bits: int):
    """Smallest numpy signed dtype holding ``bits``-bit weights (the model file's storage)."""
    import numpy as np

    for dt in (np.int8, np.int16, np.int32, np.int64):
        if bits <= np.iinfo(dt).bits:
            return dt
    raise ValueError(f"weight_bits={bits} too wide")
