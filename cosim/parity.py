"""Bit-exact comparison of HDL results with the reference, and where they first differ."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hw.network import HdlSample
from hw.reference import SampleResult


@dataclass(frozen=True)
class Divergence:
    """The first point where the HDL and the reference disagree."""

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


def first_divergence(sample: int, hdl: HdlSample, ref: SampleResult) -> Divergence | None:
    """Earliest (step, then layer, then neuron) disagreement in spikes, emission
    order or readout sums; ``None`` when the sample is bit-exact."""
    found: list[tuple[int, int, int, str]] = []
    for l, (ht, hj) in enumerate(hdl.emissions):
        L = ref.layers[l]
        if np.array_equal(ht, L.emit_t) and np.array_equal(hj, L.emit_j):
            continue
        T = ref.readout.shape[0]
        for t in range(T):
            a = hj[ht == t].tolist()
            b = L.emit_j[L.emit_t == t].tolist()
            if a != b:
                what = "spike order" if sorted(a) == sorted(b) else "spikes"
                found.append((t, l, _first_in_step(a, b), f"{what}: HDL {a} vs reference {b}"))
                break
    diff = np.argwhere(hdl.readout != ref.readout)
    if len(diff):
        t, j = (int(x) for x in diff[0])
        found.append((t, len(ref.layers) - 1, j,
                      f"readout sum: HDL {int(hdl.readout[t, j])} vs reference {int(ref.readout[t, j])}"))
    if not found:
        return None
    t, l, j, what = min(found)
    return Divergence(sample, l, t, j, what)
