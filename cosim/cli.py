"""The ``spikeline`` command: one entry point for every tool.

    spikeline data   ...   generate an offline SHD-format data set      (python -m sw.data.generate)
    spikeline train  ...   train, quantize and export a model           (python sw/train.py; library: sw.trainer)
    spikeline eval   ...   run model files in hw.reference              (python -m sw.evaluate)
    spikeline cosim  ...   co-simulate a model on the HDL, report       (python cosim/run.py)
    spikeline sweep  ...   parameter sweeps                             (cosim.sweep)
    spikeline fuzz   ...   random networks, HDL vs reference            (python bench/fuzz.py)
    spikeline fit    ...   fit a model to a hardware budget             (cosim.fit)
    spikeline nir    ...   export / import NIR graphs with delays       (python -m sw.nir_io)

``spikeline COMMAND --help`` shows the options of one command. Every command
ends with exit code 0 (ok), 1 (ran, but parity or a check failed), 2 (usage or
input error, one line naming the flag, file or field) or 3 (internal error,
with a traceback).
"""
from __future__ import annotations

import importlib
import sys

from sw.errors import EXIT_USAGE, guarded

# command -> (module, one-line summary); modules are imported only when their command runs
COMMANDS = {
    "data": ("sw.data.generate", "generate an offline SHD-format data set (espeak-ng + Lauscher cochlea)"),
    "train": ("sw.trainer", "train, prune, quantize and export a delay SNN to a model file"),
    "eval": ("sw.evaluate", "run model files in hw.reference: accuracy, SOPs, time to decision"),
    "cosim": ("cosim.run", "co-simulate a model file on the HDL: parity, cycles, memory, report"),
    "sweep": ("cosim.sweep", "sweep parameters over many co-simulation runs"),
    "fuzz": ("bench.fuzz", "differential fuzzing: random networks on Verilator vs hw.reference"),
    "fit": ("cosim.fit", "fit a model to a hardware budget"),
    "nir": ("sw.nir_io", "export a model file to NIR (with delays) or import a NIR graph"),
}


def _usage() -> str:
    w = max(map(len, COMMANDS))
    lines = ["usage: spikeline COMMAND [options]   (spikeline COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<{w}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "exit codes: 0 ok, 1 ran but a check (parity, fuzz) failed, 2 usage or input error, "
                  "3 internal error"]
    return "\n".join(lines)


def _load(command: str):
    """The ``main`` of a command's module; a missing optional module is a usage error naming it."""
    mod_name = COMMANDS[command][0]
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name and (mod_name == e.name or mod_name.startswith(e.name + ".")):
            return None
        raise
    return getattr(mod, "main", None)


def _numba_cache_outside_the_package() -> None:
    """numba's ``cache=True`` writes next to the module by default; an installed spikeline
    keeps that cache under ``sw.paths.cache_dir("numba")`` instead (set before numba is imported)."""
    import os

    from sw.paths import cache_dir, source_checkout

    if source_checkout() is None or os.environ.get("SPIKELINE_CACHE"):
        os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir("numba")))


def main(argv=None) -> int:
    _numba_cache_outside_the_package()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"spikeline: error: unknown command {command!r} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return EXIT_USAGE
    loaded = []
    rc = guarded(lambda _: loaded.append(_load(command)), None, f"spikeline {command}")
    if rc:  # the import itself failed (a bug: traceback, exit 3)
        return rc
    fn = loaded[0]
    if fn is None:
        print(f"spikeline {command}: error: this installation has no '{COMMANDS[command][0]}' module "
              f"(the '{command}' command is not available in this version)", file=sys.stderr)
        return EXIT_USAGE
    return guarded(fn, rest, f"spikeline {command}")


if __name__ == "__main__":
    sys.exit(main())
