"""Calibration IO: EasyMocap intri.yml / extri.yml written with cv2.FileStorage and read back, the JSON file, and
the checks that name the camera."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from keypointnerf.capture.calibration import (Camera, read_calibration, read_easymocap, read_json, rig_center,
                                              write_easymocap, write_json)
from keypointnerf.errors import UserError

from helpers import assert_names


def ring(count: int = 4, radius: float = 3.0, size: int = 256) -> list[Camera]:
    """Cameras on a ring around the origin looking at (0, 0, 1) (OpenCV: +y down in the image)."""
    cameras = []
    target = np.array([0.0, 0.0, 1.0])
    for c in range(count):
        angle = 2 * np.pi * c / count
        center = np.array([radius * np.cos(angle), radius * np.sin(angle), 1.2])
        forward = (target - center) / np.linalg.norm(target - center)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        R = np.stack([right, down, forward])
        K = np.array([[1.5 * size, 0, size / 2 + c], [0, 1.5 * size, size / 2 - c], [0, 0, 1]])
        cameras.append(Camera(name=f"{c + 1:02d}", K=K, R=R, t=-R @ center,
                              dist=np.array([0.01 * c, -0.002, 0.0, 0.0, 0.0]), size=(size, size)))
    return cameras


def assert_same(a: list[Camera], b: list[Camera]) -> None:
    assert [c.name for c in a] == [c.name for c in b]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.K, y.K, atol=1e-9)
        np.testing.assert_allclose(x.R, y.R, atol=1e-9)
        np.testing.assert_allclose(x.t, y.t, atol=1e-9)
        np.testing.assert_allclose(x.dist.ravel(), y.dist.ravel(), atol=1e-12)
        assert x.size == y.size


def test_easymocap_round_trip(tmp_path):
    cameras = ring()
    write_easymocap(tmp_path / "intri.yml", tmp_path / "extri.yml", cameras)
    # the file is OpenCV FileStorage with EasyMocap's keys
    storage = cv2.FileStorage(str(tmp_path / "extri.yml"), cv2.FILE_STORAGE_READ)
    assert storage.getNode("R_02").mat().shape == (3, 1) and storage.getNode("Rot_02").mat().shape == (3, 3)
    storage.release()
    assert_same(read_easymocap(tmp_path / "intri.yml", tmp_path / "extri.yml"), cameras)
    loaded, path = read_calibration(tmp_path)
    assert path.name == "intri.yml"
    assert_same(loaded, cameras)


def _write_by_hand(folder, cameras, rotation: str):
    """intri/extri written with cv2.FileStorage directly, as EasyMocap does, with only R_ or only Rot_."""
    intri = cv2.FileStorage(str(folder / "intri.yml"), cv2.FILE_STORAGE_WRITE)
    extri = cv2.FileStorage(str(folder / "extri.yml"), cv2.FILE_STORAGE_WRITE)
    for storage in (intri, extri):
        storage.startWriteStruct("names", cv2.FileNode_SEQ)
        for camera in cameras:
            storage.write("", camera.name)
        storage.endWriteStruct()
    for camera in cameras:
        intri.write(f"K_{camera.name}", camera.K)
        intri.write(f"dist_{camera.name}", camera.dist.reshape(5, 1))
        if rotation == "R":
            extri.write(f"R_{camera.name}", cv2.Rodrigues(camera.R)[0])
        else:
            extri.write(f"Rot_{camera.name}", camera.R)
        extri.write(f"T_{camera.name}", camera.t.reshape(3, 1))
    intri.release()
    extri.release()


@pytest.mark.parametrize("rotation", ["R", "Rot"])
def test_easymocap_rodrigues_or_matrix(tmp_path, rotation):
    cameras = ring()
    _write_by_hand(tmp_path, cameras, rotation)
    loaded = read_easymocap(tmp_path / "intri.yml", tmp_path / "extri.yml")
    for camera in cameras:
        camera.size = None  # no H_/W_ written
    assert_same(loaded, cameras)


def test_json_round_trip_and_rvec(tmp_path):
    cameras = ring(3)
    write_json(tmp_path / "calibration.json", cameras)
    assert_same(read_json(tmp_path / "calibration.json"), cameras)
    data = json.loads((tmp_path / "calibration.json").read_text())
    for entry, camera in zip(data["cameras"], cameras):  # Rodrigues vector instead of the matrix
        del entry["R"]
        entry["rvec"] = cv2.Rodrigues(camera.R)[0].ravel().tolist()
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    assert_same(read_calibration(tmp_path)[0], cameras)


def test_rig_center_is_where_the_cameras_look():
    np.testing.assert_allclose(rig_center(ring()), [0.0, 0.0, 1.0], atol=1e-9)


def _bad(tmp_path, change) -> str:
    cameras = ring()
    change(cameras)
    write_json(tmp_path / "calibration.json", cameras)
    with pytest.raises(UserError) as info:
        read_json(tmp_path / "calibration.json")
    assert str(tmp_path / "calibration.json") in str(info.value)          # the file is named
    return str(info.value)


def test_not_a_rotation_names_the_camera(tmp_path):
    def scale(cameras):
        cameras[2].R = cameras[2].R * 1.1
    message = _bad(tmp_path, scale)
    assert "'03'" in message


def test_reflection_is_not_a_rotation(tmp_path):
    def mirror(cameras):
        cameras[1].R = cameras[1].R * np.array([[1.0], [1.0], [-1.0]])
    assert "'02'" in _bad(tmp_path, mirror)


def test_zero_focal_names_the_camera(tmp_path):
    def zero(cameras):
        cameras[0].K[0, 0] = 0.0
    message = _bad(tmp_path, zero)
    assert "'01'" in message


def test_camera_facing_away_names_the_camera(tmp_path):
    def turn(cameras):  # turned 180 degrees about its own vertical axis, centre kept
        center = cameras[3].center
        cameras[3].R = np.diag([-1.0, 1.0, -1.0]) @ cameras[3].R
        cameras[3].t = -cameras[3].R @ center
    message = _bad(tmp_path, turn)
    assert "'04'" in message


def test_millimetres_refused(tmp_path):
    def millimetres(cameras):
        cameras[1].t = cameras[1].t * 1000
    message = _bad(tmp_path, millimetres)
    assert "'02'" in message and "metres" in message                # the camera and the unit it must be given in


def test_missing_intrinsics_names_the_camera(tmp_path):
    cameras = ring()
    write_easymocap(tmp_path / "intri.yml", tmp_path / "extri.yml", cameras)
    text = (tmp_path / "intri.yml").read_text()
    start = text.index("K_03:")
    end = text.index("dist_03:")
    (tmp_path / "intri.yml").write_text(text[:start] + text[end:])
    with pytest.raises(UserError, match="'03'.*K_03"):
        read_easymocap(tmp_path / "intri.yml", tmp_path / "extri.yml")


def test_missing_extrinsics_names_the_camera(tmp_path):
    cameras = ring()
    write_easymocap(tmp_path / "intri.yml", tmp_path / "extri.yml", cameras)
    write_easymocap(tmp_path / "other_intri.yml", tmp_path / "extri.yml", cameras[:3])
    with pytest.raises(UserError, match="'04'"):
        read_easymocap(tmp_path / "intri.yml", tmp_path / "extri.yml")


def test_no_calibration(tmp_path):
    with pytest.raises(UserError) as err:
        read_calibration(tmp_path)
    assert_names(str(err.value), tmp_path, "intri.yml", "extri.yml", "calibration.json")   # what was looked for
