"""Concurrent Verilator builds of one new design: both processes succeed, one compiles,
the other waits and reuses it, and the cache left behind is complete and correct."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from hw.model_file import Layer, Model
from hw.network import NetworkSpec
from hw.reference import simulate

from cosim.backends.verilator import VerilatorBackend, design_key
from cosim.parity import first_divergence

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(seed: int) -> Model:
    rng = np.random.default_rng(seed)
    W0 = rng.integers(-40, 60, (2, 5, 4)).astype(np.int8) * (rng.random((2, 5, 4)) < 0.6)
    W1 = rng.integers(-30, 30, (1, 4, 3)).astype(np.int8)
    return Model([Layer(np.array([0, 3]), W0, threshold=50, decay=3000),
                  Layer(np.array([1]), W1, threshold=1, decay=4096, spiking=False)], 5, 16)


def spec_of(model: Model) -> NetworkSpec:
    return NetworkSpec.for_model(model, "scdq", scdq_capacity=[64, 16], max_events=128, max_spikes=128)


BUILD_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_verilator_build import spec_of, tiny_model
    from cosim.backends.verilator import build
    print("EXE", build(spec_of(tiny_model({seed})), root={root!r}, log=lambda m: print("LOG", m, flush=True)))
""")


def test_two_processes_build_one_new_design_together(tmp_path):
    seed = 11
    model = tiny_model(seed)
    root = tmp_path / "verilator"
    key, _ = design_key(spec_of(model))
    # the failure this guards against: a folder left with a broken archive and no binary
    broken = root / key / "obj_dir"
    broken.mkdir(parents=True)
    (broken / "Vnetwork__ALL.a").write_bytes(b"not an archive")
    code = BUILD_SCRIPT.format(tests=str(ROOT / "tests"), seed=seed, root=str(root))
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    exes = {line.split(" ", 1)[1] for out, _ in outs for line in out.splitlines() if line.startswith("EXE")}
    assert exes == {str(root / key / "obj_dir" / "Vnetwork")}
    builds = sum("building Verilator model" in out for out, _ in outs)
    assert builds == 1, [o for o, _ in outs]  # the other process waited for the lock and reused the binary
    # nothing half-built is left, and the stale archive is gone (it was rebuilt)
    assert sorted(p.name for p in root.iterdir()) == sorted([key, f"{key}.lock"])
    assert (root / key / "obj_dir" / "Vnetwork__ALL.a").read_bytes()[:7] == b"!<arch>"
    # the cached binary is valid: a third user reuses it without building and matches the reference
    logs = []
    be = VerilatorBackend(spec_of(model), root=root, log=logs.append)
    assert logs == []
    X = np.random.default_rng(1).random((3, model.T, model.n_inputs)) < 0.3
    hdl = be.run(model, X, "async")
    ref = simulate(model, X, "async", "scdq")
    assert [first_divergence(b, h, r) for b, (h, r) in enumerate(zip(hdl, ref.samples))] == [None] * 3
    assert any(s.prediction for s in ref.samples) or ref.readout.any()


def test_profile_guided_build_without_assertions_matches_the_reference(tmp_path):
    """The fast build for long runs (gcc profile-guided, ``--no-assert``) is its own cached binary,
    trained on the samples given, and stays bit-exact on other samples."""
    model = tiny_model(5)
    spec = spec_of(model)
    rng = np.random.default_rng(2)
    X = rng.random((5, model.T, model.n_inputs)) < 0.3
    logs = []
    be = VerilatorBackend(spec, root=tmp_path, log=logs.append, assertions=False, train=(model, X[:2], "async"))
    key, _ = design_key(spec, assertions=False, pgo=True)
    assert be.exe == tmp_path / key / "obj_dir" / "Vnetwork"
    assert key != design_key(spec)[0]
    assert any("profile-guided" in m for m in logs)
    assert list(be.exe.parent.glob("*.gcda")), "the training run left no profile"
    for mode in ("async", "layered"):
        hdl = be.run(model, X[2:], mode)
        ref = simulate(model, X[2:], mode, "scdq")
        assert [first_divergence(b, h, r) for b, (h, r) in enumerate(zip(hdl, ref.samples))] == [None] * 3
