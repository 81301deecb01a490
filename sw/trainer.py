"""Train, prune, quantize and export a hardware-aware delay SNN (the library behind ``sw/train.py``).

    python -m sw.train [--config sw/configs/default.json] [--data synthetic|offline|<SHD dir>]
                       [--epochs N] [--seed S] [--no-delays] [--prune synaptic|axonal|layer|none]
                       [--max-levels K] [--out build] [--resume] [--execution layered|async]
                       [--neuron lif|psu|ipsu|rpsu] [--scheduler fifo|random|momentum]
                       [--forward-group F] [--device cpu|cuda|auto] [--threads N] [--synapse auto|event|dense]
                       [--rate-target R[,R...]] [--rate-weight W[,W...]] [--weight-bits B] [--delays fixed|learnable]
                       [--set section.field=JSON ...]

The JSON config (partial configs are merged over the default) is validated
field by field; flags override it. Every epoch is checkpointed to
``<out>/checkpoints/last.pt`` (state dicts only, loaded with ``weights_only``);
``--resume`` continues from it and ends with the same bits as an uninterrupted
run. At the end the model is exported to ``<out>/model.safetensors``, checked
against ``hw.reference`` (layered) sample by sample, and summarized in
``<out>/train_summary.json``. The test split is used only for that final report;
the per-epoch figure is a validation split held out of train.

``--no-delays`` keeps the topology and uses delay 0 only (on the fixed grid). Parameter
parity: the default learnable delays (and, on the fixed grid, the default pruning,
``synaptic``, ``k = 1``) leave the delay model one tap per synapse, so both models have at most ``n_in * n_out`` non-zero weights per layer
(36864 for 700-48-48-20); the delay model's extra freedom is which of at most 15
delays each synapse uses (a row index in the synapse memory, not a weight).

Training speed (issue #10): hidden and readout neurons run the fused LIF of
``sw.models.lif`` (no autograd graph over T, hand-written BPTT), synapses the
event-driven gather-sum of ``sw.models.synapse`` (dense below a measured input
density). ``reg.rate_target`` / ``reg.rate_weight`` add a per-layer spike-rate
regulariser; ``model.weight_bits`` 2..4 train with a symmetric, rms-clipped
scale; ``model.layer_max_delay`` caps each layer's delay grid; ``train.latency_loss_weight`` (default 0,
off) mixes in a cross-entropy on the running readout from step ``train.latency_loss_from * T`` on
(:func:`readout_loss`), for models that should decide early;
``train.consistency_weight`` (default 0, off) adds the rate-consistency loss: every batch is forwarded
together with a copy stretched once more in time by a factor log-uniform in ``train.consistency_stretch``
(seeded per seed, epoch and sample), plus weight x :func:`consistency_loss` between the two outputs;
``train.average_from`` (default null, off) makes the trained model the average of the weights after each
epoch from that fraction of the epochs on (:func:`weight_averager`);
``train.label_smoothing`` (default 0, off) smooths the cross-entropy targets; ``train.decay_weights_only``
(default false) restricts ``train.weight_decay`` to the synapse weights (:func:`param_groups`);
``model.delay_mode = "learnable"`` (``--delays learnable``) trains a DCLS-style
position per synapse (no pruning schedule: one tap per synapse by construction).

``train.threads`` (default 2) cores run ``train.shards`` (default 2) batch shards
in parallel, each on one intra-op thread (``sw.models.parallel``): the neuron
recurrence is many small ops, where OpenMP threads only wait on each other. The
shards are fixed, so a run gives the same bits on any number of threads.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from hw.model_file import ModelFileError, save
from sw.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError, check_out_dir, guarded, write_json  # noqa: F401
from sw.checkpoint import (atomic_save as _atomic_save, build_model, diff_fields as _diff_fields, evaluate,  # noqa: F401
                           load_float_model, net_config, neuron_factory as _neuron_factory, save_float_model)
from sw.config import (CHOICES, DEFAULT_CONFIG, MODES, NEURONS, SCHEDULERS, ConfigError, load_config,  # noqa: F401
                       rate_terms, set_path as _set_path)
from sw.data.splits import DataSplits, load_data  # noqa: F401
from sw.data import augment
from sw.export import BudgetError, IntegerResult, integer_forward, parity, to_model_file
from sw.models.delay import DelayNet, NetConfig, mem_sum_loss, unquantized
from sw.models.lif import mem_sum_running
from sw.prune import METHODS, enforce_budget, mask_stats, prune_net, schedule



def pick_device(name: str, mode: str = "layered") -> torch.device:
    """``train.device``: ``cpu``, ``cuda`` (an error naming the field if there is none) or ``auto``.
    Unlayered training runs on the CPU (its scheduler draws from a CPU generator)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device", "'cuda' asked for, but torch sees no CUDA device (use cpu or auto)")
    if name == "cuda" and mode != "layered":
        raise ConfigError("train.device", f"'cuda' supports mode 'layered' only, got mode {mode!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() and mode == "layered" else "cpu"
    return torch.device(name)


def rate_loss(spikes: list, targets, weights) -> torch.Tensor:
    """Spike-rate regulariser: ``sum_l weight_l * (mean rate_l - target_l)^2`` over the hidden
    layers (``reg.rate_target``, ``reg.rate_weight``). Lower rates mean fewer SCDQ events
    and SOPs; the gradient reaches the weights through the spike surrogate."""
    loss = spikes[0].new_zeros(()) if spikes else torch.zeros(())
    for z, tgt, w in zip(spikes, targets, weights):
        if w > 0:
            loss = loss + w * (z.mean() - tgt) ** 2
    return loss.to(torch.float32)


def readout_loss(logits: torch.Tensor, readout: torch.Tensor, y: torch.Tensor, net, weight: float = 0.0,
                 start: float = 0.25, smoothing: float = 0.0) -> torch.Tensor:
    """The training loss on the readout (``train.latency_loss_weight``, ``train.latency_loss_from``).

    ``weight`` 0 (the default): cross-entropy on the mem_sum logits (the readout summed over all
    ``T`` steps), exactly as without the option. ``weight`` w in (0, 1], the latency-aware loss:
    ``(1 - w) * CE(final logits) + w * mean over t = t0 .. T-1 of CE(running logits at t)``, with
    ``t0 = min(T - 1, floor(start * T))`` and the running logits those of
    :func:`sw.models.lif.mem_sum_running` (the readout summed up to step t). Their argmax is the class the early-exit rule of
    ``hw.reference`` reads at step t, so the term rewards a correct lead early in the sample, which a
    loss on the final sum alone does not. No random draw: a resumed run gives the same bits.

    ``smoothing`` (``train.label_smoothing``, default 0 = plain cross-entropy) > 0: every cross-entropy
    term uses targets ``(1 - smoothing)`` on the label plus ``smoothing / classes`` on every class
    (``torch.nn.functional.cross_entropy(label_smoothing=)``). It only changes the training signal;
    the exported model and its argmax readout are the same kind of object."""
    final = mem_sum_loss(logits, y) if smoothing <= 0 else F.cross_entropy(logits, y, label_smoothing=smoothing)
    if weight <= 0:
        return final
    T = readout.shape[1]
    t0 = min(T - 1, int(math.floor(start * T)))
    run = mem_sum_running(readout, net.layers[-1].synapse.scale(), getattr(net, "logit_scale", None), t0)
    early = F.cross_entropy(run.reshape(-1, run.shape[-1]), y.repeat_interleave(T - t0), label_smoothing=smoothing)
    return (1 - weight) * final + weight * early


def consistency_loss(anchor: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """The rate-consistency term (``train.consistency_weight``): ``KL(p_anchor || p_other)``, batch mean,
    with ``p = softmax(logits)`` and the anchor detached.

    ``anchor``: the logits of the batch as augmented now (the copy the cross-entropy trains);
    ``other``: those of the same samples stretched once more in time
    (:func:`sw.data.augment.consistency_batch`). The anchor is a fixed target: the gradient pulls the
    stretched copy's output towards the prediction the network makes at the usual rate, not the
    reverse, so the worse-classified copy cannot drag the in-distribution prediction towards it (a
    symmetric KL would, and could lower the loss by flattening both distributions). Zero when the two
    outputs are equal, positive otherwise."""
    target = F.log_softmax(anchor.detach().float(), dim=1)
    return F.kl_div(F.log_softmax(other.float(), dim=1), target, reduction="batchmean", log_target=True)


def param_groups(net, weight_decay: float, weights_only: bool = False) -> list[dict]:
    """Adam's parameter groups (``train.weight_decay``, ``train.decay_weights_only``).

    Default: one group, every parameter decayed by ``weight_decay`` (Adam's L2 term). With
    ``weights_only`` the decay applies to the synapse weights only (``layers[l].synapse.weight``); the
    learnable delay positions (an L2 pull would drag every delay towards position 0 of the grid), the
    readout temperature and any neuron parameters get none."""
    params = list(net.parameters())
    if not weights_only or weight_decay == 0:
        return [{"params": params, "weight_decay": weight_decay}]
    ws = [L.synapse.weight for L in net.layers]
    ids = {id(p) for p in ws}
    return [{"params": ws, "weight_decay": weight_decay},
            {"params": [p for p in params if id(p) not in ids], "weight_decay": 0.0}]


# ---------------------------------------------------------------- main loop
def train(cfg: dict, resume: bool = False, stop_after: int | None = None, progress: bool = True,
          log=print) -> dict | None:
    """Run the whole pipeline; return the summary (None if stopped early by ``stop_after``)."""
    t_start = time.time()
    torch.set_num_threads(cfg["train"]["threads"])
    device = pick_device(cfg["train"]["device"], cfg["mode"])
    rate_targets, rate_weights = rate_terms(cfg)
    torch.use_deterministic_algorithms(True, warn_only=True)
    out = check_out_dir(cfg["out"], "--out")  # before any work: a bad folder fails now, not after training
    ck_dir = out / "checkpoints"
    data = load_data(cfg)
    Xtr, ytr, Xval, yval, Xte, yte, n_classes = (data.Xtr, data.ytr, data.Xval, data.yval, data.Xte, data.yte,
                                                 data.n_classes)
    t_data = time.time() - t_start
    model, net = build_model(cfg, Xtr.shape[2], n_classes)
    net.to(device)
    net.set_threads(cfg["train"]["threads"], cfg["train"]["shards"])  # batch shards: bits depend on shards only
    tc = cfg["train"]
    E = tc["epochs"]
    opt = torch.optim.Adam(param_groups(net, tc["weight_decay"], tc["decay_weights_only"]), lr=tc["lr"])
    lam = (lambda e: 0.5 * (1 + math.cos(math.pi * e / E))) if tc["lr_schedule"] == "cosine" else (lambda e: 1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    pr = cfg["prune"]
    plan = schedule(pr, len(net.cfg.delays), E)
    learnable = net.cfg.delay_mode == "learnable"
    if pr["method"] == "none" or learnable:  # learnable delays have one tap per synapse by construction
        plan = {}
    budget_epoch = max(plan) if plan else 0  # the budget holds from the final pruning step on
    warm = tc["low_bit_warmup"]
    avg, avg_from = weight_averager(net, tc["average_from"], E, plan, budget_epoch, learnable, warm, log)
    history, start = [], 0
    last = ck_dir / "last.pt"
    cfg_json = json.dumps(cfg, sort_keys=True)
    if resume and last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        old = json.loads(ck["config"])
        if old != cfg:
            raise ConfigError(",".join(_diff_fields(old, cfg)), f"differs from the checkpoint '{last}' being resumed")
        net.load_state_dict(ck["model"])
        if avg is not None:
            avg.load_state_dict(ck["avg"])
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
    calib = Xtr_t[torch.randperm(len(ytr_t), generator=g)[:128]].to(device, torch.float32)  # fixed, seeded batch of train
    net.set_weight_bits(net.weight_bits_at(max(start - 1, 0), E, warm))  # low-bit weights: the warm phase's width
    if start == 0 and net.cfg.init_rate > 0:  # data-driven init
        mults = net.calibrate(calib, net.cfg.init_rate)
        log("init: hidden weight scale x " + ", ".join(f"{m:.3g}" for m in mults))
    # channels/time are cochlear frequency/speech time only in SHD-format data, not in the synthetic task
    aug = augment.Augment.from_train_config(tc) if cfg["data"]["source"] != "synthetic" else augment.Augment()
    cons_w, cons_st = tc["consistency_weight"], tuple(tc["consistency_stretch"])
    done_now = 0
    for epoch in range(start, E):
        if epoch in plan or epoch == budget_epoch:
            rates = net.layer_rates(calib) if pr["recalibrate"] else None
            if epoch in plan:
                k, lv = plan[epoch]
                prune_net(net, pr["method"], k, lv)
            if epoch == budget_epoch and not learnable:  # learnable: one tap per synapse, checked at export
                enforce_budget(net, cfg["budget"]["max_taps"], cfg["budget"]["on_exceed"])
            if rates is not None:  # pruning removes drive: give each layer back its spike rate
                net.calibrate(calib, rates, iters=10)
        if net.weight_bits_at(epoch, E, warm) != net.synapses[0].weight_bits:  # end of the low-bit warm phase
            rates = net.layer_rates(calib)
            net.set_weight_bits(net.weight_bits_at(epoch, E, warm))
            net.calibrate(calib, rates, iters=10)  # re-calibrate thresholds: each layer keeps its spike rate
            log(f"weights now {net.cfg.weight_bits}-bit; hidden rates re-calibrated to " + ", ".join(f"{r:.3f}" for r in rates))
        if learnable:
            net.set_delay_width(epoch, E)
        model.train()
        t0 = time.time()
        g = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + epoch)  # order depends on (seed, epoch) only
        perm = torch.randperm(len(ytr_t), generator=g)
        tot, n_ok, tot_cons = 0.0, 0, 0.0
        bar = tqdm(range(0, len(perm), B), desc=f"epoch {epoch + 1}/{E}", leave=False, disable=not progress,
                   file=sys.stderr)
        for s in bar:
            idx = perm[s:s + B]
            xb = Xtr_t[idx].float()
            if aug.active:  # seeded per (seed, epoch, sample): identical on --resume
                xb = torch.from_numpy(augment.augment_batch(Xtr[idx.numpy()], idx.numpy(), epoch, cfg["seed"], aug)).float()
            yb = ytr_t[idx].to(device)
            if cons_w > 0:  # rate consistency: the batch and its extra-stretched copy in one forward
                x2 = torch.from_numpy(augment.consistency_batch(xb.numpy() > 0, idx.numpy(), epoch, cfg["seed"], cons_st))
                logits2x, rec = model(torch.cat([xb, x2.float()]).to(device))
                n = len(idx)
                logits, logits2 = logits2x[:n], logits2x[n:]
                rec = {"readout": rec["readout"][:n], "spikes": [z[:n] for z in rec["spikes"]]}
            else:
                logits, rec = model(xb.to(device))
            loss = readout_loss(logits, rec["readout"], yb, net, tc["latency_loss_weight"], tc["latency_loss_from"],
                                tc["label_smoothing"])
            if cons_w > 0:
                cons = consistency_loss(logits, logits2)
                loss = loss + cons_w * cons
                tot_cons += cons.item() * len(idx)
            if any(w > 0 for w in rate_weights):
                loss = loss + rate_loss(rec["spikes"], rate_targets, rate_weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if learnable:
                with torch.no_grad():
                    for syn in net.synapses:
                        syn.pos_u.clamp_(0, 1)
            tot += loss.item() * len(idx)
            n_ok += int((logits.argmax(1) == yb).sum())
            bar.set_postfix(loss=f"{loss.item():.3f}")
        sched.step()
        if avg is not None and epoch >= avg_from:
            avg.update_parameters(net)
        model.eval()
        val_acc = evaluate(model, Xval, yval)[0] if len(yval) else float("nan")
        st = [mask_stats(s.mask, s.delays) for s in net.synapses]
        history.append({"epoch": epoch + 1, "loss": tot / len(perm), "train_acc": n_ok / len(perm), "val_acc": val_acc,
                        "seconds": time.time() - t0, "taps": [x["taps"] for x in st], "levels": [x["levels"] for x in st]})
        if cons_w > 0:
            history[-1]["consistency"] = tot_cons / len(perm)
        log(f"epoch {epoch + 1:3d}/{E}  loss {history[-1]['loss']:.4f}  train {history[-1]['train_acc']:.3f}  "
            f"val {val_acc:.3f}  taps {history[-1]['taps']}  levels {history[-1]['levels']}  {history[-1]['seconds']:.1f}s")
        _atomic_save({"config": cfg_json, "epoch": epoch + 1, "model": net.state_dict(), "opt": opt.state_dict(),
                      "sched": sched.state_dict(), "rng": torch.get_rng_state(),
                      "gen": model.gen.get_state() if hasattr(model, "gen") else torch.zeros(0, dtype=torch.uint8),
                      "history": json.dumps(history), "avg": avg.state_dict() if avg is not None else {}}, last)
        done_now += 1
        if stop_after is not None and done_now >= stop_after and epoch + 1 < E:
            log(f"stopping after {done_now} epoch(s) as asked; continue with --resume")
            return None
    averaged = None
    if avg is not None:  # the trained model is the average
        with torch.no_grad():
            for p, q in zip(net.parameters(), avg.module.parameters()):
                p.copy_(q)
        model.eval()
        val_avg = evaluate(model, Xval, yval)[0] if len(yval) else float("nan")
        averaged = {"epochs": E - avg_from, "first_epoch": avg_from + 1, "val_acc": val_avg,
                    "val_acc_last_epoch": history[-1]["val_acc"]}
        log(f"weights averaged over epochs {avg_from + 1}..{E}: val {history[-1]['val_acc']:.3f} (epoch {E}) "
            f"-> {val_avg:.3f}")
    if net.cfg.spike_dropout > 0:
        end_spike_dropout(model, net, calib, log)
    return finish(cfg, model, net, history, Xte, yte, t_start, t_data, log, progress, data_provenance(data),
                  averaged)


def weight_averager(net, average_from: float | None, epochs: int, plan: dict, budget_epoch: int, learnable: bool,
                    warm: float, log=print):
    """``(averager, first)`` for ``train.average_from`` (``(None, None)`` when it is null): the weights
    after every epoch from the 0-based epoch ``first`` on are averaged uniformly (stochastic weight
    averaging over the tail of the cosine schedule; ``torch.optim.swa_utils.AveragedModel``, parameters
    only: the pruning masks are the net's own), and the average is the trained model. Learnable delay
    positions are averaged like weights; the delay width of the last epoch is kept.

    ``first = min(round(average_from * epochs), epochs - 1)``, moved later when a pruning step, the
    delay-tap budget or the end of the low-bit warm phase comes after it: these prune and rescale the
    weights at the start of their epoch, and averaging across one would mix two different nets. So the
    average always starts at or after the last of them (logged when moved)."""
    if average_from is None:
        return None, None
    from torch.optim.swa_utils import AveragedModel

    first = min(round(average_from * epochs), epochs - 1)
    events = {budget_epoch: "the delay-tap budget"} if not learnable else {}
    events.update(dict.fromkeys(plan, "the last pruning step"))
    if net.weight_bits_at(0, epochs, warm) != net.cfg.weight_bits:
        events[round(warm * epochs)] = "the end of the low-bit warm phase (train.low_bit_warmup)"
    last = max(events, default=0)
    if last > first:
        log(f"weight averaging starts at epoch {last + 1}, after {events[last]}, not at {first + 1} "
            f"(train.average_from)")
        first = last
    return AveragedModel(net, use_buffers=False), first


def end_spike_dropout(model, net, calib: torch.Tensor, log=print) -> list[float]:
    """End of training with ``model.spike_dropout`` p > 0: switch the dropout off and give each hidden
    layer back the spike rate it had in training (where its input was thinned by p) by rescaling its
    weights (:meth:`DelayNet.calibrate`; a per-layer scale, so only the integer threshold changes at
    export). Kept spikes are not rescaled in training (spikes stay 0/1), so without this step every
    layer after the first would see about ``1 / (1 - p)`` times its training input. Runs once, on the
    fixed calibration batch, in training mode (the rates are those of the training forward)."""
    model.train()
    rates = net.layer_rates(calib)  # dropout on: the rates of the training forward
    net.dropout_on = False
    mults = net.calibrate(calib, rates, iters=10)
    log("spike dropout off; hidden rates kept at " + ", ".join(f"{r:.3f}" for r in rates)
        + " (weight scale x " + ", ".join(f"{m:.3g}" for m in mults) + ")")
    return rates


def data_provenance(data) -> dict:
    """``info`` fields naming the training data: its source and the sha256 of its test and train files, so
    that evaluation on another data set is never silent (``sw.evaluate.check_provenance``)."""
    from sw.data.tonic_io import file_hash

    info = {"data_source": getattr(data, "source", "") or ""}
    files = getattr(data, "files", ()) or ()
    if files:
        info["data_hash"] = file_hash(files[1])  # the split that evaluation reads
        info["data_train_hash"] = file_hash(files[0])
    return info


def finish(cfg, model, net, history, Xte, yte, t_start, t_data, log=print, progress=True,
           data_info: dict | None = None, averaged: dict | None = None) -> dict:
    """Float/integer test accuracy, export, parity with hw.reference, summary table and JSON."""
    from hw.reference import simulate

    out = Path(cfg["out"])
    model.eval()
    float_acc, float_density = evaluate(model, Xte, yte)
    with unquantized(net):  # same weights, no integer mapping (layered float LIF)
        float_unq_acc = evaluate(net, Xte, yte)[0]
    net.cpu()  # export and the integer checks run on the CPU
    final_ck = out / "checkpoints" / "final.pt"
    save_float_model(net, cfg, final_ck)
    m = to_model_file(net, max_taps=cfg["budget"]["max_taps"],
                      info={"float_checkpoint": "checkpoints/final.pt",  # relative to the model file
                            "seed": cfg["seed"], "no_delays": cfg["model"]["no_delays"], **(data_info or {})})
    m.time_norm = cfg["data"].get("time_norm")  # the input front-end travels with the model (sw.data.time_norm)
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
        **extra, **({"weight_average": averaged} if averaged else {}), "test_samples": int(len(yte)), "parity": par,
        "parameters_nonzero": sum(x["nonzero_taps"] for x in layers),
        "parameters_grid": sum(p.numel() for p in (s.weight for s in net.synapses)),
        "layers": layers, "float_spike_density": float_density, "history": history,
        "model_path": str(model_path), "float_checkpoint": str(final_ck),
        "seconds_total": time.time() - t_start, "seconds_data": t_data,
        "seconds_training": float(sum(h["seconds"] for h in history)), "config": cfg,
    }
    write_json(summary, out / "train_summary.json")
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
    ap.add_argument("--data", help="synthetic | offline | directory with shd_train.h5/shd_test.h5 | tonic-shd:ROOT | tonic-ssc:ROOT")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--no-delays", action="store_true", help="baseline: delay 0 only, same topology")
    ap.add_argument("--prune", choices=METHODS + ("none",),
                    help="top prune.k taps per synapse / levels per axon / levels per layer")
    ap.add_argument("--max-levels", type=int, help="at most K distinct delays per layer")
    ap.add_argument("--out", help="output directory (default build)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.pt")
    ap.add_argument("--execution", choices=("layered", "async"),
                    help="train for layered execution, or for async execution (the unlayered model)")
    ap.add_argument("--mode", choices=MODES, help="deprecated alias: layered = --execution layered, "
                                                   "unlayered = --execution async")
    ap.add_argument("--neuron", choices=NEURONS)
    ap.add_argument("--scheduler", choices=SCHEDULERS)
    ap.add_argument("--forward-group", help="events per forward group (int) or 'all'")
    ap.add_argument("--limit", type=int, help="use at most this many samples per split")
    ap.add_argument("--stop-after", type=int, help="stop after this many epochs in this invocation (then --resume)")
    ap.add_argument("--augment", metavar="NAMES",
                    help="keep only these augmentations: all | none | comma list of " + ",".join(augment.NAMES))
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--device", choices=("cpu", "cuda", "auto"), help="train.device (default cpu)")
    ap.add_argument("--threads", type=int, help="torch threads (train.threads)")
    ap.add_argument("--synapse", choices=("auto", "event", "dense"), help="synapse path (train.synapse)")
    ap.add_argument("--rate-target", help="hidden spike-rate target: a number or one per hidden layer, comma-separated")
    ap.add_argument("--rate-weight", help="weight of the rate regulariser: a number or one per hidden layer")
    ap.add_argument("--weight-bits", type=int, help="weight bits (model.weight_bits, 2..16)")
    ap.add_argument("--delays", choices=("fixed", "learnable"), help="delay grid taps, or DCLS-style learnable positions")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                    help="override any config field, e.g. --set train.lr=0.001")
    return ap.parse_args(argv)


EXECUTION_TO_MODE = {"layered": "layered", "async": "unlayered"}


def config_from_args(a) -> dict:
    over: dict = {}
    if getattr(a, "execution", None) is not None:
        mode = EXECUTION_TO_MODE[a.execution]
        if a.mode is not None and a.mode != mode:
            raise ConfigError("--mode", f"deprecated alias of --execution; '{a.mode}' contradicts "
                                        f"--execution {a.execution}")
        a.mode = mode
    elif a.mode is not None:
        print("note: --mode is deprecated; use --execution layered|async", file=sys.stderr)
    for flag, field, val in (("--data", "data.source", a.data), ("--epochs", "train.epochs", a.epochs),
                             ("--seed", "seed", a.seed), ("--prune", "prune.method", a.prune),
                             ("--max-levels", "prune.max_levels", a.max_levels), ("--out", "out", a.out),
                             ("--mode", "mode", a.mode), ("--neuron", "neuron", a.neuron),
                             ("--scheduler", "unlayered.scheduler", a.scheduler), ("--limit", "data.limit", a.limit)):
        if val is not None:
            _set_path(over, field, val)
    for flag, field, val in (("--device", "train.device", a.device), ("--threads", "train.threads", a.threads),
                             ("--synapse", "train.synapse", a.synapse), ("--weight-bits", "model.weight_bits", a.weight_bits),
                             ("--delays", "model.delay_mode", a.delays)):
        if val is not None:
            _set_path(over, field, val)
    for flag, field, val in (("--rate-target", "reg.rate_target", a.rate_target),
                             ("--rate-weight", "reg.rate_weight", a.rate_weight)):
        if val is not None:
            try:
                xs = [float(x) for x in val.split(",")]
            except ValueError:
                raise ConfigError(flag, f"must be a number or comma-separated numbers, got {val!r}") from None
            _set_path(over, field, xs[0] if len(xs) == 1 else xs)
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


def _main(argv=None) -> int:
    a = parse_args(argv)
    cfg = config_from_args(a)
    if a.stop_after is not None and a.stop_after < 1:
        raise ConfigError("--stop-after", f"must be >= 1, got {a.stop_after}")
    s = train(cfg, resume=a.resume, stop_after=a.stop_after, progress=not a.no_progress)
    if s is None:
        return EXIT_OK
    return EXIT_OK if s["parity"]["all_bit_exact"] else EXIT_CHECK_FAILED


def main(argv=None) -> int:
    """Exit codes (sw.errors): 0 ok, 1 parity failed, 2 bad flag/config/data, 3 internal error."""
    return guarded(_main, argv, "train")



if __name__ == "__main__":  # python -m sw.trainer: the same command as python sw/train.py, for drivers (bench/)
    sys.exit(main())
