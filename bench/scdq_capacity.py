"""Accuracy vs SCDQ capacity for one model, on the reference (the contract's drop rule).

    python bench/scdq_capacity.py --model build/model.safetensors [--data offline] [--samples 400]
        [--fractions 1 0.75 0.5 0.25 0.1] [--mode layered async] [--out build/scdq_capacity]

For each mode, the unlimited peak occupancy per layer is measured on the data,
then every capacity ``C_l = round(fraction * peak_l)`` is run through
``hw.reference.simulate(..., scdq_capacity=...)``, which drops exactly the
events a chip with that queue drops (tests/test_scdq_capacity.py and the fuzz
check the HDL against it). Prints a table (accuracy, agreement with the
unlimited run, dropped events per inference and layer, SCDQ bits, SOPs) and
writes ``scdq_capacity.json`` and ``scdq_capacity.png`` (accuracy vs SCDQ bits).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # first: bench/cosim.py must not shadow the cosim package

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from hw import reference as ref  # noqa: E402
from hw.model_file import ModelFileError, load  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="build/model.safetensors")
    ap.add_argument("--data", default="offline")
    ap.add_argument("--samples", default="400", help="N or 'all'")
    ap.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.25, 0.1])
    ap.add_argument("--mode", nargs="+", default=["layered", "async"], choices=ref.MODES)
    ap.add_argument("--out", default="build/scdq_capacity")
    a = ap.parse_args(argv)
    if any(not 0 < f <= 1 for f in a.fractions):
        raise SystemExit(f"scdq_capacity: --fractions must be in (0, 1], got {a.fractions}")
    try:
        samples = None if a.samples == "all" else int(a.samples)
    except ValueError:
        raise SystemExit(f"scdq_capacity: --samples must be an int or 'all', got {a.samples!r}")
    try:
        model = load(a.model)
    except ModelFileError as e:
        raise SystemExit(f"scdq_capacity: {e}")
    from sw.evaluate import load_eval_data
    X, y = load_eval_data(a.data, model, a.model, samples=samples)
    rows = []
    with tqdm(total=len(a.mode) * (len(a.fractions) + 1), desc="reference runs", file=sys.stderr) as bar:
        for mode in a.mode:
            full = ref.simulate(model, X, mode)
            bar.update(1)
            peak = full.occupancy.max(axis=(0, 2))
            for f in a.fractions:
                caps = [max(1, int(round(p * f))) for p in peak]
                r = ref.simulate(model, X, mode, scdq_capacity=caps)
                bar.update(1)
                rows.append({
                    "mode": mode, "fraction": f, "capacity": caps,
                    "accuracy": float((r.predictions == y).mean()),
                    "agree_with_unlimited": float((r.predictions == full.predictions).mean()),
                    "dropped_per_inference": r.dropped.mean(0).round(2).tolist(),
                    "scdq_bits": int(sum(ref.scdq_bits(L.n_in, L.max_delay, c) for L, c in zip(model.layers, caps))),
                    "sops_per_inference": float(r.sops.sum(1).mean()),
                })
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scdq_capacity.json").write_text(json.dumps(
        {"model": a.model, "data": a.data, "samples": int(len(X)), "rows": rows}, indent=1))
    head = ("mode", "C / peak", "capacity per layer", "SCDQ bits", "accuracy", "agree", "dropped/inf per layer",
            "SOPs/inf")
    table = [head] + [(r["mode"], f"{100 * r['fraction']:.0f} %", " ".join(map(str, r["capacity"])),
                       f"{r['scdq_bits']:,}", f"{100 * r['accuracy']:.2f} %", f"{100 * r['agree_with_unlimited']:.1f} %",
                       " ".join(f"{d:,.1f}" for d in r["dropped_per_inference"]), f"{r['sops_per_inference']:,.0f}")
                      for r in rows]
    ws = [max(len(t[i]) for t in table) for i in range(len(head))]
    print(f"accuracy vs SCDQ capacity: {a.model} on {len(X)} samples of '{a.data}' (reference)")
    for i, t in enumerate(table):
        print("  ".join(f"{c:>{w}}" for c, w in zip(t, ws)))
        if i == 0:
            print("-" * (sum(ws) + 2 * (len(ws) - 1)))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for mode in a.mode:
        rs = [r for r in rows if r["mode"] == mode]
        ax.plot([r["scdq_bits"] for r in rs], [100 * r["accuracy"] for r in rs], "o-", label=mode)
        for r in rs:
            ax.annotate(f"{100 * r['fraction']:.0f}%", (r["scdq_bits"], 100 * r["accuracy"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    ax.set_xlabel("SCDQ memory, all layers (bits)")
    ax.set_ylabel("accuracy (reference), %")
    ax.set_title("accuracy vs SCDQ capacity (labels: C / unlimited peak)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "scdq_capacity.png", dpi=120)
    print(f"wrote {out / 'scdq_capacity.json'}, {out / 'scdq_capacity.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
