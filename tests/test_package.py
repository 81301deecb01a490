"""The package: the wheel's contents, the `spikeline` command, caches outside the
installed package, light public APIs."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import cosim.cli as cli
from sw import paths

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the tracked files only (what a fresh clone holds)."""
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the tracked files")
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        p = ROOT / rel
        if p.is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("spikeline-*.whl")
    return whl


def test_wheel_holds_package_data_license_and_entry_point(wheel):
    z = zipfile.ZipFile(wheel)
    names = set(z.namelist())
    # every non-Python file the tools read at run time
    for rel in ("sw/configs/default.json", "sw/configs/synthetic.json", "sw/configs/accurate.json",
                "cosim/backends/harness.cpp"):
        assert rel in names, rel
        assert z.read(rel) == (ROOT / rel).read_bytes()
    # every tracked module of the packages
    for pkg in ("hw", "sw", "cosim", "bench"):
        for py in (ROOT / pkg).rglob("*.py"):
            rel = py.relative_to(ROOT).as_posix()
            tracked = subprocess.run(["git", "ls-files", "--error-unmatch", rel], cwd=ROOT,
                                     capture_output=True).returncode == 0
            if tracked:
                assert rel in names, rel
    info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "spikeline = cosim.cli:main" in z.read(info).decode()
    lic = next(n for n in names if n.endswith("LICENSE"))
    assert b"Apache License" in z.read(lic) and b"Version 2.0" in z.read(lic)
    meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Provides-Extra: test" in meta and "snntorch==1.0.0" in meta
    # nothing that is not part of the package: no tests, no data, no build outputs
    assert not [n for n in names if n.startswith(("tests/", "data/", "build/", "docs/"))]


def test_caches_never_inside_the_installed_package(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.CACHE_ENV, raising=False)
    monkeypatch.setattr(paths, "source_checkout", lambda: None)  # as an installed package sees itself
    user = paths.user_cache_dir()
    assert paths.cache_dir("verilator") == user / "verilator"
    assert paths.resolve_data_root("data/offline_shd") == user / "data" / "offline_shd"
    site = Path(paths.__file__).resolve().parents[1]
    assert site not in paths.cache_dir().parents and site not in paths.data_dir().parents
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "c"))
    assert paths.cache_dir("verilator") == tmp_path / "c" / "verilator"
    assert paths.resolve_data_root("data/offline_shd") == tmp_path / "c" / "data" / "offline_shd"
    assert paths.resolve_data_root(tmp_path / "mine") == tmp_path / "mine"  # an explicit folder is kept


def test_verilator_build_root_follows_the_cache(tmp_path):
    code = "from cosim.backends.verilator import BUILD_ROOT; print(BUILD_ROOT)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**__import__("os").environ, "SPIKELINE_CACHE": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == tmp_path / "verilator"


def test_spikeline_command_lists_and_dispatches(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("data", "train", "eval", "cosim", "sweep", "fuzz", "fit", "nir"):
        assert f"  {name}" in out
    assert "exit codes" in out
    assert cli.main([]) == 2
    assert cli.main(["frobnicate"]) == 2
    assert "frobnicate" in capsys.readouterr().err
    assert cli.main(["cosim", "--help"]) == 0
    assert "--execution" in capsys.readouterr().out
    assert cli.main(["eval", "--model", "nowhere.safetensors", "--data", "synthetic"]) == 2
    assert "nowhere.safetensors" in capsys.readouterr().err


def test_a_missing_optional_command_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "sweep", ("cosim.no_such_module_here", "x"))
    assert cli.main(["sweep"]) == 2
    err = capsys.readouterr().err
    assert "cosim.no_such_module_here" in err and "Traceback" not in err


def test_hw_api_is_light():
    code = ("import sys, hw; hw.load; hw.simulate; hw.Model; "
            "assert 'torch' not in sys.modules, 'hw imported torch'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_numba_cache_of_an_installed_package_is_outside_it(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path))
    cli._numba_cache_outside_the_package()
    import os
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "numba")


def test_public_api_names_resolve():
    import cosim
    import hw
    import sw
    for mod in (hw, sw, cosim):
        for name in mod.__all__:
            assert getattr(mod, name) is not None, f"{mod.__name__}.{name}"
