"""A fast, faithful re-implementation of the Lauscher cochlea chain (lauscher==1.0.1).

Lauscher's ``Wave2Spike`` runs::

    RmsNormalizer(0.3) -> HanningWindow -> BasilarMembrane(700) -> HairCell -> BushyCell

This module computes the same chain with the same constants:

* **Basilar membrane.** Lauscher multiplies the first ``M = N//2 + 1`` FFT bins of
  the clip by a per-channel transfer function ``_v(omega, c)`` evaluated on
  ``omega = 2*pi*linspace(1, fs/2, M)``, then takes ``real(ifft(.))`` of length
  ``M`` and treats the result as sampled at ``fs/2`` (24 kHz).  We evaluate
  ``_v`` once, with lauscher's own method, on a fixed fine grid of the same
  frequency span, cache magnitude and unwrapped phase on disk, and interpolate
  both to each clip's grid (relative error < 0.2 % on the lowest channels).
* **Hair cell** (Meddis 1986/88) and **bushy cell** (40 fibres with a 1 ms dead
  time converging on an LIF) are compiled with numba and run in parallel over
  channels.  The 40 fibres are simulated as ``Binomial(non-refractory fibres, p)``
  per step, which has the same distribution as lauscher's 40 independent
  Bernoulli draws with dead-time correction, and the LIF sees only their sum
  (lauscher's per-fibre currents share one time constant, so only the sum counts).
* Every channel has its own random stream seeded from ``(seed, channel)``, so the
  spikes are identical for any number of threads.

Public API: :func:`audio_to_spikes`; the stages :func:`prepare`, :func:`basilar_membrane`,
:func:`hair_cell`, :func:`bushy_cell` (for validation); :func:`transfer_table`.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from fractions import Fraction
from pathlib import Path

import numba
import numpy as np
import scipy.fft
import scipy.signal

N_CHANNELS = 700
SAMPLE_RATE = 48000  # lauscher's expected input rate
BM_RATE = SAMPLE_RATE // 2  # lauscher's membrane signal is labelled fs // 2
GRID = 16385  # fine frequency grid of the cached transfer table
CHUNK = 100  # channels per FFT batch; bounds memory at ~30 MB per 0.8 s clip

# Lauscher 1.0.1 defaults (HairCell(), BushyCell()); used by the compiled kernels.
HAIR = dict(y=5.05, g=2000.0, l=2500.0, r=6580.0, x=66.3, a=5.0, b=300.0, h=50000.0, m=1.0)
BUSHY = dict(n_convergence=40, tau_mem=1e-3, tau_syn=5e-4, tau_refrac=1e-3, weight=13e3)


def cache_dir() -> Path:
    """Where the transfer table lives: ``$SPIKELINE_CACHE`` or ``~/.cache/spikeline``."""
    return Path(os.environ.get("SPIKELINE_CACHE", Path.home() / ".cache" / "spikeline"))


def _table_key() -> str:
    import lauscher  # noqa: F401  (version pinned in pyproject)
    from importlib.metadata import version

    spec = {"lauscher": version("lauscher"), "channels": N_CHANNELS, "grid": GRID, "fs": SAMPLE_RATE}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _compute_table(progress: bool = True) -> np.ndarray:
    from lauscher.transformations.basilar_membrane import BasilarMembrane
    from tqdm import tqdm

    bm = BasilarMembrane(channels=N_CHANNELS)
    omega = 2 * np.pi * np.linspace(1, BM_RATE, GRID)
    table = np.empty((2, N_CHANNELS, GRID), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lauscher's formula overflows harmlessly at a few bins
        for i, c in enumerate(tqdm(bm.ch, desc="basilar-membrane table", disable=not progress)):
            h = bm._v(omega, c)
            h = np.where(np.isfinite(h), h, 0)
            table[0, i] = np.abs(h)
            table[1, i] = np.unwrap(np.angle(h))
    return table


_TABLE: np.ndarray | None = None


def transfer_table(progress: bool = True) -> np.ndarray:
    """``float32 [2, 700, GRID]``: |H| and unwrapped phase of lauscher's BM transfer
    function on ``2*pi*linspace(1, 24000, GRID)``.  Computed once (~15 s), then
    memory-mapped from the cache."""
    global _TABLE
    if _TABLE is None:
        path = cache_dir() / f"lauscher_bm_{_table_key()}.npy"
        table = None
        if path.exists():
            try:
                table = np.load(path, mmap_mode="r")
            except (OSError, ValueError):
                table = None  # damaged cache: rebuild below
            if table is not None and (table.shape != (2, N_CHANNELS, GRID) or table.dtype != np.float32):
                table = None
        if table is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, _compute_table(progress))
            os.replace(tmp, path)  # atomic: concurrent builders never see half a file
            table = np.load(path, mmap_mode="r")
        _TABLE = table
    return _TABLE


@numba.njit(parallel=True, cache=True)
def _bm_half_spectra(mag, ph, c0, idx, w, spec, out):
    """Lauscher takes real(ifft(Z)) with Z = H*X of length M.  That equals
    irfft(Y, M) with Y[k] = (Z[k] + conj(Z[-k mod M])) / 2, at half the FFT cost.
    H is interpolated in float32 (the table's precision; 2x faster sin/cos)."""
    n = spec.shape[0]
    one = np.float32(1.0)
    for r in numba.prange(out.shape[0]):
        c = c0 + r
        z = np.empty(n, np.complex128)
        for k in range(n):
            i = idx[k]
            a = np.float32(w[k])
            m = mag[c, i] * (one - a) + mag[c, i + 1] * a
            p = ph[c, i] * (one - a) + ph[c, i + 1] * a
            z[k] = m * complex(np.cos(p), np.sin(p)) * spec[k]
        for k in range(out.shape[1]):
            out[r, k] = 0.5 * (z[k] + np.conj(z[(n - k) % n]))


@numba.njit(parallel=True, cache=True)
def _hair_cell(bm, fs, hair, prob):
    """Meddis transmitter pools, step for step as lauscher's HairCell._meddis."""
    y, g, l, r, x, a, b, h, m = hair
    ymdt = y * m / fs
    xdt = x / fs
    ydt = y / fs
    rdt = r / fs
    gdt = g / fs
    hdt = h / fs
    lplusrdt = (l + r) / fs
    kt0 = g * a / (a + b)
    for ch in numba.prange(bm.shape[0]):
        hair_c = m * y * kt0 / (l * kt0 + y * (l + r))
        hair_q = hair_c * (l + r) / kt0
        hair_w = hair_c * r / x
        for j in range(bm.shape[1]):
            s = bm[ch, j]
            kt = gdt * (s + a) / (s + a + b) if s + a > 0 else 0.0
            replenish = ymdt - ydt * hair_q if hair_q < m else 0.0
            eject = kt * hair_q
            reuptakeandloss = lplusrdt * hair_c
            reuptake = rdt * hair_c
            reprocess = xdt * hair_w
            hair_q = max(hair_q + replenish - eject + reprocess, 0.0)
            hair_c = max(hair_c + eject - reuptakeandloss, 0.0)
            hair_w = max(hair_w + reuptake - reprocess, 0.0)
            prob[ch, j] = hair_c * hdt


@numba.njit(parallel=True, cache=True)
def _bushy_cell(prob, seeds, fs, bushy, spikes):
    """Converging fibres with dead time feeding lauscher's BushyCell._lif."""
    n_conv, tau_mem, tau_syn, tau_refrac, weight_total = bushy
    n_conv = int(n_conv)
    weight = weight_total / n_conv
    dt = 1.0 / fs
    dec_mem = np.exp(-dt / tau_mem)
    dec_syn = np.exp(-dt / tau_syn)
    refrac = tau_refrac * fs  # 24 samples at 24 kHz
    # a fibre that fired at j0 may fire again from j0 + ceil(refrac) on (lauscher's _correct)
    dead = max(int(np.ceil(refrac)), 1)
    for ch in numba.prange(prob.shape[0]):
        np.random.seed(seeds[ch])  # per-thread state, reseeded per channel: thread-count independent
        fired = np.zeros(dead, dtype=np.int64)  # ring: fibres fired in each of the last `dead` steps
        n_busy = 0
        isyn = 0.0
        vm_prev = 0.0
        counter = 0.0
        for j in range(prob.shape[1]):
            p = min(prob[ch, j], 1.0)  # lauscher: rand < p, so p >= 1 always fires
            slot = j % dead
            n_busy -= fired[slot]
            n_free = n_conv - n_busy
            k = 0
            if n_free > 0 and p > 0.0:
                k = np.random.binomial(n_free, p)
            fired[slot] = k
            n_busy += k
            # LIF on the summed fibre current (all fibres share tau_syn, so only the sum matters)
            vm = 0.0
            if j > 0:
                if counter <= 0:
                    if vm_prev < 1.0:
                        vm = vm_prev * dec_mem
                    else:
                        counter = refrac
                        vm = 0.0
                        spikes[ch, j - 1] = True
                isyn = isyn * dec_syn
            isyn += k
            if counter <= 0:
                vm += isyn * weight * dt
            if vm > 1.0:
                vm = 1.0
            counter -= 1
            vm_prev = vm


def _channel_seeds(seed: int) -> np.ndarray:
    ss = np.random.SeedSequence([int(seed), 0xC0C1EA])
    return ss.generate_state(N_CHANNELS, dtype=np.uint32).astype(np.int64)


def _prepare(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim != 1 or x.size < 4:
        raise ValueError(f"audio: expected a 1-D clip of at least 4 samples, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"audio: expected numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("audio: contains NaN or infinite samples")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate: expected a positive int, got {sample_rate!r}")
    if sample_rate != SAMPLE_RATE:
        f = Fraction(SAMPLE_RATE, int(sample_rate))
        x = scipy.signal.resample_poly(x, f.numerator, f.denominator)
    rms = np.sqrt(np.mean(x**2))
    if rms == 0:
        raise ValueError("audio: the clip is silent (RMS 0); lauscher's RmsNormalizer would divide by 0")
    # RmsNormalizer(0.3), then HanningWindow over the whole clip (half up, half down)
    x = x * (0.3 / rms)
    n = x.size
    half = n // 2
    win = np.hanning(half * 2)[:half]
    x[:half] *= win
    x[-half:] *= win[::-1]
    return x


def _hair_params() -> np.ndarray:
    return np.array([HAIR[k] for k in ("y", "g", "l", "r", "x", "a", "b", "h", "m")], dtype=np.float64)


def _bushy_params() -> np.ndarray:
    return np.array([BUSHY[k] for k in ("n_convergence", "tau_mem", "tau_syn", "tau_refrac", "weight")],
                    dtype=np.float64)


class _Membrane:
    """Basilar-membrane response of one prepared 48 kHz clip, channel block by block."""

    def __init__(self, x: np.ndarray):
        self.table = transfer_table()
        self.n_bins = x.size // 2 + 1
        self.spec = scipy.fft.rfft(x)  # == np.fft.fft(x)[:n_bins], as lauscher
        # the clip's grid linspace(1, 24000, n_bins) in fine-grid coordinates
        pos = np.linspace(0.0, GRID - 1, self.n_bins)
        self.idx = np.minimum(pos.astype(np.int64), GRID - 2)
        self.w = pos - self.idx
        self.buf = np.empty((CHUNK, self.n_bins // 2 + 1), dtype=np.complex128)

    def block(self, c0: int, rows: int) -> np.ndarray:
        out = self.buf[:rows]
        _bm_half_spectra(self.table[0], self.table[1], c0, self.idx, self.w, self.spec, out)
        return scipy.fft.irfft(out, n=self.n_bins, axis=1, workers=numba.get_num_threads())


def prepare(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Validated float64 48 kHz clip after RmsNormalizer(0.3) and HanningWindow."""
    return _prepare(audio, sample_rate)


def basilar_membrane(x: np.ndarray) -> np.ndarray:
    """``float64 [700, len(x)//2 + 1]`` membrane velocity (at 24 kHz) of a prepared clip."""
    mem = _Membrane(np.asarray(x, dtype=np.float64))
    return np.concatenate([mem.block(c0, min(CHUNK, N_CHANNELS - c0)) for c0 in range(0, N_CHANNELS, CHUNK)])


def hair_cell(bm: np.ndarray, fs: float = BM_RATE) -> np.ndarray:
    """Firing probability per step, same shape as ``bm``."""
    bm = np.ascontiguousarray(bm, dtype=np.float64)
    prob = np.empty_like(bm)
    _hair_cell(bm, float(fs), _hair_params(), prob)
    return prob


def bushy_cell(prob: np.ndarray, seeds, fs: float = BM_RATE) -> np.ndarray:
    """``bool`` spikes, same shape as ``prob``; ``seeds[c]`` seeds row ``c``'s fibres."""
    prob = np.ascontiguousarray(prob, dtype=np.float64)
    seeds = np.asarray(seeds, dtype=np.int64)
    if seeds.shape != (prob.shape[0],):
        raise ValueError(f"seeds: need one per channel ({prob.shape[0]}), got shape {seeds.shape}")
    spikes = np.zeros(prob.shape, dtype=np.bool_)
    _bushy_cell(prob, seeds, float(fs), _bushy_params(), spikes)
    return spikes


def channel_seeds(seed: int) -> np.ndarray:
    """Per-channel seeds of one sample, derived from ``seed`` with SeedSequence."""
    return _channel_seeds(seed)


def audio_to_spikes(audio: np.ndarray, sample_rate: int, seed: int,
                    threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run the Lauscher chain on one mono clip.

    Returns ``(times, units)``: seconds (float64, multiples of 1/24000 s) and
    channels (int64, 0 = highest frequency), sorted by time then channel.  Input
    at another rate is resampled to 48 kHz first.  ``threads`` caps numba's
    threads for this call (default: numba's current setting); the result does
    not depend on it.
    """
    x = _prepare(audio, sample_rate)
    seeds = _channel_seeds(seed)
    hair, bushy = _hair_params(), _bushy_params()
    old = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        mem = _Membrane(x)
        spikes = np.zeros((N_CHANNELS, mem.n_bins), dtype=np.bool_)
        prob = np.empty((CHUNK, mem.n_bins))
        for c0 in range(0, N_CHANNELS, CHUNK):
            rows = min(CHUNK, N_CHANNELS - c0)
            _hair_cell(mem.block(c0, rows), float(BM_RATE), hair, prob[:rows])
            _bushy_cell(prob[:rows], seeds[c0:c0 + rows], float(BM_RATE), bushy, spikes[c0:c0 + rows])
    finally:
        numba.set_num_threads(old)
    t_idx, units = np.nonzero(spikes.T)  # time-major, as lauscher's SpikeTrain.from_dense
    return t_idx.astype(np.float64) / BM_RATE, units.astype(np.int64)
