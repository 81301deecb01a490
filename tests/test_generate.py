"""Offline SHD generator: determinism, caching, speakers, labels."""
import json
import shutil
import tempfile
from dataclasses import asdict, replace

import h5py
import numpy as np
import pytest

from sw.data import generate as G
from sw.data.shd import read_shd

# only the tests that really run espeak-ng are skipped without it; speakers,
# labels (espeak-ng monkeypatched) and the CLI are tested everywhere
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
needs_rubberband = pytest.mark.skipif(shutil.which("rubberband") is None, reason="rubberband-cli not installed")
# the tiny sets below are unbalanced on purpose (speaker_balance_note); the warning has its own test
pytestmark = pytest.mark.filterwarnings("ignore:n_(test|shifted).*not a multiple:UserWarning")


def _contents(path):
    out = {}
    with h5py.File(path) as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                v = obj[()]
                out[name] = [np.asarray(a).tolist() for a in v] if v.dtype == object else np.asarray(v).tolist()
        f.visititems(visit)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The same tiny set made with 1 and 2 workers, and once with another seed."""
    root = tmp_path_factory.mktemp("gen")
    a = G.generate(root / "a", 4, 2, seed=3, workers=1, progress=False)
    b = G.generate(root / "b", 4, 2, seed=3, workers=2, progress=False)
    c = G.generate(root / "c", 4, 2, seed=4, workers=1, progress=False)
    return a, b, c


@needs_espeak
def test_same_seed_identical_files_for_any_worker_count(tiny):
    (a_tr, a_te), (b_tr, b_te), _ = tiny
    assert _contents(a_tr) == _contents(b_tr)
    assert _contents(a_te) == _contents(b_te)


@needs_espeak
def test_different_seed_differs(tiny):
    (a_tr, _), _, (c_tr, _) = tiny
    assert _contents(a_tr)["spikes/times"] != _contents(c_tr)["spikes/times"]


@needs_espeak
def test_output_is_shd_layout_with_labels_and_disjoint_speakers(tiny):
    (tr, te), _, _ = tiny
    with h5py.File(tr) as f:
        assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float16
        assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
        assert f["labels"].dtype == np.uint8
    etr, ete = read_shd(tr), read_shd(te)
    assert etr.labels.tolist() == [0, 1, 2, 3] and ete.labels.tolist() == [0, 1]
    assert etr.keys == G.KEYS
    for e in (etr, ete):
        for t, u in zip(e.times, e.units):
            assert t.size > 200 and 0.2 < t[-1] < 2.0
            assert len(np.unique(u)) > 100
    manifest = json.loads((tr.parent / "manifest.json").read_text())
    train_ids = {s["sid"] for s in manifest["speakers"]["train"]}
    test_ids = {s["sid"] for s in manifest["speakers"]["test"]}
    assert set(etr.speakers.tolist()) <= train_ids and set(ete.speakers.tolist()) <= test_ids
    assert not train_ids & test_ids


@needs_espeak
def test_rerun_reuses_and_new_parameters_regenerate(tmp_path):
    tr, te = G.generate(tmp_path, 2, 1, seed=0, workers=1, progress=False)
    stamp = (tr.stat().st_mtime_ns, te.stat().st_mtime_ns)
    assert G.generate(tmp_path, 2, 1, seed=0, workers=1, progress=False) == (tr, te)
    assert (tr.stat().st_mtime_ns, te.stat().st_mtime_ns) == stamp
    G.generate(tmp_path, 3, 1, seed=0, workers=1, progress=False)
    assert len(read_shd(tr)) == 3
    assert json.loads((tmp_path / "manifest.json").read_text())["params"]["n_train"] == 3


def _generate_in_child(root, n_train):
    return [str(p) for p in G.generate(root, n_train, 1, seed=5, workers=1, progress=False)]


@needs_espeak
def test_concurrent_generators_of_one_folder_serialise_and_leave_a_valid_set(tmp_path):
    """Two processes (sweep workers, say) asking for one new set at once: one generates under the
    folder's lock, the other then finds it cached; no temporary file is left behind."""
    import multiprocessing as mp

    root = tmp_path / "shared"
    G.generate(root, 1, 1, seed=5, workers=1, progress=False)  # an older set in place: it must be replaced whole
    with mp.get_context("spawn").Pool(2) as pool:
        got = pool.starmap(_generate_in_child, [(root, 3), (root, 3)])
    assert got[0] == got[1] == [str(root / "shd_train.h5"), str(root / "shd_test.h5")]
    alone = G.generate(tmp_path / "alone", 3, 1, seed=5, workers=1, progress=False)
    assert _contents(root / "shd_train.h5") == _contents(alone[0])
    assert _contents(root / "shd_test.h5") == _contents(alone[1])
    assert json.loads((root / "manifest.json").read_text())["params"]["n_train"] == 3
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".") and "tmp" in p.name) == []


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_speakers_disjoint_and_deterministic(seed):
    tr, te = G.make_speakers(seed, 24, 6)
    assert (tr, te) == G.make_speakers(seed, 24, 6)
    assert len(tr) == 24 and len(te) == 6
    assert not {s.identity() for s in tr} & {s.identity() for s in te}
    assert not {s.variant for s in tr} & {s.variant for s in te}
    assert [s.sid for s in tr + te] == list(range(30))
    assert all(0.93 <= s.tract <= 1.07 and 0 <= s.pitch <= 99 for s in tr + te)
    with pytest.raises(ValueError, match="speakers"):
        G.make_speakers(seed, len(G.VARIANTS) * len(G.EN_VOICES), 1)


def test_label_word_voice_mapping(monkeypatch):
    assert G.WORDS[:10] == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    assert G.WORDS[10:] == ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]
    assert G.KEYS[15] == "fuenf" and len(G.KEYS) == 20
    calls = []

    def fake_espeak(word, voice, speed, pitch, pitch_range=100.0, vowel_add=0):
        calls.append((word, voice))
        t = np.arange(8000) / G.ESPEAK_RATE
        return np.sin(2 * np.pi * 300 * t) * np.hanning(t.size)

    monkeypatch.setattr(G, "espeak", fake_espeak)
    tr, _ = G.make_speakers(0, 3, 1)
    for index in (3, 12, 29, 57):
        label = G.synth_sample(0, 0, index, tr)[2]
        assert label == index % 20
    spk = [tr[(i // 20) % 3] for i in (3, 12, 29, 57)]
    assert calls == [("three", f"{spk[0].en_voice}+{spk[0].variant}"), ("zwei", f"de+{spk[1].variant}"),
                     ("nine", f"{spk[2].en_voice}+{spk[2].variant}"), ("sieben", f"de+{spk[3].variant}")]


@needs_espeak
def test_espeak_reads_real_audio():
    x = G.espeak("sieben", "de+m3", 150, 50)
    assert x.ndim == 1 and 0.2 < x.size / G.ESPEAK_RATE < 2.0 and np.abs(x).max() > 0.05


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as ei:
        G.main(["--help"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    assert "--train" in out and "--workers" in out and "German" in out


# ---------------------------------------------------------------- broader corpus (generator v2)
def test_default_speakers_40_10_disjoint_variants_and_ranges():
    p = G.GenParams()
    tr, te = G.make_speakers(0, G.DEFAULT_TRAIN_SPEAKERS, G.DEFAULT_TEST_SPEAKERS)
    assert (len(tr), len(te)) == (40, 10)
    assert not {s.variant for s in tr} & {s.variant for s in te}
    assert len({s.identity() for s in tr + te}) == 50
    assert {s.en_voice for s in tr + te} <= set(G.EN_VOICES) and len({s.en_voice for s in tr}) > 3
    for s in tr + te:
        assert p.speaker_rate[0] <= s.speed <= p.speaker_rate[1]
        assert p.speaker_range[0] <= s.pitch_range <= p.speaker_range[1]


def test_per_word_draws_cover_the_stated_ranges():
    p = G.GenParams()
    spk = G.make_speakers(0, 2, 1)[0][0]
    draws = [G.draw_utterance(spk, p, G.sample_rng(0, 0, i)) for i in range(400)]
    rates = np.array([u.rate for u in draws]) / spk.speed
    assert rates.min() >= 0.8 and rates.max() <= 1.2 and rates.min() < 0.83 and rates.max() > 1.17  # +-20 %
    gains = np.array([u.gain_db for u in draws])
    assert np.abs(gains).max() <= p.loudness_db and gains.std() > 1.5
    for name, (lo, hi) in (("lead_s", p.lead_s), ("trail_s", p.trail_s), ("snr_db", p.snr_db)):
        v = np.array([getattr(u, name) for u in draws])
        assert v.min() >= lo and v.max() <= hi and v.max() - v.min() > 0.8 * (hi - lo)
    assert len({u.pitch for u in draws}) > 8 and len({round(u.pitch_range) for u in draws}) > 8
    assert G.draw_utterance(spk, replace(p, snr_db=None), G.sample_rng(0, 0, 0)).snr_db is None


def test_shifted_splits_lie_outside_the_training_range():
    p = G.GenParams()
    train_lo = p.speaker_rate[0] * (1 - p.rate_jitter)
    train_hi = p.speaker_rate[1] * (1 + p.rate_jitter)
    assert G.SHIFTS["slow"]["rate"][1] < train_lo and G.SHIFTS["fast"]["rate"][0] > train_hi
    assert G.SHIFTS["noisy"]["snr_db"][1] < p.snr_db[0] and G.SHIFTS["noisy"]["snr_db"][1] <= p.train_snr_db[0]
    assert train_lo <= p.train_rate[0] and p.train_rate[1] <= train_hi  # the default's training-only rates
    spk = G.make_speakers(0, 2, 1)[1][0]
    for name in ("slow", "fast"):
        lo, hi = G.SHIFTS[name]["rate"]
        q = G.shifted_params(p, name)
        assert all(lo <= G.draw_utterance(spk, q, G.sample_rng(0, 2, i)).rate <= hi for i in range(50))
    with pytest.raises(ValueError, match="unknown"):
        G.shifted_params(p, "loud")


def test_bad_generator_parameters_are_named():
    for kw, field in (({"speaker_rate": (200.0, 90.0)}, "speaker_rate"), ({"rate_jitter": 1.5}, "rate_jitter"),
                      ({"lead_s": (-0.1, 0.1)}, "lead_s"), ({"snr_db": (5.0,)}, "snr_db")):
        with pytest.raises(ValueError, match=field):
            replace(G.GenParams(), **kw).validate()


def test_manifest_params_record_every_generator_parameter():
    p = G.GenParams()
    m = G._params(10, 5, 0, 40, 10, 3, p)
    # every parameter, except a later field at its off value (G.OFF_IF_ABSENT), which from_dict restores
    assert m["generator"] == p.as_dict() and G.GenParams.from_dict(m["generator"]) == p
    assert set(m["generator"]) | set(G.OFF_IF_ABSENT) == set(G.GenParams.__dataclass_fields__)
    assert G._params(10, 5, 0, 40, 10, 3, replace(p, train_rate=(150.0, 200.0), train_rate_share=0.2)) != m
    assert m["shifts"]["slow"]["rate"] == list(G.SHIFTS["slow"]["rate"]) and m["n_shifted"] == 3
    assert m["generator_version"] == 3 and {"espeak", "lauscher", "rubberband"} <= set(m)
    assert G._params(10, 5, 0, 40, 10, 3, replace(p, snr_db=None)) != m  # a change regenerates the cache


@needs_espeak
def test_silence_rate_and_slow_stretch_in_real_audio():
    """No noise: the leading silence is exact zeros of the drawn length, the word follows;
    a slow-split word (below espeak's 80 wpm floor, stretched) is longer than a fast one."""
    p = replace(G.GenParams(), snr_db=None)
    spk = G.make_speakers(0, 2, 1)[1][0]
    u = G.draw_utterance(spk, p, G.sample_rng(0, 1, 7))
    audio = G.synth_audio(7, spk, G.sample_rng(0, 1, 7), p)
    lead = int(u.lead_s * 48000)
    assert not audio[:lead].any() and np.abs(audio[lead:lead + 480]).max() > 0
    dur = {}
    for name in ("slow", "fast"):
        q = G.shifted_params(p, name)
        dur[name] = np.mean([np.ptp(np.flatnonzero(G.synth_audio(7, spk, G.sample_rng(0, 2, i), q))) for i in range(3)])
    assert dur["slow"] > 2.5 * dur["fast"]


def _harmonic(f0, seconds, rate=G.ESPEAK_RATE):
    t = np.arange(int(seconds * rate)) / rate
    env = np.sin(np.pi * t / t[-1])  # a syllable-like swell, so the stretcher has an onset and offset
    return env * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))


def _f0(x, rate=G.ESPEAK_RATE):
    mid = x[len(x) // 4: 3 * len(x) // 4]
    spec = np.abs(np.fft.rfft(mid * np.hanning(mid.size)))
    return np.fft.rfftfreq(mid.size, 1 / rate)[np.argmax(spec)]


@needs_rubberband
@pytest.mark.parametrize("tempo", [0.6, 0.8, 1.4])
def test_change_tempo_stretches_time_and_keeps_pitch(tempo):
    """1 / tempo times longer, the same fundamental (resampling would lower it by tempo), deterministic."""
    x = _harmonic(150.0, 0.5)
    y = G.change_tempo(x, tempo)
    assert abs(y.size - x.size / tempo) <= 0.01 * x.size / tempo
    assert abs(_f0(y) - 150.0) < 4.0 and abs(_f0(x) - 150.0) < 4.0
    assert np.array_equal(y, G.change_tempo(x, tempo))
    assert np.abs(y).max() > 0.3 * np.abs(x).max()  # not a silent or collapsed output


def test_change_tempo_errors_name_the_tempo_and_the_missing_package(tmp_path, monkeypatch):
    x = _harmonic(150.0, 0.1)
    for bad in (0.0, -0.5, 0.2, 5.0):
        with pytest.raises(ValueError, match="tempo"):
            G.change_tempo(x, bad)
    monkeypatch.setenv("PATH", str(tmp_path))  # no rubberband on the path
    with pytest.raises(RuntimeError, match="apt-get install rubberband-cli"):
        G.change_tempo(x, 0.7)


def test_generate_without_rubberband_stops_before_any_work_naming_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="apt-get install rubberband-cli"):
        G.generate(tmp_path / "set", 2, 1, workers=1, progress=False)
    assert not (tmp_path / "set").exists()
    # a set that never goes below espeak's floor does not need it
    fast_only = replace(G.GenParams().plain_training(), speaker_rate=(120.0, 150.0))
    with pytest.raises(RuntimeError, match="espeak-ng"):  # gets past the check, to the first word
        G.generate(tmp_path / "set", 1, 0, workers=1, progress=False, params=fast_only)
    # ... unless its training words' tempo is changed, which is Rubber Band's work too
    with pytest.raises(RuntimeError, match="train_tempo.*apt-get install rubberband-cli"):
        G.generate(tmp_path / "set", 1, 0, workers=1, progress=False,
                   params=replace(fast_only, train_tempo=(0.7, 1.4), train_tempo_share=0.5))


@needs_espeak
@needs_rubberband
def test_slow_words_last_80_over_their_rate_times_the_80_wpm_word():
    """A word below espeak's floor is the 80 wpm word made 80 / rate times longer (then resampled
    to 48 kHz with the tract factor); the stretch changes no draw, so the rate is the drawn one."""
    p = replace(G.GenParams(), snr_db=None)
    q = G.shifted_params(p, "slow")
    spk = G.make_speakers(0, 2, 1)[1][0]
    for i in range(2):
        u = G.draw_utterance(spk, q, G.sample_rng(0, 2, i))
        label = i % len(G.WORDS)
        n80 = G.trim_silence(G.espeak(G.WORDS[label], spk.voice(label), G.ESPEAK_MIN_RATE, u.pitch,
                                      u.pitch_range)).size
        audio = G.synth_audio(label, spk, G.sample_rng(0, 2, i), q)
        nz = np.flatnonzero(audio)
        expect = n80 * G.ESPEAK_MIN_RATE / u.rate * 48000 * u.tract / G.ESPEAK_RATE
        assert abs((nz[-1] - nz[0] + 1) - expect) < 0.03 * expect


@needs_espeak
def test_generate_writes_shifted_splits_with_test_speakers(tmp_path):
    tr, te = G.generate(tmp_path, 2, 1, seed=0, workers=1, progress=False, n_shifted=1)
    man = json.loads((tmp_path / "manifest.json").read_text())
    test_ids = {s["sid"] for s in man["speakers"]["test"]}
    for name in G.SHIFTS:
        f = G.shifted_path(tmp_path, name)
        assert man["files"][f"test_{name}"] == f.name
        e = read_shd(f)
        assert len(e) == 1 and set(e.speakers.tolist()) <= test_ids and e.labels.tolist() == [0]


def test_default_splits_hold_every_test_speaker_equally():
    """The shifted splits are compared with the test split: both must hold the same speakers in the same
    shares (speaker difficulty varies widely), which the default sizes do and 120 words did not."""
    assert G.speaker_balance_note(G.DEFAULT_TEST, G.DEFAULT_TEST_SPEAKERS) is None
    assert G.speaker_balance_note(G.DEFAULT_SHIFTED, G.DEFAULT_TEST_SPEAKERS) is None
    note = G.speaker_balance_note(120, 10)
    assert note is not None and "200" in note
    assert G.speaker_balance_note(0, 10) is None  # no split, nothing to compare
    # word i is said by speaker (i // 20) % n: every speaker says every word once in 200 words
    pairs = {(i % len(G.WORDS), (i // len(G.WORDS)) % 10) for i in range(G.DEFAULT_SHIFTED)}
    assert len(pairs) == len(G.WORDS) * 10


def test_unbalanced_split_sizes_warn_naming_the_field(tmp_path, monkeypatch):
    monkeypatch.setattr(G, "_generate_into", lambda *a, **k: None)  # the check comes before any synthesis
    with pytest.warns(UserWarning, match="n_shifted: 120 words"):
        G.generate(tmp_path, 0, 200, seed=0, workers=1, progress=False, n_shifted=120, n_test_speakers=10)


def test_train_tempo_factor_only_for_a_share_of_the_training_words():
    p = replace(G.GenParams(), train_tempo=(0.7, 1.4), train_tempo_share=0.5, train_tempo_slow_share=None)
    f = np.array([G.train_tempo_factor(0, 0, i, p) for i in range(2000)])
    changed = f != 1.0
    assert abs(changed.mean() - 0.5) < 0.04  # se 0.011
    assert f[changed].min() >= 0.7 and f[changed].max() <= 1.4
    u = (np.log(f[changed]) - np.log(0.7)) / np.log(2.0)  # log-uniform: uniform on [0, 1]
    assert abs(u.mean() - 0.5) < 0.03 and abs(u.std() - 12 ** -0.5) < 0.03
    assert np.array_equal(f, [G.train_tempo_factor(0, 0, i, p) for i in range(2000)])  # seeded
    assert not np.array_equal(f, [G.train_tempo_factor(1, 0, i, p) for i in range(2000)])
    # never a test or shifted word, never when off
    assert all(G.train_tempo_factor(0, s, i, p) == 1.0 for s in (1, 2, 3, 4) for i in range(50))
    assert all(G.train_tempo_factor(0, 0, i, G.GenParams().plain_training()) == 1.0 for i in range(50))
    assert all(G.train_tempo_factor(0, 0, i, replace(p, train_tempo_share=0.0)) == 1.0 for i in range(50))
    for kw, field in (({"train_tempo": (1.4, 0.7)}, "train_tempo"), ({"train_tempo": (0.0, 1.4)}, "train_tempo"),
                      ({"train_tempo": (0.7, 5.0)}, "train_tempo"), ({"train_tempo_share": 1.5}, "train_tempo_share")):
        with pytest.raises(ValueError, match=field):
            replace(G.GenParams(), **kw).validate()


def test_train_tempo_slow_share_changes_slowed_and_sped_up_words_with_their_own_shares():
    """A changed word's factor is the one it has when every word is changed (share 1); which words are
    changed follows the single-share rule, with the slow share for factors below 1."""
    every = replace(G.GenParams(), train_tempo=(0.7, 1.4), train_tempo_share=1.0, train_tempo_slow_share=None)
    f1 = np.array([G.train_tempo_factor(0, 0, i, every) for i in range(2000)])
    slow = f1 < 1
    for s_slow, s_fast in ((1.0, 0.0), (0.75, 0.5), (0.2, 0.9), (0.0, 0.5)):
        p = replace(every, train_tempo_share=s_fast, train_tempo_slow_share=s_slow).validate()
        f = np.array([G.train_tempo_factor(0, 0, i, p) for i in range(2000)])
        as_slow = [G.train_tempo_factor(0, 0, i, replace(every, train_tempo_share=s_slow)) for i in range(2000)]
        as_fast = [G.train_tempo_factor(0, 0, i, replace(every, train_tempo_share=s_fast)) for i in range(2000)]
        assert np.array_equal(f, np.where(slow, as_slow, as_fast))
        changed = f != 1.0
        assert np.array_equal(f[changed], f1[changed])
        assert abs(changed[slow].mean() - s_slow) < 0.05 and abs(changed[~slow].mean() - s_fast) < 0.05  # se <= 0.016
    # None: train_tempo_share for both directions
    half = replace(every, train_tempo_share=0.5)
    assert half.tempo_shares() == (0.5, 0.5)
    assert [G.train_tempo_factor(0, 0, i, half) for i in range(200)] == \
           [G.train_tempo_factor(0, 0, i, replace(half, train_tempo_slow_share=0.5)) for i in range(200)]
    # only slowing: the heard range widens below and not above; never a test word
    only_slow = replace(every, train_tempo_share=0.0, train_tempo_slow_share=1.0)
    lo, hi = only_slow.rate_range()
    assert only_slow.heard_train_range() == (lo * 0.7, hi)
    assert replace(only_slow, train_tempo_slow_share=0.0).heard_train_range() == (lo, hi)
    assert all(G.train_tempo_factor(0, s, i, only_slow) == 1.0 for s in (1, 2, 3, 4) for i in range(50))
    assert G.GenParams().plain_training().tempo_shares() == (0.0, 0.0)
    for bad in (1.5, -0.1, "most"):
        with pytest.raises(ValueError, match="train_tempo_slow_share"):
            replace(G.GenParams(), train_tempo_slow_share=bad).validate()
    # off leaves the manifest as before (a set cached before the field reads as off); on round-trips
    off = replace(G.GenParams(), train_tempo_slow_share=None)
    assert "train_tempo_slow_share" not in off.as_dict() and G.GenParams.from_dict(off.as_dict()) == off
    q = G.GenParams()
    assert q.as_dict()["train_tempo_slow_share"] == 0.75 and G.GenParams.from_dict(q.as_dict()) == q


def test_train_tempo_slow_share_flag_reaches_the_generator_and_a_bad_share_names_the_field(tmp_path, monkeypatch,
                                                                                           capsys):
    assert G.main(["--out", str(tmp_path / "bad"), "--shifted", "0", "--train-tempo-slow-share", "1.2"]) == 2
    assert "train_tempo_slow_share" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    seen = {}
    monkeypatch.setattr(G, "generate", lambda *a, **k: seen.update(k) or (tmp_path / "a", tmp_path / "b"))
    assert G.main(["--out", str(tmp_path / "cli"), "--train-tempo-slow-share", "0.3"]) == 0
    assert (seen["params"].train_tempo_share, seen["params"].train_tempo_slow_share) == (0.5, 0.3)
    assert G.main(["--out", str(tmp_path / "cli")]) == 0
    assert seen["params"].train_tempo_slow_share == 0.75  # the default since round 18
    assert G.main(["--out", str(tmp_path / "cli"), "--plain-training"]) == 0
    assert seen["params"].tempo_shares() == (0.0, 0.0)


def _manifest_only_set(tmp_path, params):
    """A set folder holding only the manifest of 40 training / 20 test words (4 / 2 speakers, seed 0):
    enough for word_rates, which recomputes every draw from it."""
    root = tmp_path / "set"
    root.mkdir()
    tr, te = G.make_speakers(0, 4, 2, params)
    man = {"params": G._params(40, 20, 0, 4, 2, 20, params),
           "speakers": {"train": [asdict(s) for s in tr], "test": [asdict(s) for s in te]}}
    (root / "manifest.json").write_text(json.dumps(man))
    return root, tr, te


def test_train_tempo_changes_no_other_draw_and_word_rates_report_the_rate_heard(tmp_path):
    """The tempo has its own generator: the draws of every word, changed or not, are those of the set
    without it; word_rates gives a changed training word its drawn rate times the factor."""
    off = G.GenParams().plain_training()
    on = replace(off, train_tempo=(0.7, 1.4), train_tempo_share=0.5)
    spk = G.make_speakers(0, 2, 1)[0][0]
    for i in range(20):
        assert G.draw_utterance(spk, on, G.sample_rng(0, 0, i)) == G.draw_utterance(spk, off, G.sample_rng(0, 0, i))
    root, tr, te = _manifest_only_set(tmp_path, on)
    heard = G.word_rates(root, "train")
    drawn = np.array([G.draw_utterance(G.speaker_of(i, tr), on, G.sample_rng(0, 0, i)).rate for i in range(40)])
    factor = np.array([G.train_tempo_factor(0, 0, i, on) for i in range(40)])
    assert np.allclose(heard, drawn * factor) and (factor != 1).any() and (factor == 1).any()
    test_drawn = [G.draw_utterance(G.speaker_of(i, te), on, G.sample_rng(0, 1, i)).rate for i in range(20)]
    assert np.allclose(G.word_rates(root, "test"), test_drawn)


@needs_espeak
@needs_rubberband
def test_a_tempo_changed_training_word_is_the_word_played_faster():
    """Its audio is the unchanged word's, 1 / factor times as long (then resampled to 48 kHz alike)."""
    p = replace(G.GenParams(), snr_db=None, train_tempo=(1.3, 1.4), train_tempo_share=1.0)
    spk = G.make_speakers(0, 2, 1)[0][0]
    i = 3
    f = G.train_tempo_factor(0, 0, i, p)
    plain = G.synth_audio(i, spk, G.sample_rng(0, 0, i), replace(p, train_tempo=None))
    fast = G.synth_audio(i, spk, G.sample_rng(0, 0, i), p, f)
    span = lambda a: np.ptp(np.flatnonzero(np.abs(a) > 1e-3 * np.abs(a).max()))
    assert 1.3 <= f <= 1.4 and abs(span(fast) - span(plain) / f) < 0.05 * span(plain) / f


def test_train_vowel_add_draws_whole_units_for_training_words_only():
    p = replace(G.GenParams(), train_vowel_length=(-100, 100))
    a = np.array([G.train_vowel_add(0, 0, i, p) for i in range(3000)])
    assert a.dtype.kind == "i" and a.min() == -100 and a.max() == 100  # both ends reachable: integers(lo, hi + 1)
    assert abs(a.mean()) < 6 and abs(a.std() - 201 / 12 ** 0.5) < 4  # uniform: mean 0 (se 1.1), sd 58
    assert np.array_equal(a, [G.train_vowel_add(0, 0, i, p) for i in range(3000)])  # seeded
    assert not np.array_equal(a, [G.train_vowel_add(1, 0, i, p) for i in range(3000)])
    assert all(G.train_vowel_add(0, s, i, p) == 0 for s in (1, 2, 3, 4) for i in range(50))
    assert all(G.train_vowel_add(0, 0, i, G.GenParams().plain_training()) == 0 for i in range(50))
    # its own generator: the per-word draws and the tempo draws are those of the set without it
    spk = G.make_speakers(0, 2, 1)[0][0]
    both = replace(p, train_tempo=(0.7, 1.4), train_tempo_share=0.5)
    for i in range(20):
        assert G.draw_utterance(spk, p, G.sample_rng(0, 0, i)) == G.draw_utterance(spk, G.GenParams(), G.sample_rng(0, 0, i))
        assert G.train_tempo_factor(0, 0, i, both) == G.train_tempo_factor(0, 0, i, replace(both, train_vowel_length=None))
    for bad in ((50, -50), (-101, 0), (0, 101), (-10.5, 10), ("a", "b")):
        with pytest.raises(ValueError, match="train_vowel_length"):
            replace(G.GenParams(), train_vowel_length=bad).validate()
    assert replace(G.GenParams(), train_vowel_length=(-100.0, 100.0)).validate()  # whole floats (JSON) are fine


def test_train_rate_of_draws_rates_inside_the_training_range_for_a_share_of_training_words():
    p = replace(G.GenParams(), train_rate=(140.0, 216.0), train_rate_share=0.4)
    r = [G.train_rate_of(0, 0, i, p) for i in range(3000)]
    v = np.array([x for x in r if x is not None])
    assert abs(len(v) / 3000 - 0.4) < 0.04  # se 0.009
    assert v.min() >= 140 and v.max() <= 216 and abs(v.mean() - 178) < 2.5  # uniform: sd 22, se 0.7
    assert r == [G.train_rate_of(0, 0, i, p) for i in range(3000)]  # seeded
    assert r != [G.train_rate_of(1, 0, i, p) for i in range(3000)]
    assert all(G.train_rate_of(0, s, i, p) is None for s in (1, 2, 3, 4) for i in range(50))  # training only
    assert all(G.train_rate_of(0, 0, i, replace(p, train_rate=None, train_rate_share=0.0)) is None for i in range(50))
    assert all(G.train_rate_of(0, 0, i, replace(p, train_rate_share=0.0)) is None for i in range(50))
    assert all(G.train_rate_of(0, 0, i, p.plain_training()) is None for i in range(50))
    # its own generator: every other draw is the set's without it
    spk, off = G.make_speakers(0, 2, 1)[0][0], replace(p, train_rate=None, train_rate_share=0.0)
    for i in range(20):
        assert G.draw_utterance(spk, p, G.sample_rng(0, 0, i)) == G.draw_utterance(spk, off, G.sample_rng(0, 0, i))
        assert G.train_tempo_factor(0, 0, i, p) == G.train_tempo_factor(0, 0, i, off)
        assert G.train_vowel_add(0, 0, i, p) == G.train_vowel_add(0, 0, i, off)
    # the range may not widen the training range (72..216 words/min): the shifted splits stay outside it
    assert p.rate_range() == G.GenParams().rate_range()
    for kw, field in (({"train_rate": (140.0, 230.0)}, "train_rate"), ({"train_rate": (60.0, 100.0)}, "train_rate"),
                      ({"train_rate": (200.0, 150.0)}, "train_rate"), ({"train_rate_share": 1.5}, "train_rate_share"),
                      ({"train_rate_share": "half"}, "train_rate_share"), ({"train_rate": None}, "train_rate"),
                      ({"speaker_rate": (90.0, 170.0)}, "train_rate")):  # up to 204 wpm: 216 lies outside
        with pytest.raises(ValueError, match=field):
            replace(p, **kw).validate()


def test_train_rate_over_the_whole_training_range_fills_both_ends():
    p = replace(G.GenParams(), train_rate=G.GenParams().rate_range(), train_rate_share=1.0).validate()  # round 13
    r = np.array([G.train_rate_of(0, 0, i, p) for i in range(3000)])
    assert r.min() >= 72 and r.max() <= 216 and abs(r.mean() - 144) < 3  # uniform: sd 41.6, se 0.8
    assert ((r > 170).mean() > 0.28) and ((r < 90).mean() > 0.10)  # the speakers give 15 % and 6 % (docstring)


def test_train_rate_off_leaves_the_manifest_as_before_and_on_round_trips():
    # the generator fields of round 11's manifests: a set cached before train_rate reads as off
    round11 = [
        "speaker_rate", "rate_jitter", "pitch_female", "pitch_male", "pitch_jitter", "speaker_range", "range_jitter",
        "tract", "tract_jitter", "loudness_db", "lead_s", "trail_s", "snr_db", "rate", "train_tempo",
        "train_tempo_share", "train_vowel_length"]
    off = replace(G.GenParams(), train_rate=None, train_rate_share=0.0, train_snr_db=None, train_tempo_slow_share=None)
    assert list(off.as_dict()) == round11
    assert list(G.GenParams().as_dict()) == [*round11[:-1], "train_tempo_slow_share", round11[-1], "train_rate",
                                             "train_rate_share", "train_snr_db"]
    assert G.GenParams.from_dict(G.GenParams().as_dict()) == G.GenParams()
    # absent means off, not the class default (now on): a set cached before these fields still reads as off
    old = G.GenParams.from_dict({k: v for k, v in G.GenParams().as_dict().items() if k in round11})
    assert old == off and (old.train_rate, old.train_rate_share, old.train_snr_db) == (None, 0.0, None)
    p = replace(G.GenParams(), train_rate=(140.0, 216.0), train_rate_share=0.4)
    assert p.as_dict()["train_rate"] == [140.0, 216.0] and G.GenParams.from_dict(p.as_dict()) == p
    assert G.GenParams.from_dict(off.as_dict()) == off


def test_word_rates_report_a_training_word_s_own_rate(tmp_path):
    p = replace(G.GenParams().plain_training(), train_rate=(200.0, 216.0), train_rate_share=0.5)
    root, tr, te = _manifest_only_set(tmp_path, p)
    own = [G.train_rate_of(0, 0, i, p) for i in range(40)]
    drawn = [G.draw_utterance(G.speaker_of(i, tr), p, G.sample_rng(0, 0, i)).rate for i in range(40)]
    assert np.allclose(G.word_rates(root, "train"), [d if o is None else o for o, d in zip(own, drawn)])
    assert any(o is None for o in own) and any(o is not None for o in own)


def test_train_rate_flags_reach_the_generator_and_a_bad_range_names_the_field(tmp_path, monkeypatch, capsys):
    assert G.main(["--out", str(tmp_path / "bad"), "--shifted", "0", "--train-rate", "140", "230"]) == 2
    assert "train_rate" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    seen = {}
    monkeypatch.setattr(G, "generate", lambda *a, **k: seen.update(k) or (tmp_path / "a", tmp_path / "b"))
    assert G.main(["--out", str(tmp_path / "cli"), "--train-rate", "150", "216", "--train-rate-share", "0.3"]) == 0
    assert (seen["params"].train_rate, seen["params"].train_rate_share) == ((150.0, 216.0), 0.3)


def test_train_snr_db_moves_only_the_training_words_noise_floor():
    p = G.GenParams().validate()
    assert p.train_snr_db == (10.0, 40.0)  # the default since round 14
    spk = G.make_speakers(0, 2, 1)[0][0]
    on = [G.draw_utterance(spk, p.split_params(0), G.sample_rng(0, 0, i)) for i in range(400)]
    off = [G.draw_utterance(spk, G.GenParams(), G.sample_rng(0, 0, i)) for i in range(400)]
    snr = np.array([u.snr_db for u in on])
    assert snr.min() >= 10 and snr.max() <= 40 and (snr < 20).mean() > 0.25  # uniform: a third below 20
    # the same draws in the same order, the floor mapped from 20..40 onto 10..40
    assert all(replace(a, snr_db=None) == replace(b, snr_db=None) for a, b in zip(on, off))
    assert np.allclose(snr, 10 + (np.array([u.snr_db for u in off]) - 20) * 30 / 20)
    # test and shifted words keep theirs; the noisy split stays outside the training range
    assert p.split_params(1) == p and p.split_params(1).snr_db == (20.0, 40.0)
    assert G.shifted_params(p, "noisy").split_params(G.SHIFT_SPLIT_ID["noisy"]).snr_db == G.SHIFTS["noisy"]["snr_db"]
    off = replace(p, train_snr_db=None)
    assert off.split_params(0) == off and p.plain_training().train_snr_db is None
    for bad in ((5.0, 40.0), (40.0, 20.0), ("a", "b"), (10.0,)):
        with pytest.raises(ValueError, match="train_snr_db"):
            replace(G.GenParams(), train_snr_db=bad).validate()
    # off: absent from the manifest, as before it existed; on: recorded and read back
    assert "train_snr_db" not in off.as_dict() and G.GenParams.from_dict(p.as_dict()) == p


def test_synth_sample_draws_a_training_word_with_the_training_snr_range(monkeypatch):
    seen = []
    monkeypatch.setattr(G, "synth_audio", lambda label, spk, rng, prm, *a: seen.append(prm.snr_db) or np.zeros(8))
    monkeypatch.setattr(G.cochlea, "audio_to_spikes", lambda *a, **k: (np.zeros(0), np.zeros(0, np.int64)))
    p = replace(G.GenParams(), train_snr_db=(12.0, 30.0))
    tr, te = G.make_speakers(0, 2, 1)
    G.synth_sample(0, 0, 3, tr, p)
    G.synth_sample(0, 1, 3, te, p)
    G.synth_sample(0, 4, 3, te, G.shifted_params(p, "noisy"))
    assert seen == [(12.0, 30.0), (20.0, 40.0), (0.0, 10.0)]


def test_train_snr_db_flag_reaches_the_generator_and_a_bad_range_names_the_field(tmp_path, monkeypatch, capsys):
    assert G.main(["--out", str(tmp_path / "bad"), "--shifted", "0", "--train-snr-db", "5", "40"]) == 2
    assert "train_snr_db" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert G.main(["--out", str(tmp_path / "bad"), "--no-noise", "--train-snr-db", "10", "40"]) == 2
    assert "--no-noise" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    seen = {}
    monkeypatch.setattr(G, "generate", lambda *a, **k: seen.update(k) or (tmp_path / "a", tmp_path / "b"))
    assert G.main(["--out", str(tmp_path / "cli"), "--train-snr-db", "15", "40"]) == 0
    assert (seen["params"].snr_db, seen["params"].train_snr_db) == ((20.0, 40.0), (15.0, 40.0))
    assert G.main(["--out", str(tmp_path / "cli")]) == 0
    assert (seen["params"].snr_db, seen["params"].train_snr_db) == ((20.0, 40.0), (10.0, 40.0))  # the default
    assert G.main(["--out", str(tmp_path / "cli"), "--snr-db", "25", "35"]) == 0  # train and test alike
    assert (seen["params"].snr_db, seen["params"].split_params(0).snr_db) == ((25.0, 35.0), (25.0, 35.0))
    assert G.main(["--out", str(tmp_path / "cli"), "--snr-db", "25", "35", "--train-snr-db", "12", "30"]) == 0
    assert (seen["params"].snr_db, seen["params"].train_snr_db) == ((25.0, 35.0), (12.0, 30.0))
    assert G.main(["--out", str(tmp_path / "cli"), "--no-noise"]) == 0
    assert (seen["params"].snr_db, seen["params"].train_snr_db) == (None, None)


@needs_espeak
def test_a_training_word_given_a_faster_rate_is_spoken_faster_by_espeak(monkeypatch):
    p = replace(G.GenParams().plain_training(), snr_db=None)
    spk = G.make_speakers(0, 2, 1)[0][0]
    seen = []
    real = G.espeak
    monkeypatch.setattr(G, "espeak", lambda text, voice, rate, *a: seen.append(rate) or real(text, voice, rate, *a))
    i = 7
    drawn = G.draw_utterance(spk, p, G.sample_rng(0, 0, i)).rate
    span = lambda a: np.ptp(np.flatnonzero(np.abs(a) > 1e-3 * np.abs(a).max()))
    plain = G.synth_audio(i, spk, G.sample_rng(0, 0, i), p)
    fast = G.synth_audio(i, spk, G.sample_rng(0, 0, i), p, rate=216.0)
    assert seen == [round(drawn), 216] and drawn < 190
    assert span(fast) < 0.95 * span(plain)


def test_with_stress_add_adds_to_a_variant_s_own_values_or_appends_them():
    assert G.with_stress_add("name a\nstressAdd 10 10 0 0 0 0 -30 -30 // c\nx 1", -40).splitlines() == [
        "name a", "stressAdd -30 -30 -40 -40 -40 -40 -70 -70", "x 1"]
    assert G.with_stress_add("name a\nstressAdd 5 5", 20).splitlines()[1] == "stressAdd 25 25 20 20 20 20 20 20"
    assert G.with_stress_add("name b\n//stressAdd 1 1\n", 7).splitlines() == [
        "name b", "//stressAdd 1 1", "stressAdd 7 7 7 7 7 7 7 7"]  # a commented line is not the voice's


@needs_espeak
def test_vowel_variant_shortens_vowels_more_than_a_fricative_word_and_leaves_espeak_data_alone():
    """espeak-ng's own vowel lengths: a vowel-heavy word ("two") shrinks far more than a fricative
    one ("six"), and lengthens with a positive add; 0 is the plain voice, bit for bit."""
    def dur(word, add):
        return G.trim_silence(G.espeak(word, "en-us+m3", 150, 50, 100.0, add)).size
    two = {a: dur("two", a) for a in (-100, 0, 100)}
    six = {a: dur("six", a) for a in (-100, 0)}
    assert two[-100] < 0.8 * two[0] < two[0] < two[100] / 1.1
    assert six[-100] > 0.85 * six[0] and two[-100] / two[0] < six[-100] / six[0] - 0.1
    assert np.array_equal(G.espeak("two", "en-us+m3", 150, 50), G.espeak("two", "en-us+m3", 150, 50, 100.0, 0))
    root = G.vowel_variant("de+m3", -20)
    assert G.vowel_variant("en-gb+m3", -20) == root != G.vowel_variant("de+m3", -30)  # one folder per add
    assert "stressAdd -10 -10 -20 -20" in (root / "espeak-ng-data" / "voices" / "!v" / "m3").read_text()
    assert G._espeak_data_dir() not in (root, root / "espeak-ng-data")  # a private folder of links
    for v in sorted(G.VARIANTS):  # every variant in one folder: espeak-ng still finds them (at most 349 voices)
        G.vowel_variant(f"de+{v}", -20)
    assert G.espeak("zwei", f"de+{sorted(G.VARIANTS)[-1]}", 150, 50, 100.0, -20).size
    with pytest.raises(ValueError, match="no variant"):
        G.vowel_variant("en-us", -20)
    with pytest.raises(RuntimeError, match="no voice variant 'nosuch'"):
        G.vowel_variant("en-us+nosuch", -20)


@needs_espeak
@pytest.mark.parametrize("variant", sorted(G.VARIANTS))
def test_every_variant_speaks_every_word_at_the_vowel_bounds(variant):
    """The bounds are safe for every voice the generator uses (at -160 espeak-ng's lengths wrap)."""
    for label in (1, 2, 7, 13, 18):  # "one", "two", "seven", "drei", "acht": each stress pattern of the set
        voice = f"{'en-gb' if label < 10 else 'de'}+{variant}"
        d = {a: G.trim_silence(G.espeak(G.WORDS[label], voice, 150, 50, 100.0, a)).size
             for a in (G.VOWEL_ADD_RANGE[0], 0, G.VOWEL_ADD_RANGE[1])}
        assert 0.4 * d[0] < d[G.VOWEL_ADD_RANGE[0]] <= 1.03 * d[0] <= 1.03 * d[G.VOWEL_ADD_RANGE[1]] < 2 * d[0], (label, d)


@needs_espeak
def test_train_vowel_length_changes_the_training_words_only(tmp_path, monkeypatch, capsys):
    """Through the whole generator: the test file is the plain set's, bit for bit; the training words
    (every one draws an add from (-100, -60), so none is the voice's own) are shorter; the manifest
    records the range.  The flag reaches the generator as whole numbers, negative ones included."""
    kw = dict(seed=0, workers=1, progress=False)
    plain = G.generate(tmp_path / "plain", 4, 2, params=G.GenParams().plain_training(), **kw)
    p = replace(G.GenParams().plain_training(), train_vowel_length=(-100, -60))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    short = G.generate(tmp_path / "short", 4, 2, params=p, **{**kw, "workers": 2})
    assert not list(tmp.iterdir())  # the derived voices' folder is gone, workers' parts included
    assert _contents(short[1]) == _contents(plain[1])
    span = lambda path: [float(np.ptp(t)) for t in read_shd(path).times]
    assert all(s < q for s, q in zip(span(short[0]), span(plain[0])))
    assert json.loads((tmp_path / "short" / "manifest.json").read_text())["params"]["generator"][
        "train_vowel_length"] == [-100, -60]
    assert G.main(["--out", str(tmp_path / "cli"), "--shifted", "0", "--train-vowel-length", "-300", "60"]) == 2
    assert "train_vowel_length" in capsys.readouterr().err and not (tmp_path / "cli").exists()
    seen = {}
    monkeypatch.setattr(G, "generate", lambda *a, **k: seen.update(k) or (tmp_path / "a", tmp_path / "b"))
    assert G.main(["--out", str(tmp_path / "cli"), "--shifted", "0", "--train-vowel-length", "-100", "60"]) == 0
    assert seen["params"].train_vowel_length == (-100, 60)


def test_train_vowel_tilt_lengthens_slow_words_vowels_and_shortens_fast_ones():
    p = replace(G.GenParams(), train_vowel_length=(-100, 50), train_vowel_tilt=50.0).validate()
    draws = {r: np.array([G.train_vowel_add(0, 0, i, p, r) for i in range(3000)]) for r in (72.0, 144.0, 216.0)}
    # the range moves by 50 units at either end of 72..216 wpm, its ends kept in VOWEL_ADD_RANGE
    assert (draws[72.0].min(), draws[72.0].max()) == (-50, 100) and abs(draws[72.0].mean() - 25) < 3
    assert (draws[144.0].min(), draws[144.0].max()) == (-100, 50) and abs(draws[144.0].mean() + 25) < 3
    assert (draws[216.0].min(), draws[216.0].max()) == (-100, 0) and abs(draws[216.0].mean() + 50) < 3
    off = replace(p, train_vowel_tilt=0.0)  # off: the rate plays no part, as before the field existed
    assert all(G.train_vowel_add(0, 0, i, off, r) == G.train_vowel_add(0, 0, i, off) for i in range(50) for r in (72, 216))
    assert all(G.train_vowel_add(0, s, i, p, 72.0) == 0 for s in (1, 2, 3, 4) for i in range(20))  # training only
    with pytest.raises(ValueError, match="rate"):
        G.train_vowel_add(0, 0, 1, p)
    for bad in (-10.0, 150.0, "a"):
        with pytest.raises(ValueError, match="train_vowel_tilt"):
            replace(p, train_vowel_tilt=bad).validate()
    assert "train_vowel_tilt" not in G.GenParams().as_dict() and G.GenParams.from_dict(p.as_dict()) == p
    assert p.plain_training().train_vowel_tilt == 0.0


def test_synth_sample_tilts_a_training_word_s_vowels_by_its_own_rate(monkeypatch):
    seen = []
    monkeypatch.setattr(G, "synth_audio", lambda label, spk, rng, prm, tempo, vowel, rate: seen.append((vowel, rate))
                        or np.zeros(8))
    monkeypatch.setattr(G.cochlea, "audio_to_spikes", lambda *a, **k: (np.zeros(0), np.zeros(0, np.int64)))
    tr, te = G.make_speakers(0, 2, 1)
    p = replace(G.GenParams(), train_vowel_tilt=50.0)
    q = replace(p, train_rate=None, train_rate_share=0.0)  # every word at its speaker's drawn rate
    for i in range(6):
        G.synth_sample(0, 0, i, tr, p)
        G.synth_sample(0, 0, i, tr, q)
        G.synth_sample(0, 1, i, te, p)
    for i in range(6):
        (v_p, r_p), (v_q, r_q), (v_t, r_t) = seen[3 * i: 3 * i + 3]
        assert r_p == G.train_rate_of(0, 0, i, p) and v_p == G.train_vowel_add(0, 0, i, p, r_p)
        drawn = G.draw_utterance(G.speaker_of(i, tr), q.split_params(0), G.sample_rng(0, 0, i)).rate
        assert r_q is None and v_q == G.train_vowel_add(0, 0, i, q, drawn)
        assert (v_t, r_t) == (0, None)


def test_train_vowel_tilt_flag_reaches_the_generator_and_a_bad_value_names_the_field(tmp_path, monkeypatch, capsys):
    assert G.main(["--out", str(tmp_path / "bad"), "--shifted", "0", "--train-vowel-tilt", "-5"]) == 2
    assert "train_vowel_tilt" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    seen = {}
    monkeypatch.setattr(G, "generate", lambda *a, **k: seen.update(k) or (tmp_path / "a", tmp_path / "b"))
    assert G.main(["--out", str(tmp_path / "cli"), "--train-vowel-tilt", "50"]) == 0
    assert seen["params"].train_vowel_tilt == 50.0
