"""Learning curve: accuracy per split against the number of training words.

Collects the ``results.json`` of several ``bench/generalize.py`` runs (each one
training-set size, ``--limit N``, on one corpus; see docs/results.md section 4,
round 5) and writes a Markdown table (words, epochs, seeds, training CPU
seconds, the last epoch's training and validation accuracy, each split's
accuracy: mean over seeds with each seed's value), the JSON of the rows and a PNG of accuracy against training words per split.

    python bench/learning_curve.py build/lc/n600 build/lc/n1200 ... [--out build/lc]

Only the ``all`` augmentation variant is shown (the default recipe); runs with
``--no-delays`` get their own rows and the plot a dashed line.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json

import numpy as np

SPLITS = ("test", "slow", "fast", "noisy")


def summary(run: dict) -> dict:
    return json.loads((Path(run["model"]).parent / "train_summary.json").read_text())


def train_words(run: dict) -> int:
    """Training words the run used: its ``data.limit``, or the size of its training file."""
    import h5py

    from sw.data.splits import shd_files
    from sw.paths import resolve_data_root

    d = summary(run)["config"]["data"]
    src = resolve_data_root(d["root"]) if d["source"] == "offline" else Path(d["source"])
    files = shd_files(src)
    if files is None:
        raise SystemExit(f"error: {src}: no shd_train.h5 / shd_test.h5 (the data of {run['model']})")
    with h5py.File(files[0]) as f:
        n = len(f["labels"])
    return n if d["limit"] is None else min(int(d["limit"]), n)


def collect(dirs: list[Path]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for d in dirs:
        path = d / "results.json" if d.is_dir() else d
        if not path.is_file():
            raise SystemExit(f"error: {path}: no results.json (run bench/generalize.py --out {d} first)")
        for r in json.loads(path.read_text()):
            if r["variant"] != "all":
                continue
            key = (train_words(r), r.get("epochs"), r["delays"])
            groups.setdefault(key, []).append(r)
    rows = []
    for (n, epochs, delays), rs in sorted(groups.items(), key=lambda kv: (not kv[0][2], kv[0][0], -(kv[0][1] or 0))):
        rs = sorted(rs, key=lambda r: r["seed"])
        cpu = [r["train_cpu_s"] for r in rs if r.get("train_cpu_s") is not None]
        last = [summary(r)["history"][-1] for r in rs]  # the last epoch: fit on (half-augmented) batches vs held out
        rows.append({"words": n, "epochs": epochs, "delays": delays, "seeds": [r["seed"] for r in rs],
                     "train_cpu_s": float(np.mean(cpu)) if cpu else None,
                     "train_acc": float(np.mean([h["train_acc"] for h in last])),
                     "val_acc": float(np.mean([h["val_acc"] for h in last])),
                     "accuracy": {s: [r["accuracy"][s] for r in rs if s in r["accuracy"]] for s in SPLITS},
                     "dirs": sorted({str(Path(r["model"]).parents[2]) for r in rs})})
    return rows


def table(rows: list[dict]) -> str:
    def cell(v):
        if not v:
            return "-"
        return f"{100 * np.mean(v):.2f}" + (f" ({', '.join(f'{100 * x:.1f}' for x in v)})" if len(v) > 1 else "")

    out = ["| training words | epochs | delays | seeds | train CPU s | last-epoch train / val acc | "
           + " | ".join(f"{s} %" for s in SPLITS) + " |",
           "|---|---|---|---|---|---|" + "---|" * len(SPLITS)]
    for r in rows:
        cpu = "-" if r["train_cpu_s"] is None else f"{r['train_cpu_s']:.0f}"
        out.append(f"| {r['words']} | {r['epochs']} | {'yes' if r['delays'] else 'no'} | "
                   f"{','.join(map(str, r['seeds']))} | {cpu} | {r['train_acc']:.3f} / {r['val_acc']:.3f} | "
                   + " | ".join(cell(r["accuracy"][s]) for s in SPLITS) + " |")
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    top = max((r["epochs"] or 0) for r in rows)  # the curve: the most epochs at each size
    for k, s in enumerate(SPLITS):
        color = f"C{k}"
        for delays, style in ((True, "-"), (False, "--")):
            pts = sorted((r["words"], 100 * np.mean(r["accuracy"][s])) for r in rows
                         if r["delays"] == delays and r["epochs"] == top and r["accuracy"][s])
            if pts:
                ax.plot(*zip(*pts), style, marker="o" if delays else "v", color=color,
                        label=s if delays else f"{s} (no delays)")
            for r in rows:  # each seed's value where there are several
                if r["delays"] == delays and r["epochs"] == top and len(r["accuracy"][s]) > 1:
                    ax.plot([r["words"]] * len(r["accuracy"][s]), [100 * v for v in r["accuracy"][s]], "x",
                            color=color, ms=4)
            for r in rows:  # other epoch counts (equal-compute runs): hollow markers, annotated
                if r["delays"] == delays and r["epochs"] != top and r["accuracy"][s]:
                    y = 100 * np.mean(r["accuracy"][s])
                    ax.plot(r["words"], y, marker="s", mfc="none", color=color, ls="none")
                    ax.annotate(f"{r['epochs']} ep", (r["words"], y), fontsize=6, xytext=(4, -3),
                                textcoords="offset points")
    ax.set_xlabel("training words (first N of the corpus; 10 % of them held out for validation)")
    ax.set_ylabel("accuracy % (mean of seeds)")
    ax.set_title(f"learning curve, {top} epochs (x: each seed; squares: other epoch counts)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="bench/generalize.py output folders (or their results.json)")
    ap.add_argument("--out", type=Path, default=Path("build/learning_curve"))
    a = ap.parse_args(argv)
    rows = collect(a.runs)
    a.out.mkdir(parents=True, exist_ok=True)
    md = table(rows)
    (a.out / "learning_curve.json").write_text(json.dumps(rows, indent=1))
    (a.out / "learning_curve.md").write_text(md + "\n")
    plot(rows, a.out / "learning_curve.png")
    print(md)
    print(f"wrote {a.out / 'learning_curve.json'}, {a.out / 'learning_curve.md'}, {a.out / 'learning_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
