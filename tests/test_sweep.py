"""Co-design sweeps on Dask (cosim.sweep) and the fit check (cosim.fit).

The sweep tests share one 2-worker LocalCluster and one 4-point synthetic sweep
on Verilator; the rerun and killed-worker tests reuse its designs, so the
Verilator builds (one per design, cached) happen once.
"""
import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hw.model_file import load
from hw.reference import simulate, synapse_bits
from sw.evaluate import load_eval_data

from cosim import fit, sweep

SPEC = """
[base]
"data.source" = "synthetic"
"data.T" = 40
"data.val_fraction" = 0.2
"data.synthetic" = {n_train = 96, n_test = 32, n_channels = 6, n_classes = 4, gap = 6, jitter = 1, noise = 2}
"model.max_delay" = 12
"model.delay_stride" = 2
"model.tau_ms" = 10.0
"model.readout_tau_ms" = 10.0
"model.init_gain" = 2.0
train = {epochs = 3, batch_size = 32, lr = 0.01, threads = 1}
prune = {method = "synaptic", k = 2, max_levels = 4, steps = 1, start = 0.0, end = 0.5}

[grid]
"model.hidden" = [[6], [8]]
seed = [0, 1]

[hardware]
delay_unit = ["scdq"]
mode = ["layered"]
scdq_capacity = ["peak"]
samples = 8
core_budget_bits = 3000
"""
# fields that are wall-clock measurements (or where the file lives); everything else must be identical
# ("fits" is judged by run_sweep against the spec's budget, after run_point)
VOLATILE = set(sweep.TIMING_FIELDS) | {"model_path", "fits"}


def _exact(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in VOLATILE}


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster
    import logging
    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                     silence_logs=logging.ERROR)
    client = Client(c)
    yield client
    client.close()
    c.close()


@pytest.fixture(scope="module")
def swept(tmp_path_factory, cluster):
    d = tmp_path_factory.mktemp("sweep")
    (d / "spec.toml").write_text(SPEC)
    spec = sweep.load_spec(d / "spec.toml")
    out = d / "out"
    rows = sweep.run_sweep(spec, out, client=cluster, progress=False, log=lambda *a: None)
    return d, spec, out, rows


@pytest.mark.slow
def test_four_point_sweep_on_two_workers(swept):
    d, spec, out, rows = swept
    assert len(rows) == 4
    assert sorted((json.dumps(r["point"]["model.hidden"]), r["point"]["seed"]) for r in rows) == \
        [("[6]", 0), ("[6]", 1), ("[8]", 0), ("[8]", 1)]
    assert len({r["key"] for r in rows}) == 4
    with sqlite3.connect(out / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 4
    for r in rows:
        assert r["parity_bit_exact"] == r["parity_samples"] == 8
        model = load(r["model_path"])
        assert model.layers[0].n_out == r["point"]["model.hidden"][0]
        X, y = load_eval_data("synthetic", model, r["model_path"], samples=8)
        ref = simulate(model, X, "layered", "scdq")
        assert r["acc_reference"] == r["acc_hdl"] == pytest.approx(float((ref.predictions == y).mean()))
        assert r["acc_float"] is not None
        assert r["sops"] == pytest.approx(float(ref.sops.sum(1).mean()))
        assert r["ttd_steps"] == pytest.approx(float(ref.time_to_decision.mean()))
        peak = ref.occupancy.max(axis=(0, 2))
        assert r["scdq_peak"] == [int(p) for p in peak]
        for m, L in zip(r["memory"], model.layers):
            assert m["synapse_bits"] == synapse_bits(L.weights, model.widths.weight_bits)
            assert m["core_bits"] == m["synapse_bits"] + m["delay_bits"] + m["state_bits"]
        assert r["total_bits"] == sum(m["core_bits"] for m in r["memory"])
        assert r["fits"] == (max(m["core_bits"] for m in r["memory"]) <= 3000)
        assert r["cycles_p99"] >= r["cycles_mean"] > 0 and r["energy_nj"] > 0 and r["train_seconds"] > 0


@pytest.mark.slow
def test_rerun_does_no_training_and_writes_the_front(swept, capsys, monkeypatch):
    d, spec, out, rows = swept
    mtimes = {r["model_path"]: os.stat(r["model_path"]).st_mtime_ns for r in rows}

    def no_cluster(*a, **k):
        raise AssertionError("a rerun of a finished sweep must not start any work")
    monkeypatch.setattr(sweep, "_client", no_cluster)
    assert sweep.main(["--spec", str(d / "spec.toml"), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "4 points done, 0 to run" in text
    assert {r["model_path"]: os.stat(r["model_path"]).st_mtime_ns for r in rows} == mtimes
    front = sweep.non_dominated(rows)
    assert f"non-dominated ({len(front)} of 4" in text
    for png in ("pareto_memory.png", "pareto_cycles.png"):
        assert (out / png).stat().st_size > 1000


@pytest.mark.slow
def test_killed_worker_point_completes_on_retry_with_the_serial_row(swept, cluster, tmp_path):
    d, spec, out, rows = swept
    one = dict(spec, grid={"model.hidden": [[8]], "seed": [1]})
    serial = sweep.run_point(sweep.expand(one, (tmp_path / "serial").resolve())[0])
    assert len(serial) == 1
    job = sweep.expand(one, (tmp_path / "killed").resolve())[0]
    ck = tmp_path / "killed" / "points" / job["point_key"] / "checkpoints" / "last.pt"
    killed = {}

    def killer():  # kill the worker running the point as soon as its first epoch is checkpointed
        deadline = time.time() + 300
        while time.time() < deadline and not ck.is_file():
            time.sleep(0.02)
        for addr, keys in cluster.processing().items():
            if any(str(k).startswith(f"point-{job['point_key']}") for k in keys):
                pid = cluster.run(os.getpid, workers=[addr])[addr]
                os.kill(pid, signal.SIGKILL)
                killed.update(addr=addr, pid=pid)
                return
    t = threading.Thread(target=killer)
    t.start()
    rows2 = sweep.run_sweep(one, tmp_path / "killed", client=cluster, progress=False, log=lambda *a: None)
    t.join()
    assert killed, "the point finished before its worker could be killed"
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)
    assert len(rows2) == 1
    assert _exact(rows2[0]) == _exact(serial[0])
    # and the same design point in the 4-point sweep gave the same row too
    same = [r for r in rows if r["key"] == serial[0]["key"]]
    assert len(same) == 1 and _exact(same[0]) == _exact(serial[0])


@pytest.mark.slow
def test_capacity_below_the_peak_reuses_the_training_and_stays_bit_exact(swept):
    d, spec, out, rows = swept
    one = dict(spec, grid={"model.hidden": [[8]], "seed": [1]},
               hardware=dict(spec["hardware"], scdq_capacity=["peak", "50%"]))
    before = {r["point_key"]: r for r in rows}
    rows2 = sweep.run_sweep(one, out, client=None, workers=1, progress=False, log=lambda *a: None)
    assert len(rows2) == 2
    peak_row, half = rows2
    assert _exact(peak_row) == _exact(before[peak_row["point_key"]])  # already there: not recomputed
    assert half["train_seconds"] == peak_row["train_seconds"]  # the finished training was reused
    model = load(half["model_path"])
    X, y = load_eval_data("synthetic", model, half["model_path"], samples=8)
    peak = simulate(model, X, "layered", "scdq").occupancy.max(axis=(0, 2))
    caps = [max(1, -(-int(p) // 2)) for p in peak]
    assert half["scdq_capacity"] == caps
    at_cap = simulate(model, X, "layered", "scdq", scdq_capacity=caps)
    assert half["parity_bit_exact"] == half["parity_samples"] == 8  # HDL and reference drop the same events
    assert half["acc_hdl"] == pytest.approx(float((at_cap.predictions == y).mean()))
    assert half["acc_reference_unlimited"] == pytest.approx(float((simulate(model, X, "layered", "scdq").predictions
                                                                    == y).mean()))
    assert sum(half["dropped"]) > 0 and sum(peak_row["dropped"]) == 0
    assert half["delay_bits"] < peak_row["delay_bits"]
    png = sweep.plot_capacity(rows2, out)
    assert png == out / "scdq_capacity.png" and png.stat().st_size > 1000
    assert sweep.plot_capacity(rows, out) is None  # one capacity per point: no curve to draw
    text = sweep.format_table(rows2)
    assert "/".join(map(str, caps)) in text and "/".join(map(str, half["dropped"])) in text


@pytest.mark.slow
def test_force_recomputes_a_point_from_scratch_on_an_existing_scheduler(swept, cluster):
    d, spec, out, rows = swept
    one = dict(spec, grid={"model.hidden": [[6]], "seed": [1]})
    old = next(r for r in rows if r["point"] == {"model.hidden": [6], "seed": 1})
    ck = Path(old["model_path"]).parent / "checkpoints" / "last.pt"
    before = ck.stat().st_mtime_ns
    # through the --scheduler path: a client of its own on the running cluster's address
    new = sweep.run_sweep(one, out, scheduler=cluster.scheduler.address, force=True, progress=False,
                          log=lambda *a: None)
    assert ck.stat().st_mtime_ns != before  # trained again
    assert len(new) == 1 and _exact(new[0]) == _exact(old)  # and, being deterministic, to the same row
    with sqlite3.connect(out / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM results WHERE key = ?", (old["key"],)).fetchone()[0] == 1


# ---------------------------------------------------------------- fit check
@pytest.mark.slow
def test_fit_check_on_a_fitting_and_a_non_fitting_model(swept, capsys):
    d, spec, out, rows = swept
    r = rows[0]
    model = load(r["model_path"])
    caps = ",".join(str(c) for c in r["scdq_capacity"])
    need = r["max_core_bits"]  # the same memories the sweep recorded for this point
    base = ["--model", r["model_path"], "--scdq-capacity", caps, "--mode", "layered"]
    assert fit.main(base + ["--core-budget-bits", str(need), "--max-fan-in", str(model.n_inputs),
                            "--max-delay", str(max(L.max_delay for L in model.layers))]) == 0
    assert capsys.readouterr().out.rstrip().endswith("FITS")
    assert fit.main(base + ["--core-budget-bits", str(need - 1)]) == 1
    text = capsys.readouterr().out
    worst = max(range(len(r["memory"])), key=lambda l: r["memory"][l]["core_bits"])
    assert f"layer {worst}: core memory {need:,} bits" in text and "by 1 bits" in text
    assert text.rstrip().endswith("DOES NOT FIT")
    assert fit.main(base + ["--max-fan-in", str(model.n_inputs - 1)]) == 1
    assert f"layer 0: fan-in {model.n_inputs} exceeds the limit {model.n_inputs - 1} by 1" in capsys.readouterr().out
    D = model.layers[0].max_delay
    assert fit.main(base + ["--max-delay", str(D - 1)]) == 1
    assert f"max delay {D} exceeds the limit {D - 1} by 1" in capsys.readouterr().out


def test_fit_worst_case_capacity_never_overflows_and_bad_input(tmp_path, capsys):
    from hw.model_file import Layer, Model, save
    rng = np.random.default_rng(0)
    m = Model([Layer(np.array([0, 3]), rng.integers(-5, 40, (2, 5, 4)).astype(np.int8), 20, 4000),
               Layer(np.array([2]), rng.integers(-9, 9, (1, 4, 3)).astype(np.int8), 1, 4096, spiking=False)], 5, 12)
    X = np.ones((2, 12, 5), bool)  # every input fires at every step: the worst case
    peak = simulate(m, X, "async", "scdq").occupancy.max(axis=(0, 2))
    assert list(peak)[0] == fit.worst_case_capacity(m)[0]  # the bound is reached, and not exceeded
    assert all(p <= w for p, w in zip(peak, fit.worst_case_capacity(m)))
    path = save(m, tmp_path / "m.safetensors")
    assert fit.main(["--model", str(path)]) == 0  # no limits: it fits
    assert fit.main(["--model", str(path), "--scdq-capacity", "1,2,3"]) == 2
    assert "--scdq-capacity needs one capacity >= 1 or one per layer (2)" in capsys.readouterr().err
    assert fit.main(["--model", str(tmp_path / "missing.safetensors")]) == 2
    assert "--model" in capsys.readouterr().err


# ---------------------------------------------------------------- spec and front (no simulation)
@pytest.mark.parametrize("text, message", [
    ("[grid]\nseed = 3\n", "[grid] seed: must be a non-empty list"),
    ("[hardware]\nscdq_capacity = [\"peak\", 0]\n", "[hardware] scdq_capacity: each must be \"peak\", an int >= 1"),
    ("[hardware]\nscdq_capacity = [\"120%\"]\n", "[hardware] scdq_capacity: each must be"),
    ("[hardware]\nmode = [\"sync\"]\n", "[hardware] mode: must be among"),
    ("[hardware]\nsamples = 0\n", "[hardware] samples: must be a positive int"),
    ("[hardware]\nqueue = 3\n", "[hardware] queue: unknown field"),
    ("[extra]\n", "unknown table(s) ['extra']"),
    ("[grid]\n\"model.hiden\" = [[4]]\n", "[grid] config field 'model.hiden': unknown field"),
    ("[base]\n\"train.epochs\" = 0\n", "[base] config field 'train.epochs': must be >= 1"),
    ("[base\n", "is not valid TOML"),
])
def test_bad_spec_names_the_field(tmp_path, capsys, text, message):
    p = tmp_path / "s.toml"
    p.write_text(text)
    assert sweep.main(["--spec", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_grid_expands_to_every_combination_with_stable_keys(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(SPEC.replace("seed = [0, 1]", "seed = [0, 1, 2]").replace('delay_unit = ["scdq"]',
                                                                          'delay_unit = ["scdq", "ring"]'))
    spec = sweep.load_spec(p)
    jobs = sweep.expand(spec, tmp_path / "a")
    assert len(jobs) == 6 and all(len(j["hardware"]) == 2 for j in jobs)
    assert {j["hardware"][1]["scdq_capacity"] for j in jobs} == {None}  # a ring buffer has no capacity
    again = sweep.expand(sweep.load_spec(p), tmp_path / "b")  # the keys do not depend on where results go
    assert [j["row_keys"] for j in jobs] == [j["row_keys"] for j in again]
    assert len({k for j in jobs for k in j["row_keys"]}) == 12
    assert jobs[0]["config"]["train"]["epochs"] == 3 and jobs[0]["config"]["data"]["synthetic"]["n_train"] == 96


def test_non_dominated_front():
    def row(acc, bits, cyc):
        return {"acc_hdl": acc, "total_bits": bits, "cycles_mean": cyc}
    a, b, c, d = row(0.9, 100, 10), row(0.8, 50, 10), row(0.8, 100, 10), row(0.9, 100, 10)
    front = sweep.non_dominated([a, b, c, d])
    assert c not in front and a in front and b in front and d in front  # equal rows do not dominate each other
