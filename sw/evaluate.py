"""Run exported model files in hw.reference and report what they do.

    python -m sw.evaluate --model build/model.safetensors [--model other.safetensors ...]
                          --data synthetic|offline|<SHD dir or .h5 file>
                          [--execution layered|async ...] [--delay-unit scdq|ring ...]
                          [--samples N] [--seed S] [--pool P] [--json out.json]
                          [--extra-test FILE ...] [--no-shifted]

For every (model, split, execution, delay unit) the table gives accuracy, spike
density per hidden layer (spikes / (T * neurons)), synaptic operations per
inference, time to decision in steps (mean and median) and the peak SCDQ
occupancy per layer. Delay units only change async execution, so layered rows
are run once. The test split is used, defined as in ``sw.trainer``
(synthetic classes from ``--seed``, default the model's training seed).

Binning follows the model file: ``dt``, ``T`` and, when the model was trained with
it, the word-duration normalization ``time_norm`` (``sw.data.time_norm``), so every
split is binned as the model's training data was.

Generalization: besides the test split, the shifted test splits that the
offline generator writes next to it (``shd_test_{slow,fast,noisy}.h5``, speech
made with parameters outside the training range, ``sw.data.generate.SHIFTS``)
are evaluated when the data folder has them, and so is every SHD-format file
named with ``--extra-test``. A second table gives each model's accuracy per split
next to the in-distribution one; with several models (for example one per
seed) it adds their mean, each model's value staying in its own row.

Speakers: when a file records them (``extra/speaker``), each row also gives the
accuracy per speaker (``--per-speaker`` prints it), and a split whose speakers
are all test speakers is also compared with the test split *on its own speakers*:
the test accuracy per speaker weighted by that split's speaker counts. Speakers
differ widely in difficulty, so a split holding only some of the test speakers,
or in other shares, would otherwise mix speaker difficulty into its gap; the
generalization table then adds that speaker-matched gap.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json

import numpy as np
from tqdm import tqdm

from hw.model_file import Model, ModelFileError, load
from sw.errors import EXIT_OK, InputError, check_out_dir, guarded, write_json
from sw.metrics import neurobench
from hw.reference import DELAY_UNITS, MODES, simulate

SHD_CHANNELS = 700


class DataMismatch(InputError):
    """Model file and data set do not fit together; the message names both."""


# ---------------------------------------------------------------- data
def shifted_files(source: str) -> dict[str, Path]:
    """``{name: path}`` of the shifted test splits next to the test split of ``source``
    (``offline`` = the default set; a folder holding ``shd_test.h5``); empty otherwise."""
    from sw.data.generate import SHIFTS, default_shifted_splits, shifted_path

    if source == "synthetic":
        return {}
    if source == "offline":
        return default_shifted_splits()
    p = Path(source)
    if not p.is_dir():
        return {}
    root = p if (p / "shd_test.h5").is_file() else p / "SHD"
    return {name: shifted_path(root, name) for name in SHIFTS if shifted_path(root, name).is_file()}


def load_split(path: str | Path, model: Model, model_path: str = "model", samples: int | None = None,
               pool: int | None = None, flag: str = "--extra-test") -> tuple[np.ndarray, np.ndarray]:
    """Rasters ``(X, y)`` of one SHD-format file for ``model``; errors name ``flag`` and the file."""
    from sw.data.shd import load_rasters

    path = Path(path)
    if not path.is_file():
        raise DataMismatch(f"{flag}: no such file '{path}'")
    if samples is not None and samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    if pool is None:
        if SHD_CHANNELS % model.n_inputs:
            raise DataMismatch(f"model '{model_path}' has n_inputs={model.n_inputs}, which is not "
                               f"{SHD_CHANNELS} / pool for any pool (SHD has {SHD_CHANNELS} channels)")
        pool = SHD_CHANNELS // model.n_inputs
    try:
        X, y = load_rasters(path, dt=float(model.dt), T=int(model.T), pool=pool, limit=samples,
                            time_norm=model.time_norm)
    except (OSError, KeyError, ValueError) as e:
        raise DataMismatch(f"{flag}: '{path}' is not a readable SHD-format file ({e})") from None
    try:
        check_fit(model, X, y, model_path)
    except DataMismatch as e:
        raise DataMismatch(f"{flag} '{path}': {e}") from None
    return X, y


def _shd_files(src: str) -> tuple[Path, Path | None]:
    p = Path(src)
    if p.is_file():
        return p, None
    for te in (p / "shd_test.h5", p / "SHD" / "shd_test.h5"):
        if te.is_file():
            return te, None
    raise DataMismatch(f"--data '{src}' is neither 'synthetic', 'offline', an SHD .h5 file nor a directory "
                       "holding shd_test.h5")


def _training_config(model: Model, model_path: str) -> dict | None:
    """The training config stored with the model's float checkpoint, if it can be found."""
    ck = model.info.get("float_checkpoint") if isinstance(model.info, dict) else None
    if not ck:
        return None
    p = Path(ck) if Path(ck).is_absolute() else Path(model_path).parent / ck
    if not p.is_file():
        return None
    import json

    import torch

    return json.loads(torch.load(p, map_location="cpu", weights_only=True)["config"])


def load_eval_data(source: str, model: Model, model_path: str = "model", samples: int | None = None,
                   seed: int | None = None, pool: int | None = None,
                   provenance: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Test rasters ``(X bool [N, T, C], y)`` for ``model``, checked against it.

    ``provenance``: a dict that receives :func:`check_provenance`'s verdict for file data."""
    if samples is not None and samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    if seed is None:
        seed = int(model.info.get("seed", 0)) if isinstance(model.info, dict) else 0
    if source == "synthetic":
        from sw.config import load_config

        if model.time_norm is not None:
            raise DataMismatch(f"model '{model_path}' has a time_norm front-end (event data only), which the "
                               "synthetic task's rasters cannot take")
        from sw.data.splits import load_data

        data = {"source": "synthetic", "T": int(model.T), "dt": float(model.dt), "val_fraction": 0.0}
        trained = _training_config(model, model_path)
        if trained is not None:  # the task the model was trained on, not the default one
            data["synthetic"] = trained["data"]["synthetic"]
        cfg = load_config(overrides={"seed": seed, "data": data})
        C = cfg["data"]["synthetic"]["n_channels"]
        if C != model.n_inputs:
            raise DataMismatch(f"model '{model_path}' has n_inputs={model.n_inputs} but the synthetic task has "
                               f"{C} channels")
        split = load_data(cfg)
        X, y = split.Xte, split.yte
    else:
        from sw.data.shd import load_rasters

        if pool is None:
            if SHD_CHANNELS % model.n_inputs:
                raise DataMismatch(f"model '{model_path}' has n_inputs={model.n_inputs}, which is not "
                                   f"{SHD_CHANNELS} / pool for any pool (SHD has {SHD_CHANNELS} channels)")
            pool = SHD_CHANNELS // model.n_inputs
        from sw.data import tonic_io

        if tonic_io.parse(source) is not None:  # tonic's SHD / SSC classes, local files only
            X, y, _, path = tonic_io.load(source, "test", float(model.dt), int(model.T), pool, samples,
                                          model.time_norm)
        else:
            if source == "offline":
                from sw.data.generate import ensure_default_dataset

                path = ensure_default_dataset()[1]
            else:
                path = _shd_files(source)[0]
            X, y = load_rasters(path, dt=float(model.dt), T=int(model.T), pool=pool, limit=samples,
                                time_norm=model.time_norm)
        verdict = check_provenance(model, source, path, model_path)
        if provenance is not None:
            provenance.update(verdict, file=str(path))
        if X.shape[2] != model.n_inputs:
            raise DataMismatch(f"model '{model_path}' has n_inputs={model.n_inputs} but '{path}' with pool={pool} "
                               f"gives {X.shape[2]} channels")
    if samples is not None:
        X, y = X[:samples], y[:samples]
    if len(X) == 0:
        raise DataMismatch(f"'{source}': the test split holds 0 samples")
    check_fit(model, X, y, model_path)
    return X, y


def check_provenance(model: Model, source: str, path, model_path: str = "model", warn=None) -> dict:
    """Compare the test file about to be used with the one the model was trained on (``info.data_hash``,
    written by ``sw.trainer``). A different file is never silent: a warning line on stderr names both.
    Returns ``{"trained_on", "evaluated_on", "match"}`` (``match`` None when the model records no hash)."""
    from sw.data.tonic_io import file_hash

    warn = warn or (lambda m: print(m, file=sys.stderr))
    trained_src, trained_hash = model.info.get("data_source"), model.info.get("data_hash")
    out = {"trained_on": trained_src, "evaluated_on": str(source), "match": None}
    if trained_hash:
        out["match"] = file_hash(path) == trained_hash
        if not out["match"]:
            warn(f"warning: model '{model_path}' was trained on '{trained_src}' ({trained_hash[:19]}...), but "
                 f"--data '{source}' reads '{path}', a different data set: its figures are not the model's "
                 "test accuracy")
    return out


def check_fit(model: Model, X: np.ndarray, y: np.ndarray, model_path: str = "model") -> None:
    """Raise :class:`DataMismatch` naming the field when ``X``/``y`` do not fit ``model``."""
    if X.ndim != 3:
        raise DataMismatch(f"data must be rasters [N, T, C], got shape {X.shape}")
    if X.shape[1] != model.T:
        raise DataMismatch(f"model '{model_path}' has T={model.T} steps but the data has T={X.shape[1]}")
    if X.shape[2] != model.n_inputs:
        raise DataMismatch(f"model '{model_path}' has n_inputs={model.n_inputs} but the data has "
                           f"{X.shape[2]} channels")
    if len(y) != len(X):
        raise DataMismatch(f"data has {len(X)} rasters but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= model.n_classes):
        raise DataMismatch(f"model '{model_path}' has {model.n_classes} classes but the labels span "
                           f"{int(y.min())}..{int(y.max())}")


# ---------------------------------------------------------------- metrics
def evaluate_model(model: Model, X: np.ndarray, y: np.ndarray, execution: str = "layered",
                   delay_unit: str = "scdq", progress: bool = True, label: str = "") -> dict:
    """Run ``hw.reference`` and summarize one (model, execution, delay unit)."""
    if execution not in MODES:
        raise ValueError(f"--execution must be one of {MODES}, got {execution!r}")
    if delay_unit not in DELAY_UNITS:
        raise ValueError(f"--delay-unit must be one of {DELAY_UNITS}, got {delay_unit!r}")
    check_fit(model, X, y, label or "model")
    bar = tqdm(total=len(y), desc=f"{label} {execution}/{delay_unit}".strip(), leave=False,
               disable=not progress, file=sys.stderr)
    ref = simulate(model, X, execution, delay_unit, progress=lambda n: bar.update(n - bar.n))
    bar.close()
    hidden = [l for l, L in enumerate(model.layers) if L.spiking]
    ttd = ref.time_to_decision
    sops = ref.sops  # [B, L]
    return {
        "model": label, "execution": execution, "delay_unit": delay_unit if execution == "async" else "-",
        "samples": int(len(y)), "T": int(model.T),
        "accuracy": float((ref.predictions == y).mean()),
        "spike_density": [float(ref.spikes(l).mean()) for l in hidden],
        "spikes_per_inference": [float(ref.spikes(l).sum(axis=(1, 2)).mean()) for l in hidden],
        "sops_per_inference": float(sops.sum(1).mean()),
        "sops_per_layer": [float(x) for x in sops.mean(0)],
        "time_to_decision_mean": float(ttd.mean()), "time_to_decision_median": float(np.median(ttd)),
        "scdq_peak_occupancy": [int(x) for x in ref.occupancy.max(axis=(0, 2))],
        "neurobench": neurobench(model, sops, np.stack([ref.spikes(l).sum(axis=(1, 2)) for l in hidden], axis=1)
                                 if hidden else np.zeros((len(y), 0)), ref.predictions, y),
        "predictions": ref.predictions.tolist(),
    }


def format_table(rows: list[dict]) -> str:
    head = (f"{'model':<34} {'split':<8} {'exec':<7} {'unit':<4} {'N':>5} {'acc %':>6} {'density/layer':<20} "
            f"{'SOP/inf':>9} {'TTD mean':>8} {'TTD med':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        dens = " ".join(f"{d:.4f}" for d in r["spike_density"])
        name = r["model"] if len(r["model"]) <= 34 else "/".join(Path(r["model"]).parts[-2:])[-34:]
        split = r.get("split", "test")
        split = split if len(split) <= 8 else split[:2] + ".." + split[-4:]
        lines.append(f"{name:<34} {split:<8} {r['execution']:<7} {r['delay_unit']:<4} {r['samples']:>5} "
                     f"{100 * r['accuracy']:>6.2f} {dens:<20} {r['sops_per_inference']:>9.1f} "
                     f"{r['time_to_decision_mean']:>8.2f} {r['time_to_decision_median']:>7.1f}")
    return "\n".join(lines)


def split_speakers(path, n: int) -> np.ndarray | None:
    """Speaker ids of the first ``n`` samples of an SHD-format file, or ``None`` when it records none."""
    from sw.data.shd import read_shd

    try:
        sp = read_shd(path).speakers
    except (OSError, KeyError, ValueError):
        return None
    return None if sp is None or len(sp) < n else np.asarray(sp[:n], dtype=np.int64)


def per_speaker(predictions, y, speakers) -> dict:
    """``{speaker id (str): {"n", "accuracy"}}`` of one split."""
    ok = np.asarray(predictions) == np.asarray(y)
    sp = np.asarray(speakers)
    return {str(int(k)): {"n": int((sp == k).sum()), "accuracy": float(ok[sp == k].mean())} for k in np.unique(sp)}


def same_speaker_accuracy(test: dict, split: dict) -> float | None:
    """The test split's accuracy re-weighted to ``split``'s speaker counts (both :func:`per_speaker`
    dicts), or ``None`` when ``split`` has a speaker the test split lacks."""
    if not split or not set(split) <= set(test):
        return None
    n = sum(v["n"] for v in split.values())
    return float(sum(v["n"] * test[k]["accuracy"] for k, v in split.items()) / n)


def run(models: list[str], data: str, executions=("layered",), delay_units=("scdq",), samples=None, seed=None,
        pool=None, progress=True, extra_tests=(), shifted: bool = True) -> list[dict]:
    """One row per (model, split, execution, delay unit); ``split`` is ``test``, a
    shifted split's name or an ``--extra-test`` file; ``speakers`` (per-speaker accuracy)
    when the split's file records speakers."""
    rows = []
    cache: dict = {}
    speakers: dict = {}
    extra = {f"extra:{p}": Path(p) for p in extra_tests}
    others = {**(shifted_files(data) if shifted else {}), **extra}
    for path in models:
        model = load(path)  # raises ModelFileError naming the field
        key = (int(model.T), float(model.dt), int(model.n_inputs), seed if seed is not None else model.info.get("seed"),
               json.dumps(model.time_norm, sort_keys=True))  # the input front-end bins differently
        if key not in cache:
            prov: dict = {}
            cache[key] = {"test": load_eval_data(data, model, str(path), samples, seed, pool, provenance=prov)}
            files = {"test": prov.get("file"), **others}
            for name, f in others.items():
                flag = "--extra-test" if name.startswith("extra:") else f"shifted split '{name}'"
                cache[key][name] = load_split(f, model, str(path), samples, pool, flag)
            speakers[key] = {name: split_speakers(files[name], len(cache[key][name][1])) if files.get(name) else None
                             for name in cache[key]}
        for split, (X, y) in cache[key].items():
            check_fit(model, X, y, str(path))
            for ex in executions:
                for du in (delay_units if ex == "async" else delay_units[:1]):
                    r = evaluate_model(model, X, y, ex, du, progress, str(path))
                    r["split"] = split
                    if speakers[key][split] is not None:
                        r["speakers"] = per_speaker(r["predictions"], y, speakers[key][split])
                    rows.append(r)
    return rows


def generalization(rows: list[dict]) -> list[dict]:
    """Per (model, execution, delay unit): accuracy per split, and the gap of each
    split to the test split (in points); with several models, a mean row last.

    ``test_same_speakers`` / ``gap_same_speakers_points``: per split whose rows carry
    speakers that are all test speakers, the test accuracy re-weighted to that split's
    speaker counts (:func:`same_speaker_accuracy`) and the gap to it."""
    out: dict = {}
    spk: dict = {}
    for r in rows:
        k = (r["model"], r["execution"], r["delay_unit"])
        out.setdefault(k, {"model": r["model"], "execution": r["execution"], "delay_unit": r["delay_unit"],
                           "accuracy": {}})["accuracy"][r.get("split", "test")] = r["accuracy"]
        spk.setdefault(k, {})[r.get("split", "test")] = r.get("speakers")
    res = list(out.values())
    for k, g in zip(out, res):
        t = g["accuracy"].get("test")
        g["gap_points"] = {s: (100 * (a - t) if t is not None else None) for s, a in g["accuracy"].items()
                           if s != "test"}
        ts = spk[k].get("test")
        same = {s: same_speaker_accuracy(ts, sp) for s, sp in spk[k].items() if s != "test" and ts and sp}
        g["test_same_speakers"] = {s: v for s, v in same.items() if v is not None}
        g["gap_same_speakers_points"] = {s: 100 * (g["accuracy"][s] - v) for s, v in g["test_same_speakers"].items()}
    for ex, du in dict.fromkeys((g["execution"], g["delay_unit"]) for g in res):
        group = [g for g in res if (g["execution"], g["delay_unit"]) == (ex, du)]
        if len(group) > 1:
            splits = [s for s in group[0]["accuracy"] if all(s in g["accuracy"] for g in group)]
            mean = {s: float(np.mean([g["accuracy"][s] for g in group])) for s in splits}
            same = {s: float(np.mean([g["test_same_speakers"][s] for g in group])) for s in splits
                    if all(s in g.get("test_same_speakers", {}) for g in group)}
            res.append({"model": f"mean of {len(group)}", "execution": ex, "delay_unit": du, "accuracy": mean,
                        "gap_points": {s: 100 * (a - mean["test"]) for s, a in mean.items() if s != "test"}
                        if "test" in mean else {},
                        "test_same_speakers": same,
                        "gap_same_speakers_points": {s: 100 * (mean[s] - v) for s, v in same.items()}})
    return res


def format_generalization(gen: list[dict]) -> str:
    splits = list(dict.fromkeys(s for g in gen for s in g["accuracy"]))
    names = [s if len(s) <= 12 else "..." + s[-9:] for s in splits]
    head = f"{'model':<34} {'exec':<7} {'unit':<4} " + " ".join(f"{n:>12}" for n in names)
    lines = ["accuracy % per split (gap to test in points)", head, "-" * len(head)]
    for g in gen:
        name = g["model"] if len(g["model"]) <= 34 else "..." + g["model"][-31:]  # runs differ in the folder
        cells = []
        for s in splits:
            a = g["accuracy"].get(s)
            gap = g["gap_points"].get(s)
            cells.append(f"{'-':>12}" if a is None else f"{100 * a:>12.2f}" if gap is None
                         else f"{f'{100 * a:.2f} ({gap:+.1f})':>12}")
        lines.append(f"{name:<34} {g['execution']:<7} {g['delay_unit']:<4} " + " ".join(cells))
    # the speaker-matched gap, where a split's speaker mix differs from the test split's
    differs = [s for s in splits if any(s in g.get("gap_same_speakers_points", {})
                                        and g["gap_points"].get(s) is not None
                                        and abs(g["gap_same_speakers_points"][s] - g["gap_points"][s]) >= 0.05
                                        for g in gen)]
    if differs:
        lines += ["", "gap to the test split on each split's own speakers (test accuracy weighted by its speaker "
                      "counts), in points",
                  f"{'model':<34} {'exec':<7} {'unit':<4} " + " ".join(f"{names[splits.index(s)]:>12}" for s in differs)]
        lines.append("-" * len(lines[-1]))
        for g in gen:
            cells = [f"{g['gap_same_speakers_points'][s]:>+12.1f}" if s in g.get("gap_same_speakers_points", {})
                     else f"{'-':>12}" for s in differs]
            lines.append(f"{_short(g['model'], 34):<34} {g['execution']:<7} {g['delay_unit']:<4} " + " ".join(cells))
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    """``text``, or its tail after "..." when longer than ``width`` (runs differ in the folder)."""
    return text if len(text) <= width else "..." + text[-(width - 3):]


def format_speakers(rows: list[dict]) -> str:
    """Accuracy % per speaker (columns) of every row that carries speakers."""
    ids = sorted({k for r in rows for k in r.get("speakers", {})}, key=int)
    if not ids:
        return "no split records speakers"
    head = f"{'model':<34} {'split':<8} {'exec':<7} {'unit':<4} " + " ".join(f"{'spk ' + k:>8}" for k in ids)
    lines = ["accuracy % per speaker (words in brackets where not all equal)", head, "-" * len(head)]
    for r in rows:
        if "speakers" not in r:
            continue
        sp = r["speakers"]
        counts = {v["n"] for v in sp.values()}
        cells = [f"{'-':>8}" if k not in sp else f"{100 * sp[k]['accuracy']:>8.1f}" if len(counts) == 1
                 else f"{100 * sp[k]['accuracy']:.0f} ({sp[k]['n']})".rjust(8) for k in ids]
        lines.append(f"{_short(r['model'], 34):<34} {_short(r['split'], 8):<8} {r['execution']:<7} {r['delay_unit']:<4} " + " ".join(cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    """Exit codes (sw.errors): 0 ok, 2 bad flag/file/field, 3 internal error."""
    return guarded(_main, argv, "evaluate")


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sw.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, help="model file (repeat to compare)")
    ap.add_argument("--data", required=True, help="synthetic | offline | SHD directory or .h5 file | tonic-shd:ROOT | tonic-ssc:ROOT")
    ap.add_argument("--execution", nargs="+", default=["layered"], choices=MODES)
    ap.add_argument("--delay-unit", nargs="+", default=["scdq"], choices=DELAY_UNITS)
    ap.add_argument("--samples", type=int, help="first N test samples only")
    ap.add_argument("--seed", type=int, help="synthetic task seed (default: the model's training seed)")
    ap.add_argument("--pool", type=int, help="SHD channel pooling (default 700 / n_inputs)")
    ap.add_argument("--extra-test", nargs="+", default=[], metavar="FILE",
                    help="more SHD-format test files, each reported as its own split")
    ap.add_argument("--no-shifted", action="store_true",
                    help="skip the shifted test splits (slow/fast/noisy) found next to the test split")
    ap.add_argument("--per-speaker", action="store_true",
                    help="also print the accuracy per speaker of every split whose file records speakers")
    ap.add_argument("--json", help="also write the rows as JSON here")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    if a.json:
        check_out_dir(Path(a.json).parent, "--json")
        if Path(a.json).is_dir():
            raise InputError(f"--json: '{a.json}' is a folder, not a file")
    try:
        rows = run(a.model, a.data, a.execution, a.delay_unit, a.samples, a.seed, a.pool, not a.no_progress,
                   a.extra_test, not a.no_shifted)
    except (ValueError, OSError) as e:  # a data problem; a model-file problem names its file and field
        if isinstance(e, ModelFileError):
            raise
        if str(e).startswith(("--extra-test", "shifted split")):  # already names its flag and file
            raise InputError(str(e)) from None
        raise InputError(f"--data: {e}") from None
    print(format_table(rows))
    if len({r.get("split") for r in rows}) > 1 or len(a.model) > 1:
        print()
        print(format_generalization(generalization(rows)))
    if a.per_speaker:
        print()
        print(format_speakers(rows))
    if a.json:
        write_json(rows, a.json)
        print(f"wrote {a.json}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
