"""The training command: ``python sw/train.py`` / ``python -m sw.train`` (``spikeline train``).

The code lives in the library module :mod:`sw.trainer`; this script only makes the
repository importable when run by path and re-exports its public names, so that
``from sw.train import main, train, load_config`` keeps working.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python sw/train.py): make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sw.trainer import *  # noqa: E402,F401,F403  (the public names, for old imports)
from sw.trainer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
