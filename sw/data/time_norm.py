"""Word-duration normalization of the input: a deterministic front-end before binning.

Each word's active span ``[onset, offset]`` is estimated from its events, then the
event times are rescaled linearly, in continuous time and before binning, so that
``[onset, offset]`` maps onto ``[start, start + span]`` inside the window of
``T * dt`` seconds:

    t' = start + (t - onset) * k,    k = span / (offset - onset)

``k`` is clipped to ``[1 / max_factor, max_factor]``; in ``fit`` mode ``k = min(k, 1)``
(only words longer than ``span`` are compressed; shorter ones keep their rate and are
only moved so that their onset lies at ``start``). Events mapped before 0 are dropped,
events at or after ``T * dt`` are dropped by :func:`sw.data.shd.bin_events` as always.
Because the rescaling acts on event times, there are no raster resampling artefacts
(no repeated or dropped bins): a word spoken twice as slowly gives, up to the binning
and the spike statistics, the same raster.

**The span estimator** (:func:`word_span`) must not be fooled by the lead and trail
silences the generator adds, by their noise floor, or by the noisy split's background
events. It histograms the events at :data:`RESOLUTION` (1 ms), smooths the histogram
with a box of ``smooth`` seconds (the activity envelope), and keeps the envelope's
excess over a level: the floor (the :data:`FLOOR_QUANTILE` quantile of the envelope
over the clip, the background when the clip holds silence) plus
:data:`LEVEL_FRACTION` of the way from the floor to the peak, so that the floor's
own fluctuations do not count. It returns the ``quantile`` and ``1 - quantile``
points of that excess mass. Uniform background activity adds to every bin alike
and is removed with the floor; a stray burst outside the word carries little mass
and moves the quantiles little. A word without events, or whose envelope never
rises above its floor, is left unchanged.

**Cost: it is not causal.** The whole word must be recorded before its span is known,
so inference can only start after the word has ended: the front-end adds the word's
length (plus its trailing silence) to the latency. That is legitimate for
isolated-word classification (the task here), not for streaming keyword spotting. The
hardware is unchanged: it receives a binary raster either way.

**Training with it.** The raster stretch of :mod:`sw.data.augment` acts after binning, so
it would undo the normalization; stretching before it is a no-op (a uniformly stretched
word maps back). Round 7 (``docs/results.md`` section 4) trains with
``train.augment_stretch`` ``[1, 1]`` (off); the defaults of :data:`TIME_NORM_DEFAULTS` are
its best screened setting.

The parameters are a model-file field (``hw.model_file``: ``time_norm``, validated
there, written once) and the data config's ``data.time_norm`` (``null`` = off; the
default config turns it on with :data:`TIME_NORM_DEFAULTS`). A model trained with it carries the setting, so ``sw.evaluate`` and
``cosim/run.py`` bin identically without repeating it. Off, nothing changes: the
rasters are bit-identical to the plain :func:`sw.data.shd.bin_events`.
"""
from __future__ import annotations

import numpy as np

from hw.model_file import TIME_NORM_DEFAULTS, TIME_NORM_MODES, check_time_norm  # noqa: F401 (re-exported)

RESOLUTION = 0.001  # seconds per envelope bin
FLOOR_QUANTILE = 0.2  # the envelope quantile taken as the background level
LEVEL_FRACTION = 0.05  # activity counts from floor + this fraction of (peak - floor): above the floor's fluctuations


def word_span(times, smooth: float = TIME_NORM_DEFAULTS["smooth"],
              quantile: float = TIME_NORM_DEFAULTS["quantile"]) -> tuple[float, float] | None:
    """``(onset, offset)`` in seconds of the word in event times ``times``, or ``None``
    when there is nothing to estimate (no events, or a flat envelope)."""
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if t.size == 0:
        return None
    n = int(np.floor(t.max() / RESOLUTION)) + 1
    hist = np.bincount(np.floor(t / RESOLUTION).astype(np.int64), minlength=n).astype(np.float64)
    w = max(1, int(round(smooth / RESOLUTION)))
    env = np.convolve(hist, np.ones(w) / w, mode="same") if w > 1 else hist
    floor = np.quantile(env, FLOOR_QUANTILE)
    excess = np.maximum(env - (floor + LEVEL_FRACTION * (env.max() - floor)), 0.0)
    total = excess.sum()
    if not total > 0:
        return None
    cum = np.cumsum(excess) / total
    lo = int(np.searchsorted(cum, quantile, side="left"))
    hi = int(np.searchsorted(cum, 1.0 - quantile, side="left"))
    return lo * RESOLUTION, (hi + 1) * RESOLUTION  # bin lo's start to bin hi's end


def scale_factor(onset: float, offset: float, tn: dict) -> float:
    """The factor ``k`` of :func:`normalize_times` for a word spanning ``[onset, offset]``."""
    k = tn["span"] / max(offset - onset, RESOLUTION)
    k = min(max(k, 1.0 / tn["max_factor"]), tn["max_factor"])
    return min(k, 1.0) if tn["mode"] == "fit" else k


def normalize_times(times, units, tn: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """``(times', units')`` of one word with its span mapped onto ``[start, start + span]``
    (``tn`` checked by :func:`check_time_norm`; ``None`` returns the input unchanged)."""
    if tn is None:
        return times, units
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    u = np.asarray(units).reshape(-1)
    span = word_span(t, tn["smooth"], tn["quantile"])
    if span is None:
        return t, u
    k = scale_factor(*span, tn)
    t2 = tn["start"] + (t - span[0]) * k
    keep = t2 >= 0
    return t2[keep], u[keep]
