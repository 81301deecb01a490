"""Training throughput: the project's trainer vs a plain conv1d yardstick vs --no-delays, in one run.

    python bench/train.py [--data auto|random|offline|<SHD dir>] [--samples 512] [--batch 64]
                          [--epochs 4] [--threads 2] [--shards N] [--unsharded] [--oracle] [--late]
                          [--json build/bench_train.json]
    python bench/train.py --synapse-sweep [--threads 1]     # event vs dense synapse by input density

Three models of the default topology (700-48-48-20, delays 0..60 step 2) train
on the same samples with Adam, one epoch each in turn (interleaved, so machine
load hits all alike), best of ``--epochs``:

* ``delays``: ``DelayNet`` as ``sw.trainer`` builds it (fused LIF, event-driven synapses), and
  run as ``sw.trainer`` runs it: ``train.shards`` batch shards on ``--threads`` worker threads
  with one intra-op thread each (``sw.models.parallel``; ``--unsharded`` adds the same model
  on intra-op threads only, the path before batch shards);
* ``yardstick``: a plain vectorized causal dilated conv1d network of the same
  shape with a float LIF loop (:class:`ConvYardstick`, a dozen lines, kept here);
* ``yardstick-1t`` (with ``--threads`` > 1): the same on one intra-op thread; the
  last line compares the trainer with the faster of the two yardstick rows;
* ``no-delays``: ``DelayNet`` with delay 0 only;
* ``late``, ``late-nofloor`` (``--late``): ``delays`` at the last epoch's Gaussian width
  (``sigma_final``), with and without the floor that keeps the kernel's far taps out of
  float32's subnormal range (without it, late epochs ran about twice as long);
* ``oracle`` (``--oracle``): ``DelayNet`` on the unfused path (autograd LIF loop,
  dense synapse), the pre-#10 style.

Prints samples/s per wall second and per CPU second, the process's peak RSS,
and the ratios to the yardstick; writes the same as JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.nn.functional as F

from sw.checkpoint import build_model
from sw.config import load_config
from sw.models.delay import mem_sum_loss


class ConvYardstick(torch.nn.Module):
    """Plain PyTorch: causal dilated conv1d synapses + float LIF with a fast-sigmoid surrogate."""

    def __init__(self, sizes, K=31, dilation=2, alpha=0.6, theta=1.0):
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv1d(a, b, K, dilation=dilation, bias=False)
                                         for a, b in zip(sizes[:-1], sizes[1:]))
        self.pad, self.alpha, self.theta = (K - 1) * dilation, alpha, theta

    def forward(self, x):  # x [B, T, C]
        s = x.transpose(1, 2)
        for l, conv in enumerate(self.convs):
            I = conv(F.pad(s, (self.pad, 0)))  # [B, n, T]
            v, out = torch.zeros_like(I[..., 0]), []
            for It in I.unbind(2):
                v = self.alpha * v + It
                if l == len(self.convs) - 1:
                    out.append(v)
                    continue
                z = SpikeFS.apply(v - self.theta)
                out.append(z)
                v = v * (1 - z.detach())
            s = torch.stack(out, 2)
        return s.mean(2), None


class SpikeFS(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).float()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / (1 + 5 * x.abs()) ** 2


def _data(a, cfg):
    src = a.data
    if src == "auto":
        src = "offline" if (Path(cfg["data"]["root"]) / "manifest.json").is_file() else "random"
    if src == "random":  # SHD-shaped Bernoulli rasters, about 7000 spikes per sample like the offline set
        rng = np.random.default_rng(0)
        X = rng.random((a.samples, cfg["data"]["T"], 700)) < 0.1
        return src, X, rng.integers(0, 20, a.samples).astype(np.int64), 20
    from sw.data.splits import load_data

    cfg["data"]["source"] = src
    cfg["data"]["limit"] = a.samples
    d = load_data(cfg)
    return src, d.Xtr, d.ytr, d.n_classes


def synapse_sweep(batch: int, reps: int = 3) -> list[dict]:
    """CPU seconds of one forward + backward of ``tap_sum`` (31 levels), event vs dense, by input density:
    where the event path stops winning sets ``sw.models.synapse.EVENT_MAX_DENSITY``."""
    from sw.models.synapse import tap_sum

    rows = []
    delays = list(range(0, 61, 2))
    for n_in, n_out, grad_in in ((700, 48, False), (48, 48, True)):
        for dens in (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6):
            g = torch.Generator().manual_seed(0)
            S = (torch.rand(batch, 100, n_in, generator=g) < dens).float().requires_grad_(grad_in)
            W = torch.randint(-128, 128, (n_in, len(delays), n_out), generator=g).float().requires_grad_(True)
            t = {}
            for _ in range(reps):
                for mode in ("event", "dense"):
                    c0 = time.process_time()
                    tap_sum(S, W, delays, mode, int8=True).sum().backward()
                    t.setdefault(mode, []).append(time.process_time() - c0)
            rows.append({"n_in": n_in, "density": dens, "event_cpu_s": min(t["event"]), "dense_cpu_s": min(t["dense"])})
            r = rows[-1]
            print(f"n_in {n_in:4d} density {dens:.2f}: event {1e3 * r['event_cpu_s']:7.1f} ms  dense "
                  f"{1e3 * r['dense_cpu_s']:7.1f} ms  dense/event {r['dense_cpu_s'] / r['event_cpu_s']:.2f}x", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="auto", help="auto (offline when present, else random) | random | offline | SHD dir")
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--oracle", action="store_true", help="also time the unfused autograd path")
    ap.add_argument("--late", action="store_true", help="also time the learnable delays at their last epoch's width "
                    "(sigma_final), with and without the kernel's floor (sw.models.delay.KERNEL_LOG_FLOOR)")
    ap.add_argument("--shards", type=int, default=None, help="batch shards of the delay models (default: train.shards)")
    ap.add_argument("--unsharded", action="store_true", help="also time the delay model unsharded (intra-op threads)")
    ap.add_argument("--json", default="build/bench_train.json")
    ap.add_argument("--synapse-sweep", action="store_true", help="only time event vs dense synapses by density")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.synapse_sweep:
        rows = synapse_sweep(a.batch)
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"argv": sys.argv, "threads": a.threads, "synapse_sweep": rows}, indent=1))
        return 0
    cfg = load_config()
    if a.shards is None:
        a.shards = cfg["train"]["shards"]
    src, X, y, n_classes = _data(a, cfg)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    C = X.shape[2]
    models = {}
    models["delays"] = build_model(cfg, C, n_classes)[0]
    # batch shards on a.threads worker threads, one intra-op thread each (sw.models.parallel)
    # the yardstick's taps span the default delay grid (0..max_delay step delay_stride)
    mc = cfg["model"]
    yk = dict(K=mc["max_delay"] // mc["delay_stride"] + 1, dilation=mc["delay_stride"])
    models["yardstick"] = ConvYardstick([C, *mc["hidden"], n_classes], **yk)
    if a.threads > 1:  # the yardstick on one intra-op thread too: under load it can beat its own 2-thread run
        models["yardstick-1t"] = ConvYardstick([C, *mc["hidden"], n_classes], **yk)
    models["no-delays"] = build_model({**cfg, "model": {**cfg["model"], "no_delays": True}}, C, n_classes)[0]
    if a.unsharded:
        m = build_model(cfg, C, n_classes)[0]
        m.shards = 1  # the same model on intra-op threads only (the pre-shard path)
        models["unsharded"] = m
    if a.late:  # learnable delays at the end of training: the Gaussian at sigma_final, with and without the floor
        for k, floor in (("late", None), ("late-nofloor", -math.inf)):
            m = build_model(cfg, C, n_classes)[0]
            m.set_delay_width(1, 2)  # the last epoch's width
            if floor is not None:
                for syn in m.synapses:
                    syn.kernel_log_floor = floor
            models[k] = m
    if a.oracle:
        m = build_model({**cfg, "train": {**cfg["train"], "synapse": "dense"}}, C, n_classes)[0]
        for L in m.layers:
            L.neuron.fused = False
        m.shards = 1
        models["oracle"] = m
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}

    def use_threads(k, m):  # what each trainer does with a.threads cores
        if k in ("delays", "no-delays", "late", "late-nofloor"):  # sw.trainer: batch shards on a.threads workers (sw.models.parallel)
            m.set_threads(a.threads, a.shards)
        else:  # the yardstick, the unsharded and the oracle path: intra-op threads
            torch.set_num_threads(1 if k == "yardstick-1t" else a.threads)
    wall = {k: [] for k in models}
    cpu = {k: [] for k in models}
    print(f"data {src}: {len(y)} samples, T={X.shape[1]}, {C} channels, input density {X.mean():.3f}, batch {a.batch}, "
          f"{a.threads} threads ({a.shards} batch shards for the delay models), best of {a.epochs} interleaved epochs", flush=True)
    for e in range(a.epochs):
        for k, m in models.items():
            use_threads(k, m)
            perm = torch.randperm(len(yt), generator=torch.Generator().manual_seed(e))
            t0, c0 = time.perf_counter(), time.process_time()
            for s in range(0, len(yt), a.batch):
                idx = perm[s:s + a.batch]
                loss = mem_sum_loss(m(Xt[idx].float())[0], yt[idx])
                opts[k].zero_grad()
                loss.backward()
                opts[k].step()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
        print(f"epoch {e + 1}: " + "  ".join(f"{k} {wall[k][-1]:.2f}s" for k in models), flush=True)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = {k: {"samples_per_wall_s": len(yt) / min(wall[k]), "samples_per_cpu_s": len(yt) / min(cpu[k]),
                "best_wall_s": min(wall[k]), "best_cpu_s": min(cpu[k])} for k in models}
    y0 = rows["yardstick"]
    print(f"\n{'model':>12} {'samples/s (wall)':>17} {'samples/s (CPU)':>16} {'x yardstick wall':>17} {'x yardstick CPU':>16}")
    for k, r in rows.items():
        r["x_yardstick_wall"] = r["samples_per_wall_s"] / y0["samples_per_wall_s"]
        r["x_yardstick_cpu"] = r["samples_per_cpu_s"] / y0["samples_per_cpu_s"]
        print(f"{k:>12} {r['samples_per_wall_s']:17.1f} {r['samples_per_cpu_s']:16.1f} "
              f"{r['x_yardstick_wall']:16.2f}x {r['x_yardstick_cpu']:15.2f}x")
    best = max((k for k in rows if k.startswith("yardstick")), key=lambda k: rows[k]["samples_per_wall_s"])
    print(f"delays / faster yardstick ({best}): wall {rows['delays']['samples_per_wall_s'] / rows[best]['samples_per_wall_s']:.2f}x")
    print(f"delays / no-delays: wall {rows['delays']['samples_per_wall_s'] / rows['no-delays']['samples_per_wall_s']:.2f}x")
    if "late" in rows:
        print(f"late epoch (sigma {cfg['model']['sigma_final']}) / first: wall "
              f"{rows['late']['samples_per_wall_s'] / rows['delays']['samples_per_wall_s']:.2f}x; kernel floor / "
              f"no floor: wall {rows['late']['samples_per_wall_s'] / rows['late-nofloor']['samples_per_wall_s']:.2f}x, "
              f"CPU {rows['late']['samples_per_cpu_s'] / rows['late-nofloor']['samples_per_cpu_s']:.2f}x")
    if "oracle" in rows:
        print(f"delays / oracle (unfused): wall {rows['delays']['samples_per_wall_s'] / rows['oracle']['samples_per_wall_s']:.2f}x, "
              f"CPU {rows['delays']['samples_per_cpu_s'] / rows['oracle']['samples_per_cpu_s']:.2f}x")
    print(f"peak RSS of this process (all models): {rss_mb:.0f} MB")
    res = {"argv": sys.argv, "data": src, "samples": len(yt), "batch": a.batch, "threads": a.threads,
           "epochs": a.epochs, "rows": rows, "peak_rss_mb": rss_mb}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=1))
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
