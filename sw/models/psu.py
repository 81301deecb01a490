"""Parallel Spiking Units (Li et al. 2024, arXiv 2402.00449): PSU, IPSU, RPSU.

A PSU computes a whole ``T``-step membrane sequence with two ``T x T`` matrix
products instead of a sequential recurrence::

    A[i, j] = tau^-(i-j+1)   (i >= j)        B[i, j] = -tau^-(i-j)   (i > j)
    V = A @ I + theta * B @ sigmoid(A @ I)      spikes = H(V - theta)

``A @ I`` is a leaky integration without reset, and the ``B`` term stands in
for the (soft) resets, with ``sigmoid(A @ I)`` in place of the spikes, so no
step depends on the previous step's output. IPSU puts a learnable lower
triangular matrix (initialised to ``A``) in place of ``A`` in the integration
term; RPSU puts one in place of ``A`` inside the reset term. Both start out
equal to PSU.

Units: the delay network feeds currents in integer units with an integer
threshold ``th``; we use ``theta = 1`` and ``I = tau * current / th``
(``lif_units``), so that ``A @ I`` is exactly the contract LIF's reset-free
membrane ``v = beta v + current`` divided by ``th`` (``beta = 1/tau =
decay/4096``): the PSU and the LIF it is converted to share one threshold.
``lif_units=False`` takes ``I = current / th`` (the paper's units).

A PSU is a training device: the hardware runs the sequential LIF of the
contract. :func:`convert_to_lif` swaps every PSU for the delay model's LIF and
:func:`finetune` optionally retrains a few epochs.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from hw.model_file import DECAY_ONE

KINDS = ("psu", "ipsu", "rpsu")


def psu_matrices(T: int, tau: float, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed ``A`` and ``B`` matrices (``T x T``)."""
    if not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"PSU field 'T' must be a positive int, got {T!r}")
    if not tau >= 1.0:
        raise ValueError(f"PSU field 'tau' must be >= 1 (decay <= 4096), got {tau!r}")
    i = torch.arange(T, dtype=torch.float64)
    diff = i[:, None] - i[None, :]
    beta = 1.0 / tau
    A = torch.where(diff >= 0, beta ** (diff + 1).clamp_min(0), 0.0)
    B = torch.where(diff > 0, -(beta ** diff.clamp_min(0)), 0.0)
    return A.to(dtype), B.to(dtype)


class PSUNeuron(nn.Module):
    """current ``[B, T, n]`` -> spikes ``[B, T, n]`` for one of :data:`KINDS`.

    ``forward(current, threshold=1.0)`` matches the delay model's neuron
    interface (``threshold`` in the units of ``current``).
    """

    def __init__(self, kind: str, n: int, T: int, tau: float = 2.0, slope: float = 5.0, lif_units: bool = True):
        super().__init__()
        self.lif_units = bool(lif_units)
        if kind not in KINDS:
            raise ValueError(f"neuron kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.n, self.T, self.tau, self.slope = kind, int(n), int(T), float(tau), float(slope)
        A, B = psu_matrices(self.T, self.tau, torch.float64)
        self.register_buffer("A", A)
        self.register_buffer("B", B)
        self.register_buffer("mask", torch.tril(torch.ones(self.T, self.T)))
        if kind != "psu":  # learnable masked matrix and per-step bias, starting at PSU
            self.M = nn.Parameter(A.float())
            self.bias = nn.Parameter(torch.zeros(self.T, 1))

    def learned(self) -> torch.Tensor:
        return self.M * self.mask

    def membrane(self, current: torch.Tensor, threshold=1.0) -> torch.Tensor:
        if current.ndim != 3 or current.shape[1] != self.T:
            raise ValueError(f"PSU input must be current [B, T={self.T}, n], got shape {tuple(current.shape)}")
        u = current / threshold  # threshold-normalised units: fire at V >= 1
        if self.lif_units:
            u = u * self.tau
        A, B = self.A.to(u.dtype), self.B.to(u.dtype)
        AI = A @ u
        if self.kind == "psu":
            return AI + B @ torch.sigmoid(AI)
        L = self.learned().to(u.dtype)
        b = self.bias.to(u.dtype)
        if self.kind == "ipsu":
            return L @ u + b + B @ torch.sigmoid(AI)
        return AI + B @ torch.sigmoid(L @ u + b)  # rpsu

    def forward(self, current: torch.Tensor, threshold=1.0) -> torch.Tensor:
        from sw.models.delay import spike_fn

        return spike_fn(self.membrane(current, threshold) - 1.0, self.slope)


def make_neuron(kind: str, n: int, T: int, **cfg) -> nn.Module:
    """Factory for ``sw.trainer --neuron``: PSU-family neuron for a hidden layer.

    ``cfg`` takes the delay model's neuron keywords: ``decay`` (int, sets
    ``tau = 4096/decay``) or ``tau``; ``slope``; ``spiking`` must be true.
    Other keywords (``membrane_bits``, ``exact``) do not apply and are ignored.
    """
    if kind not in KINDS:
        raise ValueError(f"--neuron must be one of {KINDS + ('lif',)}, got {kind!r}")
    if not cfg.get("spiking", True):
        raise ValueError("PSU neurons are for spiking layers only (field 'spiking' is false)")
    if "tau" in cfg:
        tau = float(cfg["tau"])
    elif "decay" in cfg:
        decay = cfg["decay"]
        if not isinstance(decay, (int, np.integer)) or not 0 < decay <= DECAY_ONE:
            raise ValueError(f"PSU field 'decay' must be an int in (0, {DECAY_ONE}], got {decay!r}")
        tau = DECAY_ONE / int(decay)
    else:
        tau = 2.0
    return PSUNeuron(kind, n, T, tau=tau, slope=float(cfg.get("slope", 5.0)))


def neuron_factory(kind: str):
    """A ``DelayNet(cfg, neuron_factory=...)`` factory for ``kind``."""
    return lambda n, T, **kw: make_neuron(kind, n, T, **kw)


# ---------------------------------------------------------------- conversion to the contract
def convert_to_lif(net: nn.Module) -> list[int]:
    """Swap every PSU-family neuron of a ``DelayNet`` for the delay model's
    sequential LIF (same threshold, decay and synapses), in place. Returns the
    indices of converted layers. A PSU in paper units (``lif_units=False``)
    fires at ``A @ I >= 1``, i.e. LIF ``v >= tau * th``: its threshold is
    rescaled by ``tau``."""
    from sw.models.delay import LIFNeuron

    done = []
    cfg = net.cfg
    for l, L in enumerate(net.layers):
        if isinstance(L.neuron, PSUNeuron):
            tau, lif_units = L.neuron.tau, L.neuron.lif_units
            L.neuron = LIFNeuron(L.neuron.n, decay=net.decays[l], spiking=True, membrane_bits=cfg.membrane_bits,
                                 slope=cfg.slope, exact=cfg.quantize)
            if not lif_units:
                L.theta = L.theta * tau
            done.append(l)
    return done


def finetune(net: nn.Module, X, y, epochs: int, lr: float = 1e-3, batch_size: int = 32, seed: int = 0,
             progress: bool = True) -> list[float]:
    """Plain Adam fine-tuning with the delay model's loss; returns per-epoch mean loss."""
    from tqdm import tqdm

    from sw.models.delay import mem_sum_loss

    X = torch.as_tensor(np.asarray(X)).float()
    y = torch.as_tensor(np.asarray(y)).long()
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"finetune: X has {X.shape[0]} samples but y has {y.shape[0]}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in tqdm(range(epochs), desc="finetune", disable=not progress or epochs == 0):
        perm = torch.randperm(X.shape[0], generator=g)
        tot = 0.0
        for s in range(0, X.shape[0], batch_size):
            idx = perm[s:s + batch_size]
            opt.zero_grad()
            logits, _ = net(X[idx])
            loss = mem_sum_loss(logits, y[idx])
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
        losses.append(tot / X.shape[0])
    return losses


__all__ = ["KINDS", "psu_matrices", "PSUNeuron", "make_neuron", "neuron_factory", "convert_to_lif", "finetune"]
