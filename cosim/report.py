"""The co-simulation report: one entry per (mode, delay unit) run, printed as a table and saved as JSON."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hw.model_file import Model
from hw.network import HdlSample
from hw.reference import BatchResult, memory_report

from sw.metrics import neurobench

from cosim.parity import first_divergence


@dataclass(frozen=True)
class EnergyModel:
    """Per-operation energy constants (pJ), configurable from the CLI.

    Default SOP energy: imec SENECA (GF 22 nm FDX), about 2.8 pJ per synaptic
    operation (Tang et al. 2023, Frontiers in Neuroscience). The neuron-update
    and per-cycle figures default to 0: set them for your own technology.
    """

    sop_pj: float = 2.8
    neuron_update_pj: float = 0.0
    cycle_pj: float = 0.0

    def estimate(self, sops: float, updates: float, cycles: float) -> float:
        return sops * self.sop_pj + updates * self.neuron_update_pj + cycles * self.cycle_pj


def _stats(x) -> dict:
    x = np.asarray(x, dtype=np.float64)
    return {"mean": float(x.mean()), "p50": float(np.percentile(x, 50)), "p99": float(np.percentile(x, 99)),
            "min": float(x.min()), "max": float(x.max())}


def run_report(model: Model, mode: str, unit: str, backend: str, hdl: list[HdlSample], ref: BatchResult,
               y: np.ndarray | None, float_pred: np.ndarray | None, wall_s: float, energy: EnergyModel,
               scdq_capacity: list[int], unlimited: BatchResult | None = None) -> dict:
    """One run's report. ``unlimited``: the reference at unlimited SCDQ capacity when the
    build's capacity was forced (``ref`` is then the reference at that capacity)."""
    n = len(hdl)
    L = len(model.layers)
    divs = [first_divergence(b, h, r) for b, (h, r) in enumerate(zip(hdl, ref.samples))]
    first = next((d for d in divs if d is not None), None)
    hdl_pred = np.array([int(np.argmax(h.readout[-1])) for h in hdl])
    acc = {"reference": None, "hdl": None, "float": None}
    if unlimited is not None:
        acc["reference_unlimited_capacity"] = None
    if y is not None:
        acc["reference"] = float((ref.predictions == y).mean())
        if unlimited is not None:
            acc["reference_unlimited_capacity"] = float((unlimited.predictions == y).mean())
        acc["hdl"] = float((hdl_pred == y).mean())
        if float_pred is not None:
            acc["float"] = float((float_pred == y).mean())
    cycles = np.array([h.cycles for h in hdl])
    ttd = ref.time_to_decision
    ttd_cycles = np.array([h.step_cycles[t] for h, t in zip(hdl, ttd)])
    sops = np.array([[c["sops"] for c in h.counters] for h in hdl])  # [N, L]
    busy = np.array([[c["busy"] for c in h.counters] for h in hdl])
    spikes = np.array([[c["spikes"] for c in h.counters] for h in hdl])
    # SCDQ capacity from the measured peak (HDL register when the unit is an SCDQ, else the reference)
    ref_peak = ref.occupancy.max(axis=(0, 2))
    if unit == "scdq":
        hdl_peak = np.array([[c["peak"] for c in h.counters] for h in hdl]).max(0)
        overflow = [bool(any(h.counters[l]["overflow"] for h in hdl)) for l in range(L)]
        dropped = [int(sum(h.counters[l]["dropped"] for h in hdl)) for l in range(L)]
    else:
        hdl_peak, overflow, dropped = None, [False] * L, [0] * L
    measured = [int(max(1, (hdl_peak if hdl_peak is not None else ref_peak)[l])) for l in range(L)]
    if unlimited is not None:  # a forced capacity: the chip's queue has that size, whatever it held
        measured = [int(c) for c in scdq_capacity]
    mem = memory_report(model, measured)
    ref_dropped = ref.dropped.sum(0) if n else np.zeros(L, dtype=np.int64)
    for l, row in enumerate(mem):
        row.update(reference_peak=int(ref_peak[l]), hdl_peak=None if hdl_peak is None else int(hdl_peak[l]),
                   build_capacity=int(scdq_capacity[l]), overflow=overflow[l], dropped=dropped[l],
                   reference_dropped=int(ref_dropped[l]),
                   unlimited_peak=None if unlimited is None else int(unlimited.occupancy.max(axis=(0, 2))[l]))
        if model.layers[l].max_delay == 0:
            row["scdq_capacity"] = 0
        if mode == "layered":
            row["scdq_total_bits"] = row["scdq_bits"] + row["layered_accumulator_bits"]
        else:
            row["scdq_total_bits"] = row["scdq_bits"]
    updates = n and sum(L_.n_out for L_ in model.layers) * model.T  # one leak/fire/readout op per neuron per step
    return {
        "mode": mode, "delay_unit": unit, "backend": backend, "samples": n,
        "accuracy": acc,
        "parity": {"samples": n, "bit_exact": int(sum(d is None for d in divs)),
                   "predictions_agree": int((hdl_pred == ref.predictions).sum()),
                   "first_divergence": None if first is None else first.as_dict()},
        "latency": {"cycles": _stats(cycles), "cycles_per_step": float(cycles.mean() / model.T),
                    "time_to_decision_steps": _stats(ttd), "time_to_decision_cycles": _stats(ttd_cycles)},
        "throughput": {"sops_per_layer": sops.mean(0).tolist(),
                       "sop_per_cycle_per_core": (sops.sum(0) / np.maximum(busy.sum(0), 1)).tolist(),
                       "sop_per_cycle_network": float(sops.sum() / max(cycles.sum(), 1)),
                       "hdl_cycles_per_s": float(cycles.sum() / wall_s) if wall_s > 0 else None,
                       "wall_s": wall_s},
        "spikes": {"per_layer": spikes.mean(0)[:L - 1].tolist(),
                   "density": [float(spikes[:, l].mean() / (model.T * model.layers[l].n_out)) for l in range(L - 1)]},
        "memory": {"layers": mem,
                   "ring_bits_total": int(sum(r["ring_bits"] for r in mem)),
                   "scdq_bits_total": int(sum(r["scdq_total_bits"] for r in mem)),
                   "synapse_bits_total": int(sum(r["synapse_bits"] for r in mem)),
                   "dense_synapse_bits_total": int(sum(r["dense_synapse_bits"] for r in mem)),
                   "state_bits_total": int(sum(r["state_bits"] for r in mem))},
        "neurobench": neurobench(model, sops, spikes[:, :L - 1], hdl_pred, y),
        "energy": {"constants_pj": asdict(energy),
                   "per_inference_nj": energy.estimate(float(sops.sum(1).mean()), updates, float(cycles.mean())) / 1e3},
    }


def _fmt(x, pct=False):
    if x is None:
        return "-"
    if pct:
        return f"{100 * x:.2f} %"
    if isinstance(x, float):
        return f"{x:,.3g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def format_table(report: dict) -> str:
    runs = report["runs"]
    head = ["", *[f"{r['mode']}/{r['delay_unit']}" for r in runs]]
    rows = [
        ("accuracy float", [_fmt(r["accuracy"]["float"], True) for r in runs]),
        ("accuracy reference", [_fmt(r["accuracy"]["reference"], True) for r in runs]),
        ("accuracy HDL", [_fmt(r["accuracy"]["hdl"], True) for r in runs]),
        *([("accuracy ref, unlimited SCDQ", [_fmt(r["accuracy"].get("reference_unlimited_capacity"), True)
                                              for r in runs])]
          if any("reference_unlimited_capacity" in r["accuracy"] for r in runs) else []),
        ("bit-exact samples", [f"{r['parity']['bit_exact']}/{r['parity']['samples']}" for r in runs]),
        ("cycles/inference mean", [_fmt(r["latency"]["cycles"]["mean"]) for r in runs]),
        ("cycles/inference p50", [_fmt(r["latency"]["cycles"]["p50"]) for r in runs]),
        ("cycles/inference p99", [_fmt(r["latency"]["cycles"]["p99"]) for r in runs]),
        ("cycles/step", [_fmt(r["latency"]["cycles_per_step"]) for r in runs]),
        (f"latency mean, µs @ {report.get('clock_mhz', 100):g} MHz",
         [_fmt(r["latency"].get("microseconds", {}).get("mean")) for r in runs]),
        ("time to decision, steps", [_fmt(r["latency"]["time_to_decision_steps"]["mean"]) for r in runs]),
        ("time to decision, cycles", [_fmt(r["latency"]["time_to_decision_cycles"]["mean"]) for r in runs]),
        ("SOPs/inference per layer", [" ".join(f"{x:,.0f}" for x in r["throughput"]["sops_per_layer"]) for r in runs]),
        ("SOP/cycle per core", [" ".join(f"{x:.2f}" for x in r["throughput"]["sop_per_cycle_per_core"]) for r in runs]),
        ("HDL cycles simulated/s", [_fmt(r["throughput"]["hdl_cycles_per_s"]) for r in runs]),
        ("spikes/inference per layer", [" ".join(f"{x:,.1f}" for x in r["spikes"]["per_layer"]) for r in runs]),
        ("spike density per layer", [" ".join(f"{x:.4f}" for x in r["spikes"]["density"]) for r in runs]),
        ("SCDQ capacity C per layer", [" ".join(str(x["scdq_capacity"]) for x in r["memory"]["layers"]) for r in runs]),
        ("SCDQ dropped events per layer", [" ".join(str(x["dropped"]) for x in r["memory"]["layers"]) for r in runs]),
        ("delay memory ring (bits)", [_fmt(r["memory"]["ring_bits_total"]) for r in runs]),
        ("delay memory SCDQ (bits)", [_fmt(r["memory"]["scdq_bits_total"]) for r in runs]),
        ("synapse memory CSR (bits)", [_fmt(r["memory"]["synapse_bits_total"]) for r in runs]),
        ("neuron state (bits)", [_fmt(r["memory"]["state_bits_total"]) for r in runs]),
        ("energy/inference (nJ)", [_fmt(r["energy"]["per_inference_nj"]) for r in runs]),
    ]
    w0 = max(len(r[0]) for r in rows)
    ws = [max(len(head[i + 1]), *(len(r[1][i]) for r in rows)) for i in range(len(runs))]
    line = lambda a, b: f"{a:<{w0}}  " + "  ".join(f"{x:>{w}}" for x, w in zip(b, ws))
    out = [line(head[0], head[1:]), "-" * (w0 + 2 + sum(ws) + 2 * (len(ws) - 1))]
    out += [line(a, b) for a, b in rows]
    for r in runs:
        d = r["parity"]["first_divergence"]
        if d:
            out.append(f"FIRST DIVERGENCE ({r['mode']}/{r['delay_unit']}): sample {d['sample']}, layer {d['layer']}, "
                       f"step {d['step']}, neuron {d['neuron']}: {d['what']}")
        for row in r["memory"]["layers"]:
            if row["overflow"]:
                out.append(f"SCDQ OVERFLOW ({r['mode']}/{r['delay_unit']}) layer {row['layer']}: "
                           f"{row['dropped']} events dropped at capacity {row['build_capacity']}")
    e = runs[0]["energy"]["constants_pj"] if runs else {}
    out.append(f"energy constants (pJ): SOP {e.get('sop_pj')}, neuron update {e.get('neuron_update_pj')}, "
               f"cycle {e.get('cycle_pj')}")
    if report.get("extra_tests"):
        out.append(format_extra_tests(report["extra_tests"], report["runs"][0] if runs else None))
    return "\n".join(out)


def extra_test_entry(name: str, path: str | Path, sub: dict) -> dict:
    """One extra test set (a shifted split or an ``--extra-test`` file) from its one-run co-simulation report."""
    r = sub["runs"][0]
    return {"name": name, "file": str(path), "samples": sub["samples"], "mode": r["mode"],
            "delay_unit": r["delay_unit"], "accuracy": r["accuracy"], "parity": r["parity"]}


def format_extra_tests(extras: list[dict], main_run: dict | None = None) -> str:
    """Accuracy on each extra test set, next to the main test split's."""
    out = ["accuracy on other test sets (float / reference / HDL, bit-exact samples)"]
    rows = ([("test split", main_run["samples"],
              main_run["accuracy"], main_run["parity"])] if main_run else [])
    rows += [(x["name"], x["samples"], x["accuracy"], x["parity"]) for x in extras]
    w = max(len(r[0]) for r in rows)
    for name, n, acc, par in rows:
        out.append(f"  {name:<{w}}  {n:>5} samples  {_fmt(acc['float'], True):>8} / {_fmt(acc['reference'], True):>8}"
                   f" / {_fmt(acc['hdl'], True):>8}   {par['bit_exact']}/{par['samples']}")
    return "\n".join(out)


def save_json(report: dict, path: str | Path) -> Path:
    """Strict JSON (no NaN), written atomically: a reader never sees half a report."""
    from sw.errors import write_json

    return write_json(report, path)
