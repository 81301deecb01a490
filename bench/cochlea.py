"""Cochlea speed: fast re-implementation per word, optionally side by side with lauscher.

    python bench/cochlea.py                      # fast version on the reference word, 1 and 2 threads
    python bench/cochlea.py --original 0.1       # also lauscher 1.0.1 on the first 0.1 s (slow: ~30 s per 0.1 s)
    python bench/cochlea.py --generate 100       # offline-SHD generator throughput, 2 worker processes
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sw.data import cochlea  # noqa: E402

REF = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lauscher_reference" / "spoken_digit.flac"


def _word() -> tuple[np.ndarray, int, str]:
    if REF.is_file():
        x, sr = soundfile.read(REF)
        return x, sr, REF.name
    rng = np.random.default_rng(0)  # stand-in: 0.8 s of noise-modulated tones
    t = np.arange(38400) / 48000
    x = np.sin(2 * np.pi * 300 * t) * np.hanning(t.size) + 0.05 * rng.standard_normal(t.size)
    return x, 48000, "synthetic 0.8 s clip"


def _time(fn, reps: int) -> float:
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions; the best is reported")
    ap.add_argument("--original", type=float, default=0.0, metavar="SECONDS",
                    help="also run the original lauscher chain on the first SECONDS of the word")
    ap.add_argument("--generate", type=int, default=0, metavar="N",
                    help="also time the generator on N words (2 worker processes)")
    a = ap.parse_args()

    x, sr, name = _word()
    cochlea.transfer_table()
    cochlea.audio_to_spikes(x[:4800], sr, 0)  # compile / load the numba cache
    dur = x.size / sr
    print(f"word: {name}, {dur:.3f} s")
    rows = []
    for th in (1, 2):
        s = _time(lambda: cochlea.audio_to_spikes(x, sr, 0, threads=th), a.reps)
        rows.append((f"fast cochlea, {th} thread(s)", s))
    base = rows[0][1]
    for label, s in rows:
        print(f"  {label:34s} {s:7.3f} s/word   {s / dur:6.3f} x real time   {base / s:5.2f}x vs 1 thread")

    if a.original > 0:
        from lauscher.audiowaves import MonoAudioWave
        from lauscher.transformations.wave2spike import Wave2Spike

        logging.disable(logging.INFO)
        clip = x[: int(a.original * sr)]
        t0 = time.perf_counter()
        MonoAudioWave(clip.copy(), sr).transform(Wave2Spike(num_channels=700))
        orig = time.perf_counter() - t0
        fast = _time(lambda: cochlea.audio_to_spikes(clip, sr, 0), a.reps)
        print(f"  {a.original:.2f} s clip: lauscher 1.0.1 {orig:8.2f} s, fast {fast:6.3f} s "
              f"-> speed-up {orig / fast:7.1f}x (measured side by side)")

    if a.generate > 0:
        from sw.data.generate import generate

        import resource

        n_test = 0 if a.generate < 2 else a.generate // 4
        n = a.generate + n_test
        with tempfile.TemporaryDirectory() as tmp:
            cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            generate(tmp, a.generate, n_test, seed=0, workers=2)
            wall = time.perf_counter() - t0
            cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        print(f"  generator: {n} words in {wall:.1f} s with 2 workers -> {n / wall:.2f} words/s, "
              f"{wall / n:.3f} s/word wall (incl. ~5 s start-up; depends on machine load)")
        print(f"  generator CPU: {cpu / n:.3f} core-s/word -> on 2 idle cores about {cpu / n / 2:.3f} s/word")
    return 0


if __name__ == "__main__":
    sys.exit(main())
