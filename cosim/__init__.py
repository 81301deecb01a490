"""spikeline co-simulation: stream a model's spikes through the HDL, check parity, report.

Public API (imported lazily)::

    cosim.cosimulate(model, X, y, backend=..., modes=..., delay_units=...) -> report dict
    cosim.EnergyModel, cosim.format_table(report)
    cosim.main(argv)       the `spikeline` command (cosim.cli)
"""
from __future__ import annotations

import importlib

_API = {"cosimulate": "cosim.run", "EnergyModel": "cosim.report", "format_table": "cosim.report",
        "main": "cosim.cli"}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'cosim' has no attribute {name!r}")
