"""Exit codes and the error guard shared by every spikeline command.

Every command (``spikeline ...``, ``python sw/train.py``, ``python cosim/run.py``,
``python -m sw.evaluate``, ``bench/fuzz.py``) ends with one of four codes:

====  ==========================================================================
code  meaning
====  ==========================================================================
0     ok
1     the command ran, but a check failed (bit-exact parity, a fuzz case, ...)
2     usage or input error: one line on stderr naming the flag, file or field
3     internal error: a bug; the traceback is printed
====  ==========================================================================

Input errors are the exception types listed in :data:`INPUT_ERRORS` (all
``ValueError`` subclasses raised on purpose with a message naming the culprit);
anything else is an internal error. This module imports nothing heavy.
"""
from __future__ import annotations

import sys
import traceback

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class InputError(ValueError):
    """Bad input (flag, file or field); the message names it in one line."""


def _input_errors() -> tuple[type, ...]:
    from hw.model_file import ModelFileError

    return (InputError, ModelFileError)


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (multi-line messages are joined)."""
    return " ".join(str(e).split())


def guarded(main, argv=None, prog: str = "spikeline") -> int:
    """Run ``main(argv)`` and map every outcome to an exit code (see module doc).

    ``argparse`` usage errors keep their own message and code 2; input errors
    print ``prog: error: <one line>`` to stderr and give 2; any other exception
    prints its traceback and gives 3.
    """
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse (--help: 0, usage: 2) or an explicit exit
        if e.code is None or isinstance(e.code, int):
            return int(e.code or 0)
        print(f"{prog}: error: {e.code}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except _input_errors() as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:  # noqa: BLE001 - a bug: show it, with the code that says so
        traceback.print_exc()
        print(f"{prog}: internal error (exit {EXIT_INTERNAL}); the traceback above is a bug, please report it",
              file=sys.stderr)
        return EXIT_INTERNAL
    return EXIT_OK if rc is None else int(rc)


def check_out_dir(path, flag: str = "--out"):
    """Create the output folder ``path`` (and parents) and make sure it is writable;
    raise :class:`InputError` naming ``flag`` when it is a file or cannot be written."""
    import os
    import tempfile
    from pathlib import Path

    p = Path(path)
    for q in (p, *p.parents):
        if q.exists() and not q.is_dir():
            raise InputError(f"{flag}: '{q}' is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".spikeline-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(f"{flag}: cannot write to '{p}' ({e.strerror or e})") from None
    return p


def json_safe(obj):
    """``obj`` with every non-finite float (NaN, inf) replaced by None, so strict JSON parsers accept it."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(obj, path):
    """Write ``obj`` as strict JSON (NaN/inf become null), atomically (unique temp file, then rename)."""
    import json
    from pathlib import Path

    from hw.model_file import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_safe(obj), indent=1, allow_nan=False)

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)

    return atomic_write(path, write)
