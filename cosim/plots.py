"""PNG plots of a co-simulation: spike raster, delay memory bars, cycles histogram."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def raster(X: np.ndarray, emissions: list[tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """Input raster and every hidden layer's HDL spikes for one sample."""
    n = 1 + len(emissions)
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.2 * n), sharex=True)
    axes = np.atleast_1d(axes)
    t, c = np.nonzero(X)
    axes[0].scatter(t, c, s=1, c="k")
    axes[0].set_ylabel("input ch")
    for l, (et, ej) in enumerate(emissions):
        axes[l + 1].scatter(et, ej, s=4, c=f"C{l}")
        axes[l + 1].set_ylabel(f"layer {l}")
    axes[-1].set_xlabel("step")
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def memory_bars(runs: list[dict], path: Path) -> Path:
    """Delay memory per layer: the ring buffer (the same for every run) against the
    SCDQ sized by each run's measured capacity."""
    layers0 = runs[0]["memory"]["layers"]
    n = 1 + len(runs)
    width = 0.8 / n
    x = np.arange(len(layers0))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(x, [l["ring_bits"] for l in layers0], width, label="ring buffer", color="0.5")
    for r_i, r in enumerate(runs):
        ax.bar(x + (r_i + 1) * width, [l["scdq_total_bits"] for l in r["memory"]["layers"]], width,
               label=f"SCDQ, {r['mode']}/{r['delay_unit']} traffic", color=f"C{r_i}")
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels([f"layer {l['layer']}" for l in layers0])
    ax.set_ylabel("delay memory (bits)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cycles_histogram(cycles: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for tag, c in cycles.items():
        ax.hist(c, bins=40, alpha=0.6, label=tag)
    ax.set_xlabel("cycles per inference")
    ax.set_ylabel("samples")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
