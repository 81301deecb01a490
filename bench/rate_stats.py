"""What the shifted splits look like in the binned rasters the model sees, and how a model
copes with a time stretch of the test words (issue 11, ``docs/results.md`` section 4, round 4).

    python bench/rate_stats.py [--data offline] [--model build/model.safetensors ...]
                               [--factors 0.58 0.75 1.5 2.0] [--samples 200] [--out build/rate_stats]

Part 1 (data only): per split (train, test and the shifted splits), the rasters' events per
word, word length (bins up to the last event), events per bin of the word, contiguity (share
of events whose channel also fired in the bin before), the quiet lead-in (bins before the
first loud bin), the loud part (first to last loud bin) and the busiest bin's events.  A bin
is loud when it holds more than ``--loud`` events (30: the noise floor gives about 8 per bin).

Part 2 (each ``--model``): accuracy in ``hw.reference`` (layered) on the first ``--samples``
test words, as recorded and stretched by each factor with the bin resampling
(``sw.data.augment.time_stretch``) and the event resampling at ``r = 0`` (``event_stretch``,
seeded): how much of a shifted split's loss a uniform stretch of the same words explains.

Prints two tables and writes ``rate_stats.json`` and ``rate_stats.png`` (accuracy vs factor).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402


def split_stats(X: np.ndarray, loud: int) -> dict:
    """The part-1 statistics of bool rasters ``X [N, T, C]`` (means over words)."""
    ev = X.sum(axis=2)  # [N, T]
    n = ev.sum(axis=1)
    active = ev > 0
    length = np.where(active.any(1), X.shape[1] - np.argmax(active[:, ::-1], axis=1), 0)
    is_loud = ev > loud
    has = is_loud.any(1)
    on = np.argmax(is_loud, axis=1)
    off = X.shape[1] - np.argmax(is_loud[:, ::-1], axis=1)
    contiguity = float((X[:, 1:] & X[:, :-1]).sum() / max(int(X.sum()), 1))
    return {"words": int(len(X)), "events": float(n.mean()), "length": float(length.mean()),
            "events_per_bin": float(np.mean(n[length > 0] / length[length > 0])), "contiguity": contiguity,
            "lead_in": float(on[has].mean()), "loud_part": float((off - on)[has].mean()),
            "peak_bin": float(ev.max(axis=1).mean()), "truncated": float((length == X.shape[1]).mean())}


def stretch_accuracy(model, X, y, factors, seed: int = 0) -> dict:
    from hw.reference import simulate
    from sw.data import augment as A

    def acc(Z):
        return float((np.asarray(simulate(model, Z).predictions) == y).mean())

    out = {"1": acc(X)}
    rng = np.random.default_rng(seed)
    for f in tqdm(factors, desc="factors", leave=False):
        out[f"{f:g}"] = {"bins": acc(np.stack([A.time_stretch(x, f) for x in X])),
                         "events_r0": acc(np.stack([A.event_stretch(x, f, 0.0, rng) for x in X]))}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="offline", help="offline | a folder holding shd_train.h5 / shd_test.h5")
    ap.add_argument("--model", action="append", default=[], help="model file (repeat)")
    ap.add_argument("--factors", type=float, nargs="+", default=[0.58, 0.75, 1.5, 2.0])
    ap.add_argument("--samples", type=int, default=200, help="test words for part 2")
    ap.add_argument("--loud", type=int, default=30, help="events in a bin above which it is loud")
    ap.add_argument("--out", default="build/rate_stats")
    a = ap.parse_args(argv)
    if any(not f > 0 for f in a.factors):
        ap.error(f"--factors: must be positive, got {a.factors}")
    if a.samples < 1:
        ap.error(f"--samples: must be >= 1, got {a.samples}")

    from sw.data.shd import load_rasters
    from sw.evaluate import shifted_files
    from sw.paths import resolve_data_root

    root = resolve_data_root("data/offline_shd") if a.data == "offline" else Path(a.data)
    files = {"train": root / "shd_train.h5", "test": root / "shd_test.h5", **shifted_files(a.data)}
    for name, p in files.items():
        if not Path(p).is_file():
            ap.error(f"--data: {name} split {p} not found")
    res: dict = {"data": str(root), "loud": a.loud, "splits": {}, "models": {}}
    print("| split | words | events / word | length (bins) | events / bin | contiguity | quiet lead-in | loud part "
          "| busiest bin | truncated |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, p in files.items():
        X, _ = load_rasters(p)
        s = res["splits"][name] = split_stats(X, a.loud)
        print(f"| {name} | {s['words']} | {s['events']:.0f} | {s['length']:.1f} | {s['events_per_bin']:.1f} | "
              f"{s['contiguity']:.3f} | {s['lead_in']:.1f} | {s['loud_part']:.1f} | {s['peak_bin']:.0f} | "
              f"{100 * s['truncated']:.0f} % |")
    if a.model:
        from hw.model_file import load

        X, y = load_rasters(files["test"])
        X, y = X[:a.samples], y[:a.samples]
        print(f"\naccuracy % on the first {len(X)} test words, stretched (bin resampling / event resampling r = 0)")
        print("| model | as recorded | " + " | ".join(f"x{f:g}" for f in a.factors) + " |")
        print("|---|---|" + "---|" * len(a.factors))
        for m in a.model:
            if load(m).time_norm is not None:  # it stretches plain rasters; such a model normalizes events first
                ap.error(f"--model: '{m}' has a time_norm input front-end; this bench stretches plain rasters")
            r = res["models"][m] = stretch_accuracy(load(m), X, y, a.factors)
            print(f"| {m} | {100 * r['1']:.1f} | " + " | ".join(
                f"{100 * r[f'{f:g}']['bins']:.1f} / {100 * r[f'{f:g}']['events_r0']:.1f}" for f in a.factors) + " |")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rate_stats.json").write_text(json.dumps(res, indent=1))
    if a.model:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for m, r in res["models"].items():
            fs = [1.0] + list(a.factors)
            order = np.argsort(fs)
            acc = [100 * r["1"]] + [100 * r[f"{f:g}"]["bins"] for f in a.factors]
            ax.plot(np.array(fs)[order], np.array(acc)[order], "o-", label=Path(m).parent.name or m)
        ax.set_xscale("log")
        ax.set_xlabel("stretch factor of the test words (bin resampling)")
        ax.set_ylabel("accuracy %")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "rate_stats.png", dpi=120)
    print(f"wrote {out / 'rate_stats.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
