"""Trade-off tables of trained design points (docs/results.md): each point is one ``sw.trainer`` run.

    python bench/train_tables.py --table seeds  [--seeds 0 1 2] [--epochs 40] [--workers 2]
    python bench/train_tables.py --table rate   [--rate-targets none 0.05 0.02] [--rate-weight 20]
    python bench/train_tables.py --table bits   [--bits 2 4 8]
    python bench/train_tables.py --table delays                     # fixed grid (15 / 31 levels) vs --delays learnable
    common: [--data offline] [--epochs N] [--limit N] [--set FIELD=JSON ...] [--out build/tables]

Every point trains with 1 torch thread (``--workers`` points run at once, as
separate processes; run the command itself with nice), exports, and is checked bit-exact against
``hw.reference``. The table gives the integer (hw.reference, layered) test
accuracy, the hidden spike densities, and per layer the ring-buffer bits and
the SCDQ bits at the measured peak occupancy (layered run of the test split),
the synapse (CSR) bits, the total (CSR synapses + SCDQ + neuron state) and the
training seconds (wall). It prints a markdown table and
writes ``<out>/<table>.json``, ``<out>/<table>.md`` and ``<out>/<table>.png``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _run_point(args) -> dict:
    name, over, out, data_src = args
    import torch

    torch.set_num_threads(1)
    from hw.model_file import load
    from hw.reference import memory_report, simulate
    from sw.config import load_config
    from sw.data.splits import load_data
    from sw.errors import write_json
    from sw.trainer import train

    if over is None:  # a finished run given with --baseline NAME=DIR: read, do not train
        text = (Path(out) / "train_summary.json").read_text()
        key = hashlib.sha256((text + str(data_src)).encode()).hexdigest()
        cache = Path(out) / "table_row.json"  # the row of this very summary (and data), measured before
        if cache.is_file():
            row = json.loads(cache.read_text())
            if row.pop("summary_sha256", None) == key:
                return {**row, "name": name}
        s = json.loads(text)
        cfg = s["config"]
        if data_src is not None:  # the same files under another name (e.g. a copy of the offline set)
            cfg["data"]["source"] = data_src
        over = {"baseline": str(out)}
    else:
        over = json.loads(json.dumps(over))
        over.setdefault("train", {})["threads"] = 1
        over["out"] = str(out)
        cfg = load_config(overrides=over)
        s = train(cfg, progress=False, log=lambda m: print(f"[{name}] {m}", flush=True))
        text = (Path(out) / "train_summary.json").read_text()
        key = hashlib.sha256((text + str(data_src)).encode()).hexdigest()
    m = load(s["model_path"])
    d = load_data(cfg)
    ref = simulate(m, d.Xte, "layered")
    caps = [int(x) for x in ref.occupancy.max(axis=(0, 2))]
    mem = memory_report(m, caps)
    row = {"name": name, "overrides": over, "integer_acc": s["integer_acc"], "float_acc": s["float_acc"],
            "parity": s["parity"]["all_bit_exact"], "density": [L["spike_density"] for L in s["layers"][:-1]],
            "ring_bits": [r["ring_bits"] for r in mem], "scdq_bits": [r["scdq_bits"] for r in mem],
            "scdq_capacity": caps, "synapse_bits": [r["synapse_bits"] for r in mem],
            "state_bits": [r["state_bits"] for r in mem],
            "delay_levels": [L["delay_levels"] for L in s["layers"]], "weight_bits": m.widths.weight_bits,
            "seconds_training": s["seconds_training"], "test_samples": s["test_samples"]}
    write_json({**row, "summary_sha256": key}, Path(out) / "table_row.json")  # --baseline reads it back
    return row


def points(a) -> list[tuple[str, dict]]:
    base: dict = {"data": {"source": a.data}, "train": {"epochs": a.epochs}}
    if a.limit:
        base["data"]["limit"] = a.limit
    for item in a.set:
        k, _, v = item.partition("=")
        d = base
        for p in k.split(".")[:-1]:
            d = d.setdefault(p, {})
        d[k.split(".")[-1]] = json.loads(v)
    merge = lambda extra: json.loads(json.dumps(_deep(base, extra)))
    if a.table == "seeds":
        return [(f"{'no-delays' if nd else 'delays'} seed {s}", merge({"seed": s, "model": {"no_delays": nd}}))
                for s in a.seeds for nd in (False, True)]
    if a.table == "rate":
        return [(f"rate {t}", merge({} if t == "none" else {"reg": {"rate_target": float(t), "rate_weight": a.rate_weight}}))
                for t in a.rate_targets]
    if a.table == "bits":
        return [(f"{b}-bit", merge({"model": {"weight_bits": b}})) for b in a.bits]
    if a.table == "delays":
        # like for like: the default fixed grid prunes to one tap per synapse on at most prune.max_levels (15)
        # delays per layer; "31 levels" lifts that cap, as learnable delays (one tap per synapse) have none
        return [("fixed grid", merge({})), ("fixed grid 31 levels", merge({"prune": {"max_levels": 31}})),
                ("learnable", merge({"model": {"delay_mode": "learnable"}}))]
    raise SystemExit(f"--table must be seeds, rate, bits or delays, got {a.table!r}")


def _deep(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return out


def _total(r: dict) -> int:
    """CSR synapses + SCDQ at the measured capacity + neuron state, all layers (bits)."""
    return sum(r["synapse_bits"]) + sum(r["scdq_bits"]) + sum(r.get("state_bits", []))


def table(rows: list[dict], kind: str) -> str:
    f = lambda xs: " / ".join(f"{x:.3f}" for x in xs)
    kb = lambda xs: " / ".join(f"{x / 1000:.1f}" for x in xs)
    lines = ["| point | integer acc % | float acc % | hidden density | ring kbit / layer | SCDQ kbit / layer "
             "(capacity) | synapse kbit total | total kbit | train s |", "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['name']} | {100 * r['integer_acc']:.2f} | {100 * r['float_acc']:.2f} | {f(r['density'])} | "
                     f"{kb(r['ring_bits'])} | {kb(r['scdq_bits'])} ({'/'.join(map(str, r['scdq_capacity']))}) | "
                     f"{sum(r['synapse_bits']) / 1000:.1f} | {_total(r) / 1000:.1f} | {r['seconds_training']:.0f} |")
    if kind == "seeds":
        import statistics

        acc = {nd: [r["integer_acc"] for r in rows if r["name"].startswith(nd)] for nd in ("delays", "no-delays")}
        gain = [100 * (a - b) for a, b in zip(acc["delays"], acc["no-delays"])]
        lines += ["", f"mean integer accuracy: delays {100 * statistics.mean(acc['delays']):.2f} %, "
                      f"no-delays {100 * statistics.mean(acc['no-delays']):.2f} %; delay gain per seed "
                      + ", ".join(f"{g:+.2f}" for g in gain) + f" points, mean {statistics.mean(gain):+.2f}"]
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    names = [r["name"] for r in rows]
    ax[0].bar(names, [100 * r["integer_acc"] for r in rows])
    ax[0].set_ylabel("integer test accuracy %")
    ax[1].bar(names, [sum(r["scdq_bits"]) / 1000 for r in rows], label="SCDQ")
    ax[1].bar(names, [sum(r["synapse_bits"]) / 1000 for r in rows], bottom=[sum(r["scdq_bits"]) / 1000 for r in rows],
              label="synapses (CSR)")
    ax[1].set_ylabel("kbit")
    ax[1].legend()
    for x in ax:
        x.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", required=True, choices=("seeds", "rate", "bits", "delays"))
    ap.add_argument("--data", default="offline")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rate-targets", nargs="+", default=["none", "0.05", "0.02"])
    ap.add_argument("--rate-weight", type=float, default=20.0)
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON")
    ap.add_argument("--out", default="build/tables")
    ap.add_argument("--baseline", action="append", default=[], metavar="NAME=DIR",
                    help="take point NAME from a finished sw.trainer output DIR instead of training it")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="train only this point of the table (repeatable); --baseline points are still read")
    ap.add_argument("--baseline-data", help="read the test split of --baseline runs from this data source instead "
                                            "of the one in their config (same files, e.g. a copy)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    pts = points(a)
    if a.only:  # a subset of the table's points (finished ones come in with --baseline)
        unknown = set(a.only) - {n for n, _ in pts}
        if unknown:
            raise SystemExit(f"--only: no point named {sorted(unknown)} in table {a.table} (points: {[n for n, _ in pts]})")
        pts = [(n, o) for n, o in pts if n in a.only or any(b.startswith(n + "=") for b in a.baseline)]
    base = dict(b.split("=", 1) for b in a.baseline)
    src = a.baseline_data
    jobs = [(n, None, Path(base[n]), src) if n in base else (n, o, out / a.table / n.replace(" ", "_"), None)
            for n, o in pts]
    todo = [j for j in jobs if j[1] is not None]
    if a.workers > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(a.workers, mp_context=mp.get_context("spawn")) as ex:
            done = dict(zip([j[0] for j in todo], ex.map(_run_point, todo)))
    else:
        done = {j[0]: _run_point(j) for j in todo}
    # baselines are read last: a baseline run may still be finishing while the others train
    rows = [done[j[0]] if j[1] is not None else _run_point(j) for j in jobs]
    cmd = shlex.join(["python", "bench/train_tables.py"] + (argv if argv is not None else sys.argv[1:]))
    md = f"`{cmd}`\n\n" + table(rows, a.table)
    print(md)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{a.table}.json").write_text(json.dumps(rows, indent=1))
    (out / f"{a.table}.md").write_text(md + "\n")
    plot(rows, out / f"{a.table}.png")
    print(f"wrote {out / a.table}.json, .md, .png")
    return 0 if all(r["parity"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
