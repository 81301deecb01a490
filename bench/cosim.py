"""Co-simulation speed on an SHD-size workload, measured side by side in one run.

    python bench/cosim.py [--samples 2264] [--model build/model.safetensors] [--mode async]

Uses the trained model and the offline test split when they exist (the split is
replicated up to ``--samples``); otherwise a random 700-48-48-20 model with 15
delay levels up to 60 and random 5 %-activity rasters, and says so. Prints wall
time and simulated cycles/s for the Verilator backend with 1 and 2 workers,
the Amaranth backend on 5 samples and the reference on the same samples.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hw.model_file import Layer, Model, load  # noqa: E402
from hw.network import NetworkSpec  # noqa: E402
from hw.reference import simulate  # noqa: E402


def random_shd_like(seed: int, n: int) -> tuple[Model, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [700, 48, 48, 20]
    layers = []
    for l in range(3):
        delays = np.sort(rng.choice(np.arange(0, 61, 2), 15, replace=False))
        shape = (15, sizes[l], sizes[l + 1])
        W = rng.integers(-60, 80, shape) * (rng.random(shape) < 0.02)
        layers.append(Layer(delays, W.astype(np.int8), threshold=int(200 if l == 0 else 120), decay=3700,
                            spiking=l < 2))
    X = rng.random((n, 100, 700)) < 0.05
    return Model(layers, 700, 100), X


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=2264)
    ap.add_argument("--model", default="build/model.safetensors")
    ap.add_argument("--mode", default="async", choices=("layered", "async"))
    ap.add_argument("--delay-unit", default="scdq", choices=("ring", "scdq"))
    a = ap.parse_args(argv)
    from cosim.backends.amaranth import AmaranthBackend
    from cosim.backends.verilator import VerilatorBackend
    from cosim.run import _pow2

    path = Path(a.model)
    if path.is_file():
        model = load(path)
        from sw.evaluate import load_eval_data
        X, _ = load_eval_data("offline", model, str(path))
        what = f"{path} on the offline test split ({len(X)} samples"
        X = np.concatenate([X] * int(np.ceil(a.samples / len(X))))[: a.samples]
        what += f", replicated to {len(X)})"
    else:
        model, X = random_shd_like(0, a.samples)
        what = f"random 700-48-48-20 model (no {path}), random 5 % input rasters, {len(X)} samples"
    print(f"workload: {what}, T={model.T}, mode {a.mode}, delay unit {a.delay_unit}")
    t0 = time.perf_counter()
    ref = simulate(model, X, a.mode, a.delay_unit)
    t_ref = time.perf_counter() - t0
    caps = [max(1, int(p)) for p in ref.occupancy.max(axis=(0, 2))]
    spk = max([1] + [len(L.emit_t) for s in ref.samples for L in s.layers])
    spec = NetworkSpec.for_model(model, a.delay_unit, scdq_capacity=caps,
                                 max_events=_pow2(int(X.sum(axis=(1, 2)).max())), max_spikes=_pow2(spk))
    be = VerilatorBackend(spec)
    rows = []
    for w in (1, 2):
        t0 = time.perf_counter()
        hdl = be.run(model, X, a.mode, workers=w)
        wall = time.perf_counter() - t0
        cyc = sum(h.cycles for h in hdl)
        exact = sum(np.array_equal(h.readout, r.readout) for h, r in zip(hdl, ref.samples))
        rows.append((f"verilator, {w} worker{'s' if w > 1 else ''}", len(X), wall, cyc / wall, exact))
    n5 = min(5, len(X))
    t0 = time.perf_counter()
    hdl5 = AmaranthBackend(spec).run(model, X[:n5], a.mode)
    wall5 = time.perf_counter() - t0
    rows.append(("amaranth (pysim)", n5, wall5, sum(h.cycles for h in hdl5) / wall5,
                 sum(np.array_equal(h.readout, r.readout) for h, r in zip(hdl5, ref.samples))))
    t0 = time.perf_counter()
    simulate(model, X[:n5], a.mode, a.delay_unit)
    t_ref5 = time.perf_counter() - t0
    print(f"{'backend':<22} {'samples':>7} {'wall s':>9} {'cycles/s':>12} {'s/sample':>9} {'readout exact':>13}")
    for name, n, wall, cps, ex in rows:
        print(f"{name:<22} {n:>7} {wall:>9.2f} {cps:>12,.0f} {wall / n:>9.4f} {ex:>10}/{n}")
    print(f"{'reference (numpy)':<22} {len(X):>7} {t_ref:>9.2f} {'-':>12} {t_ref / len(X):>9.4f}")
    print(f"{'reference (numpy)':<22} {n5:>7} {t_ref5:>9.2f} {'-':>12} {t_ref5 / n5:>9.4f}")
    v1, v2 = rows[0][2], rows[1][2]
    print(f"ratios: 2 workers vs 1: {v1 / v2:.2f}x faster; verilator (2 w) vs pysim per sample: "
          f"{(wall5 / n5) / (v2 / len(X)):,.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
