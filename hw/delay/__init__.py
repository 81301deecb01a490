"""Delay units: per-neuron ring buffer and the Shared Circular Delay Queue (SCDQ)."""
from hw.delay.ring_buffer import RingBufferDelay
from hw.delay.scdq import SCDQ

__all__ = ["RingBufferDelay", "SCDQ"]
