"""Where spikeline keeps caches (Verilator builds, the cochlea transfer table, data).

``$SPIKELINE_CACHE`` wins when set. Otherwise:

* a source checkout (the folder above the packages holds ``pyproject.toml``)
  keeps its caches in ``<checkout>/build``, as ``make clean`` expects, so that
  several checkouts on one machine never share (or race on) a build folder;
* an installed package uses the user cache folder (``platformdirs``:
  ``~/.cache/spikeline`` on Linux), never a folder inside site-packages.
"""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SPIKELINE_CACHE"
_CHECKOUT = Path(__file__).resolve().parents[1]


def source_checkout() -> Path | None:
    """The checkout these modules were imported from, or None when installed."""
    return _CHECKOUT if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "sw").is_dir() else None


def user_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("spikeline", appauthor=False))


def cache_dir(sub: str = "") -> Path:
    """The cache folder (or its subfolder ``sub``); not created here."""
    env = os.environ.get(CACHE_ENV)
    if env:
        root = Path(env).expanduser()
    else:
        co = source_checkout()
        root = co / "build" if co is not None else user_cache_dir()
    return root / sub if sub else root


DEFAULT_OFFLINE = "data/offline_shd"  # the name configs use for the default offline data set


def data_dir() -> Path:
    """Generated data: ``$SPIKELINE_CACHE/data``, ``<checkout>/data`` or ``<user cache>/data``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser() / "data"
    co = source_checkout()
    return co / "data" if co is not None else user_cache_dir() / "data"


def resolve_data_root(root: str | os.PathLike) -> Path:
    """``root`` as given, except the default name ``data/offline_shd``, which lives under :func:`data_dir`
    (so an installed spikeline never writes data into the current folder by surprise)."""
    return data_dir() / "offline_shd" if str(root) == DEFAULT_OFFLINE else Path(root)
