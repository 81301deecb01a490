"""Clean failures (issue 13, item 6): every bad input gives exit code 2 and one line
naming the flag, file or field, with no traceback; bugs give 3 with a traceback;
writes are atomic. One test per case listed in the issue."""
import json
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from hw.model_file import HEADER_KEY, Layer, Model, ModelFileError, load, save
from sw.data.shd import bin_events, write_shd
from sw.errors import EXIT_CHECK_FAILED, EXIT_INTERNAL, EXIT_USAGE, guarded, write_json

import cosim.run as cosim_run


def _model(n_inputs=70, T=20, dt=0.01, info=None) -> Model:
    """A small valid model, built directly (70 inputs = SHD's 700 channels pooled by 10)."""
    rng = np.random.default_rng(0)
    hid = Layer(np.array([0, 3]), rng.integers(-20, 21, (2, n_inputs, 6)).astype(np.int8), threshold=30, decay=3000)
    out = Layer(np.array([0]), rng.integers(-20, 21, (1, 6, 3)).astype(np.int8), threshold=1, decay=4000,
                spiking=False)
    return Model([hid, out], n_inputs=n_inputs, T=T, dt=dt, info=info or {"seed": 0})


@pytest.fixture
def model_file(tmp_path):
    return save(_model(), tmp_path / "m" / "model.safetensors")


def _shd(path, n=4, times=None, float64=False):
    """An SHD-layout file; ``float64`` stores times as vlen float64 (SHD's float16 cannot hold 1e30)."""
    rng = np.random.default_rng(1)
    ts = times if times is not None else [np.sort(rng.uniform(0, 0.15, 30)) for _ in range(n)]
    us = [rng.integers(0, 700, len(t)) for t in ts]
    if not float64:
        write_shd(path, ts, us, np.arange(len(ts)) % 3, np.zeros(len(ts), np.int64))
        return path
    import h5py
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        dt = f.create_dataset("spikes/times", (len(ts),), dtype=h5py.vlen_dtype(np.float64))
        du = f.create_dataset("spikes/units", (len(ts),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t, u) in enumerate(zip(ts, us)):
            dt[i], du[i] = np.asarray(t, np.float64), np.asarray(u, np.uint16)
        f.create_dataset("labels", data=(np.arange(len(ts)) % 3).astype(np.uint8))
    return path


@pytest.fixture
def shd_file(tmp_path):
    return _shd(tmp_path / "data" / "shd_test.h5")


def _err(capsys, fn, args, *needles):
    """Run a CLI main; it must exit 2 with one error line naming every needle and no traceback."""
    capsys.readouterr()
    rc = fn(list(map(str, args)))
    err = capsys.readouterr().err
    assert rc == EXIT_USAGE, err
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if "error:" in l]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], err
    return lines[0]


def _rewrite_header(src, dst, edit):
    """Copy a model file, changing its JSON header with ``edit(h)`` (bypassing save's validation)."""
    from safetensors import safe_open
    with safe_open(str(src), framework="np") as fh:
        h = json.loads(fh.metadata()[HEADER_KEY])
    edit(h)
    save_file(load_file(str(src)), str(dst), metadata={HEADER_KEY: json.dumps(h)})
    return dst


def _no_sim(monkeypatch):
    """Make any simulation an error, to prove a check ran before it."""
    def boom(*a, **k):
        raise AssertionError("a simulation started before the input was checked")
    monkeypatch.setattr(cosim_run, "simulate", boom)
    monkeypatch.setattr(cosim_run, "make_backend", boom)


# ---------------------------------------------------------------- cosim --out
def test_cosim_out_is_a_file(model_file, tmp_path, capsys, monkeypatch):
    _no_sim(monkeypatch)
    f = tmp_path / "taken"
    f.write_text("x")
    _err(capsys, cosim_run.main, ["--model", model_file, "--data", "synthetic", "--out", f], "--out", "is a file")
    assert f.read_text() == "x"


def test_cosim_out_unwritable(model_file, capsys, monkeypatch):
    _no_sim(monkeypatch)
    # /proc refuses new folders even to root (a chmod would not stop root)
    _err(capsys, cosim_run.main, ["--model", model_file, "--data", "synthetic", "--out", "/proc/self/spikeline-out"],
         "--out", "cannot write")


# ---------------------------------------------------------------- data files
def test_data_file_with_zero_samples(model_file, tmp_path, capsys, monkeypatch):
    _no_sim(monkeypatch)
    empty = _shd(tmp_path / "empty.h5", times=[])
    line = _err(capsys, cosim_run.main, ["--model", model_file, "--data", empty, "--out", tmp_path / "o"],
                "--data", "0 samples")
    assert "empty.h5" in line or "--data" in line
    from sw.evaluate import main as eval_main
    _err(capsys, eval_main, ["--model", model_file, "--data", empty], "0 samples")


def test_event_times_of_1e30_are_beyond_T_not_a_crash(model_file, tmp_path, capsys):
    ts = [np.array([0.0, 0.05, 1e30]), np.array([1e30])]
    X = bin_events(ts[0], [5, 6, 7], 0.01, 20)
    assert X.sum() == 2 and X[0, 5] and X[5, 6]  # the 1e30 event lies beyond T and is dropped
    f = _shd(tmp_path / "far.h5", times=ts, float64=True)
    from sw.evaluate import main as eval_main
    assert eval_main(["--model", str(model_file), "--data", str(f), "--no-progress"]) == 0


def test_dt_1e_300(model_file, tmp_path, capsys):
    X = bin_events([0.0, 0.5], [1, 2], 1e-300, 20)  # t/dt overflows to inf: beyond T
    assert X.sum() == 1 and X[0, 1]
    bad = _rewrite_header(model_file, tmp_path / "dt.safetensors", lambda h: h.update(dt=1e-300))
    with pytest.raises(ModelFileError, match="'dt'"):
        load(bad)
    from sw.trainer import main as train_main
    _err(capsys, train_main, ["--data", "synthetic", "--set", "data.dt=1e-300", "--out", tmp_path / "t"], "data.dt")


def test_header_T_1e12_is_refused_at_load(model_file, tmp_path, capsys, monkeypatch):
    _no_sim(monkeypatch)
    bad = _rewrite_header(model_file, tmp_path / "T.safetensors", lambda h: h.update(T=10 ** 12))
    _err(capsys, cosim_run.main, ["--model", bad, "--data", "synthetic", "--out", tmp_path / "o"], "'T'", "T.safetensors")


@pytest.mark.parametrize("info, field", [({"seed": None}, "info.seed"), ([1, 2], "'info'"),
                                         ({"float_checkpoint": 3}, "info.float_checkpoint")])
def test_bad_info_is_refused_at_load(model_file, tmp_path, capsys, monkeypatch, info, field):
    _no_sim(monkeypatch)
    bad = _rewrite_header(model_file, tmp_path / "info.safetensors", lambda h: h.update(info=info))
    _err(capsys, cosim_run.main, ["--model", bad, "--data", "synthetic", "--out", tmp_path / "o"], field)


def test_null_info_still_loads(model_file, tmp_path):
    old = _rewrite_header(model_file, tmp_path / "null.safetensors", lambda h: h.update(info=None))
    assert load(old).info == {}


# ---------------------------------------------------------------- sw/train.py
def test_train_shd_format_error_is_one_line(tmp_path, capsys):
    d = tmp_path / "shd"
    d.mkdir()
    (d / "shd_train.h5").write_bytes(b"not hdf5")
    _shd(d / "shd_test.h5")
    from sw.trainer import main as train_main
    _err(capsys, train_main, ["--data", d, "--out", tmp_path / "o", "--no-progress"], "shd_train.h5")


def test_train_zero_sample_test_split_fails_before_training(tmp_path, capsys):
    d = tmp_path / "shd"
    _shd(d / "shd_train.h5", n=8)
    _shd(d / "shd_test.h5", times=[])
    from sw.trainer import main as train_main
    _err(capsys, train_main, ["--data", d, "--out", tmp_path / "o", "--no-progress", "--set", "data.T=20",
                                "--set", "data.time_norm=null"],  # the default's span needs more than 0.2 s
         "data.source", "test split", "0 samples")
    assert not (tmp_path / "o" / "checkpoints").exists()  # nothing was trained


def test_train_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    from sw.trainer import main as train_main
    _err(capsys, train_main, ["--data", "synthetic", "--out", f], "--out", "is a file")


# ---------------------------------------------------------------- float checkpoint
def test_model_copied_without_its_float_checkpoint(model_file, tmp_path, capsys):
    m = load(model_file)
    m.info["float_checkpoint"] = "checkpoints/final.pt"
    p = save(m, tmp_path / "elsewhere" / "model.safetensors")
    notes = []
    assert cosim_run.float_predictions(m, p, np.zeros((1, m.T, m.n_inputs), bool), log=notes.append) is None
    assert "info.float_checkpoint" in notes[0] and "--float-checkpoint" in notes[0]
    with pytest.raises(cosim_run.CosimError, match="--float-checkpoint"):  # only when passed explicitly
        cosim_run.float_predictions(m, p, np.zeros((1, m.T, m.n_inputs), bool), str(tmp_path / "nope.pt"))


# ---------------------------------------------------------------- flags checked before simulation
@pytest.mark.parametrize("flags, needle", [
    (["--vcd", "99999"], "--vcd"),
    (["--vcd", "-1"], "--vcd"),
    (["--scdq-capacity", "0"], "--scdq-capacity"),
    (["--scdq-capacity", "-5"], "--scdq-capacity"),
    (["--energy-sop-pj", "nan"], "--energy-sop-pj"),
    (["--energy-update-pj", "inf"], "--energy-update-pj"),
    (["--energy-cycle-pj", "-1"], "--energy-cycle-pj"),
    (["--clock-mhz", "0"], "--clock-mhz"),
])
def test_flags_are_checked_before_any_simulation(model_file, shd_file, tmp_path, capsys, monkeypatch, flags, needle):
    _no_sim(monkeypatch)
    out = tmp_path / "o"
    _err(capsys, cosim_run.main, ["--model", model_file, "--data", shd_file, "--out", out, *flags], needle)
    assert not (out / "report.json").exists()


def test_mode_and_execution_must_agree(model_file, tmp_path, capsys, monkeypatch):
    _no_sim(monkeypatch)
    with pytest.warns(DeprecationWarning, match="--mode is deprecated"):  # the old flag still says so
        _err(capsys, cosim_run.main, ["--model", model_file, "--mode", "async", "--execution", "layered",
                                      "--out", tmp_path / "o"], "--mode")


# ---------------------------------------------------------------- exit codes
def test_exit_codes_tell_usage_check_and_bug_apart(capsys):
    def usage(argv):
        raise cosim_run.CosimError("--flag: bad")

    def check(argv):
        return EXIT_CHECK_FAILED

    def bug(argv):
        return {}["missing"]

    assert guarded(usage) == EXIT_USAGE
    assert guarded(check) == EXIT_CHECK_FAILED
    assert guarded(bug) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "--flag: bad" in err and "Traceback" in err and "KeyError" in err


def test_cosim_internal_error_exits_3_with_traceback(model_file, shd_file, tmp_path, capsys, monkeypatch):
    def crash(*a, **k):
        raise RuntimeError("simulated bug")
    monkeypatch.setattr(cosim_run, "cosimulate", crash)
    rc = cosim_run.main(["--model", str(model_file), "--data", str(shd_file), "--out", str(tmp_path / "o"),
                         "--no-progress"])
    err = capsys.readouterr().err
    assert rc == EXIT_INTERNAL and "Traceback" in err and "simulated bug" in err


# ---------------------------------------------------------------- atomic writes
def test_save_leaves_no_temp_file_on_failure(model_file, monkeypatch):
    import safetensors.numpy as stn
    before = model_file.read_bytes()

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(stn, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save(_model(), model_file)
    assert os.listdir(model_file.parent) == [model_file.name]
    assert model_file.read_bytes() == before


def test_report_write_is_atomic_and_strict(tmp_path):
    p = tmp_path / "report.json"
    write_json({"a": 1}, p)
    with pytest.raises(TypeError):
        write_json({"a": object()}, p)  # fails while serialising: the old report stays whole
    assert json.loads(p.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["report.json"]
    write_json({"x": float("nan"), "y": [float("inf"), 1.5]}, p)
    assert json.loads(p.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}")) == \
        {"x": None, "y": [None, 1.5]}


def test_scripts_exit_with_the_same_codes(model_file, tmp_path):
    """The scripts as run from a shell: usage error 2, one line, no traceback."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    for cmd in ([sys.executable, "cosim/run.py", "--model", str(model_file), "--energy-sop-pj", "nan"],
                [sys.executable, "sw/train.py", "--set", "data.T=0"],
                [sys.executable, "-m", "sw.evaluate", "--model", str(tmp_path / "no.safetensors"), "--data", "x"],
                [sys.executable, "-m", "cosim.cli", "nir", "export", str(tmp_path / "no.safetensors"), "o.nir"]):
        r = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        assert r.returncode == EXIT_USAGE and "Traceback" not in r.stderr, (cmd, r.stderr)
        assert len([l for l in r.stderr.splitlines() if "error:" in l]) == 1, r.stderr
