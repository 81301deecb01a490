"""Co-simulation speed on an SHD-size workload, measured side by side in one run.

    python bench/cosim.py [--samples 2264] [--model build/model.safetensors] [--mode async]

Uses the trained model and the offline test split when they exist (the split is
replicated up to ``--samples``); otherwise a random 700-48-48-20 model with 15
delay levels up to 60 and random 5 %-activity rasters, and says so. Prints wall
time and simulated cycles/s for the Verilator backend with 2 workers (and 1
with ``--one-worker``), the reference on the same samples, and the Amaranth
backend on ``--pysim`` samples; every HDL sample is checked bit for bit
(:func:`hw.parity.first_divergence`). The profile splits the time into the
harness processes' CPU (Verilator evaluation plus their I/O), Python building
the binary stimulus and Python decoding the result words; the machine is
shared, so CPU seconds are the figure to compare across runs.

The Verilator build is the one for long runs: profile-guided (trained on the
first ``--train`` samples) and without the design's simulation assertions
(``--assertions`` keeps them, ``--no-pgo`` builds plainly); see
docs/hardware_results.md, "co-simulation profile".
"""
from __future__ import annotations

import argparse
import os
import resource
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
    ap.add_argument("--pysim", type=int, default=2, help="samples for the Amaranth-simulator comparison (0: skip)")
    ap.add_argument("--one-worker", action="store_true", help="also time one Verilator worker")
    ap.add_argument("--assertions", action="store_true",
                    help="keep the design's simulation assertions in the Verilator build (default: --no-assert)")
    ap.add_argument("--no-pgo", action="store_true", help="a plain build, not profile-guided")
    ap.add_argument("--train", type=int, default=4, help="samples the profile-guided build is trained on")
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
    t0 = time.perf_counter()
    be = VerilatorBackend(spec, assertions=a.assertions, train=None if a.no_pgo else (model, X[:a.train], a.mode))
    print(f"verilator build: {'plain' if a.no_pgo else f'profile-guided (trained on {min(a.train, len(X))} samples)'}, "
          f"assertions {'on' if a.assertions else 'off'}; {time.perf_counter() - t0:.1f} s (0 when cached): {be.exe}")
    from hw.parity import first_divergence
    rows = []
    for w in ((1, 2) if a.one_worker else (2,)):
        stats: dict = {}
        c0, s0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        hdl = be.run(model, X, a.mode, workers=w, stats=stats)
        wall = time.perf_counter() - t0
        c1, s1 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
        cyc = sum(h.cycles for h in hdl)
        bad = [d for b, (h, r) in enumerate(zip(hdl, ref.samples)) if (d := first_divergence(b, h, r, counters=True))]
        rows.append((f"verilator, {w} worker{'s' if w > 1 else ''}", len(X), wall, cyc / wall, len(X) - len(bad)))
        hcpu = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
        pcpu = s1.ru_utime + s1.ru_stime - s0.ru_utime - s0.ru_stime
        print(f"profile ({w} worker{'s' if w > 1 else ''}): wall {wall:.2f} s; harness CPU {hcpu:.2f} s "
              f"({stats['ticks'] / hcpu / 1e6:.2f} M clocks per CPU-s, {stats['ticks']:,} clocks incl. writes and reads, "
              f"{cyc:,} to done); Python CPU {pcpu:.2f} s, of it stimulus encoding {stats['encode_s']:.2f} s and "
              f"result decoding {stats['decode_s']:.2f} s (wall, summed over workers)")
        if bad:
            print(f"  {len(bad)} samples differ; first: {bad[0]}")
    if a.pysim:
        n5 = min(a.pysim, len(X))
        t0 = time.perf_counter()
        hdl5 = AmaranthBackend(spec).run(model, X[:n5], a.mode)
        wall5 = time.perf_counter() - t0
        rows.append(("amaranth (pysim)", n5, wall5, sum(h.cycles for h in hdl5) / wall5,
                     sum(first_divergence(b, h, r, counters=True) is None for b, (h, r) in enumerate(zip(hdl5, ref.samples)))))
    print(f"{'backend':<22} {'samples':>7} {'wall s':>9} {'cycles/s':>12} {'s/sample':>9} {'bit-exact':>13}")
    for name, n, wall, cps, ex in rows:
        print(f"{name:<22} {n:>7} {wall:>9.2f} {cps:>12,.0f} {wall / n:>9.4f} {ex:>10}/{n}")
    print(f"{'reference (numpy)':<22} {len(X):>7} {t_ref:>9.2f} {'-':>12} {t_ref / len(X):>9.4f}")
    v2 = rows[len(rows) - 1 - bool(a.pysim)][2]
    print(f"verilator (2 workers) vs reference, same {len(X)} samples: {t_ref / v2:.2f}x the reference's speed"
          + (f"; 2 workers vs 1: {rows[0][2] / v2:.2f}x" if a.one_worker else "")
          + (f"; verilator vs pysim per sample: {(rows[-1][2] / rows[-1][1]) / (v2 / len(X)):,.0f}x" if a.pysim else "")
          + f" (load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
