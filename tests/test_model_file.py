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


def write_raw(path, tensors, header):
    save_file(tensors, str(path), metadata={"spikeline": json.dumps(header)} if header is not None else None)


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
