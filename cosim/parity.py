"""Bit-exact comparison of HDL results with the reference (the comparison lives in :mod:`hw.parity`)."""
from hw.parity import Divergence, first_divergence

__all__ = ["Divergence", "first_divergence"]
