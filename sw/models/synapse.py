"""Delay-tap synapses as one autograd function: event-driven or dense, weight gradient only.

``I[b, t, j] = sum_l sum_i W[i, l, j] * S[b, t - d_l, i]`` for binary spikes ``S``.

* ``event``: the current of a step is a sum of weight rows over the active
  inputs, ``F.embedding_bag(active inputs, W, mode="sum")``; the weight gradient
  is the same kind of gather-sum, over the (step) rows of the output gradient
  grouped by input: ``dW[i] = sum over the steps where i spiked of dP[step]``.
* ``dense``: one matmul ``S @ W`` (and ``S^T @ dP``).

Either way the per-level partial currents ``P[b, t, l]`` are shifted by their
delay and summed. The input gets a gradient only when it asks for one (hidden
spikes with a surrogate; raw input rasters need none): ``dS = sum_l dI(t + d_l) W_l^T``.

Exactness: with integer weights of ``wb`` bits every partial sum is bounded by
``2^(wb-1) * n_in * L``; :func:`exact_dtype` picks float32 while that bound is
below ``2^24`` (float32 holds every such integer exactly), float64 otherwise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("auto", "event", "dense")
# measured crossover (python bench/train.py --synapse-sweep --threads 1, batch 64, 31 levels, CPU time of
# forward + backward): 700 inputs, event/dense 0.15x at density 0.02, 0.30x at 0.10, 0.76x at 0.30,
# 1.15x at 0.40; 48 inputs (with input gradient) 0.47x at 0.02, 0.72x at 0.30, 1.10x at 0.60.
EVENT_MAX_DENSITY = 0.35


def exact_dtype(weight_bits: int, n_in: int, levels: int) -> torch.dtype:
    """float32 if every partial sum of integer weights stays below 2^24, else float64."""
    return torch.float32 if (1 << (weight_bits - 1)) * n_in * levels < (1 << 24) else torch.float64


def _byte_rows(W2: torch.Tensor) -> torch.Tensor:
    """Integer weights in [-128, 127] as fbgemm's row-wise byte format: ``w + 128`` as uint8,
    then scale 1.0 and bias -128.0 (float32) per row, so each value decodes exactly."""
    q = (W2 + 128).to(torch.uint8)
    sb = torch.tensor([1.0, -128.0], dtype=torch.float32, device=W2.device).view(torch.uint8)
    return torch.cat([q, sb.expand(W2.shape[0], 8)], 1).contiguous()


def _byte_op():
    try:
        return torch.ops.quantized.embedding_bag_byte_rowwise_offsets
    except (AttributeError, RuntimeError):  # pragma: no cover - a build without fbgemm
        return None


_BYTE_BAG = _byte_op()


def _shift_sum(P: torch.Tensor, delays: list[int]) -> torch.Tensor:
    B, T, L, n = P.shape
    I = P.new_zeros(B, T, n)
    for l, d in enumerate(delays):
        if d < T:
            I[:, d:] += P[:, : T - d, l]
    return I


def _shift_split(dI: torch.Tensor, delays: list[int]) -> torch.Tensor:
    B, T, n = dI.shape
    dP = dI.new_zeros(B, T, len(delays), n)
    for l, d in enumerate(delays):
        if d < T:
            dP[:, : T - d, l] = dI[:, d:]
    return dP


class _TapSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, S, W, delays, event, int8):
        B, T, n_in = S.shape
        _, L, n_out = W.shape
        W2 = W.detach().reshape(n_in, L * n_out)
        Sf = S.detach().reshape(B * T, n_in)
        if event:
            nz = Sf.nonzero()
            bt, i = nz[:, 0], nz[:, 1]
            cnt = torch.bincount(bt, minlength=B * T)
            offs = cnt.cumsum(0) - cnt
            if int8 and _BYTE_BAG is not None and W2.device.type == "cpu" and W2.dtype == torch.float32:
                # a quarter of the bytes per gathered row; exact (integers, float32 sums below 2^24)
                P = _BYTE_BAG(_byte_rows(W2), i, offs, mode=0, include_last_offset=False)
            else:
                P = F.embedding_bag(i, W2, offs, mode="sum")
            ctx.save_for_backward(bt, i, W)
        else:
            Sf = Sf.to(W2.dtype)
            P = Sf @ W2
            ctx.save_for_backward(Sf, W)
        ctx.event, ctx.delays, ctx.shape = event, delays, (B, T, n_in, L, n_out)
        return _shift_sum(P.view(B, T, L, n_out), delays)

    @staticmethod
    def backward(ctx, dI):
        B, T, n_in, L, n_out = ctx.shape
        delays = ctx.delays
        W = ctx.saved_tensors[-1].detach()
        dI = dI.to(W.dtype)
        dS = dW = None
        if ctx.event:
            bt, i, _ = ctx.saved_tensors
            if ctx.needs_input_grad[1]:
                # per level l: dW[:, l] = sum over the events (b, t, i) of dI[b, t + d_l] -- a gather-sum of
                # output-gradient rows grouped by input; zero rows pad dI past T (taps arriving after T)
                D = max(delays)
                dIp = F.pad(dI, (0, 0, 0, D)).reshape(B * (T + D), n_out)
                order = torch.argsort(i, stable=True)
                cnt = torch.bincount(i, minlength=n_in)
                offs = cnt.cumsum(0) - cnt
                bts = bt[order]
                base = (bts // T) * (T + D) + bts % T
                dW = W.new_empty(n_in, L, n_out)
                for l, d in enumerate(delays):
                    dW[:, l] = F.embedding_bag(base + d, dIp, offs, mode="sum")
        else:
            Sf, _ = ctx.saved_tensors
            if ctx.needs_input_grad[1]:
                dP = _shift_split(dI, delays).view(B * T, L * n_out)
                dW = (Sf.t() @ dP).view(n_in, L, n_out)
        if ctx.needs_input_grad[0]:
            dS = dI.new_zeros(B, T, n_in)
            for l, d in enumerate(delays):
                if d < T:
                    dS[:, : T - d] += dI[:, d:] @ W[:, l].t()
        return dS, dW, None, None, None


def tap_sum(S: torch.Tensor, W: torch.Tensor, delays: list[int], mode: str = "auto", int8: bool = False) -> torch.Tensor:
    """Current ``[B, T, n_out]`` of binary spikes ``S [B, T, n_in]`` through taps ``W [n_in, L, n_out]``
    at ``delays`` (one per level ``l``). ``mode``: ``event``, ``dense`` or ``auto`` (by the measured
    density of ``S``). ``S`` must hold 0/1 values only; the result has ``W``'s dtype. ``int8``: the
    caller guarantees integer weights in [-128, 127]; the event path then gathers bytes."""
    if mode == "auto":
        event = float(S.detach().float().mean()) < EVENT_MAX_DENSITY if S.numel() else False
    elif mode in ("event", "dense"):
        event = mode == "event"
    else:
        raise ValueError(f"synapse mode must be one of {MODES}, got {mode!r}")
    return _TapSum.apply(S, W, [int(d) for d in delays], event, bool(int8))
