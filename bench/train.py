"""Training throughput: delay model vs --no-delays, same data, same run.

    python bench/train.py [--data random|offline|<SHD dir>] [--samples 256] [--batch 32] [--epochs 2]

Prints seconds per epoch and samples/s (train step and inference) for the
default topology with the full delay grid and with delay 0 only, and their ratio.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from tqdm import tqdm

from sw.train import load_config, load_data, net_config
from sw.models.delay import DelayNet, mem_sum_loss


def run(no_delays: bool, X, y, n_classes, cfg, epochs: int, batch: int):
    cfg = {**cfg, "model": {**cfg["model"], "no_delays": no_delays}}
    torch.manual_seed(0)
    net = DelayNet(net_config(cfg, X.shape[2], n_classes))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    times, cpu = [], []
    for e in range(epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        for s in tqdm(range(0, len(yt), batch), desc=f"{'no-delays' if no_delays else 'delays'} epoch {e + 1}",
                      leave=False):
            loss = mem_sum_loss(net(Xt[s:s + batch].float())[0], yt[s:s + batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(yt), 128):
            net(Xt[s:s + 128].float())
    t_inf = time.perf_counter() - t0
    return min(times), len(yt) / min(times), len(yt) / t_inf, min(cpu)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="random")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = load_config()
    if a.data == "random":  # SHD-shaped Bernoulli raster (about 7000 spikes per sample, like the offline set)
        rng = np.random.default_rng(0)
        X = rng.random((a.samples, cfg["data"]["T"], 700)) < 0.1
        y = rng.integers(0, 20, a.samples).astype(np.int64)
        n_classes = 20
    else:
        cfg["data"]["source"] = a.data
        cfg["data"]["limit"] = a.samples
        X, y, *_, n_classes = load_data(cfg)
    print(f"data {a.data}: {len(y)} samples, T={X.shape[1]}, {X.shape[2]} channels, batch {a.batch}, "
          f"{torch.get_num_threads()} threads, best of {a.epochs} epochs")
    res = {nd: run(nd, X, y, n_classes, cfg, a.epochs, a.batch) for nd in (False, True)}
    # CPU seconds are reported too: wall time on a shared 2-core machine depends on the other jobs
    print(f"{'model':>10} {'s/epoch':>8} {'cpu s/epoch':>11} {'train samples/s':>16} {'infer samples/s':>16}")
    for nd, (t, sps, ips, c) in res.items():
        print(f"{'no-delays' if nd else 'delays':>10} {t:8.2f} {c:11.2f} {sps:16.1f} {ips:16.1f}")
    print(f"ratio delays/no-delays epoch time: wall {res[False][0] / res[True][0]:.2f}x, "
          f"cpu {res[False][3] / res[True][3]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
