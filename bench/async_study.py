"""Unlayered training and early exit: the study (issue #15 item 3).

    python bench/async_study.py --out build/async_study [--seeds 0 1 2] [--epochs 10]
                                [--schedulers fifo random momentum] [--forward-groups 1 4]
                                [--variants NAME ...] [--latency-loss W ...] [--hdl-seeds 0] [--backend verilator]
                                [--margins 0.5 1.5] [--exit-steps 3] [--no-hdl] [--report-only]

Per seed it trains the layered model and one unlayered model per (scheduler,
forward group) with ``sw.trainer.train`` on one pinned recipe (:data:`PROFILES`:
every training field is written out here and recorded in each result, so a
change of ``sw/configs/default.json`` cannot mix recipes). ``--latency-loss W`` adds the same
trainings with the latency-aware loss (``train.latency_loss_weight = W``: cross-entropy on the running
readout from step ``0.25 T`` on, ``sw.trainer.readout_loss``), named ``<training>+lat<W>``; the paired
comparisons then also give each such training minus the layered one with the same loss, and minus the
same training without it. Every model file then
runs in ``hw.reference`` on the test split under layered and async execution,
each with the SCDQ and the ring buffer, with early exit off and at two margins.
For the seeds in ``--hdl-seeds`` every model also runs through the HDL
(``cosim.run.cosimulate``, both executions x both delay units x the three
early-exit settings): cycles to exit and bit-exact parity come from there.

Early-exit margins come from each model's readout scale: ``m = round(q * L)``,
``L`` the median final readout lead (top minus runner-up of ``R[T-1]``) of the
model's layered run on its *validation* split (never the test split), one
``q`` per ``--margins`` value, ``s = --exit-steps``. One full reference run per
(execution, unit) gives every setting (``hw.reference.apply_early_exit``).

Resumable: a training writes ``models/<variant>/seed<S>/study_train.json`` when
it finishes (an interrupted one continues from its last epoch checkpoint), an
evaluation ``eval/<variant>/seed<S>.json``, an HDL run
``hdl/<variant>/seed<S>_<unit>.json``; a rerun skips what exists. The report
(``study.json``, ``table.md``, PNG plots) is rebuilt from those files each run.
Each training records the hash of the training code it ran with; the report
flags a group of models trained with different code.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import copy  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The study's recipe, every field written out: sw/configs/default.json of 2026-11-29 14:00 UTC, shortened
# to fit 21 trainings into the study's compute budget (2 shared cores): 10 epochs instead of 40, lr 0.01
# instead of 0.005, pruning over epochs 1-3 instead of 8-20 (with the default schedule squeezed into 10
# epochs, pruning at epochs 2-5 left 19.5 % test accuracy; this one recovers). ``mode``, ``seed``,
# ``unlayered`` and ``out`` are set per training.
_BASE = {
    "seed": 0,
    "data": {"source": "data/offline_shd", "root": "data/offline_shd", "dt": 0.01, "T": 100, "pool": 1,
             "limit": None, "val_fraction": 0.1,
             "time_norm": None,  # the study's trainings predate the input normalization (round 7)
             "synthetic": {"n_train": 1000, "n_test": 400, "n_channels": 6, "n_classes": 4, "gap": 6, "jitter": 1,
                           "noise": 2}},
    "model": {"hidden": [48, 48], "max_delay": 60, "delay_stride": 2, "no_delays": False, "tau_ms": 20.0,
              "readout_tau_ms": 20.0, "theta": 1.0, "weight_bits": 8, "membrane_bits": 24, "slope": 5.0,
              "init_gain": 1.0, "init_rate": 0.05, "quantize": True, "layer_max_delay": None,
              "delay_mode": "fixed", "sigma_init": 4.0, "sigma_final": 0.2},
    "train": {"epochs": 10, "batch_size": 32, "lr": 0.01, "weight_decay": 0.0, "lr_schedule": "cosine",
              "threads": 1, "augment_shift": 10, "augment_stretch": [0.7, 1.4], "augment_jitter": 1,
              "augment_dropout": 0.1, "device": "cpu", "synapse": "auto",
              # fields the default gained after the study's trainings (code of commit a0bad9a), pinned to the
              # behaviour those trainings had: every sample augmented, one batch shard, no low-bit warm-up
              # (it applies to 2..4-bit weights only)
              "augment_fraction": 1.0, "shards": 1, "low_bit_warmup": 0.0,
              # the latency-aware loss (sw.trainer.readout_loss): off, except in the "+lat" variants
              "latency_loss_weight": 0.0, "latency_loss_from": 0.25},
    "reg": {"rate_target": 0.0, "rate_weight": 0.0},
    "prune": {"method": "synaptic", "k": 1, "max_levels": 15, "steps": 4, "start": 0.1, "end": 0.3,
              "recalibrate": True},
    "budget": {"max_taps": 65536, "on_exceed": "prune"},
    "mode": "layered",
    "neuron": "lif",
    "unlayered": {"scheduler": "fifo", "forward_group": 1},
    "out": "build",
}


def _tiny() -> dict:
    """A seconds-long profile for tests: the synthetic delay task, one small hidden layer."""
    c = copy.deepcopy(_BASE)
    c["data"].update({"source": "synthetic", "T": 30, "val_fraction": 0.2})
    c["data"]["synthetic"].update({"n_train": 120, "n_test": 40, "n_channels": 4, "n_classes": 3, "gap": 4})
    c["model"].update({"hidden": [8], "max_delay": 8, "delay_stride": 2, "tau_ms": 10.0, "readout_tau_ms": 10.0,
                       "init_gain": 2.0, "init_rate": 0.0})
    c["train"].update({"epochs": 2, "lr": 0.01, "augment_shift": 0})
    c["prune"].update({"k": 2, "max_levels": 4, "steps": 1, "start": 0.5, "end": 0.5})
    return c


PROFILES = {"offline": _BASE, "tiny": _tiny()}
EXECUTIONS = (("layered", "scdq"), ("layered", "ring"), ("async", "scdq"), ("async", "ring"))
# the source files whose hash is recorded with each training (a training with other code is flagged)
TRAIN_CODE = ("sw/models/unlayered.py", "sw/models/unlayered_kernel.py", "sw/models/delay.py", "sw/models/lif.py",
              "sw/models/synapse.py", "sw/trainer.py", "sw/prune.py", "sw/quantize.py", "sw/export.py")


# fields a recorded training may lack (it ran before the field existed), with the value that reproduces
# what that training did: a record without them matches a config holding exactly these values
NEUTRAL = {"train.augment_fraction": 1.0, "train.shards": 1, "train.low_bit_warmup": 0.0,
           "train.latency_loss_weight": 0.0, "train.latency_loss_from": 0.25,
           "train.augment_stretch_rate": None, "train.augment_gain": [1.0, 1.0],
           "train.augment_warp": 0.0, "train.augment_stretch_target": None, "train.augment_stretch_quiet": None,
           "train.augment_loud": None,
           "train.label_smoothing": 0.0, "train.decay_weights_only": False,
           "train.consistency_weight": 0.0, "train.consistency_stretch": [0.5, 2.0], "train.average_from": None,
           "model.spike_dropout": 0.0, "data.time_norm": None}


class StudyError(ValueError):
    """A bad flag or an inconsistent result folder; the message names it."""


# ---------------------------------------------------------------- the models of the study
def variant_name(scheduler: str | None, forward_group, latency_loss: float = 0.0) -> str:
    lat = f"+lat{latency_loss:g}" if latency_loss > 0 else ""
    if scheduler is None:
        return "layered" + lat
    return f"unlayered-{scheduler}-F{'all' if forward_group is None else forward_group}{lat}"


def variants(schedulers, forward_groups, latency_losses=()) -> list[dict]:
    """The trainings: layered, then one unlayered model per (scheduler, forward group); then the same
    again for each latency-loss weight w > 0 (``train.latency_loss_weight = w``, names ending ``+lat<w>``)."""
    out = []
    for w in [0.0, *latency_losses]:
        out.append({"name": variant_name(None, None, w), "mode": "layered", "scheduler": None,
                    "forward_group": None, "latency_loss": w})
        for s in schedulers:
            for f in forward_groups:
                out.append({"name": variant_name(s, f, w), "mode": "unlayered", "scheduler": s,
                            "forward_group": f, "latency_loss": w})
    return out


def comparisons(vs: list[dict]) -> list[tuple[str, str]]:
    """``(training, baseline)`` pairs compared seed by seed: each unlayered training against the layered
    training with the same loss, and each latency-loss training against the same training without it."""
    names = {v["name"] for v in vs}
    out = []
    for v in vs:
        w = v.get("latency_loss", 0.0)
        if v["mode"] == "unlayered" and variant_name(None, None, w) in names:
            out.append((v["name"], variant_name(None, None, w)))
        plain = variant_name(v["scheduler"], v["forward_group"])
        if w > 0 and plain in names:
            out.append((v["name"], plain))
    return out


def same_recipe(recorded: dict, cfg: dict, prefix: str = "") -> bool:
    """``recorded`` (a training's config) equals ``cfg``, a field missing from ``recorded`` counting as
    equal when ``cfg`` holds its :data:`NEUTRAL` value."""
    for k in set(recorded) | set(cfg):
        name = prefix + k
        if k not in recorded:
            if not (name in NEUTRAL and cfg[k] == NEUTRAL[name]):
                return False
        elif k not in cfg:
            return False
        elif isinstance(recorded[k], dict) and isinstance(cfg[k], dict):
            if not same_recipe(recorded[k], cfg[k], name + "."):
                return False
        elif recorded[k] != cfg[k]:
            return False
    return True


def study_config(profile: str, variant: dict, seed: int, epochs: int | None, limit: int | None, out: Path) -> dict:
    """The full training config of one model (validated by ``sw.config.load_config``)."""
    from sw.config import load_config

    c = copy.deepcopy(PROFILES[profile])
    c["seed"] = int(seed)
    c["mode"] = variant["mode"]
    if variant["scheduler"] is not None:
        c["unlayered"] = {"scheduler": variant["scheduler"], "forward_group": variant["forward_group"]}
    c["train"]["latency_loss_weight"] = float(variant.get("latency_loss", 0.0))
    if epochs is not None:
        c["train"]["epochs"] = int(epochs)
    if limit is not None:
        c["data"]["limit"] = int(limit)
    c["out"] = str(out)
    cfg = load_config(overrides=c)
    extra = sorted(_diff_keys(cfg, c))
    if extra:  # a field the default gained after this recipe was pinned: recorded, and named in the log
        print(f"note: config fields not pinned by the study (taken from the default): {', '.join(extra)}")
    return cfg


def _diff_keys(full: dict, pinned: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in full.items():
        if k not in pinned:
            out.append(prefix + k)
        elif isinstance(v, dict) and isinstance(pinned[k], dict):
            out += _diff_keys(v, pinned[k], f"{prefix}{k}.")
    return out


def code_version() -> dict:
    """sha256 (16 hex) of each training source file, and the git commit of the checkout, as this process
    loaded them (read once, at its first call: a merge during a long run does not change what it ran)."""
    global _CODE
    if _CODE is None:
        _CODE = _read_code_version()
    return _CODE


_CODE = None


def _read_code_version() -> dict:
    out = {p: hashlib.sha256((ROOT / p).read_bytes()).hexdigest()[:16] for p in TRAIN_CODE if (ROOT / p).is_file()}
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    return {"files": out, "git_head": head}


def _write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)  # atomic: a crash leaves the old file or none, never half of one


def train_one(cfg: dict, variant: dict, seed: int, mdir: Path, log) -> dict:
    """Train (or continue, or skip) one model; returns its ``study_train.json`` record."""
    from sw.trainer import train

    done = mdir / "study_train.json"
    if done.is_file():
        rec = json.loads(done.read_text())
        if not same_recipe(rec["config"], cfg):
            raise StudyError(f"'{done}' was trained with another config; use another --out or delete that folder")
        return rec
    t0 = time.time()
    code = code_version()
    s = train(cfg, resume=True, progress=False, log=lambda m: log(f"    [{variant['name']} seed {seed}] {m}"))
    rec = {"variant": variant, "seed": seed, "config": cfg, "code": code, "wall_seconds_this_run": time.time() - t0,
           "seconds_training": s["seconds_training"], "epoch_seconds": [h["seconds"] for h in s["history"]],
           "float_acc": s["float_acc"], "integer_acc": s["integer_acc"], "parity_all_bit_exact":
           s["parity"]["all_bit_exact"], "model_path": str(mdir / "model.safetensors")}
    _write_json(rec, done)
    return rec


# ---------------------------------------------------------------- evaluation in the reference
def calibrate_margins(model, Xval: np.ndarray, qs, steps: int) -> dict:
    """Margins from the model's readout scale on its validation split (layered execution)."""
    from hw.reference import simulate

    R = simulate(model, Xval, "layered").readout[:, -1]  # [B, n_classes], final readout sums
    top2 = np.sort(R, axis=-1)[:, -2:]
    lead = float(np.median(top2[:, 1] - top2[:, 0]))
    hi = (1 << model.widths.readout_bits) - 1
    settings = {"off": [0, 0]}
    for q in qs:
        settings[f"q{q:g}"] = [int(min(hi, max(1, round(q * lead)))), int(steps)]
    return {"median_final_lead_val": lead, "val_samples": int(len(Xval)), "q": list(qs), "settings": settings}


def ref_metrics(model, res, y: np.ndarray) -> dict:
    """Per-inference means of one (execution, unit, early-exit setting) run of the reference."""
    hidden = [l for l, L in enumerate(model.layers) if L.spiking]
    n = [model.layers[l].n_out for l in hidden]
    T = int(model.T)
    spk = np.stack([res.spikes(l).sum(axis=(1, 2)) for l in hidden], 1).astype(np.float64)  # [B, Lh]
    pred = res.predictions
    ok = pred == y
    ttd = res.time_to_decision.astype(np.float64)
    ex = res.exit_step.astype(np.float64)
    return {
        "accuracy": float(ok.mean()),
        "density": float(spk.sum(1).mean() / (T * sum(n))),  # hidden spikes / (T x hidden neurons)
        "density_per_layer": [float(spk[:, i].mean() / (T * n[i])) for i in range(len(n))],
        "spikes_per_inference": float(spk.sum(1).mean()),
        "sops_per_inference": float(res.sops.sum(1).mean()),
        "time_to_decision": float(ttd.mean()),
        "time_to_decision_correct": float(ttd[ok].mean()) if ok.any() else None,
        "exit_step": float(ex.mean()),
        "steps_run": float(ex.mean() + 1),
        "exited_early": float(np.mean(res.early_exit & (res.exit_step < T - 1))),
    }


def evaluate_one(model, Xte, yte, Xval, qs, steps: int) -> dict:
    from hw.reference import apply_early_exit, simulate

    cal = calibrate_margins(model, Xval, qs, steps)
    runs = {}
    for mode, unit in EXECUTIONS:
        full = simulate(model, Xte, mode, unit)
        runs[f"{mode}/{unit}"] = {name: ref_metrics(model, apply_early_exit(full, tuple(ms),
                                                                            model.widths.readout_bits), yte)
                                  for name, ms in cal["settings"].items()}
    return {"margins": cal, "test_samples": int(len(yte)), "reference": runs}


def hdl_one(model, Xte, yte, unit: str, settings: dict, backend: str, workers: int, progress: bool) -> dict:
    """Both executions x every early-exit setting through the HDL for one delay unit."""
    from cosim.run import cosimulate

    rep = cosimulate(model, Xte, yte, backend=backend, modes=("layered", "async"), delay_units=(unit,),
                     workers=workers, progress=progress, log=lambda m: None,
                     early_exit=[f"{m},{s}" for m, s in settings.values()])
    out = {}
    for r in rep["early_exit"]:
        pts = {(p["margin"], p["steps"]) if not p["off"] else (0, 0): p for p in r["points"]}
        out[f"{r['mode']}/{r['delay_unit']}"] = {
            name: {"accuracy": pts[key]["accuracy"]["hdl"], "accuracy_reference": pts[key]["accuracy"]["reference"],
                   "bit_exact": pts[key]["parity"]["bit_exact"], "samples": pts[key]["parity"]["samples"],
                   "cycles_mean": pts[key]["cycles"]["mean"], "cycles_p99": pts[key]["cycles"]["p99"],
                   "exit_step": pts[key]["exit_step"]["mean"], "sops_per_inference": pts[key]["sops_per_inference"],
                   "energy_per_inference_nj": pts[key]["energy_per_inference_nj"]}
            for name, (m, s) in settings.items() for key in [(0, 0) if m == 0 or s == 0 else (m, s)]}
    runs = {f"{r['mode']}/{r['delay_unit']}": {"bit_exact": r["parity"]["bit_exact"],
                                                "samples": r["parity"]["samples"]} for r in rep["runs"]}
    return {"unit": unit, "backend": backend, "early_exit": out, "runs": runs}


# ---------------------------------------------------------------- aggregation
METRICS = ("accuracy", "density", "spikes_per_inference", "sops_per_inference", "time_to_decision",
           "time_to_decision_correct", "exit_step", "exited_early")


def _stat(vals: list) -> dict:
    v = [x for x in vals if x is not None]
    return {"mean": float(np.mean(v)) if v else None,
            "std": float(np.std(v, ddof=1)) if len(v) > 1 else (0.0 if v else None), "per_seed": vals}


def aggregate(evals: dict, hdls: dict, seeds: list[int], names: list[str]) -> list[dict]:
    """One row per (training, execution/unit, early-exit setting): mean, std and per-seed values."""
    rows = []
    for name in names:
        got = [s for s in seeds if (name, s) in evals]
        if not got:
            continue
        first = evals[(name, got[0])]
        for ex in first["reference"]:
            for setting in first["reference"][ex]:
                row = {"training": name, "execution": ex, "setting": setting, "seeds": got,
                       "margin_per_seed": [evals[(name, s)]["margins"]["settings"][setting][0] for s in got]}
                for k in METRICS:
                    row[k] = _stat([evals[(name, s)]["reference"][ex][setting][k] for s in got])
                row["density_per_layer"] = [_stat([evals[(name, s)]["reference"][ex][setting]["density_per_layer"][i]
                                                   for s in got])
                                            for i in range(len(first["reference"][ex][setting]["density_per_layer"]))]
                hd = {}
                for s in seeds:
                    h = hdls.get((name, s, ex.split("/")[1]))
                    if h is not None and ex in h["early_exit"]:
                        hd[str(s)] = h["early_exit"][ex][setting]
                row["hdl"] = hd
                rows.append(row)
    return rows


def paired(evals: dict, seeds: list[int], pairs: list[tuple[str, str]],
           executions=("async/scdq", "async/ring")) -> list[dict]:
    """Training minus baseline per seed, both under async execution, for each ``(training, baseline)`` of
    ``pairs`` (:func:`comparisons`: unlayered-trained minus layered-trained, and the latency-loss effect)."""
    from scipy import stats

    out = []
    for name, vs in pairs:
        both = [s for s in seeds if (name, s) in evals and (vs, s) in evals]
        if not both:
            continue
        for ex in executions:
            for setting in evals[(name, both[0])]["reference"][ex]:
                row = {"training": name, "vs": vs, "execution": ex, "setting": setting, "seeds": both}
                for k in ("accuracy", "density", "sops_per_inference", "time_to_decision", "time_to_decision_correct",
                          "exit_step"):
                    ours = [evals[(name, s)]["reference"][ex][setting][k] for s in both]
                    base = [evals[(vs, s)]["reference"][ex][setting][k] for s in both]
                    if any(x is None for x in ours + base):  # no correct sample: no decision time to compare
                        continue
                    d = [x - b for x, b in zip(ours, base)]
                    p = None
                    if len(d) > 1 and np.std(d) > 0:
                        p = float(stats.ttest_1samp(d, 0.0).pvalue)
                    row[k] = {"diff_per_seed": d, "mean": float(np.mean(d)),
                              "sign": {"pos": int(sum(x > 0 for x in d)), "neg": int(sum(x < 0 for x in d)),
                                       "zero": int(sum(x == 0 for x in d))},
                              "paired_t_p": p}
                # accuracy against the baseline's at the same mean exit step: the baseline's accuracy-vs-exit
                # curve (its off and margin settings) interpolated linearly; None outside the curve's range
                d = [matched_exit_diff(evals[(name, s)]["reference"][ex][setting],
                                       evals[(vs, s)]["reference"][ex]) for s in both]
                v = [x for x in d if x is not None]
                row["accuracy_matched_exit"] = {
                    "diff_per_seed": d, "mean": float(np.mean(v)) if v else None,
                    "sign": {"pos": int(sum(x > 0 for x in v)), "neg": int(sum(x < 0 for x in v)),
                             "zero": int(sum(x == 0 for x in v))}}
                out.append(row)
    return out


def matched_exit_diff(ours: dict, base_settings: dict) -> float | None:
    """``ours`` accuracy minus the baseline's accuracy at ``ours`` mean exit step, read off the baseline's
    (exit step, accuracy) points of every early-exit setting by linear interpolation."""
    pts = sorted((b["exit_step"], b["accuracy"]) for b in base_settings.values())
    xs, ys = [x for x, _ in pts], [y for _, y in pts]
    e = ours["exit_step"]
    if not xs[0] <= e <= xs[-1]:
        return None
    return float(ours["accuracy"] - np.interp(e, xs, ys))


POOLED = ("accuracy", "density", "time_to_decision", "time_to_decision_correct", "exit_step", "accuracy_matched_exit")


def pooled(prs: list[dict]) -> list[dict]:
    """The paper's claims over every unlayered training at once: per (baseline, execution, exit setting),
    the per-seed differences of every unlayered training against its layered baseline, counted by sign.
    The trainings share each seed's baseline, so the pairs are not independent: counts, no p-value."""
    groups: dict = {}
    for p in prs:
        if p["vs"].startswith("layered") and p["training"].startswith("unlayered"):
            groups.setdefault((p["vs"], p["execution"], p["setting"]), []).append(p)
    out = []
    for (vs, ex, setting), ps in groups.items():
        row = {"vs": vs, "execution": ex, "setting": setting, "trainings": [p["training"] for p in ps]}
        for k in POOLED:
            d = [x for p in ps if k in p for x in p[k]["diff_per_seed"] if x is not None]
            if not d:
                continue
            means = [p[k]["mean"] for p in ps if k in p and p[k]["mean"] is not None]
            row[k] = {"pairs": len(d), "neg": int(sum(x < 0 for x in d)), "pos": int(sum(x > 0 for x in d)),
                      "mean": float(np.mean(d)), "training_means_min": float(min(means)),
                      "training_means_max": float(max(means))}
        out.append(row)
    return out


def format_pooled(rows: list[dict]) -> str:
    head = ("unlayered trainings", "minus", "execution", "exit") + tuple(
        f"Δ {k.replace('_', ' ')}: -/+ of pairs, mean [range of training means]" for k in POOLED)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = []
        for k in POOLED:
            c = r.get(k)
            sc, f = ((100, "+.1f") if k.startswith("accuracy") else (1, "+.3f") if k == "density" else (1, "+.1f"))
            cells.append("-" if c is None else f"{c['neg']}/{c['pos']} of {c['pairs']}, {sc * c['mean']:{f}} "
                         f"[{sc * c['training_means_min']:{f}}, {sc * c['training_means_max']:{f}}]")
        lines.append("| " + " | ".join((str(len(r["trainings"])), r["vs"], r["execution"], r["setting"],
                                        *cells)) + " |")
    return "\n".join(lines)


def format_hdl(rows: list[dict]) -> str:
    """HDL cycles per inference (mean over the HDL samples) of each training's first HDL seed: one line per
    training, early exit off / q1 / q3 for each (execution, unit); bit-exact counts over all its runs."""
    exs = [f"{m}/{u}" for m, u in EXECUTIONS]
    head = ("training", "HDL seed", "words") + tuple(f"{ex} off / q1 / q3" for ex in exs) + ("bit-exact",)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in dict.fromkeys(r["training"] for r in rows):
        mine = [r for r in rows if r["training"] == name and r["hdl"]]
        if not mine:
            continue
        seed = min(mine[0]["hdl"], key=int)
        cells, ok, n, words = [], 0, 0, set()
        for ex in exs:
            pts = {r["setting"]: r["hdl"][seed] for r in mine if r["execution"] == ex and seed in r["hdl"]}
            cells.append(" / ".join(f"{pts[k]['cycles_mean']:,.0f}" if k in pts else "-" for k in ("off", "q1", "q3"))
                         if pts else "-")
            for p in pts.values():
                ok, n = ok + p["bit_exact"], n + p["samples"]
                words.add(p["samples"])
        lines.append("| " + " | ".join((name, seed, "/".join(str(w) for w in sorted(words)), *cells, f"{ok}/{n}"))
                     + " |")
    return "\n".join(lines)


# the rows of the short table (docs/results.md): every async/scdq row, and these
COMPACT = {("layered/scdq", "off"), ("async/ring", "off")}


def _pm(st: dict, scale: float = 1.0, fmt: str = ".2f") -> str:
    if st is None or st["mean"] is None:
        return "-"
    return f"{scale * st['mean']:{fmt}} ± {scale * st['std']:{fmt}}"


def format_table(rows: list[dict], settings_label: dict | None = None) -> str:
    head = ("training", "execution", "exit", "accuracy %", "hidden density", "SOPs / inference",
            "time to decision (steps)", "exit step", "HDL cycles (seed 0)", "HDL bit-exact")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        h0 = r["hdl"].get(str(r["seeds"][0])) if r["seeds"] else None
        cyc = "-" if not h0 else f"{h0['cycles_mean']:,.0f}"
        be = "-" if not r["hdl"] else " ".join(f"{h['bit_exact']}/{h['samples']}" for h in r["hdl"].values())
        lines.append("| " + " | ".join((
            r["training"], r["execution"], r["setting"] if r["setting"] == "off" else
            f"{r['setting']} (m={'/'.join(str(m) for m in r['margin_per_seed'])})",
            _pm(r["accuracy"], 100), _pm(r["density"], 1, ".4f"), _pm(r["sops_per_inference"], 1, ",.0f"),
            _pm(r["time_to_decision"], 1, ".1f"), _pm(r["exit_step"], 1, ".1f"), cyc, be)) + " |")
    return "\n".join(lines)


def format_paired(prs: list[dict]) -> str:
    head = ("training", "minus", "execution", "exit", "Δ accuracy (points) per seed", "mean", "sign +/-",
            "p (paired t)", "Δ density mean", "Δ SOPs mean", "Δ time to decision mean (steps)", "sign +/-",
            "Δ exit step mean", "Δ accuracy at the baseline's curve, same exit step (points) per seed")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in prs:
        a, d, s, t = p["accuracy"], p["density"], p["sops_per_inference"], p["time_to_decision"]
        lines.append("| " + " | ".join((
            p["training"], p["vs"], p["execution"], p["setting"], " ".join(f"{100 * x:+.2f}" for x in a["diff_per_seed"]),
            f"{100 * a['mean']:+.2f}", f"{a['sign']['pos']}/{a['sign']['neg']}",
            "-" if a["paired_t_p"] is None else f"{a['paired_t_p']:.3f}", f"{d['mean']:+.4f}", f"{s['mean']:+,.0f}",
            f"{t['mean']:+.1f}", f"{t['sign']['pos']}/{t['sign']['neg']}", f"{p['exit_step']['mean']:+.1f}",
            " ".join("-" if x is None else f"{100 * x:+.1f}" for x in p["accuracy_matched_exit"]["diff_per_seed"])))
            + " |")
    return "\n".join(lines)


def plots(rows: list[dict], prs: list[dict], out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    names = list(dict.fromkeys(r["training"] for r in rows))
    # 1. accuracy vs exit step, async/scdq, one curve per training (error bars: std over seeds)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, ex in zip(axes, ("layered/scdq", "async/scdq")):
        for name in names:
            pts = sorted((r for r in rows if r["training"] == name and r["execution"] == ex),
                         key=lambda r: r["exit_step"]["mean"])
            if not pts:
                continue
            ax.errorbar([r["exit_step"]["mean"] for r in pts], [100 * r["accuracy"]["mean"] for r in pts],
                        xerr=[r["exit_step"]["std"] for r in pts], yerr=[100 * r["accuracy"]["std"] for r in pts],
                        marker="o", capsize=2, label=name)
        ax.set_xlabel("mean exit step (steps run - 1)")
        ax.set_ylabel("accuracy % (hw.reference)")
        ax.set_title(f"{ex}: early exit off / two margins")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    p = out / "accuracy_vs_exit.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    paths.append(p)
    # 2. accuracy and density per training, layered vs async execution (early exit off)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    xs = np.arange(len(names))
    exs = [e for e, _ in ((f"{m}/{u}", 0) for m, u in EXECUTIONS)]
    for ax, key, lab, sc in zip(axes, ("accuracy", "density", "time_to_decision"),
                                ("accuracy %", "hidden spike density", "time to decision (steps)"), (100, 1, 1)):
        for i, ex in enumerate(exs):
            vals = [next((r for r in rows if r["training"] == n and r["execution"] == ex and r["setting"] == "off"),
                         None) for n in names]
            ax.bar(xs + (i - 1.5) * 0.2, [sc * v[key]["mean"] if v else np.nan for v in vals], 0.2,
                   yerr=[sc * v[key]["std"] if v else 0 for v in vals], capsize=2, label=ex)
        ax.set_xticks(xs, names, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    p = out / "training_vs_execution.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    paths.append(p)
    # 3. paired differences per seed (async/scdq, off)
    sel = [q for q in prs if q["execution"] == "async/scdq" and q["setting"] == "off"]
    if sel:
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
        for ax, key, lab, sc in zip(axes, ("accuracy", "density", "time_to_decision"),
                                    ("Δ accuracy (points)", "Δ hidden density", "Δ time to decision (steps)"),
                                    (100, 1, 1)):
            for i, q in enumerate(sel):
                d = q[key]["diff_per_seed"]
                ax.scatter([i] * len(d), [sc * x for x in d], zorder=3)
                ax.hlines(sc * q[key]["mean"], i - 0.3, i + 0.3, color="k")
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_xticks(range(len(sel)), [f"{q['training']} - {q['vs']}" for q in sel], rotation=35, ha="right",
                          fontsize=6)
            ax.set_ylabel(lab)
            ax.set_title("training - baseline, async/scdq, per seed", fontsize=9)
            ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        p = out / "paired_async.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        paths.append(p)
    return paths


# ---------------------------------------------------------------- driver
def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="bench/async_study.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="build/async_study")
    ap.add_argument("--profile", default="offline", choices=sorted(PROFILES),
                    help="pinned recipe: offline (the study) or tiny (synthetic, for tests)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, help="training epochs (default: the profile's)")
    ap.add_argument("--limit", type=int, help="at most this many samples per split (dry runs)")
    ap.add_argument("--schedulers", nargs="+", default=["fifo", "random", "momentum"])
    ap.add_argument("--forward-groups", nargs="+", default=["1", "4"], help="ints or 'all'")
    ap.add_argument("--variants", nargs="+", help="only these trainings (names as in the table, e.g. layered)")
    ap.add_argument("--latency-loss", type=float, nargs="*", default=[], metavar="W",
                    help="also train every model with the latency-aware loss at these weights "
                         "(train.latency_loss_weight, in (0, 1]; names end '+lat<W>')")
    ap.add_argument("--margins", type=float, nargs="+", default=[1.0, 3.0],
                    help="early-exit margins as multiples q of the median final readout lead (validation split)")
    ap.add_argument("--exit-steps", type=int, default=3, help="early exit: consecutive steps s")
    ap.add_argument("--hdl-seeds", type=int, nargs="*", default=[0], help="seeds run through the HDL")
    ap.add_argument("--no-hdl", action="store_true")
    ap.add_argument("--hdl-units", nargs="+", default=["scdq", "ring"], choices=("scdq", "ring"),
                    help="delay units run through the HDL")
    ap.add_argument("--backend", default="verilator", choices=("verilator", "amaranth"))
    ap.add_argument("--hdl-samples", type=int, help="test samples through the HDL (default all)")
    ap.add_argument("--workers", type=int, default=1, help="HDL harness processes")
    ap.add_argument("--report-only", action="store_true", help="no training or simulation: rebuild the report")
    ap.add_argument("--no-train", action="store_true",
                    help="start no training: evaluate and run the HDL for the models that are trained")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    fgs = []
    for f in a.forward_groups:
        if f == "all":
            fgs.append(None)
        elif f.isdigit() and int(f) >= 1:
            fgs.append(int(f))
        else:
            raise StudyError(f"--forward-groups: positive ints or 'all', got {f!r}")
    a.forward_groups = fgs
    from sw.config import SCHEDULERS
    for s in a.schedulers:
        if s not in SCHEDULERS:
            raise StudyError(f"--schedulers: one of {SCHEDULERS}, got {s!r}")
    if any(not 0 < w <= 1 for w in a.latency_loss):
        raise StudyError(f"--latency-loss: weights in (0, 1], got {a.latency_loss}")
    if any(q <= 0 for q in a.margins):
        raise StudyError(f"--margins must be > 0, got {a.margins}")
    if a.exit_steps < 1:
        raise StudyError(f"--exit-steps must be >= 1, got {a.exit_steps}")
    return a


def main(argv=None) -> int:
    try:
        return _main(argv)
    except StudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(argv=None) -> int:
    a = parse_args(argv)
    code_version()  # the training code as loaded now (imported right away)
    import sw.models.unlayered  # noqa: F401
    import sw.trainer  # noqa: F401
    from hw.model_file import load
    from sw.data.splits import load_data

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    vs = variants(a.schedulers, a.forward_groups, a.latency_loss)
    if a.variants:
        unknown = set(a.variants) - {v["name"] for v in vs}
        if unknown:
            raise StudyError(f"--variants: unknown {sorted(unknown)}; known: {[v['name'] for v in vs]}")
        vs = [v for v in vs if v["name"] in a.variants]
    log = lambda m: tqdm.write(m, file=sys.stderr)  # noqa: E731  (also with --no-progress: the run's log)
    # variant-major order: every seed of the layered model first, then each unlayered variant over the seeds,
    # so that an interrupted study has complete seeds for the variants it reached; the HDL runs come last
    todo = [("train", v, s) for v in vs for s in a.seeds]
    if not a.no_hdl and not a.report_only:
        todo += [("hdl", v, s) for s in a.hdl_seeds if s in a.seeds for v in vs]
    evals, hdls, trains = {}, {}, {}
    bar = tqdm(todo, desc="async study", disable=a.no_progress, file=sys.stderr)
    data_cache: dict = {}

    def data(cfg, seed):
        key = (seed, json.dumps(cfg["data"], sort_keys=True))
        if key not in data_cache:
            data_cache.clear()
            d = load_data(cfg)
            data_cache[key] = (d.Xte, d.yte, d.Xval)
        return data_cache[key]

    for phase, v, seed in bar:
        bar.set_postfix_str(f"{phase} {v['name']} seed {seed}")
        mdir = out / "models" / v["name"] / f"seed{seed}"
        efile = out / "eval" / v["name"] / f"seed{seed}.json"
        hfiles = {u: out / "hdl" / v["name"] / f"seed{seed}_{u}.json" for u in a.hdl_units}
        tfile = mdir / "study_train.json"
        if phase == "train" and not a.report_only and not a.no_train:
            cfg = study_config(a.profile, v, seed, a.epochs, a.limit, mdir)
            trains[(v["name"], seed)] = train_one(cfg, v, seed, mdir, log)
            if not efile.is_file():
                Xte, yte, Xval = data(cfg, seed)
                log(f"    [{v['name']} seed {seed}] hw.reference: 4 executions x {1 + len(a.margins)} exits")
                _write_json({"training": v["name"], "seed": seed,
                             **evaluate_one(load(mdir / "model.safetensors"), Xte, yte, Xval, a.margins,
                                            a.exit_steps)}, efile)
        elif phase == "train" and tfile.is_file():  # --no-train / --report-only: the recorded training as is
            trains[(v["name"], seed)] = json.loads(tfile.read_text())
            if not efile.is_file() and not a.report_only:
                cfg = trains[(v["name"], seed)]["config"]
                Xte, yte, Xval = data(cfg, seed)
                _write_json({"training": v["name"], "seed": seed,
                             **evaluate_one(load(mdir / "model.safetensors"), Xte, yte, Xval, a.margins,
                                            a.exit_steps)}, efile)
        if phase == "hdl" and efile.is_file() and tfile.is_file():
            cfg = json.loads(tfile.read_text())["config"]
            settings = json.loads(efile.read_text())["margins"]["settings"]
            for u, hf in hfiles.items():
                if not hf.is_file():
                    Xte, yte, _ = data(cfg, seed)
                    n = a.hdl_samples or len(yte)
                    log(f"    [{v['name']} seed {seed}] HDL ({a.backend}) {u}: 2 executions x "
                        f"{len(settings)} exits, {n} samples")
                    _write_json({"training": v["name"], "seed": seed, "samples": n,
                                 **hdl_one(load(mdir / "model.safetensors"), Xte[:n], yte[:n], u, settings,
                                           a.backend, a.workers, not a.no_progress)}, hf)
        if efile.is_file():
            evals[(v["name"], seed)] = json.loads(efile.read_text())
        for u, hf in hfiles.items():
            if hf.is_file():
                hdls[(v["name"], seed, u)] = json.loads(hf.read_text())
        if phase == "train" and not a.report_only:
            report(out, a, vs, evals, hdls, trains, quiet=True)  # partial results stay readable during the run
    report(out, a, vs, evals, hdls, trains)
    return 0


def _history(mdir: Path) -> list:
    """Per-epoch loss, train and validation accuracy of one training (its train_summary.json)."""
    f = mdir / "train_summary.json"
    if not f.is_file():
        return []
    return [{k: h[k] for k in ("epoch", "loss", "train_acc", "val_acc", "seconds")}
            for h in json.loads(f.read_text())["history"]]


def report(out: Path, a, vs, evals, hdls, trains, quiet: bool = False) -> dict:
    names = [v["name"] for v in vs]
    rows = aggregate(evals, hdls, list(a.seeds), names)
    prs = paired(evals, list(a.seeds), comparisons(vs))
    # one code version per group: the unlayered trainings (with one loss) must not mix training code
    code_groups = {}
    for (name, seed), t in trains.items():
        v = t.get("variant") or next(x for x in vs if x["name"] == name)
        lat = v.get("latency_loss", 0.0)
        grp = ("layered" if v["mode"] == "layered" else "unlayered") + (f"+lat{lat:g}" if lat > 0 else "")
        code_groups.setdefault(grp, set()).add(json.dumps(t["code"]["files"], sort_keys=True))
    mixed = {g: len(c) > 1 for g, c in code_groups.items()}
    # every HDL run (both executions x every early-exit setting) must be bit-exact with the reference
    not_exact = sorted(f"{name} seed {seed} {ex} {setting}: {p['bit_exact']}/{p['samples']}"
                       for (name, seed, _), h in hdls.items() for ex, pts in h["early_exit"].items()
                       for setting, p in pts.items() if p["bit_exact"] != p["samples"])
    hdl_check = {"runs": len(hdls), "samples": sorted({h["samples"] for h in hdls.values()}),
                 "all_bit_exact": not not_exact, "not_bit_exact": not_exact}
    study = {"argv": sys.argv, "profile": a.profile, "seeds": list(a.seeds), "variants": vs,
             "margins_q": a.margins, "exit_steps": a.exit_steps, "hdl_seeds": a.hdl_seeds,
             "trainings": [{"training": k[0], "seed": k[1], **{x: t[x] for x in t if x != "variant"},
                            "history": _history(out / "models" / k[0] / f"seed{k[1]}")}
                           for k, t in trains.items()],
             "mixed_training_code": mixed, "hdl_parity": hdl_check, "rows": rows, "paired": prs,
             "pooled": pooled(prs)}
    _write_json(study, out / "study.json")
    table = format_table(rows)
    compact = format_table([r for r in rows if (r["execution"], r["setting"]) in COMPACT or
                            (r["execution"] == "async/scdq")])
    ptab = format_paired(prs)
    htab = format_hdl(rows)
    (out / "table_compact.md").write_text(compact + "\n\n" + format_paired(
        [p for p in prs if p["execution"] == "async/scdq"]) + "\n\n" + format_pooled(study["pooled"]) + "\n\n"
        + htab + "\n")
    warn = "".join(f"\nWARNING: the {g} trainings ran with different training code (see study.json)\n"
                   for g, m in mixed.items() if m)
    warn += "".join(f"\nWARNING: HDL not bit-exact with the reference: {x}\n" for x in not_exact)
    text = (f"{table}\n\npaired, per seed: training minus baseline, both under async execution\n\n{ptab}\n\n"
            f"pooled: every unlayered training minus its layered baseline, per seed (accuracy in points)\n\n"
            f"{format_pooled(study['pooled'])}\n\nHDL cycles per inference\n\n{htab}\n{warn}")
    (out / "table.md").write_text(text)
    pngs = plots(rows, prs, out) if rows else []
    if quiet:
        return study
    print(text)
    print(f"wrote {out / 'study.json'}, {out / 'table.md'}" + "".join(f", {p}" for p in pngs))
    return study


if __name__ == "__main__":
    sys.exit(main())
