"""spikeline hardware: the bit-exact reference, the model file and the Amaranth HDL.

Public API (imported lazily, so ``import hw`` stays light and never imports torch)::

    hw.load(path) / hw.save(model, path) / hw.validate(model)   the model file (hw.model_file)
    hw.Model, hw.Layer, hw.Widths, hw.ModelFileError
    hw.simulate(model, X, mode, delay_unit)                     the reference (hw.reference)
    hw.memory_report(model, capacities)
    hw.Network, hw.NetworkSpec                                  the Amaranth design (hw.network)
"""
from __future__ import annotations

import importlib

_API = {
    "load": "hw.model_file", "save": "hw.model_file", "validate": "hw.model_file", "Model": "hw.model_file",
    "Layer": "hw.model_file", "Widths": "hw.model_file", "ModelFileError": "hw.model_file",
    "simulate": "hw.reference", "memory_report": "hw.reference", "MODES": "hw.reference",
    "DELAY_UNITS": "hw.reference", "Network": "hw.network", "NetworkSpec": "hw.network",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'hw' has no attribute {name!r}")
