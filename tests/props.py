"""Hypothesis profiles and the model/input strategies shared by the property tests.

Profiles (chosen by ``SPIKELINE_HYPOTHESIS``, loaded in conftest.py):

* ``deterministic`` (default, what ``make test`` and CI run): derandomized, no
  example database, so every machine explores the same examples.
* ``explore``: fresh random examples and the example database.

No property sets ``derandomize`` itself, so ``explore`` reaches every one.

HDL properties take :func:`hdl_settings`: one pysim example costs seconds, and
hypothesis may shrink a failure for up to 500 steps or 5 minutes. Under
``deterministic`` they skip the shrink and explain phases, so a failure is
reported at once with the (reproducible) example as drawn; under ``explore``
they shrink, bounded by ``SPIKELINE_HDL_SHRINK_S`` seconds of shrinking
(default 60). Structure (layer sizes, delays, weights, widths, inputs) comes
from strategies, not from a drawn seed, so a failing model shrinks to a small one.
"""
from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hw.model_file import DECAY_ONE, Layer, Model, Widths

PROFILE = "explore" if os.environ.get("SPIKELINE_HYPOTHESIS") == "explore" else "deterministic"
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(PROFILE)

_ALL_PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)
HDL_PHASES = _ALL_PHASES if PROFILE == "explore" else (Phase.explicit, Phase.reuse, Phase.generate)


def _bound_shrinking(seconds: float) -> None:
    """Cap hypothesis' shrink time (its own cap is 300 s) for slow HDL examples."""
    from hypothesis.internal.conjecture import engine
    engine.MAX_SHRINKING_SECONDS = min(engine.MAX_SHRINKING_SECONDS, seconds)


if PROFILE == "explore":
    _bound_shrinking(float(os.environ.get("SPIKELINE_HDL_SHRINK_S", "60")))


def hdl_settings(max_examples: int, **kw):
    """Settings of an HDL property: bounded example count, no deadline, profile phases."""
    return settings(max_examples=max_examples, deadline=None, phases=HDL_PHASES,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.filter_too_much, HealthCheck.data_too_large], **kw)


def ref_settings(max_examples: int, **kw):
    return settings(max_examples=max_examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large], **kw)


# ---------------------------------------------------------------- strategies
@st.composite
def widths(draw, narrow: bool | None = None):
    """The default widths, or narrow ones where membranes and readouts saturate.
    ``acc_bits >= weight_bits`` (a ring slot holds one weight) and the
    membrane is at least as wide as a weight."""
    if narrow is None:
        narrow = draw(st.booleans())
    if not narrow:
        return Widths()
    wb = draw(st.integers(2, 8))
    acc = draw(st.integers(wb + 1, 16))
    mb = draw(st.integers(wb + 1, 14))
    rb = draw(st.integers(mb, 18))
    return Widths(weight_bits=wb, membrane_bits=mb, acc_bits=acc, readout_bits=rb, max_delay=63)


def fit_accumulator(W: np.ndarray, acc_bits: int) -> np.ndarray:
    """Zero the taps of a column, last first, until its worst-case sum fits the
    loader rule ``sum |W| < 2^(acc_bits-1)`` (deterministic, so examples still shrink)."""
    W = W.copy()
    limit = (1 << (acc_bits - 1)) - 1
    K, n_in, n_out = W.shape
    for j in range(n_out):
        col = W[:, :, j].reshape(-1)  # view order k, i
        a = np.abs(col.astype(np.int64))
        if a.sum() > limit:
            keep = np.cumsum(a) <= limit
            col[~keep] = 0
            W[:, :, j] = col.reshape(K, n_in)
    return W


def _sparse(draw, shape, elements, wmax):
    """A random background at a drawn density (mostly positive weights, so that
    hidden layers fire) with explicitly drawn entries on top; shrinking goes
    towards the sparsest background and removes the drawn entries one by one."""
    density = draw(st.sampled_from([0.3, 0.7, 0.1, 0.0]))
    W = np.zeros(shape, dtype=np.int64)
    if density:
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        lo = draw(st.sampled_from([-(wmax // 4), -wmax - 1, 0]))
        W = rng.integers(lo, wmax + 1, shape) * (rng.random(shape) < density)
    extra = draw(arrays(np.int64, shape, elements=elements, fill=st.just(0)))
    return np.where(extra != 0, extra, W)


@st.composite
def models(draw, max_layers=3, max_width=48, max_delay=63, max_levels=4, extra_T=6, w=None,
           min_layers=1, delays=None, max_T=None):
    """A valid model: sizes up to ``max_width``, delays up to ``max_delay`` and
    ``T > D + 1`` (``D`` the largest delay), sparse weights from the full
    weight range, thresholds near the weight scale, any decay and reset."""
    wd = draw(widths() if w is None else w)
    n_layers = draw(st.integers(min_layers, max_layers))
    sizes = draw(st.lists(st.integers(1, max_width), min_size=n_layers + 1, max_size=n_layers + 1))
    wmax = (1 << (wd.weight_bits - 1)) - 1
    vmax = (1 << (wd.membrane_bits - 1)) - 1
    layers = []
    for l in range(n_layers):
        if delays is not None:
            d = np.array(delays, dtype=np.int64)
        else:
            d = np.array(sorted(draw(st.sets(st.integers(0, max_delay), min_size=1, max_size=max_levels))),
                         dtype=np.int64)
        shape = (len(d), sizes[l], sizes[l + 1])
        W = _sparse(draw, shape, st.integers(-wmax - 1, wmax), wmax)
        W = fit_accumulator(W, wd.acc_bits)
        spiking = l < n_layers - 1
        theta = draw(st.integers(1, min(vmax, 2 * wmax))) if spiking else draw(st.integers(1, vmax))
        layers.append(Layer(d, W.astype(np.int32), threshold=theta,
                            decay=draw(st.one_of(st.sampled_from([0, DECAY_ONE]), st.integers(0, DECAY_ONE))),
                            reset=draw(st.sampled_from(["zero", "subtract"])), spiking=spiking))
    D = max(L.max_delay for L in layers)
    T = draw(st.integers(D + 2, D + 2 + extra_T))
    if max_T is not None:
        T = min(T, max_T)
    return Model(layers, sizes[0], T, widths=wd)


@st.composite
def inputs(draw, model: Model, batch: int = 2):
    """Binary rasters ``[batch, T, n_inputs]``: sparse events over a random background density."""
    shape = (batch, model.T, model.n_inputs)
    p = draw(st.sampled_from([0.1, 0.3, 0.6, 0.0]))
    seed = draw(st.integers(0, 2**16))
    base = np.random.default_rng(seed).random(shape) < p  # background activity
    flips = draw(arrays(np.bool_, shape, elements=st.booleans(), fill=st.just(False)))
    return base ^ flips


@st.composite
def model_and_inputs(draw, batch=2, **kw):
    m = draw(models(**kw))
    return m, draw(inputs(m, batch))


def hidden_fired(model: Model, result) -> bool:
    """Some hidden layer emitted at least one spike (the example tests firing)."""
    return any(len(s.layers[l].emit_t) for s in result for l in range(len(model.layers) - 1))


__all__ = ["PROFILE", "HDL_PHASES", "hdl_settings", "ref_settings", "widths", "models", "inputs",
           "model_and_inputs", "fit_accumulator", "hidden_fired"]
