"""Trainable models.

``sw.models.delay`` holds the hardware-aware delay network (:class:`DelayNet`):
layers are a :class:`DelaySynapse` (spikes ``[B,T,n_in]`` -> current
``[B,T,n_out]`` in integer units; ``sw.models.synapse.tap_sum``, event-driven or
dense) plus a pluggable neuron (``sw.models.lif``: :class:`LIFParams`,
``lif_step`` / ``li_step`` and the fused ``lif_sequence`` / ``li_sequence``,
shared with the unlayered model, as are the surrogate and ``mem_sum``).

Hooks used by ``sw.trainer`` (imported lazily, only when selected):

* ``--neuron psu|ipsu|rpsu`` -> ``sw.models.psu.make_neuron(kind, n, T, **cfg) -> nn.Module``
  for the hidden layers. ``cfg`` has ``decay`` (int a, leak ``a/4096``),
  ``spiking`` (True), ``membrane_bits``, ``slope`` (surrogate) and ``exact``
  (emulate trunc0). The module's ``forward(current [B,T,n], threshold) -> spikes
  [B,T,n]`` gets the current in integer units and the integer threshold.
  The readout stays a non-spiking :class:`LIFNeuron`; export always writes LIF
  semantics, so the integer accuracy shows what a PSU-trained net keeps.
* ``--mode unlayered --scheduler fifo|random|momentum --forward-group F`` ->
  ``sw.models.unlayered.UnlayeredNet.from_delay_net(net, scheduler, forward_group, seed)``:
  an ``nn.Module`` sharing ``net``'s parameters, keeping ``net`` as ``.net``,
  with the same ``forward(x) -> (logits, record)`` as :class:`DelayNet`.
  Pruning, checkpoints and export act on ``.net``.
"""
