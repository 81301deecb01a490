"""Export a trained DelayNet to the model file, and the torch integer inference path.

:func:`to_model_file` turns the fake-quantized network into integer layers
(only the delay levels that hold a non-zero tap are kept). :func:`integer_forward`
runs the exported integers in int64 torch; it must equal ``hw.reference.simulate``
in ``layered`` mode bit for bit (:func:`parity` checks that, the reference wins).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hw.model_file import Layer, Model, Widths, save, validate
from sw.errors import InputError
from sw.quantize import int_dtype


class BudgetError(InputError):
    """A layer has more non-zero taps than the per-core budget allows."""


def _max_taps_list(max_taps, n_layers: int) -> list:
    if max_taps is None or isinstance(max_taps, int):
        return [max_taps] * n_layers
    if len(max_taps) != n_layers:
        raise BudgetError(f"budget field 'max_taps': needs {n_layers} entries (one per layer), got {len(max_taps)}")
    return list(max_taps)


def check_budget(net, max_taps) -> None:
    """Raise :class:`BudgetError` naming ``max_taps[l]`` if a layer exceeds it."""
    for l, (syn, cap) in enumerate(zip(net.synapses, _max_taps_list(max_taps, len(net.synapses)))):
        nnz = int((syn.int_weight() != 0).sum())
        if cap is not None and nnz > cap:
            raise BudgetError(f"budget field 'max_taps[{l}]': layer {l} has {nnz} non-zero taps, budget is {cap}")


def to_model_file(net, T: int | None = None, dt: float | None = None, widths: Widths | None = None,
                  max_taps=None, info: dict | None = None) -> Model:
    """Integer :class:`hw.model_file.Model` of a (quantized) DelayNet; validated."""
    net = getattr(net, "net", net)  # unlayered wrappers hold the DelayNet as .net
    cfg = net.cfg
    if not cfg.quantize:
        raise ValueError("model config field 'quantize': only a quantized (hardware-aware) network can be exported")
    check_budget(net, max_taps)
    T = cfg.T if T is None else T
    dt = cfg.dt if dt is None else dt
    if widths is None:
        widths = Widths(weight_bits=cfg.weight_bits, membrane_bits=cfg.membrane_bits, max_delay=max(63, cfg.max_delay))
    layers = []
    n = len(net.layers)
    for l, L in enumerate(net.layers):
        q = L.synapse.int_weight()  # [n_out, n_in, K]
        used = torch.nonzero((q != 0).any(dim=0).any(dim=0)).flatten()
        if used.numel() == 0:
            used = torch.tensor([0])  # an all-zero layer still needs one level
        W = q[:, :, used].permute(2, 1, 0).contiguous().numpy().astype(int_dtype(widths.weight_bits))
        layers.append(Layer(delays=L.synapse.delays[used].numpy().astype(np.int64), weights=W,
                            threshold=int(L.threshold_int()), decay=int(net.decays[l]), reset="zero",
                            spiking=l < n - 1))
    model = Model(layers=layers, n_inputs=cfg.n_inputs, T=int(T), dt=float(dt), widths=widths,
                  info=dict(info or {}))
    return validate(model)


def export(net, path: str | os.PathLike = "build/model.safetensors", **kw) -> Path:
    """:func:`to_model_file` then ``hw.model_file.save``."""
    return save(to_model_file(net, **kw), path)


# ---------------------------------------------------------------- integer inference path (torch int64)
@dataclass
class IntegerResult:
    spikes: list  # per hidden layer: bool np.ndarray [B, T, n]
    readout: np.ndarray  # int64 [B, T, n_classes], R after each step
    predictions: np.ndarray  # int64 [B]


def _sat(v: torch.Tensor, bits: int) -> torch.Tensor:
    hi = (1 << (bits - 1)) - 1
    return torch.clamp(v, -hi - 1, hi)


def _layer_current(S: torch.Tensor, layer: Layer) -> torch.Tensor:
    """``I[b,t,j] = sum_k sum_i W[k,i,j] S[b,t-d_k,i]`` as int64. The matmul is float64,
    exact because every partial sum is bounded by sum|W| < 2^(acc_bits-1) <= 2^47 < 2^53."""
    B, T, n_in = S.shape
    W = torch.from_numpy(layer.weights.astype(np.float64))  # [K, n_in, n_out]
    P = S.reshape(B * T, n_in).to(torch.float64) @ W.permute(1, 0, 2).reshape(n_in, -1)
    P = P.reshape(B, T, W.shape[0], W.shape[2]).round().to(torch.int64)
    I = torch.zeros(B, T, W.shape[2], dtype=torch.int64)
    for k, d in enumerate(int(x) for x in layer.delays):
        if d < T:
            I[:, d:] += P[:, : T - d, k]
    return I


def integer_forward(model: Model, X, chunk: int = 256) -> IntegerResult:
    """Layered integer inference of ``model`` on rasters ``X`` (``[B,T,C]`` bool)."""
    w = model.widths
    X = torch.as_tensor(np.asarray(X))
    if X.ndim == 2:
        X = X[None]
    spikes_all = [[] for _ in model.layers[:-1]]
    R_all = []
    for s in range(0, X.shape[0], chunk):
        S = X[s:s + chunk].to(torch.int64)
        B, T, _ = S.shape
        for l, layer in enumerate(model.layers):
            I = _layer_current(S, layer)
            v = torch.zeros(B, layer.n_out, dtype=torch.int64)
            a = int(layer.decay)
            if layer.spiking:
                out = torch.zeros(B, T, layer.n_out, dtype=torch.int64)
            else:
                R = torch.zeros(B, layer.n_out, dtype=torch.int64)
                Rh = torch.zeros(B, T, layer.n_out, dtype=torch.int64)
            for t in range(T):
                leak = (v.abs() * a) >> 12  # trunc0(v*a/4096): magnitude floor, sign restored
                v = _sat(torch.where(v < 0, -leak, leak) + I[:, t], w.membrane_bits)
                if layer.spiking:
                    fire = v >= int(layer.threshold)
                    out[:, t] = fire.to(torch.int64)
                    v = torch.where(fire, 0, v) if layer.reset == "zero" else torch.where(fire, v - int(layer.threshold), v)
                else:
                    R = _sat(R + v, w.readout_bits)
                    Rh[:, t] = R
            if layer.spiking:
                spikes_all[l].append(out.to(torch.bool).numpy())
                S = out
            else:
                R_all.append(Rh.numpy())
    readout = np.concatenate(R_all)
    return IntegerResult([np.concatenate(x) for x in spikes_all], readout, np.argmax(readout[:, -1], axis=-1))


def parity(model: Model, X, ours: IntegerResult | None = None, ref=None, progress=None) -> dict:
    """Compare the torch integer path with ``hw.reference.simulate(model, X, "layered")``.

    Returns counts and the first differing (sample, layer, step, neuron) if any.
    """
    from hw.reference import simulate

    X = np.asarray(X)
    ours = integer_forward(model, X) if ours is None else ours
    ref = simulate(model, X, "layered", progress=progress) if ref is None else ref
    B = X.shape[0]
    ok = np.ones(B, dtype=bool)
    first = None
    for l in range(len(model.layers)):
        if model.layers[l].spiking:
            a, b = ours.spikes[l], ref.spikes(l)
        else:
            a, b = ours.readout, ref.readout
        diff = a != b
        ok &= ~diff.reshape(B, -1).any(axis=1)
        if first is None and diff.any():
            s, t, j = (int(x) for x in np.argwhere(diff)[0])
            first = {"sample": s, "layer": l, "step": t, "neuron": j}
    return {"samples": B, "bit_exact": int(ok.sum()), "all_bit_exact": bool(ok.all()), "first_divergence": first,
            "predictions_equal": bool((ours.predictions == ref.predictions).all())}
