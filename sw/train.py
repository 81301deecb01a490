"""Train, prune, quantize and export a hardware-aware delay SNN.

    python -m sw.train [--config sw/configs/default.json] [--data synthetic|offline|<SHD dir>]
                       [--epochs N] [--seed S] [--no-delays] [--prune synaptic|axonal|layer|none]
                       [--max-levels K] [--out build] [--resume] [--mode layered|unlayered]
                       [--neuron lif|psu|ipsu|rpsu] [--scheduler fifo|random|momentum]
                       [--forward-group F] [--set section.field=JSON ...]

The JSON config (partial configs are merged over the default) is validated
field by field; flags override it. Every epoch is checkpointed to
``<out>/checkpoints/last.pt`` (state dicts only, loaded with ``weights_only``);
``--resume`` continues from it and ends with the same bits as an uninterrupted
run. At the end the model is exported to ``<out>/model.safetensors``, checked
against ``hw.reference`` (layered) sample by sample, and summarized in
``<out>/train_summary.json``. The test split is used only for that final report;
the per-epoch figure is a validation split held out of train.

``--no-delays`` keeps the topology and uses delay 0 only. Parameter parity: the
default pruning (``synaptic``, ``k = 1``) leaves the delay model one tap per
synapse, so both models have at most ``n_in * n_out`` non-zero weights per layer
(36864 for 700-48-48-20); the delay model's extra freedom is which of at most 15
delays each synapse uses (a row index in the synapse memory, not a weight).

``train.threads`` defaults to 1: the neuron recurrence is many small ops, and on
a shared 2-core machine two OpenMP threads wait on each other at every op
(measured 10x slower under load, bench/train.py --threads 2 vs 1).
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python sw/train.py): make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import importlib
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hw.model_file import ModelFileError, save
from sw.data import augment
from sw.export import BudgetError, IntegerResult, integer_forward, parity, to_model_file
from sw.models.delay import DelayNet, NetConfig, mem_sum_loss, unquantized
from sw.prune import METHODS, enforce_budget, mask_stats, prune_net, schedule

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.json"
NEURONS = ("lif", "psu", "ipsu", "rpsu")
MODES = ("layered", "unlayered")
SCHEDULERS = ("fifo", "random", "momentum")
# fields whose value may be null, or have a fixed set of values
NULLABLE = {"data.limit", "budget.max_taps", "unlayered.forward_group"}
CHOICES = {"mode": MODES, "neuron": NEURONS, "prune.method": METHODS + ("none",),
           "train.lr_schedule": ("cosine", "constant"), "budget.on_exceed": ("prune", "error"),
           "unlayered.scheduler": SCHEDULERS}


class ConfigError(ValueError):
    """A bad config field or flag; the message names it."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"config field '{field}': {message}")


# ---------------------------------------------------------------- config
def _read_json(path) -> dict:
    path = Path(path)
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("--config", f"no such file '{path}'") from None
    except json.JSONDecodeError as e:
        raise ConfigError("--config", f"'{path}' is not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise ConfigError("--config", f"'{path}' must hold a JSON object")
    return cfg


def _merge(base: dict, over: dict, prefix: str = "") -> dict:
    """Deep-merge ``over`` into a copy of ``base``; unknown keys and wrong types are errors."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        name = f"{prefix}{k}"
        if k not in base:
            raise ConfigError(name, f"unknown field (known: {', '.join(sorted(base))})")
        b = base[k]
        if isinstance(b, dict):
            if not isinstance(v, dict):
                raise ConfigError(name, f"must be an object, got {v!r}")
            out[k] = _merge(b, v, name + ".")
            continue
        if v is None and name in NULLABLE:
            out[k] = None
            continue
        ok = (isinstance(v, bool) if isinstance(b, bool)
              else isinstance(v, (int, float)) and not isinstance(v, bool) if isinstance(b, float)
              else isinstance(v, int) and not isinstance(v, bool) if isinstance(b, int)
              else isinstance(v, type(b)) if b is not None else True)
        if name in NULLABLE and name != "data.limit":
            ok = ok or isinstance(v, (int, list))
        if not ok:
            raise ConfigError(name, f"must be of type {type(b).__name__}, got {v!r}")
        out[k] = v
    return out


def _check(cfg: dict) -> dict:
    for name, allowed in CHOICES.items():
        sec, _, key = name.rpartition(".")
        v = cfg[sec][key] if sec else cfg[key]
        if v not in allowed:
            raise ConfigError(name, f"must be one of {list(allowed)}, got {v!r}")
    t, d, p = cfg["train"], cfg["data"], cfg["prune"]
    for name, v, lo in (("train.augment_shift", t["augment_shift"], 0), ("train.epochs", t["epochs"], 1), ("train.batch_size", t["batch_size"], 1),
                        ("train.threads", t["threads"], 1), ("data.T", d["T"], 1), ("data.pool", d["pool"], 1),
                        ("prune.k", p["k"], 1), ("prune.max_levels", p["max_levels"], 1), ("prune.steps", p["steps"], 1)):
        if v < lo:
            raise ConfigError(name, f"must be >= {lo}, got {v!r}")
    for name, v in (("train.lr", t["lr"]), ("data.dt", d["dt"])):
        if not v > 0:
            raise ConfigError(name, f"must be positive, got {v!r}")
    if not 0 <= d["val_fraction"] < 1:
        raise ConfigError("data.val_fraction", f"must be in [0, 1), got {d['val_fraction']!r}")
    if not 0 <= p["start"] <= p["end"] <= 1:
        raise ConfigError("prune.start", f"need 0 <= start <= end <= 1, got start={p['start']}, end={p['end']}")
    if d["limit"] is not None and (not isinstance(d["limit"], int) or d["limit"] < 1):
        raise ConfigError("data.limit", f"must be null or a positive int, got {d['limit']!r}")
    try:
        augment.Augment.from_train_config(t)
    except augment.AugmentError as e:
        raise ConfigError(e.field, e.message) from None
    mt = cfg["budget"]["max_taps"]
    if mt is not None and not (isinstance(mt, int) and mt >= 1 or isinstance(mt, list) and all(
            x is None or isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in mt)):
        raise ConfigError("budget.max_taps", f"must be null, a positive int or a list of them, got {mt!r}")
    fg = cfg["unlayered"]["forward_group"]
    if fg is not None and (not isinstance(fg, int) or isinstance(fg, bool) or fg < 1):
        raise ConfigError("unlayered.forward_group", f"must be null (all) or a positive int, got {fg!r}")
    return cfg


def load_config(path=None, overrides: dict | None = None) -> dict:
    """Default config, merged with the file at ``path`` and then ``overrides``; validated."""
    cfg = _read_json(DEFAULT_CONFIG)
    if path is not None and Path(path).resolve() != DEFAULT_CONFIG:
        cfg = _merge(cfg, _read_json(path))
    if overrides:
        cfg = _merge(cfg, overrides)
    return _check(cfg)


def _set_path(over: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    d = over
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


# ---------------------------------------------------------------- data
def load_data(cfg: dict):
    """``(Xtr, ytr, Xval, yval, Xte, yte, n_classes)`` as bool/int64 numpy arrays."""
    d, seed = cfg["data"], cfg["seed"]
    src = d["source"]
    if src == "synthetic":
        from sw.data.synthetic import make_delay_task

        s = d["synthetic"]
        kw = dict(n_channels=s["n_channels"], n_classes=s["n_classes"], T=d["T"], gap=s["gap"], jitter=s["jitter"],
                  noise=s["noise"], class_seed=seed)
        Xtr, ytr = make_delay_task(s["n_train"], seed=seed * 2 + 1, **kw)
        Xte, yte = make_delay_task(s["n_test"], seed=seed * 2 + 2, **kw)
        n_classes = s["n_classes"]
    else:
        from sw.data.shd import load_rasters

        if src == "offline":
            from sw.data.generate import ensure_default_dataset

            tr, te = ensure_default_dataset(root=d["root"], seed=0, workers=2)  # processes, not torch threads
        else:
            root = Path(src)
            for tr, te in ((root / "shd_train.h5", root / "shd_test.h5"),
                           (root / "SHD" / "shd_train.h5", root / "SHD" / "shd_test.h5")):
                if tr.is_file() and te.is_file():
                    break
            else:
                raise ConfigError("data.source", f"'{src}' is neither 'synthetic', 'offline' nor a directory "
                                                 "holding shd_train.h5 and shd_test.h5")
        Xtr, ytr = load_rasters(tr, dt=d["dt"], T=d["T"], pool=d["pool"], limit=d["limit"])
        Xte, yte = load_rasters(te, dt=d["dt"], T=d["T"], pool=d["pool"], limit=d["limit"])
        n_classes = 20
    # validation split held out of train (model selection never sees test)
    perm = np.random.default_rng([seed, 7]).permutation(len(ytr))
    n_val = int(round(d["val_fraction"] * len(ytr)))
    val, tr_idx = perm[:n_val], np.sort(perm[n_val:])
    return Xtr[tr_idx], ytr[tr_idx], Xtr[np.sort(val)], ytr[np.sort(val)], Xte, yte, n_classes


# ---------------------------------------------------------------- model
def net_config(cfg: dict, n_inputs: int, n_classes: int) -> NetConfig:
    try:
        return NetConfig(n_inputs=n_inputs, n_classes=n_classes, T=cfg["data"]["T"], dt=cfg["data"]["dt"],
                         **cfg["model"]).validate()
    except ValueError as e:
        raise ConfigError("model", str(e)) from None


def _neuron_factory(kind: str):
    if kind == "lif":
        return None
    try:
        psu = importlib.import_module("sw.models.psu")  # honours sys.modules, unlike a from-import
    except ImportError as e:
        raise ConfigError("neuron", f"'{kind}' needs sw/models/psu.py with make_neuron(), which cannot be "
                                    f"imported ({e})") from None
    if not hasattr(psu, "make_neuron"):
        raise ConfigError("neuron", f"'{kind}' needs sw.models.psu.make_neuron(kind, n, T, **cfg), which is missing")
    return lambda n, T, **kw: psu.make_neuron(kind, n, T, **kw)


def build_model(cfg: dict, n_inputs: int, n_classes: int):
    """``(module to train, its DelayNet)``; the two are the same object in layered mode."""
    torch.manual_seed(cfg["seed"])
    net = DelayNet(net_config(cfg, n_inputs, n_classes), _neuron_factory(cfg["neuron"]))
    if cfg["mode"] == "layered":
        return net, net
    try:
        unlayered = importlib.import_module("sw.models.unlayered")
    except ImportError as e:
        raise ConfigError("mode", f"'unlayered' needs sw/models/unlayered.py, which cannot be imported ({e})") from None
    if not hasattr(getattr(unlayered, "UnlayeredNet", None), "from_delay_net"):
        raise ConfigError("mode", "'unlayered' needs sw.models.unlayered.UnlayeredNet.from_delay_net, which is missing")
    u = cfg["unlayered"]
    return unlayered.UnlayeredNet.from_delay_net(net, u["scheduler"], u["forward_group"], cfg["seed"]), net


def load_float_model(path) -> DelayNet:
    """Rebuild the float DelayNet from ``<out>/checkpoints/final.pt`` (for cosim's float prediction)."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    cfg = json.loads(ck["config"])
    net = DelayNet(NetConfig(**json.loads(ck["net_config"])), _neuron_factory(cfg["neuron"]))
    net.load_state_dict(ck["model"])
    return net.eval()


@torch.no_grad()
def evaluate(model, X: np.ndarray, y: np.ndarray, batch: int = 128) -> tuple[float, list[float]]:
    """Float accuracy and spike density per hidden layer."""
    correct, dens, n = 0, None, len(y)
    for s in range(0, n, batch):
        logits, rec = model(torch.from_numpy(X[s:s + batch]).float())
        correct += int((logits.argmax(1) == torch.from_numpy(y[s:s + batch])).sum())
        d = [float(z.sum()) for z in rec["spikes"]]
        dens = d if dens is None else [a + b for a, b in zip(dens, d)]
    sizes = [z.shape[2] for z in rec["spikes"]]
    return correct / max(n, 1), [x / (n * X.shape[1] * m) for x, m in zip(dens or [], sizes)]


# ---------------------------------------------------------------- checkpoints
def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill mid-write never leaves a torn checkpoint


def _diff_fields(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += _diff_fields(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.append(prefix + k)
    return out


# ---------------------------------------------------------------- main loop
def train(cfg: dict, resume: bool = False, stop_after: int | None = None, progress: bool = True,
          log=print) -> dict | None:
    """Run the whole pipeline; return the summary (None if stopped early by ``stop_after``)."""
    t_start = time.time()
    torch.set_num_threads(cfg["train"]["threads"])
    torch.use_deterministic_algorithms(True, warn_only=True)
    out = Path(cfg["out"])
    ck_dir = out / "checkpoints"
    Xtr, ytr, Xval, yval, Xte, yte, n_classes = load_data(cfg)
    t_data = time.time() - t_start
    model, net = build_model(cfg, Xtr.shape[2], n_classes)
    tc = cfg["train"]
    E = tc["epochs"]
    opt = torch.optim.Adam(net.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"])
    lam = (lambda e: 0.5 * (1 + math.cos(math.pi * e / E))) if tc["lr_schedule"] == "cosine" else (lambda e: 1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    pr = cfg["prune"]
    plan = schedule(pr, len(net.cfg.delays), E)
    if pr["method"] == "none":
        plan = {}
    budget_epoch = max(plan) if plan else 0  # the budget holds from the final pruning step on
    history, start = [], 0
    last = ck_dir / "last.pt"
    cfg_json = json.dumps(cfg, sort_keys=True)
    if resume and last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        old = json.loads(ck["config"])
        if old != cfg:
            raise ConfigError(",".join(_diff_fields(old, cfg)), f"differs from the checkpoint '{last}' being resumed")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        torch.set_rng_state(ck["rng"])
        if hasattr(model, "gen") and ck["gen"].numel():
            model.gen.set_state(ck["gen"])
        history, start = json.loads(ck["history"]), int(ck["epoch"])
        log(f"resuming from {last} after epoch {start}/{E}")
    elif resume:
        log(f"--resume: no checkpoint at {last}; starting from scratch")
    Xtr_t, ytr_t = torch.from_numpy(Xtr), torch.from_numpy(ytr)
    B = tc["batch_size"]
    g = torch.Generator().manual_seed(cfg["seed"])
    calib = Xtr_t[torch.randperm(len(ytr_t), generator=g)[:128]].float()  # fixed, seeded batch of train
    if start == 0 and net.cfg.init_rate > 0:  # data-driven init
        mults = net.calibrate(calib, net.cfg.init_rate)
        log("init: hidden weight scale x " + ", ".join(f"{m:.3g}" for m in mults))
    # channels/time are cochlear frequency/speech time only in SHD-format data, not in the synthetic task
    aug = augment.Augment.from_train_config(tc) if cfg["data"]["source"] != "synthetic" else augment.Augment()
    done_now = 0
    for epoch in range(start, E):
        if epoch in plan or epoch == budget_epoch:
            rates = net.layer_rates(calib) if pr["recalibrate"] else None
            if epoch in plan:
                k, lv = plan[epoch]
                prune_net(net, pr["method"], k, lv)
            if epoch == budget_epoch:
                enforce_budget(net, cfg["budget"]["max_taps"], cfg["budget"]["on_exceed"])
            if rates is not None:  # pruning removes drive: give each layer back its spike rate
                net.calibrate(calib, rates, iters=10)
        model.train()
        t0 = time.time()
        g = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + epoch)  # order depends on (seed, epoch) only
        perm = torch.randperm(len(ytr_t), generator=g)
        tot, n_ok = 0.0, 0
        bar = tqdm(range(0, len(perm), B), desc=f"epoch {epoch + 1}/{E}", leave=False, disable=not progress,
                   file=sys.stderr)
        for s in bar:
            idx = perm[s:s + B]
            xb = Xtr_t[idx].float()
            if aug.active:  # seeded per (seed, epoch, sample): identical on --resume
                xb = torch.from_numpy(augment.augment_batch(Xtr[idx.numpy()], idx.numpy(), epoch, cfg["seed"], aug)).float()
            logits, _ = model(xb)
            loss = mem_sum_loss(logits, ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
            n_ok += int((logits.argmax(1) == ytr_t[idx]).sum())
            bar.set_postfix(loss=f"{loss.item():.3f}")
        sched.step()
        model.eval()
        val_acc = evaluate(model, Xval, yval)[0] if len(yval) else float("nan")
        st = [mask_stats(s.mask, s.delays) for s in net.synapses]
        history.append({"epoch": epoch + 1, "loss": tot / len(perm), "train_acc": n_ok / len(perm), "val_acc": val_acc,
                        "seconds": time.time() - t0, "taps": [x["taps"] for x in st], "levels": [x["levels"] for x in st]})
        log(f"epoch {epoch + 1:3d}/{E}  loss {history[-1]['loss']:.4f}  train {history[-1]['train_acc']:.3f}  "
            f"val {val_acc:.3f}  taps {history[-1]['taps']}  levels {history[-1]['levels']}  {history[-1]['seconds']:.1f}s")
        _atomic_save({"config": cfg_json, "epoch": epoch + 1, "model": net.state_dict(), "opt": opt.state_dict(),
                      "sched": sched.state_dict(), "rng": torch.get_rng_state(),
                      "gen": model.gen.get_state() if hasattr(model, "gen") else torch.zeros(0, dtype=torch.uint8),
                      "history": json.dumps(history)}, last)
        done_now += 1
        if stop_after is not None and done_now >= stop_after and epoch + 1 < E:
            log(f"stopping after {done_now} epoch(s) as asked; continue with --resume")
            return None
    return finish(cfg, model, net, history, Xte, yte, t_start, t_data, log, progress)


def finish(cfg, model, net, history, Xte, yte, t_start, t_data, log=print, progress=True) -> dict:
    """Float/integer test accuracy, export, parity with hw.reference, summary table and JSON."""
    from hw.reference import simulate

    out = Path(cfg["out"])
    model.eval()
    float_acc, float_density = evaluate(model, Xte, yte)
    with unquantized(net):  # same weights, no integer mapping (layered float LIF)
        float_unq_acc = evaluate(net, Xte, yte)[0]
    final_ck = out / "checkpoints" / "final.pt"
    _atomic_save({"config": json.dumps(cfg, sort_keys=True), "net_config": json.dumps(net.cfg.as_dict()),
                  "model": net.state_dict()}, final_ck)
    m = to_model_file(net, max_taps=cfg["budget"]["max_taps"],
                      info={"float_checkpoint": "checkpoints/final.pt",  # relative to the model file
                            "seed": cfg["seed"], "no_delays": cfg["model"]["no_delays"]})
    model_path = save(m, out / "model.safetensors")
    ours = integer_forward(m, Xte)
    bar = tqdm(total=len(yte), desc="hw.reference (layered)", leave=False, disable=not progress, file=sys.stderr)
    ref = simulate(m, Xte, "layered", progress=lambda n: bar.update(n - bar.n))
    bar.close()
    par = parity(m, Xte, ours, ref)
    int_acc = float((ref.predictions == yte).mean())
    extra = {}
    if cfg["mode"] == "unlayered":
        extra["integer_async_scdq_acc"] = float((simulate(m, Xte, "async", "scdq").predictions == yte).mean())
    layers = []
    for l, L in enumerate(m.layers):
        nnz = int(np.count_nonzero(L.weights))
        layers.append({"layer": l, "n_in": L.n_in, "n_out": L.n_out, "nonzero_taps": nnz, "delay_levels": len(L.delays),
                       "delays": [int(x) for x in L.delays], "threshold": int(L.threshold), "decay": int(L.decay),
                       "spike_density": float(ours.spikes[l].mean()) if L.spiking else None})
    summary = {
        "float_acc": float_acc, "float_unquantized_acc": float_unq_acc, "integer_acc": int_acc, "integer_torch_acc": float((ours.predictions == yte).mean()),
        **extra, "test_samples": int(len(yte)), "parity": par,
        "parameters_nonzero": sum(x["nonzero_taps"] for x in layers),
        "parameters_grid": sum(p.numel() for p in (s.weight for s in net.synapses)),
        "layers": layers, "float_spike_density": float_density, "history": history,
        "model_path": str(model_path), "float_checkpoint": str(final_ck),
        "seconds_total": time.time() - t_start, "seconds_data": t_data, "config": cfg,
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1))
    log(format_table(summary))
    return summary


def format_table(s: dict) -> str:
    par = s["parity"]
    lines = [
        f"accuracy   float {100 * s['float_acc']:.2f} % (unquantized {100 * s['float_unquantized_acc']:.2f} %)   integer (hw.reference) {100 * s['integer_acc']:.2f} %"
        + (f"   integer async/scdq {100 * s['integer_async_scdq_acc']:.2f} %" if "integer_async_scdq_acc" in s else "")
        + f"   ({s['test_samples']} test samples)",
        f"parity     torch integer path vs hw.reference: {par['bit_exact']}/{par['samples']} samples bit-exact"
        + ("" if par["all_bit_exact"] else f"  FIRST DIVERGENCE {par['first_divergence']}"),
        f"parameters {s['parameters_nonzero']} non-zero taps (grid {s['parameters_grid']})",
        f"{'layer':>5} {'n_in':>5} {'n_out':>5} {'taps':>7} {'levels':>6} {'theta':>7} {'decay':>5} {'density':>8}",
    ]
    for L in s["layers"]:
        dens = "-" if L["spike_density"] is None else f"{L['spike_density']:.4f}"
        lines.append(f"{L['layer']:>5} {L['n_in']:>5} {L['n_out']:>5} {L['nonzero_taps']:>7} {L['delay_levels']:>6} "
                     f"{L['threshold']:>7} {L['decay']:>5} {dens:>8}")
    lines.append(f"wrote {s['model_path']} and train_summary.json in {s['seconds_total']:.0f} s "
                 f"(data {s['seconds_data']:.0f} s)")
    return "\n".join(lines)


# ---------------------------------------------------------------- CLI
def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sw.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=None, help="JSON config (merged over sw/configs/default.json)")
    ap.add_argument("--data", help="synthetic | offline | directory with shd_train.h5/shd_test.h5")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--no-delays", action="store_true", help="baseline: delay 0 only, same topology")
    ap.add_argument("--prune", choices=METHODS + ("none",),
                    help="top prune.k taps per synapse / levels per axon / levels per layer")
    ap.add_argument("--max-levels", type=int, help="at most K distinct delays per layer")
    ap.add_argument("--out", help="output directory (default build)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.pt")
    ap.add_argument("--mode", choices=MODES)
    ap.add_argument("--neuron", choices=NEURONS)
    ap.add_argument("--scheduler", choices=SCHEDULERS)
    ap.add_argument("--forward-group", help="events per forward group (int) or 'all'")
    ap.add_argument("--limit", type=int, help="use at most this many samples per split")
    ap.add_argument("--stop-after", type=int, help="stop after this many epochs in this invocation (then --resume)")
    ap.add_argument("--augment", metavar="NAMES",
                    help="keep only these augmentations: all | none | comma list of " + ",".join(augment.NAMES))
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                    help="override any config field, e.g. --set train.lr=0.001")
    return ap.parse_args(argv)


def config_from_args(a) -> dict:
    over: dict = {}
    for flag, field, val in (("--data", "data.source", a.data), ("--epochs", "train.epochs", a.epochs),
                             ("--seed", "seed", a.seed), ("--prune", "prune.method", a.prune),
                             ("--max-levels", "prune.max_levels", a.max_levels), ("--out", "out", a.out),
                             ("--mode", "mode", a.mode), ("--neuron", "neuron", a.neuron),
                             ("--scheduler", "unlayered.scheduler", a.scheduler), ("--limit", "data.limit", a.limit)):
        if val is not None:
            _set_path(over, field, val)
    if a.no_delays:
        _set_path(over, "model.no_delays", True)
    if a.forward_group is not None:
        fg = a.forward_group
        if fg == "all":
            _set_path(over, "unlayered.forward_group", None)
        elif fg.isdigit():
            _set_path(over, "unlayered.forward_group", int(fg))
        else:
            raise ConfigError("--forward-group", f"must be a positive int or 'all', got {fg!r}")
    for item in a.set:
        field, eq, raw = item.partition("=")
        if not eq:
            raise ConfigError("--set", f"expected FIELD=JSON, got {item!r}")
        try:
            val = json.loads(raw)
        except json.JSONDecodeError:
            val = raw  # bare strings
        _set_path(over, field.strip(), val)
    cfg = load_config(a.config, over)
    if a.augment is not None:
        try:
            cfg["train"] = augment.keep_only(cfg["train"], a.augment)
        except augment.AugmentError as e:
            raise ConfigError(e.field, e.message) from None
    return cfg


def main(argv=None) -> int:
    try:
        a = parse_args(argv)
        cfg = config_from_args(a)
        if a.stop_after is not None and a.stop_after < 1:
            raise ConfigError("--stop-after", f"must be >= 1, got {a.stop_after}")
        s = train(cfg, resume=a.resume, stop_after=a.stop_after, progress=not a.no_progress)
    except (ConfigError, BudgetError, ModelFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if s is None:
        return 0
    return 0 if s["parity"]["all_bit_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
