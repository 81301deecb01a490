"""The model file: exact round trip and one clear, field-naming error per rule."""
import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from hw import model_file as mf
from hw.model_file import Layer, Model, ModelFileError, Widths


def make_model(**over):
    rng = np.random.default_rng(1)
    L0 = Layer(np.array([0, 2, 5]), rng.integers(-128, 128, (3, 4, 3)).astype(np.int8), threshold=50, decay=3000, reset="subtract")
    L1 = Layer(np.array([1]), rng.integers(-128, 128, (1, 3, 2)).astype(np.int8), threshold=1, decay=4096, spiking=False)
    kw = dict(layers=[L0, L1], n_inputs=4, T=20, dt=0.01, widths=Widths(), info={"note": "test"})
    kw.update(over)
    return Model(**kw)


def test_round_trip_is_exact(tmp_path):
    m = make_model()
    p = mf.save(m, tmp_path / "m.safetensors")
    back = mf.load(p)
    assert back.n_inputs == 4 and back.T == 20 and back.dt == 0.01 and back.widths == m.widths
    assert back.info == {"note": "test"}
    for a, b in zip(m.layers, back.layers):
        assert a.weights.dtype == b.weights.dtype and np.array_equal(a.weights, b.weights)
        assert a.delays.tolist() == b.delays.tolist()
        assert (a.threshold, a.decay, a.reset, a.spiking) == (b.threshold, b.decay, b.reset, b.spiking)
    # saving what was loaded gives identical bytes: nothing is lost or reordered
    p2 = mf.save(back, tmp_path / "m2.safetensors")
    assert p.read_bytes() == p2.read_bytes()


def test_file_contains_no_pickle(tmp_path):
    p = mf.save(make_model(), tmp_path / "m.safetensors")
    (n,) = struct.unpack("<Q", p.read_bytes()[:8])
    header = json.loads(p.read_bytes()[8:8 + n])  # plain JSON header, raw tensors after it
    assert "spikeline" in header["__metadata__"]
    assert b"\x80\x04" not in p.read_bytes()[:8 + n]


def layer(m, i=0):
    return m.layers[i]


BAD_MODELS = [
    ("layers[0].delays", lambda m: setattr(layer(m), "delays", np.array([], dtype=np.int64))),
    ("layers[0].weights", lambda m: setattr(layer(m), "delays", np.array([0, 2]))),  # K != len(delays)
    ("layers[0].delays", lambda m: setattr(layer(m), "delays", np.array([2, 0, 5]))),
    ("layers[0].delays", lambda m: setattr(layer(m), "delays", np.array([0, 2, 2]))),
    ("layers[0].delays", lambda m: setattr(layer(m), "delays", np.array([0, 2, 64]))),
    ("layers[0].weights", lambda m: setattr(layer(m), "weights", layer(m).weights.astype(np.float32))),
    ("layers[0].weights", lambda m: setattr(layer(m), "weights", np.full((3, 4, 3), 128, dtype=np.int16))),
    ("layers[0].weights", lambda m: setattr(layer(m), "weights", np.full((3, 4, 3), -129, dtype=np.int16))),
    ("layers[0].delays", lambda m: setattr(layer(m), "delays", np.array([-1, 2, 5]))),
    ("layers[0].threshold", lambda m: setattr(layer(m), "threshold", True)),
    ("layers[0].decay", lambda m: setattr(layer(m), "decay", 100.0)),
    ("layers[0].spiking", lambda m: setattr(layer(m), "spiking", 1)),
    ("layers[0].weights", lambda m: setattr(layer(m), "weights", np.zeros((3, 5, 3), dtype=np.int8))),  # n_in vs n_inputs
    ("layers[1].weights", lambda m: setattr(layer(m, 1), "weights", np.zeros((1, 4, 2), dtype=np.int8))),  # n_in vs prev n_out
    ("layers[0].threshold", lambda m: setattr(layer(m), "threshold", 0)),
    ("layers[0].threshold", lambda m: setattr(layer(m), "threshold", 2.5)),
    ("layers[0].threshold", lambda m: setattr(layer(m), "threshold", 2**23)),
    ("layers[1].threshold", lambda m: setattr(layer(m, 1), "threshold", -1)),
    ("layers[0].decay", lambda m: setattr(layer(m), "decay", 4097)),
    ("layers[0].decay", lambda m: setattr(layer(m), "decay", -1)),
    ("layers[0].reset", lambda m: setattr(layer(m), "reset", "hard")),
    ("layers[1].spiking", lambda m: setattr(layer(m, 1), "spiking", True)),
    ("layers[0].spiking", lambda m: setattr(layer(m), "spiking", False)),
    ("layers", lambda m: m.layers.clear()),
]


@pytest.mark.parametrize("field,breaks", BAD_MODELS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_MODELS)])
def test_validate_names_the_field(field, breaks, tmp_path):
    m = make_model()
    breaks(m)
    with pytest.raises(ModelFileError) as e:
        mf.save(m, tmp_path / "bad.safetensors")
    assert e.value.field == field
    assert f"'{field}'" in str(e.value)
    assert not (tmp_path / "bad.safetensors").exists()  # nothing half-written


def test_accumulator_overflow_is_refused_and_named_with_acc_bits():
    w = Widths(weight_bits=8, acc_bits=10)  # limit: sum |W| < 512
    W = np.full((1, 5, 1), 100, dtype=np.int8)  # 500: allowed
    ok = Model([Layer(np.array([0]), W, 1, 0, spiking=False)], 5, 4, widths=w)
    mf.validate(ok)
    W2 = np.full((2, 5, 1), 60, dtype=np.int8)  # 600 across taps: refused
    bad = Model([Layer(np.array([0, 1]), W2, 1, 0, spiking=False)], 5, 4, widths=w)
    with pytest.raises(ModelFileError, match="acc_bits=10") as e:
        mf.validate(bad)
    assert e.value.field == "layers[0].weights"


def readout_model(W, delays=(0,), widths=Widths(weight_bits=8, acc_bits=10)):
    W = np.asarray(W)
    return Model([Layer(np.array(delays), W, 1, 0, spiking=False)], W.shape[1], 4, widths=widths)


def _column(total, n=5, k=1, sign=1):
    """A [k, n] block of weights whose |sum| is exactly ``total`` (signs mixed when sign=-1)."""
    vals = np.full(k * n, total // (k * n), dtype=np.int64)
    vals[: total % (k * n)] += 1
    if sign < 0:
        vals[::2] *= -1
    return vals.reshape(k, n)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("sign", [1, -1])
def test_accumulator_rule_boundary_511_512(k, sign, tmp_path):
    # acc_bits = 10: the worst-case sum must stay below 2^9 = 512; 511 fits, 512 does not.
    # Two output columns: column 0 always at 511, column 1 decides; |W| counts negative taps too.
    for total, ok in ((511, True), (512, False)):
        W = np.zeros((k, 5, 2), dtype=np.int16)
        W[:, :, 0] = _column(511, k=k, sign=sign)
        W[:, :, 1] = _column(total, k=k, sign=sign)
        m = readout_model(W, delays=tuple(range(k)))
        p = tmp_path / f"m{total}.safetensors"
        if ok:
            mf.save(m, p)
            assert np.array_equal(mf.load(p).layers[0].weights, W)
        else:
            with pytest.raises(ModelFileError, match="acc_bits=10") as e:
                mf.save(m, p)
            assert e.value.field == "layers[0].weights"
            write_raw(p, {"layers.0.weights": W}, raw_header(m))  # and through load() from a file
            with pytest.raises(ModelFileError, match="acc_bits=10") as e:
                mf.load(p)
            assert e.value.field == "layers[0].weights"


def test_accumulator_rule_is_per_column_not_per_matrix_or_row():
    # each column sums to 300 (< 512) though the whole matrix sums to 1200: accepted
    W = np.zeros((1, 5, 4), dtype=np.int16)
    W[0, :, :] = 60
    mf.validate(readout_model(W))
    # column 2 alone reaches 512, the other columns stay at 300: refused (the worst column counts)
    W[0, :, 2] = [120, 120, 120, 120, 32]  # 512
    with pytest.raises(ModelFileError, match="512"):
        mf.validate(readout_model(W))


@pytest.mark.parametrize("wb,values,ok", [
    (8, [-128, 127], True), (8, [-129], False), (8, [128], False),
    (4, [-8, 7], True), (4, [-9], False), (4, [8], False),
    (2, [-2, 1], True), (2, [-3], False), (2, [2], False),
])
def test_weight_range_boundaries(wb, values, ok, tmp_path):
    W = np.zeros((1, 2, 1), dtype=np.int16)
    W[0, : len(values), 0] = values
    m = readout_model(W, widths=Widths(weight_bits=wb, acc_bits=16))
    p = tmp_path / "w.safetensors"
    write_raw(p, {"layers.0.weights": W}, raw_header(m))
    if ok:
        mf.validate(m)
        assert mf.load(p).layers[0].weights[0, :, 0].tolist()[: len(values)] == values
    else:
        for check in (lambda: mf.validate(m), lambda: mf.load(p)):
            with pytest.raises(ModelFileError, match=f"weight_bits={wb}") as e:
                check()
            assert e.value.field == "layers[0].weights"


@pytest.mark.parametrize("field,edit", [
    ("layers[0].threshold", lambda m: setattr(layer(m), "threshold", 2**23 - 1)),  # the membrane maximum
    ("layers[0].threshold", lambda m: setattr(layer(m), "threshold", 1)),
    ("layers[0].decay", lambda m: setattr(layer(m), "decay", 0)),
    ("layers[0].decay", lambda m: setattr(layer(m), "decay", 4096)),
    ("layers[0].delays", lambda m: setattr(layer(m), "delays", np.array([0, 2, 63]))),  # max_delay itself
])
def test_values_at_the_boundary_are_accepted(field, edit, tmp_path):
    m = make_model()
    edit(m)
    back = mf.load(mf.save(m, tmp_path / "ok.safetensors"))
    got = {"threshold": layer(back).threshold, "decay": layer(back).decay, "delays": layer(back).delays.tolist()}
    want = {"threshold": layer(m).threshold, "decay": layer(m).decay, "delays": layer(m).delays.tolist()}
    assert got == want


def write_raw(path, tensors, header):
    save_file(tensors, str(path), metadata={"spikeline": json.dumps(header)} if header is not None else None)


def raw_header(m):
    """The file header of ``m`` with every value as given (no coercion), to write
    models that ``save`` would refuse."""
    py = lambda x: x.item() if isinstance(x, np.generic) else x
    return {"schema_version": mf.SCHEMA_VERSION, "n_inputs": py(m.n_inputs), "T": py(m.T), "dt": py(m.dt),
            "widths": m.widths.as_dict(),
            "layers": [{"n_in": int(L.weights.shape[1]) if L.weights.ndim == 3 else 0,
                        "n_out": int(L.weights.shape[2]) if L.weights.ndim == 3 else 0,
                        "delays": [py(d) for d in np.asarray(L.delays).tolist()],
                        "threshold": py(L.threshold), "decay": py(L.decay), "reset": py(L.reset),
                        "spiking": py(L.spiking)} for L in m.layers],
            "info": {}}


@pytest.mark.parametrize("field,breaks", BAD_MODELS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_MODELS)])
def test_load_of_a_file_names_the_field(field, breaks, tmp_path):
    """Every rule again, through load() on a file written without validation."""
    m = make_model()
    breaks(m)
    p = tmp_path / "bad.safetensors"
    write_raw(p, {f"layers.{l}.weights": np.ascontiguousarray(L.weights) for l, L in enumerate(m.layers)},
              raw_header(m))
    with pytest.raises(ModelFileError) as e:
        mf.load(p)
    assert e.value.field == field and str(p) in str(e.value)


def good_header_and_tensors(tmp_path):
    p = mf.save(make_model(), tmp_path / "ok.safetensors")
    from safetensors import safe_open
    with safe_open(str(p), framework="np") as fh:
        return json.loads(fh.metadata()["spikeline"]), {k: fh.get_tensor(k) for k in fh.keys()}


@pytest.mark.parametrize("field,edit", [
    ("schema_version", lambda h, t: h.update(schema_version=99)),
    ("schema_version", lambda h, t: h.pop("schema_version")),
    ("widths.acc_bits", lambda h, t: h["widths"].pop("acc_bits")),
    ("layers[0].threshold", lambda h, t: h["layers"][0].pop("threshold")),
    ("layers[1].delays", lambda h, t: h["layers"][1].update(delays=[0.5])),
    ("layers[0].n_out", lambda h, t: h["layers"][0].update(n_out=7)),
    ("layers[1].weights", lambda h, t: t.pop("layers.1.weights")),
    ("layers", lambda h, t: t.update({"layers.9.weights": np.zeros((1, 1, 1), np.int8)})),
    ("T", lambda h, t: h.update(T=0)),
    ("n_inputs", lambda h, t: h.pop("n_inputs")),
])
def test_load_names_the_field_of_a_bad_file(field, edit, tmp_path):
    h, t = good_header_and_tensors(tmp_path)
    edit(h, t)
    p = tmp_path / "bad.safetensors"
    write_raw(p, t, h)
    with pytest.raises(ModelFileError) as e:
        mf.load(p)
    assert e.value.field == field and str(p) in str(e.value)


def test_load_refuses_files_that_are_not_model_files(tmp_path):
    good = mf.save(make_model(), tmp_path / "ok.safetensors")
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(good.read_bytes()[:-10])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"PK\x03\x04 this is a zip, not safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"x": np.zeros(2, np.int8)}, str(plain))
    for p, fld in ((trunc, "file"), (garbage, "file"), (plain, "spikeline"), (tmp_path / "missing", "file")):
        with pytest.raises(ModelFileError) as e:
            mf.load(p)
        assert e.value.field == fld and str(p) in str(e.value)
    h, t = good_header_and_tensors(tmp_path)
    bad_json = tmp_path / "badjson.safetensors"
    save_file(t, str(bad_json), metadata={"spikeline": "{not json"})
    with pytest.raises(ModelFileError, match="JSON"):
        mf.load(bad_json)
