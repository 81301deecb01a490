"""Test-suite settings.

Hypothesis runs derandomized by default, so `make test` explores the same
examples on every machine and a CI result is reproducible. Set
``SPIKELINE_HYPOTHESIS=explore`` to draw fresh random examples (and let the
example database replay any failure found).
"""
import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("SPIKELINE_HYPOTHESIS") == "explore" else "deterministic")
