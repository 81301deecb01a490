"""sw.train end to end on the synthetic task: CLI errors, determinism, --resume, summary."""
import json
import shutil
import sys

import numpy as np
import pytest
import torch

from hw.model_file import load
from hw.reference import simulate
from sw.checkpoint import load_float_model
from sw.config import ConfigError, load_config
from sw.trainer import main

TINY = {
    "data": {"source": "synthetic", "T": 40, "val_fraction": 0.2,
             "synthetic": {"n_train": 160, "n_test": 80, "n_channels": 5, "n_classes": 3, "gap": 5, "jitter": 1,
                           "noise": 1}},
    "model": {"hidden": [10], "max_delay": 20, "delay_stride": 2, "tau_ms": 10.0, "readout_tau_ms": 10.0,
              "init_gain": 2.0, "delay_mode": "fixed"},  # the pruned grid (k, max_levels) is checked
    "train": {"epochs": 3, "batch_size": 32, "lr": 0.01, "threads": 1},
    "prune": {"method": "synaptic", "k": 2, "max_levels": 4, "steps": 2, "start": 0.0, "end": 0.7},
}


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(TINY))
    return p


def _run(cfg_path, out, *extra):
    return main(["--config", str(cfg_path), "--out", str(out), "--no-progress", *extra])


def test_run_resume_and_determinism(tiny, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(tiny, a) == 0
    bytes_a = (a / "model.safetensors").read_bytes()
    summary = json.loads((a / "train_summary.json").read_text())
    # same seed, fresh run -> identical exported bytes
    shutil.move(str(a), str(tmp_path / "a0"))
    assert _run(tiny, a) == 0
    assert (a / "model.safetensors").read_bytes() == bytes_a
    # killed after each epoch and resumed -> the same final bits as the uninterrupted run
    assert _run(tiny, b, "--stop-after", "1") == 0
    assert not (b / "model.safetensors").exists()
    assert _run(tiny, b, "--resume", "--stop-after", "1") == 0
    assert _run(tiny, b, "--resume") == 0
    assert (b / "model.safetensors").read_bytes() == bytes_a
    hb = json.loads((b / "train_summary.json").read_text())["history"]
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]
    assert strip(hb) == strip(summary["history"])
    # another seed gives other bits
    assert _run(tiny, tmp_path / "c", "--seed", "1") == 0
    assert (tmp_path / "c" / "model.safetensors").read_bytes() != bytes_a

    # the summary is consistent with the reference and the limits
    m = load(a / "model.safetensors")
    te = json.loads((a / "train_summary.json").read_text())
    from sw.data.synthetic import make_delay_task

    s = TINY["data"]["synthetic"]
    Xte, yte = make_delay_task(s["n_test"], s["n_channels"], s["n_classes"], 40, seed=2, gap=5, jitter=1, noise=1,
                               class_seed=0)
    ref = simulate(m, Xte, "layered")
    assert te["integer_acc"] == pytest.approx(float((ref.predictions == yte).mean()))
    assert te["parity"]["all_bit_exact"] and te["parity"]["samples"] == 80
    for L in m.layers:
        assert len(L.delays) <= 4
        assert ((L.weights != 0).sum(axis=0) <= 2).all()  # synaptic k=2
    assert [L["delay_levels"] for L in te["layers"]] == [len(L.delays) for L in m.layers]
    # the float checkpoint rebuilds the float model's predictions
    net = load_float_model(te["float_checkpoint"])
    with torch.no_grad():
        acc = float((net(torch.from_numpy(Xte).float())[0].argmax(1).numpy() == yte).mean())
    assert acc == pytest.approx(te["float_acc"])
    out = capsys.readouterr().out
    assert "bit-exact" in out and "levels" in out


def test_resume_refuses_a_changed_config(tiny, tmp_path, capsys):
    out = tmp_path / "r"
    assert _run(tiny, out, "--stop-after", "1") == 0
    assert _run(tiny, out, "--resume", "--set", "train.lr=0.02") == 2
    assert "train.lr" in capsys.readouterr().err


@pytest.mark.parametrize("override, field", [
    ({"train": {"epochs": "x"}}, "train.epochs"),
    ({"train": {"epohcs": 3}}, "train.epohcs"),
    ({"train": {"lr": -1.0}}, "train.lr"),
    ({"model": {"hidden": [0]}}, "hidden"),
    ({"data": {"val_fraction": 1.5}}, "data.val_fraction"),
    ({"prune": {"method": "random"}}, "prune.method"),
    ({"budget": {"max_taps": "lots"}}, "budget.max_taps"),
    ({"unlayered": {"scheduler": "lifo"}}, "unlayered.scheduler"),
    ({"data": {"source": "/nonexistent/dir", "time_norm": None}}, "data.source"),  # TINY's T is shorter than the default normalization's span
])
def test_bad_config_fields_are_named(tmp_path, capsys, override, field):
    p = tmp_path / "bad.json"
    cfg = json.loads(json.dumps(TINY))
    for k, v in override.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    p.write_text(json.dumps(cfg))
    assert main(["--config", str(p), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert field in capsys.readouterr().err


def test_bad_flags_and_files_are_named(tmp_path, tiny, capsys):
    assert main(["--prune", "random"]) == 2  # argparse usage error: the same exit code as bad input
    assert "--prune" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["--config", str(tmp_path / "broken.json")]) == 2
    assert "broken.json" in capsys.readouterr().err
    assert main(["--config", str(tiny), "--forward-group", "many"]) == 2
    assert "--forward-group" in capsys.readouterr().err
    assert main(["--config", str(tiny), "--set", "nosuchfield=1"]) == 2
    assert "nosuchfield" in capsys.readouterr().err
    # a tap budget below what the pruned net needs, with on_exceed=error
    assert _run(tiny, tmp_path / "bud", "--set", 'budget={"max_taps": 5, "on_exceed": "error"}') == 2
    assert "max_taps" in capsys.readouterr().err


def test_missing_neuron_module_is_a_clear_error(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sw.models.psu", None)  # as if sw/models/psu.py did not exist
    assert _run(tiny, tmp_path / "p", "--neuron", "psu") == 2
    err = capsys.readouterr().err
    assert "neuron" in err and "sw/models/psu.py" in err


def test_default_config_is_valid_and_flags_override():
    cfg = load_config(None, {"model": {"no_delays": True}, "prune": {"max_levels": 7}})
    assert cfg["model"]["no_delays"] and cfg["prune"]["max_levels"] == 7
    assert cfg["model"]["hidden"] == [48, 48] and cfg["data"]["T"] == 100 and cfg["data"]["dt"] == 0.01
    # the default learns delay positions; --no-delays has one level (0), so it runs the fixed grid
    from sw.checkpoint import net_config

    assert load_config()["model"]["delay_mode"] == "learnable"
    nc = net_config(cfg, 700, 20)
    assert nc.delay_mode == "fixed" and nc.delays == [0]
    with pytest.raises(ConfigError, match="seed"):
        load_config(None, {"seed": "zero"})


@pytest.mark.parametrize("extra", [{}, {"augment_stretch_rate": 0.5, "augment_gain": [0.6, 1.0], "augment_warp": 0.3,
                                   "augment_stretch_target": [8, 30], "augment_stretch_quiet": 0.5,
                                   "augment_loud": [0.6, 1.25]}],
                         ids=["bin-stretch", "event-stretch+warp+gain+loud"])
def test_resume_with_shd_files_and_augmentation(tmp_path, extra):
    """The SHD-format path (loader, channel pooling, every augmentation) resumes bit-exactly too."""
    from sw.data.shd import write_shd

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 12)):
        times = [np.sort(rng.random(400) * 0.2).astype(np.float16) for _ in range(n)]
        units = [rng.integers(0, 700, 400).astype(np.uint16) for _ in range(n)]
        write_shd(tmp_path / "shd" / f"shd_{split}.h5", times, units, rng.integers(0, 20, n), rng.integers(0, 3, n))
    cfg = {"data": {"T": 20, "pool": 35, "val_fraction": 0.25,  # the words' 0.2 s fit the 20-step window
                    "time_norm": {"start": 0.02, "span": 0.15}},
           "model": {"hidden": [8], "max_delay": 6, "delay_stride": 2, "delay_mode": "fixed"},
           "train": {"epochs": 2, "batch_size": 16, "threads": 1, "augment_shift": 3,
                     "augment_stretch": [0.7, 1.4], "augment_jitter": 1, "augment_dropout": 0.2,
                     "augment_fraction": 0.5, **extra},
           "prune": {"steps": 1, "start": 0.5, "end": 0.5, "k": 1, "max_levels": 2}}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(cfg))
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(p, a, "--data", str(tmp_path / "shd")) == 0
    assert _run(p, b, "--data", str(tmp_path / "shd"), "--stop-after", "1") == 0
    assert _run(p, b, "--data", str(tmp_path / "shd"), "--resume") == 0
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    m = load(a / "model.safetensors")
    assert m.n_inputs == 20 and all(len(L.delays) <= 2 for L in m.layers)


def test_execution_flag_and_deprecated_mode_alias(tiny, capsys):
    from sw.trainer import config_from_args, parse_args
    assert config_from_args(parse_args(["--config", str(tiny), "--execution", "async"]))["mode"] == "unlayered"
    assert config_from_args(parse_args(["--config", str(tiny), "--execution", "layered"]))["mode"] == "layered"
    assert config_from_args(parse_args(["--config", str(tiny), "--mode", "unlayered"]))["mode"] == "unlayered"
    assert "deprecated" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--mode"):
        config_from_args(parse_args(["--config", str(tiny), "--mode", "layered", "--execution", "async"]))
