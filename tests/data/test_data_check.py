"""``keypointnerf data check`` on good data and on broken copies of it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keypointnerf.cli import main
from helpers import assert_names
from zju_fixtures import MarkerPayload, make_subject, save_pickled


@pytest.fixture(scope="module")
def good_root(tmp_path_factory):
    """Two subjects: Camera_B layout (4 cameras, 3 frames, 256x256) and the long-name Camera (n) layout
    (5 cameras, 2 frames numbered 1 and 2, 256x256)."""
    root = tmp_path_factory.mktemp("good")
    make_subject(root, name="CoreView_377", cameras=4, frames=3, size=256)
    make_subject(root, name="CoreView_313", cameras=5, frames=2, size=256, layout="long")
    return root


def run_check(capsys, path, *options):
    code = main(["data", "check", str(path), *options])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


@pytest.fixture
def broken(good_root, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(good_root, copy)
    return copy


def test_good_data_passes_with_counts(capsys, good_root):
    code, summary, err = run_check(capsys, good_root)
    assert code == 0, err
    assert summary["ok"] and summary["problem_count"] == 0
    by_name = {s["name"]: s for s in summary["subjects"]}
    assert set(by_name) == {"CoreView_377", "CoreView_313"}
    assert (by_name["CoreView_377"]["cameras"], by_name["CoreView_377"]["frames"]) == (4, 3)
    assert (by_name["CoreView_313"]["cameras"], by_name["CoreView_313"]["frames"]) == (5, 2)
    assert by_name["CoreView_313"]["camera_folders"][0] == "Camera (1)"
    for subject in summary["subjects"]:
        assert subject["image_size"] == [256, 256] and subject["prepared_size"] == [128, 128]
        assert subject["keypoints"] == 24 and subject["problems"] == []
    # one subject folder on its own works too
    code, summary, _ = run_check(capsys, good_root / "CoreView_313")
    assert code == 0 and [s["name"] for s in summary["subjects"]] == ["CoreView_313"]


def _expect_problem(capsys, root, named, *options):
    """``data check`` fails (exit 1) with a problem naming each of ``named`` (a file, a camera, numbers), in the
    JSON summary and on stderr."""
    code, summary, err = run_check(capsys, root, *options)
    assert code == 1
    problems = [p for s in summary["subjects"] for p in s["problems"]]
    named = (named,) if isinstance(named, str) else named
    assert any(all(name in p for name in named) for p in problems), (named, problems)
    assert_names(err, *named)
    return problems


def test_deleted_image(capsys, broken):
    (broken / "CoreView_377" / "Camera_B2" / "000001.jpg").unlink()
    _expect_problem(capsys, broken, "CoreView_377/Camera_B2/000001.jpg")


def test_truncated_jpeg_and_frame_subsampling(capsys, broken):
    image = broken / "CoreView_377" / "Camera_B1" / "000001.jpg"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    # decoding only 1 of the 3 frames (the first) misses it; --all-frames finds it
    code, _, _ = run_check(capsys, broken, "--frames", "1")
    assert code == 0
    _expect_problem(capsys, broken, "CoreView_377/Camera_B1/000001.jpg", "--all-frames")


def test_truncated_jpeg_in_long_layout(capsys, broken):
    folder = broken / "CoreView_313" / "Camera (4)"
    image = next(folder.glob("*_0002_*.jpg"))
    image.write_bytes(image.read_bytes()[:300])
    _expect_problem(capsys, broken, f"Camera (4)/{image.name}")


def test_nan_in_joints3d(capsys, broken):
    path = broken / "CoreView_377" / "joints3d" / "1.npy"
    keypoints = np.load(path)
    keypoints[5, 2] = np.nan
    np.save(path, keypoints)
    _expect_problem(capsys, broken, ("CoreView_377/joints3d/1.npy", "NaN"))


def test_wrong_shape_vertices(capsys, broken):
    np.save(broken / "CoreView_313" / "vertices" / "2.npy", np.zeros((10, 2), np.float32))
    _expect_problem(capsys, broken, ("CoreView_313/vertices/2.npy", "(10, 2)"))


def test_empty_mask(capsys, broken):
    for kind in ("mask", "mask_cihp"):
        Image.fromarray(np.zeros((256, 256), np.uint8)).save(broken / "CoreView_377" / kind / "Camera_B3" /
                                                             "000002.png")
    _expect_problem(capsys, broken, "CoreView_377/mask/Camera_B3/000002.png")


def test_inconsistent_frames(capsys, broken):
    (broken / "CoreView_377" / "joints3d" / "2.npy").unlink()
    shutil.rmtree(broken / "CoreView_313" / "mask" / "Camera (2)")
    shutil.rmtree(broken / "CoreView_313" / "mask_cihp" / "Camera (2)")
    problems = _expect_problem(capsys, broken, "CoreView_377/joints3d/2.npy")
    assert any("CoreView_313/mask/Camera (2)/" in p for p in problems)


def test_person_out_of_every_view_is_a_problem(capsys, broken):
    path = broken / "CoreView_377" / "joints3d" / "0.npy"
    np.save(path, np.load(path) + np.float32([0.0, 0.0, 5.0]))
    _expect_problem(capsys, broken, ("CoreView_377/joints3d/0.npy", "camera 2", "Camera_B3", "256x256"))


def test_keypoints_outside_some_images_are_warnings(capsys, broken):
    # a raised hand and a foot beyond the images' top and bottom edges: a partial view, usable
    path = broken / "CoreView_377" / "joints3d" / "1.npy"
    keypoints = np.load(path)
    keypoints[22, 2], keypoints[10, 2] = 3.5, -2.0
    np.save(path, keypoints)
    code, summary, err = run_check(capsys, broken)
    assert code == 0, err
    assert summary["ok"] and summary["problem_count"] == 0
    subject = next(s for s in summary["subjects"] if s["name"] == "CoreView_377")
    assert subject["warning_count"] == 4                          # every one of the 4 cameras, frame 1 only
    assert all("CoreView_377/joints3d/1.npy" in w and "[10, 22]" in w               # the file, which keypoints
               for w in subject["warnings"] if "joints3d" in w)
    assert_names(err, *subject["warnings"])                                           # each said on stderr


@pytest.mark.parametrize("target", ["annots.npy", "params/1.npy"])
def test_malicious_pickle_refused_without_running(capsys, broken, tmp_path, target):
    marker = tmp_path / "pwned"
    save_pickled(broken / "CoreView_377" / target,
                 {"cams": {}, "ims": [], "Rh": MarkerPayload(os.system, (f"touch '{marker}'",))})
    _expect_problem(capsys, broken, (f"CoreView_377/{target}", "system"))     # the file and the global it names
    assert not marker.exists()


def test_bad_split_file(capsys, broken):
    (broken / "split.json").write_text(json.dumps({"train": ["CoreView_377"], "test": ["CoreView_999"]}))
    code, summary, err = run_check(capsys, broken)
    assert code == 1 and "CoreView_999" in err and summary["split_problems"]


def test_cli_entry_point_subprocess(good_root):
    result = subprocess.run([sys.executable, "-m", "keypointnerf.cli", "data", "check", str(good_root / "CoreView_377")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["subjects"][0]["frames"] == 3
