"""NeuroBench's metric names for spikeline runs (the ``neurobench`` block of
``report.json`` and of ``spikeline eval --json``).

The definitions follow the ``neurobench`` 2.3.0 package's own code
(``neurobench/metrics/static/*.py`` and ``neurobench/metrics/workload/*.py``,
read from its wheel; it is not installed here because it pins a torchaudio that
does not match torch 2.13), mapped onto an integer model file:

* ``Footprint`` (bytes): NeuroBench sums ``numel * element_size`` over a
  network's parameters and buffers. Here: every layer's weight tensor as the
  model file stores it (``[K, n_in, n_out]`` at its integer dtype), plus per
  layer its ``K`` delays, threshold and decay counted as 4-byte ints.
* ``ConnectionSparsity``: zero weights / all weights over the connection layers
  (NeuroBench: Linear/Conv/RNN weights). Here: over every layer's
  ``[K, n_in, n_out]`` grid. (NeuroBench rounds to 4 decimals; this is exact.)
* ``ActivationSparsity``: zero activations / all activations of the spiking
  neuron layers over all steps and samples. Here: ``1 - spikes / (N · T · Σ
  n_hidden)`` over the hidden layers (the readout does not spike); 0.0 for a
  model without hidden layers, as NeuroBench returns 0.0 when there is nothing to count.
* ``SynapticOperations`` per sample: ``Effective_ACs`` = the measured SOPs (every
  input is a spike, so every operation is an accumulate), ``Effective_MACs`` =
  0, ``Dense`` = ``T · Σ_l n_in · n_out · K_l`` (NeuroBench's ``total`` count:
  every input times every weight at every step, one Linear per delay level).
* ``MembraneUpdates`` per sample: NeuroBench counts, per neuron layer, all
  neurons at the first step plus every later (neuron, step) whose membrane
  changed. The hardware updates (leaks) every neuron at every step, which is
  what spikeline counts: ``T · Σ_l n_out`` over all layers, readout included.
  This is an upper bound of NeuroBench's figure (equal when no membrane sits
  unchanged at 0).
* ``ClassificationAccuracy``: mean of ``prediction == label`` (None without labels).
"""
from __future__ import annotations

import numpy as np

from hw.model_file import Model

SCALAR_BYTES = 4  # delays, threshold and decay counted as 4-byte ints in Footprint


def footprint_bytes(model: Model) -> int:
    return int(sum(L.weights.nbytes + SCALAR_BYTES * (len(L.delays) + 2) for L in model.layers))


def connection_sparsity(model: Model) -> float:
    total = sum(L.weights.size for L in model.layers)
    zeros = sum(int(np.count_nonzero(L.weights == 0)) for L in model.layers)
    return float(zeros / total) if total else 0.0


def dense_sops(model: Model) -> int:
    return int(model.T * sum(L.n_in * L.n_out * len(L.delays) for L in model.layers))


def neurobench(model: Model, sops: np.ndarray, hidden_spikes: np.ndarray, predictions: np.ndarray | None = None,
               labels: np.ndarray | None = None) -> dict:
    """The NeuroBench block.

    ``sops``: SOPs per sample and layer ``[N, L]`` (or ``[N]``); ``hidden_spikes``:
    spikes per sample and hidden layer ``[N, L-1]`` (or ``[N]``); ``predictions``
    and ``labels`` give ``ClassificationAccuracy``.
    """
    sops = np.asarray(sops, dtype=np.float64)
    n = sops.shape[0]
    spikes = np.asarray(hidden_spikes, dtype=np.float64).reshape(n, -1) if n else np.zeros((0, 0))
    n_hidden = sum(L.n_out for L in model.layers if L.spiking)
    activations = n * model.T * n_hidden
    acc = None
    if predictions is not None and labels is not None and len(labels):
        acc = float((np.asarray(predictions) == np.asarray(labels)).mean())
    return {
        "Footprint": footprint_bytes(model),
        "ConnectionSparsity": connection_sparsity(model),
        "ActivationSparsity": float(1.0 - spikes.sum() / activations) if activations else 0.0,
        "SynapticOperations": {"Effective_MACs": 0.0,
                               "Effective_ACs": float(sops.reshape(n, -1).sum(1).mean()) if n else 0.0,
                               "Dense": float(dense_sops(model))},
        "MembraneUpdates": float(model.T * sum(L.n_out for L in model.layers)),
        "ClassificationAccuracy": acc,
    }
