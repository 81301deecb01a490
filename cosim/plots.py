"""PNG plots of a co-simulation: one sample's raster with its readout, memory bars, latency ECDF."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DEFAULT_CLOCK_MHZ = 100.0


def raster(X: np.ndarray, emissions: list[tuple[np.ndarray, np.ndarray]], path: Path, title: str,
           label: int | None = None, readout: np.ndarray | None = None) -> Path:
    """Input raster, every hidden layer's HDL spikes and (``readout`` ``[T, n_classes]``)
    the running readout sums of one sample; the title gives the true label and the prediction."""
    n = 1 + len(emissions) + (readout is not None)
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.1 * n), sharex=True)
    axes = np.atleast_1d(axes)
    t, c = np.nonzero(X)
    axes[0].scatter(t, c, s=1, c="k")
    axes[0].set_ylabel("input ch")
    for l, (et, ej) in enumerate(emissions):
        axes[l + 1].scatter(et, ej, s=4, c=f"C{l}")
        axes[l + 1].set_ylabel(f"layer {l}")
    head = title
    if readout is not None:
        R = np.asarray(readout)
        pred = int(np.argmax(R[-1]))
        ax = axes[-1]
        for j in range(R.shape[1]):
            strong = j in (pred, label)
            ax.plot(np.arange(len(R)), R[:, j], lw=1.8 if strong else 0.6, alpha=1.0 if strong else 0.35,
                    color="C3" if j == pred else "C2" if j == label else "0.5",
                    label=("predicted " if j == pred else "") + ("true " if j == label else "") + f"class {j}"
                    if strong else None)
        ax.set_ylabel("readout R")
        ax.legend(fontsize=7, loc="upper left")
        verdict = "" if label is None else (" (correct)" if pred == label else " (wrong)")
        head += f" - true label {label if label is not None else '?'}, predicted {pred}{verdict}"
    axes[-1].set_xlabel("step")
    axes[0].set_title(head, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _kbit(v: float) -> str:
    return f"{v / 1e3:.3g} kb" if v >= 1e3 else f"{v:.0f} b"


def memory_bars(runs: list[dict], path: Path) -> Path:
    """Per layer: delay memory (ring buffer against the SCDQ sized by each run's
    traffic) beside the synapse memory (CSR and dense) and the neuron state, values on the bars."""
    layers0 = runs[0]["memory"]["layers"]
    x = np.arange(len(layers0))
    fig, (ax_d, ax_s) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    groups = [("ring buffer", [l["ring_bits"] for l in layers0], "0.5")]
    groups += [(f"SCDQ, {r['mode']}/{r['delay_unit']} traffic", [l["scdq_total_bits"] for l in r["memory"]["layers"]],
                f"C{i}") for i, r in enumerate(runs)]
    syn = [("synapses, CSR", [l["synapse_bits"] for l in layers0], "C4"),
           ("synapses, dense", [l["dense_synapse_bits"] for l in layers0], "C5"),
           ("neuron state", [l["state_bits"] for l in layers0], "C6")]
    for ax, gs, ttl in ((ax_d, groups, "delay memory"), (ax_s, syn, "synapse and state memory")):
        w = 0.8 / len(gs)
        for g, (name, vals, col) in enumerate(gs):
            vals = np.maximum(np.asarray(vals, dtype=float), 0.5)  # a 0-bit SCDQ (no delays) still shows
            bars = ax.bar(x + g * w, vals, w, label=name, color=col)
            ax.bar_label(bars, labels=[_kbit(v) if v >= 1 else "0" for v in vals], fontsize=6, rotation=90,
                         padding=2)
        ax.set_xticks(x + 0.4 - w / 2)
        ax.set_xticklabels([f"layer {l['layer']}" for l in layers0])
        ax.set_yscale("log")
        ax.set_title(ttl, fontsize=9)
        ax.legend(fontsize=7, loc="upper right", ncol=2)
    ax_d.set_ylabel("bits (log scale)")
    lo, hi = ax_d.get_ylim()
    ax_d.set_ylim(lo, hi * 300)  # room for the value labels and the legends
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cycles_histogram(cycles: dict[str, np.ndarray], path: Path, clock_mhz: float = DEFAULT_CLOCK_MHZ) -> Path:
    """ECDF of cycles per inference, one line per run on shared axes, with the latency in µs
    at ``clock_mhz`` on the top axis and each run's median marked."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for i, (tag, c) in enumerate(cycles.items()):
        c = np.sort(np.asarray(c, dtype=float))
        if not c.size:
            continue
        ax.step(c, np.arange(1, c.size + 1) / c.size, where="post", color=f"C{i}",
                label=f"{tag}: median {np.median(c):,.0f} cycles = {np.median(c) / clock_mhz:,.1f} µs")
        ax.axvline(np.median(c), color=f"C{i}", lw=0.6, ls=":")
    ax.set_xlabel("cycles per inference")
    ax.set_ylabel("fraction of samples (ECDF)")
    ax.set_ylim(0, 1.02)
    top = ax.secondary_xaxis("top", functions=(lambda v: v / clock_mhz, lambda us: us * clock_mhz))
    top.set_xlabel(f"latency (µs at {clock_mhz:g} MHz)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
