"""Training speed: a layered epoch vs an unlayered epoch (each scheduler) on the same data, in one run.

    python bench/unlayered.py [--data offline|synthetic|<SHD dir>] [--samples N] [--batch 32]
                              [--epochs 2] [--schedulers fifo random momentum] [--forward-group 1]
                              [--states start end] [--threads 1] [--shards N] [--oracle]
                              [--set section.field=JSON ...]
                              [--json build/bench_unlayered.json] [--png build/bench_unlayered.png]

The default model (``sw/configs/default.json`` with ``--set`` overrides, e.g.
``--set model.delay_mode="fixed" --set model.max_delay=60 --set
model.delay_stride=2`` for the earlier 31-level pruned recipe) is built and
calibrated once, as ``sw.trainer`` does; every variant then trains from those
same weights, on the same samples in the same order, with Adam, one epoch per
turn:

* ``layered``: the delay network (fused LIF, event-driven synapses);
* ``unlayered-<scheduler>``: the same network through
  ``sw.models.unlayered.UnlayeredNet`` (asynchronous event order, forward
  groups of ``--forward-group`` events; compiled spiking layers).

Two weight states, because an unlayered layer's cost follows its events:
``start`` is the start of training (fixed grid: every tap live; learnable
delays: the widest Gaussian spread); ``end`` is the recipe's end state (fixed
grid: pruned to ``prune.k`` taps per synapse and at most ``prune.max_levels``
levels, rates recalibrated as ``sw.trainer`` does; learnable delays: the final
width ``sigma_final``).

Threads: ``--threads`` workers run ``--shards`` batch shards, as ``sw.trainer``
does (``DelayNet.set_threads``; default: one thread, one shard, so that CPU
seconds compare the work).

The variants run interleaved (``--epochs`` rounds; each variant's best round
counts), so machine load hits all alike. Printed: samples/s per wall second
and per CPU second, and the unlayered/layered epoch-time ratio (CPU and
wall); also JSON and a PNG. ``--oracle`` adds one batch of the tensor
formulation (``async_layer_oracle``, the pre-compiled path) for scale.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import copy
import json
import time

import numpy as np
import torch
from tqdm import tqdm

SCHEDULERS = ("fifo", "random", "momentum")


def _setup(a):
    from sw.checkpoint import build_model
    from sw.config import load_config
    from sw.data.splits import load_data

    from sw.config import set_path

    over = {"seed": a.seed, "train": {"threads": a.threads, "batch_size": a.batch, "shards": a.shards}}
    if a.data != "offline":
        over["data"] = {"source": a.data}
    if a.data == "synthetic":
        over["data"]["T"] = 50
        over["model"] = {"hidden": [32], "max_delay": 32}
    for item in a.set:
        field, eq, raw = item.partition("=")
        if not eq:
            raise SystemExit(f"--set: expected FIELD=JSON, got {item!r}")
        try:
            val = json.loads(raw)
        except json.JSONDecodeError:
            val = raw
        set_path(over, field.strip(), val)
    cfg = load_config(overrides=over)
    d = load_data(cfg)
    n = len(d.ytr) if a.samples is None else min(a.samples, len(d.ytr))
    X = torch.from_numpy(d.Xtr[:n]).float()
    y = torch.from_numpy(d.ytr[:n]).long()
    _, net = build_model(cfg, X.shape[2], d.n_classes)
    net.set_threads(cfg["train"]["threads"], cfg["train"]["shards"])
    return cfg, net, X, y


def _states(cfg, net, X, which):
    """``{name: state_dict}`` of the weight states to time."""
    from sw.prune import prune_net

    g = torch.Generator().manual_seed(cfg["seed"])
    calib = X[torch.randperm(len(X), generator=g)[:128]]
    if net.cfg.init_rate > 0:
        net.calibrate(calib, net.cfg.init_rate)
    learnable = net.cfg.delay_mode == "learnable"
    E = cfg["train"]["epochs"]
    out = {}
    if "start" in which:
        if learnable:
            net.set_delay_width(0, E)
        out["start"] = copy.deepcopy(net.state_dict())
    if "end" in which:
        if learnable:  # no pruning schedule: one tap per synapse by construction
            net.set_delay_width(E - 1, E)
        else:
            pr = cfg["prune"]
            rates = net.layer_rates(calib)
            prune_net(net, pr["method"], pr["k"], pr["max_levels"])
            net.calibrate(calib, rates, iters=10)
        out["end"] = copy.deepcopy(net.state_dict())
    return out


def _epoch(model, net, X, y, batch, seed, max_batches=None):
    """One epoch of Adam from the current weights; returns (wall s, CPU s, batches)."""
    from sw.models.delay import mem_sum_loss

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    starts = list(range(0, len(perm), batch))[:max_batches]
    model.train()
    w0, c0 = time.perf_counter(), time.process_time()
    for s in starts:
        idx = perm[s:s + batch]
        logits, _ = model(X[idx])
        loss = mem_sum_loss(logits, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - w0, time.process_time() - c0, len(starts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="offline", help="offline | synthetic | folder with shd_train.h5/shd_test.h5")
    ap.add_argument("--samples", type=int, default=None, help="training samples per epoch (default: the whole train split)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2, help="interleaved rounds; the best round counts")
    ap.add_argument("--schedulers", nargs="+", default=list(SCHEDULERS), choices=SCHEDULERS)
    ap.add_argument("--forward-group", default="1", help="events per forward group (int) or 'all'")
    ap.add_argument("--states", nargs="+", default=["start", "end"], choices=["start", "end"])
    ap.add_argument("--threads", type=int, default=1, help="worker threads (train.threads)")
    ap.add_argument("--shards", type=int, default=1, help="batch shards (train.shards)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="override a config field")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--oracle", action="store_true", help="also time one batch of the tensor oracle (slow)")
    ap.add_argument("--json", default="build/bench_unlayered.json")
    ap.add_argument("--png", default="build/bench_unlayered.png")
    a = ap.parse_args(argv)
    if a.epochs < 1 or a.batch < 1 or a.threads < 1 or a.shards < 1 or (a.samples is not None and a.samples < 1):
        ap.error("--epochs, --batch, --threads, --shards and --samples must be positive")
    fg = a.forward_group
    if fg != "all" and not fg.isdigit():
        ap.error(f"--forward-group must be a positive int or 'all', got {fg!r}")
    F = None if fg == "all" else int(fg)
    from sw.models.unlayered import UnlayeredNet

    cfg, net, X, y = _setup(a)
    states = _states(cfg, net, X, a.states)
    variants = [("layered", None)] + [(f"unlayered-{s}", s) for s in a.schedulers]
    # compile / warm up every path once (numba caches its machine code on disk)
    for name, sched in variants:
        model = net if sched is None else UnlayeredNet.from_delay_net(net, sched, F, a.seed)
        _epoch(model, net, X[: a.batch], y[: a.batch], a.batch, a.seed, 1)
    res = {(st, name): [] for st in states for name, _ in variants}
    bar = tqdm(total=a.epochs * len(states) * len(variants), desc="epochs", file=sys.stderr)
    for r in range(a.epochs):
        for st, sd in states.items():
            for name, sched in variants:
                net.load_state_dict(sd)
                model = net if sched is None else UnlayeredNet.from_delay_net(net, sched, F, a.seed)
                res[(st, name)].append(_epoch(model, net, X, y, a.batch, a.seed + r))
                bar.update(1)
    bar.close()
    rows = []
    for st in states:
        base = min(res[(st, "layered")], key=lambda x: x[1])
        for name, _ in variants:
            w, c, nb = min(res[(st, name)], key=lambda x: x[1])  # best round by CPU time
            rows.append({"state": st, "variant": name, "wall_s": w, "cpu_s": c, "batches": nb, "samples": len(y),
                         "samples_per_s_wall": len(y) / w, "samples_per_s_cpu": len(y) / c,
                         "ratio_cpu": c / base[1], "ratio_wall": w / base[0],
                         "rounds_cpu_s": [x[1] for x in res[(st, name)]]})
    oracle = None
    if a.oracle:
        net.load_state_dict(states[next(iter(states))])
        ul = UnlayeredNet.from_delay_net(net, "fifo", F, a.seed)
        ul.fast = False
        w, c, _ = _epoch(ul, net, X[: a.batch], y[: a.batch], a.batch, a.seed, 1)
        oracle = {"state": next(iter(states)), "scheduler": "fifo", "batch": a.batch, "wall_s": w, "cpu_s": c}
    print(format_table(rows, a, oracle))
    out = {"argv": sys.argv, "config": {"data": a.data, "samples": len(y), "batch": a.batch, "epochs": a.epochs,
                                        "forward_group": fg, "threads": a.threads, "shards": a.shards,
                                        "delay_mode": net.cfg.delay_mode, "levels": len(net.cfg.delays),
                                        "T": int(X.shape[1]),
                                        "channels": int(X.shape[2]), "input_density": float(X.mean())},
           "rows": rows, "oracle_batch": oracle}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=1))
    plot(rows, a.png)
    print(f"wrote {a.json} and {a.png}")
    return 0


def format_table(rows, a, oracle) -> str:
    lines = [f"| state | variant | epoch CPU s | epoch wall s | samples/s (CPU) | samples/s (wall) "
             f"| ratio to layered (CPU) | ratio (wall) |", "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['state']} | {r['variant']} | {r['cpu_s']:.2f} | {r['wall_s']:.2f} | "
                     f"{r['samples_per_s_cpu']:.1f} | {r['samples_per_s_wall']:.1f} | {r['ratio_cpu']:.2f}x | "
                     f"{r['ratio_wall']:.2f}x |")
    lines.append(f"({rows[0]['samples']} samples, batch {a.batch}, forward group {a.forward_group}, "
                 f"{a.threads} thread(s), {a.shards} shard(s), best of {a.epochs} interleaved rounds; "
                 f"target ratio <= 3x)")
    if oracle is not None:
        lines.append(f"tensor oracle (pre-compiled path), one batch of {oracle['batch']} ({oracle['state']}, fifo): "
                     f"{oracle['cpu_s']:.1f} CPU s = {oracle['batch'] / oracle['cpu_s']:.2f} samples/s (CPU)")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    states = list(dict.fromkeys(r["state"] for r in rows))
    names = list(dict.fromkeys(r["variant"] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    w = 0.8 / len(states)
    for s_i, st in enumerate(states):
        vals = [next(r["samples_per_s_cpu"] for r in rows if r["state"] == st and r["variant"] == n) for n in names]
        xs = np.arange(len(names)) + s_i * w
        ax.bar(xs, vals, w, label=st)
        for x, r in zip(xs, [next(r for r in rows if r["state"] == st and r["variant"] == n) for n in names]):
            ax.text(x, r["samples_per_s_cpu"], f"{r['ratio_cpu']:.1f}x", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(names)) + w * (len(states) - 1) / 2)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("training samples / CPU s")
    ax.set_title("layered vs unlayered training epoch (label: time ratio to layered)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
