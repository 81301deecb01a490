"""Bit-exact comparison of HDL results with the reference, and where they first differ.

Every HDL-vs-reference check (tests, fuzz, co-simulation report) goes through
:func:`first_divergence`, so that every failure names the sample, layer, step
and neuron.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hw.network import HdlSample
from hw.reference import SampleResult


@dataclass(frozen=True)
class Divergence:
    """The first point where the HDL and the reference disagree. For a whole-sample
    counter (SOPs, spikes, overflow flags) ``step`` and ``neuron`` are -1."""

    sample: int
    layer: int
    step: int
    neuron: int
    what: str

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"sample {self.sample}, layer {self.layer}, step {self.step}, neuron {self.neuron}: {self.what}"


def _first_in_step(a: list[int], b: list[int]) -> int:
    for x, y in zip(a, b):
        if x != y:
            return min(x, y)
    return (a[len(b)] if len(a) > len(b) else b[len(a)])


def first_divergence(sample: int, hdl: HdlSample, ref: SampleResult, counters: bool = False) -> Divergence | None:
    """Earliest (step, then layer, then neuron) disagreement in spikes, emission
    order or readout sums; ``None`` when the sample is bit-exact. The HDL readout
    may cover more steps or classes than the model (a build larger than the
    model): only the model's are compared. With ``counters``, the per-core SOP
    and spike counters and the record-overflow flag are compared too (after the
    spike and readout checks, which locate a difference more precisely)."""
    found: list[tuple[int, int, int, str]] = []
    T, nc = ref.readout.shape
    for l, (ht, hj) in enumerate(hdl.emissions):
        L = ref.layers[l]
        if np.array_equal(ht, L.emit_t) and np.array_equal(hj, L.emit_j):
            continue
        for t in range(max(T, int(ht.max(initial=-1)) + 1)):
            a = hj[ht == t].tolist()
            b = L.emit_j[L.emit_t == t].tolist()
            if a != b:
                what = "spike order" if sorted(a) == sorted(b) else "spikes"
                found.append((t, l, _first_in_step(a, b), f"{what}: HDL {a} vs reference {b}"))
                break
    R = np.asarray(hdl.readout)[:T, :nc]
    if R.shape != ref.readout.shape:
        found.append((0, len(ref.layers) - 1, 0, f"readout shape: HDL {R.shape} vs reference {ref.readout.shape}"))
    else:
        diff = np.argwhere(R != ref.readout)
        if len(diff):
            t, j = (int(x) for x in diff[0])
            found.append((t, len(ref.layers) - 1, j,
                          f"readout sum: HDL {int(R[t, j])} vs reference {int(ref.readout[t, j])}"))
    if found:
        t, l, j, what = min(found)
        return Divergence(sample, l, t, j, what)
    if counters:
        he, re_ = (getattr(hdl, "exit_step", None), getattr(hdl, "early_exit", None)), \
            (getattr(ref, "exit_step", None), getattr(ref, "early_exit", None))
        if None not in he + re_ and (int(he[0]), bool(he[1])) != (int(re_[0]), bool(re_[1])):
            return Divergence(sample, len(ref.layers) - 1, int(min(he[0], re_[0])), -1,
                              f"exit (step, fired): HDL {he} vs reference {re_}")
        for l, c in enumerate(hdl.counters):
            if c["sops"] != int(ref.sops[l]):
                return Divergence(sample, l, -1, -1, f"SOP counter: HDL {c['sops']} vs reference {int(ref.sops[l])}")
            if l < len(ref.layers) - 1 and c["spikes"] != len(ref.layers[l].emit_t):
                return Divergence(sample, l, -1, -1,
                                  f"spike counter: HDL {c['spikes']} vs reference {len(ref.layers[l].emit_t)}")
        if hdl.record_overflow:
            return Divergence(sample, -1, -1, -1, "spike-record memory overflowed")
    return None
