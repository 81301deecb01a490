"""Accuracy against speaking rate, on the offline corpus's test and shifted splits.

The generator's draws are deterministic, so each word's speaking rate follows from
the set's manifest (``sw.data.generate.word_rates``), with no audio. For each model
and split the words are binned by rate and each bin's accuracy (``hw.reference``,
layered) is reported: a Markdown table (each model's value and their mean), the
JSON of the rows and a PNG of accuracy against rate with the training range shaded.
It shows whether a shifted split's loss is a cliff at the edge of the training
range or the continuation of a slope inside it (docs/results.md section 4, round 8).

    python bench/rate_accuracy.py --model build/model.safetensors [--model ...] [--data offline] [--out build/rate_accuracy]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json

import numpy as np
from tqdm import tqdm

DEFAULT_EDGES = (50, 57, 65, 72, 95, 115, 135, 155, 180, 216, 240, 270, 300)


def data_root(data: str) -> Path:
    """The folder of the set: ``offline`` (the default set, generated if missing) or a folder."""
    if data == "offline":
        from sw.data.generate import ensure_default_dataset

        return ensure_default_dataset()[1].parent
    root = Path(data)
    if not (root / "manifest.json").is_file():
        raise SystemExit(f"error: --data: '{root}' holds no manifest.json (a set made by sw.data.generate)")
    return root


def split_file(root: Path, split: str) -> Path:
    from sw.data.generate import shifted_path

    return root / "shd_test.h5" if split == "test" else shifted_path(root, split)


def rate_rows(models: list[str], root: Path, splits, edges, samples: int | None = None,
              progress: bool = True) -> list[dict]:
    """One row per (split, rate bin) holding words: ``n``, each model's accuracy and their mean."""
    from hw.model_file import load
    from sw.data.generate import word_rates
    from sw.evaluate import evaluate_model, load_split

    edges = np.asarray(edges, dtype=float)
    hits: dict[str, list[np.ndarray]] = {}
    rates: dict[str, np.ndarray] = {}
    for path in tqdm(models, desc="models", unit="model", disable=not progress, file=sys.stderr):
        model = load(path)
        for split in splits:
            f = split_file(root, split)
            if not f.is_file():
                raise SystemExit(f"error: --splits: '{f}' does not exist")
            X, y = load_split(f, model, str(path), samples, flag=f"split '{split}'")
            r = evaluate_model(model, X, y, progress=False, label=str(path))
            hits.setdefault(split, []).append(np.asarray(r["predictions"]) == y)
            if split not in rates:  # the same for every model
                rates[split] = word_rates(root, split, len(y))
    rows = []
    for split in splits:
        b = np.digitize(rates[split], edges) - 1  # bin k: edges[k] <= rate < edges[k + 1]
        for k in range(len(edges) - 1):
            sel = b == k
            if not sel.any():
                continue
            acc = [float(h[sel].mean()) for h in hits[split]]
            rows.append({"split": split, "rate_lo": float(edges[k]), "rate_hi": float(edges[k + 1]),
                         "n": int(sel.sum()), "mean_rate": float(rates[split][sel].mean()),
                         "accuracy": acc, "mean": float(np.mean(acc))})
        outside = int(((b < 0) | (b >= len(edges) - 1)).sum())
        if outside:
            print(f"note: {outside} {split} words lie outside --edges {edges[0]:g}..{edges[-1]:g} and are not shown",
                  file=sys.stderr)
    return rows


def format_rows(rows: list[dict], models: list[str]) -> str:
    names = [Path(m).parent.name or m for m in models]
    head = "| split | words/min | words | " + " | ".join(names) + " | mean |"
    out = [head, "|" + "---|" * (4 + len(names))]
    for r in rows:
        out.append(f"| {r['split']} | {r['rate_lo']:g}–{r['rate_hi']:g} | {r['n']} | "
                   + " | ".join(f"{100 * a:.1f}" for a in r["accuracy"]) + f" | {100 * r['mean']:.1f} |")
    return "\n".join(out)


def training_range(root: Path) -> tuple[tuple[float, float], tuple[float, float]]:
    """The set's drawn training rates and the rates heard after its tempo change (the same without one)."""
    from sw.data.generate import GenParams

    p = GenParams.from_dict(json.loads((root / "manifest.json").read_text())["params"]["generator"])
    return p.rate_range(), p.heard_train_range()


def plot(rows: list[dict], n_models: int, train: tuple[tuple[float, float], tuple[float, float]],
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    drawn, heard = train
    if heard != drawn:  # a set made with train_tempo: some training words were played faster or slower
        ax.axvspan(*heard, color="0.96", label="training rates after the tempo change")
    ax.axvspan(*drawn, color="0.9", label="training rates")
    for split in dict.fromkeys(r["split"] for r in rows):
        rs = [r for r in rows if r["split"] == split]
        x = [r["mean_rate"] for r in rs]
        line, = ax.plot(x, [100 * r["mean"] for r in rs], "o-", label=f"{split} (mean of {n_models})")
        for m in range(n_models if n_models > 1 else 0):
            ax.plot(x, [100 * r["accuracy"][m] for r in rs], ".", color=line.get_color(), alpha=0.4)
    ax.set_xlabel("speaking rate (words/min, bin mean)")
    ax.set_ylabel("accuracy %")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, help="model file (repeat, e.g. one per seed)")
    ap.add_argument("--data", default="offline", help="offline (the default set) or a folder made by sw.data.generate")
    ap.add_argument("--splits", nargs="+", default=["test", "slow", "fast"],
                    help="test and/or shifted split names (default: test slow fast)")
    ap.add_argument("--edges", nargs="+", type=float, default=list(DEFAULT_EDGES),
                    help="rate bin edges in words/min, increasing")
    ap.add_argument("--samples", type=int, help="first N words of each split only")
    ap.add_argument("--out", default="build/rate_accuracy")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    edges = np.asarray(a.edges)
    if edges.size < 2 or np.any(np.diff(edges) <= 0):
        ap.error(f"--edges: need at least two increasing values, got {a.edges}")
    from sw.data.generate import SHIFTS

    bad = [s for s in a.splits if s != "test" and s not in SHIFTS]
    if bad:
        ap.error(f"--splits: unknown split {bad[0]!r} (known: test, {', '.join(SHIFTS)})")
    from sw.errors import check_out_dir

    out = Path(a.out)
    check_out_dir(out, "--out")  # creates it
    root = data_root(a.data)
    rows = rate_rows(a.model, root, a.splits, edges, a.samples, not a.no_progress)
    text = format_rows(rows, a.model)
    print(text)
    (out / "rate_accuracy.md").write_text(text + "\n")
    (out / "rate_accuracy.json").write_text(json.dumps({"models": a.model, "data": str(root), "rows": rows}, indent=1))
    plot(rows, len(a.model), training_range(root), out / "rate_accuracy.png")
    print(f"wrote {out / 'rate_accuracy.md'}, {out / 'rate_accuracy.json'}, {out / 'rate_accuracy.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
