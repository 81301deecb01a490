"""Does profile-guided optimisation make the Verilator harness faster? Measured side by side.

    python bench/verilator_pgo.py [--model build/model.safetensors] [--samples 200] [--train-samples 50] [--rounds 3]

Builds the co-simulation design of ``bench/cosim.py`` (async / SCDQ, the model on
its offline test split) three ways, each in its own folder under
``build/pgo/``:

* ``plain``: the backend's flags (``cosim.backends.verilator.FLAGS``);
* ``gen``: the same plus gcc's ``-fprofile-generate``; it runs
  ``--train-samples`` samples to write its profile (``*.gcda``);
* ``use``: the same flags plus ``-fprofile-use -fprofile-correction`` with
  that profile.

Verilator's own ``--prof-pgo`` collects thread-partitioning costs for
``--threads`` models; the harness runs a single-threaded model (``--threads 2``
is many times slower on 2 cores, see /work/shared/NOTES.md), so compiler PGO
is what can help. The binaries then run the same ``--samples`` samples in
``--rounds`` alternating rounds; the figure is the harness CPU seconds (the
machine is shared: wall seconds are printed too). Every sample is checked
against the reference.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from cosim.backends.verilator import (FLAGS, HARNESS, design_key, encode_writes, run_harness,  # noqa: E402
                                      sample_script)
from hw.model_file import load  # noqa: E402
from hw.network import NetworkSpec, config_writes  # noqa: E402
from hw.parity import first_divergence  # noqa: E402
from hw.reference import simulate  # noqa: E402
from hw.verilog import verilator_bin_dir, verilator_env  # noqa: E402


def build_variant(vtext: str, folder: Path, extra: list[str], log) -> Path:
    exe = folder / "obj_dir" / "Vnetwork"
    if exe.is_file():
        return exe
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "network.v").write_text(vtext)
    cmd = [str(verilator_bin_dir() / "verilator"), "--cc", "--exe", "--build", "-j", "2", *FLAGS, *extra,
           "--top-module", "network", str(HARNESS.resolve()), "network.v"]
    log(f"building {folder.name}: {' '.join(extra) or '(backend flags)'}")
    r = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=verilator_env())
    if r.returncode != 0 or not exe.is_file():
        raise RuntimeError(f"verilator build failed in {folder}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return exe


def timed(exe, spec, model, script):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    hdl, ticks = run_harness(exe, spec, model, script)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return hdl, ticks, wall, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="build/model.safetensors")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--train-samples", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mode", default="async", choices=("layered", "async"))
    a = ap.parse_args(argv)
    sys.path.append(str(ROOT / "bench"))
    from fuzz import fix_verilator_pch
    from sw.evaluate import load_eval_data
    from cosim.run import _pow2
    fix_verilator_pch()
    log = lambda s: print(s, file=sys.stderr, flush=True)
    model = load(a.model)
    X, _ = load_eval_data("offline", model, a.model)
    X = np.concatenate([X] * int(np.ceil(a.samples / len(X))))[: a.samples]
    ref = simulate(model, X, a.mode, "scdq")
    caps = [max(1, int(p)) for p in ref.occupancy.max(axis=(0, 2))]
    spk = max([1] + [len(L.emit_t) for s in ref.samples for L in s.layers])
    spec = NetworkSpec.for_model(model, "scdq", scdq_capacity=caps, max_events=_pow2(int(X.sum(axis=(1, 2)).max())),
                                 max_spikes=_pow2(spk))
    key, vtext = design_key(spec)
    base = ROOT / "build" / "pgo" / key
    plain = build_variant(vtext, base / "plain", [], log)
    gen = build_variant(vtext, base / "gen", ["-CFLAGS", "-fprofile-generate", "-LDFLAGS", "-fprofile-generate"], log)
    head = encode_writes(config_writes(spec, model, a.mode))
    train = head + b"".join(sample_script(spec, x) for x in X[: a.train_samples])
    for g in (base / "gen" / "obj_dir").glob("*.gcda"):
        g.unlink()
    log(f"profiling run: {a.train_samples} samples")
    timed(gen, spec, model, train)
    gcda = list((base / "gen" / "obj_dir").glob("*.gcda"))
    if not gcda:
        raise RuntimeError("the -fprofile-generate build wrote no profile (*.gcda)")
    use_dir = base / "use"
    if not (use_dir / "obj_dir" / "Vnetwork").is_file():
        (use_dir / "obj_dir").mkdir(parents=True, exist_ok=True)
        for g in gcda:
            shutil.copy2(g, use_dir / "obj_dir" / g.name)
    use = build_variant(vtext, use_dir, ["-CFLAGS", "-fprofile-use -fprofile-correction -Wno-missing-profile"], log)
    script = head + b"".join(sample_script(spec, x) for x in X)
    print(f"design {key}: {model.n_inputs}-{'-'.join(str(L.n_out) for L in model.layers)}, {a.mode}/scdq, "
          f"{a.samples} samples per round, {a.rounds} rounds, profile from {a.train_samples} samples")
    tot = {"plain": [0.0, 0.0, 0], "pgo": [0.0, 0.0, 0]}
    for rnd in range(a.rounds):
        for name, exe in (("plain", plain), ("pgo", use)) if rnd % 2 == 0 else (("pgo", use), ("plain", plain)):
            hdl, ticks, wall, cpu = timed(exe, spec, model, script)
            bad = [d for b, (h, r) in enumerate(zip(hdl, ref.samples)) if (d := first_divergence(b, h, r, counters=True))]
            assert not bad, f"{name}: {bad[0]}"
            tot[name][0] += wall
            tot[name][1] += cpu
            tot[name][2] += ticks
            print(f"round {rnd} {name:5s}: wall {wall:7.2f} s, CPU {cpu:7.2f} s, {ticks / cpu / 1e6:5.2f} M clocks per CPU-s",
                  flush=True)
    p, g = tot["plain"], tot["pgo"]
    print(f"{'binary':8s} {'wall s':>8s} {'CPU s':>8s} {'Mclk/CPU-s':>11s}")
    for name, (w, c, t) in tot.items():
        print(f"{name:8s} {w:8.2f} {c:8.2f} {t / c / 1e6:11.2f}")
    print(f"PGO / plain CPU: {g[1] / p[1]:.3f} (all samples bit-exact; load {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
