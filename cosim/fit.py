"""Does a model fit the hardware? A per-core memory and limit check, before any simulation.

    python -m cosim.fit --model build/model.safetensors [--core-budget-bits B] [--max-fan-in F]
                        [--max-delay D] [--delay-unit ring|scdq] [--mode layered|async]
                        [--scdq-capacity worst|peak|C|C0,C1,...] [--data offline --samples N]

One layer runs on one core. A core holds the layer's synapse memory (CSR), its
delay memory (a ring buffer, or an SCDQ at a given capacity plus, in layered
mode, the input accumulator) and its neuron state. Every figure comes from
``hw.reference.memory_report``; this module only adds them up per core.

Limits (each optional):
- ``--core-budget-bits B``: a core's memories together must hold at most ``B`` bits;
- ``--max-fan-in F``: a core addresses at most ``F`` pre-synaptic neurons (``n_in <= F``);
- ``--max-delay D``: no delay above ``D`` steps.

SCDQ capacity: ``worst`` (default) is the bound that can never overflow,
``n_in * (D + 1)`` events (every input fires at every step held); ``peak``
measures the peak occupancy of the reference on ``--data``; or give one
capacity, or one per layer. Exit status: 0 fits, 1 does not fit, 2 bad input.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw.model_file import Model, ModelFileError, load  # noqa: E402
from hw.reference import DELAY_UNITS, MODES, memory_report  # noqa: E402

MEMORIES = ("synapse_bits", "delay_bits", "state_bits")
NAMES = {"synapse_bits": "synapse CSR", "delay_bits": "delay", "state_bits": "neuron state"}


class FitError(ValueError):
    """Bad input to the fit check; the message names the flag."""


def worst_case_capacity(model: Model) -> list[int]:
    """Per layer, the SCDQ capacity that no input can overflow: ``n_in * (D + 1)``."""
    return [L.n_in * (L.max_delay + 1) for L in model.layers]


def core_memory(model: Model, delay_unit: str, mode: str, scdq_capacity: list[int]) -> list[dict]:
    """Per layer (core): ``memory_report`` plus ``delay_bits`` for the chosen unit and ``core_bits``.

    The SCDQ's delay memory in layered mode includes the input accumulator
    (docs/contract.md, memory accounting); a ring buffer needs none.
    """
    if delay_unit not in DELAY_UNITS:
        raise FitError(f"--delay-unit must be one of {DELAY_UNITS}, got {delay_unit!r}")
    if mode not in MODES:
        raise FitError(f"--mode must be one of {MODES}, got {mode!r}")
    rows = memory_report(model, [max(1, int(c)) for c in scdq_capacity])
    for r in rows:
        if delay_unit == "ring":
            r["delay_bits"] = r["ring_bits"]
        else:
            r["delay_bits"] = r["scdq_bits"] + (r["layered_accumulator_bits"] if mode == "layered" else 0)
        r["delay_unit"] = delay_unit
        r["core_bits"] = sum(r[m] for m in MEMORIES)
    return rows


def check(model: Model, rows: list[dict], core_budget_bits: int | None = None, max_fan_in: int | None = None,
          max_delay: int | None = None) -> list[dict]:
    """Per layer: the problems found (empty when the layer fits), each ``{what, value, limit, over}``."""
    out = []
    for L, r in zip(model.layers, rows):
        probs = []
        if core_budget_bits is not None and r["core_bits"] > core_budget_bits:
            probs.append({"what": "core memory", "value": r["core_bits"], "limit": core_budget_bits,
                          "over": r["core_bits"] - core_budget_bits,
                          "alone": [NAMES[m] for m in MEMORIES if r[m] > core_budget_bits]})
        if max_fan_in is not None and L.n_in > max_fan_in:
            probs.append({"what": "fan-in", "value": L.n_in, "limit": max_fan_in, "over": L.n_in - max_fan_in})
        if max_delay is not None and L.max_delay > max_delay:
            probs.append({"what": "max delay", "value": L.max_delay, "limit": max_delay,
                          "over": L.max_delay - max_delay})
        out.append({"layer": r["layer"], "fits": not probs, "problems": probs})
    return out


def fits(model: Model, rows: list[dict], core_budget_bits: int | None) -> bool | None:
    """Whether every core fits ``core_budget_bits`` (``None`` when no budget is given)."""
    if core_budget_bits is None:
        return None
    return all(c["fits"] for c in check(model, rows, core_budget_bits))


def format_table(model: Model, rows: list[dict], result: list[dict], core_budget_bits: int | None) -> str:
    unit = rows[0]["delay_unit"] if rows else ""
    head = f"{'layer':>5} {'n_in':>5} {'n_out':>5} {'D':>3} {'C':>7} {'synapse CSR':>12} {'delay ' + unit:>11} " \
           f"{'state':>7} {'core total':>11} {'budget':>9}  status"
    lines = [head, "-" * len(head)]
    for L, r, c in zip(model.layers, rows, result):
        cap = "-" if unit == "ring" or L.max_delay == 0 else f"{r['scdq_capacity']:,}"
        status = "fits" if c["fits"] else "DOES NOT FIT"
        budget = "-" if core_budget_bits is None else f"{core_budget_bits:,}"
        lines.append(f"{r['layer']:>5} {L.n_in:>5} {L.n_out:>5} {L.max_delay:>3} {cap:>7} {r['synapse_bits']:>12,} "
                     f"{r['delay_bits']:>11,} {r['state_bits']:>7,} {r['core_bits']:>11,} {budget:>9}  {status}")
    for L, r, c in zip(model.layers, rows, result):
        for p in c["problems"]:
            if p["what"] == "core memory":
                alone = f"; alone over budget: {', '.join(p['alone'])}" if p["alone"] else ""
                lines.append(f"layer {c['layer']}: core memory {p['value']:,} bits (synapse CSR {r['synapse_bits']:,}"
                             f" + delay {r['delay_bits']:,} + state {r['state_bits']:,}) exceeds the budget "
                             f"{p['limit']:,} by {p['over']:,} bits{alone}")
            else:
                lines.append(f"layer {c['layer']}: {p['what']} {p['value']:,} exceeds the limit {p['limit']:,} "
                             f"by {p['over']:,}")
    return "\n".join(lines)


def _capacity(arg: str, model: Model, a) -> list[int]:
    L = len(model.layers)
    if arg == "worst":
        return worst_case_capacity(model)
    if arg == "peak":
        from hw.reference import simulate
        from sw.evaluate import DataMismatch, load_eval_data
        try:
            X, _ = load_eval_data(a.data, model, a.model, samples=a.samples)
        except (DataMismatch, ValueError, OSError) as e:
            raise FitError(f"--data: {e}") from None
        return [max(1, int(p)) for p in simulate(model, X, a.mode, "scdq").occupancy.max(axis=(0, 2))]
    try:
        caps = [int(x) for x in arg.split(",")]
    except ValueError:
        raise FitError(f"--scdq-capacity must be 'worst', 'peak', an int or {L} ints separated by commas, "
                       f"got {arg!r}") from None
    if len(caps) == 1:
        caps *= L
    if len(caps) != L or min(caps) < 1:
        raise FitError(f"--scdq-capacity needs one capacity >= 1 or one per layer ({L}), got {arg!r}")
    return caps


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m cosim.fit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model file (.safetensors)")
    ap.add_argument("--core-budget-bits", type=int, help="memory bits one core holds (synapse + delay + state)")
    ap.add_argument("--max-fan-in", type=int, help="pre-synaptic neurons one core addresses (n_in)")
    ap.add_argument("--max-delay", type=int, help="largest delay in steps the hardware holds")
    ap.add_argument("--delay-unit", default="scdq", choices=DELAY_UNITS)
    ap.add_argument("--mode", default="layered", choices=MODES)
    ap.add_argument("--scdq-capacity", default="worst", help="worst | peak | C | C0,C1,... (default worst)")
    ap.add_argument("--data", default="offline", help="data for --scdq-capacity peak (default offline)")
    ap.add_argument("--samples", type=int, help="samples for --scdq-capacity peak (default all)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        for flag, v in (("--core-budget-bits", a.core_budget_bits), ("--max-fan-in", a.max_fan_in),
                        ("--max-delay", a.max_delay)):
            if v is not None and v < 0:
                raise FitError(f"{flag} must be >= 0, got {v}")
        try:
            model = load(a.model)
        except ModelFileError as e:
            raise FitError(f"--model: {e}") from None
        caps = _capacity(a.scdq_capacity, model, a)
        rows = core_memory(model, a.delay_unit, a.mode, caps)
        result = check(model, rows, a.core_budget_bits, a.max_fan_in, a.max_delay)
    except FitError as e:
        print(f"fit: {e}", file=sys.stderr)
        return 2
    ok = all(c["fits"] for c in result)
    print(f"fit check: {a.model} ({a.delay_unit}, {a.mode}, SCDQ capacity {a.scdq_capacity})")
    print(format_table(model, rows, result, a.core_budget_bits))
    print("FITS" if ok else "DOES NOT FIT")
    return 0 if ok else 1


if __name__ == "__main__":
    from sw.errors import guarded  # exit codes 0/1/2/3 as in every spikeline command

    sys.exit(guarded(main, None, "fit"))
