"""sw.data.generate.word_rates (each word's speaking rate from the manifest) and bench/rate_accuracy.py."""
import json
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sw.data import generate as G
from sw.data.shd import write_shd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def _manifest(root: Path, n_train=40, n_test=40, n_shifted=20, params=G.GenParams()):
    """A manifest as generate() writes it, without synthesizing any audio."""
    tr, te = G.make_speakers(0, 4, 2, params)
    root.mkdir(parents=True, exist_ok=True)
    man = {"params": G._params(n_train, n_test, 0, 4, 2, n_shifted, params),
           "speakers": {"train": [asdict(s) for s in tr], "test": [asdict(s) for s in te]}}
    (root / "manifest.json").write_text(json.dumps(man))
    return tr, te


def test_rates_follow_each_split_s_parameters(tmp_path):
    tr, te = _manifest(tmp_path, params=G.GenParams().plain_training())  # heard = drawn (tempo: test_generate)
    j = G.GenParams().rate_jitter
    for split, spk, n in (("train", tr, 40), ("test", te, 40)):
        r = G.word_rates(tmp_path, split)
        assert len(r) == n
        base = np.array([spk[(i // 20) % len(spk)].speed for i in range(n)])
        assert np.all(r >= base * (1 - j)) and np.all(r <= base * (1 + j))  # the speaker's rate +- jitter
        assert len(np.unique(r)) == n  # drawn per word
    for name, rng in (("slow", G.SHIFTS["slow"]["rate"]), ("fast", G.SHIFTS["fast"]["rate"])):
        r = G.word_rates(tmp_path, name)
        assert len(r) == 20 and np.all((r >= rng[0]) & (r <= rng[1]))
    assert len(G.word_rates(tmp_path, "test", n=5)) == 5


def test_foreign_manifests_are_refused_naming_the_field(tmp_path):
    _manifest(tmp_path)
    with pytest.raises(ValueError, match="split"):
        G.word_rates(tmp_path, "loud")
    man = json.loads((tmp_path / "manifest.json").read_text())
    man["speakers"]["test"][0]["speed"] += 1
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="field speakers"):
        G.word_rates(tmp_path, "test")
    man["params"]["generator_version"] = 1
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="params.generator_version"):
        G.word_rates(tmp_path, "test")
    with pytest.raises(ValueError, match="not a generator manifest"):
        G.word_rates(tmp_path / "nowhere", "test")
    man["params"]["generator_version"] = G.GENERATOR_VERSION
    del man["speakers"]
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="not a generator manifest.*speakers"):
        G.word_rates(tmp_path, "test")


def test_version_2_sets_have_the_same_draws(tmp_path):
    """Version 3 changed only how words below espeak's floor are stretched, not any draw."""
    _manifest(tmp_path)
    v3 = {s: G.word_rates(tmp_path, s) for s in ("train", "test", "slow")}
    man = json.loads((tmp_path / "manifest.json").read_text())
    man["params"]["generator_version"] = 2
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    for s, r in v3.items():
        assert np.array_equal(G.word_rates(tmp_path, s), r)


def test_rate_range_is_what_the_draws_reach():
    p = G.GenParams()
    assert p.rate_range() == pytest.approx((72.0, 216.0))
    assert G.shifted_params(p, "fast").rate_range() == G.SHIFTS["fast"]["rate"]
    assert G.GenParams.from_dict(p.as_dict()) == p
    assert p.heard_train_range() == pytest.approx((72.0 * 0.7, 216.0 * 1.4))  # the default: half played 0.7-1.4x
    p = p.plain_training()
    assert p.heard_train_range() == p.rate_range()  # no tempo change: heard as drawn
    tempo = replace(p, train_tempo=(0.7, 1.4), train_tempo_share=0.5)
    assert tempo.heard_train_range() == pytest.approx((72.0 * 0.7, 216.0 * 1.4))
    assert replace(tempo, train_tempo_share=0.0).heard_train_range() == p.rate_range()
    assert replace(p, train_tempo=(1.1, 1.2), train_tempo_share=1.0).heard_train_range() == pytest.approx((72.0, 259.2))


@needs_espeak
@pytest.mark.filterwarnings("ignore:n_shifted.*not a multiple:UserWarning")  # a 2-word split on purpose
def test_recomputed_rates_are_the_spoken_ones(tmp_path):
    """Against the audio: the words whose recomputed rate is lower last longer (span from the events)."""
    from sw.data.shd import read_shd
    from sw.data.time_norm import word_span

    G.generate(tmp_path, 0, 0, seed=0, workers=1, progress=False, n_shifted=2, n_test_speakers=1,
               n_train_speakers=1)
    rates, spans = [], []
    for name in ("slow", "fast"):
        ev = read_shd(G.shifted_path(tmp_path, name))
        rates += list(G.word_rates(tmp_path, name))
        spans += [np.subtract(*word_span(t)[::-1]) for t in ev.times]
    order = np.argsort(rates)
    assert np.all(np.array(spans)[order][:2] > 2 * np.array(spans)[order][2:].max())  # 50-65 vs 240-300 wpm


def test_bench_bins_each_word_by_its_rate(tmp_path):
    """bench/rate_accuracy: every word lands in the bin of its recomputed rate, and each bin's accuracy
    is the reference's on exactly those words."""
    import rate_accuracy as RA
    from hw.model_file import save
    from hw.reference import simulate
    from sw.data.shd import load_rasters
    from sw.export import to_model_file
    from sw.models.delay import DelayNet, NetConfig

    root = tmp_path / "set"
    _manifest(root, n_test=40, n_shifted=20)
    rng = np.random.default_rng(0)
    for f, n in ((root / "shd_test.h5", 40), (G.shifted_path(root, "fast"), 20)):
        write_shd(f, [np.sort(rng.uniform(0, 0.5, 300)) for _ in range(n)], [rng.integers(0, 700, 300) for _ in range(n)],
                  np.arange(n) % 20 % 4, np.zeros(n, np.int64))
    torch.manual_seed(0)
    net = DelayNet(NetConfig(n_inputs=70, hidden=[12], n_classes=4, T=50, max_delay=20, delay_stride=2, init_gain=3.0))
    path = save(to_model_file(net, info={"seed": 0}), tmp_path / "m.safetensors")
    edges = [50, 100, 150, 200, 250, 300]
    rows = RA.rate_rows([str(path)], root, ["test", "fast"], edges, progress=False)
    from hw.model_file import load

    model = load(path)
    for split, f in (("test", root / "shd_test.h5"), ("fast", G.shifted_path(root, "fast"))):
        X, y = load_rasters(f, dt=model.dt, T=model.T, pool=10)
        ok = simulate(model, X, "layered").predictions == y
        r = G.word_rates(root, split)
        mine = [x for x in rows if x["split"] == split]
        assert sum(x["n"] for x in mine) == len(y)
        for x in mine:
            sel = (r >= x["rate_lo"]) & (r < x["rate_hi"])
            assert x["n"] == sel.sum() and x["accuracy"] == [pytest.approx(ok[sel].mean())]
    assert RA.main(["--model", str(path), "--data", str(root), "--splits", "test", "fast", "--out",
                    str(tmp_path / "out"), "--no-progress"]) == 0
    assert (tmp_path / "out" / "rate_accuracy.png").stat().st_size > 0
