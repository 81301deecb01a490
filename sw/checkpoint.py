"""Building, saving and restoring models, and float evaluation (library code).

``sw.trainer`` trains with these; ``sw.evaluate``, ``cosim`` and the benches use
them to rebuild a trained float network without importing the training script.
Checkpoints hold state dicts and JSON strings only (loaded with ``weights_only``).
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import torch

from hw.model_file import atomic_write
from sw.config import ConfigError
from sw.models.delay import DelayNet, NetConfig


def net_config(cfg: dict, n_inputs: int, n_classes: int) -> NetConfig:
    m = dict(cfg["model"])
    if m["no_delays"]:  # a one-level grid (delay 0) has no position to learn: the fixed grid, one tap per synapse
        m["delay_mode"] = "fixed"
    try:
        return NetConfig(n_inputs=n_inputs, n_classes=n_classes, T=cfg["data"]["T"], dt=cfg["data"]["dt"],
                         **m).validate()
    except ValueError as e:
        raise ConfigError("model", str(e)) from None


def neuron_factory(kind: str):
    """``None`` for the contract LIF, else a factory of PSU-family hidden neurons."""
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
    net = DelayNet(net_config(cfg, n_inputs, n_classes), neuron_factory(cfg["neuron"]),
                   synapse=cfg["train"].get("synapse", "auto"))
    net.shards = int(cfg["train"].get("shards", 1))  # batch shards on worker threads (sw.models.parallel)
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
    """Rebuild the float DelayNet from ``<out>/checkpoints/final.pt`` (on the CPU, in eval mode)."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    cfg = json.loads(ck["config"])
    net = DelayNet(NetConfig(**json.loads(ck["net_config"])), neuron_factory(cfg["neuron"]))
    net.load_state_dict(ck["model"])
    return net.eval()


def save_float_model(net: DelayNet, cfg: dict, path) -> None:
    atomic_save({"config": json.dumps(cfg, sort_keys=True), "net_config": json.dumps(net.cfg.as_dict()),
                 "model": {k: v.cpu() for k, v in net.state_dict().items()}}, Path(path))


@torch.no_grad()
def evaluate(model, X: np.ndarray, y: np.ndarray, batch: int = 128) -> tuple[float, list[float]]:
    """Float accuracy and spike density per hidden layer (on the model's device)."""
    dev = next(model.parameters()).device
    correct, dens, n, sizes = 0, None, len(y), []
    for s in range(0, n, batch):
        logits, rec = model(torch.from_numpy(X[s:s + batch]).to(dev, torch.float32))
        correct += int((logits.argmax(1).cpu() == torch.from_numpy(y[s:s + batch])).sum())
        d = [float(z.sum()) for z in rec["spikes"]]
        dens = d if dens is None else [a + b for a, b in zip(dens, d)]
        sizes = [z.shape[2] for z in rec["spikes"]]
    return correct / max(n, 1), [x / (n * X.shape[1] * m) for x, m in zip(dens or [], sizes)]


def atomic_save(obj, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique temp name, removed on failure: a kill mid-write never leaves a torn checkpoint
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def diff_fields(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields where two configs differ."""
    out = []
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += diff_fields(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.append(prefix + k)
    return out
