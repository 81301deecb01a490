"""Feed-forward LIF SNN with per-synapse delay taps, hardware-aware (Norse-style).

Structure: the neuron's pure functions live in :mod:`sw.models.lif` (shared
with the unlayered model) and the synapse's in :mod:`sw.models.synapse`; this
module holds thin modules. A :class:`DelayLayer` is a :class:`DelaySynapse`
(spikes ``[B,T,n_in]`` -> current ``[B,T,n_out]``, all steps at once, event-driven
or dense over the live delay levels) followed by a pluggable neuron (current ->
spikes, or membrane for the readout) that runs the recurrence over ``T`` (the
fused :func:`sw.models.lif.lif_sequence` for the contract LIF).

Everything runs in integer units (see :mod:`sw.quantize`): with ``quantize`` on
(the default) the forward pass computes the same integers as the layered
hw.reference. Currents are float32 while their integer bound stays below 2^24
(:func:`sw.models.synapse.exact_dtype`); the membrane recurrence is float64 so
products like ``v * a / 4096`` are exact.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from sw.models.lif import LIFParams, li_sequence, li_step, lif_sequence, lif_step, mem_sum, spike_fn, surrogate  # noqa: F401
from sw.models.parallel import sharded
from sw.models.synapse import exact_dtype, tap_sum
from sw.quantize import LOW_BITS, WARM_BITS, decay_int, fake_quant, layer_scale, threshold_int


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
    layer_max_delay: int | list | None = None  # per-layer cap on the grid (memory-aware); None = max_delay
    delay_mode: str = "fixed"  # "learnable": a Gaussian-interpolated position per synapse (DCLS-style)
    sigma_init: float = 4.0  # learnable delays: Gaussian width in grid steps at the start ...
    sigma_final: float = 0.2  # ... and at the end of training (decays geometrically)
    spike_dropout: float = 0.0  # training only: each hidden spike is dropped with this probability

    @property
    def delays(self) -> list[int]:
        return [0] if self.no_delays else list(range(0, self.max_delay + 1, self.delay_stride))

    def layer_delays(self, l: int) -> list[int]:
        """Delay grid of synapse layer ``l`` (``0..layer_max_delay[l]`` step ``delay_stride``)."""
        cap = self.layer_max_delay
        if cap is None:
            return self.delays
        cap = cap[l] if isinstance(cap, list) else cap
        return [d for d in self.delays if d <= cap]

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
        for name in ("dt", "tau_ms", "readout_tau_ms", "theta", "slope", "init_gain", "sigma_init", "sigma_final"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                bad(name, f"must be a positive number, got {v!r}")
        sd = self.spike_dropout
        if not isinstance(sd, (int, float)) or isinstance(sd, bool) or not 0 <= sd < 1:
            bad("spike_dropout", f"must be a number in [0, 1), got {sd!r}")
        if not isinstance(self.init_rate, (int, float)) or isinstance(self.init_rate, bool) or not 0 <= self.init_rate < 1:
            bad("init_rate", f"must be a number in [0, 1), got {self.init_rate!r}")
        if not 2 <= self.weight_bits <= 16:
            bad("weight_bits", f"must be in [2, 16], got {self.weight_bits}")
        cap = self.layer_max_delay
        if cap is not None:
            caps = cap if isinstance(cap, list) else [cap]
            if isinstance(cap, list) and len(cap) != len(self.hidden) + 1:
                bad("layer_max_delay", f"needs one value per layer ({len(self.hidden) + 1}), got {len(cap)}")
            if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= self.max_delay for c in caps):
                bad("layer_max_delay", f"must be ints in [0, max_delay={self.max_delay}], got {cap!r}")
        if self.delay_mode not in ("fixed", "learnable"):
            bad("delay_mode", f"must be 'fixed' or 'learnable', got {self.delay_mode!r}")
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
                 init_gain: float = 1.0, mode: str = "auto"):
        super().__init__()
        self.mode = mode  # tap_sum path: event / dense / auto (by input density)
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
        return layer_scale(self.masked_weight(), self.weight_bits) if self.quantize else self.weight.new_tensor(1.0)

    def effective_weight(self) -> torch.Tensor:
        """Weights in integer units (fake-quantized, STE) or plain floats when quantize is off."""
        w = self.masked_weight()
        return fake_quant(w, self.scale(), self.weight_bits, self.weight_bits <= LOW_BITS) if self.quantize else w

    def int_weight(self) -> torch.Tensor:
        """Exported integer taps ``[n_out, n_in, K]`` (int64)."""
        with torch.no_grad():
            return self.effective_weight().round().to(torch.int64)

    def live_levels(self) -> list[int]:
        return torch.nonzero(self.mask.any(0).any(0)).flatten().tolist()

    def taps(self) -> tuple[torch.Tensor, list[int], bool]:
        """``(W [n_in, L, n_out], delays of the L live levels, int8)``: what :func:`tap_sum` needs,
        computed once per forward (the shards of :class:`DelayNet` share it)."""
        w = self.effective_weight()  # [n_out, n_in, K]
        live = self.live_levels() or [0]
        dt = exact_dtype(self.weight_bits, self.n_in, len(live)) if self.quantize else torch.float32
        Wl = w[:, :, live].permute(1, 2, 0).to(dt)  # [n_in, L, n_out]
        return Wl, [int(self.delays[k]) for k in live], self.int_valued()

    def forward(self, s: torch.Tensor, taps: tuple | None = None) -> torch.Tensor:
        Wl, delays, int8 = taps if taps is not None else self.taps()
        return tap_sum(s, Wl, delays, self.mode, int8)

    def int_valued(self) -> bool:
        """Effective weights are integers in [-128, 127] (the byte gather of tap_sum may be used)."""
        return self.quantize and self.weight_bits <= 8


# Learnable-delay kernel taps below exp(KERNEL_LOG_FLOOR) (about 1e-20 of a unit peak) are exactly 0:
# far under float32's resolution next to the nearest tap (at least exp(-1 / (8 sigma^2))).
KERNEL_LOG_FLOOR = -46.0


class LearnableDelaySynapse(DelaySynapse):
    """One weight and one continuous delay position per synapse (DCLS-style).

    While training, the tap of synapse ``(i, j)`` is spread over the delay grid
    by a normalized Gaussian centred at ``pos[j, i]`` (in grid steps) of width
    ``sigma`` (set by the trainer, decaying from ``sigma_init`` to ``sigma_final``),
    so the position gets a gradient. In eval mode (and at export) the position
    rounds to the nearest grid level (half to even) and the synapse is one
    integer tap: exactly what the model file holds, so the integer path stays
    bit-exact with ``hw.reference``. The weight's quantization scale comes from
    the per-synapse weights, so it is the same in both modes.
    """

    def __init__(self, n_in: int, n_out: int, delays: list[int], weight_bits: int = 8, quantize: bool = True,
                 init_gain: float = 1.0, mode: str = "auto", sigma: float = 0.5):
        super().__init__(n_in, n_out, delays, weight_bits, quantize, init_gain, mode)
        K = self.K
        self.weight = nn.Parameter(torch.empty(n_out, n_in, 1))
        nn.init.uniform_(self.weight, -1.0, 1.0)
        # one tap per synapse, not K: the init scale is that of a K = 1 layer
        self.wscale.fill_(init_gain * math.sqrt(3.0 / n_in))
        # position as a fraction of the grid: an optimizer step moves it by (K - 1) x lr grid steps,
        # the larger position learning rate DCLS uses, with one optimizer for all parameters
        self.pos_u = nn.Parameter(torch.rand(n_out, n_in))
        self.register_buffer("sigma", torch.tensor(float(sigma)))
        self.kernel_log_floor = KERNEL_LOG_FLOOR  # -inf: no floor (bench/train.py --late compares)

    @property
    def pos(self) -> torch.Tensor:
        """Delay position of each synapse ``[n_out, n_in]`` in grid steps (0 .. K-1)."""
        return self.pos_u * (self.K - 1)

    def int_weight(self) -> torch.Tensor:
        """Exported taps: always the rounded positions (eval mode), whatever mode the module is in."""
        was = self.training
        self.train(False)
        try:
            return super().int_weight()
        finally:
            self.train(was)

    def level(self) -> torch.Tensor:
        """Rounded grid level of each synapse ``[n_out, n_in]`` (int64)."""
        return torch.round(self.pos.detach().clamp(0, self.K - 1)).to(torch.int64)

    def _kernel(self) -> torch.Tensor:
        k = torch.arange(self.K, dtype=self.pos.dtype, device=self.pos.device)
        if not self.training:
            return torch.nn.functional.one_hot(self.level(), self.K).to(self.pos.dtype)
        pos = self.pos.clamp(0, self.K - 1)
        z = -0.5 * ((k - pos[..., None]) / self.sigma.clamp_min(1e-3)) ** 2
        # Far taps of a narrow Gaussian fall into float32's subnormal range, where CPU arithmetic
        # runs many times slower (it doubled late epochs): they are zeroed before exp instead.
        # The nearest tap is always kept, so a very narrow Gaussian is the rounded tap, not 0 / 0.
        keep = (z > self.kernel_log_floor) | (z == z.amax(-1, keepdim=True))
        g = torch.exp(z.clamp_min(self.kernel_log_floor)) * keep
        return g / g.sum(-1, keepdim=True)

    def int_valued(self) -> bool:
        return super().int_valued() and not self.training  # a spread (training) kernel is fractional

    def scale(self) -> torch.Tensor:
        w = self.weight * self.wscale * self.mask.any(-1, keepdim=True)
        return layer_scale(w, self.weight_bits) if self.quantize else self.weight.new_tensor(1.0)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.wscale * self._kernel() * self.mask

    def effective_weight(self) -> torch.Tensor:
        w = self.weight * self.wscale * self.mask.any(-1, keepdim=True)
        if self.quantize:
            w = fake_quant(w, self.scale(), self.weight_bits, self.weight_bits <= LOW_BITS)
        return w * self._kernel() * self.mask


class LIFNeuron(nn.Module):
    """The contract LIF over T in integer units; spikes, or membrane if ``spiking=False``.

    ``forward(current [B,T,n], threshold) -> [B,T,n]``: ``threshold`` is the
    (integer-valued) threshold in the units of ``current``. Runs the fused
    :func:`sw.models.lif.lif_sequence` (or ``li_sequence`` for the readout);
    ``fused=False`` loops the step functions with autograd (the oracle).
    """

    def __init__(self, n: int, decay: int, spiking: bool = True, membrane_bits: int = 24, slope: float = 5.0,
                 exact: bool = True, fused: bool = True):
        super().__init__()
        self.n, self.decay, self.spiking = n, int(decay), spiking
        self.membrane_bits, self.slope, self.exact, self.fused = membrane_bits, slope, exact, fused

    def params(self, threshold: float) -> LIFParams:
        return LIFParams(float(threshold), self.decay, self.membrane_bits, self.slope, self.exact, "zero")

    def forward(self, current: torch.Tensor, threshold: float) -> torch.Tensor:
        p = self.params(threshold)
        if not self.fused:
            from sw.models.lif import lif_sequence_reference

            out = lif_sequence_reference(current, p, self.spiking)
            return out.to(current.dtype) if self.spiking else out
        return lif_sequence(current, p) if self.spiking else li_sequence(current, p)


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

    def plan(self) -> tuple:
        """``(synapse taps, integer threshold)``: the per-forward weight work, done once."""
        return self.synapse.taps(), self.threshold_int()


class DelayNet(nn.Module):
    """``n_inputs - hidden... - n_classes``; hidden layers spike (hard reset), the
    readout is a non-spiking LIF trained with ``mem_sum`` (CE on the summed membrane).

    ``forward(x [B,T,C]) -> (logits [B, n_classes], record)`` where record has
    ``spikes`` (list of ``[B,T,n]`` per hidden layer) and ``readout`` (``[B,T,n_classes]``
    membrane in integer units). ``argmax(logits)`` equals the integer readout's argmax.
    """

    def __init__(self, cfg: NetConfig, neuron_factory=None, synapse: str = "auto"):
        super().__init__()
        self.cfg = cfg.validate()
        sizes = cfg.sizes
        self.decays = [decay_int(cfg.tau_ms / 1000, cfg.dt)] * len(cfg.hidden) + [decay_int(cfg.readout_tau_ms / 1000, cfg.dt)]
        layers = []
        for l in range(len(sizes) - 1):
            spiking = l < len(sizes) - 2
            if cfg.delay_mode == "learnable":
                syn = LearnableDelaySynapse(sizes[l], sizes[l + 1], cfg.layer_delays(l), cfg.weight_bits,
                                            cfg.quantize, cfg.init_gain, synapse, cfg.sigma_init)
            else:
                syn = DelaySynapse(sizes[l], sizes[l + 1], cfg.layer_delays(l), cfg.weight_bits, cfg.quantize,
                                   cfg.init_gain, synapse)
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
        # data-parallel batch shards (sw.models.parallel): the bits depend on ``shards``, never on
        # ``workers`` (threads; None = torch.get_num_threads() of the caller)
        self.shards, self.workers = 1, None
        self.dropout_on = True  # cfg.spike_dropout applies in training mode while this is set

    def dropout_masks(self, B: int, T: int) -> torch.Tensor | None:
        """Spike dropout (``model.spike_dropout`` = p, training mode only): keep-masks ``[B, T, sum(hidden)]``
        (1 = keep, with probability 1 - p), drawn from torch's global generator on the whole batch before
        any sharding, so the bits depend on the seed (and the generator state a checkpoint restores) only.
        The kept spikes are not rescaled (spikes stay 0/1, what the synapse path and the hardware take);
        :meth:`calibrate` gives the layers back their training spike rates once dropout is off."""
        p = self.cfg.spike_dropout
        if not (self.training and self.dropout_on and p > 0 and self.cfg.hidden):
            return None
        return (torch.rand(B, T, sum(self.cfg.hidden)) >= p).to(torch.float32)

    @property
    def synapses(self) -> list[DelaySynapse]:
        return [L.synapse for L in self.layers]

    def set_delay_width(self, epoch: int, epochs: int) -> float:
        """Learnable delays: Gaussian width for ``epoch`` (geometric from ``sigma_init`` to ``sigma_final``)."""
        c = self.cfg
        f = epoch / max(1, epochs - 1)
        sigma = c.sigma_init * (c.sigma_final / c.sigma_init) ** f
        for syn in self.synapses:
            if hasattr(syn, "sigma"):
                syn.sigma.fill_(sigma)
        return sigma

    def weight_bits_at(self, epoch: int, epochs: int, warmup: float) -> int:
        """Weight bits of training epoch ``epoch`` (0-based): low-bit weights (2..4) start with
        ``round(warmup * epochs)`` epochs at ``WARM_BITS`` (a warm start, as ternary-weight networks
        are trained from a full-precision phase), then drop to ``weight_bits`` for the rest."""
        c = self.cfg
        if c.weight_bits > LOW_BITS or not c.quantize or epoch >= round(warmup * epochs):
            return c.weight_bits
        return WARM_BITS

    def set_weight_bits(self, bits: int) -> None:
        for syn in self.synapses:
            syn.weight_bits = int(bits)

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

    def set_threads(self, threads: int, shards: int | None = None) -> None:
        """Use ``threads`` cores: as many batch-shard workers with one intra-op thread each when the net
        can shard (every neuron a parameter-free module, e.g. the contract LIF), else as intra-op threads.
        ``shards`` (fixed, for reproducible bits) defaults to the current setting."""
        if shards is not None:
            self.shards = int(shards)
        if self.shards > 1 and self._shardable():
            torch.set_num_threads(1)
            self.workers = int(threads)
        else:
            torch.set_num_threads(int(threads))
            self.workers = None

    def _shardable(self) -> bool:
        return all(not any(True for _ in L.neuron.parameters()) for L in self.layers)

    def _run(self, s: torch.Tensor, weights: list, meta: list, n_in: int | None = None) -> tuple:
        """All layers on one batch (shard) with precomputed tap weights: ``(readout v, *hidden spikes)``.
        ``n_in``: ``s`` holds the inputs in its first ``n_in`` channels and the dropout keep-masks of the
        hidden layers after them (:meth:`dropout_masks`); the next layer gets the kept spikes, the record
        holds every spike the layer fired (its rate is the layer's own)."""
        masks = []
        if n_in is not None:
            s, rest = s[..., :n_in], s[..., n_in:]
            masks = list(rest.split(list(self.cfg.hidden), -1))
        spikes = []
        for l, (L, W, (delays, int8, th)) in enumerate(zip(self.layers, weights, meta)):
            s = L.neuron(L.synapse(s, (W, delays, int8)), th)
            spikes.append(s)
            if l < len(masks):
                s = s * masks[l]
        return (spikes[-1], *spikes[:-1])

    def forward(self, x: torch.Tensor):
        s = x.to(torch.float32)
        keep = self.dropout_masks(s.shape[0], s.shape[1])
        n_in = None
        if keep is not None:  # masks travel with the batch, so each shard gets its own rows
            n_in = s.shape[2]
            s = torch.cat([s, keep.to(s.device)], -1)
        plan = [L.plan() for L in self.layers]
        weights = [taps[0] for taps, _ in plan]
        meta = [(taps[1], taps[2], th) for taps, th in plan]
        fn = lambda xi, ws: self._run(xi, ws, meta, n_in)  # noqa: E731
        if self.shards > 1 and s.device.type == "cpu" and self._shardable():
            workers = self.workers if self.workers is not None else torch.get_num_threads()
            v, *spikes = sharded(fn, s, weights, self.shards, workers)
        else:
            v, *spikes = fn(s, weights)
        logits = mem_sum(v, self.layers[-1].synapse.scale(), self.logit_scale)
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
