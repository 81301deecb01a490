"""PSU vs sequential LIF: training speed, and the accuracy cost of converting to LIF.

    python bench/psu.py [--T 50 100 200] [--batch 32] [--neurons 128] [--reps 5]
                        [--epochs 15] [--finetune 3] [--kinds psu ipsu rpsu] [--skip-accuracy]
                        [--out build/bench_psu]

Part 1 times one forward + backward pass of a hidden layer's neuron part
(current ``[B, T, n]`` -> spikes, loss = sum) for PSU/IPSU/RPSU and the delay
model's sequential LIF, interleaved in one run (median of ``--reps``), and
prints the LIF / PSU ratio per ``T``. "LIF (unbind)" is the same LIF step
function looped over ``current.unbind(1)`` (see :class:`_LifUnbind`).

Part 2 trains the synthetic-task topology of bench/unlayered.py with each
neuron kind through ``sw.trainer`` (the export is the contract LIF, so its
hw.reference accuracy is the *direct conversion*), then converts the float
network with ``sw.models.psu.convert_to_lif``, fine-tunes ``--finetune``
epochs, exports again and reports hw.reference accuracy.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import statistics
import time

import torch


class _LifUnbind(torch.nn.Module):
    """The delay model's own ``lif_step`` looped over ``current.unbind(1)``:
    same arithmetic as ``LIFNeuron``, but a per-step slice ``cur[:, t]`` costs a
    full-size zero tensor in backward (O(T^2)); unbind does not."""

    def __init__(self, decay):
        super().__init__()
        self.decay = decay

    def forward(self, current, threshold):
        from sw.models.lif import LIFParams, lif_step

        cur = current.to(torch.float64)
        v = torch.zeros_like(cur[:, 0])
        out = []
        p = LIFParams(float(threshold), self.decay, 24, 5.0, True)
        for c in cur.unbind(1):
            z, v = lif_step(v, c, p)
            out.append(z)
        return torch.stack(out, 1).to(current.dtype)


def time_neurons(Ts, B, n, reps, kinds):
    from sw.models.delay import LIFNeuron
    from sw.models.psu import make_neuron

    decay, th = 2484, 100.0  # tau 20 ms at dt 10 ms; integer-unit threshold
    rows = []
    for T in Ts:
        g = torch.Generator().manual_seed(T)
        cur = (torch.randn(B, T, n, generator=g) * 60 + 20).round()
        mods = {"lif": LIFNeuron(n, decay=decay, spiking=True, exact=True), "lif_unbind": _LifUnbind(decay)}
        mods.update({k: make_neuron(k, n, T, decay=decay) for k in kinds})
        times = {k: [] for k in mods}
        for r in range(reps + 1):
            for k, m in mods.items():  # interleaved, so machine load hits all alike
                x = cur.clone().requires_grad_(True)
                t0 = time.perf_counter()
                m(x, th).sum().backward()
                if r:  # first round is warm-up
                    times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"T": T, "seconds": med, "lif_over": {k: med["lif"] / med[k] for k in kinds},
                     "lif_unbind_over": {k: med["lif_unbind"] / med[k] for k in kinds}})
    return rows


def accuracy_rows(kinds, epochs, finetune_epochs, out):
    from hw.model_file import save
    from hw.reference import simulate
    from sw.export import to_model_file
    from sw.models.psu import convert_to_lif, finetune
    from sw.checkpoint import evaluate, load_float_model
    from sw.config import load_config
    from sw.data.splits import load_data
    from sw.trainer import train

    rows = []
    for kind in ("lif",) + tuple(kinds):
        over = {"data": {"source": "synthetic", "T": 50},
                "model": {"hidden": [32], "max_delay": 30, "delay_stride": 2, "tau_ms": 10.0, "init_gain": 3.0},
                "train": {"epochs": epochs, "batch_size": 32, "lr": 0.005, "threads": 1},
                "prune": {"max_levels": 8}, "neuron": kind, "out": str(out / kind)}
        cfg = load_config(overrides=over)
        print(f"== training with {kind} neurons ({epochs} epochs)", flush=True)
        t0 = time.time()
        s = train(cfg, log=lambda m: print("   ", m, flush=True))
        row = {"kind": kind, "train_seconds": time.time() - t0, "float_acc": s["float_acc"],
               "converted_reference_acc": s["integer_acc"]}
        if kind != "lif":
            d = load_data(cfg)
            Xtr, ytr, Xte, yte = d.Xtr, d.ytr, d.Xte, d.yte
            net = load_float_model(s["float_checkpoint"])
            convert_to_lif(net)
            row["converted_float_acc"] = evaluate(net, Xte, yte)[0]
            torch.manual_seed(0)
            for p in net.parameters():
                p.requires_grad_(True)
            finetune(net.train(), Xtr, ytr, finetune_epochs, lr=1e-3, batch_size=32, seed=0)
            net.eval()
            row["finetuned_float_acc"] = evaluate(net, Xte, yte)[0]
            m = to_model_file(net, info={"seed": cfg["seed"]})
            save(m, out / kind / "model_finetuned_lif.safetensors")
            row["finetuned_reference_acc"] = float((simulate(m, Xte, "layered").predictions == yte).mean())
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--T", nargs="+", type=int, default=[50, 100, 200])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--neurons", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--kinds", nargs="+", default=["psu", "ipsu", "rpsu"], choices=["psu", "ipsu", "rpsu"])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--finetune", type=int, default=3)
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="build/bench_psu")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    res = {"argv": sys.argv, "threads": a.threads}
    res["timing"] = time_neurons(a.T, a.batch, a.neurons, a.reps, a.kinds)
    lines = [f"forward+backward per batch (B={a.batch}, n={a.neurons}, {a.threads} thread(s), median of {a.reps})",
             "| T | LIF ms | LIF (unbind) ms | " + " | ".join(f"{k.upper()} ms" for k in a.kinds) + " | "
             + " | ".join(f"LIF/{k.upper()}" for k in a.kinds) + " | "
             + " | ".join(f"LIF(unbind)/{k.upper()}" for k in a.kinds) + " |",
             "|" + "---|" * (3 + 3 * len(a.kinds))]
    for r in res["timing"]:
        s = r["seconds"]
        lines.append(f"| {r['T']} | {1e3 * s['lif']:.1f} | {1e3 * s['lif_unbind']:.1f} | "
                     + " | ".join(f"{1e3 * s[k]:.2f}" for k in a.kinds)
                     + " | " + " | ".join(f"{r['lif_over'][k]:.1f}x" for k in a.kinds)
                     + " | " + " | ".join(f"{r['lif_unbind_over'][k]:.1f}x" for k in a.kinds) + " |")
    print("\n".join(lines), flush=True)
    if not a.skip_accuracy:
        res["accuracy"] = accuracy_rows(a.kinds, a.epochs, a.finetune, out)
        lines += ["", "synthetic task, test accuracy % (hw.reference = exported integer LIF, layered)",
                  "| neuron | float (as trained) | LIF float, converted | reference, converted "
                  "| LIF float, +fine-tune | reference, +fine-tune | train s |", "|" + "---|" * 7]
        f = lambda x: "-" if x is None else f"{100 * x:.2f}"
        for r in res["accuracy"]:
            lines.append(f"| {r['kind']} | {f(r['float_acc'])} | {f(r.get('converted_float_acc'))} | "
                         f"{f(r['converted_reference_acc'])} | {f(r.get('finetuned_float_acc'))} | "
                         f"{f(r.get('finetuned_reference_acc'))} | {r['train_seconds']:.0f} |")
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    (out / "table.txt").write_text(table + "\n")
    print(f"wrote {out / 'results.json'} and {out / 'table.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
