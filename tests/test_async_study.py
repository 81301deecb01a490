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
        assert (p["training"], p["vs"]) == ("unlayered-fifo-F1", "layered") and p["execution"].startswith("async/")
        want = [ev[("unlayered-fifo-F1", sd)]["reference"][p["execution"]][p["setting"]]["accuracy"]
                - ev[("layered", sd)]["reference"][p["execution"]][p["setting"]]["accuracy"] for sd in (0, 1)]
        assert p["accuracy"]["diff_per_seed"] == pytest.approx(want)
        assert p["accuracy"]["sign"]["pos"] + p["accuracy"]["sign"]["neg"] + p["accuracy"]["sign"]["zero"] == 2
        if p["setting"] == "off":  # both run all T steps: matched at the last step, the plain difference
            assert p["accuracy_matched_exit"]["diff_per_seed"] == pytest.approx(want)
    # pooled: the same per-seed differences, counted by sign
    assert len(s["pooled"]) == 2 * 3
    for q in s["pooled"]:
        p = next(p for p in s["paired"] if (p["execution"], p["setting"]) == (q["execution"], q["setting"]))
        d = p["accuracy"]["diff_per_seed"]
        assert (q["accuracy"]["neg"], q["accuracy"]["pos"], q["accuracy"]["pairs"]) == (
            sum(x < 0 for x in d), sum(x > 0 for x in d), 2)
        assert q["accuracy"]["mean"] == pytest.approx(np.mean(d))
    table = (run / "table.md").read_text()
    for name in ("layered", "unlayered-fifo-F1"):  # the HDL table: 2 executions x 3 settings x 2 words, all exact
        line = next(x for x in table.splitlines() if x.startswith(f"| {name} | 0 | 2 |"))
        assert line.endswith("| 12/12 |")
    assert s["hdl_parity"] == {"runs": 2, "samples": [2], "all_bit_exact": True, "not_bit_exact": []}
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


# ---------------------------------------------------------------- the latency-aware loss (train.latency_loss_*)
def _tiny_cfg(out, weight: float, mode: str = "layered") -> dict:
    from sw.config import load_config

    c = json.loads(json.dumps(study.PROFILES["tiny"]))
    c["train"]["latency_loss_weight"] = weight
    c.update({"mode": mode, "out": str(out)})
    return load_config(overrides=c)


@pytest.mark.parametrize("mode", ["layered", "unlayered"])
def test_readout_loss_matches_an_independent_computation(mode, tmp_path):
    """Weight 0 is the mem_sum loss itself; weight w mixes in the mean cross-entropy of the running readout
    (sum up to step t, over t + 1, in the logits' units) from step floor(start T) on, computed here in numpy."""
    import torch
    from sw.checkpoint import build_model
    from sw.models.delay import mem_sum_loss
    from sw.trainer import readout_loss

    cfg = _tiny_cfg(tmp_path, 0.0, mode)
    model, net = build_model(cfg, 4, 3)
    gen = torch.Generator().manual_seed(3)
    x = (torch.rand(6, cfg["data"]["T"], 4, generator=gen) < 0.3).float()
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    logits, rec = model(x)
    assert torch.equal(readout_loss(logits, rec["readout"], y, net, 0.0, 0.25), mem_sum_loss(logits, y))
    v = rec["readout"].detach().double().numpy()
    k = float(net.layers[-1].synapse.scale().detach()) * float(np.exp(float(net.logit_scale.detach())))
    T = v.shape[1]
    final = v.sum(1) * k / T
    for w, start in ((0.5, 0.25), (1.0, 0.5), (0.3, 1.0)):
        t0 = min(T - 1, int(np.floor(start * T)))
        R = np.cumsum(v, 1)
        ce = lambda z: float(np.mean(np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)  # noqa: E731
                                     - z[np.arange(len(y)), y.numpy()]))
        early = np.mean([ce(R[:, t] / (t + 1) * k) for t in range(t0, T)])
        want = (1 - w) * ce(final) + w * early
        got = readout_loss(logits, rec["readout"], y, net, w, start)
        assert float(got.detach()) == pytest.approx(want, rel=1e-5)
    got.backward()  # it trains: the gradient reaches the readout weights
    assert net.layers[-1].synapse.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("field, value", [("latency_loss_weight", 1.5), ("latency_loss_weight", -0.1),
                                          ("latency_loss_from", 2.0), ("latency_loss_weight", "high")])
def test_latency_loss_fields_are_checked(field, value):
    from sw.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=f"train.{field}"):
        load_config(overrides={"train": {field: value}})
    assert load_config()["train"]["latency_loss_weight"] == 0.0  # off by default


def test_latency_loss_training_is_seeded_and_resumes_to_the_same_bits(tmp_path):
    """With the loss on, a training killed after one epoch and resumed ends with the bits of an uninterrupted
    one, and they differ from the same training without the loss (the option changes what is learnt)."""
    from sw.trainer import train

    on, resumed, off = tmp_path / "on", tmp_path / "resumed", tmp_path / "off"
    train(_tiny_cfg(on, 0.5), progress=False, log=lambda m: None)
    assert train(_tiny_cfg(resumed, 0.5), stop_after=1, progress=False, log=lambda m: None) is None
    train(_tiny_cfg(resumed, 0.5), resume=True, progress=False, log=lambda m: None)
    train(_tiny_cfg(off, 0.0), progress=False, log=lambda m: None)
    got = {p: (p / "model.safetensors").read_bytes() for p in (on, resumed, off)}
    assert got[on] == got[resumed]
    assert got[on] != got[off]


def test_latency_variants_and_their_comparisons():
    vs = study.variants(["fifo"], [1], [0.5])
    assert [v["name"] for v in vs] == ["layered", "unlayered-fifo-F1", "layered+lat0.5", "unlayered-fifo-F1+lat0.5"]
    assert study.comparisons(vs) == [("unlayered-fifo-F1", "layered"), ("layered+lat0.5", "layered"),
                                     ("unlayered-fifo-F1+lat0.5", "layered+lat0.5"),
                                     ("unlayered-fifo-F1+lat0.5", "unlayered-fifo-F1")]
    cfg = study.study_config("tiny", vs[3], 0, None, None, Path("/tmp/unused"))
    assert cfg["train"]["latency_loss_weight"] == 0.5 and cfg["mode"] == "unlayered"
    assert study.study_config("tiny", vs[0], 0, None, None, Path("/tmp/unused"))["train"]["latency_loss_weight"] == 0
    with pytest.raises(study.StudyError, match="--latency-loss"):
        study.parse_args(["--latency-loss", "0"])


def test_a_record_older_than_a_field_matches_only_its_neutral_value():
    cfg = study.study_config("tiny", study.variants([], [])[0], 0, None, None, Path("/tmp/unused"))
    old = json.loads(json.dumps(cfg))
    for k in ("augment_fraction", "shards", "low_bit_warmup", "latency_loss_weight", "latency_loss_from",
              "augment_stretch_rate", "augment_gain", "augment_warp", "augment_stretch_target",
              "augment_stretch_quiet", "augment_loud"):
        del old["train"][k]
    assert study.same_recipe(old, cfg)
    cfg["train"]["latency_loss_weight"] = 0.5
    assert not study.same_recipe(old, cfg)
    cfg["train"]["latency_loss_weight"] = 0.0
    old["train"]["lr"] = 0.02
    assert not study.same_recipe(old, cfg)


def test_matched_exit_diff_reads_the_baseline_curve():
    base = {"off": {"exit_step": 99.0, "accuracy": 0.5}, "q1": {"exit_step": 50.0, "accuracy": 0.2},
            "q3": {"exit_step": 80.0, "accuracy": 0.4}}
    assert study.matched_exit_diff({"exit_step": 65.0, "accuracy": 0.35}, base) == pytest.approx(0.05)
    assert study.matched_exit_diff({"exit_step": 99.0, "accuracy": 0.45}, base) == pytest.approx(-0.05)
    assert study.matched_exit_diff({"exit_step": 40.0, "accuracy": 0.3}, base) is None  # before the curve starts
