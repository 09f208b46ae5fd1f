"""Camera calibrations of a capture rig: EasyMocap's ``intri.yml`` / ``extri.yml`` and a plain JSON file.

Cameras are OpenCV pinhole cameras with distortion: ``x_cam = R x_world + t`` (world-to-camera, t in metres),
``(u, v) ~ K x_cam`` in pixels of the stored images, ``dist`` OpenCV's (k1, k2, p1, p2[, k3, ...]).

EasyMocap (OpenCV FileStorage YAML, the format of ZJU-MoCap's newer sequences)::

    intri.yml: names (sequence of camera names, the camera order), K_<cam> (3x3), dist_<cam> (1x5 or 5x1),
               optionally H_<cam>, W_<cam> (image size in pixels)
    extri.yml: R_<cam> (3x1 Rodrigues vector, radians) and/or Rot_<cam> (3x3), T_<cam> (3x1, metres)

JSON (``calibration.json``; the order of the list is the camera order)::

    {"units": "metres",
     "cameras": [{"name": "01", "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], "dist": [k1, k2, p1, p2, k3],
                  "R": [[...], [...], [...]] (or "rvec": [rx, ry, rz]), "t": [tx, ty, tz],
                  "width": 1024, "height": 1024}, ...]}

``dist``, ``width`` and ``height`` are optional.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..data.zju import _as_matrix as _matrix  # shape- and finiteness-checked float64 array
from ..errors import UserError
from ..fileio import read_json_file

#: A rotation matrix must satisfy |R R^T - I| and |det R - 1| below this.
ROTATION_TOLERANCE = 1e-3
#: ``R_<cam>`` and ``Rot_<cam>`` given together must agree within this angle (radians).
ROTATION_AGREEMENT_RAD = 1e-3
#: A translation longer than this (metres) is taken for millimetres and refused.
MAX_TRANSLATION_M = 100.0
DISTORTION_SIZES = (4, 5, 8, 12, 14)


@dataclass
class Camera:
    """One calibrated camera.

    Attributes:
        name: the camera's name (EasyMocap ``names`` entry; the folder name under ``images/`` and ``videos/``).
        K: (3, 3) float64 intrinsics in pixels; dist: (k,) float64 OpenCV distortion (k in 4, 5, 8, 12, 14).
        R: (3, 3) float64 world-to-camera rotation; t: (3,) float64 translation in metres.
        size: (H, W) of the images in pixels when the calibration states it, else None.
    """

    name: str
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    size: tuple[int, int] | None = None

    @property
    def projection(self) -> np.ndarray:
        """(3, 4) ``K [R | t]`` for undistorted pixel coordinates."""
        return self.K @ np.concatenate([self.R, self.t[:, None]], axis=1)

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in world metres."""
        return -self.R.T @ self.t

    def depth(self, points: np.ndarray) -> np.ndarray:
        """(N,) depth along the optical axis (metres) of world points (N, 3)."""
        return np.asarray(points, np.float64) @ self.R[2] + self.t[2]

    def project(self, points: np.ndarray, distort: bool = False) -> np.ndarray:
        """(N, 2) pixel coordinates of world points (N, 3): undistorted pinhole, or with ``dist`` applied."""
        points = np.asarray(points, np.float64).reshape(-1, 3)
        if distort and np.any(self.dist != 0):
            rvec, _ = cv2.Rodrigues(self.R)
            uv, _ = cv2.projectPoints(points, rvec, self.t, self.K, self.dist)
            return uv.reshape(-1, 2)
        x_cam = points @ self.R.T + self.t
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = x_cam @ self.K.T
            return uv[:, :2] / uv[:, 2:3]

    def undistort_points(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) pixel coordinates of a distorted image -> the same points in the undistorted pinhole image."""
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        if not np.any(self.dist != 0) or len(uv) == 0:
            return uv.copy()
        return cv2.undistortPoints(uv[:, None, :], self.K, self.dist, P=self.K).reshape(-1, 2)


# ----------------------------------------------------------------------------------------------- checks
def check_rotation(R: np.ndarray, what: str, source: Path) -> None:
    """Raise UserError when ``R`` (3, 3) is not a proper rotation (orthonormal, det +1)."""
    orthogonality = float(np.abs(R @ R.T - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if orthogonality > ROTATION_TOLERANCE or abs(det - 1.0) > ROTATION_TOLERANCE:
        raise UserError(f"{source}: {what} is not a rotation (|R R^T - I| = {orthogonality:.2g}, det = {det:.4g}); "
                        f"expected an orthonormal matrix with determinant +1")


def check_camera(camera: Camera, source: Path) -> None:
    """Intrinsics, rotation and translation of one camera; raises UserError naming the camera."""
    what = f"camera {camera.name!r}"
    K = camera.K
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise UserError(f"{source}: {what}: focal length fx={K[0, 0]:g}, fy={K[1, 1]:g} pixels; must be > 0")
    if abs(K[2, 2] - 1) > 1e-6 or abs(K[2, 0]) > 1e-9 or abs(K[2, 1]) > 1e-9 or abs(K[1, 0]) > 1e-9:
        raise UserError(f"{source}: {what}: K's last row must be [0, 0, 1] and K[1, 0] zero, got {K.tolist()}")
    check_rotation(camera.R, f"{what}: rotation", source)
    if camera.dist.size not in DISTORTION_SIZES:
        raise UserError(f"{source}: {what}: {camera.dist.size} distortion coefficients (OpenCV takes "
                        f"{', '.join(map(str, DISTORTION_SIZES))})")
    if np.linalg.norm(camera.t) > MAX_TRANSLATION_M:
        raise UserError(f"{source}: {what}: translation {camera.t.tolist()} is {np.linalg.norm(camera.t):.0f} long; "
                        f"T must be in metres (millimetres?)")
    if camera.size is not None:
        height, width = camera.size
        if height <= 0 or width <= 0:
            raise UserError(f"{source}: {what}: image size {width}x{height} (width x height) is not positive")
        cx, cy = K[0, 2], K[1, 2]
        if not (0 < cx < width and 0 < cy < height):
            raise UserError(f"{source}: {what}: principal point ({cx:g}, {cy:g}) lies outside its {width}x{height} "
                            f"image")


def rig_center(cameras: list[Camera]) -> np.ndarray:
    """(3,) the point nearest (least squares) to every camera's optical axis: where a rig looks."""
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for camera in cameras:
        axis = camera.R[2]  # optical axis in world coordinates
        projector = np.eye(3) - np.outer(axis, axis)
        A += projector
        b += projector @ camera.center
    return np.linalg.lstsq(A, b, rcond=None)[0]


def check_rig(cameras: list[Camera], source: Path) -> None:
    """Every camera checked; names unique; with 2 or more cameras, each must see the rig's centre in front of it
    (a camera looking away, e.g. a transposed rotation, is refused)."""
    names = [c.name for c in cameras]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"{source}: camera name(s) {duplicates} appear more than once")
    if len(cameras) < 2:
        raise UserError(f"{source}: {len(cameras)} camera(s); triangulating keypoints needs at least 2")
    for camera in cameras:
        check_camera(camera, source)
    center = rig_center(cameras)
    for camera in cameras:
        if camera.depth(center[None])[0] <= 0:
            raise UserError(f"{source}: camera {camera.name!r} faces away from the point the rig looks at "
                            f"({np.round(center, 2).tolist()} m): the person would be behind it (is R or T "
                            f"inverted, i.e. camera-to-world instead of world-to-camera?)")


def check_person_in_front(cameras: list[Camera], point: np.ndarray, where: str) -> None:
    """Raise UserError naming the camera when world point ``point`` (3,) (the person) is behind a camera."""
    for camera in cameras:
        if camera.depth(np.asarray(point)[None])[0] <= 0:
            raise UserError(f"{where}: the person (at {np.round(point, 2).tolist()} m) is behind camera "
                            f"{camera.name!r}: check its R and T (world-to-camera, metres)")


# ----------------------------------------------------------------------------------------------- EasyMocap
def _open_storage(path: Path) -> cv2.FileStorage:
    if not path.is_file():
        raise UserError(f"{path}: calibration file missing")
    try:
        storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except cv2.error as exc:
        raise UserError(f"{path}: not an OpenCV FileStorage YAML file ({str(exc).strip().splitlines()[-1]})") from None
    if not storage.isOpened():
        raise UserError(f"{path}: cannot be opened as an OpenCV FileStorage file")
    return storage


def _node_matrix(storage: cv2.FileStorage, key: str, path: Path) -> np.ndarray | None:
    node = storage.getNode(key)
    if node.empty() or node.isNone():
        return None
    if node.isReal() or node.isInt():
        return np.array([node.real()])
    matrix = node.mat()
    if matrix is None:
        raise UserError(f"{path}: {key} is not an OpenCV matrix")
    return np.asarray(matrix, np.float64)


def _names(storage: cv2.FileStorage, path: Path) -> list[str]:
    node = storage.getNode("names")
    if node.empty() or node.isNone() or not node.isSeq():
        raise UserError(f"{path}: no 'names' sequence (the camera names, in order)")
    names = []
    for i in range(node.size()):
        item = node.at(i)
        names.append(item.string() if item.isString() else str(int(item.real())))
    if not names:
        raise UserError(f"{path}: 'names' is empty")
    return names


def read_easymocap(intri_path: str | Path, extri_path: str | Path) -> list[Camera]:
    """Cameras from EasyMocap's ``intri.yml`` and ``extri.yml`` in the order of ``names`` in ``intri.yml``;
    checked (:func:`check_rig`). Raises UserError naming the file and camera for anything missing or wrong."""
    intri_path, extri_path = Path(intri_path), Path(extri_path)
    intri, extri = _open_storage(intri_path), _open_storage(extri_path)
    try:
        cameras = []
        for name in _names(intri, intri_path):
            K = _node_matrix(intri, f"K_{name}", intri_path)
            if K is None:
                raise UserError(f"{intri_path}: camera {name!r} is listed in 'names' but has no K_{name}")
            K = _matrix(K, (3, 3), f"K_{name}", intri_path)
            dist = _node_matrix(intri, f"dist_{name}", intri_path)
            if dist is None:
                dist = _node_matrix(intri, f"D_{name}", intri_path)
            dist = np.zeros(5) if dist is None else _matrix(dist, (dist.size,), f"dist_{name}", intri_path)
            height, width = (_node_matrix(intri, f"{k}_{name}", intri_path) for k in ("H", "W"))
            size = (int(height.ravel()[0]), int(width.ravel()[0])) if height is not None and width is not None \
                else None
            rvec = _node_matrix(extri, f"R_{name}", extri_path)
            rot = _node_matrix(extri, f"Rot_{name}", extri_path)
            if rvec is None and rot is None:
                raise UserError(f"{extri_path}: camera {name!r} has neither R_{name} (Rodrigues) nor Rot_{name} (3x3)")
            if rot is not None:
                R = _matrix(rot, (3, 3), f"Rot_{name}", extri_path)
                check_rotation(R, f"camera {name!r}: Rot_{name}", extri_path)
                if rvec is not None:
                    from_rvec = cv2.Rodrigues(_matrix(rvec, (3, 1), f"R_{name}", extri_path))[0]
                    angle = _angle_between(R, from_rvec)
                    if angle > ROTATION_AGREEMENT_RAD:
                        raise UserError(f"{extri_path}: camera {name!r}: R_{name} (Rodrigues) and Rot_{name} "
                                        f"disagree by {math.degrees(angle):.3g} degrees")
            else:
                if rvec.size == 9:
                    raise UserError(f"{extri_path}: camera {name!r}: R_{name} is a 3x3 matrix; EasyMocap's R_ is a "
                                    f"Rodrigues vector (3x1): store the matrix as Rot_{name}")
                R = cv2.Rodrigues(_matrix(rvec, (3, 1), f"R_{name}", extri_path))[0]
            T = _node_matrix(extri, f"T_{name}", extri_path)
            if T is None:
                raise UserError(f"{extri_path}: camera {name!r} has no T_{name}")
            cameras.append(Camera(name=name, K=K, R=R, t=_matrix(T, (3,), f"T_{name}", extri_path), dist=dist,
                                  size=size))
    finally:
        intri.release()
        extri.release()
    check_rig(cameras, intri_path.parent)
    return cameras


def _angle_between(A: np.ndarray, B: np.ndarray) -> float:
    cosine = (np.trace(A.T @ B) - 1.0) / 2.0
    return float(np.arccos(np.clip(cosine, -1.0, 1.0)))


def write_easymocap(intri_path: str | Path, extri_path: str | Path, cameras: list[Camera]) -> None:
    """Write ``intri.yml`` / ``extri.yml`` as EasyMocap does (both ``R_`` Rodrigues and ``Rot_``), with cv2."""
    intri = cv2.FileStorage(str(intri_path), cv2.FILE_STORAGE_WRITE)
    extri = cv2.FileStorage(str(extri_path), cv2.FILE_STORAGE_WRITE)
    try:
        for storage in (intri, extri):
            storage.startWriteStruct("names", cv2.FileNode_SEQ)
            for camera in cameras:
                storage.write("", camera.name)
            storage.endWriteStruct()
        for camera in cameras:
            intri.write(f"K_{camera.name}", np.asarray(camera.K, np.float64))
            intri.write(f"dist_{camera.name}", np.asarray(camera.dist, np.float64).reshape(1, -1))
            if camera.size is not None:
                intri.write(f"H_{camera.name}", int(camera.size[0]))
                intri.write(f"W_{camera.name}", int(camera.size[1]))
            rvec, _ = cv2.Rodrigues(np.asarray(camera.R, np.float64))
            extri.write(f"R_{camera.name}", rvec)
            extri.write(f"Rot_{camera.name}", np.asarray(camera.R, np.float64))
            extri.write(f"T_{camera.name}", np.asarray(camera.t, np.float64).reshape(3, 1))
    finally:
        intri.release()
        extri.release()


# ----------------------------------------------------------------------------------------------- JSON
def read_json(path: str | Path) -> list[Camera]:
    """Cameras from the plain JSON calibration (module docstring), checked (:func:`check_rig`)."""
    path = Path(path)
    data = read_json_file(path, "calibration file")
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), list):
        raise UserError(f"{path}: expected an object with a 'cameras' list")
    units = data.get("units", "metres")
    if units not in ("metres", "meters", "m"):
        raise UserError(f"{path}: units {units!r}: only metres are accepted (give t in metres)")
    cameras = []
    for index, entry in enumerate(data["cameras"]):
        if not isinstance(entry, dict) or "name" not in entry:
            raise UserError(f"{path}: cameras[{index}] must be an object with a 'name'")
        name = str(entry["name"])
        missing = [k for k in ("K", "t") if k not in entry] + ([] if "R" in entry or "rvec" in entry else ["R"])
        if missing:
            raise UserError(f"{path}: camera {name!r} has no {', '.join(missing)}")
        if "R" in entry:
            R = _matrix(entry["R"], (3, 3), f"camera {name!r}: R", path)
        else:
            R = cv2.Rodrigues(_matrix(entry["rvec"], (3, 1), f"camera {name!r}: rvec", path))[0]
        dist = entry.get("dist", [0.0] * 5)
        dist = _matrix(dist, (np.size(dist),), f"camera {name!r}: dist", path)
        size = None
        if "width" in entry or "height" in entry:
            try:
                size = (int(entry["height"]), int(entry["width"]))
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{path}: camera {name!r}: give both 'width' and 'height' as integers") from None
        cameras.append(Camera(name=name, K=_matrix(entry["K"], (3, 3), f"camera {name!r}: K", path), R=R,
                              t=_matrix(entry["t"], (3,), f"camera {name!r}: t", path), dist=dist, size=size))
    check_rig(cameras, path)
    return cameras


def write_json(path: str | Path, cameras: list[Camera]) -> None:
    entries = []
    for camera in cameras:
        entry = {"name": camera.name, "K": camera.K.tolist(), "dist": np.asarray(camera.dist).ravel().tolist(),
                 "R": camera.R.tolist(), "t": np.asarray(camera.t).ravel().tolist()}
        if camera.size is not None:
            entry["height"], entry["width"] = int(camera.size[0]), int(camera.size[1])
        entries.append(entry)
    Path(path).write_text(json.dumps({"units": "metres", "cameras": entries}, indent=1) + "\n")


def read_calibration(source: str | Path, calibration: str | Path | None = None) -> tuple[list[Camera], Path]:
    """The cameras of capture folder ``source``: ``calibration`` (a ``.json`` file, or a folder / an
    ``intri.yml`` path with ``extri.yml`` beside it) when given, else ``intri.yml`` + ``extri.yml`` in
    ``source``, else ``calibration.json`` there. Returns (cameras, the file read)."""
    source = Path(source)
    if calibration is not None:
        path = Path(calibration)
        if path.suffix.lower() == ".json":
            return read_json(path), path
        folder = path if path.is_dir() else path.parent
        return read_easymocap(folder / "intri.yml", folder / "extri.yml"), folder / "intri.yml"
    if (source / "intri.yml").is_file() or (source / "extri.yml").is_file():
        return read_easymocap(source / "intri.yml", source / "extri.yml"), source / "intri.yml"
    if (source / "calibration.json").is_file():
        return read_json(source / "calibration.json"), source / "calibration.json"
    raise UserError(f"{source}: no calibration (expected intri.yml and extri.yml, or calibration.json; or pass "
                    f"--calibration FILE)")
