"""Feed-forward LIF SNN with per-synapse delay taps, hardware-aware (Norse-style).

Structure: pure step functions (:func:`lif_step`, :func:`spike_fn`) and thin
modules. A :class:`DelayLayer` is a :class:`DelaySynapse` (spikes ``[B,T,n_in]``
-> current ``[B,T,n_out]``, all steps at once with a dilated causal conv over the
delay taps) followed by a pluggable neuron (current -> spikes, or membrane for
the readout) that runs the recurrence over ``T``.

Everything runs in integer units (see :mod:`sw.quantize`): with ``quantize`` on
(the default) the forward pass computes the same integers as the layered
hw.reference; the neuron recurrence is float64 so products like ``v * a / 4096``
are exact.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from sw.quantize import DECAY_ONE, decay_int, fake_quant, layer_scale, qmax, threshold_int, trunc0_ste


# ---------------------------------------------------------------- pure functions
class _SpikeFn(torch.autograd.Function):
    """Heaviside(x >= 0) forward; fast-sigmoid surrogate ``1 / (1 + slope|x|)^2`` backward."""

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / (1.0 + ctx.slope * x.abs()) ** 2, None


def spike_fn(x: torch.Tensor, slope: float = 5.0) -> torch.Tensor:
    return _SpikeFn.apply(x, slope)


def lif_step(v: torch.Tensor, i: torch.Tensor, threshold: float, decay: int, spiking: bool,
             membrane_bits: int, slope: float, exact: bool = True):
    """One layered step of the contract: ``v = sat(trunc0(v*a/4096) + i)``; fire if
    ``v >= threshold`` and reset to zero. Returns ``(z, v)`` (z is None if not spiking)."""
    leak = v * (decay / DECAY_ONE)
    v = (trunc0_ste(leak) if exact else leak) + i
    vmax = qmax(membrane_bits)
    v = torch.clamp(v, -vmax - 1, vmax)
    if not spiking:
        return None, v
    z = spike_fn((v - threshold) / threshold, slope)
    return z, v * (1.0 - z.detach())  # hard reset; no gradient through the reset (common practice)


# ---------------------------------------------------------------- config
@dataclass
class NetConfig:
    n_inputs: int = 700
    hidden: list = field(default_factory=lambda: [48, 48])
    n_classes: int = 20
    T: int = 100
    dt: float = 0.01
    max_delay: int = 60  # delay grid 0..max_delay step delay_stride (in steps)
    delay_stride: int = 2
    no_delays: bool = False  # grid = [0] only
    tau_ms: float = 20.0  # hidden membrane time constant
    readout_tau_ms: float = 20.0
    theta: float = 1.0  # float threshold in weight units
    weight_bits: int = 8
    membrane_bits: int = 24
    slope: float = 5.0  # surrogate steepness
    init_gain: float = 1.0
    init_rate: float = 0.0  # >0: calibrate each hidden layer's initial weight scale to this spike rate
    quantize: bool = True  # fake-quant weights + trunc0 (hardware-aware); off = plain float LIF

    @property
    def delays(self) -> list[int]:
        return [0] if self.no_delays else list(range(0, self.max_delay + 1, self.delay_stride))

    @property
    def sizes(self) -> list[int]:
        return [self.n_inputs, *self.hidden, self.n_classes]

    def validate(self) -> "NetConfig":
        def bad(name, msg):
            raise ValueError(f"model config field '{name}': {msg}")

        for name in ("n_inputs", "n_classes", "T", "weight_bits", "membrane_bits", "delay_stride"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(name, f"must be a positive int, got {v!r}")
        if not isinstance(self.hidden, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.hidden):
            bad("hidden", f"must be a list of positive ints, got {self.hidden!r}")
        if not isinstance(self.max_delay, int) or isinstance(self.max_delay, bool) or not 0 <= self.max_delay <= 4095:
            bad("max_delay", f"must be an int in [0, 4095], got {self.max_delay!r}")
        for name in ("dt", "tau_ms", "readout_tau_ms", "theta", "slope", "init_gain"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                bad(name, f"must be a positive number, got {v!r}")
        if not isinstance(self.init_rate, (int, float)) or isinstance(self.init_rate, bool) or not 0 <= self.init_rate < 1:
            bad("init_rate", f"must be a number in [0, 1), got {self.init_rate!r}")
        if not 2 <= self.weight_bits <= 16:
            bad("weight_bits", f"must be in [2, 16], got {self.weight_bits}")
        return self

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- modules
class DelaySynapse(nn.Module):
    """Taps ``weight[j, i, k]`` from input ``i`` to ``j`` at delay ``delays[k]`` (a stride grid).

    ``mask`` (bool buffer, same shape) marks live taps; pruning edits it.
    ``forward`` returns the input current of all steps in integer units.
    """

    def __init__(self, n_in: int, n_out: int, delays: list[int], weight_bits: int = 8, quantize: bool = True,
                 init_gain: float = 1.0):
        super().__init__()
        d = torch.tensor(delays, dtype=torch.int64)
        if d.numel() < 1 or (d.numel() > 1 and not bool((d[1:] - d[:-1] == d[1] - d[0]).all())) or int(d[0]) != 0:
            raise ValueError(f"delays must be a grid 0, s, 2s, ...; got {delays}")
        self.register_buffer("delays", d, persistent=False)
        self.stride = int(d[1] - d[0]) if d.numel() > 1 else 1
        self.n_in, self.n_out, self.K = n_in, n_out, d.numel()
        self.weight_bits, self.quantize = weight_bits, quantize
        # weight = raw * wscale: raw starts in U(-1, 1), so an optimizer step is relative to
        # the layer's init scale whatever its fan-in (700 x 31 taps or 48 x 31)
        self.weight = nn.Parameter(torch.empty(n_out, n_in, self.K))
        self.register_buffer("mask", torch.ones(n_out, n_in, self.K, dtype=torch.bool))
        bound = init_gain * math.sqrt(3.0 / (n_in * self.K))  # unit-variance sum over all taps
        self.register_buffer("wscale", torch.tensor(bound, dtype=torch.float32))
        nn.init.uniform_(self.weight, -1.0, 1.0)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.wscale * self.mask

    def scale(self) -> torch.Tensor:
        return layer_scale(self.masked_weight(), self.weight_bits) if self.quantize else torch.tensor(1.0)

    def effective_weight(self) -> torch.Tensor:
        """Weights in integer units (fake-quantized, STE) or plain floats when quantize is off."""
        w = self.masked_weight()
        return fake_quant(w, self.scale(), self.weight_bits) if self.quantize else w

    def int_weight(self) -> torch.Tensor:
        """Exported integer taps ``[n_out, n_in, K]`` (int64)."""
        with torch.no_grad():
            return self.effective_weight().round().to(torch.int64)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        w = self.effective_weight()
        live = torch.nonzero(self.mask.any(0).any(0)).flatten().tolist()
        if len(live) <= self.K // 2:  # pruned: one matmul over the live levels, then shift-add
            B, T, n_in = s.shape
            Wl = w[:, :, live].permute(1, 2, 0).reshape(n_in, len(live) * self.n_out)
            P = (s.reshape(B * T, n_in) @ Wl).reshape(B, T, len(live), self.n_out)
            cur = s.new_zeros(B, T, self.n_out)
            for a, k in enumerate(live):
                d = k * self.stride
                if d < T:
                    cur = cur + F.pad(P[:, : T - d, a], (0, 0, d, 0))
            return cur
        pad = (self.K - 1) * self.stride
        x = F.pad(s.transpose(1, 2), (pad, 0))  # causal: S at negative time is 0
        # conv1d correlates, so flip taps: kernel index K-1-k sees input delayed by delays[k]
        return F.conv1d(x, w.flip(-1), dilation=self.stride).transpose(1, 2)


class LIFNeuron(nn.Module):
    """Sequential LIF over T in integer units; spikes, or membrane if ``spiking=False``.

    ``forward(current [B,T,n], threshold) -> [B,T,n]``: ``threshold`` is the
    (integer-valued) threshold in the units of ``current``.
    """

    def __init__(self, n: int, decay: int, spiking: bool = True, membrane_bits: int = 24, slope: float = 5.0,
                 exact: bool = True):
        super().__init__()
        self.n, self.decay, self.spiking = n, int(decay), spiking
        self.membrane_bits, self.slope, self.exact = membrane_bits, slope, exact

    def forward(self, current: torch.Tensor, threshold: float) -> torch.Tensor:
        cur = current.to(torch.float64)  # exact integer arithmetic (see module doc)
        v = torch.zeros_like(cur[:, 0])
        out = []
        for t in range(cur.shape[1]):
            z, v = lif_step(v, cur[:, t], threshold, self.decay, self.spiking, self.membrane_bits, self.slope,
                            self.exact)
            out.append(z if self.spiking else v)
        out = torch.stack(out, 1)
        return out.to(current.dtype) if self.spiking else out  # membrane stays float64: sums stay exact


class DelayLayer(nn.Module):
    """Synapse part + neuron part. The neuron is pluggable (see sw.models)."""

    def __init__(self, synapse: DelaySynapse, neuron: nn.Module, theta: float, membrane_bits: int):
        super().__init__()
        self.synapse, self.neuron = synapse, neuron
        self.theta, self.membrane_bits = theta, membrane_bits

    def threshold_int(self) -> int:
        if not self.synapse.quantize:
            return self.theta
        return threshold_int(self.theta, self.synapse.scale(), self.membrane_bits)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.synapse(s), self.threshold_int())


class DelayNet(nn.Module):
    """``n_inputs - hidden... - n_classes``; hidden layers spike (hard reset), the
    readout is a non-spiking LIF trained with ``mem_sum`` (CE on the summed membrane).

    ``forward(x [B,T,C]) -> (logits [B, n_classes], record)`` where record has
    ``spikes`` (list of ``[B,T,n]`` per hidden layer) and ``readout`` (``[B,T,n_classes]``
    membrane in integer units). ``argmax(logits)`` equals the integer readout's argmax.
    """

    def __init__(self, cfg: NetConfig, neuron_factory=None):
        super().__init__()
        self.cfg = cfg.validate()
        sizes = cfg.sizes
        self.decays = [decay_int(cfg.tau_ms / 1000, cfg.dt)] * len(cfg.hidden) + [decay_int(cfg.readout_tau_ms / 1000, cfg.dt)]
        layers = []
        for l in range(len(sizes) - 1):
            spiking = l < len(sizes) - 2
            syn = DelaySynapse(sizes[l], sizes[l + 1], cfg.delays, cfg.weight_bits, cfg.quantize, cfg.init_gain)
            kw = dict(decay=self.decays[l], spiking=spiking, membrane_bits=cfg.membrane_bits, slope=cfg.slope,
                      exact=cfg.quantize)
            if spiking and neuron_factory is not None:
                neuron = neuron_factory(sizes[l + 1], cfg.T, **kw)
            else:
                neuron = LIFNeuron(sizes[l + 1], **kw)
            layers.append(DelayLayer(syn, neuron, cfg.theta, cfg.membrane_bits))
        self.layers = nn.ModuleList(layers)
        # learnable log-temperature of the mem_sum logits: argmax (the hardware's answer) is
        # invariant to it, but CE recovers at once when pruning shrinks the readout sums
        self.logit_scale = nn.Parameter(torch.zeros(()))

    @property
    def synapses(self) -> list[DelaySynapse]:
        return [L.synapse for L in self.layers]

    @torch.no_grad()
    def layer_rates(self, x: torch.Tensor) -> list[float]:
        """Mean spike rate of each hidden layer on ``x``."""
        with torch.no_grad():
            return [float(z.mean()) for z in self(x)[1]["spikes"]]

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, rate, iters: int = 14) -> list[float]:
        """Rescale each hidden layer's weights (in order) so that its mean spike
        rate on ``x`` is close to ``rate`` (one number, or one per hidden layer):
        a data-driven init that keeps deep layers from starting silent, and a way
        to give a layer back its activity after pruning. Returns the multipliers."""
        s = x.to(torch.float32)
        mults = []
        rates = list(rate) if isinstance(rate, (list, tuple)) else [rate] * (len(self.layers) - 1)
        for L, rate in zip(self.layers[:-1], rates):
            if rate <= 0:  # a silent layer stays as it is
                s = L(s)
                mults.append(1.0)
                continue
            w0 = L.synapse.wscale.clone()
            lo, hi = -8.0, 8.0  # log2 of the multiplier
            for _ in range(iters):
                mid = (lo + hi) / 2
                L.synapse.wscale.copy_(w0 * 2.0 ** mid)
                r = float(L(s).mean())
                lo, hi = (mid, hi) if r < rate else (lo, mid)
            m = 2.0 ** ((lo + hi) / 2)
            L.synapse.wscale.copy_(w0 * m)
            mults.append(m)
            s = L(s)
        return mults

    def forward(self, x: torch.Tensor):
        s = x.to(torch.float32)
        spikes = []
        for L in self.layers[:-1]:
            s = L(s)
            spikes.append(s)
        v = self.layers[-1](s)
        scale = self.layers[-1].synapse.scale().to(v.dtype)
        logits = (v.sum(1) * (scale / v.shape[1]) * self.logit_scale.exp()).to(torch.float32)  # mem_sum
        return logits, {"spikes": spikes, "readout": v}


@contextlib.contextmanager
def unquantized(net: "DelayNet"):
    """Temporarily run ``net`` as a plain float LIF net (no weight rounding, no
    trunc0, threshold ``theta``): shows what the integer mapping costs."""
    saved = [(L.synapse.quantize, getattr(L.neuron, "exact", None)) for L in net.layers]
    try:
        for L in net.layers:
            L.synapse.quantize = False
            if hasattr(L.neuron, "exact"):
                L.neuron.exact = False
        yield net
    finally:
        for L, (q, e) in zip(net.layers, saved):
            L.synapse.quantize = q
            if e is not None:
                L.neuron.exact = e


def mem_sum_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)
