"""Co-design sweeps on Dask: train, export, reference and co-simulate a grid of design points.

    python -m cosim.sweep --spec sw/configs/sweep_example.toml --out build/sweep [--workers N]
                          [--scheduler tcp://host:8786] [--force]

The spec is TOML with three tables:

- ``[base]``: training-config fields, dotted as for ``--set`` of the training command (``sw.trainer``)
  (``"train.epochs" = 3`` or ``train.epochs = 3``);
- ``[grid]``: dotted fields, each with a list of values; every combination is one
  design point (``seed`` may be one of them);
- ``[hardware]``: ``delay_unit`` and ``mode`` lists, ``scdq_capacity`` list (ints;
  ``"peak"``: the peak occupancy measured on the samples, which never overflows;
  or a share of that peak per layer such as ``"50%"``), ``samples``
  (int or ``"all"``), optionally ``core_budget_bits``, and ``backend``
  (``"verilator"``, the default, or ``"amaranth"`` for tiny sweeps in seconds).

One Dask task is one design point: it trains (or reuses its finished training),
exports, runs ``hw.reference`` and co-simulates on Verilator for every hardware
combination, and returns one row per (point, hardware). Tasks are retried, so
a point whose worker dies runs again elsewhere; training resumes from its last
epoch checkpoint. Rows go to ``DIR/results.sqlite``, keyed by a hash of the
full training config and the hardware choice; a rerun skips the rows already
there (a killed sweep resumes), ``--force`` recomputes them. At the end the
non-dominated points (HDL accuracy up, total memory bits down, cycles down)
are printed and ``DIR/pareto_memory.png`` and ``DIR/pareto_cycles.png`` written.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import math
import shutil
import sqlite3
import sys
import time
import tomllib
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw.reference import DELAY_UNITS, MODES  # noqa: E402

BACKENDS = ("verilator", "amaranth")  # cosim.run's backends; amaranth (pysim) only for tiny, quick sweeps

SCHEMA = 1  # bump when a row's meaning changes: old rows then no longer match any key
TIMING_FIELDS = ("train_seconds", "cosim_seconds", "hdl_cycles_per_s")  # differ run to run; all else is exact


class SpecError(ValueError):
    """Bad sweep spec or flag; the message names the table and field."""


# ---------------------------------------------------------------- spec
def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


def _nest(flat: dict) -> dict:
    over: dict = {}
    for dotted, v in flat.items():
        keys = dotted.split(".")
        d = over
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = v
    return over


def _as_list(table: str, key: str, v) -> list:
    v = v if isinstance(v, list) else [v]
    if not v:
        raise SpecError(f"[{table}] {key}: needs at least one value")
    return v


def load_spec(path) -> dict:
    """Read and validate a sweep spec; returns ``{base, grid, hardware}`` (base/grid flat, dotted)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"--spec: no such file '{path}'") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"--spec: '{path}' is not valid TOML ({e})") from None
    unknown = set(raw) - {"base", "grid", "hardware"}
    if unknown:
        raise SpecError(f"--spec: unknown table(s) {sorted(unknown)} (known: base, grid, hardware)")
    base, grid = _flatten(raw.get("base", {})), _flatten(raw.get("grid", {}))
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise SpecError(f"[grid] {k}: must be a non-empty list of values, got {v!r}")
    if "out" in base or "out" in grid:
        raise SpecError("[base] out: set by the sweep (DIR/points/<hash>), do not give it")
    hw = dict(raw.get("hardware", {}))
    known = {"delay_unit", "mode", "scdq_capacity", "samples", "core_budget_bits", "backend"}
    if set(hw) - known:
        raise SpecError(f"[hardware] {sorted(set(hw) - known)[0]}: unknown field (known: {', '.join(sorted(known))})")
    units = _as_list("hardware", "delay_unit", hw.get("delay_unit", ["scdq"]))
    modes = _as_list("hardware", "mode", hw.get("mode", ["layered"]))
    caps = _as_list("hardware", "scdq_capacity", hw.get("scdq_capacity", ["peak"]))
    for u in units:
        if u not in DELAY_UNITS:
            raise SpecError(f"[hardware] delay_unit: must be among {list(DELAY_UNITS)}, got {u!r}")
    for m in modes:
        if m not in MODES:
            raise SpecError(f"[hardware] mode: must be among {list(MODES)}, got {m!r}")
    for c in caps:
        if not (c == "peak" or isinstance(c, int) and not isinstance(c, bool) and c >= 1 or _percent(c) is not None):
            raise SpecError(f"[hardware] scdq_capacity: each must be \"peak\", an int >= 1 or a share of the "
                            f"peak such as \"50%\", got {c!r}")
    samples = hw.get("samples", "all")
    if samples != "all" and not (isinstance(samples, int) and not isinstance(samples, bool) and samples >= 1):
        raise SpecError(f"[hardware] samples: must be a positive int or \"all\", got {samples!r}")
    backend = hw.get("backend", "verilator")
    if backend not in BACKENDS:
        raise SpecError(f"[hardware] backend: must be one of {list(BACKENDS)}, got {backend!r}")
    budget = hw.get("core_budget_bits")
    if budget is not None and not (isinstance(budget, int) and not isinstance(budget, bool) and budget > 0):
        raise SpecError(f"[hardware] core_budget_bits: must be a positive int, got {budget!r}")
    return {"base": base, "grid": grid,
            "hardware": {"delay_unit": list(dict.fromkeys(units)), "mode": list(dict.fromkeys(modes)),
                         "scdq_capacity": list(dict.fromkeys(caps)), "samples": samples, "backend": backend,
                         "core_budget_bits": budget}}


def _percent(c) -> float | None:
    """``"50%"`` -> 0.5 (a share of the measured peak, in (0, 100] %); anything else -> None."""
    if isinstance(c, str) and c.endswith("%"):
        try:
            f = float(c[:-1])
        except ValueError:
            return None
        return f / 100 if 0 < f <= 100 else None
    return None


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def hardware_combos(hw: dict) -> list[dict]:
    """Every (delay unit, mode, capacity) to run; a ring buffer has no capacity."""
    out = []
    for u in hw["delay_unit"]:
        for m in hw["mode"]:
            for c in (hw["scdq_capacity"] if u == "scdq" else [None]):
                out.append({"delay_unit": u, "mode": m, "scdq_capacity": c, "samples": hw["samples"],
                            "backend": hw["backend"]})
    return out


def expand(spec: dict, out: Path) -> list[dict]:
    """One job per grid point: its validated training config and its rows' keys."""
    from sw.config import ConfigError, load_config

    keys = list(spec["grid"])
    jobs = []
    for values in itertools.product(*(spec["grid"][k] for k in keys)):
        point = dict(zip(keys, values))
        try:
            cfg = load_config(None, _nest({**spec["base"], **point}))
        except ConfigError as e:
            where = "grid" if e.field in point or any(e.field.startswith(k + ".") for k in point) else "base"
            raise SpecError(f"[{where}] {e}") from None
        cfg.pop("out")
        pk = _hash({"schema": SCHEMA, "config": cfg})
        cfg["out"] = str(out / "points" / pk)
        combos = hardware_combos(spec["hardware"])
        row_keys = [_hash({"schema": SCHEMA, "point": pk, "hardware": h}) for h in combos]
        jobs.append({"point_key": pk, "point": point, "config": cfg, "hardware": combos, "row_keys": row_keys})
    return jobs


# ---------------------------------------------------------------- one design point (runs on a worker)
def run_point(job: dict) -> list[dict]:
    """Train (or reuse), export, reference and co-simulate one design point; one row per hardware choice."""
    import numpy as np

    from hw.model_file import load
    from hw.reference import simulate
    from sw.evaluate import load_eval_data
    from sw.trainer import train

    from cosim.fit import core_memory
    from cosim.run import cosimulate, float_predictions

    cfg = job["config"]
    out = Path(cfg["out"])
    summary_path, model_path = out / "train_summary.json", out / "model.safetensors"
    quiet = lambda *a, **k: None  # noqa: E731
    t0 = time.time()
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() and model_path.is_file() else None
    if summary is None or summary.get("config") != cfg:
        summary = train(cfg, resume=True, progress=False, log=quiet)  # resumes from the last epoch if any
        train_seconds = time.time() - t0
    else:
        train_seconds = summary.get("seconds_total", 0.0)
    model = load(model_path)
    samples = job["hardware"][0]["samples"]
    X, y = load_eval_data(cfg["data"]["source"], model, str(model_path), None if samples == "all" else samples)
    fp = float_predictions(model, model_path, X)
    rows = []
    for h, key in zip(job["hardware"], job["row_keys"]):
        t1 = time.time()
        c = h["scdq_capacity"]
        if c in (None, "peak"):
            cap = None  # sized to the peak measured on X: never drops
        elif _percent(c) is not None:  # a share of the per-layer peak of the reference at unlimited capacity
            peak = simulate(model, X, h["mode"], "scdq").occupancy.max(axis=(0, 2))
            cap = [max(1, math.ceil(_percent(c) * int(p))) for p in peak]
        else:
            cap = int(c)
        rep = cosimulate(model, X, y, backend=h["backend"], modes=(h["mode"],), delay_units=(h["delay_unit"],),
                         workers=1, float_pred=fp, scdq_capacity=cap, progress=False, log=quiet)
        r = rep["runs"][0]
        caps = [row["build_capacity"] for row in r["memory"]["layers"]]
        mem = core_memory(model, h["delay_unit"], h["mode"], caps)
        sops = np.array(r["throughput"]["sops_per_layer"])
        rows.append({
            "key": key, "point_key": job["point_key"], "point": job["point"], "hardware": h,
            "model_path": str(model_path), "samples": r["samples"],
            "acc_float": r["accuracy"]["float"], "acc_reference": r["accuracy"]["reference"],
            "acc_hdl": r["accuracy"]["hdl"],
            "acc_reference_unlimited": r["accuracy"].get("reference_unlimited_capacity"),
            "parity_bit_exact": r["parity"]["bit_exact"], "parity_samples": r["parity"]["samples"],
            "first_divergence": r["parity"]["first_divergence"],
            "cycles_mean": r["latency"]["cycles"]["mean"], "cycles_p99": r["latency"]["cycles"]["p99"],
            "ttd_steps": r["latency"]["time_to_decision_steps"]["mean"],
            "ttd_cycles": r["latency"]["time_to_decision_cycles"]["mean"],
            "sops": float(sops.sum()), "sops_per_layer": sops.tolist(), "density": r["spikes"]["density"],
            "scdq_capacity": None if h["delay_unit"] == "ring" else caps,
            "scdq_peak": [row["reference_peak"] for row in r["memory"]["layers"]],
            "dropped": [row["dropped"] for row in r["memory"]["layers"]],
            "memory": [{k: m[k] for k in ("layer", "synapse_bits", "ring_bits", "scdq_bits", "layered_accumulator_bits",
                                          "state_bits", "delay_bits", "core_bits")} for m in mem],
            "delay_bits": int(sum(m["delay_bits"] for m in mem)),
            "total_bits": int(sum(m["core_bits"] for m in mem)),
            "max_core_bits": int(max(m["core_bits"] for m in mem)),
            "energy_nj": r["energy"]["per_inference_nj"],
            "train_seconds": float(train_seconds), "cosim_seconds": time.time() - t1,
            "hdl_cycles_per_s": r["throughput"]["hdl_cycles_per_s"],
        })
    return rows


# ---------------------------------------------------------------- results store
class Results:
    """``DIR/results.sqlite``: one row per (point, hardware), the full row as JSON next to a few columns."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, point_key TEXT NOT NULL, "
                        "model_path TEXT, delay_unit TEXT, mode TEXT, scdq_capacity TEXT, acc_hdl REAL, "
                        "total_bits INTEGER, cycles_mean REAL, bit_exact INTEGER, row TEXT NOT NULL, "
                        "created REAL NOT NULL)")
        self.db.commit()

    def keys(self) -> set[str]:
        return {k for (k,) in self.db.execute("SELECT key FROM results")}

    def put(self, rows: list[dict]) -> None:
        with self.db:  # one transaction per point: a point's rows land together or not at all
            for r in rows:
                h = r["hardware"]
                self.db.execute("INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                                (r["key"], r["point_key"], r["model_path"], h["delay_unit"], h["mode"],
                                 json.dumps(h["scdq_capacity"]), r["acc_hdl"], r["total_bits"], r["cycles_mean"],
                                 int(r["parity_bit_exact"] == r["parity_samples"]), json.dumps(r), time.time()))

    def get(self, keys) -> list[dict]:
        keys = list(keys)
        out = {}
        for k, row in self.db.execute(f"SELECT key, row FROM results WHERE key IN ({','.join('?' * len(keys))})",
                                      keys):
            out[k] = json.loads(row)
        return [out[k] for k in keys if k in out]

    def close(self):
        self.db.close()


# ---------------------------------------------------------------- Pareto front, table, plots
def non_dominated(rows: list[dict], objectives=(("acc_hdl", 1), ("total_bits", -1), ("cycles_mean", -1))):
    """Rows no other row beats on every objective (and strictly on one); sign 1 = maximise."""
    def val(r, k, s):
        return s * (r[k] if r[k] is not None else float("-inf") * s)

    front = []
    for r in rows:
        dominated = any(all(val(o, k, s) >= val(r, k, s) for k, s in objectives)
                        and any(val(o, k, s) > val(r, k, s) for k, s in objectives) for o in rows if o is not r)
        if not dominated:
            front.append(r)
    return front


def _label(r: dict) -> str:
    h = r["hardware"]
    cap = "" if h["delay_unit"] == "ring" else f"@{h['scdq_capacity']}"
    return f"{h['mode']}/{h['delay_unit']}{cap}"


def format_table(rows: list[dict], budget: int | None = None) -> str:
    cols = ["point", "hardware", "float", "ref", "HDL", "ref unlim.", "exact", "cycles mean", "cycles p99",
            "TTD steps", "SOPs", "C per layer", "dropped", "delay bits", "total bits", "energy nJ", "train s"] + \
        (["fits"] if budget is not None else [])
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}"  # noqa: E731
    body = []
    for r in rows:
        line = [" ".join(f"{k}={json.dumps(v)}" for k, v in r["point"].items()) or "-", _label(r),
                pct(r["acc_float"]), pct(r["acc_reference"]), pct(r["acc_hdl"]), pct(r["acc_reference_unlimited"]),
                f"{r['parity_bit_exact']}/{r['parity_samples']}", f"{r['cycles_mean']:,.0f}",
                f"{r['cycles_p99']:,.0f}", f"{r['ttd_steps']:.1f}", f"{r['sops']:,.0f}",
                "-" if r["scdq_capacity"] is None else "/".join(map(str, r["scdq_capacity"])),
                "/".join(map(str, r["dropped"])), f"{r['delay_bits']:,}",
                f"{r['total_bits']:,}", f"{r['energy_nj']:.1f}", f"{r['train_seconds']:.0f}"]
        if budget is not None:
            line.append("yes" if r["max_core_bits"] <= budget else "no")
        body.append(line)
    ws = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
    fmt = lambda xs: "  ".join(x.ljust(w) if i < 2 else x.rjust(w) for i, (x, w) in enumerate(zip(xs, ws)))  # noqa
    return "\n".join([fmt(cols), "-" * (sum(ws) + 2 * (len(ws) - 1))] + [fmt(b) for b in body])


def _front_2d(rows, x):
    pts = sorted(((r[x], r["acc_hdl"]) for r in rows if r["acc_hdl"] is not None))
    front, best = [], float("-inf")
    for px, py in pts:
        if py > best:
            front.append((px, py))
            best = py
    return front


def plot_pareto(rows: list[dict], out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for x, fname, xlabel in (("total_bits", "pareto_memory.png", "total memory, all cores (bits)"),
                             ("cycles_mean", "pareto_cycles.png", "cycles per inference (mean)")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for unit, marker in (("ring", "s"), ("scdq", "o")):
            for mode, color in (("layered", "tab:blue"), ("async", "tab:orange")):
                sel = [r for r in rows if r["hardware"]["delay_unit"] == unit and r["hardware"]["mode"] == mode
                       and r["acc_hdl"] is not None]
                if sel:
                    ax.scatter([r[x] for r in sel], [100 * r["acc_hdl"] for r in sel], marker=marker, color=color,
                               alpha=0.8, label=f"{mode} / {unit}", facecolors="none" if unit == "ring" else color)
        f = _front_2d(rows, x)
        if f:  # circled, joined by a step line (a one-point front is just the circle)
            ax.step([p[0] for p in f], [100 * p[1] for p in f], where="post", color="k", lw=1, alpha=0.6)
            ax.scatter([p[0] for p in f], [100 * p[1] for p in f], s=140, facecolors="none", edgecolors="k",
                       label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("HDL accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=120)
        plt.close(fig)
        paths.append(out / fname)
    return paths


def plot_capacity(rows: list[dict], out: Path) -> Path | None:
    """``DIR/scdq_capacity.png``: accuracy against SCDQ bits, one line per (point, mode), when a
    point was run at several SCDQ capacities; ``None`` otherwise."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict = {}
    for r in rows:
        if r["hardware"]["delay_unit"] == "scdq":
            groups.setdefault((r["point_key"], r["hardware"]["mode"]), []).append(r)
    groups = {k: sorted(v, key=lambda r: r["delay_bits"]) for k, v in groups.items() if len(v) > 1}
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (pk, mode), rs in groups.items():
        name = " ".join(f"{k}={json.dumps(v)}" for k, v in rs[0]["point"].items())
        line = ax.plot([r["delay_bits"] for r in rs], [100 * r["acc_hdl"] for r in rs], "o-",
                       label=f"{mode} {name}"[:70])[0]
        for r in rs:
            ax.annotate(str(r["hardware"]["scdq_capacity"]), (r["delay_bits"], 100 * r["acc_hdl"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3), color=line.get_color())
    ax.set_xlabel("SCDQ delay memory, all cores (bits; layered mode includes the input accumulators)")
    ax.set_ylabel("HDL accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "scdq_capacity.png", dpi=120)
    plt.close(fig)
    return out / "scdq_capacity.png"


# ---------------------------------------------------------------- driver
def _client(workers: int, scheduler: str | None):
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    # non-daemonic workers: a point may start processes of its own (data generation)
    dask.config.set({"distributed.worker.daemon": False})
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster


def run_sweep(spec: dict, out: Path, *, workers: int = 2, scheduler: str | None = None, force: bool = False,
              client=None, retries: int = 2, progress: bool = True, log=print) -> list[dict]:
    """Run every missing point of ``spec`` into ``out``; returns all rows of the spec (old and new)."""
    from distributed import as_completed
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    jobs = expand(spec, out.resolve())
    store = Results(out / "results.sqlite")
    try:
        done = store.keys()
        todo = [j for j in jobs if force or not set(j["row_keys"]) <= done]
        n_rows = sum(len(j["row_keys"]) for j in jobs)
        log(f"sweep: {len(jobs)} points x {len(jobs[0]['hardware'])} hardware = {n_rows} rows; "
            f"{len(jobs) - len(todo)} points done, {len(todo)} to run")
        failed = []
        if todo:
            if force:
                for j in todo:  # recompute from scratch, training included
                    shutil.rmtree(j["config"]["out"], ignore_errors=True)
            own = client is None
            if own:
                client, cluster = _client(workers, scheduler)
            try:
                from cosim.sweep import run_point as task  # by reference, also when run as __main__
                futs = {client.submit(task, j, key=f"point-{j['point_key']}-{time.time_ns()}", retries=retries,
                                      pure=False): j for j in todo}
                bar = tqdm(total=len(futs), desc="design points", disable=not progress, file=sys.stderr)
                for f in as_completed(futs):
                    j = futs[f]
                    try:
                        store.put(f.result())
                    except Exception as e:  # noqa: BLE001 - one failed point must not lose the others
                        failed.append((j, e))
                        log(f"sweep: point {j['point']} failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
                    bar.update(1)
                bar.close()
            finally:
                if own:
                    client.close()
                    if cluster is not None:
                        cluster.close()
        rows = store.get(k for j in jobs for k in j["row_keys"])
    finally:
        store.close()
    budget = spec["hardware"]["core_budget_bits"]
    for r in rows:  # the budget is not part of the key: judge each row against this spec's budget
        r["fits"] = None if budget is None else r["max_core_bits"] <= budget
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(todo)} points failed (first: {failed[0][0]['point']}); "
                           "rerun to retry them")
    return rows


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m cosim.sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", required=True, help="sweep spec (TOML: [base], [grid], [hardware])")
    ap.add_argument("--out", required=True, help="results folder (results.sqlite, points/, PNG plots)")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes, one thread each")
    ap.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    ap.add_argument("--force", action="store_true", help="recompute points already in results.sqlite")
    ap.add_argument("--retries", type=int, default=2, help="retries per point after an error")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        if a.workers < 1:
            raise SpecError(f"--workers must be >= 1, got {a.workers}")
        if a.retries < 0:
            raise SpecError(f"--retries must be >= 0, got {a.retries}")
        spec = load_spec(a.spec)
        out = Path(a.out)
        rows = run_sweep(spec, out, workers=a.workers, scheduler=a.scheduler, force=a.force, retries=a.retries,
                         progress=not a.no_progress)
    except SpecError as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 1
    budget = spec["hardware"]["core_budget_bits"]
    print(f"all {len(rows)} rows ({out / 'results.sqlite'}):")
    print(format_table(rows, budget))
    front = non_dominated(rows)
    print(f"\nnon-dominated ({len(front)} of {len(rows)}: HDL accuracy up, total memory bits down, cycles down):")
    print(format_table(sorted(front, key=lambda r: -(r["acc_hdl"] or 0)), budget))
    paths = plot_pareto(rows, out)
    cap = plot_capacity(rows, out)
    if cap is not None:
        paths.append(cap)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    bad = [r for r in rows if r["parity_bit_exact"] != r["parity_samples"]]
    if bad:
        print(f"PARITY FAILED on {len(bad)} rows: the HDL is not bit-exact with hw.reference")
    return 0 if not bad else 1


if __name__ == "__main__":
    from sw.errors import guarded  # exit codes 0/1/2/3 as in every spikeline command

    sys.exit(guarded(main, None, "sweep"))
