"""Mutation check: does the test suite catch small, plausible faults?

    python bench/mutants.py              # every mutant (about 20 min on 2 busy cores)
    python bench/mutants.py --list       # the mutants and the tests that run for each
    python bench/mutants.py --only ref-   # mutants whose name starts with ref-

Each mutant is a one-line (or one-expression) change to a source file. The
script copies the tracked files of the repository to a scratch folder, applies
one mutant at a time there (the working tree is never touched), runs the tests
named for it (``pytest -x``) and restores the file. A mutant is *killed* when a
test fails. It prints a table and ``N mutants, K killed``, writes
``build/mutants.json``, and exits non-zero when a mutant that is not marked
equivalent survives (the reason is printed), or when the unmutated tests fail
first (baseline), or when a mutant no longer applies (the source moved on).

Covered: the reference arithmetic (hw/reference.py), the loader rules
(hw/model_file.py), the delay units' pointers and overflow (hw/delay/), the
core's leak, threshold, saturation and reset (hw/update_pipeline.py, hw/step_controller.py), the
row iterator's hand-off and the step order (hw/row_iterator.py, hw/step_controller.py, hw/network.py), the
export rounding (sw/quantize.py) and the deferring ring bound of bench/core.py. An *equivalent* mutant changes no observable
behaviour; it carries the reason, and still runs (it must survive: if a test
kills it, it was not equivalent and the script says so).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]
    equivalent: str | None = None  # the reason, when no behaviour can change

    def describe(self) -> str:
        return f"{self.path}: {self.old.strip()!r} -> {self.new.strip()!r}"


REF = ("tests/test_reference.py",)
LOADER = ("tests/test_model_file.py",)
EXPORT = ("tests/test_rounding.py", "tests/test_quantize_export.py")
NET = ("tests/test_network_pysim.py",)
PIPE = ("tests/test_update_pipeline.py",) + NET  # the unit bench first: it fails in seconds
CTRL = ("tests/test_step_controller.py",) + NET
RING = ("tests/test_ring_buffer.py",)
SCDQ = ("tests/test_scdq.py",)

MUTANTS = [
    # ---- reference arithmetic
    Mutant("ref-leak-floor", "hw/reference.py", "return np.where(v < 0, -q, q)", "return (v * decay) >> 12", REF),
    Mutant("ref-sat-hi", "hw/reference.py", "hi = (1 << (bits - 1)) - 1\n    return np.clip",
           "hi = (1 << (bits - 1))\n    return np.clip", REF),
    Mutant("ref-sat-lo", "hw/reference.py", "np.clip(v, -hi - 1, hi)", "np.clip(v, -hi, hi)", REF),
    Mutant("ref-fire-gt", "hw/reference.py", "fire = v >= layer.threshold", "fire = v > layer.threshold", REF),
    Mutant("ref-subtract-as-zero", "hw/reference.py", "v = np.where(fire, v - layer.threshold, v)",
           "v = np.where(fire, 0, v)", REF),
    Mutant("ref-async-fire-gt", "hw/reference.py", "not refr[j] and v[j] >= threshold",
           "not refr[j] and v[j] > threshold", REF),
    Mutant("ref-async-no-refractory", "hw/reference.py", "if spiking and not refr[j] and v[j]",
           "if spiking and v[j]", REF),
    Mutant("ref-ring-arrival-at-T", "hw/reference.py", "if d == 0 or t + d >= T:", "if d == 0 or t + d > T:", REF),
    Mutant("ref-ring-drops-d0", "hw/reference.py", "            if delays[0] == 0:\n                r = i",
           "            if delays[0] == 0 and not ring:\n                r = i", REF),
    Mutant("ref-scdq-level-order", "hw/reference.py", "            for k in range(K):\n                d = delays[k]\n"
           "                if d == 0 or t - d < 0:",
           "            for k in range(K - 1, -1, -1):\n                d = delays[k]\n"
           "                if d == 0 or t - d < 0:", REF),
    Mutant("ref-ttd-off-by-one", "hw/reference.py", "    return idx + 1", "    return idx", REF),
    Mutant("ref-argmax-highest", "hw/reference.py", "return np.argmax(R, axis=-1)",
           "return R.shape[-1] - 1 - np.argmax(R[..., ::-1], axis=-1)", REF),
    Mutant("ref-occupancy-window", "hw/reference.py", "n = c.shape[-1] - max_delay - 1\n    if n > 0:\n"
           "        shifted[..., max_delay + 1:] = c[..., :n]",
           "n = c.shape[-1] - max_delay\n    if n > 0:\n        shifted[..., max_delay:] = c[..., :n]", REF),
    Mutant("ref-sop-count-at-T", "hw/reference.py", "        if d < T:\n            per = ",
           "        if d <= T:\n            per = ", REF,
           equivalent="for d == T the slice [:, :T - d] is empty, so the added count is 0"),
    # ---- loader rules
    Mutant("load-weight-lower", "hw/model_file.py", "W.min() < wmin or", "W.min() < wmin - 1 or", LOADER),
    Mutant("load-weight-upper", "hw/model_file.py", "W.max() > wmax)", "W.max() > wmax + 1)", LOADER),
    Mutant("load-acc-boundary", "hw/model_file.py", "if worst >= acc_limit:", "if worst > acc_limit:", LOADER),
    Mutant("load-acc-whole-matrix", "hw/model_file.py", ".sum(axis=(0, 1)).max(initial=0)",
           ".sum(axis=(0, 1, 2), keepdims=True).max(initial=0)", LOADER),
    Mutant("load-acc-per-row", "hw/model_file.py", ".sum(axis=(0, 1)).max(initial=0)",
           ".sum(axis=(0, 2)).max(initial=0)", LOADER),
    Mutant("load-threshold-max", "hw/model_file.py", "if layer.threshold > vmax:", "if layer.threshold >= vmax:",
           LOADER),
    Mutant("load-decay-max", "hw/model_file.py", "0 <= layer.decay <= DECAY_ONE", "0 <= layer.decay < DECAY_ONE",
           LOADER),
    Mutant("load-delay-max", "hw/model_file.py", "d[-1] > w.max_delay", "d[-1] >= w.max_delay", LOADER),
    Mutant("load-delay-duplicates", "hw/model_file.py", "np.any(np.diff(d) <= 0)", "np.any(np.diff(d) < 0)", LOADER),
    # ---- delay units: pointers and overflow
    Mutant("ring-slot-wrap", "hw/delay/ring_buffer.py", "slot = Mux(slot_sum >= S,", "slot = Mux(slot_sum > S,", RING),
    Mutant("ring-advance-wrap", "hw/delay/ring_buffer.py", "t.eq(Mux(t == S - 1, 0, t + 1))",
           "t.eq(Mux(t == S, 0, t + 1))", RING),
    Mutant("ring-no-forwarding", "hw/delay/ring_buffer.py", "fifo.w_data.eq(rp_drain.data + Mux(same, a1_w, 0))",
           "fifo.w_data.eq(rp_drain.data)", RING),
    Mutant("ring-clear-short", "hw/delay/ring_buffer.py", "with m.If(clr_addr == self.depth - 1):",
           "with m.If(clr_addr == self.depth - 2):", RING),
    Mutant("ring-lane2-no-forwarding", "hw/delay/ring_buffer.py", " + Mux(same2, b1_w, 0)),", "),", RING),
    Mutant("ring-lane2-dropped", "hw/delay/ring_buffer.py", "wp_add2.en.eq(b1_valid & ~same2)", "wp_add2.en.eq(0)",
           RING),
    Mutant("scdq-dist-no-wrap", "hw/delay/scdq.py", "return a.idx - b.idx + Mux(a.wrap != b.wrap, self.capacity, 0)",
           "return a.idx - b.idx", SCDQ),
    Mutant("scdq-inc-last", "hw/delay/scdq.py", "last = p.idx == C - 1", "last = p.idx == C", SCDQ),
    Mutant("scdq-store-when-full", "hw/delay/scdq.py", "store = push_fire & (occ != C)", "store = push_fire", SCDQ),
    Mutant("scdq-dropped-count", "hw/delay/scdq.py", "m.d.sync += dropped.eq(dropped + 1)",
           "m.d.sync += dropped.eq(dropped + 2)", SCDQ),
    Mutant("scdq-peak-misses-store", "hw/delay/scdq.py", "occ_now = occ + store", "occ_now = occ", SCDQ),
    # ---- core: leak, threshold, saturation, reset, refractory
    Mutant("core-leak-floor", "hw/update_pipeline.py", "leaked.eq(Mux(v < 0, -q, q))", "leaked.eq(Mux(v < 0, -q - 1, q))", PIPE),
    Mutant("core-threshold-gt", "hw/update_pipeline.py", "(nv >= threshold)", "(nv > threshold)", PIPE),
    Mutant("core-sat-no-lower", "hw/update_pipeline.py", "return Mux(x > hi, hi, Mux(x < lo, lo, x))",
           "return Mux(x > hi, hi, x)", PIPE),
    Mutant("core-subtract-off-by-one", "hw/update_pipeline.py", "reset_v = Mux(subtract, nv - threshold, 0)",
           "reset_v = Mux(subtract, nv - threshold + 1, 0)", PIPE),
    Mutant("core-no-refractory", "hw/update_pipeline.py", "(c_kind == Op.DRAIN)) & ~is_refr |", "(c_kind == Op.DRAIN)) |", PIPE),
    Mutant("core-ring-arrival-at-T", "hw/step_controller.py", "(t + self.delays[k]) < T for k", "(t + self.delays[k]) <= T for k", CTRL),
    Mutant("core-lazy-leak-off", "hw/update_pipeline.py", "c_lk.eq(b_valid & b_touch & b_stale)", "c_lk.eq(0)", PIPE),
    # ---- core: stream stages and step order
    Mutant("rows-bubble-after-held-row", "hw/row_iterator.py", "ev.ready.eq(~nx_valid_next)",
           "ev.ready.eq(~nx_valid & (~rd_ok | load))", ("tests/test_row_iterator.py",)),
    Mutant("rows-accept-overfull", "hw/row_iterator.py", "ev.ready.eq(~nx_valid_next)",
           "ev.ready.eq(~nx_valid | load)", ("tests/test_row_iterator.py",)),
    Mutant("rows-pair-past-row-end", "hw/row_iterator.py",
           "two.eq((cur.kind == self.pair_kind) & (cur_p + 1 != cur_hi))", "two.eq(cur.kind == self.pair_kind)",
           ("tests/test_row_iterator.py",)),
    Mutant("pipe-lane2-wrong-bank", "hw/update_pipeline.py",
           "syn_data2 = syn_layout(Mux(b_op.par, syn_er.data, syn_or.data))",
           "syn_data2 = syn_layout(Mux(b_op.par, syn_or.data, syn_er.data))", PIPE),
    Mutant("ctrl-add-during-drain", "hw/step_controller.py", "ring_rows(Const((1 << K) - 1 - int(has_d0), K))",
           "ring_rows(Const((1 << K) - 1, K))", CTRL),
    # ---- the deferring ring bound of bench/core.py
    Mutant("bench-defer-async-after-drain", "bench/core.py", "np.minimum(np.maximum(dl - 1, 0), q)",
           "np.minimum(dl, q)", ("tests/test_core_bounds.py",)),
    Mutant("bench-defer-steps-out-of-order", "bench/core.py", "rel[u] = max(rel[u], X[u - 1] + F)",
           "rel[u] = rel[u]", ("tests/test_core_bounds.py",)),
    Mutant("net-no-lag", "hw/network.py", "else (next_t[l] <= decided + spec.run_ahead)", "else Const(1)",
           ("tests/test_network_steps.py",)),
    Mutant("net-snapshot-newest", "hw/network.py", "v = Mux(tag == step, vals[f], v)", "v = vals[f]",
           ("tests/test_network_steps.py",)),
    # ---- the step's fixed phases, overlapped (sixth session)
    Mutant("step-drain-before-stage-b", "hw/step_controller.py",
           "drain_req.valid.eq((j < n_out) & ((j != 0) | (self.rows_idle & self.b_idle)))",
           "drain_req.valid.eq((j < n_out) & ((j != 0) | self.rows_idle))", CTRL),
    Mutant("step-fire-before-rows", "hw/step_controller.py", "ctl_valid.eq((j != 0) | self.rows_idle)",
           "ctl_valid.eq(1)", CTRL),
    Mutant("step-eos-before-stage-b", "hw/step_controller.py", "self.eos.valid.eq(self.rows_idle & self.b_idle)",
           "self.eos.valid.eq(self.rows_idle)", CTRL),
    Mutant("pipe-eos-over-a-spike", "hw/update_pipeline.py",
           "c_quiet.eq(~c_valid | (~fire & ~ring_stall & ~out_stall))", "c_quiet.eq(~c_valid | ~ring_stall)", PIPE),
    # ---- export rounding
    Mutant("export-threshold-trunc", "sw/quantize.py", "t = int(round(float(theta) / float(scale)))",
           "t = int(float(theta) / float(scale))", EXPORT),
    Mutant("export-round-half-up", "sw/quantize.py", "        return torch.round(x)",
           "        return torch.floor(x + 0.5)", EXPORT),
    Mutant("export-clamp-symmetric", "sw/quantize.py", "torch.clamp(w / scale, -q - 1, q)",
           "torch.clamp(w / scale, -q, q)", EXPORT),
    Mutant("export-symmetric-ignored", "sw/quantize.py", "torch.clamp(x, -q, q)", "torch.clamp(x, -q - 1, q)",
           EXPORT),
    Mutant("export-threshold-min", "sw/quantize.py", "return max(1, min(t, qmax(membrane_bits)))",
           "return max(0, min(t, qmax(membrane_bits)))", EXPORT),
]


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def make_scratch(dest: Path) -> None:
    for rel in tracked_files():
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def run_tests(scratch: Path, tests, timeout: float) -> tuple[str, str, float]:
    """Run pytest -x on ``tests`` in the scratch copy: ('pass'|'fail'|'error'|'timeout', first failure, seconds)."""
    env = dict(os.environ, PYTHONPATH=str(scratch), SPIKELINE_HYPOTHESIS="deterministic")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider", *tests]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"no result within {timeout:.0f} s", time.perf_counter() - t0
    dt = time.perf_counter() - t0
    failed = re.findall(r"^FAILED (\S+)", res.stdout, re.M)
    (scratch / "last_pytest.log").write_text(res.stdout + res.stderr)
    if res.returncode == 0:
        return "pass", "", dt
    if res.returncode == 1 and failed:
        return "fail", failed[0], dt
    tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
    return "error", f"pytest exit {res.returncode}: {' | '.join(tail)}", dt


def write_markdown(path: Path, rows: list[dict], n: int, k: int, n_eq: int) -> None:
    cell = lambda x: " ".join(x.split()).replace("|", "\\|")
    lines = ["# Mutation check", "",
             "Made by `python bench/mutants.py --markdown docs/mutants.md` (see the script's docstring).", "",
             f"**{n} mutants, {k} killed**" + (f", {n_eq} equivalent (they survive by design, reason given)."
                                              if n_eq else "."), "",
             "| mutant | file | change | result | killed by (first failing test) |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        res = "killed" if r["killed"] else ("equivalent" if r["equivalent"] else "SURVIVED")
        by = r["killed_by"] or (f"equivalent: {r['equivalent']}" if r["equivalent"] else "")
        lines.append(f"| {r['name']} | `{r['path']}` | `{cell(r['old'])}` → `{cell(r['new'])}` | {res} | "
                     f"`{by}` |" if r["killed_by"] else f"| {r['name']} | `{r['path']}` | `{cell(r['old'])}` → "
                     f"`{cell(r['new'])}` | {res} | {by} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="run the mutants whose name starts with this prefix")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per test run (default 900)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the selected tests")
    ap.add_argument("--out", default=str(ROOT / "build" / "mutants.json"))
    ap.add_argument("--markdown", metavar="PATH", help="also write the table as markdown (e.g. docs/mutants.md)")
    a = ap.parse_args(argv)
    mutants = [m for m in MUTANTS if not a.only or m.name.startswith(a.only)]
    if not mutants:
        print(f"mutants: --only {a.only!r} matches no mutant", file=sys.stderr)
        return 2
    if a.list:
        for m in mutants:
            eq = f"  [equivalent: {m.equivalent}]" if m.equivalent else ""
            print(f"{m.name:26s} {m.describe()}  tests: {' '.join(m.tests)}{eq}")
        return 0
    rows, problems = [], []
    # a terminated run still removes its scratch copy (SIGTERM -> SystemExit -> cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="spikeline-mutants-") as tmp:
        scratch = Path(tmp)
        make_scratch(scratch)
        for m in mutants:  # every mutant must still apply to the current source
            text = (scratch / m.path).read_text()
            if text.count(m.old) != 1:
                problems.append(f"{m.name}: the text to mutate occurs {text.count(m.old)} times in {m.path} "
                                f"(the source changed: update the mutant)")
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 2
        if not a.no_baseline:
            tests = sorted({t for m in mutants for t in m.tests})
            status, first, dt = run_tests(scratch, tests, a.timeout * 2)
            print(f"baseline (unmutated) {' '.join(tests)}: {status} in {dt:.0f} s", flush=True)
            if status != "pass":
                log = (scratch / "last_pytest.log").read_text().splitlines()
                print("\n".join(log[-40:]), file=sys.stderr)
                print(f"mutants: the unmutated tests do not pass ({first}); fix them first", file=sys.stderr)
                return 2
        for m in tqdm(mutants, desc="mutants", file=sys.stderr):
            path = scratch / m.path
            original = path.read_text()
            path.write_text(original.replace(m.old, m.new))
            try:
                status, first, dt = run_tests(scratch, m.tests, a.timeout)
            finally:
                path.write_text(original)
            killed = status in ("fail", "timeout")
            rows.append({**asdict(m), "status": status, "killed": killed, "killed_by": first, "seconds": round(dt, 1)})
    n, k = len(rows), sum(r["killed"] for r in rows)
    w = max(len(r["name"]) for r in rows)
    print(f"\n{'mutant':{w}s}  {'result':9s}  {'s':>5s}  killed by / note")
    print("-" * (w + 60))
    for r in rows:
        res = "killed" if r["killed"] else ("equivalent" if r["equivalent"] else r["status"].upper())
        note = r["killed_by"] or (r["equivalent"] and f"equivalent: {r['equivalent']}") or "SURVIVED"
        print(f"{r['name']:{w}s}  {res:9s}  {r['seconds']:5.0f}  {note}")
    bad = []
    for r in rows:
        if r["status"] == "error":
            bad.append(f"{r['name']}: the tests errored instead of failing ({r['killed_by']})")
        elif not r["killed"] and not r["equivalent"]:
            bad.append(f"{r['name']} SURVIVED: {r['path']}: {r['old'].strip()!r} -> {r['new'].strip()!r} "
                       f"is not caught by {' '.join(r['tests'])}")
        elif r["killed"] and r["equivalent"]:
            bad.append(f"{r['name']} is marked equivalent but {r['killed_by']} kills it: remove the mark")
    n_eq = sum(1 for r in rows if r["equivalent"] and not r["killed"])
    print(f"\n{n} mutants, {k} killed" + (f" ({n_eq} equivalent, survive by design)" if n_eq else ""))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"mutants": n, "killed": k, "equivalent": n_eq, "rows": rows}, indent=1))
    print(f"wrote {out}")
    if a.markdown:
        write_markdown(Path(a.markdown), rows, n, k, n_eq)
        print(f"wrote {a.markdown}")
    if bad:
        print("\n".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
