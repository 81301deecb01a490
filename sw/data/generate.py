"""Offline SHD-format data set: spoken digits from espeak-ng through the Lauscher cochlea.

Labels follow SHD: 0-9 English "zero".."nine", 10-19 German "null".."neun".

A *speaker* is a fixed (English voice, espeak variant, base pitch, base speed,
vocal-tract factor) tuple; German words use the ``de`` voice with the same
variant.  Train and test speakers are disjoint (different variants).  Each
utterance jitters speed, pitch and tract factor around its speaker's values,
starts after a short random silence, gets mild white noise, is resampled from
22.05 kHz to 48 kHz with the tract factor (a +-7 % frequency/duration
perturbation), and goes through :func:`sw.data.cochlea.audio_to_spikes`.

Sample ``i`` of a split depends only on ``(seed, split, i)`` and the speaker
list (itself a function of ``seed``), so the result is identical for any number
of worker processes.  Outputs ``<out>/shd_train.h5``, ``<out>/shd_test.h5``
(exact SHD layout) and ``<out>/manifest.json``; a re-run with the same
parameters reuses them.

    python -m sw.data.generate --train 4000 --test 1000 --out data/offline_shd --seed 0 --workers 2
"""
from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import subprocess
import sys
from dataclasses import asdict, dataclass
from fractions import Fraction
from importlib.metadata import version
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.signal
import soundfile
from tqdm import tqdm

from sw.data import cochlea

GENERATOR_VERSION = 1
# About 0.3 s of wall time per word on 2 busy cores (bench/cochlea.py); this keeps
# the default set near 8 minutes.
DEFAULT_TRAIN = 1200
DEFAULT_TEST = 400
DEFAULT_TRAIN_SPEAKERS = 24
DEFAULT_TEST_SPEAKERS = 6

ENGLISH = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
GERMAN = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]
WORDS = ENGLISH + GERMAN  # spoken text; index = label
KEYS = ENGLISH + [w.replace("ü", "ue") for w in GERMAN]  # ASCII names stored in extra/keys
EN_VOICES = ("en-us", "en-gb")
ESPEAK_RATE = 22050

# espeak-ng variants that sound like a plain human voice (no whisper, robot or
# croak), with their gender from `espeak-ng --voices=variant`.
VARIANTS = {
    "m1": "male", "m2": "male", "m3": "male", "m4": "male", "m5": "male", "m6": "male", "m7": "male",
    "m8": "male", "f1": "female", "f2": "female", "f3": "female", "f4": "female", "f5": "female",
    "klatt": "male", "klatt2": "male", "klatt3": "male", "Andy": "male", "Annie": "female",
    "Alicia": "female", "Andrea": "female", "adam": "male", "belinda": "female", "benjamin": "male",
    "caleb": "male", "david": "male", "ed": "male", "edward": "male", "iven": "male", "iven2": "male",
    "john": "male", "linda": "female", "max": "male", "michel": "male", "paul": "male",
    "quincy": "male", "rob": "male", "robert": "male", "steph": "female", "steph2": "female",
    "travis": "male", "victor": "male", "zac": "male", "anika": "female", "aunty": "female",
    "Lee": "male", "Mike": "male", "norbert": "male", "grandma": "female", "grandpa": "male",
}


@dataclass(frozen=True)
class Speaker:
    sid: int
    en_voice: str
    variant: str
    gender: str
    pitch: int  # espeak -p, 0..99
    speed: int  # espeak -s, words per minute
    tract: float  # resampling factor: >1 lowers formants and lengthens

    def voice(self, label: int) -> str:
        return f"{self.en_voice if label < 10 else 'de'}+{self.variant}"

    def identity(self) -> tuple:
        return (self.en_voice, self.variant, self.pitch, self.speed, self.tract)


def make_speakers(seed: int, n_train: int, n_test: int) -> tuple[list[Speaker], list[Speaker]]:
    """Speakers of both splits; ids ``0..n_train-1`` train, then test.  Every
    speaker has its own variant while there are enough variants."""
    if n_train < 1 or n_test < 1:
        raise ValueError(f"speakers: need at least one per split, got train={n_train}, test={n_test}")
    if n_train + n_test > len(VARIANTS):
        raise ValueError(f"speakers: at most {len(VARIANTS)} distinct variants, asked for {n_train + n_test}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5BEA]))
    names = rng.permutation(sorted(VARIANTS))
    out = []
    for sid in range(n_train + n_test):
        v = str(names[sid])
        female = VARIANTS[v] == "female"
        out.append(Speaker(
            sid=sid,
            en_voice=str(rng.choice(EN_VOICES)),
            variant=v,
            gender=VARIANTS[v],
            pitch=int(rng.integers(45, 75) if female else rng.integers(25, 55)),
            speed=int(rng.integers(115, 165)),
            tract=round(float(rng.uniform(0.93, 1.07)), 4),
        ))
    train, test = out[:n_train], out[n_train:]
    assert not {s.identity() for s in train} & {s.identity() for s in test}
    assert not {s.variant for s in train} & {s.variant for s in test}
    return train, test


def espeak(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """22.05 kHz float64 audio of one word.  soundfile, not wave: espeak's
    --stdout header carries a bogus frame count."""
    cmd = ["espeak-ng", "--stdout", "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "-z", word]
    try:
        res = subprocess.run(cmd, capture_output=True, check=True, timeout=60)
    except FileNotFoundError as e:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)") from e
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: {e.stderr.decode(errors='replace')}") from e
    audio, rate = soundfile.read(io.BytesIO(res.stdout), dtype="float64")
    if rate != ESPEAK_RATE or audio.ndim != 1 or audio.size == 0:
        raise RuntimeError(f"espeak-ng voice {voice!r}: unexpected output ({rate} Hz, shape {audio.shape})")
    return audio


def synth_audio(label: int, speaker: Speaker, rng: np.random.Generator) -> np.ndarray:
    """48 kHz audio of one utterance of ``WORDS[label]`` by ``speaker``."""
    speed = int(round(speaker.speed * rng.uniform(0.9, 1.1)))
    pitch = int(np.clip(speaker.pitch + rng.integers(-6, 7), 0, 99))
    tract = speaker.tract * rng.uniform(0.985, 1.015)
    wav = espeak(WORDS[label], speaker.voice(label), speed, pitch)
    ratio = Fraction(cochlea.SAMPLE_RATE * tract / ESPEAK_RATE).limit_denominator(160)
    x = scipy.signal.resample_poly(wav, ratio.numerator, ratio.denominator)
    lead = int(rng.uniform(0.0, 0.08) * cochlea.SAMPLE_RATE)
    n = lead + x.size
    # pad so that the cochlea's half-spectrum length is FFT-friendly (a few ms of silence)
    n_fast = 2 * (scipy.fft.next_fast_len(n // 2 + 1, real=True) - 1)
    audio = np.zeros(max(n_fast, n))
    audio[lead:lead + x.size] = x
    rms = np.sqrt(np.mean(x**2))
    snr_db = rng.uniform(30.0, 45.0)
    audio += rng.normal(0.0, rms * 10 ** (-snr_db / 20), audio.size)
    return audio


def sample_rng(seed: int, split: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(split), int(index)]))


def synth_sample(seed: int, split: int, index: int, speakers: list[Speaker]):
    """``(times float64, units int64, label, speaker id)`` of sample ``index``."""
    rng = sample_rng(seed, split, index)
    label = index % len(WORDS)
    speaker = speakers[(index // len(WORDS)) % len(speakers)]
    audio = synth_audio(label, speaker, rng)
    times, units = cochlea.audio_to_spikes(audio, cochlea.SAMPLE_RATE, seed=int(rng.integers(2**32)))
    return times, units, label, speaker.sid


def _worker_init() -> None:
    import numba

    numba.set_num_threads(1)  # parallelism comes from the processes


def _worker(job):
    seed, split, index, speakers = job
    t, u, label, sid = synth_sample(seed, split, index, speakers)
    return index, t.astype(np.float32), u.astype(np.uint16), label, sid


def _espeak_version() -> str:
    try:
        return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.split("Data at")[0].strip()
    except FileNotFoundError:
        return "missing"


def _params(n_train, n_test, seed, n_train_speakers, n_test_speakers) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "n_train": int(n_train), "n_test": int(n_test), "seed": int(seed),
        "n_train_speakers": int(n_train_speakers), "n_test_speakers": int(n_test_speakers),
        "lauscher": version("lauscher"), "espeak": _espeak_version(),
    }


def generate(out: str | Path, n_train: int, n_test: int, seed: int = 0, workers: int = 2,
             n_train_speakers: int = DEFAULT_TRAIN_SPEAKERS, n_test_speakers: int = DEFAULT_TEST_SPEAKERS,
             force: bool = False, progress: bool = True) -> tuple[Path, Path]:
    """Build (or reuse) ``<out>/shd_train.h5`` and ``<out>/shd_test.h5``."""
    from sw.data.shd import write_shd  # here, not at the top: spawned workers need no torch

    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train/n_test: must be >= 0, got {n_train}/{n_test}")
    if workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers}")
    out = Path(out)
    train_path, test_path = out / "shd_train.h5", out / "shd_test.h5"
    manifest_path = out / "manifest.json"
    params = _params(n_train, n_test, seed, n_train_speakers, n_test_speakers)
    if not force and manifest_path.exists() and train_path.exists() and test_path.exists():
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and old.get("params") == params:
            return train_path, test_path
    manifest_path.unlink(missing_ok=True)  # files below are stale until the new manifest lands

    train_spk, test_spk = make_speakers(seed, n_train_speakers, n_test_speakers)
    all_spk = train_spk + test_spk
    cochlea.transfer_table(progress=progress)  # build the cache once, before the workers need it
    jobs = [(seed, 0, i, train_spk) for i in range(n_train)] + [(seed, 1, i, test_spk) for i in range(n_test)]
    results: dict[tuple[int, int], tuple] = {}
    bar = tqdm(total=len(jobs), desc="offline SHD", unit="word", disable=not progress)
    if workers == 1:
        _worker_init()
        for job in jobs:
            results[(job[1], job[2])] = _worker(job)[1:]
            bar.update()
    else:
        with mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            for job, res in zip(jobs, pool.imap(_worker, jobs, chunksize=2)):
                results[(job[1], res[0])] = res[1:]
                bar.update()
    bar.close()

    meta = {"gender": np.array([s.gender for s in all_spk])}
    for split, path, n in ((0, train_path, n_train), (1, test_path, n_test)):
        rows = [results[(split, i)] for i in range(n)]
        write_shd(path, [r[0] for r in rows], [r[1] for r in rows],
                  np.array([r[2] for r in rows], dtype=np.int64), np.array([r[3] for r in rows], dtype=np.int64),
                  keys=KEYS, meta=meta)
    manifest = {"params": params, "keys": KEYS, "words": WORDS,
                "speakers": {"train": [asdict(s) for s in train_spk], "test": [asdict(s) for s in test_spk]}}
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    tmp.replace(manifest_path)
    return train_path, test_path


def ensure_default_dataset(root: str | Path = "data/offline_shd", n_train: int = DEFAULT_TRAIN,
                           n_test: int = DEFAULT_TEST, seed: int = 0, workers: int = 2) -> tuple[Path, Path]:
    """Paths of the default offline data set, generating it on first use.

    The default name ``data/offline_shd`` resolves under ``sw.paths.data_dir()``
    (``$SPIKELINE_CACHE/data``, the checkout's ``data/`` or the user cache)."""
    from sw.paths import resolve_data_root

    return generate(resolve_data_root(root), n_train, n_test, seed=seed, workers=workers)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m sw.data.generate",
        description="Generate an offline SHD-format data set (espeak-ng spoken digits, English labels 0-9 and "
                    "German labels 10-19, through the Lauscher cochlea model). Re-running with the same "
                    "parameters reuses the files.")
    ap.add_argument("--train", type=int, default=DEFAULT_TRAIN, help=f"training words (default {DEFAULT_TRAIN})")
    ap.add_argument("--test", type=int, default=DEFAULT_TEST, help=f"test words (default {DEFAULT_TEST})")
    ap.add_argument("--out", default="data/offline_shd", help="output folder (default data/offline_shd)")
    ap.add_argument("--seed", type=int, default=0, help="fixes every random choice (default 0)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--train-speakers", type=int, default=DEFAULT_TRAIN_SPEAKERS,
                    help=f"speakers of the training split (default {DEFAULT_TRAIN_SPEAKERS})")
    ap.add_argument("--test-speakers", type=int, default=DEFAULT_TEST_SPEAKERS,
                    help=f"speakers of the test split, disjoint from training (default {DEFAULT_TEST_SPEAKERS})")
    ap.add_argument("--force", action="store_true", help="regenerate even if the files match")
    a = ap.parse_args(argv)
    train, test = generate(a.out, a.train, a.test, a.seed, a.workers, a.train_speakers, a.test_speakers, a.force)
    print(f"{train}\n{test}")
    return 0


if __name__ == "__main__":
    from sw.errors import guarded  # exit codes 0/1/2/3 as in every spikeline command

    sys.exit(guarded(main, None, "generate"))
