"""The contract's neuron in torch, Norse style: parameters, step functions, a fused sequence.

Shared by the delay and unlayered models: one surrogate (:func:`surrogate`),
one spike function, one ``mem_sum`` readout (:func:`mem_sum`).

* :class:`LIFParams` holds a layer's neuron constants (integer units).
* :func:`lif_step` is one layered step of a spiking layer, returning ``(z, v)``;
  :func:`li_step` is one step of the non-spiking readout (leaky integrator),
  returning ``v``. No flag changes a function's return type.
* :func:`lif_sequence` / :func:`li_sequence` run all ``T`` steps in one
  ``torch.autograd.Function``: the forward loop builds no graph, the BPTT
  backward is written out (:class:`_LIFSequence`), and both give exactly the
  numbers of the step functions looped over ``T`` (the test oracle,
  :func:`lif_sequence_reference`).

Arithmetic: with ``exact`` on, the leak is ``trunc0(v * a / 4096)`` and the
state is integer-valued. The membrane recurrence runs in float64: ``v * a``
reaches ``2^23 * 2^12 = 2^35``, which float32 (24-bit mantissa) cannot hold
exactly, while float64 (53 bits) can. Currents arrive as float32 integers
(see ``sw.models.delay``: their bound is checked to stay below ``2^24``).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from hw.model_file import DECAY_ONE, RESETS
from sw.quantize import qmax, trunc0_ste


class LIFParams(NamedTuple):
    """Neuron constants of one layer, in integer units (see ``hw.reference``)."""

    threshold: float = 1.0  # integer-valued threshold (unused by the readout)
    decay: int = DECAY_ONE  # leak v <- trunc0(v * decay / 4096)
    membrane_bits: int = 24  # signed, saturating
    slope: float = 5.0  # surrogate steepness
    exact: bool = True  # trunc0 leak (hardware-aware); off = plain float leak
    reset: str = "zero"  # one of hw.model_file.RESETS

    @property
    def alpha(self) -> float:
        return self.decay / DECAY_ONE

    def check(self) -> "LIFParams":
        if self.reset not in RESETS:
            raise ValueError(f"LIFParams field 'reset': must be one of {RESETS}, got {self.reset!r}")
        if not 0 <= self.decay <= DECAY_ONE:
            raise ValueError(f"LIFParams field 'decay': must be in [0, {DECAY_ONE}], got {self.decay!r}")
        return self


# ---------------------------------------------------------------- surrogate and spike
def surrogate(x: torch.Tensor, slope: float) -> torch.Tensor:
    """SuperSpike / fast-sigmoid derivative ``1 / (1 + slope |x|)^2`` (x: threshold-normalized)."""
    return 1.0 / (1.0 + slope * x.abs()) ** 2


class _SpikeFn(torch.autograd.Function):
    """Heaviside(x >= 0) forward; :func:`surrogate` backward."""

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * surrogate(x, ctx.slope), None


def spike_fn(x: torch.Tensor, slope: float = 5.0) -> torch.Tensor:
    return _SpikeFn.apply(x, slope)


# ---------------------------------------------------------------- step functions (the oracle)
def _integrate(v: torch.Tensor, i: torch.Tensor, p: LIFParams) -> torch.Tensor:
    leak = v * p.alpha
    v = (trunc0_ste(leak) if p.exact else leak) + i
    vmax = qmax(p.membrane_bits)
    return torch.clamp(v, -vmax - 1, vmax)


def lif_step(v: torch.Tensor, i: torch.Tensor, p: LIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """One layered step of a spiking layer: ``v = sat(trunc0(v*a/4096) + i)``; fire if
    ``v >= threshold``, then reset. Returns ``(z, v)``; no gradient through the reset."""
    v = _integrate(v, i, p)
    z = spike_fn((v - p.threshold) / p.threshold, p.slope)
    if p.reset == "zero":
        return z, v * (1.0 - z.detach())
    return z, v - z.detach() * p.threshold


def li_step(v: torch.Tensor, i: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """One step of the non-spiking readout: ``v = sat(trunc0(v*a/4096) + i)``."""
    return _integrate(v, i, p)


def lif_sequence_reference(current: torch.Tensor, p: LIFParams, spiking: bool) -> torch.Tensor:
    """:func:`lif_step` / :func:`li_step` looped over ``T`` with autograd (the oracle of the fused path)."""
    cur = current.to(torch.float64)
    v = torch.zeros_like(cur[:, 0])
    out = []
    for c in cur.unbind(1):
        if spiking:
            z, v = lif_step(v, c, p)
            out.append(z)
        else:
            v = li_step(v, c, p)
            out.append(v)
    return torch.stack(out, 1)


# ---------------------------------------------------------------- fused sequence
class _LIFSequence(torch.autograd.Function):
    """All ``T`` steps of a layer. Forward: no graph. Backward: BPTT by hand.

    Per step (``u`` = membrane before the spike check, ``m`` = 1 where the
    clamp let ``u`` through, ``z`` = spike, ``s`` = surrogate slope at ``u``)::

        u_t = clamp(L(v_{t-1}) + I_t)        dL/dv_{t-1} = alpha (straight through trunc0)
        v_t = u_t (1 - z_t)   [zero reset]   or  u_t - theta z_t  [subtract]

    so with ``gu_t = dLoss/du_t`` and the output gradient ``g_t``::

        gu_t = m_t (g_t s_t / theta + c_t alpha gu_{t+1}),  c_t = 1 - z_t (zero) or 1 (subtract)

    a first-order linear recurrence: one fused multiply-add per step.
    Readout (non-spiking, output ``u``): ``gu_t = m_t (g_t + alpha gu_{t+1})``.
    """

    @staticmethod
    def forward(ctx, current, p: LIFParams, spiking: bool):
        cur = current.detach().to(torch.float64).transpose(0, 1).contiguous()  # [T, B, n]
        T = cur.shape[0]
        vmax = float(qmax(p.membrane_bits))
        vmin = -vmax - 1
        th = float(p.threshold)
        alpha = p.alpha
        U = torch.empty_like(cur)  # pre-clamp membrane (the clamp's gradient mask needs it)
        v = torch.zeros_like(cur[0])
        Z = torch.empty(cur.shape, dtype=torch.bool, device=cur.device) if spiking else None
        for t in range(T):
            u = U[t]
            torch.mul(v, alpha, out=u)
            if p.exact:
                u.trunc_()
            u.add_(cur[t])
            uc = u.clamp(vmin, vmax)
            if spiking:
                z = Z[t]
                torch.ge(uc, th, out=z)
                v = uc.masked_fill_(z, 0.0) if p.reset == "zero" else uc.sub_(z * th)
            else:
                v = uc
        mask = (U >= vmin) & (U <= vmax)  # where the clamp let the gradient through
        U.clamp_(vmin, vmax)
        ctx.p, ctx.spiking = p, spiking
        ctx.in_dtype = current.dtype
        if spiking:
            ctx.save_for_backward(U, Z, mask)
            return Z.transpose(0, 1).to(current.dtype)
        ctx.save_for_backward(mask)
        return U.transpose(0, 1)  # float64: readout sums stay exact

    @staticmethod
    def backward(ctx, g):
        p, spiking = ctx.p, ctx.spiking
        alpha = p.alpha
        g = g.to(torch.float64).transpose(0, 1)  # [T, B, n]
        if spiking:
            U, Z, mask = ctx.saved_tensors
            th = float(p.threshold)
            b = g * surrogate((U - th) / th, p.slope) / th * mask
            c = mask * alpha
            if p.reset == "zero":
                c = c * (~Z)
        else:
            (mask,) = ctx.saved_tensors
            b = g * mask
            c = mask * alpha
        b = b.contiguous()
        c = c.contiguous()
        gu = torch.zeros_like(b[0])
        for t in range(b.shape[0] - 1, -1, -1):
            gu = torch.addcmul(b[t], c[t], gu)
            b[t] = gu
        return b.transpose(0, 1).to(ctx.in_dtype), None, None


def lif_sequence(current: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """Spikes ``[B, T, n]`` (dtype of ``current``) of a spiking layer driven by ``current``."""
    return _LIFSequence.apply(current, p, True)


def li_sequence(current: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """Membrane ``[B, T, n]`` (float64) of the non-spiking readout driven by ``current``."""
    return _LIFSequence.apply(current, p, False)


# ---------------------------------------------------------------- readout
def mem_sum(v: torch.Tensor, scale: torch.Tensor, logit_scale: torch.Tensor | None = None) -> torch.Tensor:
    """``mem_sum`` logits: the readout membrane summed over ``T``, back in weight units
    (``scale`` per integer step, divided by ``T``), times the learnable temperature
    ``exp(logit_scale)``. ``argmax`` equals the integer readout's (``R = sum_t v``)."""
    logits = v.sum(1) * (scale.to(v.dtype) / v.shape[1])
    return _with_temperature(logits, logit_scale).to(torch.float32)


def mem_sum_running(v: torch.Tensor, scale: torch.Tensor, logit_scale: torch.Tensor | None = None,
                    start: int = 0) -> torch.Tensor:
    """The ``mem_sum`` logits of the readout summed up to each step ``t = start .. T-1``
    (``[B, T - start, classes]``): the running sum ``sum_{t' <= t} v[t']`` divided by ``t + 1``, in the
    units and temperature of :func:`mem_sum` (step ``T - 1`` gives its logits up to float rounding). Their argmax is the
    class the early-exit rule of ``hw.reference`` reads at step ``t``."""
    R = v.cumsum(1)[:, start:]
    steps = torch.arange(start + 1, v.shape[1] + 1, dtype=R.dtype).view(1, -1, 1)
    run = R / steps * scale.to(R.dtype)
    return _with_temperature(run, logit_scale).to(torch.float32)


def _with_temperature(logits: torch.Tensor, logit_scale: torch.Tensor | None) -> torch.Tensor:
    return logits if logit_scale is None else logits * logit_scale.exp().to(logits.dtype)


__all__ = ["LIFParams", "surrogate", "spike_fn", "lif_step", "li_step", "lif_sequence", "li_sequence",
           "lif_sequence_reference", "mem_sum", "mem_sum_running"]
