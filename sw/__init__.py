"""spikeline software: data, PyTorch training, quantization and export, evaluation, NIR.

Public API (imported lazily; torch is loaded only by the names that need it)::

    sw.load_config(path, overrides)                             training config (sw.config; sw.trainer.train(cfg) trains)
    sw.to_model_file(net)                                       quantized export (sw.export)
    sw.load_eval_data(source, model), sw.evaluate_model(model, X, y, execution, delay_unit)
    sw.to_nir(model), sw.from_nir(graph, ...)                   NIR with delays (sw.nir_io)
    sw.read_shd(path), sw.load_rasters(path, dt, T, pool)       SHD files (sw.data.shd)
    sw.EXIT_OK, sw.EXIT_CHECK_FAILED, sw.EXIT_USAGE, sw.EXIT_INTERNAL, sw.InputError
"""
from __future__ import annotations

import importlib

_API = {
    "load_config": "sw.config", "to_model_file": "sw.export",
    "load_eval_data": "sw.evaluate", "evaluate_model": "sw.evaluate", "to_nir": "sw.nir_io",
    "from_nir": "sw.nir_io", "read_shd": "sw.data.shd", "load_rasters": "sw.data.shd",
    "EXIT_OK": "sw.errors", "EXIT_CHECK_FAILED": "sw.errors", "EXIT_USAGE": "sw.errors",
    "EXIT_INTERNAL": "sw.errors", "InputError": "sw.errors",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'sw' has no attribute {name!r}")
