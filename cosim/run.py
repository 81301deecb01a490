"""Co-simulate a trained model: stream its test spikes through the HDL, check
bit-exact parity with hw.reference, count cycles and memory, write a report.

    python cosim/run.py --model build/model.safetensors --backend verilator --execution layered async
    python cosim/run.py --default      # what `make sim` runs: data, training if needed, cosim, report

Exit codes: 0 ok, 1 parity (or another check) failed, 2 bad flag, file or
field (one line naming it; checked before any simulation), 3 internal error.
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from hw.model_file import Model, load  # noqa: E402
from hw.network import NetworkSpec  # noqa: E402
from hw.reference import DELAY_UNITS, MODES, simulate  # noqa: E402

from sw.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError, check_out_dir, guarded  # noqa: E402

from cosim import plots  # noqa: E402
from cosim.report import EnergyModel, extra_test_entry, format_table, run_report, save_json  # noqa: E402

BACKENDS = ("amaranth", "verilator")


class CosimError(InputError):
    """Bad input to the co-simulation; the message names the flag or file."""


def _pow2(n: int, lo: int = 16) -> int:
    return max(lo, 1 << (max(1, int(n)) - 1).bit_length())


def capacity_per_layer(values, model: Model | None) -> list[int]:
    """``--scdq-capacity``: one value for every layer or one per layer, each an int >= 1
    (with ``model=None`` only the values are checked)."""
    vals = list(values) if isinstance(values, (list, tuple)) else [values]
    caps = []
    for v in vals:
        try:
            c = int(v)
        except (TypeError, ValueError):
            raise CosimError(f"--scdq-capacity must be ints >= 1, got {v!r}") from None
        if isinstance(v, bool) or c < 1 or (isinstance(v, float) and v != c):
            raise CosimError(f"--scdq-capacity must be ints >= 1, got {v!r}")
        caps.append(c)
    if model is None:
        return caps
    L = len(model.layers)
    if len(caps) == 1:
        caps = caps * L
    if len(caps) != L:
        raise CosimError(f"--scdq-capacity takes one value or one per layer ({L}), got {len(caps)}")
    return caps


def make_backend(name: str, spec: NetworkSpec, log=print):
    if name == "verilator":
        from cosim.backends.verilator import VerilatorBackend
        return VerilatorBackend(spec, log=log)
    if name == "amaranth":
        from cosim.backends.amaranth import AmaranthBackend
        return AmaranthBackend(spec, log=log)
    raise CosimError(f"--backend must be one of {BACKENDS}, got {name!r}")


def float_predictions(model: Model, model_path: Path, X: np.ndarray, checkpoint: str | None = None, log=print):
    """Predictions of the float model behind the file, when its checkpoint is known.

    An explicit ``checkpoint`` (``--float-checkpoint``) must exist. The one named in
    the model file's ``info.float_checkpoint`` is optional: a model copied without
    it is co-simulated all the same, with no float accuracy (and a note saying why).
    """
    if checkpoint:
        ck = Path(checkpoint)
        if not ck.is_file():
            raise CosimError(f"--float-checkpoint: no file at '{ck}'")
    else:
        named = model.info.get("float_checkpoint")
        if not named:
            return None
        ck = Path(named) if Path(named).is_absolute() else model_path.parent / named
        if not ck.is_file():
            log(f"note: no float accuracy: the float checkpoint named in '{model_path}' (info.float_checkpoint "
                f"= {named!r}) is not at '{ck}'; pass --float-checkpoint to use another")
            return None
    import torch
    from sw.checkpoint import load_float_model
    net = load_float_model(ck)
    preds = []
    with torch.no_grad():
        for s in range(0, len(X), 128):
            logits, _ = net(torch.from_numpy(X[s:s + 128]).float())
            preds.append(logits.argmax(1).numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def cosimulate(model: Model, X: np.ndarray, y: np.ndarray | None, *, backend: str = "verilator",
               modes=("layered", "async"), delay_units=("scdq",), workers: int = 2, float_pred=None,
               scdq_capacity=None, energy: EnergyModel = EnergyModel(), out: Path | None = None,
               vcd_sample: int | None = None, progress: bool = True, log=print, corrupt=None,
               clock_mhz: float = plots.DEFAULT_CLOCK_MHZ, early_exit=None, ring_lanes: int = 1) -> dict:
    """Run every (mode, delay unit) over all samples; returns the report dict.

    ``ring_lanes``: ring adds per cycle of the ring build (1 or 2, ``--ring-lanes``); it changes only
    the ring build, and each ring run's report says which (``ring_lanes``).

    ``scdq_capacity``: ``None`` sizes each SCDQ to the peak measured on ``X``
    (it never drops); an int or one int per layer builds the SCDQ at that
    capacity: the HDL is compared with the reference at that capacity, and the
    report also gives the reference's accuracy at unlimited capacity.
    ``early_exit``: ``None`` or a list of ``"m,s"`` settings (``--early-exit``):
    every (mode, unit) also runs each setting (cosim/early_exit.py).

    Every argument is checked before any simulation starts (:func:`check_inputs`)."""
    check_inputs(modes, delay_units, scdq_capacity, energy, vcd_sample, len(X), model, clock_mhz)
    combos = [(m_, u) for u in delay_units for m_ in modes]
    forced = None if scdq_capacity is None else capacity_per_layer(scdq_capacity, model)
    ee_settings, ee_runs = None, []
    if early_exit is not None:
        from cosim import early_exit as ee_mod
        try:
            ee_settings = ee_mod.parse_settings(early_exit)
        except ee_mod.EarlyExitError as e:
            raise CosimError(str(e)) from None
    if out is not None:
        out = check_out_dir(out, "--out")
    refs, unlimited = {}, {}
    for m_, u in combos:
        bar = tqdm(total=len(X), desc=f"reference {m_}/{u}", disable=not progress, leave=False, file=sys.stderr)
        refs[(m_, u)] = simulate(model, X, m_, u, progress=lambda n: bar.update(n - bar.n))
        bar.close()
        if forced is not None and u == "scdq":  # the run at the chip's capacity; keep the unlimited one
            unlimited[(m_, u)] = refs[(m_, u)]
            refs[(m_, u)] = simulate(model, X, m_, u, scdq_capacity=forced)
    max_events = max(1, int(X.sum(axis=(1, 2)).max(initial=1)))
    max_spikes = max([1] + [len(L.emit_t) for r in refs.values() for s in r.samples for L in s.layers])
    runs, cycles = [], {}
    for u in delay_units:
        peak = np.max([refs[(m_, u)].occupancy.max(axis=(0, 2)) for m_ in modes], axis=0)
        # the smallest capacity that never overflows (2 at least: a 1-entry queue has a 0-bit address)
        caps = forced or [max(2, int(p)) for p in peak]
        spec = NetworkSpec.for_model(model, u, scdq_capacity=caps, max_events=_pow2(max_events),
                                     max_spikes=_pow2(max_spikes), ring_lanes=ring_lanes if u == "ring" else 1)
        be = make_backend(backend, spec, log=log)
        for m_ in modes:
            bar = tqdm(total=len(X), desc=f"{backend} {m_}/{u}", disable=not progress, file=sys.stderr)
            t0 = time.perf_counter()
            hdl = be.run(model, X, m_, workers=workers, progress=bar.update, corrupt=corrupt)
            wall = time.perf_counter() - t0
            bar.close()
            r = run_report(model, m_, u, backend, hdl, refs[(m_, u)], y, float_pred, wall, energy, caps,
                           unlimited=unlimited.get((m_, u)))
            if u == "ring":  # the build: a two-lane ring needs a RAM with one more read and write port
                r["ring_lanes"] = spec.ring_lanes
            runs.append(r)
            cycles[f"{m_}/{u}"] = np.array([h.cycles for h in hdl])
            if ee_settings:
                ee_runs.append(ee_mod.sweep(model, X, y, be, m_, u, ee_settings, energy, workers,
                                            forced if u == "scdq" else None, progress))
            if out is not None and m_ == modes[0] and u == delay_units[0] and len(X):
                plots.raster(X[0], hdl[0].emissions, out / "raster_sample0.png",
                             f"sample 0 on the HDL ({m_}/{u})", label=None if y is None else int(y[0]),
                             readout=hdl[0].readout)
    for r in runs:  # latency in time at the stated clock
        r["latency"]["microseconds"] = {k: v / clock_mhz for k, v in r["latency"]["cycles"].items()}
    report = {"model": model.info.get("name", ""), "samples": int(len(X)), "T": int(model.T),
              "layers": [[L.n_in, L.n_out] for L in model.layers], "clock_mhz": float(clock_mhz), "runs": runs}
    if ee_settings:
        report["early_exit"] = ee_runs
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        save_json(report, out / "report.json")
        plots.memory_bars(runs, out / "memory.png")
        plots.cycles_histogram(cycles, out / "cycles.png", clock_mhz)
        if ee_runs:
            ee_mod.plot(ee_runs, out / "early_exit.png")
        if vcd_sample is not None:
            from cosim.backends.amaranth import AmaranthBackend
            m_, u = combos[0]
            spec = NetworkSpec.for_model(model, u, scdq_capacity=forced or [
                                             max(2, int(p)) for p in refs[(m_, u)].occupancy.max(axis=(0, 2))],
                                         max_events=_pow2(max_events), max_spikes=_pow2(max_spikes))
            AmaranthBackend(spec).run(model, X[vcd_sample], m_, vcd=str(out / f"sample{vcd_sample}.vcd"))
    return report


def check_inputs(modes, delay_units, scdq_capacity, energy: EnergyModel, vcd_sample, n_samples: int,
                 model: Model | None = None, clock_mhz: float = plots.DEFAULT_CLOCK_MHZ) -> None:
    """Raise :class:`CosimError` naming the flag for any bad co-simulation argument
    (``model``: also check the number of per-layer values)."""
    for m_ in modes:
        if m_ not in MODES:
            raise CosimError(f"--execution must be among {MODES}, got {m_!r}")
    for u in delay_units:
        if u not in DELAY_UNITS:
            raise CosimError(f"--delay-unit must be among {DELAY_UNITS}, got {u!r}")
    if scdq_capacity is not None:
        capacity_per_layer(scdq_capacity, model)
    for name, v in (("--energy-sop-pj", energy.sop_pj), ("--energy-update-pj", energy.neuron_update_pj),
                    ("--energy-cycle-pj", energy.cycle_pj)):
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise CosimError(f"{name}: must be a finite number >= 0 (pJ), got {v!r}")
    if not isinstance(clock_mhz, (int, float)) or not math.isfinite(clock_mhz) or clock_mhz <= 0:
        raise CosimError(f"--clock-mhz: must be a finite number > 0, got {clock_mhz!r}")
    if n_samples < 1:
        raise CosimError("--data: the data set holds 0 samples")
    if vcd_sample is not None and not 0 <= vcd_sample < n_samples:
        raise CosimError(f"--vcd: sample {vcd_sample} is outside 0..{n_samples - 1}")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="cosim/run.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="build/model.safetensors", help="model file (default build/model.safetensors)")
    ap.add_argument("--data", default="offline", help="synthetic | offline (default set) | SHD .h5 file or directory | tonic-shd:ROOT | tonic-ssc:ROOT")
    ap.add_argument("--backend", default="verilator", choices=BACKENDS)
    ap.add_argument("--execution", nargs="+", choices=MODES, help="layered and/or async (default both)")
    ap.add_argument("--mode", nargs="+", choices=MODES, help="deprecated alias of --execution")
    ap.add_argument("--delay-unit", nargs="+", default=["scdq"], choices=DELAY_UNITS)
    ap.add_argument("--ring-lanes", type=int, default=1, choices=(1, 2),
                    help="ring adds per cycle of the ring build (default 1; changes only the ring build)")
    ap.add_argument("--samples", default="all", help="N or 'all' (default all test samples)")
    ap.add_argument("--workers", type=int, default=2, help="harness processes (verilator backend)")
    ap.add_argument("--out", default="build/cosim", help="report folder (report.json and PNG plots)")
    ap.add_argument("--vcd", type=int, metavar="SAMPLE", help="also write a VCD waveform of this sample (pysim)")
    ap.add_argument("--scdq-capacity", nargs="+", metavar="C",
                    help="SCDQ capacity: one value, or one per layer (default: the measured peak, never drops); "
                         "the report adds the accuracy at unlimited capacity and the dropped events per layer")
    ap.add_argument("--early-exit", nargs="+", metavar="M,S",
                    help="also run each early-exit setting MARGIN,STEPS (0,0 = off, always included): "
                         "accuracy, cycles, SOPs and energy per setting, a table and early_exit.png")
    ap.add_argument("--float-checkpoint", help="float checkpoint (default: the one named in the model file)")
    ap.add_argument("--energy-sop-pj", type=float, default=EnergyModel.sop_pj)
    ap.add_argument("--energy-update-pj", type=float, default=EnergyModel.neuron_update_pj)
    ap.add_argument("--energy-cycle-pj", type=float, default=EnergyModel.cycle_pj)
    ap.add_argument("--default", action="store_true",
                    help="make sim: default data and model (made/trained if missing), all modes and both units")
    ap.add_argument("--clock-mhz", type=float, default=plots.DEFAULT_CLOCK_MHZ,
                    help="clock for latency in µs in the report and cycles.png (default 100)")
    ap.add_argument("--extra-test", nargs="+", default=[], metavar="FILE",
                    help="more SHD-format test files; the report gives their accuracy (first mode and delay unit). "
                         "The shifted splits next to the test split (slow/fast/noisy) are always added")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def _load_extra_tests(a, model: Model, model_path: Path, samples) -> dict:
    """``{name: (path, X, y)}``: the shifted test splits next to ``--data`` and every
    ``--extra-test`` file, loaded and checked before any simulation runs."""
    from sw.evaluate import DataMismatch, load_split, shifted_files
    sets = {**{k: (v, f"shifted split '{k}'") for k, v in shifted_files(a.data).items()},
            **{str(p): (Path(p), "--extra-test") for p in a.extra_test}}
    try:
        return {name: (path, *load_split(path, model, str(model_path), samples, flag=flag))
                for name, (path, flag) in sets.items()}
    except (DataMismatch, ValueError, OSError) as e:  # names the flag (or split) and the file
        raise CosimError(str(e)) from None


def _extra_tests(a, model: Model, model_path: Path, sets: dict, energy) -> list[dict]:
    """Co-simulate each extra test set in the first mode and delay unit; one report entry each."""
    out = []
    for name, (path, X, y) in sets.items():
        fp = float_predictions(model, model_path, X, a.float_checkpoint)
        sub = cosimulate(model, X, y, backend=a.backend, modes=(a.execution[0],), delay_units=(a.delay_unit[0],),
                         workers=a.workers, float_pred=fp, scdq_capacity=a.scdq_capacity, energy=energy,
                         progress=not a.no_progress, clock_mhz=a.clock_mhz, ring_lanes=a.ring_lanes)
        out.append(extra_test_entry(name, path, sub))
    return out


def main(argv=None) -> int:
    """Exit codes (sw.errors): 0 ok, 1 parity failed, 2 bad flag/file/field, 3 internal error."""
    return guarded(_main, argv, "cosim")


def _main(argv=None) -> int:
    a = parse_args(argv)
    if a.mode is not None:
        warnings.warn("--mode is deprecated; use --execution", DeprecationWarning, stacklevel=1)
        print("note: --mode is deprecated; use --execution", file=sys.stderr)
        if a.execution is not None and a.execution != a.mode:
            raise CosimError("--mode: deprecated alias of --execution; give one of them, not both")
    a.execution = a.execution or a.mode or ["layered", "async"]
    model_path = Path(a.model)
    out = Path(a.out)
    if a.default:
        a.execution, a.delay_unit = ["layered", "async"], ["scdq", "ring"]
    samples = None
    if a.samples != "all":
        try:
            samples = int(a.samples)
        except ValueError:
            raise CosimError(f"--samples must be an int or 'all', got {a.samples!r}") from None
        if samples < 1:
            raise CosimError(f"--samples must be >= 1, got {samples}")
    if a.workers < 1:
        raise CosimError(f"--workers must be >= 1, got {a.workers}")
    energy = EnergyModel(a.energy_sop_pj, a.energy_update_pj, a.energy_cycle_pj)
    # everything that needs no data is checked now, before training, data generation or simulation
    check_inputs(a.execution, a.delay_unit, a.scdq_capacity, energy, None, 1, None, a.clock_mhz)
    if a.early_exit is not None:  # settings checked before any data, training or simulation
        from cosim import early_exit as ee_mod
        try:
            ee_mod.parse_settings(a.early_exit)
        except ee_mod.EarlyExitError as e:
            raise CosimError(str(e)) from None
    if a.vcd is not None and a.vcd < 0:
        raise CosimError(f"--vcd: sample {a.vcd} is negative")
    out = check_out_dir(out, "--out")
    if a.default and not model_path.is_file():
        print(f"{model_path} is missing: training the default model (sw.trainer)", flush=True)
        from sw.trainer import main as train_main
        rc = train_main(["--out", str(model_path.parent)] + (["--no-progress"] if a.no_progress else []))
        if rc:
            return rc
    model = load(model_path)  # ModelFileError names the file and field
    from sw.evaluate import DataMismatch, load_eval_data
    try:
        provenance: dict = {}
        X, y = load_eval_data(a.data, model, str(model_path), samples=samples, provenance=provenance)
    except (DataMismatch, ValueError, OSError) as e:  # DataMismatch and ShdFormatError name the file/field
        raise CosimError(f"--data: {e}") from None
    check_inputs(a.execution, a.delay_unit, a.scdq_capacity, energy, a.vcd, len(X), model, a.clock_mhz)
    extra_sets = _load_extra_tests(a, model, model_path, samples)
    fp = float_predictions(model, model_path, X, a.float_checkpoint)
    report = cosimulate(model, X, y, backend=a.backend, modes=tuple(a.execution), delay_units=tuple(a.delay_unit),
                        workers=a.workers, float_pred=fp, scdq_capacity=a.scdq_capacity, energy=energy,
                        out=out, vcd_sample=a.vcd, progress=not a.no_progress, clock_mhz=a.clock_mhz,
                        early_exit=a.early_exit, ring_lanes=a.ring_lanes)
    report["model"] = str(model_path)
    report["data"] = a.data
    if provenance:  # trained on / evaluated on, and whether the test files match (sw.evaluate.check_provenance)
        report["data_provenance"] = provenance
    report["extra_tests"] = _extra_tests(a, model, model_path, extra_sets, energy)
    save_json(report, out / "report.json")
    print(f"spikeline co-simulation: {model_path} on {len(X)} samples of '{a.data}' ({a.backend} backend)")
    print(format_table(report))
    print(f"wrote {out / 'report.json'}, {out / 'raster_sample0.png'}, {out / 'memory.png'}, {out / 'cycles.png'}")
    if report.get("early_exit"):
        from cosim.early_exit import format_table as ee_table
        print(ee_table(report["early_exit"]))
        print(f"wrote {out / 'early_exit.png'}")
    exact = all(r["parity"]["bit_exact"] == r["parity"]["samples"] for r in report["runs"] + report["extra_tests"])
    exact = exact and all(p["parity"]["bit_exact"] == p["parity"]["samples"]
                          for r in report.get("early_exit", []) for p in r["points"])
    if not exact:
        print("PARITY FAILED: the HDL is not bit-exact with hw.reference (see FIRST DIVERGENCE above)")
    return EXIT_OK if exact else EXIT_CHECK_FAILED


if __name__ == "__main__":
    sys.exit(main())
