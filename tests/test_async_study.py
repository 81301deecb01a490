"""bench/async_study.py end to end on the tiny synthetic profile: trainings, reference
evaluation with early exit, HDL (Amaranth simulator) for one seed, report, resume."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("async_study", ROOT / "bench" / "async_study.py")
study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study)

ARGS = ["--profile", "tiny", "--seeds", "0", "1", "--schedulers", "fifo", "--forward-groups", "1",
        "--hdl-seeds", "0", "--hdl-units", "scdq", "--hdl-samples", "2", "--backend", "amaranth", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    assert study.main(ARGS + ["--out", str(out)]) == 0
    return out


def test_files_and_rows(run):
    for f in ("study.json", "table.md", "accuracy_vs_exit.png", "training_vs_execution.png", "paired_async.png"):
        assert (run / f).is_file(), f
    s = json.loads((run / "study.json").read_text())
    names = {r["training"] for r in s["rows"]}
    assert names == {"layered", "unlayered-fifo-F1"}
    # 2 trainings x 4 (execution, unit) x 3 exit settings
    assert len(s["rows"]) == 2 * 4 * 3
    for r in s["rows"]:
        assert r["seeds"] == [0, 1]
        for k in study.METRICS:
            per = [x for x in r[k]["per_seed"] if x is not None]
            if per:
                assert r[k]["mean"] == pytest.approx(np.mean(per))
                if len(per) > 1:
                    assert r[k]["std"] == pytest.approx(np.std(per, ddof=1))
    # the recipe is recorded in full with each training
    for t in s["trainings"]:
        assert t["config"]["train"]["epochs"] == study.PROFILES["tiny"]["train"]["epochs"]
        assert t["config"]["seed"] == t["seed"]
    assert s["mixed_training_code"] == {"layered": False, "unlayered": False}


def test_reference_figures_match_an_independent_run(run):
    """The per-seed figures equal hw.reference.simulate run directly with the early-exit rule on."""
    from hw.model_file import load
    from hw.reference import simulate
    from sw.data.splits import load_data

    for name in ("layered", "unlayered-fifo-F1"):
        tr = json.loads((run / "models" / name / "seed1" / "study_train.json").read_text())
        ev = json.loads((run / "eval" / name / "seed1.json").read_text())
        model = load(run / "models" / name / "seed1" / "model.safetensors")
        d = load_data(tr["config"])
        for setting, (m, s_) in ev["margins"]["settings"].items():
            assert setting == "off" or m >= 1
            for ex in ("layered/scdq", "async/scdq", "async/ring"):
                mode, unit = ex.split("/")
                ref = simulate(model, d.Xte, mode, unit, early_exit=None if m == 0 else (m, s_))
                got = ev["reference"][ex][setting]
                assert got["accuracy"] == pytest.approx(float((ref.predictions == d.yte).mean()))
                assert got["sops_per_inference"] == pytest.approx(float(ref.sops.sum(1).mean()))
                assert got["exit_step"] == pytest.approx(float(ref.exit_step.mean()))
                assert got["time_to_decision"] == pytest.approx(float(ref.time_to_decision.mean()))
                spikes = ref.spikes(0).sum() / (len(d.yte) * model.T * model.layers[0].n_out)
                assert got["density"] == pytest.approx(float(spikes))
        # margins: q times the median final lead of the layered run on the validation split
        R = simulate(model, d.Xval, "layered").readout[:, -1]
        srt = np.sort(R, axis=-1)
        lead = float(np.median(srt[:, -1] - srt[:, -2]))
        for q in ev["margins"]["q"]:
            assert ev["margins"]["settings"][f"q{q:g}"][0] == max(1, round(q * lead))


def test_margins_change_decisions(run):
    """At least one margin ends samples early (otherwise the exit columns would say nothing)."""
    s = json.loads((run / "study.json").read_text())
    assert any(r["exited_early"]["mean"] > 0 for r in s["rows"] if r["setting"] != "off")


def test_paired_and_hdl(run):
    s = json.loads((run / "study.json").read_text())
    ev = {(n, sd): json.loads((run / "eval" / n / f"seed{sd}.json").read_text())
          for n in ("layered", "unlayered-fifo-F1") for sd in (0, 1)}
    for p in s["paired"]:
        assert p["training"] == "unlayered-fifo-F1" and p["execution"].startswith("async/")
        want = [ev[("unlayered-fifo-F1", sd)]["reference"][p["execution"]][p["setting"]]["accuracy"]
                - ev[("layered", sd)]["reference"][p["execution"]][p["setting"]]["accuracy"] for sd in (0, 1)]
        assert p["accuracy"]["diff_per_seed"] == pytest.approx(want)
        assert p["accuracy"]["sign"]["pos"] + p["accuracy"]["sign"]["neg"] + p["accuracy"]["sign"]["zero"] == 2
    hdl_rows = [r for r in s["rows"] if r["hdl"]]
    # seed 0, SCDQ, both executions, 3 settings, 2 trainings
    assert len(hdl_rows) == 2 * 2 * 3
    for r in hdl_rows:
        assert list(r["hdl"]) == ["0"]
        h = r["hdl"]["0"]
        assert h["bit_exact"] == h["samples"] == 2
        assert h["accuracy"] == h["accuracy_reference"]
        assert h["cycles_mean"] > 0


def test_rerun_skips_done_work_and_is_deterministic(run, monkeypatch):
    """A rerun trains and simulates nothing that is done; a deleted evaluation comes back bit for bit."""
    import sw.trainer

    def boom(*a, **k):
        raise AssertionError("a finished step ran again")

    monkeypatch.setattr(sw.trainer, "train", boom)
    monkeypatch.setattr(study, "hdl_one", boom)
    ef = run / "eval" / "layered" / "seed0.json"
    before = ef.read_text()
    ef.unlink()
    assert study.main(ARGS + ["--out", str(run)]) == 0
    assert ef.read_text() == before


def test_changed_recipe_is_refused(run, capsys):
    assert study.main(ARGS + ["--out", str(run), "--epochs", "3"]) == 2
    assert "study_train.json" in capsys.readouterr().err


def test_bad_flags():
    with pytest.raises(study.StudyError, match="--forward-groups"):
        study.parse_args(["--forward-groups", "0"])
    with pytest.raises(study.StudyError, match="--margins"):
        study.parse_args(["--margins", "0"])
