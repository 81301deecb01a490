"""Early exit in co-simulation: one HDL run per (margin, steps) setting, against the
reference with the same rule, giving the accuracy-vs-latency curve.

    python cosim/run.py --model M --early-exit 0,0 200,2 800,2 3000,3

Each setting ``m,s`` is the rule of :mod:`hw.reference` ("Early exit"): stop
after a run of ``s`` steps in which the top readout sum leads the runner-up by
at least ``m``; ``0,0`` is off. Per (mode, delay unit) and setting the report
gives accuracy (reference and HDL), bit-exact samples (spikes, readout and the
exit step), the exit step, cycles per inference (mean and p99), SOPs and the
energy estimate per inference; it prints a table and writes ``early_exit.png``.
"""
from __future__ import annotations

import sys

import numpy as np
from tqdm import tqdm

from hw.model_file import Model
from hw.reference import simulate

from cosim.parity import first_divergence
from cosim.report import EnergyModel


class EarlyExitError(ValueError):
    """A bad ``--early-exit`` value; the message names the flag."""


def parse_settings(values) -> list[tuple[int, int]]:
    """``["m,s", ...]`` -> ``[(m, s), ...]``; ``0,0`` (off) first when it is not given."""
    out = []
    for v in values:
        parts = str(v).split(",")
        try:
            m, s = (int(p) for p in parts)
        except ValueError:
            raise EarlyExitError(f"--early-exit takes MARGIN,STEPS pairs of ints (e.g. 500,2), got {v!r}") from None
        if m < 0 or s < 0:
            raise EarlyExitError(f"--early-exit: margin and steps must be >= 0, got {v!r}")
        out.append((m, s))
    if not out:
        raise EarlyExitError("--early-exit needs at least one MARGIN,STEPS pair")
    off = [p for p in out if p[0] == 0 or p[1] == 0]
    on = sorted({p for p in out if p not in off})
    return [(0, 0)] + on


def sweep(model: Model, X: np.ndarray, y: np.ndarray | None, backend, mode: str, unit: str,
          settings: list[tuple[int, int]], energy: EnergyModel, workers: int = 1, scdq_capacity=None,
          progress: bool = True) -> dict:
    """Run every setting on one build; returns ``{"mode", "delay_unit", "points": [...]}``."""
    points = []
    n_neurons = sum(L.n_out for L in model.layers)
    for m, s in settings:
        ee = None if m == 0 or s == 0 else (m, s)
        ref = simulate(model, X, mode, unit, scdq_capacity=scdq_capacity, early_exit=ee)
        bar = tqdm(total=len(X), desc=f"early exit {m},{s} {mode}/{unit}", disable=not progress, leave=False,
                   file=sys.stderr)
        hdl = backend.run(model, X, mode, workers=workers, progress=bar.update, early_exit=ee)
        bar.close()
        divs = [first_divergence(b, h, r) for b, (h, r) in enumerate(zip(hdl, ref.samples))]
        exit_ok = [(h.exit_step, h.early_exit) == (r.exit_step, r.early_exit) for h, r in zip(hdl, ref.samples)]
        hdl_pred = np.array([int(np.argmax(h.readout[h.exit_step])) for h in hdl])
        cycles = np.array([h.cycles for h in hdl], dtype=np.float64)
        sops = np.array([sum(c["sops"] for c in h.counters) for h in hdl], dtype=np.float64)
        exit_step = np.array([h.exit_step for h in hdl], dtype=np.float64)
        updates = n_neurons * (exit_step + 1)  # one leak/fire/readout op per neuron per step run
        first = next((d for d in divs if d is not None), None)
        points.append({
            "margin": m, "steps": s, "off": ee is None,
            "accuracy": {"reference": None if y is None else float((ref.predictions == y).mean()),
                         "hdl": None if y is None else float((hdl_pred == y).mean())},
            "parity": {"samples": len(hdl),
                       "bit_exact": int(sum(d is None and ok for d, ok in zip(divs, exit_ok))),
                       "exit_step_agree": int(sum(exit_ok)),
                       "first_divergence": None if first is None else first.as_dict()},
            "exited_early": float(np.mean([h.early_exit and h.exit_step < model.T - 1 for h in hdl])),
            "exit_step": {"mean": float(exit_step.mean()), "p99": float(np.percentile(exit_step, 99))},
            "cycles": {"mean": float(cycles.mean()), "p99": float(np.percentile(cycles, 99))},
            "sops_per_inference": float(sops.mean()),
            "energy_per_inference_nj": float(np.mean([energy.estimate(a, u, c) for a, u, c in
                                                       zip(sops, updates, cycles)])) / 1e3,
        })
    return {"mode": mode, "delay_unit": unit, "points": points}


def _pct(x):
    return "-" if x is None else f"{100 * x:.2f} %"


def format_table(runs: list[dict]) -> str:
    head = ("mode/unit", "m,s", "acc ref", "acc HDL", "bit-exact", "exited", "exit step", "cycles mean",
            "cycles p99", "SOPs/inf", "energy nJ")
    rows = [head]
    for r in runs:
        for p in r["points"]:
            rows.append((f"{r['mode']}/{r['delay_unit']}", "off" if p["off"] else f"{p['margin']},{p['steps']}",
                         _pct(p["accuracy"]["reference"]), _pct(p["accuracy"]["hdl"]),
                         f"{p['parity']['bit_exact']}/{p['parity']['samples']}", f"{100 * p['exited_early']:.0f} %",
                         f"{p['exit_step']['mean']:.1f}", f"{p['cycles']['mean']:,.0f}", f"{p['cycles']['p99']:,.0f}",
                         f"{p['sops_per_inference']:,.0f}", f"{p['energy_per_inference_nj']:,.3g}"))
    ws = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(f"{c:>{w}}" for c, w in zip(r, ws)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def plot(runs: list[dict], path) -> None:
    """Accuracy (HDL) against mean cycles per inference, one curve per (mode, unit), points labelled m,s."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for r in runs:
        pts = sorted(r["points"], key=lambda p: p["cycles"]["mean"])
        acc = [p["accuracy"]["hdl"] if p["accuracy"]["hdl"] is not None else np.nan for p in pts]
        cyc = [p["cycles"]["mean"] for p in pts]
        ax.plot(cyc, [100 * a for a in acc], "o-", label=f"{r['mode']}/{r['delay_unit']}")
        for p, c, a in zip(pts, cyc, acc):
            ax.annotate("off" if p["off"] else f"{p['margin']},{p['steps']}", (c, 100 * a), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    ax.set_xlabel("cycles per inference (mean, HDL)")
    ax.set_ylabel("accuracy (HDL), %")
    ax.set_title("early exit: accuracy vs latency (labels: margin,steps)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
