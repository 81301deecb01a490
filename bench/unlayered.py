"""Layered vs unlayered training, each evaluated under layered and async execution.

    python bench/unlayered.py [--tasks synthetic offline] [--epochs-synthetic 15] [--epochs-offline 12]
                              [--offline-dir DIR] [--offline-limit N] [--pool 20]
                              [--forward-group 1] [--out build/bench_unlayered]

For every task the same topology is trained four times with ``sw.train``
(layered; unlayered with the fifo, random and momentum schedulers), exported,
and every model file is run in ``hw.reference`` on the test split in layered
and in async (SCDQ) execution. One table: accuracy, spike density per hidden
layer, SOPs per inference and time to decision, side by side; plus JSON.

``--offline-dir``: a folder with ``shd_train.h5``/``shd_test.h5`` (e.g. made by
``python -m sw.data.generate --train 600 --test 200 --out DIR``); without it the
default offline set (``sw.data.generate.ensure_default_dataset``) is used.
Training runs on one thread: on a shared 2-core machine two intra-op threads
were measured 30x slower per batch than one.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import time

VARIANTS = (("layered", None), ("unlayered", "fifo"), ("unlayered", "random"), ("unlayered", "momentum"))


def task_overrides(task: str, a) -> dict:
    if task == "synthetic":
        return {"data": {"source": "synthetic", "T": 50},
                "model": {"hidden": [32], "max_delay": 30, "delay_stride": 2, "tau_ms": 10.0, "init_gain": 3.0},
                "train": {"epochs": a.epochs_synthetic, "batch_size": 32, "lr": 0.005, "threads": 1},
                "prune": {"max_levels": 8}}
    # no pruning here: on this small set (540 training words) pruning during 12 epochs kept it at chance
    return {"data": {"source": a.offline_dir or "offline", "T": 100, "pool": a.pool, "limit": a.offline_limit},
            "model": {"hidden": [32, 32], "max_delay": 15, "delay_stride": 3, "init_gain": 2.0},
            "train": {"epochs": a.epochs_offline, "batch_size": 32, "lr": 0.005, "threads": 1},
            "prune": {"method": "none"}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["synthetic", "offline"], choices=["synthetic", "offline"])
    ap.add_argument("--epochs-synthetic", type=int, default=15)
    ap.add_argument("--epochs-offline", type=int, default=12)
    ap.add_argument("--offline-dir", default=None, help="folder with shd_train.h5 / shd_test.h5")
    ap.add_argument("--offline-limit", type=int, default=None, help="samples per split (default: all)")
    ap.add_argument("--pool", type=int, default=20, help="SHD channel pooling (700 / pool inputs)")
    ap.add_argument("--forward-group", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="build/bench_unlayered")
    a = ap.parse_args(argv)

    from hw.model_file import load
    from sw.evaluate import evaluate_model
    from sw.config import load_config
    from sw.data.splits import load_data
    from sw.trainer import train

    out = Path(a.out)
    rows = []
    for task in a.tasks:
        for mode, sched in VARIANTS:
            name = mode if sched is None else f"unlayered-{sched}"
            over = task_overrides(task, a)
            over.update({"seed": a.seed, "mode": mode, "out": str(out / task / name)})
            if sched is not None:
                over["unlayered"] = {"scheduler": sched, "forward_group": a.forward_group}
            cfg = load_config(overrides=over)
            print(f"== {task}: training {name} ({cfg['train']['epochs']} epochs)", flush=True)
            t0 = time.time()
            summary = train(cfg, log=lambda s: print("   ", s, flush=True))
            train_s = time.time() - t0
            model = load(summary["model_path"])
            split = load_data(cfg)
            Xte, yte = split.Xte, split.yte
            for ex in ("layered", "async"):
                r = evaluate_model(model, Xte, yte, ex, "scdq", progress=True, label=f"{task}/{name}")
                r.pop("predictions")
                r.update({"task": task, "training": name, "train_seconds": train_s,
                          "float_acc": summary["float_acc"]})
                rows.append(r)
    table = format_table(rows)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"argv": sys.argv, "rows": rows}, indent=1))
    (out / "table.txt").write_text(table + "\n")
    print(f"wrote {out / 'results.json'} and {out / 'table.txt'}")
    return 0


def format_table(rows) -> str:
    head = (f"| task | training | execution | accuracy % | spike density / layer | SOP / inference "
            f"| time to decision (mean / median steps) | train s |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        dens = " ".join(f"{d:.4f}" for d in r["spike_density"])
        lines.append(f"| {r['task']} | {r['training']} | {r['execution']} | {100 * r['accuracy']:.2f} | {dens} "
                     f"| {r['sops_per_inference']:.0f} | {r['time_to_decision_mean']:.1f} / "
                     f"{r['time_to_decision_median']:.0f} | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
