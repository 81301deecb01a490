"""The training config: defaults (``sw/configs/default.json``), merging, validation.

Library code (no side effects): ``sw.trainer``, ``sw.evaluate``, ``cosim`` and the
benches read configs through :func:`load_config`. Every field is addressable by
its dotted name (``--set train.lr=0.001``, or a sweep spec's keys).
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

from sw.data import augment
from hw.model_file import MAX_T, MIN_DT, ModelFileError, check_time_norm
from sw.errors import InputError

from sw.models.unlayered import SCHEDULERS
from sw.prune import METHODS

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.json"
NEURONS = ("lif", "psu", "ipsu", "rpsu")
MODES = ("layered", "unlayered")  # training modes (the contract's execution modes are hw.reference.MODES)
DEVICES = ("cpu", "cuda", "auto")
SYNAPSES = ("auto", "event", "dense")
DELAY_MODES = ("fixed", "learnable")
# fields whose value may be null, or have a fixed set of values
NULLABLE = {"data.limit", "data.time_norm", "budget.max_taps", "unlayered.forward_group", "model.layer_max_delay",
            "train.augment_stretch_rate", "train.augment_stretch_target", "train.augment_stretch_quiet",
            "train.augment_loud", "train.average_from"}
# fields that are null (off) or an object of parameters, checked as a whole (data.time_norm: sw.data.time_norm)
OPTIONAL_OBJECTS = {"data.time_norm"}
# fields that take one number or a list with one number per (hidden) layer
PER_LAYER = {"reg.rate_target", "reg.rate_weight", "model.layer_max_delay"}
CHOICES = {"mode": MODES, "neuron": NEURONS, "prune.method": METHODS + ("none",),
           "train.lr_schedule": ("cosine", "constant"), "budget.on_exceed": ("prune", "error"),
           "unlayered.scheduler": SCHEDULERS,
           "train.device": DEVICES, "train.synapse": SYNAPSES, "model.delay_mode": DELAY_MODES}


class ConfigError(InputError):
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
        if name in OPTIONAL_OBJECTS:  # null = off, or an object merged key by key; _check validates it whole
            out[k] = {**b, **v} if isinstance(b, dict) and isinstance(v, dict) else copy.deepcopy(v)
            continue
        if isinstance(b, dict):
            if not isinstance(v, dict):
                raise ConfigError(name, f"must be an object, got {v!r}")
            out[k] = _merge(b, v, name + ".")
            continue
        if v is None and name in NULLABLE:
            out[k] = None
            continue
        if name in PER_LAYER and isinstance(v, list):
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                raise ConfigError(name, f"must be a number or a list of numbers, got {v!r}")
            out[k] = v
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
                        ("train.threads", t["threads"], 1), ("train.shards", t["shards"], 1), ("data.T", d["T"], 1), ("data.pool", d["pool"], 1),
                        ("prune.k", p["k"], 1), ("prune.max_levels", p["max_levels"], 1), ("prune.steps", p["steps"], 1)):
        if v < lo:
            raise ConfigError(name, f"must be >= {lo}, got {v!r}")
    for name, v in (("train.lr", t["lr"]), ("data.dt", d["dt"])):
        if not (v > 0 and math.isfinite(v)):
            raise ConfigError(name, f"must be positive and finite, got {v!r}")
    if d["dt"] < MIN_DT:
        raise ConfigError("data.dt", f"must be >= {MIN_DT} s (the model file's limit), got {d['dt']!r}")
    if d["T"] > MAX_T:
        raise ConfigError("data.T", f"must be <= {MAX_T} (the model file's limit), got {d['T']!r}")
    if not 0 <= t["low_bit_warmup"] < 1:
        raise ConfigError("train.low_bit_warmup", f"must be in [0, 1), got {t['low_bit_warmup']!r}")
    for key in ("latency_loss_weight", "latency_loss_from"):  # the latency-aware loss (sw.trainer.readout_loss)
        if not 0 <= t[key] <= 1:
            raise ConfigError(f"train.{key}", f"must be in [0, 1], got {t[key]!r}")
    if not 0 <= t["label_smoothing"] < 1:  # sw.trainer.readout_loss
        raise ConfigError("train.label_smoothing", f"must be in [0, 1), got {t['label_smoothing']!r}")
    cw, cs = t["consistency_weight"], t["consistency_stretch"]  # the rate-consistency loss (sw.trainer)
    if not (cw >= 0 and math.isfinite(cw)):
        raise ConfigError("train.consistency_weight", f"must be >= 0 and finite (0 = off), got {cw!r}")
    if not (len(cs) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in cs)
            and 0 < cs[0] <= cs[1] and math.isfinite(cs[1])):
        raise ConfigError("train.consistency_stretch", f"must be [lo, hi] with 0 < lo <= hi, got {cs!r}")
    af = t["average_from"]  # weight averaging over the last epochs (sw.trainer.train)
    if af is not None and not (isinstance(af, (int, float)) and not isinstance(af, bool) and 0 <= af < 1):
        raise ConfigError("train.average_from", f"must be null (off) or a fraction of the epochs in [0, 1), got {af!r}")
    if not (0 <= t["weight_decay"] and math.isfinite(t["weight_decay"])):
        raise ConfigError("train.weight_decay", f"must be >= 0 and finite, got {t['weight_decay']!r}")
    if not 0 <= d["val_fraction"] < 1:
        raise ConfigError("data.val_fraction", f"must be in [0, 1), got {d['val_fraction']!r}")
    if not 0 <= p["start"] <= p["end"] <= 1:
        raise ConfigError("prune.start", f"need 0 <= start <= end <= 1, got start={p['start']}, end={p['end']}")
    if d["limit"] is not None and (not isinstance(d["limit"], int) or d["limit"] < 1):
        raise ConfigError("data.limit", f"must be null or a positive int, got {d['limit']!r}")
    if d["source"] == "synthetic":
        # an event-time front-end: the synthetic task's rasters have no event times (its training
        # likewise skips the augmentation), so the default's normalization is off there
        d["time_norm"] = None
    try:  # the word-duration normalization (sw.data.time_norm); its rules are the model file's, written once
        d["time_norm"] = check_time_norm(d["time_norm"], d["T"] * d["dt"], "data.time_norm")
    except ModelFileError as e:
        raise ConfigError(e.field, e.message) from None
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
    _check_extra(cfg)
    return cfg


def _per_layer(name: str, v, n: int, lo: float, hi: float | None = None, integer: bool = False) -> list:
    """``v`` (a number or a list of ``n``) as a list of ``n`` values in ``[lo, hi]``."""
    vals = list(v) if isinstance(v, list) else [v] * n
    if len(vals) != n:
        raise ConfigError(name, f"needs one value per layer ({n}), got {len(vals)}")
    for x in vals:
        if integer and (not isinstance(x, int) or isinstance(x, bool)):
            raise ConfigError(name, f"must be ints, got {x!r}")
        if x < lo or (hi is not None and x > hi):
            raise ConfigError(name, f"values must be in [{lo}, {hi if hi is not None else 'inf'}], got {x!r}")
    return vals


def rate_terms(cfg: dict) -> tuple[list[float], list[float]]:
    """Per hidden layer ``(targets, weights)`` of the spike-rate regulariser (``reg.*``)."""
    n = len(cfg["model"]["hidden"])
    r = cfg["reg"]
    return (_per_layer("reg.rate_target", r["rate_target"], n, 0.0, 1.0),
            _per_layer("reg.rate_weight", r["rate_weight"], n, 0.0))


def _check_extra(cfg: dict) -> None:
    rate_terms(cfg)
    m = cfg["model"]
    if not isinstance(m["spike_dropout"], bool) and isinstance(m["spike_dropout"], (int, float)) \
            and m["spike_dropout"] > 0 and cfg["mode"] != "layered":  # DelayNet.forward draws the masks
        raise ConfigError("model.spike_dropout", f"applies to layered training only, got mode {cfg['mode']!r}")
    if m["layer_max_delay"] is not None:
        _per_layer("model.layer_max_delay", m["layer_max_delay"], len(m["hidden"]) + 1, 0, m["max_delay"], True)


def load_config(path=None, overrides: dict | None = None) -> dict:
    """Default config, merged with the file at ``path`` and then ``overrides``; validated."""
    cfg = _read_json(DEFAULT_CONFIG)
    layers = []
    if path is not None and Path(path).resolve() != DEFAULT_CONFIG:
        layers.append(_read_json(path))
    if overrides:
        layers.append(overrides)
    for over in layers:
        cfg = _merge(cfg, over)
    # The default's normalization is dropped quietly for the synthetic task (no event times);
    # one the user asked for is refused rather than ignored.
    asked = [o["data"]["time_norm"] for o in layers
             if isinstance(o.get("data"), dict) and "time_norm" in o["data"]]
    if cfg["data"].get("source") == "synthetic" and asked and asked[-1] is not None:
        raise ConfigError("data.time_norm", "the synthetic source has no event times to normalize; "
                                            "set it to null, or train on an SHD source")
    return _check(cfg)


def set_path(over: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    d = over
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value




_set_path = set_path  # old name
