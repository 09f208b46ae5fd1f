"""The restricted .npy loader: data comes back intact, code never runs."""
from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from numpy.lib import format as npy_format

from keypointnerf.data.safe_pickle import load_npy, safe_unpickle
from keypointnerf.errors import UserError
from zju_fixtures import MarkerPayload


def test_dict_round_trip_keeps_arrays_and_unwraps_scalars(tmp_path):
    data = {"cams": {"K": [np.eye(3) * 2, np.eye(3)], "T": [np.arange(3.0).reshape(3, 1)]},
            "ims": [{"ims": ["Camera_B1/000000.jpg", "Camera_B2/000000.jpg"]}],
            "count": np.int64(7), "scale": np.float32(0.5), "name": "x", "ids": {1, 2}, "pair": (1, "a")}
    np.save(tmp_path / "annots.npy", data, allow_pickle=True)  # a 0-d object array holding the dict
    loaded = load_npy(tmp_path / "annots.npy")
    assert isinstance(loaded, dict)
    np.testing.assert_array_equal(loaded["cams"]["K"][0], np.eye(3) * 2)
    np.testing.assert_array_equal(loaded["cams"]["T"][0], [[0.0], [1.0], [2.0]])
    assert loaded["ims"][0]["ims"][1] == "Camera_B2/000000.jpg"
    assert loaded["count"] == 7 and type(loaded["count"]) is int
    assert loaded["scale"] == 0.5 and type(loaded["scale"]) is float
    assert loaded["ids"] == {1, 2} and loaded["pair"] == (1, "a") and loaded["name"] == "x"


def test_plain_array_loads_without_pickle(tmp_path):
    array = np.arange(72, dtype=np.float32).reshape(24, 3)
    np.save(tmp_path / "joints.npy", array)
    loaded = load_npy(tmp_path / "joints.npy")
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, array)


def test_object_array_of_arrays_becomes_list(tmp_path):
    array = np.empty(2, dtype=object)
    array[0], array[1] = np.ones(3), "b"
    np.save(tmp_path / "objs.npy", array, allow_pickle=True)
    loaded = load_npy(tmp_path / "objs.npy")
    assert isinstance(loaded, list) and loaded[1] == "b"
    np.testing.assert_array_equal(loaded[0], np.ones(3))


def test_protocol2_pickle_with_codecs_bytes_loads(tmp_path):
    """Protocol-2 pickles written by Python 3 rebuild bytes via _codecs.encode(..., 'latin1')."""
    array = np.array({"Rh": np.array([[0.1, 0.2, 0.3]]), "raw": b"\x00\xffab"}, dtype=object)
    with open(tmp_path / "p2.npy", "wb") as handle:
        npy_format.write_array_header_1_0(handle, npy_format.header_data_from_array_1_0(array))
        pickle.dump(array, handle, protocol=2)
    loaded = load_npy(tmp_path / "p2.npy")
    np.testing.assert_allclose(loaded["Rh"], [[0.1, 0.2, 0.3]])
    assert loaded["raw"] == b"\x00\xffab"


def _write_object_npy(path, payload):
    array = np.empty((), dtype=object)
    array[()] = {"cams": {}, "ims": [], "evil": payload}
    np.save(path, array, allow_pickle=True)


@pytest.mark.parametrize("reducer,make_args,forbidden", [
    (os.system, lambda marker: (f"touch '{marker}'",), "system"),
    (builtins.eval, lambda marker: (f"open({str(marker)!r}, 'w').close()",), "builtins.eval"),
    (subprocess.call, lambda marker: (["touch", str(marker)],), "subprocess.call"),
])
def test_crafted_pickle_is_refused_without_running(tmp_path, reducer, make_args, forbidden):
    marker = tmp_path / "pwned"
    path = tmp_path / "annots.npy"
    _write_object_npy(path, MarkerPayload(reducer, make_args(marker)))

    # The payload is live: an unrestricted load in a child process does create the marker.
    child = subprocess.run([sys.executable, "-c",
                            "import numpy, sys; numpy.load(sys.argv[1], allow_pickle=True)", str(path)],
                           capture_output=True, text=True, timeout=60)
    assert marker.exists(), child.stderr
    marker.unlink()

    with pytest.raises(UserError) as info:
        load_npy(path)
    message = str(info.value)
    assert str(path) in message and forbidden in message        # the file and the global it would have called
    assert not marker.exists()


def test_codecs_with_other_codec_refused():
    # _codecs.encode is admitted only for latin1 (other codec names trigger imports)
    data = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x06\x00\x00\x00base64q\x02\x86q\x03Rq\x04."
    with pytest.raises(UserError, match="x.npy"):
        safe_unpickle(data, source="x.npy")
    ok = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03Rq\x04."
    assert safe_unpickle(ok) == b"abc"


def test_truncated_and_garbage_files(tmp_path):
    np.save(tmp_path / "good.npy", {"a": np.ones((100, 3))}, allow_pickle=True)
    raw = (tmp_path / "good.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="cut.npy"):
        load_npy(tmp_path / "cut.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(UserError, match="junk.npy"):
        load_npy(tmp_path / "junk.npy")
    with pytest.raises(UserError, match="missing.npy"):
        load_npy(tmp_path / "missing.npy")
