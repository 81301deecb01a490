"""NIR (Neuromorphic Intermediate Representation, ``nir`` 1.0.8) with synaptic delays.

    spikeline nir export MODEL.safetensors OUT.nir
    spikeline nir import IN.nir OUT.safetensors [--dt S] [--T N] [--data SRC --samples N]

Export writes every layer ``l`` of a model file as

    source ─▶ Delay(d_k·dt) ─▶ Linear(W[k]ᵀ) ─┐
    source ─▶ Delay(d_k·dt) ─▶ Linear(W[k]ᵀ) ─┼─▶ LIF  (hidden layer; the readout is an LI)
                               ...            ─┘

one ``Delay`` + ``Linear`` pair per delay level (edges into a node are summed).
``Linear.weight`` holds the exact integer weights; the neuron nodes carry float
parameters that give a float simulator the nearest NIR reading (``tau = dt /
(1 - a/4096)``, ``r = tau / dt`` so that ``v ← (a/4096)·v + I``, ``v_threshold
= θ``), and the exact integers in their metadata (``spikeline.threshold``,
``spikeline.decay``, ``spikeline.reset``); the graph metadata ``spikeline``
holds the rest of the model-file header (``T``, ``dt``, widths, ``info``).
Importing such a graph gives back a model file whose reference outputs are
identical.

What NIR cannot express, and therefore lives only in that metadata:
* firing at ``v >= θ`` (NIR's LIF fires at ``v > θ``);
* the leak's truncation toward zero, ``trunc0(v·a/4096)`` (NIR is real-valued);
* saturation of the membrane and readout to their bit widths;
* ``subtract`` reset (NIR's LIF resets to ``v_reset``);
* the summed-membrane readout ``R += v`` with ``argmax R`` (NIR's LI is a
  leaky integrator; how a class is read from it is not part of the graph).

Import of a graph from another framework (snnTorch, Norse, ...) accepts a
feed-forward chain of ``Linear``/``Affine``, ``LIF``/``CubaLIF``/``LI`` and
``Delay`` nodes, and quantizes it with the export path's rules
(``sw.quantize``: one scale per layer so that max|w| maps to the weight
range, integer threshold ``round(θ/s)``). Per-channel ``Delay`` vectors become
delay levels (one level per distinct delay). Per-neuron thresholds are folded
into the weights (exact for zero reset and zero ``v_leak``); the last neuron
node becomes the non-spiking readout. Things that cannot be mapped are refused
with a message naming the node: a non-zero ``Affine`` bias (unless
``--drop-bias``), non-zero ``v_leak`` or ``v_reset``, time constants that differ
within a layer, delays that are not whole steps. ``CubaLIF``'s synaptic current
filter is dropped (reported). With ``--data`` the float graph (simulated in
discrete time with NIR's own reading) and the integer model are both run and
their accuracies printed.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402

import numpy as np  # noqa: E402

from hw.model_file import DECAY_ONE, SCHEMA_VERSION, Layer, Model, Widths, atomic_write, load, save, validate  # noqa: E402
from sw.errors import EXIT_OK, InputError, guarded  # noqa: E402

META = "spikeline"  # graph metadata key (JSON header) and node metadata prefix


class NirError(InputError):
    """A NIR graph that spikeline cannot read; the message names the file and node."""


# ---------------------------------------------------------------- export
def _float_lif_params(decay: int, dt: float, n: int):
    beta = decay / DECAY_ONE
    tau = np.full(n, dt / (1.0 - beta) if beta < 1 else np.inf)
    return tau, tau / dt  # r = tau / dt: unit input gain, v <- beta v + I


def to_nir(model: Model):
    """The NIR graph of a model file (see the module doc)."""
    import nir

    validate(model)
    nodes = {"input": nir.Input(input_type={"input": np.array([model.n_inputs])})}
    edges = []
    src = "input"
    for l, L in enumerate(model.layers):
        last = l == len(model.layers) - 1
        neuron = f"layer{l}_{'li' if last else 'lif'}"
        tau, r = _float_lif_params(int(L.decay), float(model.dt), L.n_out)
        meta = {f"{META}.layer": l, f"{META}.threshold": int(L.threshold), f"{META}.decay": int(L.decay),
                f"{META}.reset": L.reset, f"{META}.spiking": int(bool(L.spiking))}
        if last:
            nodes[neuron] = nir.LI(tau=tau, r=r, v_leak=np.zeros(L.n_out), metadata=meta)
        else:
            nodes[neuron] = nir.LIF(tau=tau, r=r, v_leak=np.zeros(L.n_out),
                                    v_threshold=np.full(L.n_out, float(L.threshold)), v_reset=np.zeros(L.n_out),
                                    metadata=meta)
        for k, d in enumerate(int(x) for x in L.delays):
            dn, wn = f"layer{l}_delay{k}", f"layer{l}_weight{k}"
            nodes[dn] = nir.Delay(delay=np.full(L.n_in, d * float(model.dt)),
                                  metadata={f"{META}.delay_steps": d})
            nodes[wn] = nir.Linear(weight=np.ascontiguousarray(L.weights[k].T), metadata={f"{META}.level": k})
            edges += [(src, dn), (dn, wn), (wn, neuron)]
        src = neuron
    nodes["output"] = nir.Output(output_type={"output": np.array([model.n_classes])})
    edges.append((src, "output"))
    header = {"schema_version": SCHEMA_VERSION, "n_inputs": int(model.n_inputs), "T": int(model.T),
              "dt": float(model.dt), "widths": model.widths.as_dict(), "info": model.info}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META: json.dumps(header)})


def export_nir(model_path, out_path) -> Path:
    """``spikeline nir export``: model file -> NIR file (written atomically)."""
    import nir

    g = to_nir(load(model_path))
    out = Path(out_path)
    if out.is_dir():
        raise NirError(f"OUT: '{out}' is a folder, not a file")
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out, lambda tmp: nir.write(tmp, g))


# ---------------------------------------------------------------- import
NEURONS = ("LIF", "CubaLIF", "LI")
SYNAPSES = ("Linear", "Affine")


def _layers_of(graph, where: str):
    """The feed-forward chain of a graph: per neuron node, its list of (delay vector or None, weight)."""
    nodes = graph.nodes
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in graph.edges:
        if a not in nodes or b not in nodes:
            raise NirError(f"{where}: edge ({a!r}, {b!r}) names a node that is not in the graph")
        preds[b].append(a)
    kind = {k: type(n).__name__ for k, n in nodes.items()}
    inputs = [k for k, t in kind.items() if t == "Input"]
    outputs = [k for k, t in kind.items() if t == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NirError(f"{where}: needs exactly one Input and one Output node, has {len(inputs)} and {len(outputs)}")
    for k, t in kind.items():
        if t not in ("Input", "Output", "Delay", *SYNAPSES, *NEURONS):
            raise NirError(f"{where}: node '{k}' is a {t}; spikeline reads Linear/Affine, LIF/CubaLIF/LI and Delay")
    # walk back from the output: output <- neuron <- synapses <- (delay <-) source <- ...
    chain = []
    (cur,) = preds[outputs[0]] or [None]
    if cur is None or kind[cur] not in NEURONS:
        raise NirError(f"{where}: the Output node must be fed by one LIF/CubaLIF/LI node")
    while cur != inputs[0]:
        syn = []
        source = None
        for s in preds[cur]:
            if kind[s] not in SYNAPSES:
                raise NirError(f"{where}: node '{cur}' is fed by '{s}' ({kind[s]}); expected Linear/Affine nodes")
            (p,) = preds[s] if len(preds[s]) == 1 else (None,)
            if p is None:
                raise NirError(f"{where}: node '{s}' needs exactly one input edge")
            delay = None
            if kind[p] == "Delay":
                delay = p
                (p,) = preds[p] if len(preds[p]) == 1 else (None,)
                if p is None:
                    raise NirError(f"{where}: Delay node '{delay}' needs exactly one input edge")
            if kind[p] not in (*NEURONS, "Input"):
                raise NirError(f"{where}: node '{s}' is fed by '{p}' ({kind[p]}); only a feed-forward chain of "
                               "neuron layers is supported")
            if source is not None and p != source:
                raise NirError(f"{where}: node '{cur}' takes input from both '{source}' and '{p}'; "
                               "only a feed-forward chain is supported")
            source = p
            syn.append((delay, s))
        if not syn:
            raise NirError(f"{where}: neuron node '{cur}' has no Linear/Affine input")
        chain.append((cur, syn))
        cur = source
    return list(reversed(chain)), nodes


def _per_neuron(node, name: str, attr: str, n: int, where: str) -> np.ndarray:
    v = np.asarray(getattr(node, attr), dtype=np.float64).reshape(-1)
    if v.size == 1:
        v = np.full(n, float(v[0]))
    if v.size != n:
        raise NirError(f"{where}: node '{name}' field '{attr}' has {v.size} entries for {n} neurons")
    return v


def from_nir(graph, dt: float | None = None, T: int | None = None, widths: Widths | None = None,
             drop_bias: bool = False, where: str = "NIR graph", log=print):
    """``(integer Model, float simulator)`` of a NIR graph.

    A graph written by :func:`to_nir` is read exactly (its integers are in the
    metadata). Any other graph is quantized (module doc); ``dt`` and ``T`` are
    then required. The float simulator ``f(X [B, T, C] bool) -> predictions`` runs
    the graph's own discrete-time reading (NIR firing ``v > θ``, real arithmetic)
    with the summed-membrane readout, for the float-vs-integer comparison.
    """
    from sw.quantize import qmax

    meta = getattr(graph, "metadata", None) or {}
    ours = None
    if isinstance(meta, dict) and META in meta:
        try:
            ours = json.loads(meta[META])
        except (TypeError, json.JSONDecodeError) as e:
            raise NirError(f"{where}: graph metadata '{META}' is not valid JSON ({e})") from None
    if ours is not None:
        dt = float(ours["dt"]) if dt is None else dt
        T = int(ours["T"]) if T is None else T
        widths = Widths(**ours["widths"]) if widths is None else widths
    if dt is None or not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise NirError(f"--dt: the graph does not say its time step; pass --dt SECONDS (got {dt!r})")
    if T is None or T < 1:
        raise NirError(f"--T: the graph does not say the steps per sample; pass --T N (got {T!r})")
    widths = widths or Widths()
    chain, nodes = _layers_of(graph, where)
    layers, floats = [], []
    for l, (name, syn) in enumerate(chain):
        node = nodes[name]
        last = l == len(chain) - 1
        levels: dict[int, np.ndarray] = {}
        for delay_name, s in syn:
            W = np.asarray(nodes[s].weight, dtype=np.float64)
            if W.ndim != 2:
                raise NirError(f"{where}: node '{s}' weight must be 2-d [n_out, n_in], got shape {list(W.shape)}")
            if type(nodes[s]).__name__ == "Affine" and np.any(np.asarray(nodes[s].bias) != 0) and not drop_bias:
                raise NirError(f"{where}: node '{s}' has a non-zero bias, which the hardware has no place for; "
                               "retrain without bias or pass --drop-bias")
            n_out_s, n_in_s = W.shape
            if delay_name is None:
                steps = np.zeros(n_in_s, dtype=np.int64)
            else:
                d = np.asarray(nodes[delay_name].delay, dtype=np.float64).reshape(-1)
                if d.size == 1:
                    d = np.full(n_in_s, float(d[0]))
                if d.size != n_in_s:
                    raise NirError(f"{where}: Delay node '{delay_name}' has {d.size} delays for {n_in_s} channels")
                q = d / dt
                steps = np.rint(q).astype(np.int64)
                if np.any(np.abs(q - steps) > 1e-6 * np.maximum(1, np.abs(q))) or np.any(steps < 0):
                    raise NirError(f"{where}: Delay node '{delay_name}' holds delays that are not whole "
                                   f"non-negative steps of dt={dt} s")
            for dstep in np.unique(steps):
                m = steps == dstep
                acc = levels.setdefault(int(dstep), np.zeros((n_in_s, n_out_s)))
                if acc.shape != (n_in_s, n_out_s):
                    raise NirError(f"{where}: node '{s}' has shape {list(W.shape)}, unlike the other inputs of '{name}'")
                acc[m, :] += W[:, m].T
        delays = np.array(sorted(levels), dtype=np.int64)
        Wf = np.stack([levels[int(d)] for d in delays])  # [K, n_in, n_out]
        n_out = Wf.shape[2]
        kind = type(node).__name__
        if kind == "CubaLIF":
            tau = _per_neuron(node, name, "tau_mem", n_out, where)
            log(f"note: node '{name}' is a CubaLIF; its synaptic current filter (tau_syn) has no counterpart and "
                "is dropped (input enters the membrane directly)")
        else:
            tau = _per_neuron(node, name, "tau", n_out, where)
        r = _per_neuron(node, name, "r", n_out, where)
        vleak = _per_neuron(node, name, "v_leak", n_out, where)
        if np.any(vleak != 0):
            raise NirError(f"{where}: node '{name}' has a non-zero v_leak, which the hardware cannot express")
        md = getattr(node, "metadata", None) or {}
        beta = np.where(np.isinf(tau), 1.0, 1.0 - dt / np.where(np.isinf(tau), 1.0, tau))
        gain = np.where(np.isinf(tau), 1.0, r * dt / np.where(np.isinf(tau), 1.0, tau))
        if np.ptp(beta) > 1e-9:
            raise NirError(f"{where}: node '{name}' has time constants that differ between neurons; "
                           "spikeline has one decay per layer")
        if not last and kind != "LI":
            theta = _per_neuron(node, name, "v_threshold", n_out, where)
            if np.any(theta <= 0):
                raise NirError(f"{where}: node '{name}' has a threshold <= 0")
            vreset = _per_neuron(node, name, "v_reset", n_out, where) if getattr(node, "v_reset", None) is not None \
                else np.zeros(n_out)
            if np.any(vreset != 0):
                raise NirError(f"{where}: node '{name}' resets to a non-zero v_reset, which the hardware cannot express")
        elif not last:
            raise NirError(f"{where}: node '{name}' is an LI inside the network; hidden layers must fire (LIF)")
        else:
            theta = np.ones(n_out)
        Wg = Wf * gain[None, None, :]
        if f"{META}.threshold" in md:  # written by to_nir: the exact integers
            Wi = np.rint(Wf).astype(np.int64)
            if np.any(Wi != Wf):
                raise NirError(f"{where}: inputs of '{name}' carry spikeline metadata but non-integer weights")
            threshold, decay = int(md[f"{META}.threshold"]), int(md[f"{META}.decay"])
            reset = md.get(f"{META}.reset", "zero")
            reset = reset.decode() if isinstance(reset, bytes) else str(reset)
        else:  # quantize like sw.export: one scale per layer; per-neuron thresholds folded into the weights
            Wn = Wg / theta[None, None, :] if not last else Wg
            s = max(float(np.abs(Wn).max()), 1e-12) / qmax(widths.weight_bits)
            Wi = np.rint(np.clip(Wn / s, -qmax(widths.weight_bits) - 1, qmax(widths.weight_bits))).astype(np.int64)
            from sw.quantize import threshold_int
            threshold = threshold_int(1.0, s, widths.membrane_bits)
            decay = int(round(DECAY_ONE * float(np.clip(beta[0], 0.0, 1.0))))
            reset = "zero"
        from sw.quantize import int_dtype
        layers.append(Layer(delays=delays, weights=Wi.astype(int_dtype(widths.weight_bits)), threshold=threshold,
                            decay=decay, reset=reset, spiking=not last))
        floats.append((delays, Wg, float(beta[0]), theta, not last))
    n_inputs = layers[0].n_in
    max_d = max(int(L.delays[-1]) for L in layers)
    if max_d > widths.max_delay:
        widths = Widths(**{**widths.as_dict(), "max_delay": max_d})
    info = dict(ours.get("info") or {}) if ours else {"imported_from": where}
    model = validate(Model(layers=layers, n_inputs=n_inputs, T=int(T), dt=float(dt), widths=widths, info=info))

    def float_predict(X: np.ndarray) -> np.ndarray:
        """The graph's own reading in discrete time: v <- beta v + I; fire at v > theta; reset to 0; R += v."""
        S = np.asarray(X, dtype=np.float64)
        B, TT, _ = S.shape
        R = None
        for delays, Wg, beta, theta, spiking in floats:
            I = np.zeros((B, TT, Wg.shape[2]))
            for k, d in enumerate(delays):
                if d < TT:
                    I[:, d:] += S[:, :TT - d] @ Wg[k]
            v = np.zeros((B, Wg.shape[2]))
            out = np.zeros_like(I)
            R = np.zeros((B, Wg.shape[2]))
            for t in range(TT):
                v = beta * v + I[:, t]
                if spiking:
                    z = v > theta
                    out[:, t] = z
                    v = np.where(z, 0.0, v)
                else:
                    R += v
            S = out
        return np.argmax(R, axis=1)

    return model, float_predict


def import_nir(nir_path, out_path, dt=None, T=None, drop_bias=False, log=print):
    """``spikeline nir import``: NIR file -> model file; returns ``(path, model, float_predict)``."""
    import nir

    p = Path(nir_path)
    if not p.is_file():
        raise NirError(f"IN: no such NIR file '{p}'")
    try:
        g = nir.read(str(p))
    except Exception as e:  # h5py/nir raise many types for a file that is not NIR
        raise NirError(f"IN: '{p}' is not a readable NIR file ({type(e).__name__}: {e})") from None
    model, fp = from_nir(g, dt=dt, T=T, drop_bias=drop_bias, where=f"NIR file '{p}'", log=log)
    return save(model, out_path), model, fp


# ---------------------------------------------------------------- CLI
def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="spikeline nir", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="model file -> NIR graph (Delay + Linear per level, LIF, LI readout)")
    ex.add_argument("model", help="model file (.safetensors)")
    ex.add_argument("out", help="NIR file to write")
    im = sub.add_parser("import", help="NIR graph -> model file (exact for spikeline graphs, quantized otherwise)")
    im.add_argument("nir", help="NIR file")
    im.add_argument("out", help="model file to write (.safetensors)")
    im.add_argument("--dt", type=float, help="seconds per step of the graph (default: its spikeline metadata)")
    im.add_argument("--T", type=int, help="steps per sample (default: its spikeline metadata)")
    im.add_argument("--drop-bias", action="store_true", help="drop Affine biases instead of refusing them")
    im.add_argument("--data", help="synthetic | offline | SHD file or folder: report float vs integer accuracy")
    im.add_argument("--samples", type=int, help="first N test samples of --data")
    a = ap.parse_args(argv)
    if a.cmd == "export":
        out = export_nir(a.model, a.out)
        print(f"wrote {out}")
        return EXIT_OK
    path, model, fp = import_nir(a.nir, a.out, a.dt, a.T, a.drop_bias)
    print(f"wrote {path}: {len(model.layers)} layers "
          + " ".join(f"{L.n_in}->{L.n_out} (K={len(L.delays)})" for L in model.layers))
    if a.data:
        from hw.reference import simulate
        from sw.evaluate import load_eval_data

        try:
            X, y = load_eval_data(a.data, model, str(path), samples=a.samples)
        except (ValueError, OSError) as e:
            raise InputError(f"--data: {e}") from None
        acc_f = float((fp(X) == y).mean())
        acc_i = float((simulate(model, X, "layered").predictions == y).mean())
        print(f"accuracy on {len(y)} samples of '{a.data}': float graph {100 * acc_f:.2f} %, "
              f"integer model (hw.reference, layered) {100 * acc_i:.2f} %")
    return EXIT_OK


def main(argv=None) -> int:
    """Exit codes (sw.errors): 0 ok, 2 bad flag/file/node, 3 internal error."""
    return guarded(_main, argv, "nir")


if __name__ == "__main__":
    sys.exit(main())
