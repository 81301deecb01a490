"""On-the-fly training augmentation of binned spike rasters.

Every transform is a pure function of a raster ``x`` (bool ``[T, C]``, time bins
by channels) and, where it is random, a :class:`numpy.random.Generator`; none
changes its input.  :func:`augment_batch` draws one generator per
``(seed, epoch, sample index)`` (:func:`sample_rng`), so the augmented batch
depends on nothing else: not on the batch it lands in, the worker count or
whether training was interrupted and resumed (``--resume`` is bit-identical).

The transforms, applied in this order by :func:`augment_sample`:
- ``stretch``: time stretch by a factor ``f`` drawn log-uniformly from
  ``[lo, hi]`` (``f > 1`` = slower speech).  The raster is resampled in time about
  its first bin: output bin ``t`` takes input bin ``floor((t + 0.5) / f)`` (empty past
  the end).  This keeps the spikes per bin, as the cochlea does when a word is
  spoken faster or slower (its firing rate follows loudness, not rate); ``f < 1``
  drops bins, ``f > 1`` repeats them, and the jitter below breaks repeats up.
- ``shift``: move all channels by an integer in ``[-shift, shift]`` (zero fill), a
  cochlear frequency shift like a different vocal tract.
- ``jitter``: move each event by an integer number of bins in ``[-jitter, jitter]``;
  events pushed outside ``[0, T)`` are lost, coinciding ones merge (a raster holds
  at most one event per bin and channel).
- ``dropout``: delete each event independently with probability ``dropout``.
- ``gain``: delete each event independently with probability ``1 - g``, ``g`` drawn
  uniformly from ``[lo, hi]`` once per sample: a global change of spike density, as
  a quieter speaker (or another speaking style) gives, independent of the stretch.

The stretch has two forms (``augment_stretch_rate``):
- ``null`` (the default): the bin resampling above.  In the bool raster it keeps the
  events per bin, so a word compressed by ``f`` keeps about ``f`` of its events.
- a number ``r`` in ``[0, 1]``: event resampling.  Each event at bin ``t`` lands at
  ``floor((t + u) * f)``, ``u`` uniform in ``[0, 1)`` and drawn per event, so it stays
  inside the stretched image of its bin but at a random place, and the expected number
  of copies per event is ``f ** (1 - r)`` (``floor`` of it always, one more with the
  fractional part as probability).  ``r = 0`` keeps the source's spikes per second
  (``f`` copies: thinning when faster, Bernoulli copies when slower); ``r = 1`` keeps
  the spike count (every event once, so faster words get denser and slower words
  sparser); values between interpolate the exponent.  Copies landing in the same bin
  and channel merge (a raster holds one event per cell): at ``f = 2, r = 0`` two copies
  in a two-bin window coincide half of the time, so the output holds about 0.75 of the
  source's events per bin, not 1.  Unlike bin resampling it never copies whole bins,
  so repeated bins do not create runs of identical columns.

``augment_stretch_target`` ``[a, b]`` (``null`` = off) draws a word length instead of a
factor: the factor brings the word (bins up to its last event) to a length drawn
log-uniformly from ``[a, b]`` bins, clipped to ``augment_stretch``.  The stretched
lengths then no longer depend on the class (a log-uniform factor keeps each class's
length ranking: short words stay the shortest), so the length of a word says less
about which word it is, as with speakers whose rate varies.

``augment_stretch_quiet`` ``q`` (``null`` = off) stretches the quiet bins (at most
:data:`QUIET_FRACTION` of the events of the word's busiest bin: silence, the noise
floor, weak consonants) by ``f ** q`` instead of ``f``: in the generator's fast
speech the words' voiced part shrinks to about 0.48x of the test split's, the
quiet lead-in only to about 0.72x (``docs/results.md`` section 4, round 4).

``augment_warp`` ``sigma`` (0 = off) makes the stretch non-uniform, as speech changes
rate unevenly (vowels stretch more than stops): the input is cut into segments of
:data:`WARP_BINS` bins and segment ``k`` is stretched by ``f * exp(sigma * z_k)``, ``z_k``
standard normal, ``f`` the global factor above (1 if ``augment_stretch`` is off).  The
segments are laid end to end from bin 0, and both stretch forms apply per bin
(:func:`time_warp`, :func:`event_warp`).

``augment_loud`` ``[lo, hi]`` (``null`` = off) changes the word's rhythm, not its length, as
speaking faster or slower does: faster speech shortens the vowels much more than the
consonants (espeak-ng stretches its recorded consonant sounds by a reduced factor above
170 words/min; human speakers do the same).  Inside the word's span (:func:`loud_widths`:
its first to its last bin above :data:`QUIET_FRACTION` of the busiest bin, on the
envelope smoothed over :data:`LOUD_SMOOTH` bins) the loud bins (above
:data:`LOUD_FRACTION` of the busiest) are resampled by a factor ``g`` drawn log-uniformly
from ``[lo, hi]`` and the other bins by the factor that keeps the span's length, clipped
to ``[1 / LOUD_MAX, LOUD_MAX]``; bins outside the span keep theirs (:func:`time_warp`).
``g < 1`` is the rhythm of faster speech, ``g > 1`` of slower.  It acts on the raster
after the word-duration normalization (``sw.data.time_norm``), which removes any
uniform stretch but keeps this one.  Measured on the version-3 corpus (normalized
rasters): the loud bins' share of the span is 0.60 on the slow split, 0.47 on the test
split and 0.37 on the fast split; ``g = 0.8`` takes a test word's 0.47 to 0.38.  Screened in
round 10 (``docs/results.md`` section 4): ``[0.6, 1.25]`` gains 4.8 points on the fast split
and loses 1.8 on the test split over 3 seeds (loudness is a poor vowel detector at 10 ms), so
it is off by default.

Config (``train`` section): ``augment_shift`` (channels, 0 = off),
``augment_stretch`` (``[lo, hi]``, ``[1, 1]`` = off), ``augment_stretch_rate``,
``augment_stretch_target``, ``augment_stretch_quiet``, ``augment_warp`` and ``augment_loud``
(above; ``null`` / ``null`` / ``null`` / 0 / ``null`` = off), ``augment_gain`` (``[lo, hi]`` with
``0 < lo <= hi <= 1``, ``[1, 1]`` = off), ``augment_jitter`` (bins, 0 =
off), ``augment_dropout`` (probability, 0 = off), ``augment_fraction`` (the
share of training samples that are augmented at all, 1 = every sample; the
others pass through unchanged, so the network also sees the corpus as
recorded).  The choice is drawn per ``(seed, epoch, sample index)`` from its own
generator (:func:`gate_rng`), so a fraction below 1 leaves the transforms'
draws of the augmented samples unchanged.  ``--augment NAMES`` keeps only the
named transforms (``none`` / ``all``; the rate, length target, quiet exponent,
warp and loud-bin warp belong to ``stretch``).  With every option above at its off value the draws,
and so the trained bits, are those from before the options existed.

:func:`consistency_batch` makes the rate-consistency loss's second copy of a batch
(``train.consistency_weight``, ``sw.trainer.consistency_loss``): :func:`time_stretch` once
more, by a factor from its own generator per ``(seed, epoch, sample index)``
(:func:`consistency_rng`), so it leaves the draws above, and ``--resume``, as they are.

The default uses the bin stretch, shift, jitter and dropout.  The other options
were screened on the shifted splits (``docs/results.md`` section 4, round 4): none
beats the default beyond noise, and the event stretch at ``r = 1`` is clearly worse.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NAMES = ("stretch", "shift", "jitter", "dropout", "gain")
FIELDS = {"stretch": "augment_stretch", "shift": "augment_shift", "jitter": "augment_jitter",
          "dropout": "augment_dropout", "gain": "augment_gain"}
OFF = {"augment_stretch": [1.0, 1.0], "augment_shift": 0, "augment_jitter": 0, "augment_dropout": 0.0,
       "augment_gain": [1.0, 1.0]}


class AugmentError(ValueError):
    """A bad augmentation field; ``field`` names it."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


# ---------------------------------------------------------------- transforms
def time_stretch(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` resampled in time by ``factor`` (> 1 slower, < 1 faster), same shape."""
    if not factor > 0:
        raise ValueError(f"time_stretch: factor must be positive, got {factor!r}")
    T = x.shape[0]
    src = np.floor((np.arange(T) + 0.5) / factor).astype(np.int64)
    out = np.zeros_like(x)
    ok = src < T
    out[ok] = x[src[ok]]
    return out


def event_stretch(x: np.ndarray, factor: float, rate: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` stretched in time by ``factor`` event by event (module docstring, ``augment_stretch_rate``):
    ``factor ** (1 - rate)`` copies per event on average, each at ``floor((t + u) * factor)``; same shape."""
    if not factor > 0:
        raise ValueError(f"event_stretch: factor must be positive, got {factor!r}")
    T = x.shape[0]
    return _event_place(x, np.arange(T) * float(factor), np.full(T, float(factor)), rate, rng)


def _event_place(x: np.ndarray, start: np.ndarray, width: np.ndarray, rate: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Input bin ``t`` maps to the output interval ``[start[t], start[t] + width[t])``; each event gets
    ``width[t] ** (1 - rate)`` copies on average at uniform places in it (merged per cell, lost past the end)."""
    if not 0 <= rate <= 1:
        raise ValueError(f"event_stretch: rate must be in [0, 1], got {rate!r}")
    t, c = np.nonzero(x)
    m = width[t] ** (1.0 - rate)
    whole = np.floor(m).astype(np.int64)
    k = whole + (rng.random(t.size) < m - whole)
    src = np.repeat(np.arange(t.size), k)
    t2 = np.floor(start[t[src]] + rng.random(src.size) * width[t[src]]).astype(np.int64)
    ok = t2 < x.shape[0]
    out = np.zeros_like(x)
    out[t2[ok], c[src[ok]]] = True
    return out


WARP_BINS = 10  # input bins per segment of the non-uniform warp (100 ms at the default dt): about a phoneme


def warp_widths(T: int, factor: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Per-input-bin stretch factors of a non-uniform time warp: ``factor * exp(sigma * z_k)`` over
    segments of :data:`WARP_BINS` bins, ``z_k`` standard normal per segment (``augment_warp``)."""
    z = rng.standard_normal(-(-int(T) // WARP_BINS))
    return float(factor) * np.exp(float(sigma) * np.repeat(z, WARP_BINS)[:T])


QUIET_FRACTION = 0.15  # a bin is quiet when it holds at most this share of the word's busiest bin's events


def quiet_bins(x: np.ndarray) -> np.ndarray:
    """bool ``[T]``: bins with at most :data:`QUIET_FRACTION` of the events of the busiest bin (silence, the
    noise floor, weak consonants), the bins ``augment_stretch_quiet`` stretches less."""
    n = x.sum(axis=1)
    return n <= QUIET_FRACTION * n.max()


LOUD_FRACTION = 0.5  # a bin is loud (the vowels) when its envelope exceeds this share of the busiest bin's
LOUD_SMOOTH = 3  # bins of the box that smooths the per-bin event counts before the loud/quiet decision
LOUD_MAX = 3.0  # the other bins' factor is clipped to [1 / LOUD_MAX, LOUD_MAX] (a span nearly all loud)


def loud_widths(x: np.ndarray, g: float) -> np.ndarray:
    """Per-input-bin factors of the loud-bin warp (``augment_loud``): ``g`` for the loud bins inside the
    word's span, for the span's other bins the factor that keeps the span's length (clipped to
    ``[1 / LOUD_MAX, LOUD_MAX]``), 1 outside the span and for a raster without events."""
    T = x.shape[0]
    w = np.ones(T)
    n = x.sum(axis=1).astype(np.float64)
    env = np.convolve(n, np.ones(LOUD_SMOOTH) / LOUD_SMOOTH, mode="same")
    if not env.max() > 0:
        return w
    on = np.flatnonzero(env > QUIET_FRACTION * env.max())
    a, b = int(on[0]), int(on[-1]) + 1
    loud = env[a:b] > LOUD_FRACTION * env.max()
    n_loud, n_span = int(loud.sum()), b - a
    if n_loud == n_span:  # nothing to trade against: leave the word as it is
        return w
    h = float(np.clip((n_span - g * n_loud) / (n_span - n_loud), 1.0 / LOUD_MAX, LOUD_MAX))
    w[a:b] = np.where(loud, float(g), h)
    return w


def time_warp(x: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Bin resampling by per-input-bin factors: input bin ``j`` covers output ``[s_j, s_j + widths[j])``,
    ``s`` their running sum from 0; output bin ``t`` takes the input bin covering ``t + 0.5`` (empty past the
    end).  With one factor everywhere this is :func:`time_stretch`."""
    T = x.shape[0]
    edges = np.concatenate([[0.0], np.cumsum(widths)])
    src = np.searchsorted(edges, np.arange(T) + 0.5, side="right") - 1
    out = np.zeros_like(x)
    ok = src < T
    out[ok] = x[src[ok]]
    return out


def event_warp(x: np.ndarray, widths: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """:func:`event_stretch` with per-input-bin factors (the intervals of :func:`time_warp`)."""
    return _event_place(x, np.concatenate([[0.0], np.cumsum(widths)[:-1]]), np.asarray(widths, float), rate, rng)


def channel_shift(x: np.ndarray, shift: int) -> np.ndarray:
    """Channels moved by ``shift`` (``out[:, c] = x[:, c - shift]``), zero fill."""
    out = np.zeros_like(x)
    C, s = x.shape[1], int(shift)
    if s >= C or s <= -C:
        return out
    if s >= 0:
        out[:, s:] = x[:, :C - s]
    else:
        out[:, :C + s] = x[:, -s:]
    return out


def time_jitter(x: np.ndarray, max_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Each event moved by a uniform integer in ``[-max_steps, max_steps]`` bins."""
    t, c = np.nonzero(x)
    d = rng.integers(-max_steps, max_steps + 1, size=t.size)
    t2 = t + d
    ok = (t2 >= 0) & (t2 < x.shape[0])
    out = np.zeros_like(x)
    out[t2[ok], c[ok]] = True
    return out


def event_dropout(x: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Each event kept with probability ``1 - p``."""
    t, c = np.nonzero(x)
    keep = rng.random(t.size) >= p
    out = np.zeros_like(x)
    out[t[keep], c[keep]] = True
    return out


# ---------------------------------------------------------------- configuration
@dataclass(frozen=True)
class Augment:
    stretch: tuple[float, float] = (1.0, 1.0)
    shift: int = 0
    jitter: int = 0
    dropout: float = 0.0
    fraction: float = 1.0
    stretch_rate: float | None = None  # None: bin resampling; r in [0, 1]: event resampling
    gain: tuple[float, float] = (1.0, 1.0)
    warp: float = 0.0  # sigma of the log of the local stretch factor per WARP_BINS segment; 0 = uniform
    stretch_target: tuple[float, float] | None = None  # None: factor log-uniform in stretch; [a, b]: length target
    quiet: float | None = None  # None: quiet bins stretch like the rest; q in [0, 1]: by f ** q
    loud: tuple[float, float] | None = None  # None: off; [lo, hi]: the loud bins' factor, log-uniform

    @property
    def active(self) -> bool:
        return self.fraction > 0 and (self.stretch != (1.0, 1.0) or self.warp > 0 or self.loud is not None
                                      or self.shift > 0
                                      or self.jitter > 0 or self.dropout > 0 or self.gain != (1.0, 1.0))

    @classmethod
    def from_train_config(cls, tc: dict) -> "Augment":
        """From the ``train`` config section; :class:`AugmentError` names a bad field."""
        st = tc.get("augment_stretch", [1.0, 1.0])
        if not (isinstance(st, (list, tuple)) and len(st) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in st)
                and 0 < st[0] <= st[1]):
            raise AugmentError("train.augment_stretch", f"must be [lo, hi] with 0 < lo <= hi, got {st!r}")
        for name in ("augment_shift", "augment_jitter"):
            v = tc.get(name, 0)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise AugmentError(f"train.{name}", f"must be an int >= 0, got {v!r}")
        p = tc.get("augment_dropout", 0.0)
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p < 1:
            raise AugmentError("train.augment_dropout", f"must be in [0, 1), got {p!r}")
        fr = tc.get("augment_fraction", 1.0)
        if not isinstance(fr, (int, float)) or isinstance(fr, bool) or not 0 <= fr <= 1:
            raise AugmentError("train.augment_fraction", f"must be in [0, 1], got {fr!r}")
        r = tc.get("augment_stretch_rate")
        if r is not None and (not isinstance(r, (int, float)) or isinstance(r, bool) or not 0 <= r <= 1):
            raise AugmentError("train.augment_stretch_rate", f"must be null (bin resampling) or in [0, 1], got {r!r}")
        g = tc.get("augment_gain", [1.0, 1.0])
        if not (isinstance(g, (list, tuple)) and len(g) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in g)
                and 0 < g[0] <= g[1] <= 1):
            raise AugmentError("train.augment_gain", f"must be [lo, hi] with 0 < lo <= hi <= 1, got {g!r}")
        w = tc.get("augment_warp", 0.0)
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not 0 <= w <= 2:
            raise AugmentError("train.augment_warp", f"must be in [0, 2] (0 = a uniform stretch), got {w!r}")
        tg = tc.get("augment_stretch_target")
        if tg is not None and not (isinstance(tg, (list, tuple)) and len(tg) == 2
                                   and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in tg)
                                   and 0 < tg[0] <= tg[1]):
            raise AugmentError("train.augment_stretch_target",
                               f"must be null or [lo, hi] word lengths in bins with 0 < lo <= hi, got {tg!r}")
        q = tc.get("augment_stretch_quiet")
        if q is not None and (not isinstance(q, (int, float)) or isinstance(q, bool) or not 0 <= q <= 1):
            raise AugmentError("train.augment_stretch_quiet", f"must be null (off) or in [0, 1], got {q!r}")
        ld = tc.get("augment_loud")
        if ld is not None and not (isinstance(ld, (list, tuple)) and len(ld) == 2
                                   and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ld)
                                   and 0 < ld[0] <= ld[1] <= LOUD_MAX):
            raise AugmentError("train.augment_loud",
                               f"must be null (off) or [lo, hi] with 0 < lo <= hi <= {LOUD_MAX:g}, got {ld!r}")
        return cls((float(st[0]), float(st[1])), int(tc.get("augment_shift", 0)), int(tc.get("augment_jitter", 0)),
                   float(p), float(fr), None if r is None else float(r), (float(g[0]), float(g[1])), float(w),
                   None if tg is None else (float(tg[0]), float(tg[1])), None if q is None else float(q),
                   None if ld is None else (float(ld[0]), float(ld[1])))


def keep_only(tc: dict, names: str) -> dict:
    """The ``train`` section with every augmentation not in the comma list ``names``
    switched off (``all`` keeps all, ``none`` none); ``--augment`` uses it."""
    want = {n.strip() for n in names.split(",") if n.strip()}
    if want == {"all"}:
        want = set(NAMES)
    elif want == {"none"}:
        want = set()
    bad = want - set(NAMES)
    if bad or not names.strip():
        raise AugmentError("--augment", f"expected 'all', 'none' or a comma list of {', '.join(NAMES)}; "
                                        f"got {names!r}")
    out = dict(tc)
    for n in NAMES:
        if n not in want:
            out[FIELDS[n]] = OFF[FIELDS[n]]
    if "stretch" not in want:  # the warp and the length target are part of the stretch
        for k, v in (("augment_warp", 0.0), ("augment_stretch_target", None), ("augment_stretch_quiet", None),
                     ("augment_loud", None)):
            if k in out:
                out[k] = v
    return out


# ---------------------------------------------------------------- sampling
def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of training sample ``index`` in ``epoch``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index), 0xA06]))


def gate_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator that decides whether sample ``index`` is augmented in ``epoch`` (``augment_fraction``)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index), 0xA07]))


def consistency_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of sample ``index``'s extra stretch in ``epoch`` for the rate-consistency loss
    (``train.consistency_weight``); its own stream, so the augmentation draws above are unchanged."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index), 0xA08]))


def consistency_batch(X: np.ndarray, indices, epoch: int, seed: int, stretch: tuple[float, float]) -> np.ndarray:
    """The rate-consistency loss's second copy of a batch: ``X[i]`` (already augmented or not) stretched
    again by :func:`time_stretch` with a factor drawn log-uniformly from ``stretch`` = ``[lo, hi]`` by
    :func:`consistency_rng` of ``(seed, epoch, indices[i])``; bool ``[B, T, C]``."""
    lo, hi = float(stretch[0]), float(stretch[1])
    X = np.asarray(X, dtype=bool)
    out = [time_stretch(x, float(np.exp(consistency_rng(seed, epoch, int(i)).uniform(np.log(lo), np.log(hi)))))
           for x, i in zip(X, indices)]
    return np.stack(out) if out else X.copy()


def is_augmented(aug: Augment, seed: int, epoch: int, index: int) -> bool:
    """Whether sample ``index`` goes through the transforms in ``epoch``: with probability ``aug.fraction``."""
    if aug.fraction >= 1.0:
        return True
    return bool(gate_rng(seed, epoch, index).random() < aug.fraction)


def word_length(x: np.ndarray) -> int:
    """Bins from the start to the last bin with an event (0 for an empty raster)."""
    active = np.flatnonzero(x.any(axis=1))
    return int(active[-1]) + 1 if active.size else 0


def stretch_factor(x: np.ndarray, aug: Augment, rng: np.random.Generator) -> float:
    """The global stretch factor of one sample (one draw): log-uniform in ``aug.stretch``; with
    ``aug.stretch_target`` ``[a, b]`` the factor that brings the word to a length drawn log-uniformly
    from ``[a, b]`` bins, clipped to ``aug.stretch`` (1 for an empty raster)."""
    lo, hi = aug.stretch
    if lo == 1.0 and hi == 1.0 and aug.stretch_target is None:
        return 1.0
    if aug.stretch_target is None:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    target = float(np.exp(rng.uniform(np.log(aug.stretch_target[0]), np.log(aug.stretch_target[1]))))
    n = word_length(x)
    return float(np.clip(target / n, lo, hi)) if n else 1.0


def augment_sample(x: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """One raster through the enabled transforms (fixed order and draw order)."""
    lo, hi = aug.stretch
    if lo != 1.0 or hi != 1.0 or aug.warp > 0:
        f = stretch_factor(x, aug, rng)
        if aug.warp > 0 or aug.quiet is not None:  # then a local factor per segment and/or per quiet bin
            w = warp_widths(x.shape[0], f, aug.warp, rng) if aug.warp > 0 else np.full(x.shape[0], f)
            if aug.quiet is not None:
                w = np.where(quiet_bins(x), w * f ** (aug.quiet - 1.0), w)
            x = time_warp(x, w) if aug.stretch_rate is None else event_warp(x, w, aug.stretch_rate, rng)
        else:
            x = time_stretch(x, f) if aug.stretch_rate is None else event_stretch(x, f, aug.stretch_rate, rng)
    if aug.loud is not None:  # after the stretch: a change of rhythm at the word's (new) length
        g = float(np.exp(rng.uniform(np.log(aug.loud[0]), np.log(aug.loud[1]))))
        x = time_warp(x, loud_widths(x, g))
    if aug.shift:
        x = channel_shift(x, int(rng.integers(-aug.shift, aug.shift + 1)))
    if aug.jitter:
        x = time_jitter(x, aug.jitter, rng)
    if aug.dropout:
        x = event_dropout(x, aug.dropout, rng)
    if aug.gain != (1.0, 1.0):  # drawn last: the draws above do not depend on whether it is on
        x = event_dropout(x, 1.0 - float(rng.uniform(*aug.gain)), rng)
    return x


def augment_batch(X: np.ndarray, indices, epoch: int, seed: int, aug: Augment) -> np.ndarray:
    """``X[i]`` augmented with the generator of ``(seed, epoch, indices[i])`` (or passed through
    unchanged, see :func:`is_augmented`); bool ``[B, T, C]``."""
    X = np.asarray(X, dtype=bool)
    return np.stack([augment_sample(x, aug, sample_rng(seed, epoch, int(i)))
                     if is_augmented(aug, seed, epoch, int(i)) else x.copy() for x, i in zip(X, indices)]) \
        if len(X) else X.copy()
