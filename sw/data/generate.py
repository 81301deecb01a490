"""Offline SHD-format data set: spoken digits from espeak-ng through the Lauscher cochlea.

Labels follow SHD: 0-9 English "zero".."nine", 10-19 German "null".."neun".

A *speaker* is a fixed (English accent, espeak variant, base pitch, pitch range,
base speaking rate, vocal-tract factor) tuple; German words use the ``de`` voice
with the same variant.  Train and test speakers are disjoint: the variants are
split into a train pool and a test pool, so no test speaker shares a voice
variant with any training speaker.

Each utterance (all ranges are fields of :class:`GenParams`, recorded in the manifest):
- jitters the speaker's rate by a factor in ``1 +- rate_jitter`` (speaker rates span
  ``speaker_rate``, words per minute), its pitch by ``+- pitch_jitter`` and its
  intonation range (SSML ``<prosody range>``) by ``+- range_jitter``;
- espeak-ng cannot speak slower than ``ESPEAK_MIN_RATE`` wpm: slower words are
  spoken at that rate and stretched in time, pitch kept, by Rubber Band's R3 engine
  (:func:`change_tempo`; generator version 3). Version 2 used librosa's phase vocoder,
  whose artefacts alone cost 12.7 points on words slowed inside the training range,
  against 3.8 for Rubber Band (``docs/results.md`` section 4, round 9);
- (training words only: ``train_vowel_length``, ``--train-vowel-length``; default
  -100..50, so two thirds of the words are shortened, as espeak-ng's fast speech
  is) has espeak-ng's own vowel lengths changed: a whole number drawn
  uniformly from ``train_vowel_length`` is added to every stress level's vowel length
  (the voice's ``stressAdd``, :func:`vowel_variant`) while the consonants keep
  theirs, as when speech gets faster or slower.  Its own generator
  (:func:`train_vowel_add`).  With ``train_vowel_tilt`` (``--train-vowel-tilt``,
  off by default) the range moves with the word's rate: towards longer vowels
  for slow words, shorter for fast ones (round 15 of ``docs/results.md``
  section 4: no gain);
- (training words only: ``train_tempo``, ``--train-tempo``; by default 0.7-1.4x,
  three quarters of the words drawn a slowing factor and half of those drawn a
  speeding one) with probability ``train_tempo_share`` is played faster or slower by a
  factor drawn log-uniformly from ``train_tempo``, by the same Rubber Band engine:
  the time stretch of issue 11 moved before the cochlea, where the word-duration
  normalization (``sw.data.time_norm``) does not undo it.  Its own generator
  (:func:`train_tempo_factor`), so no other draw changes.  Together the two gain
  6.2 points on the fast split (round 11 of ``docs/results.md`` section 4).
  ``train_tempo_slow_share`` (``--train-tempo-slow-share``, 0.75 by default since
  round 18) gives the words drawn a slowing factor a share of their own: three
  quarters instead of half brought the slow and noisy splits closer to the test
  split (round 18); more still raise the slow split but lower the fast one (round 19);
  ``--plain-training`` (:meth:`GenParams.plain_training`) turns these two and the
  two below off;
- (training words only: ``train_rate``, ``--train-rate``; by default every
  training word, over the whole training range 72-216 wpm) with
  probability ``train_rate_share`` is spoken at a rate drawn uniformly from
  ``train_rate`` instead of its speaker's: more words spoken fast (or slow) by
  espeak-ng itself, the training range unchanged (the range must lie inside it).
  The speakers' own rates pile up in the middle of the range (15 % of the words
  above 170 wpm, 6 % below 90); drawn uniformly over all of it, 32 % and 13 %.
  Its own generator (:func:`train_rate_of`), so no other draw changes (rounds 12
  to 14 of ``docs/results.md`` section 4);
- has espeak's own silence trimmed, then a random leading and trailing silence;
- gets a loudness change of ``+- loudness_db`` against a fixed background-noise
  floor of ``snr_db`` (relative to the un-scaled speech; ``None`` = no noise).  The
  cochlea's RmsNormalizer (as in SHD) removes absolute level, so loudness acts
  through the noise floor and the silence share of the clip.  A training word
  draws its floor from ``train_snr_db`` instead when that is set
  (``--train-snr-db``, default 10-40 dB; :meth:`GenParams.split_params`), which must
  stay above the noisy split's SNRs (0-10 dB).  The three training-only defaults
  above are round 14's ``univ`` recipe (``docs/results.md`` section 4);
- is resampled from 22.05 kHz to 48 kHz with the tract factor (a +-7 % formant
  and duration perturbation) and goes through :func:`sw.data.cochlea.audio_to_spikes`.

Shifted test splits (``shd_test_<name>.h5``) use the test speakers with one
parameter moved outside the training range (:data:`SHIFTS`): ``slow`` and ``fast``
speech (the rate is drawn from the shift's range instead of the speaker's) and
``noisy`` (a lower SNR).  They measure generalization, not training fit.

Sample ``i`` of a split depends only on ``(seed, split, i)``, the parameters and
the speaker list (itself a function of ``seed``), so the result is identical for
any number of worker processes.  Outputs ``<out>/shd_train.h5``,
``<out>/shd_test.h5``, ``<out>/shd_test_{slow,fast,noisy}.h5`` (exact SHD layout)
and ``<out>/manifest.json``; a re-run with the same parameters reuses them.

    python -m sw.data.generate --train 4000 --test 1000 --shifted 200 --out data/big --seed 0 --workers 2
"""
from __future__ import annotations

import argparse
import atexit
import io
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from importlib.metadata import version
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.signal
import soundfile
from filelock import FileLock
from tqdm import tqdm

from sw.data import cochlea

GENERATOR_VERSION = 3
# Versions whose draws (rates, pitches, speakers, ...) equal this code's: version 3 changed only
# how words slower than ESPEAK_MIN_RATE are stretched, so word_rates still reads version-2 sets.
# (The training words' tempo and vowel-length changes, train_tempo and train_vowel_length, came
# later without a new version: with both off, GenParams.plain_training, every word is version 3's,
# bit for bit; they are on by default since round 11, and the manifest's generator parameters say so.)
SAME_DRAWS = (2, 3)
RUBBERBAND_PACKAGE = "rubberband-cli"  # Debian package of the `rubberband` command (pyrubberband runs it)
# About 0.2 s of wall time per word on 2 idle cores (0.36 CPU-s a word, bench/cochlea.py);
# 2400 + 400 + 3 x 200 words take about 11.5 minutes (README.md, make sim of generator version 3). 2400 rather than 1200 training
# words: +3 to +7 points on every split over 3 seeds (docs/results.md section 4, round 5).
DEFAULT_TRAIN = 2400
DEFAULT_TEST = 400
# Words per shifted test split: 200 = every one of the 10 test speakers says every word once, so a
# shifted split has the test split's speakers in the test split's proportions (sample i is said by
# speaker (i // 20) % n). 120 words, the size until round 8, held only the first 6 test speakers,
# which skewed the comparison with the test split (docs/results.md section 4, round 8).
DEFAULT_SHIFTED = 200
DEFAULT_TRAIN_SPEAKERS = 40
DEFAULT_TEST_SPEAKERS = 10

ENGLISH = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
GERMAN = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]
WORDS = ENGLISH + GERMAN  # spoken text; index = label
KEYS = ENGLISH + [w.replace("ü", "ue") for w in GERMAN]  # ASCII names stored in extra/keys
# espeak-ng's own English accents (the mbrola voices need extra packages)
EN_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc",
             "en-029")
ESPEAK_RATE = 22050
ESPEAK_MIN_RATE = 80  # espeak-ng clamps -s (and SSML rate) below this many words per minute

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


MAX_TEMPO = 4.0  # change_tempo's range is [1 / MAX_TEMPO, MAX_TEMPO]
# train_vowel_length's bounds, in espeak-ng stressAdd units: every variant of VARIANTS still speaks
# every word at -100 and +100 (tested); at -160 espeak-ng's lengths wrap ("seven" lasts 9 s)
VOWEL_ADD_RANGE = (-100, 100)


# Fields added after sets were cached, with their "off" value: left out of the manifest when off, and
# from_dict reads their absence as off (not as today's default), so an older manifest still describes
# its own set exactly.
OFF_IF_ABSENT = {"train_rate": None, "train_rate_share": 0.0, "train_snr_db": None, "train_vowel_tilt": 0.0,
                 "train_tempo_slow_share": None}


@dataclass(frozen=True)
class GenParams:
    """Every random range of the generator (recorded in the manifest).  Ranges are ``(lo, hi)``."""

    speaker_rate: tuple = (90.0, 180.0)  # speaker base rate, words per minute
    rate_jitter: float = 0.2  # per word: rate x U(1 - j, 1 + j)  -> training rates 72..216 wpm
    pitch_female: tuple = (45, 75)  # espeak -p of a speaker
    pitch_male: tuple = (20, 55)
    pitch_jitter: int = 8  # per word +- (espeak -p units)
    speaker_range: tuple = (50.0, 170.0)  # intonation: SSML prosody range, % of espeak's default
    range_jitter: float = 0.2  # per word x U(1 - j, 1 + j)
    tract: tuple = (0.93, 1.07)  # speaker vocal-tract resampling factor
    tract_jitter: float = 0.015
    loudness_db: float = 4.0  # per word +- dB against the noise floor
    lead_s: tuple = (0.0, 0.15)  # leading silence, seconds
    trail_s: tuple = (0.0, 0.15)  # trailing silence, seconds
    snr_db: tuple | None = (20.0, 40.0)  # background white noise; None = none
    rate: tuple | None = None  # a shifted split: per-word rate drawn from here, ignoring the speaker
    # training words only: a share train_tempo_share of them is played faster or slower by a factor
    # drawn log-uniformly from train_tempo (Rubber Band, pitch kept; train_tempo_factor); None = off.
    # With train_tempo_slow_share set, that share applies to the words drawn a speeding factor only
    train_tempo: tuple | None = (0.7, 1.4)
    train_tempo_share: float = 0.5
    # training words only: the share of the words drawn a slowing factor (< 1) that are slowed, when other
    # than train_tempo_share (which then applies to the sped-up ones only).  None = train_tempo_share
    train_tempo_slow_share: float | None = 0.75
    # training words only: espeak-ng's own vowel lengths changed by an integer drawn uniformly from
    # train_vowel_length and added to every stress level's vowel length (a voice's stressAdd;
    # train_vowel_add); consonants keep theirs.  None = off
    train_vowel_length: tuple | None = (-100, 50)
    # training words only: a share train_rate_share of them is spoken at a rate drawn uniformly from
    # train_rate instead of its speaker's (train_rate_of), so more of them are spoken fast (or slow) by
    # espeak-ng itself.  The range must lie inside rate_range(): the training range, and the shifted
    # splits' distance from it, stay as they are.  None = off
    train_rate: tuple | None = (72.0, 216.0)  # = rate_range(): the whole training range
    train_rate_share: float = 1.0
    # training words only: their background-noise SNR range, when other than snr_db (split_params).  It
    # must stay above the noisy split's SNRs, so that split stays outside the training range.  None = snr_db
    train_snr_db: tuple | None = (10.0, 40.0)
    # training words only: train_vowel_length's range moved by this many stressAdd units towards longer
    # vowels for a word spoken at the slow end of the training range, and as many towards shorter ones at
    # the fast end (linear in the word's rate; train_vowel_add), as people lengthen vowels when they speak
    # slowly.  0 = every word draws from train_vowel_length alike
    train_vowel_tilt: float = 0.0

    def plain_training(self) -> "GenParams":
        """These parameters with the training words spoken as drawn: no tempo, vowel-length or rate change,
        and the test words' noise floor (the corpus before round 11 of ``docs/results.md`` section 4)."""
        return replace(self, train_tempo=None, train_tempo_share=0.0, train_tempo_slow_share=None,
                       train_vowel_length=None, train_rate=None, train_rate_share=0.0, train_snr_db=None,
                       train_vowel_tilt=0.0)

    def split_params(self, split: int) -> "GenParams":
        """The parameters a word of ``split`` (0 = training) is drawn with: a training word's SNR range
        is ``train_snr_db`` when set.  Only the range changes, not the draw order, so every other draw
        of the word is the one it has without ``train_snr_db``."""
        if split == 0 and self.train_snr_db is not None:
            return replace(self, snr_db=self.train_snr_db)
        return self

    def validate(self) -> "GenParams":
        optional = ("snr_db", "rate", "train_tempo", "train_vowel_length", "train_rate", "train_snr_db")  # None = off
        for name in ("speaker_rate", "pitch_female", "pitch_male", "speaker_range", "tract", "lead_s", "trail_s",
                     *optional):
            v = getattr(self, name)
            if v is None and name in optional:
                continue
            if not (isinstance(v, (tuple, list)) and len(v) == 2 and v[0] <= v[1]):
                raise ValueError(f"generator parameter {name}: need a (lo, hi) range with lo <= hi, got {v!r}")
        if self.speaker_rate[0] <= 0 or (self.rate is not None and self.rate[0] <= 0):
            raise ValueError("generator parameter speaker_rate/rate: rates must be positive words per minute")
        for name in ("rate_jitter", "range_jitter", "tract_jitter"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"generator parameter {name}: must be in [0, 1), got {getattr(self, name)!r}")
        if self.lead_s[0] < 0 or self.trail_s[0] < 0:
            raise ValueError("generator parameter lead_s/trail_s: silences must be >= 0 s")
        if self.train_tempo is not None and not 1 / MAX_TEMPO <= self.train_tempo[0] <= self.train_tempo[1] <= MAX_TEMPO:
            raise ValueError(f"generator parameter train_tempo: tempo factors must lie in [{1 / MAX_TEMPO:g}, "
                             f"{MAX_TEMPO:g}] (change_tempo), got {self.train_tempo!r}")
        if not 0 <= self.train_tempo_share <= 1:
            raise ValueError(f"generator parameter train_tempo_share: must be in [0, 1], got {self.train_tempo_share!r}")
        slow = self.train_tempo_slow_share
        if slow is not None and not (isinstance(slow, (int, float)) and 0 <= slow <= 1):
            raise ValueError(f"generator parameter train_tempo_slow_share: must be in [0, 1] (or None = "
                             f"train_tempo_share), got {slow!r}")
        if not (isinstance(self.train_rate_share, (int, float)) and 0 <= self.train_rate_share <= 1):
            raise ValueError(f"generator parameter train_rate_share: must be in [0, 1], got {self.train_rate_share!r}")
        if self.train_rate is None and self.train_rate_share > 0:
            raise ValueError(f"generator parameter train_rate: a share of {self.train_rate_share!r} of the training "
                             f"words needs a rate range (train_rate_share 0 for none)")
        if self.train_rate is not None:
            lo, hi = replace(self, rate=None).rate_range()  # the speakers' rates, also for a shifted split
            if not (all(isinstance(x, (int, float)) for x in self.train_rate)
                    and lo - 1e-9 <= self.train_rate[0] and self.train_rate[1] <= hi + 1e-9):
                raise ValueError(f"generator parameter train_rate: must lie inside the speakers' rates "
                                 f"[{lo:g}, {hi:g}] words/min (speaker_rate x (1 +- rate_jitter)), got "
                                 f"{self.train_rate!r}")
        noisy_hi = SHIFTS["noisy"]["snr_db"][1]
        if self.train_snr_db is not None and not (all(isinstance(x, (int, float)) for x in self.train_snr_db)
                                                  and self.train_snr_db[0] >= noisy_hi):
            raise ValueError(f"generator parameter train_snr_db: must lie above the noisy split's SNRs (up to "
                             f"{noisy_hi:g} dB), so that split stays outside the training range, got "
                             f"{self.train_snr_db!r}")
        if not (isinstance(self.train_vowel_tilt, (int, float)) and 0 <= self.train_vowel_tilt <= VOWEL_ADD_RANGE[1]):
            raise ValueError(f"generator parameter train_vowel_tilt: need stressAdd units in [0, {VOWEL_ADD_RANGE[1]}], "
                             f"got {self.train_vowel_tilt!r}")
        v = self.train_vowel_length
        if v is not None and not (all(isinstance(x, (int, float)) and float(x).is_integer() for x in v)
                                  and VOWEL_ADD_RANGE[0] <= v[0] <= v[1] <= VOWEL_ADD_RANGE[1]):
            raise ValueError(f"generator parameter train_vowel_length: need whole espeak-ng stressAdd units in "
                             f"[{VOWEL_ADD_RANGE[0]}, {VOWEL_ADD_RANGE[1]}], got {v!r}")
        return self

    def as_dict(self) -> dict:
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        return {k: v for k, v in d.items() if not (k in OFF_IF_ABSENT and v == OFF_IF_ABSENT[k])}

    @classmethod
    def from_dict(cls, d: dict) -> "GenParams":
        """The inverse of :meth:`as_dict` (a manifest's ``params.generator``), validated."""
        d = {**OFF_IF_ABSENT, **d}  # a field added later is off in a manifest made before it
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}).validate()

    def rate_range(self) -> tuple[float, float]:
        """The lowest and highest speaking rate a word can be drawn at (:func:`draw_utterance`)."""
        if self.rate is not None:
            return float(self.rate[0]), float(self.rate[1])
        return self.speaker_rate[0] * (1 - self.rate_jitter), self.speaker_rate[1] * (1 + self.rate_jitter)

    def tempo_shares(self) -> tuple[float, float]:
        """The shares of the training words drawn a slowing and a speeding tempo factor that are changed
        (:func:`train_tempo_factor`); ``(0, 0)`` when ``train_tempo`` is off."""
        if self.train_tempo is None:
            return 0.0, 0.0
        slow = self.train_tempo_share if self.train_tempo_slow_share is None else self.train_tempo_slow_share
        return float(slow), float(self.train_tempo_share)

    def heard_train_range(self) -> tuple[float, float]:
        """The lowest and highest rate a training word can be heard at: :meth:`rate_range` widened by
        the tempo factors when ``train_tempo`` changes some words (:func:`train_tempo_factor`)."""
        lo, hi = self.rate_range()
        slow, fast = self.tempo_shares()
        lo = min(lo, lo * self.train_tempo[0]) if slow > 0 else lo
        hi = max(hi, hi * self.train_tempo[1]) if fast > 0 else hi
        return lo, hi


# Shifted test splits: one parameter outside the training range each.  Training
# rates span 72..216 wpm (90..180 x (1 +- 0.2)) and SNRs 20..40 dB.
SHIFTS = {
    "slow": {"rate": (50.0, 65.0)},
    "fast": {"rate": (240.0, 300.0)},
    "noisy": {"snr_db": (0.0, 10.0)},
}
SHIFT_SPLIT_ID = {"slow": 2, "fast": 3, "noisy": 4}  # seeds: split 0 = train, 1 = test


def shifted_params(base: GenParams, name: str) -> GenParams:
    if name not in SHIFTS:
        raise ValueError(f"shifted split: unknown name {name!r} (known: {', '.join(SHIFTS)})")
    return replace(base, **SHIFTS[name]).validate()


def shifted_path(out: str | Path, name: str) -> Path:
    return Path(out) / f"shd_test_{name}.h5"


@dataclass(frozen=True)
class Speaker:
    sid: int
    en_voice: str
    variant: str
    gender: str
    pitch: int  # espeak -p, 0..99
    speed: int  # base rate, words per minute
    tract: float  # resampling factor: >1 lowers formants and lengthens
    pitch_range: float = 100.0  # SSML prosody range, % of espeak's default intonation

    def voice(self, label: int) -> str:
        return f"{self.en_voice if label < 10 else 'de'}+{self.variant}"

    def identity(self) -> tuple:
        return (self.en_voice, self.variant, self.pitch, self.speed, self.tract, self.pitch_range)


def make_speakers(seed: int, n_train: int, n_test: int,
                  params: GenParams = GenParams()) -> tuple[list[Speaker], list[Speaker]]:
    """Speakers of both splits; ids ``0..n_train-1`` train, then test.  The variants are
    split into disjoint train and test pools in proportion to the speaker counts;
    within a pool, speakers take the variants in turn (then differ in accent,
    pitch, range, rate and tract)."""
    if n_train < 1 or n_test < 1:
        raise ValueError(f"speakers: need at least one per split, got train={n_train}, test={n_test}")
    if n_train + n_test > len(VARIANTS) * len(EN_VOICES):
        raise ValueError(f"speakers: at most {len(VARIANTS) * len(EN_VOICES)} speakers, asked for {n_train + n_test}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5BEA]))
    names = [str(v) for v in rng.permutation(sorted(VARIANTS))]
    n_test_pool = min(n_test, max(1, round(len(names) * n_test / (n_train + n_test))))
    pools = (names[n_test_pool:], names[:n_test_pool])
    out = []
    for split, n in ((0, n_train), (1, n_test)):
        pool = pools[split]
        for k in range(n):
            v = pool[k % len(pool)]
            female = VARIANTS[v] == "female"
            lo, hi = params.pitch_female if female else params.pitch_male
            out.append(Speaker(
                sid=len(out),
                en_voice=str(rng.choice(EN_VOICES)),
                variant=v,
                gender=VARIANTS[v],
                pitch=int(rng.integers(lo, hi + 1)),
                speed=int(round(rng.uniform(*params.speaker_rate))),
                tract=round(float(rng.uniform(*params.tract)), 4),
                pitch_range=round(float(rng.uniform(*params.speaker_range)), 1),
            ))
    train, test = out[:n_train], out[n_train:]
    assert not {s.variant for s in train} & {s.variant for s in test}
    return train, test


def espeak(word: str, voice: str, speed: int, pitch: int, pitch_range: float = 100.0,
           vowel_add: int = 0) -> np.ndarray:
    """22.05 kHz float64 audio of one word (SSML input, for the intonation range).
    soundfile, not wave: espeak's --stdout header carries a bogus frame count.
    ``vowel_add`` (espeak-ng stressAdd units) lengthens (> 0) or shortens (< 0) the voice's
    vowels at every stress level (:func:`vowel_variant`)."""
    ssml = f'<speak><prosody range="{pitch_range:.0f}%">{word}</prosody></speak>'
    path = [f"--path={vowel_variant(voice, int(vowel_add))}"] if vowel_add else []
    cmd = ["espeak-ng", *path, "--stdout", "-m", "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "-z", ssml]
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


_VOICE_DATA: dict = {}  # this process's espeak-ng data folders, one per vowel add (vowel_variant)


def _espeak_data_dir() -> Path:
    """espeak-ng's own data folder (``Data at:`` of ``espeak-ng --version``)."""
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError as e:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)") from e
    if "Data at:" not in out:
        raise RuntimeError(f"espeak-ng --version names no data folder: {out.strip()!r}")
    return Path(out.split("Data at:")[1].strip())


def with_stress_add(variant_text: str, add: int) -> str:
    """A variant file's text with ``add`` added to each of its 8 stressAdd values (0 where it has none)."""
    lines, done = [], False
    for line in variant_text.splitlines():
        f = line.split("//")[0].split()
        if f and f[0] == "stressAdd":
            vals = [int(x) for x in f[1:]] + [0] * (8 - len(f[1:]))
            line, done = "stressAdd " + " ".join(str(v + add) for v in vals[:8]), True
        lines.append(line)
    if not done:
        lines.append("stressAdd " + " ".join([str(add)] * 8))
    return "\n".join(lines) + "\n"


def vowel_variant(voice: str, add: int) -> Path:
    """The ``--path`` folder under which ``voice`` (``lang+variant``) speaks with ``add`` stressAdd units
    on every vowel length.  espeak-ng reads variants only from its data folder, so this builds private
    copies of that folder out of symbolic links, one per ``add``, and writes the derived variant there
    under the variant's own name: one folder per ``add`` because espeak-ng lists at most 349 voices, 232
    of them its own.  The folders live in a temporary folder that :func:`generate` removes when done
    (outside a generator: this process's own, removed at exit).  The system's files are never touched."""
    lang, _, variant = voice.partition("+")
    if not variant:
        raise ValueError(f"vowel_variant: voice {voice!r} names no variant (lang+variant)")
    if "src" not in _VOICE_DATA:
        _VOICE_DATA["src"] = _espeak_data_dir()
    if "root" not in _VOICE_DATA:  # a generator's workers get theirs from _generate_into
        _VOICE_DATA["root"] = Path(tempfile.mkdtemp(prefix="spikeline-espeak-"))
        atexit.register(shutil.rmtree, _VOICE_DATA["root"], True)
    src, folder = _VOICE_DATA["src"], _VOICE_DATA["root"] / f"va{add}"
    dst = folder / "espeak-ng-data"
    if not dst.exists():  # built aside and renamed: the worker processes share the folders
        part = Path(tempfile.mkdtemp(prefix=f".va{add}-", dir=folder.parent))
        (part / "espeak-ng-data" / "voices" / "!v").mkdir(parents=True)
        for p in src.iterdir():
            if p.name != "voices":
                (part / "espeak-ng-data" / p.name).symlink_to(p)
        for p in (src / "voices").iterdir():
            if p.name != "!v":
                (part / "espeak-ng-data" / "voices" / p.name).symlink_to(p)
        try:
            part.rename(folder)
        except OSError:  # another worker was first
            shutil.rmtree(part, ignore_errors=True)
    path = dst / "voices" / "!v" / variant
    if not path.exists():
        base = src / "voices" / "!v" / variant
        if not base.is_file():
            raise RuntimeError(f"espeak-ng has no voice variant {variant!r} ({base})")
        tmp = path.with_name(f".{variant}.{os.getpid()}.tmp")
        tmp.write_text(with_stress_add(base.read_text(), add))
        tmp.replace(path)
    return folder


def trim_silence(x: np.ndarray, rel: float = 0.01) -> np.ndarray:
    """The part of ``x`` between the first and last sample above ``rel`` x its peak."""
    nz = np.flatnonzero(np.abs(x) > rel * np.abs(x).max(initial=0.0))
    return x[nz[0]:nz[-1] + 1] if nz.size else x


@dataclass(frozen=True)
class Utterance:
    """The per-word draws (for the manifest-free record of what a sample is)."""

    rate: float
    pitch: int
    pitch_range: float
    tract: float
    gain_db: float
    lead_s: float
    trail_s: float
    snr_db: float | None


def draw_utterance(speaker: Speaker, params: GenParams, rng: np.random.Generator) -> Utterance:
    """The random per-word parameters, in a fixed draw order."""
    j = params.rate_jitter
    rate = speaker.speed * rng.uniform(1 - j, 1 + j)
    if params.rate is not None:
        rate = rng.uniform(*params.rate)
    pitch = int(np.clip(speaker.pitch + rng.integers(-params.pitch_jitter, params.pitch_jitter + 1), 0, 99))
    rj = params.range_jitter
    prange = float(np.clip(speaker.pitch_range * rng.uniform(1 - rj, 1 + rj), 0, 400))
    tract = speaker.tract * rng.uniform(1 - params.tract_jitter, 1 + params.tract_jitter)
    gain = rng.uniform(-params.loudness_db, params.loudness_db)
    lead = rng.uniform(*params.lead_s)
    trail = rng.uniform(*params.trail_s)
    snr = rng.uniform(*params.snr_db) if params.snr_db is not None else None
    return Utterance(float(rate), pitch, prange, float(tract), float(gain), float(lead), float(trail),
                     None if snr is None else float(snr))


def word_rates(root: str | Path, split: str, n: int | None = None) -> np.ndarray:
    """Speaking rate in words/min drawn for each word of ``split`` (``train``, ``test`` or a
    :data:`SHIFTS` name) of the set in ``root``, recomputed from its ``manifest.json``: every
    draw is a function of ``(seed, split, index)``, the parameters and the speakers, so the
    rates need no audio (the first ``n`` words, default all). A training word whose tempo was
    changed (``train_tempo``) counts at the rate heard, its drawn rate times the factor. Raises
    ``ValueError`` naming the manifest field when the set was made by another generator version
    or its speakers are not the ones this code draws."""
    path = Path(root) / "manifest.json"
    try:
        man = json.loads(path.read_text())
        p = man["params"]
        version_ = p["generator_version"]
        if version_ in SAME_DRAWS:
            params = GenParams.from_dict(p["generator"])
            train_spk, test_spk = make_speakers(p["seed"], p["n_train_speakers"], p["n_test_speakers"], params)
            recorded = man["speakers"]["train"] + man["speakers"]["test"]
            counts = {"train": p["n_train"], "test": p["n_test"], **{k: p["n_shifted"] for k in SHIFTS}}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"'{path}': not a generator manifest ({type(e).__name__}: {e})") from None
    if version_ not in SAME_DRAWS:
        raise ValueError(f"'{path}': field params.generator_version is {version_!r}; this code draws as versions "
                         f"{', '.join(map(str, SAME_DRAWS))}, so it cannot recompute the set's rates")
    if [asdict(s) for s in train_spk + test_spk] != recorded:
        raise ValueError(f"'{path}': field speakers differs from the speakers this code draws for its parameters")
    if split == "train":
        sid, spk, prm = 0, train_spk, params
    elif split == "test":
        sid, spk, prm = 1, test_spk, params
    elif split in SHIFTS:
        sid, spk, prm = SHIFT_SPLIT_ID[split], test_spk, shifted_params(params, split)
    else:
        raise ValueError(f"split: expected train, test or one of {', '.join(SHIFTS)}, got {split!r}")
    n = counts[split] if n is None else min(int(n), counts[split])
    # synth_audio's first draws from the word's generator are draw_utterance's
    # the rate heard: a training word's tempo factor (train_tempo) multiplies the spoken one
    def spoken(i):
        r = train_rate_of(p["seed"], sid, i, prm)
        return draw_utterance(speaker_of(i, spk), prm, sample_rng(p["seed"], sid, i)).rate if r is None else r
    return np.array([spoken(i) * train_tempo_factor(p["seed"], sid, i, prm) for i in range(n)])


def synth_audio(label: int, speaker: Speaker, rng: np.random.Generator,
                params: GenParams = GenParams(), tempo: float = 1.0, vowel_add: int = 0,
                rate: float | None = None) -> np.ndarray:
    """48 kHz audio of one utterance of ``WORDS[label]`` by ``speaker``, played ``tempo`` times
    faster (:func:`train_tempo_factor`; 1 = as drawn), its vowels lengthened by ``vowel_add``
    stressAdd units (:func:`train_vowel_add`; 0 = the voice's own), spoken at ``rate`` words/min
    (:func:`train_rate_of`; None = the drawn rate)."""
    u = draw_utterance(speaker, params, rng)
    if rate is not None:
        u = replace(u, rate=float(rate))
    spoken = max(u.rate, ESPEAK_MIN_RATE)
    wav = trim_silence(espeak(WORDS[label], speaker.voice(label), int(round(spoken)), u.pitch, u.pitch_range,
                              vowel_add))
    # slower than espeak can speak, and/or a training word's tempo: one stretch, pitch kept
    stretch = (u.rate / spoken if u.rate < spoken else 1.0) * tempo
    if stretch != 1.0:
        wav = change_tempo(wav, stretch)
    ratio = Fraction(cochlea.SAMPLE_RATE * u.tract / ESPEAK_RATE).limit_denominator(160)
    x = scipy.signal.resample_poly(wav, ratio.numerator, ratio.denominator)
    lead = int(u.lead_s * cochlea.SAMPLE_RATE)
    n = lead + x.size + int(u.trail_s * cochlea.SAMPLE_RATE)
    # pad so that the cochlea's half-spectrum length is FFT-friendly (a few ms of silence)
    n_fast = 2 * (scipy.fft.next_fast_len(n // 2 + 1, real=True) - 1)
    audio = np.zeros(max(n_fast, n))
    rms = np.sqrt(np.mean(x**2))
    audio[lead:lead + x.size] = x * 10 ** (u.gain_db / 20)
    if u.snr_db is not None:  # a floor relative to the un-scaled speech: loudness moves against it
        audio += rng.normal(0.0, rms * 10 ** (-u.snr_db / 20), audio.size)
    return audio


def change_tempo(wav: np.ndarray, tempo: float) -> np.ndarray:
    """``wav`` (espeak's rate) played at ``tempo`` times its speed (``< 1``: longer, ``> 1``: shorter),
    pitch and formants kept, by Rubber Band's R3 ("finer") engine through pyrubberband. Deterministic.

    Not librosa's phase vocoder (generator version 2): on the same test words slowed 1.43x, its
    phasiness cost the default model 12.7 points against 3.8 for Rubber Band (WSOLA: 6.7), although
    the slowed rates lay inside the training range (``docs/results.md`` section 4, round 9)."""
    import pyrubberband

    if not 1.0 / MAX_TEMPO <= tempo <= MAX_TEMPO:
        raise ValueError(f"tempo: must be in [{1 / MAX_TEMPO:g}, {MAX_TEMPO:g}], got {tempo!r}")
    try:
        out = pyrubberband.time_stretch(wav, ESPEAK_RATE, tempo, rbargs={"-3": ""})
    except (RuntimeError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"Rubber Band ({RUBBERBAND_PACKAGE}) failed to change a word's tempo ({e}); "
                           f"install it with: apt-get install {RUBBERBAND_PACKAGE}") from None
    return np.asarray(out, dtype=np.float64)


def _rubberband_version() -> str:
    try:
        res = subprocess.run(["rubberband", "--version"], capture_output=True, text=True)
    except FileNotFoundError:
        return "missing"
    text = (res.stdout or res.stderr).strip()
    return text.splitlines()[-1] if text else "unknown"


def sample_rng(seed: int, split: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(split), int(index)]))


def train_tempo_factor(seed: int, split: int, index: int, params: GenParams) -> float:
    """The tempo factor of word ``index`` (1 = unchanged): a training word (split 0) draws a factor
    log-uniformly from ``params.train_tempo`` and is changed with probability ``params.train_tempo_share``
    (``params.train_tempo_slow_share`` instead for a factor below 1, when set).  The draw that decides
    comes first and the factor second, whatever the shares, so a changed word's factor is the same at
    every share.  Its own generator, so every other draw (and every word of the other splits) stays as
    it was."""
    slow_share, fast_share = params.tempo_shares()
    if split != 0 or max(slow_share, fast_share) <= 0:
        return 1.0
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(split), int(index), 0x7E3]))
    u = rng.random()
    lo, hi = params.train_tempo
    factor = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return factor if u < (slow_share if factor < 1 else fast_share) else 1.0


def train_rate_of(seed: int, split: int, index: int, params: GenParams) -> float | None:
    """The rate (words/min) of word ``index`` when it is not its speaker's (None = the drawn rate): a
    training word (split 0) is given one with probability ``params.train_rate_share``, drawn uniformly
    from ``params.train_rate``.  Its own generator, so every other draw stays as it was."""
    if split != 0 or params.train_rate is None or params.train_rate_share <= 0:
        return None
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(split), int(index), 0x4A7E]))
    if not rng.random() < params.train_rate_share:
        return None
    return float(rng.uniform(*params.train_rate))


def train_vowel_add(seed: int, split: int, index: int, params: GenParams, rate: float | None = None) -> int:
    """The stressAdd units added to the vowel lengths of word ``index`` (0 = the voice's own): a training
    word (split 0) draws a whole number uniformly from ``params.train_vowel_length``.  With
    ``params.train_vowel_tilt`` that range is first moved by ``tilt * (mid - rate) / half`` units (``mid``
    and ``half`` the centre and half-width of :meth:`GenParams.rate_range`; ``rate`` the word's, words/min):
    longer vowels for slow words, shorter for fast ones, its ends kept inside :data:`VOWEL_ADD_RANGE`.
    Its own generator, so every other draw (and every word of the other splits) stays as it was."""
    if split != 0 or params.train_vowel_length is None:
        return 0
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(split), int(index), 0x70E1]))
    lo, hi = params.train_vowel_length
    if params.train_vowel_tilt:
        if rate is None:
            raise ValueError("train_vowel_add: train_vowel_tilt needs the word's rate")
        r_lo, r_hi = params.rate_range()
        shift = int(round(params.train_vowel_tilt * ((r_lo + r_hi) / 2 - rate) / ((r_hi - r_lo) / 2)))
        lo, hi = (int(np.clip(x + shift, *VOWEL_ADD_RANGE)) for x in (lo, hi))
    return int(rng.integers(int(lo), int(hi) + 1))


def speaker_of(index: int, speakers: list) -> "Speaker":
    """The speaker of word ``index`` of a split: each says the 20 words in turn (label ``index % 20``)."""
    return speakers[(index // len(WORDS)) % len(speakers)]


def synth_sample(seed: int, split: int, index: int, speakers: list[Speaker], params: GenParams = GenParams()):
    """``(times float64, units int64, label, speaker id)`` of sample ``index``."""
    rng = sample_rng(seed, split, index)
    label = index % len(WORDS)
    speaker = speaker_of(index, speakers)
    word_params = params.split_params(split)
    given_rate = train_rate_of(seed, split, index, params)
    rate = given_rate
    if split == 0 and params.train_vowel_tilt and rate is None:  # the speaker's drawn rate (a copy of the draws)
        rate = draw_utterance(speaker, word_params, sample_rng(seed, split, index)).rate
    audio = synth_audio(label, speaker, rng, word_params, train_tempo_factor(seed, split, index, params),
                        train_vowel_add(seed, split, index, params, rate), given_rate)
    times, units = cochlea.audio_to_spikes(audio, cochlea.SAMPLE_RATE, seed=int(rng.integers(2**32)))
    return times, units, label, speaker.sid


def _worker_init(voice_root: str | None = None) -> None:
    import numba

    numba.set_num_threads(1)  # parallelism comes from the processes
    if voice_root is not None:  # the generator's folder of derived voices (vowel_variant)
        _VOICE_DATA["root"] = Path(voice_root)


def _worker(job):
    seed, split, index, speakers, params = job
    t, u, label, sid = synth_sample(seed, split, index, speakers, params)
    return index, t.astype(np.float32), u.astype(np.uint16), label, sid


def _espeak_version() -> str:
    try:
        return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.split("Data at")[0].strip()
    except FileNotFoundError:
        return "missing"


def _params(n_train, n_test, seed, n_train_speakers, n_test_speakers, n_shifted=0,
            params: GenParams = GenParams()) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "n_train": int(n_train), "n_test": int(n_test), "n_shifted": int(n_shifted), "seed": int(seed),
        "n_train_speakers": int(n_train_speakers), "n_test_speakers": int(n_test_speakers),
        "generator": params.as_dict(),
        "shifts": {k: {f: list(v) for f, v in d.items()} for k, d in SHIFTS.items()} if n_shifted else {},
        "lauscher": version("lauscher"), "espeak": _espeak_version(), "rubberband": _rubberband_version(),
    }


def speaker_balance_note(n_words: int, n_speakers: int) -> str | None:
    """Why a split of ``n_words`` words from ``n_speakers`` speakers is unbalanced (``None`` if it is not).

    Word ``i`` is label ``i % 20`` said by speaker ``(i // 20) % n_speakers``, so the speakers (whose
    difficulty varies widely) appear in equal shares only when ``n_words`` is a multiple of
    ``20 * n_speakers``; otherwise a test split and a shifted split differ in speakers as well as
    in the shifted parameter."""
    block = len(WORDS) * n_speakers
    if n_words <= 0 or n_words % block == 0:
        return None
    return (f"{n_words} words are not a multiple of {block} ({len(WORDS)} words x {n_speakers} speakers): "
            "the speakers do not say the words equally often, so accuracy differences between splits "
            "mix in speaker difficulty")


def generate(out: str | Path, n_train: int, n_test: int, seed: int = 0, workers: int = 2,
             n_train_speakers: int = DEFAULT_TRAIN_SPEAKERS, n_test_speakers: int = DEFAULT_TEST_SPEAKERS,
             force: bool = False, progress: bool = True, n_shifted: int = 0,
             params: GenParams = GenParams()) -> tuple[Path, Path]:
    """Build (or reuse) ``<out>/shd_train.h5`` and ``<out>/shd_test.h5`` and, with
    ``n_shifted > 0``, the shifted test splits ``<out>/shd_test_<name>.h5`` (:data:`SHIFTS`)."""
    from sw.data.shd import write_shd  # here, not at the top: spawned workers need no torch

    if n_train < 0 or n_test < 0 or n_shifted < 0:
        raise ValueError(f"n_train/n_test/n_shifted: must be >= 0, got {n_train}/{n_test}/{n_shifted}")
    if workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers}")
    params = params.validate()
    slowest = min([params.rate_range()[0]] + [shifted_params(params, k).rate_range()[0] for k in SHIFTS if n_shifted])
    tempo = n_train > 0 and max(params.tempo_shares()) > 0
    if (slowest < ESPEAK_MIN_RATE or tempo) and shutil.which("rubberband") is None:  # before minutes of work
        why = (f"words down to {slowest:g} words/min (below espeak-ng's {ESPEAK_MIN_RATE})"
               if slowest < ESPEAK_MIN_RATE else "the training words' tempo change (train_tempo)")
        raise RuntimeError(f"{why} need Rubber Band; install it with: apt-get install {RUBBERBAND_PACKAGE}")
    for name, n in (("n_test", n_test), ("n_shifted", n_shifted)):
        note = speaker_balance_note(n, n_test_speakers)
        if note:
            warnings.warn(f"{name}: {note}", stacklevel=2)
    out = Path(out)
    train_path, test_path = out / "shd_train.h5", out / "shd_test.h5"
    shifted = {name: shifted_path(out, name) for name in SHIFTS} if n_shifted else {}
    manifest_path = out / "manifest.json"
    man_params = _params(n_train, n_test, seed, n_train_speakers, n_test_speakers, n_shifted, params)
    files = [train_path, test_path, *shifted.values()]

    def cached() -> bool:
        if not (manifest_path.exists() and all(p.exists() for p in files)):
            return False
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(old, dict) and old.get("params") == man_params

    out.mkdir(parents=True, exist_ok=True)
    # One generator per folder at a time (sweep workers, parallel runs); a waiter then finds the new set.
    with FileLock(str(out / ".generate.lock")):
        if not force and cached():
            return train_path, test_path
        _generate_into(man_params, seed, n_train, n_test, n_shifted, n_train_speakers, n_test_speakers,
                       params, workers, progress, train_path, test_path, shifted, manifest_path, write_shd)
    return train_path, test_path


def _generate_into(man_params, seed, n_train, n_test, n_shifted, n_train_speakers, n_test_speakers,
                   params, workers, progress, train_path, test_path, shifted, manifest_path, write_shd) -> None:
    """Generate every split to temporary files, then replace the old files and write the manifest last,
    so a reader never sees a half-written set under a valid manifest, and an interrupted run loses nothing."""
    train_spk, test_spk = make_speakers(seed, n_train_speakers, n_test_speakers, params)
    all_spk = train_spk + test_spk
    cochlea.transfer_table(progress=progress)  # build the cache once, before the workers need it
    splits = [(0, train_path, n_train, train_spk, params), (1, test_path, n_test, test_spk, params)]
    splits += [(SHIFT_SPLIT_ID[name], path, n_shifted, test_spk, shifted_params(params, name))
               for name, path in shifted.items()]
    jobs = [(seed, sid, i, spk, prm) for sid, _, n, spk, prm in splits for i in range(n)]
    results: dict[tuple[int, int], tuple] = {}
    bar = tqdm(total=len(jobs), desc="offline SHD", unit="word", disable=not progress)
    own_root = _VOICE_DATA.get("root")
    # derived voices (train_vowel_length) in one folder that outlives no run: pool workers skip atexit
    with tempfile.TemporaryDirectory(prefix="spikeline-espeak-") as voice_root:
        try:
            if workers == 1:
                _worker_init(voice_root)
                for job in jobs:
                    results[(job[1], job[2])] = _worker(job)[1:]
                    bar.update()
            else:
                with mp.get_context("spawn").Pool(workers, initializer=_worker_init, initargs=(voice_root,)) as pool:
                    for job, res in zip(jobs, pool.imap(_worker, jobs, chunksize=2)):
                        results[(job[1], res[0])] = res[1:]
                        bar.update()
        finally:
            if own_root is None:
                _VOICE_DATA.pop("root", None)
            else:
                _VOICE_DATA["root"] = own_root
    bar.close()

    meta = {"gender": np.array([s.gender for s in all_spk])}
    tmp_of = {path: path.with_name(f".{path.name}.tmp-{os.getpid()}") for _, path, _, _, _ in splits}
    try:
        for sid, path, n, _, _ in splits:
            rows = [results[(sid, i)] for i in range(n)]
            write_shd(tmp_of[path], [r[0] for r in rows], [r[1] for r in rows],
                      np.array([r[2] for r in rows], dtype=np.int64),
                      np.array([r[3] for r in rows], dtype=np.int64), keys=KEYS, meta=meta)
        manifest_path.unlink(missing_ok=True)  # the old set is stale from here until the new manifest lands
        for path, tmp in tmp_of.items():
            os.replace(tmp, path)
    finally:
        for tmp in tmp_of.values():
            tmp.unlink(missing_ok=True)
    manifest = {"params": man_params, "keys": KEYS, "words": WORDS,
                "files": {"train": train_path.name, "test": test_path.name,
                          **{f"test_{k}": p.name for k, p in shifted.items()}},
                "speakers": {"train": [asdict(s) for s in train_spk], "test": [asdict(s) for s in test_spk]}}
    tmp = manifest_path.with_name(f".{manifest_path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    tmp.replace(manifest_path)


def ensure_default_dataset(root: str | Path = "data/offline_shd", n_train: int = DEFAULT_TRAIN,
                           n_test: int = DEFAULT_TEST, seed: int = 0, workers: int = 2,
                           n_shifted: int = DEFAULT_SHIFTED) -> tuple[Path, Path]:
    """Paths of the default offline data set (with its shifted test splits), generating it on first use.

    The default name ``data/offline_shd`` resolves under ``sw.paths.data_dir()``
    (``$SPIKELINE_CACHE/data``, the checkout's ``data/`` or the user cache)."""
    from sw.paths import resolve_data_root

    return generate(resolve_data_root(root), n_train, n_test, seed=seed, workers=workers, n_shifted=n_shifted)


def default_shifted_splits(root: str | Path = "data/offline_shd") -> dict[str, Path]:
    """``{name: path}`` of the default set's shifted test splits (generating the set if needed)."""
    from sw.paths import resolve_data_root

    ensure_default_dataset(root)
    return {name: shifted_path(resolve_data_root(root), name) for name in SHIFTS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m sw.data.generate",
        description="Generate an offline SHD-format data set (espeak-ng spoken digits, English labels 0-9 and "
                    "German labels 10-19, through the Lauscher cochlea model), with shifted test splits "
                    "(slow, fast, noisy speech). Re-running with the same parameters reuses the files.")
    ap.add_argument("--train", type=int, default=DEFAULT_TRAIN, help=f"training words (default {DEFAULT_TRAIN})")
    ap.add_argument("--test", type=int, default=DEFAULT_TEST, help=f"test words (default {DEFAULT_TEST})")
    ap.add_argument("--shifted", type=int, default=DEFAULT_SHIFTED,
                    help=f"words per shifted test split {list(SHIFTS)} (default {DEFAULT_SHIFTED}; 0 = none)")
    ap.add_argument("--out", default="data/offline_shd",
                    help="output folder (default data/offline_shd: the checkout's data/, or $SPIKELINE_CACHE/data or "
                         "the user cache for an installed spikeline)")
    ap.add_argument("--seed", type=int, default=0, help="fixes every random choice (default 0)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--train-speakers", type=int, default=DEFAULT_TRAIN_SPEAKERS,
                    help=f"speakers of the training split (default {DEFAULT_TRAIN_SPEAKERS})")
    ap.add_argument("--test-speakers", type=int, default=DEFAULT_TEST_SPEAKERS,
                    help=f"speakers of the test split, disjoint from training (default {DEFAULT_TEST_SPEAKERS})")
    ap.add_argument("--snr-db", type=float, nargs=2, metavar=("LO", "HI"),
                    help=f"background-noise SNR range of train/test in dB (default {GenParams.snr_db} for the test "
                         f"words; the training words' is --train-snr-db's, unless only --snr-db is given)")
    ap.add_argument("--no-noise", action="store_true", help="no background noise in train/test")
    ap.add_argument("--train-snr-db", type=float, nargs=2, metavar=("LO", "HI"),
                    help=f"background-noise SNR range of the training words in dB, when other than --snr-db's; "
                         f"above the noisy split's {SHIFTS['noisy']['snr_db'][1]:g} dB (default "
                         f"{GenParams.train_snr_db})")
    ap.add_argument("--train-tempo", type=float, nargs=2, metavar=("LO", "HI"),
                    help=f"tempo factors of the training words played faster or slower, drawn log-uniformly "
                         f"(default {GenParams.train_tempo})")
    ap.add_argument("--train-tempo-share", type=float, metavar="P",
                    help=f"share of the training words drawn a speeding tempo factor (> 1) that are sped up "
                         f"(default {GenParams.train_tempo_share}; 0 = none); --train-tempo-slow-share is the "
                         f"slowed ones'")
    ap.add_argument("--train-tempo-slow-share", type=float, metavar="P",
                    help=f"share of the training words drawn a slowing tempo factor (< 1) that are slowed; "
                         f"--train-tempo-share then applies to the sped-up ones only (default "
                         f"{GenParams.train_tempo_slow_share}; give it --train-tempo-share's value for one share)")
    ap.add_argument("--train-vowel-length", type=int, nargs=2, metavar=("LO", "HI"),
                    help=f"espeak-ng stressAdd units added to every training word's vowel lengths, a whole number "
                         f"drawn uniformly per word, within {list(VOWEL_ADD_RANGE)} (default {GenParams.train_vowel_length}; "
                         f"0 0 = the voices' own)")
    ap.add_argument("--train-vowel-tilt", type=float, metavar="UNITS",
                    help=f"stressAdd units by which --train-vowel-length's range moves towards longer vowels for the "
                         f"slowest training words and towards shorter ones for the fastest, linear in the rate "
                         f"(default {GenParams.train_vowel_tilt}: off)")
    ap.add_argument("--train-rate", type=float, nargs=2, metavar=("LO", "HI"),
                    help=f"rates (words/min) of the training words given one other than their speaker's, drawn "
                         f"uniformly; inside the speakers' rates (default {GenParams.train_rate})")
    ap.add_argument("--train-rate-share", type=float, metavar="P",
                    help=f"share of the training words spoken at a --train-rate rate (default {GenParams.train_rate_share}; "
                         f"0 = every word at its speaker's rate)")
    ap.add_argument("--plain-training", action="store_true",
                    help="training words spoken as drawn: no tempo, vowel-length or rate change, and the test "
                         "words' noise floor (the corpus before round 11; the flags above still apply)")
    ap.add_argument("--force", action="store_true", help="regenerate even if the files match")
    a = ap.parse_args(argv)
    params = GenParams().plain_training() if a.plain_training else GenParams()
    if a.no_noise:
        if a.train_snr_db:
            print("error: --no-noise and --train-snr-db contradict each other", file=sys.stderr)
            return 2
        params = replace(params, snr_db=None, train_snr_db=None)
    elif a.snr_db:  # train and test alike, unless --train-snr-db says otherwise
        params = replace(params, snr_db=tuple(a.snr_db), train_snr_db=None)
    if a.train_snr_db:
        params = replace(params, train_snr_db=tuple(a.train_snr_db))
    if a.train_tempo:
        params = replace(params, train_tempo=tuple(a.train_tempo))
    if a.train_tempo_share is not None:
        params = replace(params, train_tempo_share=a.train_tempo_share)
    if a.train_tempo_slow_share is not None:
        params = replace(params, train_tempo_slow_share=a.train_tempo_slow_share)
    if a.train_vowel_length:
        params = replace(params, train_vowel_length=tuple(a.train_vowel_length))
    if a.train_vowel_tilt is not None:
        params = replace(params, train_vowel_tilt=a.train_vowel_tilt)
    if a.train_rate:
        params = replace(params, train_rate=tuple(a.train_rate))
    if a.train_rate_share is not None:
        params = replace(params, train_rate_share=a.train_rate_share)
    from sw.paths import resolve_data_root

    out_dir = resolve_data_root(a.out)
    try:
        train, test = generate(out_dir, a.train, a.test, a.seed, a.workers, a.train_speakers, a.test_speakers,
                               a.force, n_shifted=a.shifted, params=params)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{train}\n{test}")
    for name in SHIFTS if a.shifted else ():
        print(shifted_path(out_dir, name))
    return 0


if __name__ == "__main__":
    from sw.errors import guarded  # exit codes 0/1/2/3 as in every spikeline command

    sys.exit(guarded(main, None, "generate"))
