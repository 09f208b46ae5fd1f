"""The one validation of cameras, keypoints and views (``keypointnerf.data.validate``): worked examples, and
every kind of impossible input refused alike by ``data check``, ``render``, ``eval`` and ``train`` before any
work, naming the camera and the file."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from keypointnerf.cli import main
from keypointnerf.data.safe_pickle import load_npy
from keypointnerf.data.validate import camera_problems, point_problems, view_findings

from helpers import assert_names
from zju_fixtures import make_subject, save_pickled, save_random_small_model, write_split

K = np.array([[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]])
RT = np.concatenate([np.eye(3), np.zeros((3, 1))], axis=1)     # at the origin, looking along +z


def test_camera_problems_by_hand():
    assert camera_problems(K, np.eye(3)) == []
    turned = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])       # 90 degrees about z: a rotation
    assert camera_problems(K, turned) == []
    for R in (np.zeros((3, 3)), 2 * np.eye(3), np.diag([1.0, 1, -1])):   # zeros, a scale, a mirror (det -1)
        (problem,) = camera_problems(K, R)
        assert problem.startswith("R is not a rotation")
    assert "det -1" in camera_problems(K, np.diag([1.0, 1, -1]))[0]
    negative = K.copy()
    negative[0, 0] = -100
    assert camera_problems(negative, np.eye(3)) == ["focal lengths must be positive (K[0,0] = -100, K[1,1] = 100)"]
    skewed_last_row = K.copy()
    skewed_last_row[2] = [0, 0, 2]
    assert camera_problems(skewed_last_row, np.eye(3)) == ["the last row of K must be 0 0 1, not 0 0 2"]


def test_point_problems_by_hand():
    assert point_problems(np.zeros((24, 3)), "keypoints") == ["all keypoints are zero (a placeholder, not a body)"]
    assert point_problems(np.full((24, 3), 0.3) + np.linspace(0, 5e-4, 24)[:, None], "keypoints") == [
        "all 24 keypoints lie within 1 mm of each other"]
    assert point_problems(np.array([[0.0, 0, 0], [0, 0, 0.5]]), "keypoints") == []


def test_view_findings_by_hand():
    # (0, 0, 2) projects to the centre (50, 50); (0.9, 0, 2) to u = 50 + 100 * 0.45 = 95 (inside);
    # (1.2, 0, 2) to u = 110 (outside a 100 px wide image)
    inside = np.array([[0.0, 0, 2], [0.9, 0, 2], [0, -0.9, 2]])
    assert view_findings(inside, K, RT, 100, 100) == (None, None)
    problem, warning = view_findings(np.array([[0.0, 0, 2], [1.2, 0, 2], [0, 0, 3]]), K, RT, 100, 100)
    assert problem is None and warning == "1 keypoint(s) (indices [1]) project outside its 100x100 image"
    problem, _ = view_findings(inside * [1, 1, -1], K, RT, 100, 100)             # behind the camera
    assert problem.startswith("faces away from the person")
    problem, _ = view_findings(inside + [10.0, 0, 0], K, RT, 100, 100)           # 10 m to the side
    assert problem == "sees none of the 3 keypoints inside its 100x100 image (the person is out of view)"


# ----------------------------------------------------------------------------------------------- every verb
@pytest.fixture(scope="module")
def intact(tmp_path_factory):
    """One test subject (split.json) with 5 cameras (eval's inputs 0, 2, 3; targets 1, 4), 1 frame, 128 px,
    and a random small model."""
    root = tmp_path_factory.mktemp("validate") / "data"
    make_subject(root, name="S", cameras=5, frames=1, size=128)
    write_split(root, train=[], test=["S"])
    return root, save_random_small_model(root.parent / "model.ckpt")


def _edit_cameras(subject, edit):
    annots = load_npy(subject / "annots.npy")
    edit(annots["cams"])
    save_pickled(subject / "annots.npy", annots)


def _zero_rotation(subject):
    _edit_cameras(subject, lambda cams: cams["R"].__setitem__(2, np.zeros((3, 3))))


def _scaled_rotation(subject):
    _edit_cameras(subject, lambda cams: cams["R"].__setitem__(2, 1.5 * np.asarray(cams["R"][2])))


def _negative_focal(subject):
    def edit(cams):
        cams["K"][2] = np.asarray(cams["K"][2]) * np.array([[-1.0], [-1.0], [1.0]])
    _edit_cameras(subject, edit)


def _facing_away(subject):
    def edit(cams):
        # the same camera centre, turned 180 degrees about its own y axis: it looks away from the person
        R = np.asarray(cams["R"][0], dtype=np.float64)
        centre = -R.T @ (np.asarray(cams["T"][0], dtype=np.float64).reshape(3) / 1000)
        turned = np.diag([-1.0, 1.0, -1.0]) @ R
        cams["R"][0] = turned
        cams["T"][0] = (-turned @ centre * 1000).reshape(3, 1)
    _edit_cameras(subject, edit)


def _zero_keypoints(subject):
    np.save(subject / "joints3d" / "0.npy", np.zeros((24, 3), np.float32))


def _keypoints_folder(subject):
    (subject / "joints3d" / "0.npy").unlink()
    (subject / "joints3d" / "0.npy").mkdir()


def _empty_source_mask(subject):
    for kind in ("mask", "mask_cihp"):
        Image.fromarray(np.zeros((128, 128), np.uint8)).save(subject / kind / "Camera_B1" / "000000.png")


def _person_far_away(subject):
    for folder in ("joints3d", "vertices"):
        path = subject / folder / "0.npy"
        np.save(path, np.load(path) + np.float32([0.0, 0.0, 8.0]))


# (edit, what data check names, what render, eval and train name: files, cameras)
CASES = {
    "rotation of zeros": (_zero_rotation, ("annots.npy", "camera 2"), None),
    "not a rotation": (_scaled_rotation, ("annots.npy", "camera 2"), None),
    "negative focal lengths": (_negative_focal, ("annots.npy", "camera 2"), None),
    "all-zero keypoints": (_zero_keypoints, ("joints3d/0.npy",), None),
    "a folder for a keypoint file": (_keypoints_folder, ("joints3d/0.npy",), None),
    "empty source mask": (_empty_source_mask, ("mask/Camera_B1/000000.png",),
                          ("mask/Camera_B1/000000.png", "camera 0", "Camera_B1", "frame 0")),
    "person far outside the views": (_person_far_away, ("joints3d/0.npy", "camera 0", "Camera_B1"),
                                     ("annots.npy", "joints3d/0.npy", "camera 0", "Camera_B1")),
    "source camera facing away": (_facing_away, ("camera 0", "Camera_B1"), ("annots.npy", "camera 0", "Camera_B1")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_impossible_input_is_refused_by_every_verb_before_any_work(intact, tmp_path, capsys, case):
    edit, checked, refused = CASES[case]
    refused = refused or checked
    root = tmp_path / "data"
    shutil.copytree(intact[0], root)
    edit(root / "S")

    assert main(["data", "check", str(root)]) == 1
    assert_names(capsys.readouterr().err, *checked)

    out = tmp_path / "render"
    assert main(["render", "--checkpoint", str(intact[1]), "--data", str(root / "S"), "--sources", "0,2,3",
                 "--targets", "1", "--downsample", "1.0", "--device", "cpu", "-o", str(out)]) == 2
    assert_names(capsys.readouterr().err, *refused)
    assert not out.exists()

    out = tmp_path / "eval"
    assert main(["eval", "--checkpoint", str(intact[1]), "--data", str(root), "--downsample", "1.0",
                 "--device", "cpu", "-o", str(out)]) == 2
    assert_names(capsys.readouterr().err, *refused)
    assert not out.exists()

    if case == "empty source mask":
        return          # training draws its sources at random and skips empty targets: nothing to refuse
    out = tmp_path / "train"
    assert main(["train", "--preset", "small", "--data", str(root), "--set", "data.protocol=all", "--device",
                 "cpu", "--no-progress", "-o", str(out)]) == 2
    assert_names(capsys.readouterr().err, *refused)
    assert not out.exists()


def test_the_intact_copy_passes(intact, capsys):
    assert main(["data", "check", str(intact[0])]) == 0, capsys.readouterr().err
