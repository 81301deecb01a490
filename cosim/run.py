"""Co-simulate a trained model: stream its test spikes through the HDL, check
bit-exact parity with hw.reference, count cycles and memory, write a report.

    python cosim/run.py --model build/model.safetensors --backend verilator --mode layered async
    python cosim/run.py --default      # what `make sim` runs: data, training if needed, cosim, report
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from hw.model_file import Model, ModelFileError, load  # noqa: E402
from hw.network import NetworkSpec  # noqa: E402
from hw.reference import DELAY_UNITS, MODES, simulate  # noqa: E402

from cosim import plots  # noqa: E402
from cosim.report import EnergyModel, extra_test_entry, format_table, run_report, save_json  # noqa: E402

BACKENDS = ("amaranth", "verilator")


class CosimError(ValueError):
    """Bad input to the co-simulation; the message names the flag or file."""


def _pow2(n: int, lo: int = 16) -> int:
    return max(lo, 1 << (max(1, int(n)) - 1).bit_length())


def capacity_per_layer(values, model: Model) -> list[int]:
    """``--scdq-capacity``: one value for every layer or one per layer, each an int >= 1."""
    vals = list(values) if isinstance(values, (list, tuple)) else [values]
    L = len(model.layers)
    caps = []
    for v in vals:
        try:
            c = int(v)
        except (TypeError, ValueError):
            raise CosimError(f"--scdq-capacity must be ints >= 1, got {v!r}") from None
        if isinstance(v, bool) or c < 1 or (isinstance(v, float) and v != c):
            raise CosimError(f"--scdq-capacity must be ints >= 1, got {v!r}")
        caps.append(c)
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


def float_predictions(model: Model, model_path: Path, X: np.ndarray, checkpoint: str | None = None):
    """Predictions of the float model behind the file, when its checkpoint is known."""
    ck = checkpoint or (model.info.get("float_checkpoint") if isinstance(model.info, dict) else None)
    if not ck:
        return None
    ck = Path(ck)
    if not ck.is_absolute() and not ck.is_file():
        ck = model_path.parent / ck
    if not ck.is_file():
        raise CosimError(f"--float-checkpoint: no file at '{ck}'")
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
               vcd_sample: int | None = None, progress: bool = True, log=print, corrupt=None) -> dict:
    """Run every (mode, delay unit) over all samples; returns the report dict.

    ``scdq_capacity``: ``None`` sizes each SCDQ to the peak measured on ``X``
    (it never drops); an int or one int per layer builds the SCDQ at that
    capacity: the HDL is compared with the reference at that capacity, and the
    report also gives the reference's accuracy at unlimited capacity."""
    for m_ in modes:
        if m_ not in MODES:
            raise CosimError(f"--mode must be among {MODES}, got {m_!r}")
    for u in delay_units:
        if u not in DELAY_UNITS:
            raise CosimError(f"--delay-unit must be among {DELAY_UNITS}, got {u!r}")
    combos = [(m_, u) for u in delay_units for m_ in modes]
    forced = None if scdq_capacity is None else capacity_per_layer(scdq_capacity, model)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
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
                                     max_spikes=_pow2(max_spikes))
        be = make_backend(backend, spec, log=log)
        for m_ in modes:
            bar = tqdm(total=len(X), desc=f"{backend} {m_}/{u}", disable=not progress, file=sys.stderr)
            t0 = time.perf_counter()
            hdl = be.run(model, X, m_, workers=workers, progress=bar.update, corrupt=corrupt)
            wall = time.perf_counter() - t0
            bar.close()
            r = run_report(model, m_, u, backend, hdl, refs[(m_, u)], y, float_pred, wall, energy, caps,
                           unlimited=unlimited.get((m_, u)))
            runs.append(r)
            cycles[f"{m_}/{u}"] = np.array([h.cycles for h in hdl])
            if out is not None and m_ == modes[0] and u == delay_units[0] and len(X):
                plots.raster(X[0], hdl[0].emissions, out / "raster_sample0.png",
                             f"sample 0 on the HDL ({m_}/{u})")
    report = {"model": model.info.get("name", ""), "samples": int(len(X)), "T": int(model.T),
              "layers": [[L.n_in, L.n_out] for L in model.layers], "runs": runs}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        save_json(report, out / "report.json")
        plots.memory_bars(runs, out / "memory.png")
        plots.cycles_histogram(cycles, out / "cycles.png")
        if vcd_sample is not None:
            from cosim.backends.amaranth import AmaranthBackend
            if not 0 <= vcd_sample < len(X):
                raise CosimError(f"--vcd: sample {vcd_sample} is outside 0..{len(X) - 1}")
            m_, u = combos[0]
            spec = NetworkSpec.for_model(model, u, scdq_capacity=forced or [
                                             max(2, int(p)) for p in refs[(m_, u)].occupancy.max(axis=(0, 2))],
                                         max_events=_pow2(max_events), max_spikes=_pow2(max_spikes))
            AmaranthBackend(spec).run(model, X[vcd_sample], m_, vcd=str(out / f"sample{vcd_sample}.vcd"))
    return report


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="cosim/run.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="build/model.safetensors", help="model file (default build/model.safetensors)")
    ap.add_argument("--data", default="offline", help="synthetic | offline (default set) | SHD .h5 file or directory")
    ap.add_argument("--backend", default="verilator", choices=BACKENDS)
    ap.add_argument("--mode", nargs="+", default=["layered", "async"], choices=MODES)
    ap.add_argument("--delay-unit", nargs="+", default=["scdq"], choices=DELAY_UNITS)
    ap.add_argument("--samples", default="all", help="N or 'all' (default all test samples)")
    ap.add_argument("--workers", type=int, default=2, help="harness processes (verilator backend)")
    ap.add_argument("--out", default="build/cosim", help="report folder (report.json and PNG plots)")
    ap.add_argument("--vcd", type=int, metavar="SAMPLE", help="also write a VCD waveform of this sample (pysim)")
    ap.add_argument("--scdq-capacity", nargs="+", metavar="C",
                    help="SCDQ capacity: one value, or one per layer (default: the measured peak, never drops); "
                         "the report adds the accuracy at unlimited capacity and the dropped events per layer")
    ap.add_argument("--float-checkpoint", help="float checkpoint (default: the one named in the model file)")
    ap.add_argument("--energy-sop-pj", type=float, default=EnergyModel.sop_pj)
    ap.add_argument("--energy-update-pj", type=float, default=EnergyModel.neuron_update_pj)
    ap.add_argument("--energy-cycle-pj", type=float, default=EnergyModel.cycle_pj)
    ap.add_argument("--default", action="store_true",
                    help="make sim: default data and model (made/trained if missing), all modes and both units")
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
    except (DataMismatch, ValueError) as e:
        raise SystemExit(f"cosim: {e}")


def _extra_tests(a, model: Model, model_path: Path, sets: dict, energy) -> list[dict]:
    """Co-simulate each extra test set in the first mode and delay unit; one report entry each."""
    out = []
    for name, (path, X, y) in sets.items():
        try:
            fp = float_predictions(model, model_path, X, a.float_checkpoint)
            sub = cosimulate(model, X, y, backend=a.backend, modes=(a.mode[0],), delay_units=(a.delay_unit[0],),
                             workers=a.workers, float_pred=fp, scdq_capacity=a.scdq_capacity, energy=energy,
                             progress=not a.no_progress)
        except CosimError as e:
            raise SystemExit(f"cosim: {e}")
        out.append(extra_test_entry(name, path, sub))
    return out


def main(argv=None) -> int:
    a = parse_args(argv)
    model_path = Path(a.model)
    if a.default:
        a.mode, a.delay_unit = ["layered", "async"], ["scdq", "ring"]
        if not model_path.is_file():
            print(f"{model_path} is missing: training the default model (python sw/train.py)", flush=True)
            from sw.train import main as train_main
            rc = train_main(["--out", str(model_path.parent)] + (["--no-progress"] if a.no_progress else []))
            if rc:
                return rc
    if a.samples != "all":
        try:
            samples = int(a.samples)
        except ValueError:
            raise SystemExit(f"cosim: --samples must be an int or 'all', got {a.samples!r}")
        if samples < 1:
            raise SystemExit(f"cosim: --samples must be >= 1, got {samples}")
    else:
        samples = None
    if a.workers < 1:
        raise SystemExit(f"cosim: --workers must be >= 1, got {a.workers}")
    try:
        model = load(model_path)
    except ModelFileError as e:
        raise SystemExit(f"cosim: {e}")
    from sw.evaluate import DataMismatch, load_eval_data
    try:
        X, y = load_eval_data(a.data, model, str(model_path), samples=samples)
    except (DataMismatch, ValueError, OSError) as e:
        raise SystemExit(f"cosim: --data: {e}")
    extra_sets = _load_extra_tests(a, model, model_path, samples)
    try:
        fp = float_predictions(model, model_path, X, a.float_checkpoint)
    except CosimError as e:
        raise SystemExit(f"cosim: {e}")
    energy = EnergyModel(a.energy_sop_pj, a.energy_update_pj, a.energy_cycle_pj)
    out = Path(a.out)
    try:
        report = cosimulate(model, X, y, backend=a.backend, modes=tuple(a.mode), delay_units=tuple(a.delay_unit),
                            workers=a.workers, float_pred=fp, scdq_capacity=a.scdq_capacity, energy=energy,
                            out=out, vcd_sample=a.vcd, progress=not a.no_progress)
    except CosimError as e:
        raise SystemExit(f"cosim: {e}")
    report["model"] = str(model_path)
    report["data"] = a.data
    report["extra_tests"] = _extra_tests(a, model, model_path, extra_sets, energy)
    save_json(report, out / "report.json")
    print(f"spikeline co-simulation: {model_path} on {len(X)} samples of '{a.data}' ({a.backend} backend)")
    print(format_table(report))
    print(f"wrote {out / 'report.json'}, {out / 'raster_sample0.png'}, {out / 'memory.png'}, {out / 'cycles.png'}")
    exact = all(r["parity"]["bit_exact"] == r["parity"]["samples"]
                for r in report["runs"] + report["extra_tests"])
    if not exact:
        print("PARITY FAILED: the HDL is not bit-exact with hw.reference (see FIRST DIVERGENCE above)")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
