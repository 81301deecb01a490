"""Generalization table: the default model trained with and without each
augmentation, with and without delays, over several seeds, evaluated on the test
split and the shifted test splits (slow, fast, noisy speech).

    python bench/generalize.py [--data DIR|offline] [--limit N] [--epochs N] [--seeds 0 1 2]
                               [--variants all none no-stretch ...] [--jobs 1] [--out build/generalize]
                               [--set FIELD=JSON ...]

Every (variant, delays or not, seed) is one ``python -m sw.trainer`` process (the library behind ``sw/train.py``; default
config, 1 torch thread, ``nice``), ``--jobs`` at a time; a run whose
``train_summary.json`` exists is reused, so the script can be stopped and
restarted. Every exported model is then run in ``hw.reference`` (layered) with
``sw.evaluate`` on each split. Output: a Markdown table (mean over seeds, each
seed's value in brackets, delay gain over ``--no-delays`` per split), the JSON of
every model and split (with each training's CPU seconds, from ``/usr/bin/time``
when it is installed), and a PNG of accuracy per split. ``--limit N`` trains on
the first N words of the training file (``data.limit``; the learning curve of
``bench/learning_curve.py``).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import subprocess
import time

import numpy as np
from tqdm import tqdm

# variant name -> value of sw.trainer --augment
VARIANTS = {"all": "all", "none": "none", "no-stretch": "shift,jitter,dropout", "no-shift": "stretch,jitter,dropout",
            "no-jitter": "stretch,shift,dropout", "no-dropout": "stretch,shift,jitter"}
SPLITS = ("test", "slow", "fast", "noisy")


def run_dir(out: Path, variant: str, delays: bool, seed: int) -> Path:
    return out / f"{variant}{'' if delays else '-nodelay'}" / f"seed{seed}"


TIME = Path("/usr/bin/time")  # GNU time: the training's CPU seconds, if installed


def train_cmd(a, variant: str, delays: bool, seed: int) -> list[str]:
    timed = ([str(TIME), "-f", "%U %S %e", "-o", str(run_dir(Path(a.out), variant, delays, seed) / "time.txt")]
             if TIME.is_file() else [])
    cmd = timed + ["nice", "-n", "10", sys.executable, "-m", "sw.trainer", "--data", a.data, "--seed", str(seed),
           "--augment", VARIANTS[variant], "--out", str(run_dir(Path(a.out), variant, delays, seed)), "--no-progress",
           "--threads", "1"]  # as the docstring says; bits depend on train.shards only, not on threads
    if a.epochs:
        cmd += ["--epochs", str(a.epochs)]
    if a.limit:
        cmd += ["--limit", str(a.limit)]
    for item in a.set:  # config overrides for every run (sw.trainer --set; they win over the flags above)
        cmd += ["--set", item]
    if not delays:
        cmd.append("--no-delays")
    return cmd


def train_all(a, runs) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    todo = [r for r in runs if not (run_dir(Path(a.out), *r) / "train_summary.json").is_file()]
    bar = tqdm(total=len(todo), desc="trainings", unit="run")
    running: list[tuple[subprocess.Popen, tuple]] = []
    while todo or running:
        while todo and len(running) < a.jobs:
            r = todo.pop(0)
            d = run_dir(Path(a.out), *r)
            d.mkdir(parents=True, exist_ok=True)
            log = open(d / "train.log", "w")
            cmd = train_cmd(a, *r) + (["--resume"] if (d / "checkpoints" / "last.pt").is_file() else [])
            running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), r))
        time.sleep(2)
        for p, r in list(running):
            if p.poll() is not None:
                running.remove((p, r))
                bar.update()
                if p.returncode:
                    print(f"run {r} failed (exit {p.returncode}); see {run_dir(Path(a.out), *r) / 'train.log'}",
                          file=sys.stderr)
    bar.close()


def evaluate_all(a, runs) -> list[dict]:
    from sw.evaluate import run as eval_run

    out = []
    for r in tqdm(runs, desc="evaluate", unit="model"):
        m = run_dir(Path(a.out), *r) / "model.safetensors"
        if not m.is_file():
            continue
        rows = eval_run([str(m)], a.data, progress=False)
        acc = {row["split"]: row["accuracy"] for row in rows}
        out.append({"variant": r[0], "delays": r[1], "seed": r[2], "model": str(m), "accuracy": acc,
                    "samples": {row["split"]: row["samples"] for row in rows}, **train_cost(m.parent)})
    return out


def train_cost(d: Path) -> dict:
    """Training-set size, epochs and (if timed) CPU and wall seconds of the run in ``d``."""
    out = {}
    summary = d / "train_summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        cfg = s.get("config") or {}
        out["limit"] = (cfg.get("data") or {}).get("limit")
        out["epochs"] = (cfg.get("train") or {}).get("epochs")
        out["seconds_training"] = s.get("seconds_training")
    t = d / "time.txt"
    if t.is_file():
        try:
            user, sys_, wall = (float(v) for v in t.read_text().split()[-3:])
            out["train_cpu_s"], out["train_wall_s"] = user + sys_, wall
        except ValueError:
            pass  # an interrupted run leaves a note instead of the figures
    return out


def table(results: list[dict], epochs) -> str:
    def cell(vals):
        if not vals:
            return "-"
        return f"{100 * np.mean(vals):.2f} ({', '.join(f'{100 * v:.1f}' for v in vals)})"

    lines = ["| augmentation | delays | seeds | " + " | ".join(f"{s} %" for s in SPLITS)
             + " | " + " | ".join(f"delay gain {s}" for s in SPLITS) + " |",
             "|---|---|---|" + "---|" * (2 * len(SPLITS))]
    for v in VARIANTS:
        for delays in (True, False):
            rs = [r for r in results if r["variant"] == v and r["delays"] == delays]
            if not rs:
                continue
            cells = [cell([r["accuracy"].get(s) for r in rs if s in r["accuracy"]]) for s in SPLITS]
            gains = []
            for s in SPLITS:
                nd = [r["accuracy"][s] for r in results if r["variant"] == v and not r["delays"] and s in r["accuracy"]]
                d = [r["accuracy"][s] for r in rs if s in r["accuracy"]]
                gains.append(f"{100 * (np.mean(d) - np.mean(nd)):+.2f}" if delays and nd and d else "")
            seeds = ",".join(str(r["seed"]) for r in rs)
            lines.append(f"| {v} | {'yes' if delays else 'no'} | {seeds} | " + " | ".join(cells) + " | "
                         + " | ".join(gains) + " |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(v, d) for v in VARIANTS for d in (True, False)
              if any(r["variant"] == v and r["delays"] == d for r in results)]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(groups), 3.6))
    w = 0.8 / len(SPLITS)
    for k, s in enumerate(SPLITS):
        means = [100 * np.mean([r["accuracy"].get(s, np.nan) for r in results if (r["variant"], r["delays"]) == g])
                 for g in groups]
        ax.bar(np.arange(len(groups)) + k * w, means, w, label=s)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - w / 2,
                  [f"{v}\n{'delays' if d else 'no delays'}" for v, d in groups], fontsize=7)
    ax.set_ylabel("accuracy % (mean of seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="offline", help="offline (default set) or a folder made by sw.data.generate")
    ap.add_argument("--epochs", type=int, help="training epochs (default: the config's)")
    ap.add_argument("--limit", type=int, help="train on the first N words of the training file (data.limit)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--no-delay-variants", nargs="*", default=["all", "none"], choices=list(VARIANTS),
                    help="variants also trained with --no-delays (for the delay gain)")
    ap.add_argument("--ablation-seeds", type=int, nargs="+", default=None,
                    help="seeds for the variants other than all/none (default: --seeds)")
    ap.add_argument("--jobs", type=int, default=1, help="training processes at once (1 on a shared machine)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                    help="config override passed to every sw.trainer run, e.g. --set train.lr=0.01")
    ap.add_argument("--out", default="build/generalize")
    ap.add_argument("--skip-training", action="store_true", help="only evaluate the runs that exist")
    a = ap.parse_args(argv)
    runs = []
    for v in a.variants:
        seeds = a.seeds if v in ("all", "none") or a.ablation_seeds is None else a.ablation_seeds
        runs += [(v, True, s) for s in seeds]
        if v in a.no_delay_variants:
            runs += [(v, False, s) for s in seeds]
    runs.sort(key=lambda r: (r[0] not in ("all", "none"), r[2], not r[1], r[0]))  # all/none for every seed first
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if not a.skip_training:
        train_all(a, runs)
    results = evaluate_all(a, runs)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    md = table(results, a.epochs)
    (out / "results.md").write_text(md + "\n")
    plot(results, out / "accuracy.png")
    print(md)
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'accuracy.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
