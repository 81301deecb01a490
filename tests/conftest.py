"""Test-suite settings.

Hypothesis runs derandomized by default, so `make test` explores the same
examples on every machine and a CI result is reproducible. Set
``SPIKELINE_HYPOTHESIS=explore`` to draw fresh random examples (and let the
example database replay any failure found). The profiles, the bounded
shrinking of HDL properties and the shared model strategies live in
tests/props.py; importing it here loads the profile before any test runs.
"""
import props  # noqa: F401  (registers and loads the hypothesis profile)
