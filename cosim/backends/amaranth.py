"""Amaranth backend: the Network in the built-in Python simulator (slow; short runs and waveforms)."""
from __future__ import annotations

import numpy as np

from hw.model_file import Model
from hw.network import HdlSample, NetworkSpec
from hw.pysim import run_network


class AmaranthBackend:
    """Same interface as :class:`cosim.backends.verilator.VerilatorBackend`."""

    name = "amaranth"

    def __init__(self, spec: NetworkSpec, log=print):
        self.spec = spec

    def run(self, model: Model, X: np.ndarray, mode: str, workers: int = 1, progress=None, corrupt=None,
            vcd: str | None = None, early_exit=None) -> list[HdlSample]:
        # pysim is single-threaded Python; one process keeps waveforms and order simple
        return run_network(self.spec, model, X, mode, vcd=vcd, corrupt=corrupt, early_exit=early_exit,
                           progress=(lambda n: progress(1)) if progress else None)
